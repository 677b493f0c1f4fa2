package imaging

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testImage is a w×h image with smooth gradients, hard edges and noise,
// so that every filter tap matters.
func testImage(w, h int, seed uint64) *image.NRGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := uint8(255 * x / max(1, w-1))
			g := uint8(255 * y / max(1, h-1))
			b := uint8(0)
			if (x/7+y/5)%2 == 0 {
				b = 230
			}
			n := uint8(rng.IntN(40))
			img.SetNRGBA(x, y, color.NRGBA{r ^ n, g + n/2, b ^ (n << 2), 255})
		}
	}
	return img
}

type refCase struct {
	Crop   [4]int      `json:"crop"`
	Size   [2]int      `json:"size"`
	Window *[4]int     `json:"window"`
	Flip   bool        `json:"flip"`
	Mean   *[3]float32 `json:"mean"`
	Std    *[3]float32 `json:"std"`
}

// pillow runs testdata/pil_ref.py (Debian's Pillow + torchvision) on the
// image file and returns its decoded RGB bytes and one float tensor per
// case. The test is skipped when /usr/bin/python3 lacks them.
func pillow(t *testing.T, path string, w, h int, cases []refCase) ([]byte, [][]float32) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import PIL, torchvision, numpy").Run(); err != nil {
		t.Skipf("Pillow reference unavailable: %s cannot import PIL, torchvision, numpy (%v); install python3-torchvision (setup-gotch.sh does)", py, err)
	}
	req, _ := json.Marshal(map[string]any{"image": path, "cases": cases})
	cmd := exec.Command(py, "testdata/pil_ref.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pil_ref.py: %v\n%s", err, stderr.String())
	}
	rgb := out[:3*w*h]
	out = out[3*w*h:]
	var res [][]float32
	for _, c := range cases {
		ow, oh := c.Size[0], c.Size[1]
		if c.Window != nil {
			ow, oh = c.Window[2]-c.Window[0], c.Window[3]-c.Window[1]
		}
		n := 3 * ow * oh
		if len(out) < 4*n {
			t.Fatalf("pil_ref.py wrote too little")
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
		}
		res = append(res, v)
		out = out[4*n:]
	}
	return rgb, res
}

func (c refCase) spec() Spec {
	s := Spec{Crop: image.Rect(c.Crop[0], c.Crop[1], c.Crop[2], c.Crop[3]), W: c.Size[0], H: c.Size[1], Flip: c.Flip}
	if c.Window != nil {
		s.Window = image.Rect(c.Window[0], c.Window[1], c.Window[2], c.Window[3])
	}
	return s
}

// cases covers downscaling (antialiased, wide support), upscaling,
// identity, odd aspect ratios, crops touching every border, windows and
// flips, and Normalize.
func cases(w, h int) []refCase {
	win := func(a, b, c, d int) *[4]int { return &[4]int{a, b, c, d} }
	mean := &[3]float32{0.485, 0.456, 0.406}
	std := &[3]float32{0.229, 0.224, 0.225}
	return []refCase{
		{Crop: [4]int{0, 0, w, h}, Size: [2]int{112, 112}},
		{Crop: [4]int{0, 0, w, h}, Size: [2]int{w, h}},
		{Crop: [4]int{13, 7, 13 + 61, 7 + 45}, Size: [2]int{112, 112}, Flip: true},
		{Crop: [4]int{w - 150, h - 101, w, h}, Size: [2]int{112, 112}},
		{Crop: [4]int{5, 0, 5 + 190, h}, Size: [2]int{48, 48}, Mean: mean, Std: std},
		{Crop: [4]int{0, 0, w, h}, Size: [2]int{112, 112 * h / w}, Window: win(0, 3, 112, 3+80)},
		{Crop: [4]int{0, 0, w, h}, Size: [2]int{160, 160 * h / w}, Window: win(31, 9, 31+112, 9+112), Flip: true},
		{Crop: [4]int{40, 30, 43, 32}, Size: [2]int{17, 9}},
	}
}

func checkCases(t *testing.T, src *RGB, cs []refCase, want [][]float32) {
	t.Helper()
	for i, c := range cs {
		r, err := NewResampler(src.W, src.H, c.spec())
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		ow, oh := r.OutSize()
		got := make([]float32, 3*ow*oh)
		lut := NewLUT(nil, nil)
		if c.Mean != nil {
			lut = NewLUT(c.Mean, c.Std)
		}
		var scratch []byte
		if err := r.Apply(src, lut, got, &scratch); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		diff := 0
		for j := range got {
			if got[j] != want[i][j] {
				if diff == 0 {
					t.Errorf("case %d (%+v): value %d = %v, Pillow %v", i, c, j, got[j], want[i][j])
				}
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("case %d: %d of %d values differ from Pillow", i, diff, len(got))
		}
	}
}

// comparePillow writes the encoded image to a file, decodes it with fer
// and with Pillow, and checks that the decoded bytes and every case of
// cases(w, h) are equal.
func comparePillow(t *testing.T, name string, w, h int, encoded []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, encoded, 0o644); err != nil {
		t.Fatal(err)
	}
	cs := cases(w, h)
	rgb, want := pillow(t, path, w, h, cs)
	var src RGB
	if err := DecodeFile(path, &src); err != nil {
		t.Fatal(err)
	}
	if src.W != w || src.H != h || !bytes.Equal(src.Pix, rgb) {
		t.Fatalf("%s: decoded pixels differ from Pillow's", name)
	}
	checkCases(t, &src, cs, want)
}

// TestResamplerMatchesPillow: on a lossless PNG, fer's resampling equals
// torchvision's PIL pipeline bit for bit.
func TestResamplerMatchesPillow(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, testImage(224, 181, 1)); err != nil {
		t.Fatal(err)
	}
	comparePillow(t, "a.png", 224, 181, buf.Bytes())
}

// TestDecodeJPEGMatchesPillow: libjpeg-turbo through cgo decodes a JPEG
// to the same RGB bytes as Pillow, and the whole decode + crop + resize +
// ToTensor path equals torchvision's.
func TestDecodeJPEGMatchesPillow(t *testing.T) {
	for _, q := range []int{75, 95} {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, testImage(200, 240, uint64(q)), &jpeg.Options{Quality: q}); err != nil {
			t.Fatal(err)
		}
		comparePillow(t, fmt.Sprintf("q%d.jpg", q), 200, 240, buf.Bytes())
	}
}

// TestResamplerKnownValues checks the arithmetic without the reference:
// identity, a constant image, a 2→1 average and a flip.
func TestResamplerKnownValues(t *testing.T) {
	src := &RGB{W: 4, H: 2, Pix: []byte{
		0, 0, 0, 10, 20, 30, 100, 100, 100, 255, 0, 7,
		4, 4, 4, 14, 24, 34, 104, 104, 104, 251, 2, 9,
	}}
	lut := &LUT{}
	for c := range 3 {
		for v := range 256 {
			lut[c][v] = float32(v)
		}
	}
	run := func(s Spec) []float32 {
		r, err := NewResampler(src.W, src.H, s)
		if err != nil {
			t.Fatal(err)
		}
		w, h := r.OutSize()
		out := make([]float32, 3*w*h)
		if err := r.Apply(src, lut, out, nil); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Identity: planes of the source.
	got := run(Spec{Crop: image.Rect(0, 0, 4, 2), W: 4, H: 2})
	want := []float32{0, 10, 100, 255, 4, 14, 104, 251, 0, 20, 100, 0, 4, 24, 104, 2, 0, 30, 100, 7, 4, 34, 104, 9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("identity: %v, want %v", got, want)
		}
	}
	// 2×2 → 1×1 of the left half: the filter (support 2, scale 2) weighs
	// the four pixels 1/4 each: R = (0+10+4+14)/4 = 7.
	got = run(Spec{Crop: image.Rect(0, 0, 2, 2), W: 1, H: 1})
	if got[0] != 7 || got[1] != 12 || got[2] != 17 {
		t.Fatalf("2x2 average = %v, want [7 12 17]", got)
	}
	// Flip mirrors columns.
	got = run(Spec{Crop: image.Rect(0, 0, 4, 2), W: 4, H: 2, Flip: true})
	if got[0] != 255 || got[3] != 0 || got[4] != 251 {
		t.Fatalf("flip: %v", got[:8])
	}
	if _, err := NewResampler(4, 2, Spec{Crop: image.Rect(0, 0, 5, 2), W: 1, H: 1}); err == nil {
		t.Fatal("crop outside the image accepted")
	}
	r, _ := NewResampler(4, 2, Spec{Crop: image.Rect(0, 0, 4, 2), W: 1, H: 1})
	if err := r.Apply(&RGB{W: 3, H: 2, Pix: make([]byte, 18)}, lut, make([]float32, 3), nil); err == nil {
		t.Fatal("image of another size accepted")
	}
}

// TestDecodeErrors: truncated and non-image data are errors naming the
// file; a grayscale JPEG is replicated to RGB.
func TestDecodeErrors(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testImage(64, 64, 3), nil); err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.jpg")
	os.WriteFile(trunc, buf.Bytes()[:buf.Len()/2], 0o644)
	junk := filepath.Join(dir, "junk.jpg")
	os.WriteFile(junk, []byte("not an image at all"), 0o644)
	var dst RGB
	for _, p := range []string{trunc, junk, filepath.Join(dir, "missing.jpg")} {
		err := DecodeFile(p, &dst)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(p)) {
			t.Errorf("%s: error %v, want one naming the file", p, err)
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 16, 8))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 2)
	}
	buf.Reset()
	jpeg.Encode(&buf, gray, &jpeg.Options{Quality: 100})
	if err := Decode(buf.Bytes(), &dst); err != nil {
		t.Fatal(err)
	}
	if dst.W != 16 || dst.H != 8 {
		t.Fatalf("gray size %dx%d", dst.W, dst.H)
	}
	for i := 0; i < len(dst.Pix); i += 3 {
		if dst.Pix[i] != dst.Pix[i+1] || dst.Pix[i] != dst.Pix[i+2] {
			t.Fatalf("gray pixel %d not replicated: %v", i/3, dst.Pix[i:i+3])
		}
	}
}

// BenchmarkResample224To112 is one RandomResizedCrop of a DFEW-sized
// frame (a 160×140 box of a 224×224 image to 112×112).
func BenchmarkResample224To112(b *testing.B) {
	var src RGB
	FromImage(testImage(224, 224, 1), &src)
	r, err := NewResampler(224, 224, Spec{Crop: image.Rect(30, 40, 190, 180), W: 112, H: 112, Flip: true})
	if err != nil {
		b.Fatal(err)
	}
	lut := NewLUT(nil, nil)
	dst := make([]float32, 3*112*112)
	var scratch []byte
	for b.Loop() {
		if err := r.Apply(&src, lut, dst, &scratch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJPEG224 decodes a 224×224 quality-90 JPEG.
func BenchmarkDecodeJPEG224(b *testing.B) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testImage(224, 224, 2), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	var dst RGB
	for b.Loop() {
		if err := DecodeJPEGInto(buf.Bytes(), &dst); err != nil {
			b.Fatal(err)
		}
	}
}
