package data

import (
	"fmt"
	"image"
	"math/rand/v2"
	"sync"

	"github.com/fer-research/fer/data/imaging"
)

// StaticSet is a labelled set of still images with torchvision-style
// pipelines: Train for training-mode loads, Test for evaluation (and for
// single pictures, ImageInput). It implements Dataset and Described.
type StaticSet struct {
	// Name says what was opened, e.g. "rafdb train".
	Name  string
	Items []ImageItem
	Train *Pipeline
	Test  *Pipeline
	// Index groups the items by class (for the samplers).
	Index   *ClassIndex
	classes []string
	shape   []int
}

// NewStaticSet checks the items and pipelines and works out the sample
// shape: the pipelines' output size when it is fixed, else the test
// pipeline's output for the first image (all images must then give the
// same size, or batching fails naming the image). Train and Test must
// give the same shape: the model sees both.
func NewStaticSet(name string, items []ImageItem, classes []string, train, test *Pipeline) (*StaticSet, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	if test.Random() {
		return nil, fmt.Errorf("%s: test_transforms has random steps (%v): evaluation must be deterministic; put random transforms in train_transforms", name, test.Steps())
	}
	labels := make([]int, len(items))
	for i, it := range items {
		if it.Label < 0 || it.Label >= len(classes) {
			return nil, fmt.Errorf("%s: image %s has label %d, want 0..%d", name, it.ID, it.Label, len(classes)-1)
		}
		if it.Path == "" && it.Pixels == nil {
			return nil, fmt.Errorf("%s: image %s has neither a file nor pixels", name, it.ID)
		}
		labels[i] = it.Label
	}
	s := &StaticSet{Name: name, Items: items, Train: train, Test: test, classes: classes,
		Index: NewClassIndex(labels, len(classes))}
	if train.Channels() != test.Channels() {
		return nil, fmt.Errorf("%s: train_transforms give %d channels, test_transforms %d: the model sees both", name, train.Channels(), test.Channels())
	}
	tw, th, tok := train.FixedSize()
	w, h, ok := test.FixedSize()
	if !ok || !tok {
		img, region, err := s.decode(0, &imaging.RGB{})
		if err != nil {
			return nil, err
		}
		if !ok {
			if w, h, err = test.OutSize(region.Dx(), region.Dy()); err != nil {
				return nil, fmt.Errorf("%s: test_transforms on %s (%dx%d): %w", name, items[0].ID, img.W, img.H, err)
			}
		}
		if !tok {
			if tw, th, err = train.OutSize(region.Dx(), region.Dy()); err != nil {
				return nil, fmt.Errorf("%s: train_transforms on %s (%dx%d): %w", name, items[0].ID, img.W, img.H, err)
			}
		}
	}
	if tw != w || th != h {
		return nil, fmt.Errorf("%s: train_transforms give %dx%d images, test_transforms %dx%d: the model sees both (end both with the same resize or crop)", name, tw, th, w, h)
	}
	s.shape = []int{test.Channels(), h, w}
	return s, nil
}

// Len implements Dataset.
func (s *StaticSet) Len() int { return len(s.Items) }

// Label implements Dataset.
func (s *StaticSet) Label(i int) int { return s.Items[i].Label }

// ID implements Described.
func (s *StaticSet) ID(i int) string { return s.Items[i].ID }

// Classes implements Described.
func (s *StaticSet) Classes() []string { return s.classes }

// SampleShape implements Described: [C, H, W].
func (s *StaticSet) SampleShape() []int { return s.shape }

var rgbPool = sync.Pool{New: func() any { return new(imaging.RGB) }}

// decode reads item i into dst and returns the region the pipeline
// starts from (the face box, clipped, or the whole image).
func (s *StaticSet) decode(i int, dst *imaging.RGB) (*imaging.RGB, image.Rectangle, error) {
	it := s.Items[i]
	if it.Pixels != nil {
		imaging.FromImage(it.Pixels, dst)
	} else if err := decodeImageFile(it.Path, dst); err != nil {
		return nil, image.Rectangle{}, fmt.Errorf("%s: %w", s.Name, err)
	}
	region := image.Rect(0, 0, dst.W, dst.H)
	if !it.Box.Empty() {
		b := it.Box.Intersect(region)
		if b.Empty() {
			return nil, image.Rectangle{}, fmt.Errorf("%s: face box %v of %s lies outside the %dx%d image (are these already-cropped faces? then leave face_box off)", s.Name, it.Box, it.ID, dst.W, dst.H)
		}
		region = b
	}
	return dst, region, nil
}

// Load implements Dataset: image i through the Train pipeline (train) or
// the Test pipeline.
func (s *StaticSet) Load(i int, rng *rand.Rand, train bool) (Sample, error) {
	if i < 0 || i >= len(s.Items) {
		return Sample{}, fmt.Errorf("%s: sample %d out of range [0, %d)", s.Name, i, len(s.Items))
	}
	p := s.Test
	if train {
		p = s.Train
	}
	buf := rgbPool.Get().(*imaging.RGB)
	defer rgbPool.Put(buf)
	img, region, err := s.decode(i, buf)
	if err != nil {
		return Sample{}, err
	}
	out, shape, err := p.Apply(img, region, rng, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %s: %w", s.Name, s.Items[i].ID, err)
	}
	if shape[0] != s.shape[0] || shape[1] != s.shape[1] || shape[2] != s.shape[2] {
		return Sample{}, fmt.Errorf("%s: %s gives a %v tensor, the data set's samples are %v (its size differs from the first image's: resize to a fixed [height, width] in the transforms)", s.Name, s.Items[i].ID, shape, s.shape)
	}
	return Sample{ID: s.Items[i].ID, Label: s.Items[i].Label, Data: out, Shape: s.shape}, nil
}

// Preprocess applies the Test pipeline to one picture: the model input
// for predicting it, exactly as evaluation prepares a data-set image.
func (s *StaticSet) Preprocess(img image.Image) ([]float32, error) {
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("%s: empty image", s.Name)
	}
	var src imaging.RGB
	imaging.FromImage(img, &src)
	out, shape, err := s.Test.Apply(&src, image.Rectangle{}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	if shape[0] != s.shape[0] || shape[1] != s.shape[1] || shape[2] != s.shape[2] {
		return nil, fmt.Errorf("%s: the picture gives a %v tensor, the model takes %v (make test_transforms end with a fixed-size resize or crop)", s.Name, shape, s.shape)
	}
	return out, nil
}

var _ Described = (*StaticSet)(nil)
