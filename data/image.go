package data

import (
	"fmt"
	"image"
	"math/rand/v2"

	"github.com/fer-research/fer/data/imaging"
)

// ImageItem is one still-image sample.
type ImageItem struct {
	// ID names the sample (file name, or "fer2013 row N").
	ID string
	// Path is the image file; empty when Pixels holds the image.
	Path string
	// Pixels is an in-memory image (FERPlus's 48×48 grayscale rows).
	Pixels image.Image
	// Box, when not empty, is the face region cut out before the
	// transform (AffectNet's face_x/face_y/face_width/face_height),
	// clipped to the image.
	Box image.Rectangle
	// Label is the class index.
	Label int
}

// ImageDataset is a labelled set of still images. Images are decoded as
// RGB (grayscale is replicated to 3 channels) and transformed with
// Transform: training = random resized crop + horizontal flip, test =
// resize. It implements Dataset and Described.
type ImageDataset struct {
	// Name says what was opened, e.g. "rafdb train".
	Name string
	// Items are the samples, in list-file order.
	Items   []ImageItem
	classes []string
	t       Transform
	drops   *Drops
}

// Drops implements DropReporter: the listed samples the reader left out
// (never nil).
func (d *ImageDataset) Drops() *Drops {
	if d.drops == nil {
		d.drops = &Drops{}
	}
	return d.drops
}

// SetDrops attaches the drops a reader recorded while building the item
// list (readers outside this package call it after NewImageDataset).
func (d *ImageDataset) SetDrops(dr *Drops) { d.drops = dr }

// NewImageDataset checks labels and the transform and builds the set.
func NewImageDataset(name string, items []ImageItem, classes []string, t Transform) (*ImageDataset, error) {
	t, err := t.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	for _, it := range items {
		if it.Label < 0 || it.Label >= len(classes) {
			return nil, fmt.Errorf("%s: image %s has label %d, want 0..%d", name, it.ID, it.Label, len(classes)-1)
		}
		if it.Path == "" && it.Pixels == nil {
			return nil, fmt.Errorf("%s: image %s has neither a file nor pixels", name, it.ID)
		}
	}
	return &ImageDataset{Name: name, Items: items, classes: classes, t: t}, nil
}

// Len implements Dataset.
func (d *ImageDataset) Len() int { return len(d.Items) }

// Label implements Dataset.
func (d *ImageDataset) Label(i int) int { return d.Items[i].Label }

// ID implements Described.
func (d *ImageDataset) ID(i int) string { return d.Items[i].ID }

// Classes implements Described.
func (d *ImageDataset) Classes() []string { return d.classes }

// SampleShape implements Described: [3, Size, Size].
func (d *ImageDataset) SampleShape() []int { return []int{3, d.t.Size, d.t.Size} }

// Transform returns the effective transform (defaults filled in).
func (d *ImageDataset) Transform() Transform { return d.t }

// Load implements Dataset.
func (d *ImageDataset) Load(i int, rng *rand.Rand, train bool) (Sample, error) {
	if i < 0 || i >= len(d.Items) {
		return Sample{}, fmt.Errorf("%s: sample %d out of range [0, %d)", d.Name, i, len(d.Items))
	}
	if train && rng == nil {
		return Sample{}, fmt.Errorf("%s: training-mode Load needs a random generator", d.Name)
	}
	it := d.Items[i]
	buf := getBuffers()
	defer putBuffers(buf)
	src := &buf.rgb
	if it.Pixels != nil {
		imaging.FromImage(it.Pixels, src)
	} else if err := decodeImageFile(it.Path, src); err != nil {
		return Sample{}, fmt.Errorf("%s: %w", d.Name, err)
	}
	region := image.Rect(0, 0, src.W, src.H)
	if !it.Box.Empty() {
		b := it.Box.Intersect(region)
		if b.Empty() {
			return Sample{}, fmt.Errorf("%s: face box %v of %s lies outside the %dx%d image (are these already-cropped faces? then leave the face box off)", d.Name, it.Box, it.ID, src.W, src.H)
		}
		region = b
	}
	out := make([]float32, 3*d.t.Size*d.t.Size)
	if err := d.t.apply(src, region, d.t.newPlan(region.Dx(), region.Dy(), train, rng), out, &buf.scratch); err != nil {
		return Sample{}, fmt.Errorf("%s: %s: %w", d.Name, it.ID, err)
	}
	return Sample{ID: it.ID, Label: it.Label, Data: out, Shape: d.SampleShape()}, nil
}

// Preprocess applies the test-mode transform to one image: the model input
// for a single picture ([3, Size, Size] float32), e.g. for prediction.
func (d *ImageDataset) Preprocess(img image.Image) ([]float32, error) {
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("%s: empty image", d.Name)
	}
	var src imaging.RGB
	imaging.FromImage(img, &src)
	region := image.Rect(0, 0, src.W, src.H)
	out := make([]float32, 3*d.t.Size*d.t.Size)
	if err := d.t.apply(&src, region, d.t.newPlan(src.W, src.H, false, nil), out, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return out, nil
}
