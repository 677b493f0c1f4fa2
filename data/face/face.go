package face

import (
	"fmt"
	"image"

	"github.com/fer-research/fer/data/imaging"
)

// NumLandmarks is the number of points of dlib's landmark model.
const NumLandmarks = 68

// Point is a position in image pixels: (x, y) is the centre of pixel
// (x, y), as dlib reports its landmarks.
type Point struct{ X, Y float64 }

// Landmarks are the 68 iBUG points of one face.
type Landmarks [NumLandmarks]Point

func mean(pts []Point) Point {
	var p Point
	for _, q := range pts {
		p.X += q.X
		p.Y += q.Y
	}
	p.X /= float64(len(pts))
	p.Y /= float64(len(pts))
	return p
}

// EyeCentres are the mean of points 36–41 (the eye on the image's left)
// and of 42–47 (on the image's right).
func (l *Landmarks) EyeCentres() (left, right Point) {
	return mean(l[36:42]), mean(l[42:48])
}

// Five are the five points of the usual alignment templates (insightface,
// face.evoLVe, MTCNN order): eye centres (image left, image right), nose
// tip (30), mouth corners (48 image left, 54 image right).
func (l *Landmarks) Five() [5]Point {
	le, re := l.EyeCentres()
	return [5]Point{le, re, l[30], l[48], l[54]}
}

// Face is one detected (or hand-given) face.
type Face struct {
	// Box is the face rectangle in image pixels.
	Box image.Rectangle
	// Score is the detector's score (0 for hand-given boxes).
	Score float64
	// Filter is the HOG filter that fired (see Detection); -1 for
	// hand-given boxes.
	Filter int
	// Landmarks are the 68 points (zero when landmarks are off).
	Landmarks Landmarks
	// HasLandmarks says Landmarks were computed.
	HasLandmarks bool
}

// Options configure a Detector.
type Options struct {
	// Upsample doubles the image this many times before detection (each
	// time halves the smallest face found: dlib's HOG window is 80×80
	// pixels; 0 finds faces of ~80 px and larger, 1 of ~40 px). dlib's
	// Python examples use 1 for photos; it costs 4× per step.
	Upsample int
	// Threshold is added to the detector's decision threshold (dlib's
	// adjust_threshold): negative finds more faces, positive fewer.
	Threshold float64
	// MaxSide > 0 detects on a copy whose longer side is at most MaxSide
	// pixels (Pillow-exact bilinear downscale), scaling the boxes back;
	// landmarks are still placed on the full-resolution image. 0 detects
	// at full resolution.
	MaxSide int
	// MinSize drops faces whose box is smaller than this many pixels
	// (after scaling back).
	MinSize int
	// NoLandmarks skips the landmark model (box crops need no points).
	NoLandmarks bool
}

// Detector finds faces and their landmarks. It is not safe for
// concurrent use: make one per goroutine (the landmark model is shared).
type Detector struct {
	opts    Options
	hog     *hogDetector
	sp      *shapePredictor
	small   imaging.RGB
	scratch []byte
}

// NewDetector makes a detector; it loads the landmark model on first use
// in the process.
func NewDetector(o Options) (*Detector, error) {
	if o.Upsample < 0 || o.Upsample > 3 {
		return nil, fmt.Errorf("face detector: upsample = %d, want 0..3", o.Upsample)
	}
	if o.MaxSide < 0 || (o.MaxSide > 0 && o.MaxSide < 80) {
		return nil, fmt.Errorf("face detector: max side = %d, want 0 (full resolution) or >= 80", o.MaxSide)
	}
	hog, err := newHOGDetector()
	if err != nil {
		return nil, err
	}
	d := &Detector{opts: o, hog: hog}
	if !o.NoLandmarks {
		if d.sp, err = loadShapePredictor(shapePredictorPath()); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Options returns the detector's options.
func (d *Detector) Options() Options { return d.opts }

// Detect finds the faces in img, strongest first, with their landmarks.
func (d *Detector) Detect(img *imaging.RGB) ([]Face, error) {
	src, scale := img, 1.0
	if m := d.opts.MaxSide; m > 0 && max(img.W, img.H) > m {
		scale = float64(max(img.W, img.H)) / float64(m)
		w := max(1, int(float64(img.W)/scale+0.5))
		h := max(1, int(float64(img.H)/scale+0.5))
		r, err := imaging.NewResampler(img.W, img.H, imaging.Spec{Crop: img.Bounds(), W: w, H: h})
		if err != nil {
			return nil, err
		}
		if err := r.ApplyRGB(img, &d.small, &d.scratch); err != nil {
			return nil, err
		}
		src = &d.small
		scale = float64(img.W) / float64(w)
	}
	dets, err := d.hog.detect(src, d.opts.Upsample, d.opts.Threshold)
	if err != nil {
		return nil, err
	}
	faces := make([]Face, 0, len(dets))
	for _, det := range dets {
		b := det.Box
		if scale != 1 {
			b = image.Rect(int(float64(b.Min.X)*scale+0.5), int(float64(b.Min.Y)*scale+0.5),
				int(float64(b.Max.X)*scale+0.5), int(float64(b.Max.Y)*scale+0.5))
		}
		if min(b.Dx(), b.Dy()) < d.opts.MinSize {
			continue
		}
		f := Face{Box: b, Score: det.Score, Filter: det.Filter}
		if d.sp != nil {
			if f.Landmarks, err = d.sp.landmarks(img, b); err != nil {
				return nil, err
			}
			f.HasLandmarks = true
		}
		faces = append(faces, f)
	}
	return faces, nil
}

// Landmarks places the 68 points in a given box (a hand-given face).
func (d *Detector) Landmarks(img *imaging.RGB, box image.Rectangle) (Landmarks, error) {
	if d.sp == nil {
		return Landmarks{}, fmt.Errorf("face detector: landmarks are off")
	}
	if box.Empty() {
		return Landmarks{}, fmt.Errorf("face detector: empty box")
	}
	return d.sp.landmarks(img, box)
}

// Blank paints the parts of img inside the rectangles black (the trigger
// film of a reaction-mashup video, so that no face is found there).
func Blank(img *imaging.RGB, rects []image.Rectangle) {
	for _, r := range rects {
		r = r.Intersect(img.Bounds())
		for y := r.Min.Y; y < r.Max.Y; y++ {
			clear(img.Pix[3*(y*img.W+r.Min.X) : 3*(y*img.W+r.Max.X)])
		}
	}
}

// IoU is the intersection over union of two rectangles (0 if either is
// empty).
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	u := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i
	if u <= 0 {
		return 0
	}
	return i / u
}
