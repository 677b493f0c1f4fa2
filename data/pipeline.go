package data

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/fer-research/fer/data/imaging"
)

// A Pipeline is a torchvision transforms.Compose: a list of steps applied
// in order to a decoded image. Steps before to_tensor work on the 8-bit
// image as torchvision's do on PIL images (resize, crops, flips,
// rotation, colour jitter, greyscale), with Pillow's arithmetic
// (data/imaging), so a deterministic pipeline gives torchvision's tensor
// bit for bit. to_tensor turns the image into float32 C×H×W in [0, 1];
// the steps after it (normalize, random_erasing) work on that tensor, as
// torchvision's do.
//
// Random steps draw their parameters from the random generator the
// loader passes (never from a global source), in pipeline order, so a
// sample is a function of (image, rng state): that is what keeps fer's
// runs repeatable and --resume exact. The draws follow torchvision's
// ranges and semantics (ColorJitter's random order of its four
// adjustments, RandomErasing's ten tries, RandomChoice's uniform pick),
// though not its random-number sequence: fer's own generator replaces
// torch.rand and Python's random.
//
// A pipeline given several frames (a clip) draws each step's parameters
// once and applies them to every frame, like torchvision's video
// transforms.
//
// ParsePipeline reads the YAML list form documented in README.md
// ("Static-image datasets").
type Pipeline struct {
	steps []step
	// channels is the tensor's channel count (1 after grayscale: 1).
	channels int
}

// step is one transform. Image steps run before to_tensor, tensor steps
// after it.
type step interface {
	// name is the spec key, for messages and traces.
	name() string
	// random reports whether the step draws parameters.
	random() bool
}

// imageStep transforms the 8-bit image (all frames the same way).
type imageStep interface {
	step
	// draw picks the step's random parameters for a w×h image (nil for
	// a deterministic step).
	draw(rng *rand.Rand, w, h int) any
	// apply transforms f with the drawn parameters p.
	apply(f *frame, p any) error
	// size is the output size for a w×h input.
	size(w, h int) (int, int, error)
}

// tensorStep transforms the C×H×W float tensor.
type tensorStep interface {
	step
	draw(rng *rand.Rand, c, h, w int) any
	apply(t []float32, c, h, w int, p any) error
}

// frame is one image in the pipeline: cur holds the pixels, spare is a
// second buffer for steps that cannot work in place; gray marks PIL mode
// "L" (all three channels equal, to_tensor gives one channel).
type frame struct {
	cur, spare *imaging.RGB
	gray       bool
}

func (f *frame) swap() { f.cur, f.spare = f.spare, f.cur }

// TraceStep records one step as it was applied: its name and the
// parameters it drew (nil for deterministic steps). A Trace lets a test
// replay exactly the same transform with torchvision's functional ops.
type TraceStep struct {
	Op     string `json:"op"`
	Params any    `json:"params,omitempty"`
}

// Trace is the record of one Apply.
type Trace []TraceStep

func (t *Trace) add(op string, p any) {
	if t != nil {
		*t = append(*t, TraceStep{Op: op, Params: p})
	}
}

// Random reports whether any step draws random parameters.
func (p *Pipeline) Random() bool {
	for _, s := range p.steps {
		if s.random() {
			return true
		}
	}
	return false
}

// Channels is the channel count of the output tensor.
func (p *Pipeline) Channels() int { return p.channels }

// Steps names the steps in order.
func (p *Pipeline) Steps() []string {
	out := make([]string, len(p.steps))
	for i, s := range p.steps {
		out[i] = s.name()
	}
	return out
}

// OutSize is the output width and height for a w×h input image.
func (p *Pipeline) OutSize(w, h int) (int, int, error) {
	var err error
	for _, s := range p.steps {
		is, ok := s.(imageStep)
		if !ok {
			break
		}
		if w, h, err = is.size(w, h); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", s.name(), err)
		}
	}
	return w, h, nil
}

// FixedSize reports the output size when it does not depend on the
// input's (the pipeline resizes to (h, w) or crops last).
func (p *Pipeline) FixedSize() (w, h int, ok bool) {
	w1, h1, err1 := p.OutSize(331, 257)
	w2, h2, err2 := p.OutSize(523, 619)
	if err1 != nil || err2 != nil || w1 != w2 || h1 != h2 {
		return 0, 0, false
	}
	return w1, h1, true
}

// workspace is a worker's reusable image memory.
type workspace struct{ a, b imaging.RGB }

var workspacePool = sync.Pool{New: func() any { return new(workspace) }}

// Apply transforms one image (region of src; the whole image when
// region is empty) into a C×H×W float32 tensor, drawing random
// parameters from rng (which may be nil only for a pipeline without
// random steps). trace, when not nil, receives every step with its
// parameters.
func (p *Pipeline) Apply(src *imaging.RGB, region image.Rectangle, rng *rand.Rand, trace *Trace) ([]float32, [3]int, error) {
	out, shape, err := p.ApplyFrames([]*imaging.RGB{src}, region, rng, trace)
	if err != nil {
		return nil, shape, err
	}
	return out[0], shape, nil
}

// ApplyFile decodes an image file (JPEG or PNG, as the data sets'
// readers do) and transforms the whole image with Apply. Errors name the
// file.
func (p *Pipeline) ApplyFile(path string, rng *rand.Rand) ([]float32, [3]int, error) {
	buf := rgbPool.Get().(*imaging.RGB)
	defer rgbPool.Put(buf)
	if err := decodeImageFile(path, buf); err != nil {
		return nil, [3]int{}, err
	}
	out, shape, err := p.Apply(buf, image.Rectangle{}, rng, nil)
	if err != nil {
		return nil, shape, fmt.Errorf("%s: %w", path, err)
	}
	return out, shape, nil
}

// ApplyFrames transforms the frames of a clip with the same parameters:
// each random step draws once (from the first frame's size) and applies
// the draw to every frame. All frames must have the same size.
func (p *Pipeline) ApplyFrames(src []*imaging.RGB, region image.Rectangle, rng *rand.Rand, trace *Trace) ([][]float32, [3]int, error) {
	var shape [3]int
	if len(src) == 0 {
		return nil, shape, fmt.Errorf("transform: no image")
	}
	if rng == nil && p.Random() {
		return nil, shape, fmt.Errorf("transform: the pipeline has random steps and needs a random generator")
	}
	frames := make([]*frame, len(src))
	var pooled []*workspace
	defer func() {
		for _, ws := range pooled {
			workspacePool.Put(ws)
		}
	}()
	for i, s := range src {
		if s.W != src[0].W || s.H != src[0].H {
			return nil, shape, fmt.Errorf("transform: frame %d is %dx%d, frame 0 %dx%d", i, s.W, s.H, src[0].W, src[0].H)
		}
		ws := workspacePool.Get().(*workspace)
		pooled = append(pooled, ws)
		f := &frame{cur: &ws.a, spare: &ws.b}
		r := region
		if r.Empty() {
			r = image.Rect(0, 0, s.W, s.H)
		}
		if err := imaging.Crop(f.cur, s, r); err != nil {
			return nil, shape, fmt.Errorf("transform: %w", err)
		}
		frames[i] = f
	}
	k := 0
	for ; k < len(p.steps); k++ {
		is, ok := p.steps[k].(imageStep)
		if !ok {
			break
		}
		var params any
		if is.random() {
			params = is.draw(rng, frames[0].cur.W, frames[0].cur.H)
		}
		trace.add(is.name(), params)
		for _, f := range frames {
			if err := is.apply(f, params); err != nil {
				return nil, shape, fmt.Errorf("transform %s: %w", is.name(), err)
			}
		}
	}
	// to_tensor (explicit, or implied at the end)
	if k < len(p.steps) {
		if _, ok := p.steps[k].(toTensor); ok {
			trace.add("to_tensor", nil)
			k++
		}
	}
	c, h, w := 3, frames[0].cur.H, frames[0].cur.W
	if frames[0].gray {
		c = 1
	}
	shape = [3]int{c, h, w}
	out := make([][]float32, len(frames))
	for i, f := range frames {
		out[i] = toTensorCHW(f.cur, c)
	}
	for ; k < len(p.steps); k++ {
		ts := p.steps[k].(tensorStep)
		var params any
		if ts.random() {
			params = ts.draw(rng, c, h, w)
		}
		trace.add(ts.name(), params)
		for _, t := range out {
			if err := ts.apply(t, c, h, w, params); err != nil {
				return nil, shape, fmt.Errorf("transform %s: %w", ts.name(), err)
			}
		}
	}
	return out, shape, nil
}

// toTensorCHW is torchvision's ToTensor on a PIL image: planes of v/255
// in float32 (one plane for mode L).
func toTensorCHW(m *imaging.RGB, c int) []float32 {
	n := m.W * m.H
	out := make([]float32, c*n)
	for i := range n {
		for ch := range c {
			out[ch*n+i] = float32(m.Pix[3*i+ch]) / 255
		}
	}
	return out
}

// uniformDraw is torch.empty(1).uniform_(lo, hi) with fer's generator.
func uniformDraw(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// ---- image steps ----

// resizeStep is transforms.Resize(size) with bilinear interpolation
// (Pillow's, antialiased when shrinking): size = (h, w), or the shorter
// side when short > 0 (the longer one scaled, truncated, as
// torchvision's _compute_resized_output_size).
type resizeStep struct {
	h, w  int
	short int
	// maxSize caps the longer side of a shorter-side resize.
	maxSize int
}

func (resizeStep) name() string { return "resize" }
func (resizeStep) random() bool { return false }

func (s resizeStep) size(w, h int) (int, int, error) {
	if s.short == 0 {
		return s.w, s.h, nil
	}
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	ns, nl := s.short, int(float64(s.short*long)/float64(short))
	if s.maxSize > 0 && nl > s.maxSize {
		ns, nl = int(float64(s.maxSize*ns)/float64(nl)), s.maxSize
	}
	if w <= h {
		return ns, nl, nil
	}
	return nl, ns, nil
}

func (resizeStep) draw(*rand.Rand, int, int) any { return nil }

func (s resizeStep) apply(f *frame, _ any) error {
	w, h, err := s.size(f.cur.W, f.cur.H)
	if err != nil {
		return err
	}
	if w < 1 || h < 1 {
		return fmt.Errorf("output size %dx%d of a %dx%d image", w, h, f.cur.W, f.cur.H)
	}
	if w == f.cur.W && h == f.cur.H {
		return nil // torchvision returns the image unchanged
	}
	r, err := imaging.NewResampler(f.cur.W, f.cur.H, imaging.Spec{Crop: image.Rect(0, 0, f.cur.W, f.cur.H), W: w, H: h})
	if err != nil {
		return err
	}
	if err := r.ApplyRGB(f.cur, f.spare, nil); err != nil {
		return err
	}
	f.swap()
	return nil
}

// centerCropStep is transforms.CenterCrop((h, w)): zero-padded first when
// the image is smaller (F.center_crop), then the centred box, with
// Python's round-half-to-even of the offsets.
type centerCropStep struct{ h, w int }

func (centerCropStep) name() string                      { return "center_crop" }
func (centerCropStep) random() bool                      { return false }
func (s centerCropStep) size(int, int) (int, int, error) { return s.w, s.h, nil }
func (centerCropStep) draw(*rand.Rand, int, int) any     { return nil }

func (s centerCropStep) apply(f *frame, _ any) error {
	iw, ih := f.cur.W, f.cur.H
	if s.w > iw || s.h > ih {
		l, t, r, b := 0, 0, 0, 0
		if s.w > iw {
			l, r = (s.w-iw)/2, (s.w-iw+1)/2
		}
		if s.h > ih {
			t, b = (s.h-ih)/2, (s.h-ih+1)/2
		}
		if err := imaging.Pad(f.spare, f.cur, l, t, r, b, imaging.PadConstant, imaging.Fill{}); err != nil {
			return err
		}
		f.swap()
		iw, ih = f.cur.W, f.cur.H
		if iw == s.w && ih == s.h {
			return nil
		}
	}
	top := int(math.RoundToEven(float64(ih-s.h) / 2))
	left := int(math.RoundToEven(float64(iw-s.w) / 2))
	if err := imaging.Crop(f.spare, f.cur, image.Rect(left, top, left+s.w, top+s.h)); err != nil {
		return err
	}
	f.swap()
	return nil
}

// padding is torchvision's padding argument resolved to left, top,
// right, bottom.
type padding struct{ l, t, r, b int }

func (p padding) zero() bool { return p == padding{} }

// randomCropStep is transforms.RandomCrop(size, padding, pad_if_needed,
// fill, padding_mode).
type randomCropStep struct {
	h, w        int
	pad         padding
	padIfNeeded bool
	fill        imaging.Fill
	mode        imaging.PadMode
}

// CropParams are RandomCrop's drawn parameters: the box's top-left
// corner in the (padded) image.
type CropParams struct {
	Top  int `json:"top"`
	Left int `json:"left"`
}

func (randomCropStep) name() string { return "random_crop" }
func (randomCropStep) random() bool { return true }

// padded is the image size after the step's padding.
func (s randomCropStep) padded(w, h int) (int, int) {
	w += s.pad.l + s.pad.r
	h += s.pad.t + s.pad.b
	if s.padIfNeeded {
		if w < s.w {
			w = s.w + (s.w - w) // torchvision pads (size − width) on both sides
		}
		if h < s.h {
			h = s.h + (s.h - h)
		}
	}
	return w, h
}

func (s randomCropStep) size(w, h int) (int, int, error) {
	pw, ph := s.padded(w, h)
	if pw < s.w || ph < s.h {
		return 0, 0, fmt.Errorf("crop %dx%d is larger than the %dx%d image (after padding); resize first, or set pad_if_needed", s.w, s.h, pw, ph)
	}
	return s.w, s.h, nil
}

func (s randomCropStep) draw(rng *rand.Rand, w, h int) any {
	pw, ph := s.padded(w, h)
	if pw < s.w || ph < s.h || (pw == s.w && ph == s.h) {
		return CropParams{}
	}
	return CropParams{Top: rng.IntN(ph - s.h + 1), Left: rng.IntN(pw - s.w + 1)}
}

func (s randomCropStep) apply(f *frame, p any) error {
	if _, _, err := s.size(f.cur.W, f.cur.H); err != nil {
		return err
	}
	if !s.pad.zero() {
		if err := imaging.Pad(f.spare, f.cur, s.pad.l, s.pad.t, s.pad.r, s.pad.b, s.mode, s.fill); err != nil {
			return err
		}
		f.swap()
	}
	if s.padIfNeeded && f.cur.W < s.w {
		d := s.w - f.cur.W
		if err := imaging.Pad(f.spare, f.cur, d, 0, d, 0, s.mode, s.fill); err != nil {
			return err
		}
		f.swap()
	}
	if s.padIfNeeded && f.cur.H < s.h {
		d := s.h - f.cur.H
		if err := imaging.Pad(f.spare, f.cur, 0, d, 0, d, s.mode, s.fill); err != nil {
			return err
		}
		f.swap()
	}
	c := p.(CropParams)
	if f.cur.W == s.w && f.cur.H == s.h {
		return nil
	}
	if err := imaging.Crop(f.spare, f.cur, image.Rect(c.Left, c.Top, c.Left+s.w, c.Top+s.h)); err != nil {
		return err
	}
	f.swap()
	return nil
}

// hflipStep is transforms.RandomHorizontalFlip(p).
type hflipStep struct{ p float64 }

// FlipParams say whether the image was mirrored.
type FlipParams struct {
	Flip bool `json:"flip"`
}

func (hflipStep) name() string                        { return "hflip" }
func (hflipStep) random() bool                        { return true }
func (hflipStep) size(w, h int) (int, int, error)     { return w, h, nil }
func (s hflipStep) draw(rng *rand.Rand, _, _ int) any { return FlipParams{rng.Float64() < s.p} }

func (hflipStep) apply(f *frame, p any) error {
	if p.(FlipParams).Flip {
		imaging.FlipLR(f.cur)
	}
	return nil
}

// rotationStep is transforms.RandomRotation(degrees) with its defaults
// interpolation NEAREST, expand False, center None, and fill.
type rotationStep struct {
	lo, hi float64
	fill   imaging.Fill
}

// RotationParams are the drawn angle in degrees (counter-clockwise).
type RotationParams struct {
	Angle float64 `json:"angle"`
}

func (rotationStep) name() string                    { return "random_rotation" }
func (rotationStep) random() bool                    { return true }
func (rotationStep) size(w, h int) (int, int, error) { return w, h, nil }
func (s rotationStep) draw(rng *rand.Rand, _, _ int) any {
	return RotationParams{uniformDraw(rng, s.lo, s.hi)}
}

func (s rotationStep) apply(f *frame, p any) error {
	fill := s.fill
	if f.gray { // PIL mode L takes int(fill) of a single value
		fill = imaging.Fill{fill[0], fill[0], fill[0]}
	}
	if err := imaging.Rotate(f.spare, f.cur, p.(RotationParams).Angle, fill); err != nil {
		return err
	}
	f.swap()
	return nil
}

// colorJitterStep is transforms.ColorJitter: each non-nil range yields a
// factor drawn uniformly; the four adjustments run in a random order
// (torch.randperm(4): 0 brightness, 1 contrast, 2 saturation, 3 hue).
type colorJitterStep struct {
	brightness, contrast, saturation, hue *[2]float64
}

// JitterParams are ColorJitter's drawn parameters: the order of the four
// adjustments and each factor (nil: that adjustment is off).
type JitterParams struct {
	Order      [4]int   `json:"order"`
	Brightness *float64 `json:"brightness"`
	Contrast   *float64 `json:"contrast"`
	Saturation *float64 `json:"saturation"`
	Hue        *float64 `json:"hue"`
}

func (colorJitterStep) name() string                    { return "color_jitter" }
func (colorJitterStep) random() bool                    { return true }
func (colorJitterStep) size(w, h int) (int, int, error) { return w, h, nil }

func (s colorJitterStep) draw(rng *rand.Rand, _, _ int) any {
	var p JitterParams
	copy(p.Order[:], rng.Perm(4))
	f := func(r *[2]float64) *float64 {
		if r == nil {
			return nil
		}
		v := uniformDraw(rng, r[0], r[1])
		return &v
	}
	p.Brightness, p.Contrast, p.Saturation, p.Hue = f(s.brightness), f(s.contrast), f(s.saturation), f(s.hue)
	return p
}

func (colorJitterStep) apply(f *frame, pp any) error {
	p := pp.(JitterParams)
	for _, id := range p.Order {
		var err error
		switch {
		case id == 0 && p.Brightness != nil:
			err = imaging.AdjustBrightness(f.cur, f.cur, *p.Brightness)
		case id == 1 && p.Contrast != nil:
			err = imaging.AdjustContrast(f.cur, f.cur, *p.Contrast)
		case id == 2 && p.Saturation != nil:
			err = imaging.AdjustSaturation(f.cur, f.cur, *p.Saturation)
		case id == 3 && p.Hue != nil && !f.gray: // adjust_hue leaves mode L alone
			err = imaging.AdjustHue(f.cur, f.cur, *p.Hue)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// grayscaleStep is transforms.Grayscale(num_output_channels): PIL's
// convert("L"), kept as one channel or replicated to three.
type grayscaleStep struct{ channels int }

func (grayscaleStep) name() string                    { return "grayscale" }
func (grayscaleStep) random() bool                    { return false }
func (grayscaleStep) size(w, h int) (int, int, error) { return w, h, nil }
func (grayscaleStep) draw(*rand.Rand, int, int) any   { return nil }

func (s grayscaleStep) apply(f *frame, _ any) error {
	imaging.Gray(f.cur, f.cur)
	f.gray = s.channels == 1
	return nil
}

// randomGrayscaleStep is transforms.RandomGrayscale(p): greyscale with as
// many channels as the input has.
type randomGrayscaleStep struct{ p float64 }

// GrayParams say whether the image was turned grey.
type GrayParams struct {
	Gray bool `json:"gray"`
}

func (randomGrayscaleStep) name() string                    { return "random_grayscale" }
func (randomGrayscaleStep) random() bool                    { return true }
func (randomGrayscaleStep) size(w, h int) (int, int, error) { return w, h, nil }
func (s randomGrayscaleStep) draw(rng *rand.Rand, _, _ int) any {
	return GrayParams{rng.Float64() < s.p}
}

func (randomGrayscaleStep) apply(f *frame, p any) error {
	if p.(GrayParams).Gray {
		imaging.Gray(f.cur, f.cur)
	}
	return nil
}

// randomChoiceStep is transforms.RandomChoice(transforms, p): one of the
// steps, picked with probabilities p (uniform when nil, as
// random.choices).
type randomChoiceStep struct {
	choices []imageStep
	cum     []float64 // cumulative weights; nil = uniform
}

// ChoiceParams are the picked step's index and its own parameters.
type ChoiceParams struct {
	Index  int `json:"index"`
	Params any `json:"params,omitempty"`
}

func (randomChoiceStep) name() string { return "random_choice" }
func (randomChoiceStep) random() bool { return true }

func (s randomChoiceStep) size(w, h int) (int, int, error) {
	w0, h0, err := s.choices[0].size(w, h)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range s.choices[1:] {
		w1, h1, err := c.size(w, h)
		if err != nil {
			return 0, 0, err
		}
		if w1 != w0 || h1 != h0 {
			return 0, 0, fmt.Errorf("the choices give different sizes (%dx%d by %s, %dx%d by %s)", w0, h0, s.choices[0].name(), w1, h1, c.name())
		}
	}
	return w0, h0, nil
}

func (s randomChoiceStep) draw(rng *rand.Rand, w, h int) any {
	k := 0
	if s.cum == nil {
		k = rng.IntN(len(s.choices))
	} else {
		u := rng.Float64() * s.cum[len(s.cum)-1]
		for k < len(s.cum)-1 && u >= s.cum[k] {
			k++
		}
	}
	var p any
	if s.choices[k].random() {
		p = s.choices[k].draw(rng, w, h)
	}
	return ChoiceParams{Index: k, Params: p}
}

func (s randomChoiceStep) apply(f *frame, p any) error {
	c := p.(ChoiceParams)
	return s.choices[c.Index].apply(f, c.Params)
}

// ---- to_tensor and tensor steps ----

// toTensor marks transforms.ToTensor's place in the list.
type toTensor struct{}

func (toTensor) name() string { return "to_tensor" }
func (toTensor) random() bool { return false }

// normalizeStep is transforms.Normalize(mean, std): (x − mean)/std per
// channel in float32, as torchvision's sub_ and div_.
type normalizeStep struct{ mean, std []float32 }

func (normalizeStep) name() string                       { return "normalize" }
func (normalizeStep) random() bool                       { return false }
func (normalizeStep) draw(*rand.Rand, int, int, int) any { return nil }

func (s normalizeStep) apply(t []float32, c, h, w int, _ any) error {
	if len(s.mean) != 1 && len(s.mean) != c {
		return fmt.Errorf("%d means and stds for a %d-channel tensor", len(s.mean), c)
	}
	n := h * w
	for ch := range c {
		m, sd := s.mean[0], s.std[0]
		if len(s.mean) > 1 {
			m, sd = s.mean[ch], s.std[ch]
		}
		plane := t[ch*n : (ch+1)*n]
		for i, v := range plane {
			plane[i] = (v - m) / sd
		}
	}
	return nil
}

// erasingStep is transforms.RandomErasing(p, scale, ratio, value) on the
// tensor: with probability p, up to 10 tries of a box with area
// uniform in scale·H·W and log-uniform aspect ratio in ratio; the first
// box that fits strictly inside is set to value (a constant per channel,
// or standard-normal noise for value "random").
type erasingStep struct {
	p            float64
	scale, ratio [2]float64
	value        []float32 // nil: random
}

// ErasingParams are RandomErasing's draw: Erase false when the
// probability test failed or no box fitted in 10 tries; otherwise the
// box (top I, left J, height H, width W) and the values written (one per
// channel, or C·H·W random values).
type ErasingParams struct {
	Erase bool      `json:"erase"`
	I     int       `json:"i"`
	J     int       `json:"j"`
	H     int       `json:"h"`
	W     int       `json:"w"`
	Value []float32 `json:"value,omitempty"`
}

func (erasingStep) name() string { return "random_erasing" }
func (erasingStep) random() bool { return true }

func (s erasingStep) draw(rng *rand.Rand, c, ih, iw int) any {
	if !(rng.Float64() < s.p) {
		return ErasingParams{}
	}
	area := float64(ih * iw)
	lr0, lr1 := math.Log(s.ratio[0]), math.Log(s.ratio[1])
	for range 10 {
		eraseArea := area * uniformDraw(rng, s.scale[0], s.scale[1])
		aspect := math.Exp(uniformDraw(rng, lr0, lr1))
		h := int(math.RoundToEven(math.Sqrt(eraseArea * aspect)))
		w := int(math.RoundToEven(math.Sqrt(eraseArea / aspect)))
		if !(h < ih && w < iw) {
			continue
		}
		var v []float32
		if s.value == nil {
			v = make([]float32, c*h*w)
			for k := range v {
				v[k] = float32(rng.NormFloat64())
			}
		} else {
			v = s.value
		}
		i := rng.IntN(ih - h + 1)
		j := rng.IntN(iw - w + 1)
		return ErasingParams{Erase: true, I: i, J: j, H: h, W: w, Value: v}
	}
	return ErasingParams{}
}

func (erasingStep) apply(t []float32, c, ih, iw int, pp any) error {
	p := pp.(ErasingParams)
	if !p.Erase {
		return nil
	}
	if len(p.Value) != 1 && len(p.Value) != c && len(p.Value) != c*p.H*p.W {
		return fmt.Errorf("%d erasing values for a %d-channel tensor", len(p.Value), c)
	}
	for ch := range c {
		for y := range p.H {
			row := t[(ch*ih+p.I+y)*iw+p.J : (ch*ih+p.I+y)*iw+p.J+p.W]
			for x := range row {
				switch len(p.Value) {
				case 1:
					row[x] = p.Value[0]
				case c:
					row[x] = p.Value[ch]
				default:
					row[x] = p.Value[(ch*p.H+y)*p.W+x]
				}
			}
		}
	}
	return nil
}
