package data

import (
	"fmt"
	"image"

	"github.com/fer-research/fer/data/imaging"
)

// PreprocessFrame applies the test-mode transform to one frame: what Load
// does to each frame of a clip at test time ([3, Size, Size] float32), for
// prediction on videos whose faces are cropped on the fly.
func (d *ClipDataset) PreprocessFrame(img image.Image) ([]float32, error) {
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("%s: empty frame", d.Name)
	}
	var src imaging.RGB
	imaging.FromImage(img, &src)
	t := &d.opts.Transform
	out := make([]float32, 3*t.Size*t.Size)
	full := image.Rect(0, 0, src.W, src.H)
	if err := t.apply(&src, full, t.newPlan(src.W, src.H, false, nil), out, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return out, nil
}
