package imgfast

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"testing"

	"github.com/fer-research/fer/data/synth"
	"golang.org/x/image/draw"
)

func face(t testing.TB, size int) (raw []byte, ref *image.RGBA) {
	t.Helper()
	s, err := synth.Generate(synth.Config{N: 1, Size: size, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, s[0].Image(), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	ref = image.NewRGBA(img.Bounds())
	draw.Draw(ref, ref.Bounds(), img, img.Bounds().Min, draw.Src)
	return buf.Bytes(), ref
}

func TestDecodeJPEGMatchesImageJPEG(t *testing.T) {
	raw, ref := face(t, 96)
	img, err := DecodeJPEG(raw)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 96 || img.H != 96 {
		t.Fatalf("size %dx%d", img.W, img.H)
	}
	// libjpeg-turbo (PIL's decoder) and image/jpeg use different IDCTs
	// and chroma upsampling (libjpeg's "fancy" triangular filter): pixels
	// agree to a couple of levels on average, more at sharp colour edges.
	var sum, maxd float64
	for y := 0; y < 96; y++ {
		for x := 0; x < 96; x++ {
			for c := 0; c < 3; c++ {
				d := math.Abs(float64(img.Pix[3*(y*96+x)+c]) - float64(ref.Pix[y*ref.Stride+4*x+c]))
				sum += d
				maxd = math.Max(maxd, d)
			}
		}
	}
	if mean := sum / (96 * 96 * 3); mean > 3 || maxd > 96 {
		t.Errorf("libjpeg-turbo vs image/jpeg: mean |diff| %.2f, max %v levels", mean, maxd)
	}
	if _, err := DecodeJPEG(raw[:len(raw)/3]); err == nil {
		t.Errorf("truncated JPEG decoded without error")
	} else {
		t.Logf("truncated: %v", err)
	}
	if _, err := DecodeJPEG([]byte("not a jpeg at all")); err == nil {
		t.Errorf("garbage decoded")
	}
	if _, err := DecodeJPEG(nil); err == nil {
		t.Errorf("empty input decoded")
	}
}

func TestResizedCropMatchesXImageBiLinear(t *testing.T) {
	_, ref := face(t, 128)
	src := &RGB{Pix: make([]byte, 128*128*3), W: 128, H: 128}
	for y := 0; y < 128; y++ {
		for x := 0; x < 128; x++ {
			for c := 0; c < 3; c++ {
				src.Pix[3*(y*128+x)+c] = ref.Pix[y*ref.Stride+4*x+c]
			}
		}
	}
	a := Affine{Mul: [3]float32{1, 1, 1}}
	for _, c := range []struct {
		crop image.Rectangle
		size int
	}{
		{image.Rect(0, 0, 128, 128), 64},  // shrink 2×
		{image.Rect(10, 20, 110, 90), 48}, // shrink, non-square crop
		{image.Rect(30, 30, 62, 62), 64},  // enlarge 2×
	} {
		want := image.NewRGBA(image.Rect(0, 0, c.size, c.size))
		draw.BiLinear.Scale(want, want.Bounds(), ref, c.crop, draw.Src, nil)
		got := make([]float32, 3*c.size*c.size)
		for _, flip := range []bool{false, true} {
			if err := ResizedCrop(src, c.crop, c.size, flip, a, got, nil); err != nil {
				t.Fatal(err)
			}
			var sum, maxd float64
			n := c.size * c.size
			for y := 0; y < c.size; y++ {
				for x := 0; x < c.size; x++ {
					// the filters treat the image border differently
					// (PIL renormalises the clipped window, x/image
					// clamps coordinates): max over the interior only
					inner := x >= 2 && y >= 2 && x < c.size-2 && y < c.size-2
					gx := x
					if flip {
						gx = c.size - 1 - x
					}
					for ch := 0; ch < 3; ch++ {
						d := math.Abs(float64(got[ch*n+y*c.size+gx]) - float64(want.Pix[y*want.Stride+4*x+ch]))
						sum += d
						if inner {
							maxd = math.Max(maxd, d)
						}
					}
				}
			}
			if mean := sum / float64(3*n); mean > 1.0 || maxd > 12 {
				t.Errorf("crop %v → %d flip=%v: mean |diff| %.2f, max %.1f vs x/image/draw BiLinear", c.crop, c.size, flip, mean, maxd)
			}
		}
	}
}

func TestResizedCropAffineAndConstant(t *testing.T) {
	src := &RGB{Pix: make([]byte, 20*10*3), W: 20, H: 10}
	for i := 0; i < len(src.Pix); i += 3 {
		src.Pix[i], src.Pix[i+1], src.Pix[i+2] = 51, 102, 255
	}
	a := Affine{Mul: [3]float32{1.0 / 255, 1.0 / 255, 2.0 / 255}, Add: [3]float32{0, -0.5, -1}}
	dst := make([]float32, 3*7*7)
	if err := ResizedCrop(src, image.Rect(3, 1, 17, 9), 7, true, a, dst, nil); err != nil {
		t.Fatal(err)
	}
	// a constant image stays constant: 51/255, 102/255 − 0.5, 2·255/255 − 1
	want := []float64{0.2, 0.4 - 0.5, 1}
	for c := 0; c < 3; c++ {
		for i := 0; i < 49; i++ {
			if d := math.Abs(float64(dst[c*49+i]) - want[c]); d > 1e-5 {
				t.Fatalf("channel %d value %d = %v, want %v", c, i, dst[c*49+i], want[c])
			}
		}
	}
	if err := ResizedCrop(src, image.Rect(30, 30, 40, 40), 7, false, a, dst, nil); err == nil {
		t.Errorf("crop outside the image accepted")
	}
	if err := ResizedCrop(src, image.Rect(0, 0, 5, 5), 8, false, a, dst, nil); err == nil {
		t.Errorf("short dst accepted")
	}
}

func BenchmarkDecodeJPEGTurbo224(b *testing.B) {
	raw, _ := face(b, 224)
	for b.Loop() {
		if _, err := DecodeJPEG(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResizedCrop224to112(b *testing.B) {
	raw, _ := face(b, 224)
	img, err := DecodeJPEG(raw)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 3*112*112)
	scratch := make([]float32, 3*112*224)
	a := Affine{Mul: [3]float32{1.0 / 255, 1.0 / 255, 1.0 / 255}}
	for b.Loop() {
		// a crop of about half the area, as RandomResizedCrop's mean
		if err := ResizedCrop(img, image.Rect(30, 20, 190, 180), 112, true, a, dst, scratch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXImageBiLinear224to112 is the same crop through fer's current
// path (x/image/draw BiLinear from the decoded YCbCr image).
func BenchmarkXImageBiLinear224to112(b *testing.B) {
	raw, _ := face(b, 224)
	img, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	out := image.NewRGBA(image.Rect(0, 0, 112, 112))
	for b.Loop() {
		draw.BiLinear.Scale(out, out.Bounds(), img, image.Rect(30, 20, 190, 180), draw.Src, nil)
	}
}
