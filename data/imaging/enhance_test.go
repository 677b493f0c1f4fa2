package imaging

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestEnhanceAllColours checks the colour adjustments against
// torchvision on every 24-bit colour (hue shifts across the wrap-around,
// saturation, contrast and brightness, interpolating and extrapolating).
// It writes 500 MB and takes ~15 s, so it runs only with
// FER_EXHAUSTIVE=1; the default suite covers the same code on images
// (data/pipeline_test.go).
func TestEnhanceAllColours(t *testing.T) {
	if os.Getenv("FER_EXHAUSTIVE") != "1" {
		t.Skip("set FER_EXHAUSTIVE=1 to compare all 2^24 colours with torchvision")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torchvision").Run(); err != nil {
		t.Skipf("%s cannot import torchvision: %v", py, err)
	}
	hue := []float64{0, 0.137, -0.41, 0.5, -0.5}
	other := []float64{0.3, 1.7}
	ref := filepath.Join(t.TempDir(), "ref.raw")
	req, _ := json.Marshal(map[string]any{"hue": hue, "other": other})
	cmd := exec.Command(py, "testdata/enhance_ref.py", ref)
	cmd.Stdin = bytes.NewReader(req)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("enhance_ref.py: %v\n%s", err, out)
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	src := &RGB{W: 4096, H: 4096, Pix: make([]byte, 3<<24)}
	for i := range 1 << 24 {
		src.Pix[3*i], src.Pix[3*i+1], src.Pix[3*i+2] = byte(i>>16), byte(i>>8), byte(i)
	}
	n, k := 3<<24, 0
	check := func(name string, f float64, err error, got *RGB) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pix, want[k*n:(k+1)*n]) {
			d := 0
			for i := range got.Pix {
				if got.Pix[i] != want[k*n+i] {
					d++
				}
			}
			t.Errorf("%s %v: %d of %d bytes differ from torchvision", name, f, d, n)
		}
		k++
	}
	var dst RGB
	for _, f := range hue {
		check("hue", f, AdjustHue(&dst, src, f), &dst)
	}
	for _, f := range other {
		check("saturation", f, AdjustSaturation(&dst, src, f), &dst)
		check("contrast", f, AdjustContrast(&dst, src, f), &dst)
		check("brightness", f, AdjustBrightness(&dst, src, f), &dst)
	}
}
