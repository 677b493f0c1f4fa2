package models

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// EfficientNet in timm's tf_efficientnet_bN layout, the TensorFlow-ported
// variant RMFER uses (tf_efficientnet_b2_ns, SPEC.md §3.1): BatchNorm eps
// 1e-3, TensorFlow "SAME" padding (asymmetric, computed from the input
// size, for strided convs), SiLU activations, squeeze-and-excitation with
// the reduced width taken from the block input (×0.25). Parameter names
// equal timm's state_dict keys ("conv_stem.weight",
// "blocks.1.0.conv_pwl.weight", "blocks.6.1.se.conv_reduce.bias",
// "conv_head.weight", "classifier.bias"), so timm and HSEmotion
// checkpoints (enet_b2_7.pt state_dicts) load by name.
//
// gotch's vision.EfficientNet is the PyTorch-padding variant with its own
// parameter names and closures; it cannot read timm checkpoints.

// EfficientNetConfig selects the scaled variant.
type EfficientNetConfig struct {
	// Width and Depth are the channel and depth multipliers (B2: 1.1, 1.2).
	Width, Depth float64
	// NumClasses is the "classifier" size; 0 builds none and ForwardT
	// returns the pooled features (1408-d for B2).
	NumClasses int64
	// DropRate is the dropout before the classifier (timm drop_rate).
	DropRate float64
	// DropPathRate is the stochastic-depth rate of the last block; block i
	// of n uses DropPathRate·i/n (timm drop_path_rate).
	DropPathRate float64
	// BNEps is BatchNorm's eps; 0 means TensorFlow's 1e-3.
	BNEps float64
	// Names selects the top-level parameter names: "" or "timm" for
	// timm's (conv_stem, bn1, blocks, conv_head, bn2, classifier), "rmfer"
	// for the public RMFER code's backbone, nn.Sequential(*list(timm
	// model.children())[:-1]) under the authors' timm version, whose
	// children were conv_stem, bn1, act1, blocks, conv_head, bn2, act2,
	// global_pool (their notebook prints it): 0, 1, 3, 4, 5. Names below
	// the blocks ("3.1.0.conv_pw.weight") are timm's in both.
	Names string
}

// effNames are the top-level module names of one naming scheme.
type effNames struct{ stem, bn1, blocks, head, bn2 string }

func (c EfficientNetConfig) names() (effNames, error) {
	switch c.Names {
	case "", "timm":
		return effNames{"conv_stem", "bn1", "blocks", "conv_head", "bn2"}, nil
	case "rmfer":
		return effNames{"0", "1", "3", "4", "5"}, nil
	}
	return effNames{}, fmt.Errorf("names = %q, want timm or rmfer", c.Names)
}

// EfficientNetB2Config is tf_efficientnet_b2(_ns) with numClasses outputs
// (input 260×260).
func EfficientNetB2Config(numClasses int64) EfficientNetConfig {
	return EfficientNetConfig{Width: 1.1, Depth: 1.2, NumClasses: numClasses}
}

// effStage is one row of the EfficientNet-B0 architecture.
type effStage struct {
	depthwiseSeparable bool
	repeats            int
	kernel, stride     int64
	expand             int64
	channels           int64
}

var effB0 = []effStage{
	{true, 1, 3, 1, 1, 16},
	{false, 2, 3, 2, 6, 24},
	{false, 2, 5, 2, 6, 40},
	{false, 3, 3, 2, 6, 80},
	{false, 3, 5, 1, 6, 112},
	{false, 4, 5, 2, 6, 192},
	{false, 1, 3, 1, 6, 320},
}

// EfficientNet: stem (3×3 conv stride 2, BN, SiLU), seven stages of
// MBConv blocks, head (1×1 conv to 1280·Width, BN, SiLU), global average
// pooling, dropout, classifier.
type EfficientNet struct {
	ConvStem *SameConv2d
	BN1      *BatchNorm
	// Blocks[s][i] is timm's blocks.s.i.
	Blocks     [][]EffBlock
	ConvHead   *SameConv2d
	BN2        *BatchNorm
	Classifier *Linear // nil without classifier

	cfg        EfficientNetConfig
	featureDim int64
}

// EffBlock is a DepthwiseSeparable or an InvertedResidual block.
type EffBlock interface {
	ForwardT(x *ts.Tensor, train bool) *ts.Tensor
	reinit(b *builder)
}

// SameConv2d is a Conv2d with TensorFlow "SAME" padding: for stride 1 the
// padding is symmetric and static ((k−1)/2, as timm's create_conv2d
// makes it), for stride 2 it is computed from the input size and the odd
// pixel goes to the right/bottom (timm's Conv2dSame).
type SameConv2d struct {
	*Conv2d
	dynamic bool
}

func newSameConv(b *builder, in, out, k, stride, groups int64, bias bool) *SameConv2d {
	if stride == 1 && (k-1)%2 == 0 {
		return &SameConv2d{Conv2d: newConv2d(b, in, out, k, convOpts{stride: 1, padding: (k - 1) / 2, groups: groups, bias: bias})}
	}
	return &SameConv2d{Conv2d: newConv2d(b, in, out, k, convOpts{stride: stride, groups: groups, bias: bias}), dynamic: true}
}

// ForwardT pads as TensorFlow would, then convolves.
func (c *SameConv2d) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	if !c.dynamic {
		return c.Conv2d.ForwardT(x, train)
	}
	size := x.MustSize()
	ph := samePad(size[len(size)-2], c.Kernel, c.Stride)
	pw := samePad(size[len(size)-1], c.Kernel, c.Stride)
	if ph == 0 && pw == 0 {
		return c.forward(x, 0)
	}
	padded := x.MustConstantPadNd([]int64{pw / 2, pw - pw/2, ph / 2, ph - ph/2}, false)
	y := c.forward(padded, 0)
	padded.MustDrop()
	return y
}

// samePad is the total padding TensorFlow's SAME adds along one axis.
func samePad(in, k, s int64) int64 {
	out := (in + s - 1) / s
	return max((out-1)*s+k-in, 0)
}

// reinitGoog is timm's _init_weight_goog for convs: N(0, √(2/fan_out))
// with fan_out = k·k·out/groups, zero bias.
func (c *SameConv2d) reinitGoog(b *builder) {
	fanOut := c.Kernel * c.Kernel * c.Out / c.Groups
	b.reinit(c.Weight, initNormal(math.Sqrt(2.0/float64(fanOut))))
	b.reinit(c.Bias, initConst(0))
}

// SqueezeExcite: global average → 1×1 conv (reduce, bias) → SiLU → 1×1
// conv (expand, bias) → sigmoid gate multiplied onto the input.
type SqueezeExcite struct {
	ConvReduce, ConvExpand *SameConv2d
}

// ForwardT gates the channels of x.
func (se *SqueezeExcite) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	s := x.MustMeanDim([]int64{2, 3}, true, x.DType(), false)
	s = step(se.ConvReduce, s, train)
	s = silu(s, true)
	s = step(se.ConvExpand, s, train)
	g := s.MustSigmoid(true)
	y := x.MustMul(g, false)
	g.MustDrop()
	return y
}

func (se *SqueezeExcite) reinit(b *builder) {
	se.ConvReduce.reinitGoog(b)
	se.ConvExpand.reinitGoog(b)
}

// DepthwiseSeparable (timm "ds"): depthwise conv → BN → SiLU → SE →
// pointwise conv → BN, plus the input when shapes allow.
type DepthwiseSeparable struct {
	ConvDW *SameConv2d
	BN1    *BatchNorm
	SE     *SqueezeExcite
	ConvPW *SameConv2d
	BN2    *BatchNorm

	skip     bool
	dropPath float64
}

// ForwardT applies the block.
func (blk *DepthwiseSeparable) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := step(blk.BN1, blk.ConvDW.ForwardT(x, train), train)
	h = silu(h, true)
	h = step(blk.SE, h, train)
	h = step(blk.ConvPW, h, train)
	h = step(blk.BN2, h, train)
	if !blk.skip {
		return h
	}
	return add(dropPath(h, blk.dropPath, train), x, true)
}

func (blk *DepthwiseSeparable) reinit(b *builder) {
	blk.ConvDW.reinitGoog(b)
	blk.BN1.reset(b)
	blk.SE.reinit(b)
	blk.ConvPW.reinitGoog(b)
	blk.BN2.reset(b)
}

// InvertedResidual (timm "ir", MBConv): 1×1 expand → BN → SiLU →
// depthwise conv → BN → SiLU → SE → 1×1 project → BN, plus the input
// when shapes allow.
type InvertedResidual struct {
	ConvPW  *SameConv2d
	BN1     *BatchNorm
	ConvDW  *SameConv2d
	BN2     *BatchNorm
	SE      *SqueezeExcite
	ConvPWL *SameConv2d
	BN3     *BatchNorm

	skip     bool
	dropPath float64
}

// ForwardT applies the block.
func (blk *InvertedResidual) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := step(blk.BN1, blk.ConvPW.ForwardT(x, train), train)
	h = silu(h, true)
	h = step(blk.ConvDW, h, train)
	h = silu(step(blk.BN2, h, train), true)
	h = step(blk.SE, h, train)
	h = step(blk.ConvPWL, h, train)
	h = step(blk.BN3, h, train)
	if !blk.skip {
		return h
	}
	return add(dropPath(h, blk.dropPath, train), x, true)
}

func (blk *InvertedResidual) reinit(b *builder) {
	blk.ConvPW.reinitGoog(b)
	blk.BN1.reset(b)
	blk.ConvDW.reinitGoog(b)
	blk.BN2.reset(b)
	blk.SE.reinit(b)
	blk.ConvPWL.reinitGoog(b)
	blk.BN3.reset(b)
}

// makeDivisible is timm's make_divisible(v, 8): the nearest multiple of 8,
// but not less than 90 % of v.
func makeDivisible(v float64) int64 {
	n := max(8, int64(v+4)/8*8)
	if float64(n) < 0.9*v {
		n += 8
	}
	return n
}

// NewEfficientNet builds the network under p, initialised as timm's
// _init_weight_goog: convs N(0, √(2/fan_out)), BN 1/0, classifier
// U(±1/√classes) with zero bias.
func NewEfficientNet(p *nn.Path, cfg EfficientNetConfig) (*EfficientNet, error) {
	if p == nil {
		return nil, fmt.Errorf("efficientnet: nil path")
	}
	return newEfficientNet(newBuilder(p), cfg)
}

func newEfficientNet(b *builder, cfg EfficientNetConfig) (*EfficientNet, error) {
	if cfg.Width <= 0 || cfg.Depth <= 0 {
		return nil, fmt.Errorf("efficientnet: Width %g and Depth %g must be > 0", cfg.Width, cfg.Depth)
	}
	if cfg.NumClasses < 0 || cfg.DropRate < 0 || cfg.DropRate >= 1 || cfg.DropPathRate < 0 || cfg.DropPathRate >= 1 {
		return nil, fmt.Errorf("efficientnet: NumClasses %d / DropRate %g / DropPathRate %g out of range", cfg.NumClasses, cfg.DropRate, cfg.DropPathRate)
	}
	if cfg.BNEps == 0 {
		cfg.BNEps = 1e-3
	}
	nm, err := cfg.names()
	if err != nil {
		return nil, fmt.Errorf("efficientnet: %w", err)
	}
	eps := cfg.BNEps
	channels := func(c int64) int64 { return makeDivisible(float64(c) * cfg.Width) }
	m := &EfficientNet{cfg: cfg}
	stem := channels(32)
	m.ConvStem = newSameConv(b.sub(nm.stem), 3, stem, 3, 2, 1, false)
	m.BN1 = newBatchNorm(b.sub(nm.bn1), stem, eps)
	// timm's EfficientNetBuilder.__init__ builds se_layer(8, rd_ratio=1.0)
	// once, to test whether it takes rd_ratio, and throws it away: two
	// nn.Conv2d(8, 8, 1) with their default init, drawn here so that the
	// same seed gives timm's weights (checked against timm aa4b5850,
	// tf_efficientnet_b2_ns).
	for range 2 {
		b.discard([]int64{8, 8, 1, 1}, initUniform(kaimingUniformA5Bound(8)))
		b.discard([]int64{8}, initUniform(1/math.Sqrt(8)))
	}
	repeats := make([]int, len(effB0))
	total := 0
	for s, st := range effB0 {
		repeats[s] = int(math.Ceil(float64(st.repeats) * cfg.Depth))
		total += repeats[s]
	}
	in, idx := stem, 0
	for s, st := range effB0 {
		out := channels(st.channels)
		var blocks []EffBlock
		for i := 0; i < repeats[s]; i++ {
			bb := b.sub(fmt.Sprintf("%s.%d.%d", nm.blocks, s, i))
			stride := st.stride
			if i > 0 {
				stride = 1
			}
			rd := int64(math.RoundToEven(float64(in) * 0.25)) // SE width from the block input
			skip := stride == 1 && in == out
			dp := cfg.DropPathRate * float64(idx) / float64(total)
			if st.depthwiseSeparable {
				blocks = append(blocks, &DepthwiseSeparable{
					ConvDW: newSameConv(bb.sub("conv_dw"), in, in, st.kernel, stride, in, false),
					BN1:    newBatchNorm(bb.sub("bn1"), in, eps),
					SE:     newSqueezeExcite(bb.sub("se"), in, rd),
					ConvPW: newSameConv(bb.sub("conv_pw"), in, out, 1, 1, 1, false),
					BN2:    newBatchNorm(bb.sub("bn2"), out, eps),
					skip:   skip, dropPath: dp,
				})
			} else {
				mid := makeDivisible(float64(in * st.expand))
				blocks = append(blocks, &InvertedResidual{
					ConvPW:  newSameConv(bb.sub("conv_pw"), in, mid, 1, 1, 1, false),
					BN1:     newBatchNorm(bb.sub("bn1"), mid, eps),
					ConvDW:  newSameConv(bb.sub("conv_dw"), mid, mid, st.kernel, stride, mid, false),
					BN2:     newBatchNorm(bb.sub("bn2"), mid, eps),
					SE:      newSqueezeExcite(bb.sub("se"), mid, rd),
					ConvPWL: newSameConv(bb.sub("conv_pwl"), mid, out, 1, 1, 1, false),
					BN3:     newBatchNorm(bb.sub("bn3"), out, eps),
					skip:    skip, dropPath: dp,
				})
			}
			in = out
			idx++
		}
		m.Blocks = append(m.Blocks, blocks)
	}
	head := channels(1280)
	m.ConvHead = newSameConv(b.sub(nm.head), in, head, 1, 1, 1, false)
	m.BN2 = newBatchNorm(b.sub(nm.bn2), head, eps)
	m.featureDim = head
	if cfg.NumClasses > 0 {
		m.Classifier = newLinear(b.sub("classifier"), head, cfg.NumClasses)
	}
	// timm's efficientnet_init_weights, in named_modules() order
	m.ConvStem.reinitGoog(b)
	m.BN1.reset(b)
	for _, stage := range m.Blocks {
		for _, blk := range stage {
			blk.reinit(b)
		}
	}
	m.ConvHead.reinitGoog(b)
	m.BN2.reset(b)
	if m.Classifier != nil {
		r := 1.0 / math.Sqrt(float64(cfg.NumClasses))
		b.reinit(m.Classifier.Weight, initUniform(r))
		b.reinit(m.Classifier.Bias, initConst(0))
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("efficientnet: %w", err)
	}
	return m, nil
}

func newSqueezeExcite(b *builder, chs, rd int64) *SqueezeExcite {
	return &SqueezeExcite{
		ConvReduce: newSameConv(b.sub("conv_reduce"), chs, rd, 1, 1, 1, true),
		ConvExpand: newSameConv(b.sub("conv_expand"), rd, chs, 1, 1, 1, true),
	}
}

// Config returns the configuration the model was built with.
func (m *EfficientNet) Config() EfficientNetConfig { return m.cfg }

// FeatureDim is the head width (1408 for B2).
func (m *EfficientNet) FeatureDim() int64 { return m.featureDim }

// NumClasses is the classifier size, 0 without classifier.
func (m *EfficientNet) NumClasses() int64 { return m.cfg.NumClasses }

// ForwardT returns logits, or the pooled features without classifier.
func (m *EfficientNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	_, pooled := m.forward(x, train, false)
	if m.Classifier == nil {
		return pooled
	}
	h := dropout(pooled, m.cfg.DropRate, train, true)
	return step(m.Classifier, h, train)
}

// ForwardFeatures returns the output of each of the seven block stages and
// the pooled head features.
func (m *EfficientNet) ForwardFeatures(x *ts.Tensor, train bool) *Features {
	stages, pooled := m.forward(x, train, true)
	return &Features{Stages: stages, Pooled: pooled}
}

func (m *EfficientNet) forward(x *ts.Tensor, train, keep bool) ([]*ts.Tensor, *ts.Tensor) {
	h := step(m.BN1, m.ConvStem.ForwardT(x, train), train)
	h = silu(h, true)
	var stages []*ts.Tensor
	for _, stage := range m.Blocks {
		for _, blk := range stage {
			h = step(blk, h, train)
		}
		if keep {
			stages = append(stages, h.MustShallowClone())
		}
	}
	h = step(m.ConvHead, h, train)
	h = silu(step(m.BN2, h, train), true)
	return stages, globalAvgPool(h, true)
}
