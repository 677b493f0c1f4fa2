package imgfast

import (
	"fmt"
	"image"
	"math"
)

// weights are one pass's filter: output pixel i reads source pixels
// start[i] ... start[i]+len(w[i])-1 with weights w[i] (summing to 1).
type weights struct {
	start []int
	w     [][]float32
}

// triangleWeights computes PIL's resample coefficients (precompute_coeffs
// with the bilinear filter) for mapping the source interval [lo, hi)
// (in pixels, lo/hi may be fractional) of a size-n axis onto out pixels.
func triangleWeights(lo, hi float64, n, out int) weights {
	scale := (hi - lo) / float64(out)
	support := 1.0
	fs := 1.0 // filter scale
	if scale > 1 {
		support *= scale
		fs = scale
	}
	ws := weights{start: make([]int, out), w: make([][]float32, out)}
	for i := 0; i < out; i++ {
		center := lo + (float64(i)+0.5)*scale
		x0 := int(math.Floor(center - support + 0.5))
		x1 := int(math.Floor(center + support + 0.5))
		x0 = max(x0, 0)
		x1 = min(x1, n)
		var sum float64
		tmp := make([]float64, 0, x1-x0)
		for x := x0; x < x1; x++ {
			d := (float64(x) + 0.5 - center) / fs
			v := 1 - math.Abs(d)
			if v < 0 {
				v = 0
			}
			tmp = append(tmp, v)
			sum += v
		}
		w := make([]float32, len(tmp))
		for k, v := range tmp {
			if sum > 0 {
				w[k] = float32(v / sum)
			}
		}
		ws.start[i], ws.w[i] = x0, w
	}
	return ws
}

// Affine maps a channel value v in 0..255 to v·Mul + Add (pixel/255:
// Mul = 1/255, Add = 0).
type Affine struct {
	Mul, Add [3]float32
}

// ResizedCrop resamples the region crop of src to size×size and writes
// it as float32 planes [3][size][size] into dst (len 3·size·size),
// mirrored left-right when flip is set, each value mapped by a.
// Scratch, when at least 3·size·crop.Dy() long, is reused for the
// intermediate rows (nil: allocated).
func ResizedCrop(src *RGB, crop image.Rectangle, size int, flip bool, a Affine, dst, scratch []float32) error {
	crop = crop.Intersect(image.Rect(0, 0, src.W, src.H))
	if crop.Empty() || size < 1 {
		return fmt.Errorf("resize: empty crop %v of a %dx%d image or size %d", crop, src.W, src.H, size)
	}
	if len(dst) < 3*size*size {
		return fmt.Errorf("resize: dst has %d values, want %d", len(dst), 3*size*size)
	}
	hw := triangleWeights(float64(crop.Min.X), float64(crop.Max.X), src.W, size)
	vw := triangleWeights(float64(crop.Min.Y), float64(crop.Max.Y), src.H, size)
	// The vertical pass reads source rows ymin..ymax-1 only.
	ymin, ymax := vw.start[0], 0
	for i, w := range vw.w {
		ymax = max(ymax, vw.start[i]+len(w))
	}
	rows := ymax - ymin
	need := 3 * size * rows
	if len(scratch) < need {
		scratch = make([]float32, need)
	}
	// Horizontal pass: rows ymin..ymax of src → tmp[row][x][c] (interleaved).
	tmp := scratch[:need]
	stride := 3 * src.W
	for r := 0; r < rows; r++ {
		line := src.Pix[(ymin+r)*stride : (ymin+r+1)*stride]
		out := tmp[r*3*size : (r+1)*3*size]
		for i := 0; i < size; i++ {
			var s0, s1, s2 float32
			p := 3 * hw.start[i]
			for _, w := range hw.w[i] {
				s0 += w * float32(line[p])
				s1 += w * float32(line[p+1])
				s2 += w * float32(line[p+2])
				p += 3
			}
			out[3*i], out[3*i+1], out[3*i+2] = s0, s1, s2
		}
	}
	// Vertical pass into planes, with flip and the affine map.
	plane := size * size
	for j := 0; j < size; j++ {
		r0 := vw.start[j] - ymin
		ws := vw.w[j]
		for i := 0; i < size; i++ {
			var s0, s1, s2 float32
			q := r0*3*size + 3*i
			for _, w := range ws {
				s0 += w * tmp[q]
				s1 += w * tmp[q+1]
				s2 += w * tmp[q+2]
				q += 3 * size
			}
			o := j*size + i
			if flip {
				o = j*size + size - 1 - i
			}
			dst[o] = s0*a.Mul[0] + a.Add[0]
			dst[plane+o] = s1*a.Mul[1] + a.Add[1]
			dst[2*plane+o] = s2*a.Mul[2] + a.Add[2]
		}
	}
	return nil
}
