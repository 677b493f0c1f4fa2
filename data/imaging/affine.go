package imaging

// Affine is Pillow's Image.transform(size, Image.AFFINE, data,
// resample=Image.BILINEAR) on an RGB image (libImaging/Geometry.c:
// ImagingGenericTransform with affine_transform and bilinear_filter32RGB),
// in C for the same reason as the resampler: a per-pixel loop the Go
// compiler does not optimise. The arithmetic is Pillow's, double for
// double: the output pixel centre (x+0.5, y+0.5) is mapped through data,
// pixels whose source point falls outside the image are black, the 2×2
// neighbourhood is clamped at the border, and each channel is truncated
// (not rounded) to a byte.

/*
#cgo CFLAGS: -O3
#include <math.h>

// No fused multiply-add even when built with -march=native: Pillow's
// products and sums are rounded one by one.
#pragma GCC optimize("fp-contract=off")
#include <stdint.h>

#define FER_FLOOR(v) ((v) < 0.0 ? ((int)floor(v)) : ((int)(v)))
#define FER_XCLIP(x, n) (((x) < 0) ? 0 : ((x) < (n)) ? (x) : (n) - 1)

static void fer_affine_bilinear(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh,
                                const double *a) {
	for (int y = 0; y < dh; y++) {
		uint8_t *out = dst + (long)y * dw * 3;
		for (int x = 0; x < dw; x++, out += 3) {
			double xin = x + 0.5, yin = y + 0.5;
			double xx = a[0] * xin + a[1] * yin + a[2];
			double yy = a[3] * xin + a[4] * yin + a[5];
			if (xx < 0.0 || xx >= sw || yy < 0.0 || yy >= sh) {
				out[0] = out[1] = out[2] = 0;
				continue;
			}
			xx -= 0.5;
			yy -= 0.5;
			int ix = FER_FLOOR(xx), iy = FER_FLOOR(yy);
			double dx = xx - ix, dy = yy - iy;
			const uint8_t *r0 = src + (long)FER_XCLIP(iy, sh) * sw * 3;
			int x0 = FER_XCLIP(ix, sw) * 3, x1 = FER_XCLIP(ix + 1, sw) * 3;
			int has1 = iy + 1 >= 0 && iy + 1 < sh;
			const uint8_t *r1 = src + (long)(iy + 1) * sw * 3;
			for (int b = 0; b < 3; b++) {
				double v1 = r0[x0 + b] + (r0[x1 + b] - r0[x0 + b]) * dx;
				double v2 = v1;
				if (has1) {
					v2 = r1[x0 + b] + (r1[x1 + b] - r1[x0 + b]) * dx;
				}
				v1 = v1 + (v2 - v1) * dy;
				out[b] = (uint8_t)v1;
			}
		}
	}
}
*/
import "C"

import (
	"fmt"
	"image"
	"unsafe"
)

// Affine warps src into dst (resized to w×h) with Pillow's bilinear
// affine transform. data are Pillow's six coefficients (a, b, c, d, e, f):
// the output point (x, y) samples the input at (a·x + b·y + c,
// d·x + e·y + f), i.e. the inverse of the warp, in pixel-edge
// coordinates (pixel i covers [i, i+1)).
//
// Like Pillow's, the filter does not antialias: for shrinking by more
// than 2×, warp at the source scale and Resize (Warp does).
func Affine(src *RGB, data [6]float64, w, h int, dst *RGB) error {
	if src == nil || src.W < 1 || src.H < 1 || len(src.Pix) < 3*src.W*src.H {
		return fmt.Errorf("affine: empty source image")
	}
	if w < 1 || h < 1 || int64(w)*int64(h) > 1<<28 {
		return fmt.Errorf("affine: output size %dx%d", w, h)
	}
	n := 3 * w * h
	if cap(dst.Pix) < n {
		dst.Pix = make([]byte, n)
	}
	dst.Pix, dst.W, dst.H = dst.Pix[:n], w, h
	C.fer_affine_bilinear((*C.uint8_t)(unsafe.Pointer(&src.Pix[0])), C.int(src.W), C.int(src.H),
		(*C.uint8_t)(unsafe.Pointer(&dst.Pix[0])), C.int(w), C.int(h), (*C.double)(unsafe.Pointer(&data[0])))
	return nil
}

// Bounds is the image rectangle (0, 0)-(W, H).
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }
