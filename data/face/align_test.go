package face

import (
	"bytes"
	"encoding/json"
	"image"
	"math"
	"os/exec"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

// TestEstimateSimilarity recovers a known transform from exact points and
// inverts it.
func TestEstimateSimilarity(t *testing.T) {
	m := Similarity{A: 0.8 * math.Cos(0.3), B: 0.8 * math.Sin(0.3), Tx: -12.5, Ty: 40}
	src := []Point{{10, 20}, {80, 25}, {45, 60}, {20, 90}, {75, 95}}
	dst := make([]Point, len(src))
	for i, p := range src {
		dst[i] = m.Apply(p)
	}
	got, err := EstimateSimilarity(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []float64{got.A - m.A, got.B - m.B, got.Tx - m.Tx, got.Ty - m.Ty} {
		if math.Abs(d) > 1e-12 {
			t.Fatalf("estimated %+v, want %+v", got, m)
		}
	}
	if math.Abs(got.Scale()-0.8) > 1e-12 {
		t.Fatalf("scale %v", got.Scale())
	}
	back := m.Inverse().Apply(m.Apply(Point{3, -7}))
	if math.Abs(back.X-3) > 1e-12 || math.Abs(back.Y+7) > 1e-12 {
		t.Fatalf("inverse: %v", back)
	}
	if _, err := EstimateSimilarity(src[:1], dst[:1]); err == nil {
		t.Fatal("one point accepted")
	}
	if _, err := EstimateSimilarity([]Point{{1, 1}, {1, 1}}, dst[:2]); err == nil {
		t.Fatal("coincident points accepted")
	}
}

// dotCentroid is the brightness-weighted centre of an image's pixels
// (pixel centres at integers).
func dotCentroid(m *imaging.RGB) Point {
	var sx, sy, sw float64
	for y := range m.H {
		for x := range m.W {
			w := float64(m.Pix[3*(y*m.W+x)])
			sx += w * float64(x)
			sy += w * float64(y)
			sw += w
		}
	}
	return Point{sx / sw, sy / sw}
}

// TestCropGeometry: a bright dot at a source point lands at the template
// point the similarity maps it to, for an enlarging warp and for a
// shrinking one (warp at source scale + resize).
func TestCropGeometry(t *testing.T) {
	for _, zoom := range []float64{1.7, 0.35} {
		src := &imaging.RGB{W: 400, H: 300, Pix: make([]byte, 3*400*300)}
		p := Point{201, 133}
		r := int(math.Round(2 / zoom)) // a dot a few output pixels wide
		for y := int(p.Y) - r; y <= int(p.Y)+r; y++ {
			for x := int(p.X) - r; x <= int(p.X)+r; x++ {
				i := 3 * (y*src.W + x)
				src.Pix[i], src.Pix[i+1], src.Pix[i+2] = 255, 255, 255
			}
		}
		m := Similarity{A: zoom * math.Cos(0.4), B: zoom * math.Sin(0.4)}
		m.Tx, m.Ty = 40-m.Apply(p).X, 30-m.Apply(p).Y // p ↦ (40, 30)
		c := &Cropper{}
		var out imaging.RGB
		if err := c.warpTo(src, m, 90, 70, &out); err != nil {
			t.Fatal(err)
		}
		got := dotCentroid(&out)
		if math.Hypot(got.X-40, got.Y-30) > 0.15 {
			t.Fatalf("zoom %v: dot at %.3f,%.3f, want 40,30", zoom, got.X, got.Y)
		}
	}
}

// TestCropMatchesPillow: box crops (inside and across the image border)
// and aligned crops are Pillow's crop / transform + resize byte for byte.
func TestCropMatchesPillow(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import PIL").Run(); err != nil {
		t.Skipf("Pillow reference unavailable: %s cannot import PIL (%v)", py, err)
	}
	path := astronaut(t)
	img := decode(t, path)
	f := Face{Box: image.Rect(175, 76, 266, 167)}
	// hand-placed landmarks whose five points are a rotated face
	m := Similarity{A: 0.9 * math.Cos(-0.2), B: 0.9 * math.Sin(-0.2), Tx: 150, Ty: 60}
	for i := range f.Landmarks {
		f.Landmarks[i] = m.Apply(Point{float64(i % 9 * 10), float64(i / 9 * 12)})
	}
	// Five() averages 36–41 and 42–47: put the eyes, nose, mouth explicitly
	put := func(idx []int, p Point) {
		for _, i := range idx {
			f.Landmarks[i] = m.Apply(p)
		}
	}
	put([]int{36, 37, 38, 39, 40, 41}, Point{30, 40})
	put([]int{42, 43, 44, 45, 46, 47}, Point{70, 40})
	put([]int{30}, Point{50, 62})
	put([]int{48}, Point{34, 85})
	put([]int{54}, Point{66, 85})
	f.HasLandmarks = true

	type pyCase struct {
		Box    *[4]int     `json:"box,omitempty"`
		Size   *[2]int     `json:"size,omitempty"`
		Data   *[6]float64 `json:"data,omitempty"`
		Resize *[2]int     `json:"resize"`
	}
	var cases []pyCase
	var styles []CropStyle
	for _, s := range []string{"box", "box:1.9@128", "box:3x1.5", "box@100"} {
		st, err := ParseCropStyle(s)
		if err != nil {
			t.Fatal(err)
		}
		ff := f
		if s == "box:3x1.5" {
			ff.Box = image.Rect(-20, 400, 60, 490) // across the border
		}
		r := st.BoxRect(ff.Box)
		c := pyCase{Box: &[4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}}
		if st.W > 0 {
			c.Resize = &[2]int{st.W, st.H}
		}
		cases, styles = append(cases, c), append(styles, st)
		if s == "box:3x1.5" {
			styles[len(styles)-1].Name = "border" // marker for the face below
		}
	}
	for _, st := range []CropStyle{StyleArcFace, StyleRAFDB, mustStyle(t, "arcface@224")} {
		tr, err := st.Transform(&f)
		if err != nil {
			t.Fatal(err)
		}
		c := pyCase{}
		if s := tr.Scale(); s >= 1 {
			d := pillowCoeffs(tr, 1)
			c.Size, c.Data = &[2]int{st.W, st.H}, &d
		} else {
			wi, hi := int(math.Round(float64(st.W)/s)), int(math.Round(float64(st.H)/s))
			d := pillowCoeffsXY(tr, float64(wi)/float64(st.W), float64(hi)/float64(st.H))
			c.Size, c.Data, c.Resize = &[2]int{wi, hi}, &d, &[2]int{st.W, st.H}
		}
		cases, styles = append(cases, c), append(styles, st)
	}
	req, _ := json.Marshal(map[string]any{"image": path, "cases": cases})
	cmd := exec.Command(py, "testdata/crop_ref.py")
	cmd.Stdin = bytes.NewReader(req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crop_ref.py: %v", err)
	}
	for i, st := range styles {
		ff := f
		if st.Name == "border" {
			ff.Box = image.Rect(-20, 400, 60, 490)
		}
		c := &Cropper{Style: st}
		var got imaging.RGB
		if err := c.Crop(img, &ff, &got); err != nil {
			t.Fatal(err)
		}
		n := 3 * got.W * got.H
		if len(out) < n || !bytes.Equal(got.Pix, out[:n]) {
			t.Fatalf("case %d (%s, %dx%d): differs from Pillow", i, st.Name, got.W, got.H)
		}
		out = out[n:]
	}
	if len(out) != 0 {
		t.Fatalf("%d bytes of the reference left over", len(out))
	}
}

func mustStyle(t *testing.T, s string) CropStyle {
	st, err := ParseCropStyle(s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestParseCropStyle: names, scales and sizes; bad ones are errors.
func TestParseCropStyle(t *testing.T) {
	for s, want := range map[string][3]float64{"box": {1.25, 0, 0}, "box:1.5@64": {1.5, 0, 64}, "rafdb": {0, 0, 100}, "arcface@224": {0, 0, 224}, "box:1.31x1": {1.31, 1, 0}} {
		st := mustStyle(t, s)
		if st.Scale != want[0] || st.ScaleY != want[1] || float64(st.W) != want[2] {
			t.Fatalf("%s: %+v", s, st)
		}
	}
	a := mustStyle(t, "arcface@224")
	if math.Abs(a.Template[0].X-((38.2946+0.5)*2-0.5)) > 1e-9 {
		t.Fatalf("scaled template %v", a.Template[0])
	}
	for _, s := range []string{"", "boxy", "box:0", "box:-1", "box:ax2", "arcface@3", "rafdb@x"} {
		if _, err := ParseCropStyle(s); err == nil {
			t.Fatalf("%q accepted", s)
		}
	}
}

// TestAlignRotatedPhoto: the astronaut photo and a copy rotated by 20°
// about her face give the same aligned 112×112 crop: the five points land
// within 2 px of each other and the crops differ by little (the
// remaining difference is the rotated copy's resampling blur and dlib's
// integer landmarks).
func TestAlignRotatedPhoto(t *testing.T) {
	img := decode(t, astronaut(t))
	rot := Similarity{A: math.Cos(20 * math.Pi / 180), B: math.Sin(20 * math.Pi / 180)}
	c := Point{220, 122}
	q := rot.Apply(c)
	rot.Tx, rot.Ty = c.X-q.X, c.Y-q.Y // rotation about c
	var turned imaging.RGB
	if err := imaging.Affine(img, pillowCoeffs(rot, 1), img.W, img.H, &turned); err != nil {
		t.Fatal(err)
	}
	d := detector(t, Options{})
	crop := func(m *imaging.RGB) (*imaging.RGB, [5]Point, Similarity) {
		faces, err := d.Detect(m)
		if err != nil || len(faces) == 0 {
			t.Fatalf("%d faces, %v", len(faces), err)
		}
		cr := &Cropper{Style: StyleArcFace}
		var out imaging.RGB
		if err := cr.Crop(m, &faces[0], &out); err != nil {
			t.Fatal(err)
		}
		tr, _ := StyleArcFace.Transform(&faces[0])
		five := faces[0].Landmarks.Five()
		for i := range five {
			five[i] = tr.Apply(five[i])
		}
		return &out, five, tr
	}
	a, fa, ta := crop(img)
	b, fb, tb := crop(&turned)
	turn := (math.Atan2(ta.B, ta.A) - math.Atan2(tb.B, tb.A)) * 180 / math.Pi
	if math.Abs(turn-20) > 3 {
		t.Fatalf("alignment undid a rotation of %.1f°, want 20°", turn)
	}
	for i := range fa {
		if e := math.Hypot(fa[i].X-fb[i].X, fa[i].Y-fb[i].Y); e > 2 {
			t.Fatalf("point %d at %v upright, %v rotated (%.2f px apart)", i, fa[i], fb[i], e)
		}
	}
	var sad float64
	for i := range a.Pix {
		sad += math.Abs(float64(a.Pix[i]) - float64(b.Pix[i]))
	}
	mad := sad / float64(len(a.Pix))
	t.Logf("rotated copy: turn %.2f°, mean |Δ| %.2f of 255 per channel", turn, mad)
	if mad > 12 {
		t.Fatalf("crops differ by %.2f of 255 per channel on average", mad)
	}
}
