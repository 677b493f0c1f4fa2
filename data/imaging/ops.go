package imaging

// The geometric and photometric operations torchvision's transforms apply
// to PIL images, with Pillow 9.4's arithmetic (the version Debian's
// torchvision 0.14 runs on): crop, mirror, pad, rotate (NEAREST),
// grayscale, and ImageEnhance's brightness / contrast / colour plus
// torchvision's hue shift through HSV. Each writes into dst (grown as
// needed) so a loader can ping-pong two buffers per worker; dst must not
// be src unless the function says so.

/*
#cgo LDFLAGS: -lm
#include <math.h>
*/
import "C"

import (
	"fmt"
	"image"
	"math"
	"strconv"
)

// resize makes m a w×h image, reusing Pix when large enough (contents
// undefined).
func (m *RGB) resize(w, h int) {
	n := 3 * w * h
	if cap(m.Pix) < n {
		m.Pix = make([]byte, n)
	}
	m.Pix, m.W, m.H = m.Pix[:n], w, h
}

func (m *RGB) copyFrom(src *RGB) {
	if m == src {
		return
	}
	m.resize(src.W, src.H)
	copy(m.Pix, src.Pix)
}

// Clone returns a copy of m.
func (m *RGB) Clone() *RGB {
	c := &RGB{}
	c.copyFrom(m)
	return c
}

// NRGBA returns m as an opaque *image.NRGBA (a copy).
func (m *RGB) NRGBA() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i := range m.W * m.H {
		copy(img.Pix[4*i:4*i+3], m.Pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img
}

// Fill is a constant colour (R, G, B) for the pixels an operation
// creates (padding, the corners a rotation uncovers).
type Fill [3]uint8

// Crop is PIL's img.crop((r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)): the
// pixels of r, where those outside src are 0 (black), as Pillow fills
// them.
func Crop(dst, src *RGB, r image.Rectangle) error {
	if r.Dx() <= 0 || r.Dy() <= 0 {
		return fmt.Errorf("crop: empty box %v", r)
	}
	if dst == src {
		return fmt.Errorf("crop: dst must not be src")
	}
	dst.resize(r.Dx(), r.Dy())
	in := r.Intersect(image.Rect(0, 0, src.W, src.H))
	if in != r {
		clear(dst.Pix)
	}
	if in.Empty() {
		return nil
	}
	for y := in.Min.Y; y < in.Max.Y; y++ {
		o := 3 * ((y-r.Min.Y)*dst.W + (in.Min.X - r.Min.X))
		s := 3 * (y*src.W + in.Min.X)
		copy(dst.Pix[o:o+3*in.Dx()], src.Pix[s:s+3*in.Dx()])
	}
	return nil
}

// FlipLR is PIL's transpose(FLIP_LEFT_RIGHT), in place.
func FlipLR(m *RGB) {
	for y := range m.H {
		row := m.Pix[3*y*m.W : 3*(y+1)*m.W]
		for i, j := 0, m.W-1; i < j; i, j = i+1, j-1 {
			a, b := row[3*i:3*i+3], row[3*j:3*j+3]
			a[0], a[1], a[2], b[0], b[1], b[2] = b[0], b[1], b[2], a[0], a[1], a[2]
		}
	}
}

// PadMode is how Pad fills the border: torchvision's padding_mode.
type PadMode int

// The padding modes of torchvision's F.pad (numpy.pad's for the last
// three).
const (
	PadConstant  PadMode = iota // the fill colour
	PadEdge                     // repeat the edge pixel
	PadReflect                  // mirror without repeating the edge: dcb|abcd|cba
	PadSymmetric                // mirror repeating the edge: cba|abcd|dcb
)

// ParsePadMode reads torchvision's padding_mode names.
func ParsePadMode(s string) (PadMode, error) {
	switch s {
	case "constant", "":
		return PadConstant, nil
	case "edge":
		return PadEdge, nil
	case "reflect":
		return PadReflect, nil
	case "symmetric":
		return PadSymmetric, nil
	}
	return 0, fmt.Errorf("padding_mode %q: want constant, edge, reflect or symmetric", s)
}

// padIndex maps a coordinate of the padded axis (−pad … n+pad−1, relative
// to the original) to the source index numpy.pad reads, or −1 for the
// constant fill.
func padIndex(i, n int, mode PadMode) int {
	if i >= 0 && i < n {
		return i
	}
	switch mode {
	case PadEdge:
		return min(max(i, 0), n-1)
	case PadReflect:
		if n == 1 {
			return 0
		}
		p := 2 * (n - 1) // numpy reflects repeatedly: period 2(n−1)
		i = ((i % p) + p) % p
		if i >= n {
			i = p - i
		}
		return i
	case PadSymmetric:
		p := 2 * n
		i = ((i % p) + p) % p
		if i >= n {
			i = p - 1 - i
		}
		return i
	}
	return -1
}

// Pad is torchvision's F.pad on a PIL image: left, top, right, bottom
// pixels added (ImageOps.expand with the fill colour for constant, numpy.pad
// otherwise). A negative padding crops that side, as torchvision does.
func Pad(dst, src *RGB, left, top, right, bottom int, mode PadMode, fill Fill) error {
	w, h := src.W+left+right, src.H+top+bottom
	if w <= 0 || h <= 0 {
		return fmt.Errorf("pad: padding (%d, %d, %d, %d) leaves no pixel of the %dx%d image", left, top, right, bottom, src.W, src.H)
	}
	if dst == src {
		return fmt.Errorf("pad: dst must not be src")
	}
	dst.resize(w, h)
	xs := make([]int, w)
	for x := range xs {
		xs[x] = padIndex(x-left, src.W, mode)
	}
	for y := range h {
		sy := padIndex(y-top, src.H, mode)
		out := dst.Pix[3*y*w : 3*(y+1)*w]
		for x, sx := range xs {
			if sy < 0 || sx < 0 {
				out[3*x], out[3*x+1], out[3*x+2] = fill[0], fill[1], fill[2]
				continue
			}
			copy(out[3*x:3*x+3], src.Pix[3*(sy*src.W+sx):])
		}
	}
	return nil
}

// pyRound15 is Python's round(x, 15): the double nearest to x's decimal
// expansion correctly rounded to 15 places (strconv rounds the exact
// binary value, as CPython's dtoa does).
func pyRound15(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 15, 64), 64)
	return v
}

// RotationMatrix is the inverse affine map (output pixel → input
// position) PIL's Image.rotate(angle, center=None, expand=False) builds
// for a w×h image: a, b, c, d, e, f of x' = a·x + b·y + c, y' = d·x + e·y
// + f, with Pillow's rounding of the cosine and sine to 15 decimals.
// angle is in degrees, counter-clockwise. cos and sin are the C
// library's, as Python's math module calls them.
func RotationMatrix(angle float64, w, h int) [6]float64 {
	cx, cy := float64(w)/2, float64(h)/2
	pi := math.Pi
	degToRad := pi / 180 // CPython: Py_MATH_PI / 180.0, a double division
	t := -(angle * degToRad)
	cos, sin := float64(C.cos(C.double(t))), float64(C.sin(C.double(t)))
	m := [6]float64{pyRound15(cos), pyRound15(sin), 0, pyRound15(-sin), pyRound15(cos), 0}
	// matrix[2], matrix[5] = transform(-cx, -cy, matrix); += center.
	// The float64() conversions keep each product rounded (no fused
	// multiply-add), as CPython evaluates it.
	m[2] = float64(m[0]*-cx) + float64(m[1]*-cy) + m[2]
	m[5] = float64(m[3]*-cx) + float64(m[4]*-cy) + m[5]
	m[2] += cx
	m[5] += cy
	return m
}

// pyMod360 is Python's angle % 360.0 (the result has the divisor's sign).
func pyMod360(a float64) float64 {
	m := math.Mod(a, 360)
	if m != 0 && m < 0 {
		m += 360
	}
	if m == 0 {
		return 0
	}
	return m
}

// Rotate is PIL's img.rotate(angle, NEAREST, expand=False, center=None,
// fillcolor=fill), as torchvision's F.rotate calls it on PIL images: the
// image turned counter-clockwise by angle degrees about its centre, same
// size, uncovered corners filled. It follows Pillow 9.4 step by step:
// the fast paths for 0° and 180° (and 90°/270° on square images), then
// ImagingTransformAffine's nearest-neighbour loop in 16.16 fixed point
// (or doubles for images too large for it).
func Rotate(dst, src *RGB, angle float64, fill Fill) error {
	if dst == src {
		return fmt.Errorf("rotate: dst must not be src")
	}
	if math.IsNaN(angle) || math.IsInf(angle, 0) {
		return fmt.Errorf("rotate: angle %v", angle)
	}
	w, h := src.W, src.H
	a := pyMod360(angle)
	switch {
	case a == 0:
		dst.copyFrom(src)
		return nil
	case a == 180:
		dst.resize(w, h)
		n := w * h
		for i := range n {
			copy(dst.Pix[3*i:3*i+3], src.Pix[3*(n-1-i):])
		}
		return nil
	case (a == 90 || a == 270) && w == h:
		dst.resize(w, h)
		for y := range h {
			for x := range w {
				var sx, sy int
				if a == 90 { // ROTATE_90: out(x, y) = in(w−1−y, x)
					sx, sy = w-1-y, x
				} else { // ROTATE_270: out(x, y) = in(y, h−1−x)
					sx, sy = y, h-1-x
				}
				copy(dst.Pix[3*(y*w+x):3*(y*w+x)+3], src.Pix[3*(sy*w+sx):])
			}
		}
		return nil
	}
	m := RotationMatrix(a, w, h)
	dst.resize(w, h)
	for i := 0; i < len(dst.Pix); i += 3 {
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = fill[0], fill[1], fill[2]
	}
	at := func(xin, yin, x, y int) {
		if xin >= 0 && xin < w && yin >= 0 && yin < h {
			copy(dst.Pix[3*(y*w+x):3*(y*w+x)+3], src.Pix[3*(yin*w+xin):])
		}
	}
	checkFixed := func(x, y float64) bool {
		return math.Abs(float64(x*m[0])+float64(y*m[1])+m[2]) < 32768 &&
			math.Abs(float64(x*m[3])+float64(y*m[4])+m[5]) < 32768
	}
	fw, fh := float64(w), float64(h)
	if checkFixed(0, 0) && checkFixed(fw, fh) && checkFixed(0, fh) && checkFixed(fw, 0) {
		// affine_fixed: FIX(v) = FLOOR(v·65536 + 0.5)
		fix := func(v float64) int32 {
			v = float64(v*65536) + 0.5
			if v < 0 {
				return int32(math.Floor(v))
			}
			return int32(v)
		}
		a0, a1, a3, a4 := fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
		a2 := fix(m[2] + float64(m[0]*0.5) + float64(m[1]*0.5))
		a5 := fix(m[5] + float64(m[3]*0.5) + float64(m[4]*0.5))
		for y := range h {
			xx, yy := a2, a5
			for x := range w {
				at(int(xx>>16), int(yy>>16), x, y)
				xx += a0
				yy += a3
			}
			a2 += a1
			a5 += a4
		}
		return nil
	}
	// the floating-point loop of ImagingTransformAffine
	coord := func(v float64) int {
		if v < 0 {
			return -1
		}
		return int(v)
	}
	xo := m[2] + float64(m[1]*0.5) + float64(m[0]*0.5)
	yo := m[5] + float64(m[4]*0.5) + float64(m[3]*0.5)
	for y := range h {
		xx, yy := xo, yo
		for x := range w {
			at(coord(xx), coord(yy), x, y)
			xx += m[0]
			yy += m[3]
		}
		xo += m[1]
		yo += m[4]
	}
	return nil
}

// Luma is PIL's convert("L") of one RGB pixel (ITU-R 601-2 luma in 16.16
// fixed point, Pillow >= 8.3's L24).
func Luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// Gray is PIL's convert("L").convert("RGB"): every pixel replaced by its
// luma in all three channels (torchvision's Grayscale(3) on PIL images,
// and the degenerate image of ImageEnhance.Color). dst may be src.
func Gray(dst, src *RGB) {
	dst.resize(src.W, src.H)
	for i := 0; i < len(src.Pix); i += 3 {
		l := Luma(src.Pix[i], src.Pix[i+1], src.Pix[i+2])
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = l, l, l
	}
}

// MeanLuma is int(ImageStat.Stat(img.convert("L")).mean[0] + 0.5), the
// grey level of ImageEnhance.Contrast's degenerate image.
func MeanLuma(m *RGB) int {
	var hist [256]int
	for i := 0; i < len(m.Pix); i += 3 {
		hist[Luma(m.Pix[i], m.Pix[i+1], m.Pix[i+2])]++
	}
	sum, count := 0.0, 0
	for j, c := range hist {
		sum += float64(j * c)
		count += c
	}
	return int(sum/float64(count) + 0.5)
}

// AdjustBrightness is ImageEnhance.Brightness(img).enhance(factor), as
// torchvision's adjust_brightness on PIL images: a blend with black. dst
// may be src.
func AdjustBrightness(dst, src *RGB, factor float64) error {
	var black RGB
	black.resize(src.W, src.H)
	clear(black.Pix)
	return Blend(dst, &black, src, factor)
}

// AdjustContrast is ImageEnhance.Contrast(img).enhance(factor): a blend
// with the uniform grey of the image's mean luma. dst may be src.
func AdjustContrast(dst, src *RGB, factor float64) error {
	var grey RGB
	grey.resize(src.W, src.H)
	v := byte(MeanLuma(src))
	for i := range grey.Pix {
		grey.Pix[i] = v
	}
	return Blend(dst, &grey, src, factor)
}

// AdjustSaturation is ImageEnhance.Color(img).enhance(factor): a blend
// with the image's own greyscale version. dst may be src.
func AdjustSaturation(dst, src *RGB, factor float64) error {
	var grey RGB
	Gray(&grey, src)
	return Blend(dst, &grey, src, factor)
}

// AdjustHue is torchvision's F_pil.adjust_hue: convert to HSV, add
// np.uint8(hue_factor·255) to H with uint8 wrap-around, convert back.
// hue_factor must be in [−0.5, 0.5]. dst may be src.
func AdjustHue(dst, src *RGB, hueFactor float64) error {
	if !(hueFactor >= -0.5 && hueFactor <= 0.5) {
		return fmt.Errorf("hue factor %v is not in [-0.5, 0.5]", hueFactor)
	}
	dst.copyFrom(src)
	if len(dst.Pix) == 0 {
		return nil
	}
	// np.uint8 of a negative float wraps as the C conversion through int
	// does on x86-64: −12.75 → −12 → 244.
	shift := uint8(int64(hueFactor * 255))
	ToHSV(dst)
	for i := 0; i < len(dst.Pix); i += 3 {
		dst.Pix[i] += shift
	}
	FromHSV(dst)
	return nil
}
