package imaging

// Pillow's colour arithmetic (libImaging/Blend.c, Convert.c rgb2hsv /
// hsv2rgb) mixes C float and double in every expression; the exact
// result depends on where each value is rounded to single precision.
// These loops are C so that the arithmetic is the same expression, type
// for type, as Pillow's, compiled with contraction off (no fused
// multiply-add), as Debian's x86-64 Pillow is.

/*
#cgo CFLAGS: -O2
#pragma GCC optimize ("fp-contract=off")
#include <math.h>
#include <stdint.h>

#define FER_CLIP8(v) ((v) <= 0 ? 0 : (v) < 256 ? (v) : 255)

// ImagingBlend: out = in1 + alpha·(in2 − in1) with a C float alpha;
// truncated when 0 <= alpha <= 1, clipped to [0, 255] otherwise.
static void fer_blend(const uint8_t *in1, const uint8_t *in2, uint8_t *out, long n, float alpha) {
	if (alpha >= 0 && alpha <= 1.0) {
		for (long x = 0; x < n; x++) {
			out[x] = (uint8_t)((int)in1[x] + alpha * ((int)in2[x] - (int)in1[x]));
		}
		return;
	}
	for (long x = 0; x < n; x++) {
		float temp = (float)((int)in1[x] + alpha * ((int)in2[x] - (int)in1[x]));
		if (temp <= 0.0) {
			out[x] = 0;
		} else if (temp >= 255.0) {
			out[x] = 255;
		} else {
			out[x] = (uint8_t)temp;
		}
	}
}

// Convert.c rgb2hsv_row, per packed RGB pixel (following colorsys.py).
static void fer_rgb2hsv(const uint8_t *in, uint8_t *out, long n) {
	for (long k = 0; k < n; k++, in += 3, out += 3) {
		float h, s, rc, gc, bc, cr;
		uint8_t r = in[0], g = in[1], b = in[2];
		uint8_t maxc = r > g ? r : g;
		maxc = maxc > b ? maxc : b;
		uint8_t minc = r < g ? r : g;
		minc = minc < b ? minc : b;
		uint8_t uh, us, uv = maxc;
		if (minc == maxc) {
			uh = 0;
			us = 0;
		} else {
			cr = (float)(maxc - minc);
			s = cr / (float)maxc;
			rc = ((float)(maxc - r)) / cr;
			gc = ((float)(maxc - g)) / cr;
			bc = ((float)(maxc - b)) / cr;
			if (r == maxc) {
				h = bc - gc;
			} else if (g == maxc) {
				h = 2.0 + rc - bc;
			} else {
				h = 4.0 + gc - rc;
			}
			h = fmod((h / 6.0 + 1.0), 1.0);
			uh = (uint8_t)FER_CLIP8((int)(h * 255.0));
			us = (uint8_t)FER_CLIP8((int)(s * 255.0));
		}
		out[0] = uh;
		out[1] = us;
		out[2] = uv;
	}
}

// Convert.c hsv2rgb, per packed HSV pixel.
static void fer_hsv2rgb(const uint8_t *in, uint8_t *out, long n) {
	for (long k = 0; k < n; k++, in += 3, out += 3) {
		uint8_t h = in[0], s = in[1], v = in[2];
		if (s == 0) {
			out[0] = out[1] = out[2] = v;
			continue;
		}
		int i = floor((float)h * 6.0 / 255.0);
		float f = (float)h * 6.0 / 255.0 - (float)i;
		float fs = ((float)s) / 255.0;
		int p = round((float)v * (1.0 - fs));
		int q = round((float)v * (1.0 - fs * f));
		int t = round((float)v * (1.0 - fs * (1.0 - f)));
		uint8_t up = (uint8_t)FER_CLIP8(p), uq = (uint8_t)FER_CLIP8(q), ut = (uint8_t)FER_CLIP8(t);
		switch (i % 6) {
		case 0: out[0] = v;  out[1] = ut; out[2] = up; break;
		case 1: out[0] = uq; out[1] = v;  out[2] = up; break;
		case 2: out[0] = up; out[1] = v;  out[2] = ut; break;
		case 3: out[0] = up; out[1] = uq; out[2] = v;  break;
		case 4: out[0] = ut; out[1] = up; out[2] = v;  break;
		case 5: out[0] = v;  out[1] = up; out[2] = uq; break;
		}
	}
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// bytesPtr is the C pointer to b's first byte (b must not be empty).
func bytesPtr(b []byte) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(&b[0])) }

// Blend is PIL's Image.blend(a, b, alpha) (ImagingBlend): a + alpha·(b −
// a) per channel, with alpha rounded to a C float as Pillow's argument
// parsing does; truncated for 0 <= alpha <= 1, clipped to 0..255 when
// extrapolating. a and b must have the same size; dst may be either.
func Blend(dst, a, b *RGB, alpha float64) error {
	if a.W != b.W || a.H != b.H {
		return fmt.Errorf("blend: images %dx%d and %dx%d differ in size", a.W, a.H, b.W, b.H)
	}
	if a.W == 0 || a.H == 0 {
		return fmt.Errorf("blend: empty image")
	}
	// Pillow's shortcuts (an exact copy for alpha 0 or 1)
	switch float32(alpha) {
	case 0:
		dst.copyFrom(a)
		return nil
	case 1:
		dst.copyFrom(b)
		return nil
	}
	dst.resize(a.W, a.H)
	C.fer_blend(bytesPtr(a.Pix), bytesPtr(b.Pix), bytesPtr(dst.Pix), C.long(len(a.Pix)), C.float(alpha))
	return nil
}

// ToHSV is PIL's convert("HSV") of an RGB image, in place: each pixel's
// channels become H, S, V bytes.
func ToHSV(img *RGB) {
	if len(img.Pix) == 0 {
		return
	}
	C.fer_rgb2hsv(bytesPtr(img.Pix), bytesPtr(img.Pix), C.long(img.W*img.H))
}

// FromHSV is PIL's convert("RGB") of an HSV image, in place.
func FromHSV(img *RGB) {
	if len(img.Pix) == 0 {
		return
	}
	C.fer_hsv2rgb(bytesPtr(img.Pix), bytesPtr(img.Pix), C.long(img.W*img.H))
}
