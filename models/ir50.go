package models

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// IR-50: the "improved residual" ResNet-50 of face recognition (ArcFace;
// face.evoLVe's model_irse.py, mode "ir"), as QCS and POSTER++ use it
// (SPEC.md §2.1): QCS resizes every input to 112×112 (nearest), then an
// input layer (3×3 conv 3→64, BN, PReLU) and only the first three stages
// — body1 = 3 units of 64 channels, body2 = 4 units of 128, body3 = 14
// units of 256, the first unit of each with stride 2 — giving 64×56×56,
// 128×28×28 and 256×14×14. Parameter names equal QCS's state_dict keys
// ("input_layer.0.weight", "body2.0.shortcut_layer.1.running_var",
// "body3.13.res_layer.4.bias"). The full face-recognition network adds
// body4 (3 units of 512) and the embedding head "output_layer".

// IR50Config selects the parts of IR-50 to build.
type IR50Config struct {
	// NumStages is how many stages to build, 1–4; 0 means 3 (QCS).
	NumStages int
	// OutputLayer adds face.evoLVe's embedding head, "output_layer":
	// BN2d(512) → dropout → flatten → Linear(512·7·7, 512) → BN1d(512).
	// It needs NumStages 4 and 112×112 inputs. Without it ForwardT returns
	// the global average of the last stage.
	OutputLayer bool
	// DropRatio is the output layer's dropout probability.
	DropRatio float64
	// ResizeTo resizes every input to ResizeTo×ResizeTo with nearest
	// interpolation first, as QCS's F.interpolate(x, size=112); 0 keeps
	// the input size.
	ResizeTo int64
	// UnusedOutputLayer draws the initial weights of the output layer
	// without building it. QCS's ir50.py always constructs output_layer
	// (between the input layer and the bodies) and never calls it; drawing
	// its Linear(25088, 512) keeps libtorch's generator in step, so the
	// bodies get the same initial weights as the authors' Backbone for the
	// same seed. Ignored with OutputLayer.
	UnusedOutputLayer bool
	// Units are the residual units per stage; nil means IR-50's
	// {3, 4, 14, 3}. Fewer units only make tests fast (checkpoints of the
	// real network need the real counts).
	Units []int
}

// IR50QCSConfig is IR-50 as QCS builds it: 3 stages, inputs resized to
// 112, the unused output layer's initial weights drawn (same seed, same
// weights as QCS's ir50.py).
func IR50QCSConfig() IR50Config {
	return IR50Config{NumStages: 3, ResizeTo: 112, UnusedOutputLayer: true}
}

// IR50FaceConfig is the full face-recognition IR-50 with its 512-d
// embedding head, for 112×112 inputs.
func IR50FaceConfig() IR50Config { return IR50Config{NumStages: 4, OutputLayer: true} }

var (
	ir50Units  = [4]int{3, 4, 14, 3}
	ir50Depths = [4]int64{64, 128, 256, 512}
)

// IR50 network.
type IR50 struct {
	// InputLayer: "input_layer.0" conv, ".1" BN, ".2" PReLU.
	InputConv  *Conv2d
	InputBN    *BatchNorm
	InputPReLU *PReLU
	// Bodies[i] is "body{i+1}".
	Bodies [][]*IRUnit
	Output *IROutputLayer // nil unless OutputLayer

	cfg IR50Config
}

// IRUnit is face.evoLVe's bottleneck_IR: residual branch "res_layer" =
// BN → 3×3 conv → PReLU → 3×3 conv (stride) → BN; shortcut
// "shortcut_layer" = MaxPool2d(1, stride) (plain subsampling) when the
// width is unchanged, else 1×1 conv (stride) + BN.
type IRUnit struct {
	BN1   *BatchNorm // res_layer.0
	Conv1 *Conv2d    // res_layer.1
	PReLU *PReLU     // res_layer.2
	Conv2 *Conv2d    // res_layer.3
	BN2   *BatchNorm // res_layer.4
	// ShortcutConv/BN are shortcut_layer.0/.1; nil for the subsampling
	// shortcut.
	ShortcutConv *Conv2d
	ShortcutBN   *BatchNorm
	Stride       int64
}

// ForwardT is res_layer(x) + shortcut_layer(x).
func (u *IRUnit) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := u.BN1.ForwardT(x, train)
	h = step(u.Conv1, h, train)
	h = step(u.PReLU, h, train)
	h = step(u.Conv2, h, train)
	h = step(u.BN2, h, train)
	var sc *ts.Tensor
	switch {
	case u.ShortcutConv != nil:
		sc = step(u.ShortcutBN, u.ShortcutConv.ForwardT(x, train), train)
	case u.Stride == 1: // MaxPool2d(1, 1) is the identity
		return add(h, x, true)
	default:
		sc = x.MustMaxPool2d([]int64{1, 1}, []int64{u.Stride, u.Stride}, []int64{0, 0}, []int64{1, 1}, false, false)
	}
	out := add(h, sc, true)
	sc.MustDrop()
	return out
}

// IROutputLayer is face.evoLVe's embedding head: "output_layer.0" BN2d,
// ".1" dropout, ".2" flatten, ".3" Linear, ".4" BN1d.
type IROutputLayer struct {
	BN2d   *BatchNorm
	Linear *Linear
	BN1d   *BatchNorm
	Drop   float64
}

// ForwardT maps [N, 512, 7, 7] to the [N, 512] embedding.
func (o *IROutputLayer) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := o.BN2d.ForwardT(x, train)
	h = dropout(h, o.Drop, train, true)
	h = h.MustFlatten(1, -1, true)
	h = step(o.Linear, h, train)
	return step(o.BN1d, h, train)
}

// NewIR50 builds IR-50 under p with PyTorch's default layer
// initialisation (QCS's ir50.py has no init of its own; the weights come
// from the MS-Celeb-1M checkpoint ir50.pth).
func NewIR50(p *nn.Path, cfg IR50Config) (*IR50, error) {
	if p == nil {
		return nil, fmt.Errorf("ir50: nil path")
	}
	return newIR50(newBuilder(p), cfg)
}

func newIR50(b *builder, cfg IR50Config) (*IR50, error) {
	if cfg.NumStages == 0 {
		cfg.NumStages = 3
	}
	if cfg.NumStages < 1 || cfg.NumStages > 4 {
		return nil, fmt.Errorf("ir50: NumStages %d not in 1..4", cfg.NumStages)
	}
	if cfg.OutputLayer && cfg.NumStages != 4 {
		return nil, fmt.Errorf("ir50: the output layer needs all 4 stages (NumStages %d)", cfg.NumStages)
	}
	if cfg.ResizeTo < 0 || cfg.DropRatio < 0 || cfg.DropRatio >= 1 {
		return nil, fmt.Errorf("ir50: ResizeTo %d / DropRatio %g out of range", cfg.ResizeTo, cfg.DropRatio)
	}
	units := ir50Units[:]
	if cfg.Units != nil {
		if len(cfg.Units) < cfg.NumStages {
			return nil, fmt.Errorf("ir50: Units %v gives fewer than %d stages", cfg.Units, cfg.NumStages)
		}
		for _, n := range cfg.Units {
			if n < 1 {
				return nil, fmt.Errorf("ir50: Units %v: every stage needs at least one unit", cfg.Units)
			}
		}
		units = cfg.Units
	}
	m := &IR50{cfg: cfg}
	// construction order as in face.evoLVe/QCS: input layer, output
	// layer, then the bodies (shortcut before residual branch)
	m.InputConv = newConv2d(b.sub("input_layer.0"), 3, 64, 3, convOpts{padding: 1})
	m.InputBN = newBatchNorm(b.sub("input_layer.1"), 64, 0)
	m.InputPReLU = newPReLU(b.sub("input_layer.2"), 64)
	if cfg.OutputLayer {
		m.Output = &IROutputLayer{
			BN2d:   newBatchNorm(b.sub("output_layer.0"), 512, 0),
			Linear: newLinear(b.sub("output_layer.3"), 512*7*7, 512),
			BN1d:   newBatchNorm(b.sub("output_layer.4"), 512, 0),
			Drop:   cfg.DropRatio,
		}
	} else if cfg.UnusedOutputLayer {
		// nn.Linear(512·7·7, 512)'s reset_parameters (the BatchNorms draw
		// nothing)
		const fanIn = 512 * 7 * 7
		b.discard([]int64{512, fanIn}, initUniform(kaimingUniformA5Bound(fanIn)))
		b.discard([]int64{512}, initUniform(1/math.Sqrt(fanIn)))
	}
	in := int64(64)
	for s := 0; s < cfg.NumStages; s++ {
		depth := ir50Depths[s]
		var stage []*IRUnit
		for i := 0; i < units[s]; i++ {
			ub := b.sub(fmt.Sprintf("body%d.%d", s+1, i))
			u := &IRUnit{Stride: 1}
			if i == 0 {
				u.Stride = 2
			}
			if in != depth {
				u.ShortcutConv = newConv2d(ub.sub("shortcut_layer.0"), in, depth, 1, convOpts{stride: u.Stride})
				u.ShortcutBN = newBatchNorm(ub.sub("shortcut_layer.1"), depth, 0)
			}
			u.BN1 = newBatchNorm(ub.sub("res_layer.0"), in, 0)
			u.Conv1 = newConv2d(ub.sub("res_layer.1"), in, depth, 3, convOpts{padding: 1})
			u.PReLU = newPReLU(ub.sub("res_layer.2"), depth)
			u.Conv2 = newConv2d(ub.sub("res_layer.3"), depth, depth, 3, convOpts{stride: u.Stride, padding: 1})
			u.BN2 = newBatchNorm(ub.sub("res_layer.4"), depth, 0)
			stage = append(stage, u)
			in = depth
		}
		m.Bodies = append(m.Bodies, stage)
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("ir50: %w", err)
	}
	return m, nil
}

// Config returns the configuration the model was built with.
func (m *IR50) Config() IR50Config { return m.cfg }

// FeatureDim is 512 with the output layer, else the last stage's width.
func (m *IR50) FeatureDim() int64 {
	if m.Output != nil {
		return 512
	}
	return ir50Depths[m.cfg.NumStages-1]
}

// NumClasses is 0: IR-50 is a feature extractor.
func (m *IR50) NumClasses() int64 { return 0 }

// ForwardT returns the embedding (output layer) or the pooled last stage.
func (m *IR50) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	_, pooled := m.forward(x, train, false)
	return pooled
}

// ForwardFeatures returns the stage outputs (QCS uses all three) and the
// pooled features.
func (m *IR50) ForwardFeatures(x *ts.Tensor, train bool) *Features {
	stages, pooled := m.forward(x, train, true)
	return &Features{Stages: stages, Pooled: pooled}
}

func (m *IR50) forward(x *ts.Tensor, train, keep bool) ([]*ts.Tensor, *ts.Tensor) {
	var h *ts.Tensor
	if m.cfg.ResizeTo > 0 {
		// F.interpolate(x, size=112): mode "nearest", no scale factors
		h = x.MustUpsampleNearest2d([]int64{m.cfg.ResizeTo, m.cfg.ResizeTo}, nil, nil, false)
		h = step(m.InputConv, h, train)
	} else {
		h = m.InputConv.ForwardT(x, train)
	}
	h = step(m.InputBN, h, train)
	h = step(m.InputPReLU, h, train)
	var stages []*ts.Tensor
	for _, units := range m.Bodies {
		for _, u := range units {
			h = step(u, h, train)
		}
		if keep {
			stages = append(stages, h.MustShallowClone())
		}
	}
	if m.Output != nil {
		return stages, step(m.Output, h, train)
	}
	return stages, globalAvgPool(h, true)
}

// RenameKey maps checkpoint keys to this configuration's names: the
// face.evoLVe layout "body.<k>" (one sequence of 24 units) becomes
// "body<stage>.<unit>", and keys of parts not built (stages beyond
// NumStages, the output layer) are dropped. Use it as LoadOptions.Rename
// to load ir50.pth or face.evoLVe's backbone_ir50 checkpoints.
func (cfg IR50Config) RenameKey(key string) string {
	stages := cfg.NumStages
	if stages == 0 {
		stages = 3
	}
	if rest, ok := strings.CutPrefix(key, "body."); ok {
		idx, tail, ok := strings.Cut(rest, ".")
		k, err := strconv.Atoi(idx)
		if !ok || err != nil {
			return key
		}
		for s, n := range ir50Units {
			if k < n {
				key = fmt.Sprintf("body%d.%d.%s", s+1, k, tail)
				break
			}
			k -= n
		}
	}
	if strings.HasPrefix(key, "output_layer.") && !cfg.OutputLayer {
		return ""
	}
	for s := stages + 1; s <= 4; s++ {
		if strings.HasPrefix(key, fmt.Sprintf("body%d.", s)) {
			return ""
		}
	}
	return key
}
