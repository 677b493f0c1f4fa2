// Package imaging decodes images and resamples them exactly as
// torchvision's PIL pipeline does, for fer's data loaders.
//
//   - DecodeJPEGInto decodes with libjpeg-turbo (the library Debian's Pillow
//     links) through cgo, straight to packed RGB; other formats go
//     through the standard library (image/png) and FromImage. Go's
//     image/jpeg is 3–4× slower (no SIMD) and rounds its YCbCr→RGB
//     conversion differently from libjpeg.
//   - Resampler is Pillow's two-pass BILINEAR resampling (Resample.c:
//     precompute_coeffs, normalize_coeffs_8bpc, the horizontal pass, 8-bit
//     rounding, the vertical pass) in the same fixed-point arithmetic, so
//     PIL's img.crop(box).resize(size, BILINEAR) and fer agree bit for bit
//     (the tests compare with Debian's Pillow).
//   - LUT turns the 8-bit result into float32 as torchvision's ToTensor
//     (v/255) and Normalize ((x − mean)/std) do, operation for operation.
//
// We write the resampler ourselves because no Go library reproduces
// Pillow's coefficients and rounding (golang.org/x/image/draw's BiLinear,
// used before, skips the 8-bit rounding between passes and works in
// float64 per tap).
package imaging

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <jpeglib.h>

struct fer_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
};

static void fer_error_exit(j_common_ptr c) {
	struct fer_err *e = (struct fer_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

// Warnings (a truncated or corrupt file) are recorded, not printed.
static void fer_output_message(j_common_ptr c) {
	struct fer_err *e = (struct fer_err *)c->err;
	(*c->err->format_message)(c, e->msg);
}

// fer_jpeg_decode decodes buf into out (packed RGB, w*h*3 bytes). With
// out == NULL or cap too small it only reads the header and returns 1
// with *w, *h set. Returns 0 on success, -1 on error (message in msg).
static int fer_jpeg_decode(const unsigned char *buf, unsigned long n, unsigned char *out, size_t cap,
                           int *w, int *h, char *msg) {
	struct jpeg_decompress_struct d;
	struct fer_err e;
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = fer_error_exit;
	e.pub.output_message = fer_output_message;
	e.msg[0] = 0;
	if (setjmp(e.jb)) {
		snprintf(msg, JMSG_LENGTH_MAX, "%s", e.msg);
		jpeg_destroy_decompress(&d);
		return -1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, buf, n);
	jpeg_read_header(&d, TRUE);
	d.out_color_space = JCS_RGB;
	jpeg_calc_output_dimensions(&d);
	*w = (int)d.output_width;
	*h = (int)d.output_height;
	if (out == NULL || cap < (size_t)d.output_width * d.output_height * 3) {
		jpeg_destroy_decompress(&d);
		return 1;
	}
	jpeg_start_decompress(&d);
	size_t stride = (size_t)d.output_width * 3;
	while (d.output_scanline < d.output_height) {
		JSAMPROW row = out + (size_t)d.output_scanline * stride;
		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	long warnings = e.pub.num_warnings;
	jpeg_destroy_decompress(&d);
	if (warnings > 0) { // libjpeg filled in missing or corrupt data
		snprintf(msg, JMSG_LENGTH_MAX, "%s", e.msg);
		return -1;
	}
	return 0;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // CMYK/YCCK JPEGs libjpeg cannot convert to RGB
	_ "image/png"
	"os"
	"strings"
	"unsafe"
)

// RGB is a packed 8-bit RGB image: pixel (x, y) is Pix[3*(y*W+x)+c].
type RGB struct {
	Pix  []byte
	W, H int
}

// isJPEG reports whether data starts with a JPEG SOI marker.
func isJPEG(data []byte) bool { return len(data) > 2 && data[0] == 0xFF && data[1] == 0xD8 }

// DecodeJPEGInto decodes a JPEG (baseline or progressive; grayscale is
// replicated to RGB by libjpeg, as PIL's convert("RGB")) into dst as
// packed RGB, reusing dst.Pix when it is large enough (a loader keeps one
// RGB per worker). A file libjpeg can only decode with warnings
// (truncated, corrupt data) is an error, as with image/jpeg.
func DecodeJPEGInto(data []byte, dst *RGB) error {
	if len(data) == 0 {
		return fmt.Errorf("jpeg: empty data")
	}
	var w, h C.int
	var msg [C.JMSG_LENGTH_MAX]byte
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	cmsg := (*C.char)(unsafe.Pointer(&msg[0]))
	rc := C.fer_jpeg_decode(src, C.ulong(len(data)), nil, 0, &w, &h, cmsg)
	if rc < 0 {
		return fmt.Errorf("jpeg: %s", C.GoString(cmsg))
	}
	if w <= 0 || h <= 0 || int64(w)*int64(h) > 1<<28 {
		return fmt.Errorf("jpeg: bad size %dx%d", w, h)
	}
	n := int(w) * int(h) * 3
	if cap(dst.Pix) < n {
		dst.Pix = make([]byte, n)
	}
	dst.Pix, dst.W, dst.H = dst.Pix[:n], int(w), int(h)
	rc = C.fer_jpeg_decode(src, C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&dst.Pix[0])), C.size_t(n), &w, &h, cmsg)
	if rc != 0 {
		return fmt.Errorf("jpeg: %s", C.GoString(cmsg))
	}
	return nil
}

// FromImage converts a decoded image to packed RGB as PIL's
// convert("RGB") does: gray is replicated, alpha is dropped (the colour
// is taken un-premultiplied, as PNG stores it).
func FromImage(img image.Image, dst *RGB) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	n := 3 * w * h
	if cap(dst.Pix) < n {
		dst.Pix = make([]byte, n)
	}
	dst.Pix, dst.W, dst.H = dst.Pix[:n], w, h
	switch m := img.(type) {
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[(y)*m.Stride : y*m.Stride+4*w]
			out := dst.Pix[3*w*y : 3*w*(y+1)]
			for x := range w {
				out[3*x], out[3*x+1], out[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			out := dst.Pix[3*w*y : 3*w*(y+1)]
			for x, v := range row {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
}

// Decode decodes a JPEG with libjpeg-turbo and anything else the standard
// library knows (PNG) with image.Decode, into dst. JPEGs libjpeg cannot
// convert to RGB (CMYK, YCCK) fall back to image/jpeg.
func Decode(data []byte, dst *RGB) error {
	if isJPEG(data) {
		err := DecodeJPEGInto(data, dst)
		if err == nil || !strings.Contains(err.Error(), "color conversion") {
			return err
		}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if img.Bounds().Empty() {
		return fmt.Errorf("empty image")
	}
	FromImage(img, dst)
	return nil
}

// DecodeFile reads and decodes an image file into dst; errors name the
// file.
func DecodeFile(path string, dst *RGB) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read image %s: %w", path, err)
	}
	if err := Decode(b, dst); err != nil {
		return fmt.Errorf("decode image %s: %w", path, err)
	}
	return nil
}
