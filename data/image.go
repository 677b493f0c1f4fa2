package data

import (
	"fmt"
	"image"
	"math/rand/v2"
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
}

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
	img := it.Pixels
	if img == nil {
		var err error
		if img, err = decodeImageFile(it.Path); err != nil {
			return Sample{}, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	if !it.Box.Empty() {
		b := it.Box.Add(img.Bounds().Min).Intersect(img.Bounds())
		sub, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		})
		if b.Empty() || !ok {
			return Sample{}, fmt.Errorf("%s: face box %v of %s lies outside the %dx%d image (are these already-cropped faces? then leave the face box off)", d.Name, it.Box, it.ID, img.Bounds().Dx(), img.Bounds().Dy())
		}
		img = sub.SubImage(b)
	}
	out := make([]float32, 3*d.t.Size*d.t.Size)
	b := img.Bounds()
	d.t.apply(img, d.t.newPlan(b.Dx(), b.Dy(), train, rng), out)
	return Sample{ID: it.ID, Label: it.Label, Data: out, Shape: d.SampleShape()}, nil
}

// Preprocess applies the test-mode transform to one image: the model input
// for a single picture ([3, Size, Size] float32), e.g. for prediction.
func (d *ImageDataset) Preprocess(img image.Image) ([]float32, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("%s: empty image", d.Name)
	}
	out := make([]float32, 3*d.t.Size*d.t.Size)
	d.t.apply(img, d.t.newPlan(b.Dx(), b.Dy(), false, nil), out)
	return out, nil
}
