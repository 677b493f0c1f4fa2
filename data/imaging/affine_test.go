package imaging

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

type affineCase struct {
	Size   [2]int     `json:"size"`
	Data   [6]float64 `json:"data"`
	Resize *[2]int    `json:"resize"`
}

// similarity returns Pillow's inverse coefficients of the warp that
// rotates by deg about (cx, cy) of the source, scales by s and puts that
// point at (ox, oy) of the output.
func similarity(deg, s, cx, cy, ox, oy float64) [6]float64 {
	r := deg * math.Pi / 180
	c, sn := math.Cos(r)/s, math.Sin(r)/s
	// input = R⁻¹/s · (out − o) + centre
	return [6]float64{c, -sn, cx - c*ox + sn*oy, sn, c, cy - sn*ox - c*oy}
}

// TestAffineMatchesPillow: Affine equals Pillow's Image.transform(AFFINE,
// BILINEAR) byte for byte (rotations, up- and down-scaling, sources
// partly outside the image, a pure translation), and Affine followed by
// ApplyRGB equals transform(...).resize(..., BILINEAR).
func TestAffineMatchesPillow(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import PIL").Run(); err != nil {
		t.Skipf("Pillow reference unavailable: %s cannot import PIL (%v); install python3-pil (setup-gotch.sh installs it with python3-torchvision)", py, err)
	}
	const w, h = 160, 121
	var buf bytes.Buffer
	if err := png.Encode(&buf, testImage(w, h, 3)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := func(a, b int) *[2]int { return &[2]int{a, b} }
	cases := []affineCase{
		{Size: [2]int{112, 112}, Data: similarity(17, 1.3, 80, 60, 56, 50)},
		{Size: [2]int{100, 100}, Data: similarity(-31.5, 0.7, 70.25, 55.5, 50, 45)},
		{Size: [2]int{64, 80}, Data: similarity(90, 2.0, 10, 10, 32, 40)},   // mostly outside
		{Size: [2]int{50, 40}, Data: [6]float64{1, 0, 13.75, 0, 1, 7.25}},   // translation
		{Size: [2]int{200, 150}, Data: similarity(3, 0.4, 80, 60, 100, 75)}, // magnified
		{Size: [2]int{140, 140}, Data: similarity(12, 1, 80, 60, 70, 70), Resize: rs(112, 112)},
		{Size: [2]int{97, 131}, Data: similarity(-8, 1, 60, 70, 48, 65), Resize: rs(48, 64)},
	}
	req, _ := json.Marshal(map[string]any{"image": path, "cases": cases})
	cmd := exec.Command(py, "testdata/affine_ref.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("affine_ref.py: %v\n%s", err, stderr.String())
	}
	var src RGB
	if err := DecodeFile(path, &src); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		var got RGB
		if err := Affine(&src, c.Data, c.Size[0], c.Size[1], &got); err != nil {
			t.Fatal(err)
		}
		if c.Resize != nil {
			r, err := NewResampler(got.W, got.H, Spec{Crop: got.Bounds(), W: c.Resize[0], H: c.Resize[1]})
			if err != nil {
				t.Fatal(err)
			}
			var small RGB
			if err := r.ApplyRGB(&got, &small, nil); err != nil {
				t.Fatal(err)
			}
			got = small
		}
		n := 3 * got.W * got.H
		if len(out) < n {
			t.Fatalf("affine_ref.py wrote too little")
		}
		want := out[:n]
		out = out[n:]
		diff := 0
		for j := range want {
			if got.Pix[j] != want[j] {
				if diff == 0 {
					t.Errorf("case %d: byte %d (pixel %d,%d) = %d, Pillow %d", i, j, (j/3)%got.W, (j/3)/got.W, got.Pix[j], want[j])
				}
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("case %d: %d of %d bytes differ from Pillow", i, diff, n)
		}
	}
}

// TestAffineIdentity: the identity transform copies the image, and a
// point outside the image is black.
func TestAffineIdentity(t *testing.T) {
	src := RGB{W: 3, H: 2, Pix: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}}
	var dst RGB
	if err := Affine(&src, [6]float64{1, 0, 0, 0, 1, 0}, 3, 2, &dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Pix, src.Pix) {
		t.Fatalf("identity: %v", dst.Pix)
	}
	if err := Affine(&src, [6]float64{1, 0, -5, 0, 1, 0}, 1, 1, &dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Pix, []byte{0, 0, 0}) {
		t.Fatalf("outside: %v", dst.Pix)
	}
	if err := Affine(&src, [6]float64{1, 0, 0, 0, 1, 0}, 0, 2, &dst); err == nil {
		t.Fatal("zero width: no error")
	}
}
