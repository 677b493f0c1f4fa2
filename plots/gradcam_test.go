package plots

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"testing"
)

// testFace is a w×h grey image with a darker disc, standing in for an input.
func testFace(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x-w/2)/float64(w), float64(y-h/2)/float64(h)
			v := uint8(200)
			if dx*dx+dy*dy < 0.1 {
				v = 120
			}
			img.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	return img
}

// blobCAM is a Gaussian bump centred on pixel (cx, cy), normalised to peak 1.
func blobCAM(w, h int, cx, cy, s float64) *CAM {
	m := &CAM{W: w, H: h, V: make([]float64, w*h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
			m.V[y*w+x] = math.Exp(-d2 / (2 * s * s))
		}
	}
	return m
}

func TestCAMResizeBilinear(t *testing.T) {
	// 2×1 [0, 1] upsampled to 4×1 with pixel centres aligned (PyTorch's
	// align_corners=False): source coordinate of x' is (x'+0.5)/2 − 0.5 →
	// −0.25, 0.25, 0.75, 1.25 → clamped values 0, 0.25, 0.75, 1.
	m := &CAM{W: 2, H: 1, V: []float64{0, 1}}
	r, err := m.Resize(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 0.25, 0.75, 1}
	for i, v := range want {
		if math.Abs(r.V[i]-v) > 2e-5 {
			t.Errorf("resized[%d] = %v, want %v (all %v)", i, r.V[i], v, r.V)
		}
	}
	if _, err := (&CAM{W: 2, H: 2, V: []float64{0, 1, math.NaN(), 0}}).Resize(4, 4); err == nil {
		t.Error("NaN CAM accepted")
	}
	if _, err := (&CAM{W: 2, H: 2, V: []float64{0}}).Resize(4, 4); err == nil {
		t.Error("CAM with too few values accepted")
	}
}

func TestOverlayColours(t *testing.T) {
	img := testFace(64, 48)
	// Hot spot at (48, 12): red there, blue in the opposite corner.
	o, err := Overlay(img, blobCAM(16, 12, 12, 3, 1.5), 0.6)
	if err != nil {
		t.Fatal(err)
	}
	if b := o.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Fatalf("overlay is %v, want the image's 64×48", b)
	}
	hot := o.RGBAAt(49, 13)
	cold := o.RGBAAt(4, 44)
	if !(hot.R > hot.B+60 && hot.R > hot.G) {
		t.Errorf("hot spot colour %v is not red", hot)
	}
	if !(cold.B > cold.R+40) {
		t.Errorf("cold corner colour %v is not blue", cold)
	}
	// Opacity 0.6·(0.35+0.65·0) = 0.21 of pure blue (0,0,255) over grey 200.
	want := uint8(math.Round(0.79*200 + 0.21*255))
	if d := int(cold.B) - int(want); d < -2 || d > 2 {
		t.Errorf("cold corner blue = %d, want %d", cold.B, want)
	}
	if _, err := Overlay(nil, blobCAM(4, 4, 1, 1, 1), 0); err == nil {
		t.Error("nil image accepted")
	}
}

func TestGradCAMFigure(t *testing.T) {
	img := testFace(48, 48)
	two := []CAMPanel{
		{Image: img, Caption: "input"},
		{Image: img, CAM: blobCAM(6, 6, 4, 1, 1), Caption: "Grad-CAM: happy (p = 0.93)"},
	}
	w, h := GradCAMSize(2, 0, 1, 2)
	checkBoth(t, "gradcam", w, h, func(p string) error {
		return GradCAMFigure(p, "Grad-CAM, smallcnn stage3\nface.png", two, 0, 0)
	})

	// A 12-frame clip: 8 per row, two rows, moving hot spot.
	var frames []CAMPanel
	for k := 0; k < 12; k++ {
		frames = append(frames, CAMPanel{Image: img, CAM: blobCAM(7, 7, float64(k%7), 3, 1), Caption: fmt.Sprintf("frame %d", k+1)})
	}
	w, h = GradCAMSize(12, 0, 1, 1)
	checkBoth(t, "gradcam_clip", w, h, func(p string) error {
		return GradCAMFigure(p, "Grad-CAM of a clip", frames, 0, 0.5)
	})
	if w2, _ := GradCAMSize(12, 0, 1, 1); w2 <= w/2 {
		t.Errorf("clip figure width %v", w2)
	}
	if err := GradCAMFigure(figPath(t, "x.png"), "", nil, 0, 0); err == nil {
		t.Error("no panels accepted")
	}
	if err := GradCAMFigure(figPath(t, "x.png"), "", []CAMPanel{{Caption: "no image"}}, 0, 0); err == nil {
		t.Error("panel without image accepted")
	}
}

func TestCAMLayout(t *testing.T) {
	for _, c := range []struct{ n, cols, wc, wr int }{
		{1, 0, 1, 1}, {2, 0, 2, 1}, {8, 0, 8, 1}, {16, 0, 8, 2}, {17, 0, 8, 3}, {16, 4, 4, 4}, {3, 10, 3, 1},
	} {
		if gc, gr := camLayout(c.n, c.cols); gc != c.wc || gr != c.wr {
			t.Errorf("camLayout(%d, %d) = %d, %d; want %d, %d", c.n, c.cols, gc, gr, c.wc, c.wr)
		}
	}
}
