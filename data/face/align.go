package face

import (
	"fmt"
	"image"
	"math"
	"strconv"
	"strings"

	"github.com/fer-research/fer/data/imaging"
)

// Similarity is a 2-D similarity transform (rotation, uniform scale,
// translation) mapping p to (A·x − B·y + Tx, B·x + A·y + Ty).
type Similarity struct{ A, B, Tx, Ty float64 }

// Apply maps a point.
func (s Similarity) Apply(p Point) Point {
	return Point{s.A*p.X - s.B*p.Y + s.Tx, s.B*p.X + s.A*p.Y + s.Ty}
}

// Scale is the transform's scale factor.
func (s Similarity) Scale() float64 { return math.Hypot(s.A, s.B) }

// Inverse is the inverse transform.
func (s Similarity) Inverse() Similarity {
	d := s.A*s.A + s.B*s.B
	a, b := s.A/d, -s.B/d
	return Similarity{A: a, B: b, Tx: -(a*s.Tx - b*s.Ty), Ty: -(b*s.Tx + a*s.Ty)}
}

// EstimateSimilarity is the least-squares similarity taking src to dst
// (Umeyama 1991 without reflection; the same as skimage's
// SimilarityTransform.estimate, which insightface's norm_crop uses: for
// 2-D points the closed form below is that solution).
func EstimateSimilarity(src, dst []Point) (Similarity, error) {
	if len(src) != len(dst) || len(src) < 2 {
		return Similarity{}, fmt.Errorf("similarity: need two or more point pairs, got %d and %d", len(src), len(dst))
	}
	ms, md := mean(src), mean(dst)
	var sxx, a, b float64
	for i := range src {
		x, y := src[i].X-ms.X, src[i].Y-ms.Y
		u, v := dst[i].X-md.X, dst[i].Y-md.Y
		sxx += x*x + y*y
		a += x*u + y*v
		b += x*v - y*u
	}
	if sxx == 0 {
		return Similarity{}, fmt.Errorf("similarity: the source points coincide")
	}
	s := Similarity{A: a / sxx, B: b / sxx}
	s.Tx = md.X - (s.A*ms.X - s.B*ms.Y)
	s.Ty = md.Y - (s.B*ms.X + s.A*ms.Y)
	return s, nil
}

// ArcFace112 is the five-point template of insightface's arcface_dst and
// face.evoLVe's REFERENCE_FACIAL_POINTS for 112×112 crops (the input of
// IR-50 and the other MS-Celeb-1M face-recognition backbones), in the
// cv2.warpAffine convention (pixel centres at integers, like Point).
var ArcFace112 = [5]Point{
	{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041},
}

// CropStyle says how a face becomes a crop.
//
// Aligned styles (Template set) warp the face so that its five points
// (Landmarks.Five) land on Template in a W×H crop: the similarity is the
// least-squares fit, and the crop is Pillow's
// img.transform(size, AFFINE, inverse, BILINEAR), followed, when the
// face is shrunk, by img.resize((W, H), BILINEAR) from a warp at the
// source's scale (so large faces are antialiased as a resize would).
//
// Box styles (Template nil) cut a rectangle around the detector's box:
// centred on it, Scale times its width wide and ScaleY times its height
// high (ScaleY 0: = Scale), made square first when Square is set; the
// crop is Pillow's img.crop(box) (black outside the image), resized to
// W×H when W > 0 (else kept at the source's resolution).
type CropStyle struct {
	Name     string
	W, H     int
	Template []Point
	Scale    float64
	ScaleY   float64
	Square   bool
}

// Crop styles of the data sets fer reads.
var (
	// StyleArcFace: IR-50's 112×112 aligned input (QCS, MT-ArcRes).
	StyleArcFace = CropStyle{Name: "arcface", W: 112, H: 112, Template: ArcFace112[:]}
	// StyleRAFDB: RAF-DB's aligned 100×100 faces. RAF-DB's own template
	// was not published; this is the ArcFace template scaled to 100×100
	// (the eyes and mouth at the same relative positions).
	StyleRAFDB = CropStyle{Name: "rafdb", W: 100, H: 100, Template: scaled(ArcFace112[:], 100.0/112)}
	// StyleBox: AffectNet-style box crop, the square around the
	// detector's box enlarged 1.25× (dlib's box is tight, eyebrows to
	// chin; AffectNet's boxes include the forehead and the chin),
	// at the source's resolution (the model's transform resizes it, as
	// the AffectNet reader does with its boxes).
	StyleBox = CropStyle{Name: "box", Scale: 1.25, Square: true}
)

func scaled(pts []Point, s float64) []Point {
	out := make([]Point, len(pts))
	for i, p := range pts {
		// scale about the pixel-edge origin: centres at (i+0.5)·s − 0.5
		out[i] = Point{(p.X+0.5)*s - 0.5, (p.Y+0.5)*s - 0.5}
	}
	return out
}

// ParseCropStyle reads a style name: arcface, rafdb, box, or box:S (a box
// crop scaled S×), box:SxSY (S wide, SY high, not squared), with an
// optional @N (resize box crops to N×N).
func ParseCropStyle(s string) (CropStyle, error) {
	name, size, hasSize := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "@")
	var st CropStyle
	switch {
	case name == "arcface" || name == "ir50":
		st = StyleArcFace
	case name == "rafdb":
		st = StyleRAFDB
	case name == "box":
		st = StyleBox
	case strings.HasPrefix(name, "box:"):
		st = CropStyle{Name: s, Square: true}
		sx, sy, two := strings.Cut(name[4:], "x")
		var err1, err2 error
		st.Scale, err1 = strconv.ParseFloat(sx, 64)
		if two {
			st.ScaleY, err2 = strconv.ParseFloat(sy, 64)
			st.Square = false
		}
		if err1 != nil || err2 != nil || !(st.Scale > 0) || st.ScaleY < 0 {
			return CropStyle{}, fmt.Errorf("crop style %q: want box:S or box:SxSY with positive numbers", s)
		}
	default:
		return CropStyle{}, fmt.Errorf("crop style %q: want arcface, rafdb, box, box:S or box:SxSY (optionally @SIZE)", s)
	}
	if hasSize {
		n, err := strconv.Atoi(size)
		if err != nil || n < 8 || n > 4096 {
			return CropStyle{}, fmt.Errorf("crop style %q: size after @ must be 8..4096", s)
		}
		if st.Template != nil {
			f := float64(n) / float64(st.W)
			st.Template = scaled(st.Template, f)
		}
		st.W, st.H = n, n
	}
	return st, nil
}

// Transform is the similarity that takes the face's five points to the
// style's template (aligned styles only).
func (s CropStyle) Transform(f *Face) (Similarity, error) {
	if s.Template == nil {
		return Similarity{}, fmt.Errorf("crop style %s is a box crop", s.Name)
	}
	if !f.HasLandmarks {
		return Similarity{}, fmt.Errorf("crop style %s needs landmarks", s.Name)
	}
	five := f.Landmarks.Five()
	return EstimateSimilarity(five[:], s.Template)
}

// BoxRect is the source rectangle of a box crop of f.
func (s CropStyle) BoxRect(box image.Rectangle) image.Rectangle {
	sx, sy := s.Scale, s.ScaleY
	if sx == 0 {
		sx = 1
	}
	if sy == 0 {
		sy = sx
	}
	w, h := float64(box.Dx()), float64(box.Dy())
	if s.Square {
		w = max(w, h)
		h = w
	}
	w, h = w*sx, h*sy
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	x0, y0 := int(math.Round(cx-w/2)), int(math.Round(cy-h/2))
	return image.Rect(x0, y0, x0+max(1, int(math.Round(w))), y0+max(1, int(math.Round(h))))
}

// Cropper makes crops; it keeps scratch buffers, so use one per
// goroutine.
type Cropper struct {
	Style   CropStyle
	warp    imaging.RGB
	scratch []byte
}

// Crop cuts face f out of img into dst.
func (c *Cropper) Crop(img *imaging.RGB, f *Face, dst *imaging.RGB) error {
	s := c.Style
	if s.Template == nil {
		return c.box(img, s.BoxRect(f.Box), dst)
	}
	m, err := s.Transform(f)
	if err != nil {
		return err
	}
	return c.warpTo(img, m, s.W, s.H, dst)
}

// box is PIL's img.crop(r) (zero outside the image), resized to the
// style's size when it has one.
func (c *Cropper) box(img *imaging.RGB, r image.Rectangle, dst *imaging.RGB) error {
	if r.Empty() {
		return fmt.Errorf("face crop: empty box")
	}
	in := r.Intersect(img.Bounds())
	if c.Style.W > 0 && in == r {
		rs, err := imaging.NewResampler(img.W, img.H, imaging.Spec{Crop: r, W: c.Style.W, H: c.Style.H})
		if err != nil {
			return err
		}
		return rs.ApplyRGB(img, dst, &c.scratch)
	}
	out := dst
	if c.Style.W > 0 {
		out = &c.warp
	}
	w, h := r.Dx(), r.Dy()
	n := 3 * w * h
	if cap(out.Pix) < n {
		out.Pix = make([]byte, n)
	}
	out.Pix, out.W, out.H = out.Pix[:n], w, h
	if in != r {
		clear(out.Pix)
	}
	for y := in.Min.Y; y < in.Max.Y; y++ {
		copy(out.Pix[3*((y-r.Min.Y)*w+in.Min.X-r.Min.X):], img.Pix[3*(y*img.W+in.Min.X):3*(y*img.W+in.Max.X)])
	}
	if c.Style.W > 0 {
		rs, err := imaging.NewResampler(w, h, imaging.Spec{Crop: out.Bounds(), W: c.Style.W, H: c.Style.H})
		if err != nil {
			return err
		}
		return rs.ApplyRGB(out, dst, &c.scratch)
	}
	return nil
}

// warpTo renders the w×h crop whose pixel centres (x, y) come from
// m⁻¹(x, y) of img.
func (c *Cropper) warpTo(img *imaging.RGB, m Similarity, w, h int, dst *imaging.RGB) error {
	s := m.Scale()
	if s >= 1 { // no shrink: warp straight to w×h
		return imaging.Affine(img, pillowCoeffs(m, 1), w, h, dst)
	}
	// shrink: warp at the source's scale (k times larger), then resize
	k := 1 / s
	wi, hi := int(math.Round(float64(w)*k)), int(math.Round(float64(h)*k))
	fx, fy := float64(wi)/float64(w), float64(hi)/float64(h)
	if err := imaging.Affine(img, pillowCoeffsXY(m, fx, fy), wi, hi, &c.warp); err != nil {
		return err
	}
	rs, err := imaging.NewResampler(wi, hi, imaging.Spec{Crop: c.warp.Bounds(), W: w, H: h})
	if err != nil {
		return err
	}
	return rs.ApplyRGB(&c.warp, dst, &c.scratch)
}

func pillowCoeffs(m Similarity, f float64) [6]float64 { return pillowCoeffsXY(m, f, f) }

// pillowCoeffsXY are Pillow's affine coefficients for rendering m into a
// crop fx × fy times larger than m's target: an output pixel edge point
// (X, Y) is the crop centre point ((X)/fx − 0.5, (Y)/fy − 0.5), which m⁻¹
// takes to a source centre point, + 0.5 for the source's edge
// coordinates.
func pillowCoeffsXY(m Similarity, fx, fy float64) [6]float64 {
	inv := m.Inverse()
	// src_x = A·u − B·v + Tx + 0.5, src_y = B·u + A·v + Ty + 0.5,
	// u = X/fx − 0.5, v = Y/fy − 0.5
	return [6]float64{
		inv.A / fx, -inv.B / fy, inv.Tx - 0.5*inv.A + 0.5*inv.B + 0.5,
		inv.B / fx, inv.A / fy, inv.Ty - 0.5*inv.B - 0.5*inv.A + 0.5,
	}
}
