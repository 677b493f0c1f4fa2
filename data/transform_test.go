package data

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

// rgbOf converts an image as the loaders do.
func rgbOf(img image.Image) *imaging.RGB {
	var r imaging.RGB
	imaging.FromImage(img, &r)
	return &r
}

// mustApply is Transform.apply on the whole image, failing the test on
// error.
func mustApply(t *testing.T, tr *Transform, img *imaging.RGB, p plan, dst []float32) {
	t.Helper()
	if err := tr.apply(img, image.Rect(0, 0, img.W, img.H), p, dst, nil); err != nil {
		t.Fatal(err)
	}
}

// smallSource is a 9×6 RGB image with pixel (x, y) =
// ((37x+11y) mod 256, (5x+53y) mod 256, 3(x²+7y) mod 256).
func smallSource() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 9, 6))
	for y := range 6 {
		for x := range 9 {
			img.Set(x, y, color.RGBA{uint8((x*37 + y*11) % 256), uint8((x*5 + y*53) % 256), uint8(((x*x + y*7) * 3) % 256), 255})
		}
	}
	return img
}

// The resize must agree with PIL's Image.resize(BILINEAR), which
// Former-DFER's GroupResize/GroupRandomSizedCrop use. The expected values
// (C×H×W) were computed with PIL 9.4.0 (Debian's /usr/bin/python3):
// im.resize((4,4), BILINEAR) and im.crop((1,1,8,5)).resize((4,4),
// BILINEAR). data/imaging reproduces PIL's fixed-point arithmetic, so
// the values are equal.
func TestResizeMatchesPIL(t *testing.T) {
	full := []float64{35, 110, 176, 65, 51, 126, 192, 81, 66, 141, 184, 79, 82, 157, 154, 60, 24, 34, 46, 56, 98, 108, 120, 130, 175, 185, 197, 207, 89, 99, 111, 121, 12, 35, 90, 164, 41, 64, 119, 193, 72, 95, 150, 192, 101, 124, 179, 158}
	crop := []float64{67, 125, 193, 117, 78, 136, 204, 128, 89, 147, 215, 139, 100, 158, 175, 40, 61, 68, 78, 85, 114, 121, 131, 138, 167, 174, 184, 191, 220, 227, 237, 244, 29, 51, 95, 148, 50, 72, 116, 169, 71, 93, 137, 190, 92, 114, 158, 211}
	src := rgbOf(smallSource())
	tr, err := Transform{Size: 4}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		r    image.Rectangle
		want []float64
	}{"full": {image.Rect(0, 0, 9, 6), full}, "crop": {image.Rect(1, 1, 8, 5), crop}} {
		out := make([]float32, 48)
		mustApply(t, &tr, src, plan{crop: c.r}, out)
		for i, w := range c.want {
			if out[i] != float32(w)/255 {
				t.Errorf("%s: value %d = %.2f/255, PIL %v", name, i, float64(out[i])*255, w)
			}
		}
	}
	// A region (a face box) is handled like its copy.
	sub := rgbOf(smallSource().SubImage(image.Rect(1, 1, 8, 5)))
	a, b := make([]float32, 48), make([]float32, 48)
	mustApply(t, &tr, sub, plan{crop: image.Rect(0, 0, 7, 4)}, a)
	if err := tr.apply(src, image.Rect(1, 1, 8, 5), plan{crop: image.Rect(0, 0, 7, 4)}, b, nil); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("region value %d = %v, copy of the region %v", i, a[i], b[i])
		}
	}
}

func TestTransformFlipAndNormalize(t *testing.T) {
	// Left half black, right half white; the size is unchanged, so the
	// resize is the identity.
	gray := image.NewGray(image.Rect(0, 0, 4, 2))
	for y := range 2 {
		for x := 2; x < 4; x++ {
			gray.SetGray(x, y, color.Gray{255})
		}
	}
	img := rgbOf(gray)
	tr, _ := Transform{Size: 4}.withDefaults()
	out := make([]float32, 3*16)
	// 4×2 → 4×4 stretches rows only; columns stay 0,0,1,1.
	p := plan{w: 4, h: 2, crop: gray.Bounds()}
	mustApply(t, &tr, img, p, out)
	for c := range 3 {
		for y := range 4 {
			row := out[c*16+y*4 : c*16+y*4+4]
			if row[0] != 0 || row[1] != 0 || row[2] != 1 || row[3] != 1 {
				t.Fatalf("no flip: channel %d row %d = %v, want [0 0 1 1]", c, y, row)
			}
		}
	}
	p.flip = true
	mustApply(t, &tr, img, p, out)
	if row := out[0:4]; row[0] != 1 || row[1] != 1 || row[2] != 0 || row[3] != 0 {
		t.Fatalf("flip: row 0 = %v, want [1 1 0 0]", row)
	}
	// Normalisation: (v − mean)/std per channel.
	tr.Normalize = ImageNetNormalize
	p.flip = false
	mustApply(t, &tr, img, p, out)
	for c := range 3 {
		m, s := ImageNetNormalize.Mean[c], ImageNetNormalize.Std[c]
		if got, want := out[c*16], -m/s; math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("normalised black, channel %d = %v, want %v", c, got, want)
		}
		if got, want := out[c*16+3], (1-m)/s; math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("normalised white, channel %d = %v, want %v", c, got, want)
		}
	}
	if _, err := (Transform{Normalize: &Normalize{Std: [3]float32{1, 0, 1}}}).withDefaults(); err == nil {
		t.Error("std 0 accepted")
	}
}

func TestRandomSizedCrop(t *testing.T) {
	tr, _ := Transform{Size: 112}.withDefaults()
	rng := rand.New(rand.NewPCG(5, 6))
	flips := 0
	for range 500 {
		p := tr.newPlan(224, 160, true, rng)
		r := p.crop
		if p.prescale != (image.Point{}) {
			t.Fatalf("fallback taken for a 224×160 image: %+v", p)
		}
		if !r.In(image.Rect(0, 0, 224, 160)) || r.Empty() {
			t.Fatalf("crop %v outside the 224×160 image", r)
		}
		// area in [0.08, 1]·A and aspect in [3/4, 4/3] (or swapped), up
		// to the rounding of width and height
		area := float64(r.Dx()*r.Dy()) / (224 * 160)
		ar := float64(r.Dx()) / float64(r.Dy())
		if ar < 1 {
			ar = 1 / ar
		}
		if area < 0.07 || area > 1.0 || ar > 4.0/3*1.1 {
			t.Fatalf("crop %v: area fraction %.3f, aspect %.3f", r, area, ar)
		}
		if p.flip {
			flips++
		}
	}
	if flips < 200 || flips > 300 {
		t.Errorf("%d/500 flips, want ~250", flips)
	}
	// Test mode: the whole image, no flip, no randomness used.
	if p := tr.newPlan(224, 160, false, nil); p.crop != image.Rect(0, 0, 224, 160) || p.flip {
		t.Errorf("test plan %+v", p)
	}
	// No crop can fit when the crop must cover the whole area with aspect
	// 2 on a square image: Former-DFER falls back to Resize(112) (shorter
	// side) + a random 112×112 crop.
	tr.CropArea, tr.CropAspect = [2]float64{1, 1}, [2]float64{2, 2}
	p := tr.newPlan(200, 300, true, rng)
	if p.prescale != image.Pt(112, 168) || p.crop.Dx() != 112 || p.crop.Dy() != 112 || p.crop.Min.X != 0 || p.crop.Max.Y > 168 {
		t.Errorf("fallback plan %+v, want prescale 112×168 and a 112×112 crop inside it", p)
	}
	// The fallback output is the planned window of the prescaled image.
	src := rgbOf(pattern(200, 300))
	whole, err := imaging.NewResampler(200, 300, imaging.Spec{Crop: image.Rect(0, 0, 200, 300), W: 112, H: 168})
	if err != nil {
		t.Fatal(err)
	}
	preData := make([]float32, 3*112*168)
	if err := whole.Apply(src, imaging.NewLUT(nil, nil), preData, nil); err != nil {
		t.Fatal(err)
	}
	got, want := make([]float32, 3*112*112), make([]float32, 3*112*112)
	mustApply(t, &tr, src, p, got)
	for c := range 3 {
		for y := range 112 {
			for x := range 112 {
				want[(c*112+y)*112+x] = preData[(c*168+p.crop.Min.Y+y)*112+p.crop.Min.X+x]
			}
		}
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("fallback value %d = %v, want %v", i, got[i], want[i])
		}
	}
}
