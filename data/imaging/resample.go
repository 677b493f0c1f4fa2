package imaging

// The two passes' multiply-accumulate loops are C, as in Pillow: the Go
// compiler neither vectorises them nor drops the bounds checks, and ran
// them 2× slower than Pillow, which made fer's loader lose to PyTorch's
// DataLoader. The coefficients (where the exactness lies) are computed in
// Go below; integer sums do not depend on the order of their terms, so
// the vertical pass accumulates whole rows (vectorisable) and still gives
// Pillow's bytes.

/*
#cgo CFLAGS: -O3
#include <stdint.h>
#include <stdlib.h>

#define PB 22
static inline uint8_t clip8(int32_t v) {
	if (v >= (1 << PB << 8)) return 255;
	if (v <= 0) return 0;
	return (uint8_t)(v >> PB);
}

// Horizontal pass: rows of packed RGB (line0, stride bytes apart) to
// out (rows × ow × 3 bytes). Output i reads pixels start[i] … start[i]+n[i]-1
// with weights k[i*ks …].
static void fer_resample_h(const uint8_t *line0, long stride, int rows, int ow,
                           const int32_t *k, const int32_t *start, const int32_t *n, int ks, uint8_t *out) {
	for (int y = 0; y < rows; y++) {
		const uint8_t *line = line0 + (long)y * stride;
		uint8_t *o = out + (long)y * ow * 3;
		for (int i = 0; i < ow; i++) {
			const int32_t *w = k + (long)i * ks;
			const uint8_t *p = line + 3 * start[i];
			int32_t s0 = 1 << (PB - 1), s1 = s0, s2 = s0;
			for (int t = 0; t < n[i]; t++) {
				s0 += p[3 * t] * w[t];
				s1 += p[3 * t + 1] * w[t];
				s2 += p[3 * t + 2] * w[t];
			}
			o[3 * i] = clip8(s0);
			o[3 * i + 1] = clip8(s1);
			o[3 * i + 2] = clip8(s2);
		}
	}
}

// fer_vsum is output row j of the vertical pass before rounding: the sum
// of rows start … start+n-1 of tmp (rs bytes each) with weights w, in acc.
static inline void fer_vsum(const uint8_t *tmp, int rs, const int32_t *w, int32_t start, int32_t n, int32_t *acc) {
	for (int x = 0; x < rs; x++) acc[x] = 1 << (PB - 1);
	for (int t = 0; t < n; t++) {
		const uint8_t *row = tmp + (long)(start + t) * rs;
		int32_t wt = w[t];
		for (int x = 0; x < rs; x++) acc[x] += row[x] * wt;
	}
}

// Vertical pass: output row j sums rows start[j] … start[j]+n[j]-1 of tmp
// (rs = 3·ow bytes each) with weights k[j*ks …], then maps each byte
// through lut (3 × 256 floats) into planes dst[c][j][x], mirrored if flip.
static void fer_resample_v(const uint8_t *tmp, int ow, int oh, const int32_t *k, const int32_t *start,
                           const int32_t *n, int ks, const float *lut, int flip, float *dst, int32_t *acc) {
	int rs = 3 * ow;
	long plane = (long)ow * oh;
	for (int j = 0; j < oh; j++) {
		fer_vsum(tmp, rs, k + (long)j * ks, start[j], n[j], acc);
		float *d0 = dst + (long)j * ow, *d1 = d0 + plane, *d2 = d1 + plane;
		for (int i = 0; i < ow; i++) {
			int o = flip ? ow - 1 - i : i;
			d0[o] = lut[clip8(acc[3 * i])];
			d1[o] = lut[256 + clip8(acc[3 * i + 1])];
			d2[o] = lut[512 + clip8(acc[3 * i + 2])];
		}
	}
}

// Vertical pass to packed RGB bytes (Pillow's 8-bit result itself, for
// images that are resized and then stored or transformed further).
static void fer_resample_v8(const uint8_t *tmp, int ow, int oh, const int32_t *k, const int32_t *start,
                            const int32_t *n, int ks, uint8_t *dst, int32_t *acc) {
	int rs = 3 * ow;
	for (int j = 0; j < oh; j++) {
		fer_vsum(tmp, rs, k + (long)j * ks, start[j], n[j], acc);
		uint8_t *d = dst + (long)j * rs;
		for (int x = 0; x < rs; x++) d[x] = clip8(acc[x]);
	}
}
*/
import "C"

import (
	"fmt"
	"image"
	"math"
	"unsafe"
)

// precisionBits is Pillow's PRECISION_BITS for 8-bit images (32 − 8 − 2):
// the coefficients are fixed-point with this many fraction bits.
const precisionBits = 32 - 8 - 2

// axis is one pass's filter: output pixel i reads input pixels
// start[i] … start[i]+n[i]−1 with the fixed-point weights
// k[i*ksize : i*ksize+n[i]].
type axis struct {
	start, n []int32
	k        []int32
	ksize    int
}

// bilinear is Pillow's bilinear_filter (support 1).
func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// newAxis is Pillow's precompute_coeffs for resizing an axis of inSize
// pixels (the whole axis: box [0, inSize)) to outSize, followed by
// normalize_coeffs_8bpc, for the outputs lo … hi−1 only. The arithmetic
// (double precision, C truncation, the division by the weight sum, the
// rounding to fixed point) follows Pillow's operation for operation.
func newAxis(inSize, outSize, lo, hi int) axis {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := 1 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	a := axis{start: make([]int32, hi-lo), n: make([]int32, hi-lo), k: make([]int32, (hi-lo)*ksize), ksize: ksize}
	kk := make([]float64, ksize)
	ss := 1 / filterscale
	for i := lo; i < hi; i++ {
		center := (float64(i) + 0.5) * scale
		xmin := int(center - support + 0.5) // C (int): truncation; clamped below
		xmin = max(xmin, 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		var ww float64
		for x := 0; x < xmax; x++ {
			w := bilinear((float64(x+xmin) - center + 0.5) * ss)
			kk[x] = w
			ww += w
		}
		k := a.k[(i-lo)*ksize:]
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				kk[x] /= ww
			}
			if kk[x] < 0 {
				k[x] = int32(-0.5 + kk[x]*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + kk[x]*(1<<precisionBits))
			}
		}
		a.start[i-lo], a.n[i-lo] = int32(xmin), int32(xmax)
	}
	return a
}

// clip8 is Pillow's clip8: the fixed-point sum back to a byte.
func clip8(v int32) uint8 {
	if v >= 1<<precisionBits<<8 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v >> precisionBits)
}

// Spec is one resampling, in PIL/torchvision terms:
//
//	img.crop(Crop).resize((W, H), BILINEAR), then the pixels in Window
//	of that W×H result, then mirrored left-right if Flip.
//
// torchvision's RandomResizedCrop is Crop = the random box, W×H = the
// output size, Window = all of it; Resize + RandomCrop is Crop = the whole
// image, W×H = the resized size, Window = the random crop.
type Spec struct {
	Crop   image.Rectangle
	W, H   int
	Window image.Rectangle // empty: the whole W×H
	Flip   bool
}

// Resampler applies one Spec to images of one size (every frame of a
// clip). It is safe for concurrent use.
type Resampler struct {
	srcW, srcH int
	spec       Spec
	h, v       axis
	// y0, y1 are the crop-relative source rows the vertical pass reads.
	y0, y1 int
}

// NewResampler precomputes the filters of s for srcW×srcH images.
func NewResampler(srcW, srcH int, s Spec) (*Resampler, error) {
	if s.Window.Empty() {
		s.Window = image.Rect(0, 0, s.W, s.H)
	}
	switch {
	case srcW < 1 || srcH < 1:
		return nil, fmt.Errorf("resample: empty %dx%d image", srcW, srcH)
	case s.Crop.Empty() || !s.Crop.In(image.Rect(0, 0, srcW, srcH)):
		return nil, fmt.Errorf("resample: crop %v is empty or outside the %dx%d image", s.Crop, srcW, srcH)
	case s.W < 1 || s.H < 1:
		return nil, fmt.Errorf("resample: output size %dx%d", s.W, s.H)
	case !s.Window.In(image.Rect(0, 0, s.W, s.H)):
		return nil, fmt.Errorf("resample: window %v outside the %dx%d output", s.Window, s.W, s.H)
	}
	r := &Resampler{srcW: srcW, srcH: srcH, spec: s,
		h: newAxis(s.Crop.Dx(), s.W, s.Window.Min.X, s.Window.Max.X),
		v: newAxis(s.Crop.Dy(), s.H, s.Window.Min.Y, s.Window.Max.Y),
	}
	r.y0, r.y1 = int(r.v.start[0]), 0
	for i, st := range r.v.start {
		r.y0 = min(r.y0, int(st))
		r.y1 = max(r.y1, int(st+r.v.n[i]))
	}
	for i := range r.v.start { // rows of the intermediate image
		r.v.start[i] -= int32(r.y0)
	}
	return r, nil
}

// OutSize is the size of the result (the window).
func (r *Resampler) OutSize() (w, h int) { return r.spec.Window.Dx(), r.spec.Window.Dy() }

// Apply resamples src (srcW×srcH) and writes float32 planes [3][h][w]
// mapped through lut into dst (len 3·w·h). scratch holds the 8-bit
// intermediate rows between calls (may be nil).
func (r *Resampler) Apply(src *RGB, lut *LUT, dst []float32, scratch *[]byte) error {
	if src.W != r.srcW || src.H != r.srcH {
		return fmt.Errorf("resample: image is %dx%d, the resampler was made for %dx%d", src.W, src.H, r.srcW, r.srcH)
	}
	ow, oh := r.OutSize()
	if len(dst) != 3*ow*oh {
		return fmt.Errorf("resample: dst has %d values, want %d", len(dst), 3*ow*oh)
	}
	tmp := r.horizontal(src, scratch)
	r.vertical(tmp, ow, oh, lut, dst)
	return nil
}

// ApplyRGB is Apply with Pillow's 8-bit result as packed RGB in dst
// (resized to the output size; Spec.Flip is not supported here).
func (r *Resampler) ApplyRGB(src *RGB, dst *RGB, scratch *[]byte) error {
	if src.W != r.srcW || src.H != r.srcH {
		return fmt.Errorf("resample: image is %dx%d, the resampler was made for %dx%d", src.W, src.H, r.srcW, r.srcH)
	}
	if r.spec.Flip {
		return fmt.Errorf("resample: ApplyRGB does not flip")
	}
	ow, oh := r.OutSize()
	n := 3 * ow * oh
	if cap(dst.Pix) < n {
		dst.Pix = make([]byte, n)
	}
	dst.Pix, dst.W, dst.H = dst.Pix[:n], ow, oh
	tmp := r.horizontal(src, scratch)
	acc := make([]int32, 3*ow)
	C.fer_resample_v8((*C.uint8_t)(unsafe.Pointer(&tmp[0])), C.int(ow), C.int(oh),
		(*C.int32_t)(unsafe.Pointer(&r.v.k[0])), (*C.int32_t)(unsafe.Pointer(&r.v.start[0])),
		(*C.int32_t)(unsafe.Pointer(&r.v.n[0])), C.int(r.v.ksize), (*C.uint8_t)(unsafe.Pointer(&dst.Pix[0])),
		(*C.int32_t)(unsafe.Pointer(&acc[0])))
	return nil
}

// horizontal is ImagingResampleHorizontal_8bpc over the source rows
// y0 … y1−1 of the crop, for the window's columns, into the intermediate
// rows it returns (scratch's memory when large enough; scratch, when not
// nil, keeps them for the next call).
func (r *Resampler) horizontal(src *RGB, scratch *[]byte) []byte {
	ow, _ := r.OutSize()
	need := 3 * ow * (r.y1 - r.y0)
	var tmp []byte
	if scratch != nil && cap(*scratch) >= need {
		tmp = (*scratch)[:need]
	} else {
		tmp = make([]byte, need)
		if scratch != nil {
			*scratch = tmp
		}
	}
	c := r.spec.Crop
	stride := 3 * src.W
	line0 := src.Pix[(c.Min.Y+r.y0)*stride+3*c.Min.X:]
	C.fer_resample_h((*C.uint8_t)(unsafe.Pointer(&line0[0])), C.long(stride), C.int(r.y1-r.y0), C.int(ow),
		(*C.int32_t)(unsafe.Pointer(&r.h.k[0])), (*C.int32_t)(unsafe.Pointer(&r.h.start[0])),
		(*C.int32_t)(unsafe.Pointer(&r.h.n[0])), C.int(r.h.ksize), (*C.uint8_t)(unsafe.Pointer(&tmp[0])))
	return tmp
}

// vertical is ImagingResampleVertical_8bpc from the intermediate rows
// into float planes, through lut, mirrored when asked.
func (r *Resampler) vertical(tmp []byte, ow, oh int, lut *LUT, dst []float32) {
	acc := make([]int32, 3*ow)
	flip := 0
	if r.spec.Flip {
		flip = 1
	}
	C.fer_resample_v((*C.uint8_t)(unsafe.Pointer(&tmp[0])), C.int(ow), C.int(oh),
		(*C.int32_t)(unsafe.Pointer(&r.v.k[0])), (*C.int32_t)(unsafe.Pointer(&r.v.start[0])),
		(*C.int32_t)(unsafe.Pointer(&r.v.n[0])), C.int(r.v.ksize), (*C.float)(unsafe.Pointer(&lut[0][0])),
		C.int(flip), (*C.float)(unsafe.Pointer(&dst[0])), (*C.int32_t)(unsafe.Pointer(&acc[0])))
}

// LUT maps a byte of each channel to the model's float input.
type LUT [3][256]float32

// NewLUT is torchvision's ToTensor (v/255 in float32) followed, when mean
// and std are given, by Normalize ((x − mean)/std in float32).
func NewLUT(mean, std *[3]float32) *LUT {
	var l LUT
	for c := range 3 {
		for v := range 256 {
			x := float32(v) / 255
			if mean != nil {
				x = (x - mean[c]) / std[c]
			}
			l[c][v] = x
		}
	}
	return &l
}
