package fer

import (
	"fmt"
	"image"
	"image/draw"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/synth"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	xdraw "golang.org/x/image/draw"
)

// SynthOptions are the options of the "synth" data set (data.options in a
// config): fer's embedded procedural benchmark (data/synth).
type SynthOptions struct {
	TrainN int `yaml:"train_n"`
	ValN   int `yaml:"val_n"`
	TestN  int `yaml:"test_n"`
	// Size is the image side; Frames > 0 makes clips of that many frames
	// (inputs [B,T,3,H,W]).
	Size   int `yaml:"size"`
	Frames int `yaml:"frames"`
	// Seed fixes the generated images; it is separate from the run seed so
	// every run trains and is judged on the same benchmark.
	Seed  int64   `yaml:"seed"`
	Noise float64 `yaml:"noise"`
	// Crop > 0 cuts the central Crop×Crop window out of each Size×Size
	// image (the face without most of the background), so the network
	// sees the face at Size's detail for Crop's cost.
	Crop int `yaml:"crop"`
	// Augment applies a random horizontal flip and a shift of up to
	// Shift pixels to training batches.
	Augment bool `yaml:"augment"`
	Shift   int  `yaml:"shift"`
	// Normalize is "imagenet" (torchvision mean/std) or "none" ([0,1]).
	Normalize string `yaml:"normalize"`
	// FrameTargets (clips only) gives per-frame targets label [B,T],
	// va [B,T,2] and au [B,T,8] from every frame's drawing, for
	// sequence models; otherwise the clip has its apex frame's labels.
	FrameTargets bool `yaml:"frame_targets"`
	// Quadruplet (QCS) and Pairs (DCS) make training batches tuples of
	// still images, as for the still-image data sets (StaticDataOptions):
	// inputs [anchor, positive, negative, negative2] with targets label and
	// label_neg, or [anchor, positive] with label; each image augmented
	// on its own. NegativeClass is "data" (default) or "uniform".
	// Classes restricts the faces to these expressions (names of
	// synth.Classes); the model still has all seven outputs. Empty: all.
	Classes       []string `yaml:"classes"`
	Quadruplet    bool     `yaml:"quadruplet"`
	Pairs         bool     `yaml:"pairs"`
	NegativeClass string   `yaml:"negative_class"`
}

// DefaultSynthOptions are the options a config leaves unset (fercli demo
// sets its own: 6000/700/1400 faces of 64×64, central 48×48 crop).
func DefaultSynthOptions() SynthOptions {
	return SynthOptions{TrainN: 2800, ValN: 700, TestN: 700, Size: 48, Seed: 2024,
		Augment: true, Shift: 3, Normalize: "imagenet"}
}

func init() {
	RegisterDataset("synth", "embedded procedural faces, 7 expressions, with valence/arousal and 8 AUs (data/synth); options train_n, val_n, test_n, size, frames, seed, noise, crop, augment, shift, normalize, frame_targets, classes (a subset), quadruplet (QCS) / pairs (DCS), negative_class", openSynth)
}

func openSynth(cfg DataConfig, _ int64) (*Splits, error) {
	o := DefaultSynthOptions()
	if err := DecodeOptions(cfg.Options, &o, "dataset synth"); err != nil {
		return nil, err
	}
	if o.TrainN < 1 || o.ValN < 0 || o.TestN < 0 {
		return nil, fmt.Errorf("train_n = %d, val_n = %d, test_n = %d: want train_n >= 1 and the others >= 0", o.TrainN, o.ValN, o.TestN)
	}
	if o.Size == 0 {
		o.Size = synth.DefaultSize
	}
	if o.Size < synth.MinSize || o.Size > synth.MaxSize {
		return nil, fmt.Errorf("size = %d, want %d..%d", o.Size, synth.MinSize, synth.MaxSize)
	}
	if o.Frames == 1 || o.Frames < 0 || o.Frames > synth.MaxFrames {
		return nil, fmt.Errorf("frames = %d, want 0 (still images) or 2..%d", o.Frames, synth.MaxFrames)
	}
	side := o.Size
	if o.Crop != 0 {
		if o.Crop < synth.MinSize/2 || o.Crop > o.Size {
			return nil, fmt.Errorf("crop = %d, want 0 (none) or %d..size (%d)", o.Crop, synth.MinSize/2, o.Size)
		}
		side = o.Crop
	}
	if o.Shift < 0 || o.Shift >= side/4 {
		return nil, fmt.Errorf("shift = %d, want 0..%d", o.Shift, side/4-1)
	}
	mean, std := synth.ImageNetMean, synth.ImageNetStd
	switch o.Normalize {
	case "imagenet", "":
	case "none":
		mean, std = synth.ZeroMean, synth.UnitStd
	default:
		return nil, fmt.Errorf("normalize = %q, want imagenet or none", o.Normalize)
	}
	var subset []int
	for _, name := range o.Classes {
		k := slices.Index(synth.Classes, strings.ToLower(name))
		if k < 0 {
			return nil, fmt.Errorf("classes: %q is not one of %s", name, strings.Join(synth.Classes, ", "))
		}
		if slices.Contains(subset, k) {
			return nil, fmt.Errorf("classes: %q twice", name)
		}
		subset = append(subset, k)
	}
	neg, err := data.ParseNegativeClass(o.NegativeClass)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Quadruplet && o.Pairs:
		return nil, fmt.Errorf("quadruplet (QCS) and pairs (DCS) exclude each other: set one")
	case (o.Quadruplet || o.Pairs) && o.Frames > 0:
		return nil, fmt.Errorf("quadruplet and pairs are for still images (frames = 0)")
	}
	g := &synthGen{opts: o, classes: subset}
	mk := func(split int, n int) Dataset {
		if n == 0 {
			return nil
		}
		d := &SynthDataset{gen: g, split: split, n: n, mean: mean, std: std, frames: o.Frames,
			augment: o.Augment, shift: o.Shift, crop: o.Crop, frameTargets: o.FrameTargets}
		if split == 0 {
			d.quadruplet, d.pairs, d.negative = o.Quadruplet, o.Pairs, neg
		}
		return d
	}
	shape := []int64{3, int64(side), int64(side)}
	if o.Frames > 0 {
		shape = append([]int64{int64(o.Frames)}, shape...)
	}
	s := &Splits{
		Train: mk(0, o.TrainN), Val: mk(1, o.ValN), Test: mk(2, o.TestN),
		Classes:    append([]string(nil), synth.Classes...),
		InputShape: shape,
		AUs:        append([]string(nil), synth.AUNames...),
	}
	if o.FrameTargets && o.Frames == 0 {
		return nil, fmt.Errorf("frame_targets needs clips (frames > 0)")
	}
	input := func(img image.Image) ([]float32, error) {
		x := synthImageInput(img, o.Size, mean, std)
		if o.Crop > 0 {
			x = cropCHW(x, []int64{1, 3, int64(o.Size), int64(o.Size)}, o.Crop, nil, 0)
		}
		return x, nil
	}
	if o.Frames == 0 {
		s.ImageInput = input
	} else {
		s.FrameInput = input // every frame of a synth clip is transformed alike
	}
	return s, nil
}

// synthGen generates the three splits once, on first use, so opening the
// data set for predict (which only needs ImageInput) costs nothing.
type synthGen struct {
	opts    SynthOptions
	classes []int // nil: all
	once    sync.Once
	splits  [3][]synth.Sample
	err     error
}

func (g *synthGen) get(split int) ([]synth.Sample, error) {
	g.once.Do(func() {
		o := g.opts
		cfg := synth.Config{Size: o.Size, Frames: o.Frames, Seed: o.Seed, Noise: o.Noise, Balanced: true, Classes: g.classes}
		g.splits[0], g.splits[1], g.splits[2], g.err = synth.GenerateSplits(cfg, o.TrainN, o.ValN, o.TestN)
	})
	return g.splits[split], g.err
}

// SynthDataset is one split of the synth benchmark as a Dataset. Targets:
// label, va (valence, arousal) and au (8 AUs, 0/1).
type SynthDataset struct {
	gen       *synthGen
	split, n  int
	mean, std [3]float32
	frames    int
	augment   bool
	shift     int
	crop      int
	// frameTargets: per-frame targets [B,T,...] (SynthOptions.FrameTargets)
	frameTargets bool
	// quadruplet, pairs: training tuples (SynthOptions.Quadruplet, Pairs)
	quadruplet, pairs bool
	negative          data.NegativeClass
	indexOnce         sync.Once
	index             *data.ClassIndex
}

// Len implements Dataset.
func (d *SynthDataset) Len() int { return d.n }

// Samples returns the generated samples (generating them on first use).
func (d *SynthDataset) Samples() ([]synth.Sample, error) { return d.gen.get(d.split) }

// Label implements Labeled.
func (d *SynthDataset) Label(i int) int {
	s, err := d.gen.get(d.split)
	if err != nil || i < 0 || i >= len(s) {
		return -1
	}
	return s[i].Label
}

var splitNames = [3]string{"train", "val", "test"}

// Batch implements Dataset.
func (d *SynthDataset) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	samples, err := d.gen.get(d.split)
	if err != nil {
		return nil, err
	}
	if train && (d.quadruplet || d.pairs) {
		return d.tupleBatch(samples, idx, rng, dev)
	}
	data, labels, shape, err := d.images(samples, idx, train, rng)
	if err != nil {
		return nil, err
	}
	va, au, err := synth.BatchTargets(samples, idx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(idx))
	for j, i := range idx {
		ids[j] = fmt.Sprintf("synth/%s/%d", splitNames[d.split], i)
	}
	if d.frameTargets {
		fl, fva, fau, T, err := synth.BatchFrameTargets(samples, idx)
		if err != nil {
			return nil, err
		}
		B := int64(len(idx))
		return NewBatch(dev, ids, [][]float32{data}, [][]int64{shape}, map[string]any{
			TargetLabel: TensorData64{fl, []int64{B, int64(T)}},
			TargetVA:    TensorData{fva, []int64{B, int64(T), 2}},
			TargetAU:    TensorData{fau, []int64{B, int64(T), synth.NumAUs}},
		})
	}
	return NewBatch(dev, ids, [][]float32{data}, [][]int64{shape}, map[string]any{
		TargetLabel: labels,
		TargetVA:    TensorData{va, []int64{int64(len(idx)), 2}},
		TargetAU:    TensorData{au, []int64{int64(len(idx)), synth.NumAUs}},
	})
}

// tupleBatch is a training batch of QCS quadruplets or DCS pairs drawn
// as for the still-image data sets (data.ClassIndex: positive another
// image of the anchor's class, negatives of a class y' by d.negative),
// each image group augmented with its own stream.
func (d *SynthDataset) tupleBatch(samples []synth.Sample, idx []int, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	d.indexOnce.Do(func() {
		labels := make([]int, len(samples))
		for i, s := range samples {
			labels[i] = s.Label
		}
		d.index = data.NewClassIndex(labels, synth.NumClasses)
	})
	roles := 4
	check := d.index.CheckQuadruplets(d.negative, synth.Classes)
	if d.pairs {
		roles, check = 2, d.index.CheckPairs(synth.Classes)
	}
	if check != nil {
		return nil, fmt.Errorf("synth train: %w", check)
	}
	base := rng.Uint64()
	groups := make([][]int, roles)
	neg := make([]int64, len(idx))
	for j, a := range idx {
		var q data.Quadruplet
		if d.pairs {
			q = data.Quadruplet{Anchor: a, Positive: d.index.DrawPositive(a, data.PositionRand(base, j, 0))}
		} else {
			q = d.index.Draw(a, d.negative, data.PositionRand(base, j, 0))
		}
		neg[j] = int64(q.NegLabel)
		members := [4]int{q.Anchor, q.Positive, q.Negative, q.Negative2}
		for k := range roles {
			groups[k] = append(groups[k], members[k])
		}
	}
	inputs := make([][]float32, roles)
	shapes := make([][]int64, roles)
	var labels []int64
	for k, g := range groups {
		x, l, shape, err := d.images(samples, g, true, rand.New(rand.NewPCG(base, uint64(k)+1)))
		if err != nil {
			return nil, err
		}
		inputs[k], shapes[k] = x, shape
		if k == 0 {
			labels = l
		}
	}
	ids := make([]string, len(idx))
	for j, i := range idx {
		ids[j] = fmt.Sprintf("synth/%s/%d", splitNames[d.split], i)
	}
	targets := map[string]any{TargetLabel: labels}
	if !d.pairs {
		targets[TargetLabelNeg] = neg
	}
	return NewBatch(dev, ids, inputs, shapes, targets)
}

// images renders the samples at idx as one input tensor's data (cropped,
// and augmented when train).
func (d *SynthDataset) images(samples []synth.Sample, idx []int, train bool, rng *rand.Rand) ([]float32, []int64, []int64, error) {
	var data []float32
	var labels, shape []int64
	var err error
	if d.frames > 0 {
		data, labels, shape, err = synth.BatchClips(samples, idx, d.mean, d.std)
	} else {
		data, labels, shape, err = synth.BatchCHW(samples, idx, d.mean, d.std)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case d.crop > 0:
		// the crop window itself moves by up to shift pixels when
		// augmenting (clamped to the image), and flips
		var r *rand.Rand
		if train && d.augment {
			r = rng
		}
		data = cropCHW(data, shape, d.crop, r, d.shift)
		shape[len(shape)-2], shape[len(shape)-1] = int64(d.crop), int64(d.crop)
	case train && d.augment:
		augmentCHW(data, shape, rng, d.shift)
	}
	return data, labels, shape, nil
}

// TensorData is a float32 buffer with its shape, for NewBatch.
type TensorData struct {
	Data  []float32
	Shape []int64
}

// TensorData64 is an int64 buffer with its shape, for NewBatch.
type TensorData64 struct {
	Data  []int64
	Shape []int64
}

// NewBatch builds a Batch on dev from host buffers: inputs (float32 with
// their shapes) and targets given as []int64 (a [B] label vector),
// []float32 ([B]) or TensorData.
func NewBatch(dev gotch.Device, ids []string, inputs [][]float32, shapes [][]int64, targets map[string]any) (*Batch, error) {
	b := &Batch{Targets: map[string]*ts.Tensor{}, IDs: ids, Size: len(ids)}
	fail := func(err error) (*Batch, error) {
		b.Drop()
		return nil, err
	}
	for i, in := range inputs {
		t, err := hostTensor(in, shapes[i], dev)
		if err != nil {
			return fail(fmt.Errorf("input %d: %w", i, err))
		}
		b.Inputs = append(b.Inputs, t)
		if i == 0 && len(shapes[i]) > 0 && b.Size == 0 {
			b.Size = int(shapes[i][0])
		}
	}
	for _, name := range sortedKeys(targets) {
		var t *ts.Tensor
		var err error
		switch v := targets[name].(type) {
		case []int64:
			t, err = hostTensor(v, []int64{int64(len(v))}, dev)
		case []float32:
			t, err = hostTensor(v, []int64{int64(len(v))}, dev)
		case TensorData:
			t, err = hostTensor(v.Data, v.Shape, dev)
		case TensorData64:
			t, err = hostTensor(v.Data, v.Shape, dev)
		default:
			err = fmt.Errorf("unsupported target type %T", v)
		}
		if err != nil {
			return fail(fmt.Errorf("target %s: %w", name, err))
		}
		b.Targets[name] = t
	}
	return b, nil
}

func hostTensor(data any, shape []int64, dev gotch.Device) (*ts.Tensor, error) {
	t, err := ts.NewTensorFromData(data, shape)
	if err != nil {
		return nil, err
	}
	if dev == gotch.CPU {
		return t, nil
	}
	return t.To(dev, true)
}

// augmentCHW flips each sample horizontally with probability ½ and shifts
// it by up to shift pixels in x and y (edge pixels repeat), in place, on a
// [B,3,H,W] or [B,T,3,H,W] buffer; all frames of a clip move together.
func augmentCHW(data []float32, shape []int64, rng *rand.Rand, shift int) {
	B := int(shape[0])
	H, W := int(shape[len(shape)-2]), int(shape[len(shape)-1])
	planes := len(data) / (B * H * W) // per sample: T·3
	tmp := make([]float32, H*W)
	for b := 0; b < B; b++ {
		flip := rng.IntN(2) == 1
		dx, dy := 0, 0
		if shift > 0 {
			dx, dy = rng.IntN(2*shift+1)-shift, rng.IntN(2*shift+1)-shift
		}
		if !flip && dx == 0 && dy == 0 {
			continue
		}
		for p := 0; p < planes; p++ {
			pl := data[(b*planes+p)*H*W : (b*planes+p+1)*H*W]
			copy(tmp, pl)
			for y := 0; y < H; y++ {
				sy := min(max(y-dy, 0), H-1)
				for x := 0; x < W; x++ {
					sx := min(max(x-dx, 0), W-1)
					if flip {
						sx = W - 1 - sx
					}
					pl[y*W+x] = tmp[sy*W+sx]
				}
			}
		}
	}
}

// cropCHW cuts a crop×crop window from every plane of a [B,...,H,W]
// buffer: centred, or, with rng, moved by up to shift pixels (clamped to
// the image) and flipped horizontally with probability ½, the same for
// all planes of a sample.
func cropCHW(data []float32, shape []int64, crop int, rng *rand.Rand, shift int) []float32 {
	B := int(shape[0])
	H, W := int(shape[len(shape)-2]), int(shape[len(shape)-1])
	planes := len(data) / (B * H * W)
	out := make([]float32, B*planes*crop*crop)
	y0c, x0c := (H-crop)/2, (W-crop)/2
	for b := 0; b < B; b++ {
		y0, x0, flip := y0c, x0c, false
		if rng != nil {
			flip = rng.IntN(2) == 1
			if shift > 0 {
				y0 = min(max(y0+rng.IntN(2*shift+1)-shift, 0), H-crop)
				x0 = min(max(x0+rng.IntN(2*shift+1)-shift, 0), W-crop)
			}
		}
		for p := 0; p < planes; p++ {
			src := data[(b*planes+p)*H*W:]
			dst := out[(b*planes+p)*crop*crop:]
			for y := 0; y < crop; y++ {
				row := src[(y0+y)*W+x0 : (y0+y)*W+x0+crop]
				d := dst[y*crop : (y+1)*crop]
				if flip {
					for x := range crop {
						d[x] = row[crop-1-x]
					}
				} else {
					copy(d, row)
				}
			}
		}
	}
	return out
}

// synthImageInput scales any image to size×size (bilinear) and converts
// it as the synth test split does.
func synthImageInput(img image.Image, size int, mean, std [3]float32) []float32 {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if img.Bounds().Dx() == size && img.Bounds().Dy() == size {
		draw.Draw(dst, dst.Rect, img, img.Bounds().Min, draw.Src)
	} else {
		xdraw.BiLinear.Scale(dst, dst.Rect, img, img.Bounds(), xdraw.Src, nil)
	}
	return synth.ToCHW(dst, mean, std)
}
