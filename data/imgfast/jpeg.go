// Package imgfast is a faster decode + resize path for fer's training
// data pipeline, written after `fercli bench` found fer's pipeline 3–4×
// slower per image than PyTorch's DataLoader (bench/RESULTS.md): Go's
// image/jpeg has no SIMD and golang.org/x/image/draw's Kernel.Scale
// converts YCbCr to RGB and evaluates float64 weights for every tap.
//
//   - DecodeJPEG decodes with libjpeg-turbo (the library PIL uses) through
//     cgo, straight to packed RGB.
//   - ResizedCrop is PIL's two-pass resampling (horizontal, then
//     vertical; a triangle filter whose support widens by the scale
//     factor when shrinking, i.e. antialiased like PIL's BILINEAR and
//     x/image/draw's BiLinear), with per-output-pixel weights computed
//     once per call, writing float32 CHW planes with optional flip and
//     per-channel affine normalisation in the same pass.
//
// Results agree with x/image/draw's BiLinear to rounding (the tests
// check it); they are not bit-identical to it or to PIL.
package imgfast

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
	"fmt"
	"os"
	"unsafe"
)

// RGB is a packed 8-bit RGB image: pixel (x, y) is Pix[3*(y*W+x)+c].
type RGB struct {
	Pix  []byte
	W, H int
}

// DecodeJPEG decodes a JPEG (baseline or progressive; grayscale is
// converted to RGB by libjpeg) into packed RGB. A file libjpeg can only
// decode with warnings (truncated, corrupt data) is an error, as with
// image/jpeg.
func DecodeJPEG(data []byte) (*RGB, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("jpeg: empty data")
	}
	var w, h C.int
	msg := make([]byte, C.JMSG_LENGTH_MAX)
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	cmsg := (*C.char)(unsafe.Pointer(&msg[0]))
	rc := C.fer_jpeg_decode(src, C.ulong(len(data)), nil, 0, &w, &h, cmsg)
	if rc < 0 {
		return nil, fmt.Errorf("jpeg: %s", C.GoString(cmsg))
	}
	if w <= 0 || h <= 0 || int64(w)*int64(h) > 1<<28 {
		return nil, fmt.Errorf("jpeg: bad size %dx%d", w, h)
	}
	img := &RGB{Pix: make([]byte, int(w)*int(h)*3), W: int(w), H: int(h)}
	rc = C.fer_jpeg_decode(src, C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.size_t(len(img.Pix)), &w, &h, cmsg)
	if rc != 0 {
		return nil, fmt.Errorf("jpeg: %s", C.GoString(cmsg))
	}
	return img, nil
}

// DecodeJPEGFile reads and decodes a JPEG file.
func DecodeJPEGFile(path string) (*RGB, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := DecodeJPEG(b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}
