package bench

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/imgfast"
)

// The data sets below are fer's image-folder and DFEW clip training
// pipelines with data/imgfast's decoder and resampler in place of
// image/jpeg and x/image/draw (`fercli bench --fast-image`): a preview of
// the change bench/RESULTS.md proposes for data/transform.go. The crop
// and flip decisions follow data.Transform's training mode (random area
// 0.08–1 and aspect 3/4–4/3, 10 tries, then resize + random crop; flip
// with probability 1/2; one decision per clip), pixels /255.

var unitAffine = imgfast.Affine{Mul: [3]float32{1.0 / 255, 1.0 / 255, 1.0 / 255}}

// fastPlan draws the crop rectangle and flip for a w×h image.
func fastPlan(w, h, size int, rng *rand.Rand) (image.Rectangle, bool) {
	area := float64(w * h)
	crop := image.Rectangle{}
	for range 10 {
		target := (0.08 + 0.92*rng.Float64()) * area
		aspect := 0.75 + (4.0/3-0.75)*rng.Float64()
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if rng.Float64() < 0.5 {
			cw, ch = ch, cw
		}
		if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
			x, y := rng.IntN(w-cw+1), rng.IntN(h-ch+1)
			crop = image.Rect(x, y, x+cw, y+ch)
			break
		}
	}
	if crop.Empty() { // centre square of the shorter side
		s := min(w, h)
		crop = image.Rect((w-s)/2, (h-s)/2, (w-s)/2+s, (h-s)/2+s)
	}
	return crop, rng.Float64() < 0.5
}

type fastImages struct {
	items []data.ImageItem
	size  int
}

func (d *fastImages) Len() int        { return len(d.items) }
func (d *fastImages) Label(i int) int { return d.items[i].Label }

func (d *fastImages) Load(i int, rng *rand.Rand, train bool) (data.Sample, error) {
	it := d.items[i]
	img, err := imgfast.DecodeJPEGFile(it.Path)
	if err != nil {
		return data.Sample{}, err
	}
	crop, flip := image.Rect(0, 0, img.W, img.H), false
	if train {
		crop, flip = fastPlan(img.W, img.H, d.size, rng)
	}
	out := make([]float32, 3*d.size*d.size)
	if err := imgfast.ResizedCrop(img, crop, d.size, flip, unitAffine, out, nil); err != nil {
		return data.Sample{}, fmt.Errorf("%s: %w", it.Path, err)
	}
	return data.Sample{ID: it.ID, Label: it.Label, Data: out, Shape: []int{3, d.size, d.size}}, nil
}

type fastClips struct {
	clips   []data.Clip
	sampler data.SegmentSampler
	size    int
}

func (d *fastClips) Len() int        { return len(d.clips) }
func (d *fastClips) Label(i int) int { return d.clips[i].Label }

func (d *fastClips) Load(i int, rng *rand.Rand, train bool) (data.Sample, error) {
	c := d.clips[i]
	ents, err := os.ReadDir(c.Path)
	if err != nil {
		return data.Sample{}, err
	}
	var files []string
	for _, e := range ents {
		if n := strings.ToLower(e.Name()); strings.HasSuffix(n, ".jpg") || strings.HasSuffix(n, ".jpeg") {
			files = append(files, filepath.Join(c.Path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return data.Sample{}, fmt.Errorf("clip %s: no JPEG frames in %s", c.ID, c.Path)
	}
	idx := d.sampler.Indices(len(files), train, rng)
	per := 3 * d.size * d.size
	out := make([]float32, len(idx)*per)
	var crop image.Rectangle
	var flip bool
	first := map[int]int{}
	var scratch []float32
	for j, k := range idx {
		dst := out[j*per : (j+1)*per]
		if f, ok := first[k]; ok {
			copy(dst, out[f*per:(f+1)*per])
			continue
		}
		first[k] = j
		img, err := imgfast.DecodeJPEGFile(files[k])
		if err != nil {
			return data.Sample{}, err
		}
		if j == 0 {
			crop, flip = image.Rect(0, 0, img.W, img.H), false
			if train {
				crop, flip = fastPlan(img.W, img.H, d.size, rng)
			}
			scratch = make([]float32, 3*d.size*img.H)
		}
		if err := imgfast.ResizedCrop(img, crop, d.size, flip, unitAffine, dst, scratch); err != nil {
			return data.Sample{}, fmt.Errorf("%s: %w", files[k], err)
		}
	}
	return data.Sample{ID: c.ID, Label: c.Label, Data: out, Shape: []int{len(idx), 3, d.size, d.size}}, nil
}
