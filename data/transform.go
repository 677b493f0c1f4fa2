package data

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/fer-research/fer/data/imaging"
)

// Transform turns a decoded image (or every frame of a clip) into model
// input: float32 [3, Size, Size] in [0, 1] (pixel/255, as Former-DFER's
// ToTorchFormatTensor), optionally normalised per channel.
//
// Test mode resizes the whole image to Size×Size (Former-DFER's
// GroupResize: aspect ratio not kept). Training mode does Former-DFER's
// GroupRandomSizedCrop (a random crop of CropArea of the image area with
// aspect ratio in CropAspect, resized to Size×Size) and
// GroupRandomHorizontalFlip; for a clip ONE crop and ONE flip decision is
// drawn and applied to every frame.
//
// Decoding (libjpeg-turbo) and resampling (Pillow's BILINEAR, antialiased
// when shrinking) are data/imaging's, which reproduces the PIL pipeline
// Former-DFER and torchvision use bit for bit: the same file gives the
// same input tensor in fer and in PyTorch.
type Transform struct {
	// Size is the output side length (default 112).
	Size int
	// CropArea is the range of the crop's area as a fraction of the image
	// area; CropAspect the range of its width/height ratio. Zero values
	// mean Former-DFER's {0.08, 1} and {3/4, 4/3}.
	CropArea, CropAspect [2]float64
	// NoCrop turns the training crop off (training images are only
	// resized, then maybe flipped).
	NoCrop bool
	// NoFlip turns the training horizontal flip off.
	NoFlip bool
	// Normalize, when set, maps x → (x − Mean)/Std per channel after the
	// division by 255. Former-DFER uses none.
	Normalize *Normalize
}

// withDefaults fills the zero fields and checks the rest.
func (t Transform) withDefaults() (Transform, error) {
	if t.Size == 0 {
		t.Size = 112
	}
	if t.CropArea == [2]float64{} {
		t.CropArea = [2]float64{0.08, 1}
	}
	if t.CropAspect == [2]float64{} {
		t.CropAspect = [2]float64{3.0 / 4, 4.0 / 3}
	}
	switch {
	case t.Size < 1:
		return t, fmt.Errorf("transform: size = %d, want >= 1", t.Size)
	case !(t.CropArea[0] > 0 && t.CropArea[0] <= t.CropArea[1] && t.CropArea[1] <= 1):
		return t, fmt.Errorf("transform: crop_area = %v, want 0 < min <= max <= 1", t.CropArea)
	case !(t.CropAspect[0] > 0 && t.CropAspect[0] <= t.CropAspect[1]):
		return t, fmt.Errorf("transform: crop_aspect = %v, want 0 < min <= max", t.CropAspect)
	}
	return t, t.Normalize.check()
}

// plan is one augmentation decision, shared by all frames of a clip.
// Rectangles are relative to the image's Bounds().Min.
type plan struct {
	w, h int             // the size the plan was made for
	crop image.Rectangle // source region resized to Size×Size
	// prescale, when non-zero, first resizes the whole image to this size
	// and then cuts crop (Size×Size, in prescaled coordinates) out of it:
	// Former-DFER's fallback GroupScale + GroupRandomCrop.
	prescale image.Point
	flip     bool
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// newPlan draws the augmentation for a w×h image.
func (t *Transform) newPlan(w, h int, train bool, rng *rand.Rand) plan {
	p := plan{w: w, h: h, crop: image.Rect(0, 0, w, h)}
	if !train {
		return p
	}
	if !t.NoCrop {
		p = t.randomSizedCrop(w, h, rng)
	}
	if !t.NoFlip {
		p.flip = rng.Float64() < 0.5
	}
	return p
}

// randomSizedCrop follows Former-DFER's GroupRandomSizedCrop: up to 10
// tries of a random area and aspect ratio (uniform, then width and height
// swapped with probability 1/2; sizes rounded half-to-even like Python's
// round); if none fits, scale the shorter side to Size and take a random
// Size×Size crop.
func (t *Transform) randomSizedCrop(w, h int, rng *rand.Rand) plan {
	area := float64(w * h)
	for range 10 {
		target := uniform(rng, t.CropArea[0], t.CropArea[1]) * area
		aspect := uniform(rng, t.CropAspect[0], t.CropAspect[1])
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if rng.Float64() < 0.5 {
			cw, ch = ch, cw
		}
		// cw, ch >= 1 is our addition: Python would crash on an empty
		// crop of a tiny image; here that try just fails.
		if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
			x := rng.IntN(w - cw + 1)
			y := rng.IntN(h - ch + 1)
			return plan{w: w, h: h, crop: image.Rect(x, y, x+cw, y+ch)}
		}
	}
	// Fallback: torchvision Resize(Size) (shorter side → Size, longer side
	// truncated), then a random Size×Size crop.
	s := t.Size
	sw, sh := s, s
	if w <= h {
		sh = int(float64(s) * float64(h) / float64(w))
	} else {
		sw = int(float64(s) * float64(w) / float64(h))
	}
	x := rng.IntN(sw - s + 1)
	y := rng.IntN(sh - s + 1)
	return plan{w: w, h: h, prescale: image.Pt(sw, sh), crop: image.Rect(x, y, x+s, y+s)}
}

// resampler turns plan p, made for the region of a w×h image, into the
// resampling that carries it out: PIL's img.crop(crop).resize((Size,
// Size)), or for the fallback img.resize(prescale).crop(crop).
func (t *Transform) resampler(w, h int, region image.Rectangle, p plan) (*imaging.Resampler, error) {
	s := imaging.Spec{Crop: p.crop.Add(region.Min), W: t.Size, H: t.Size, Flip: p.flip}
	if p.prescale != (image.Point{}) {
		s = imaging.Spec{Crop: region, W: p.prescale.X, H: p.prescale.Y, Window: p.crop, Flip: p.flip}
	}
	return imaging.NewResampler(w, h, s)
}

// lut is the byte → float map: v/255 in float32 as Former-DFER's
// ToTorchFormatTensor (and (v/255 − mean)/std as torchvision's Normalize),
// operation for operation, so values match PyTorch bit for bit.
func (t *Transform) lut() *imaging.LUT {
	if t.Normalize == nil {
		return imaging.NewLUT(nil, nil)
	}
	return imaging.NewLUT(&t.Normalize.Mean, &t.Normalize.Std)
}

// apply resizes/crops/flips the region of img as planned and writes
// [3, Size, Size] float32 into dst (len 3·Size·Size); scratch (may be
// nil) holds the resampler's intermediate rows.
func (t *Transform) apply(img *imaging.RGB, region image.Rectangle, p plan, dst []float32, scratch *[]byte) error {
	r, err := t.resampler(img.W, img.H, region, p)
	if err != nil {
		return err
	}
	return r.Apply(img, t.lut(), dst, scratch)
}

// buffers are a loader worker's reusable decode and resampling memory
// (a 224×224 frame is 150 KB decoded; allocating that per image keeps the
// garbage collector busy).
type buffers struct {
	rgb     imaging.RGB
	scratch []byte
}

var bufferPool = sync.Pool{New: func() any { return new(buffers) }}

func getBuffers() *buffers  { return bufferPool.Get().(*buffers) }
func putBuffers(b *buffers) { bufferPool.Put(b) }

// decodeImageFile reads and decodes one image file (JPEG or PNG) into dst.
func decodeImageFile(path string, dst *imaging.RGB) error {
	if err := imaging.DecodeFile(path, dst); err != nil {
		return fmt.Errorf("%w (the file is missing, corrupt, truncated or not a JPEG/PNG; re-extract or replace it)", err)
	}
	return nil
}
