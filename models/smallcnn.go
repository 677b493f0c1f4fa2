package models

import (
	"fmt"
	"math"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// SmallCNNConfig configures SmallCNN.
type SmallCNNConfig struct {
	NumClasses int64
	InChannels int64 // 3 for RGB
	// Width is the channel count of the stem; the three stages have
	// 2·Width, 4·Width and 8·Width channels.
	Width int64
	// Dropout before the classifier.
	Dropout float64
}

// DefaultSmallCNNConfig is the `fercli demo` network: 0.65 M parameters
// (width 24), a few minutes of CPU training on the synthetic benchmark.
func DefaultSmallCNNConfig(numClasses int64) SmallCNNConfig {
	return SmallCNNConfig{NumClasses: numClasses, InChannels: 3, Width: 24, Dropout: 0.2}
}

// ConvBNReLU is conv 3×3 (stride 1, pad 1, no bias) → batch norm → ReLU,
// optionally followed by 2×2 max-pooling.
type ConvBNReLU struct {
	Conv *nn.Conv2D
	BN   *nn.BatchNorm
	Pool bool
}

func newConvBNReLU(p *nn.Path, in, out int64, pool bool) *ConvBNReLU {
	cc := nn.DefaultConv2DConfig()
	cc.Padding = []int64{1, 1}
	cc.Bias = false
	cc.WsInit = torchDefaultInit(in * 3 * 3)
	bc := nn.DefaultBatchNormConfig()
	bc.WsInit = nn.NewConstInit(1) // torch.nn.BatchNorm2d starts at weight 1
	return &ConvBNReLU{
		Conv: nn.NewConv2D(p.Sub("conv"), in, out, 3, cc),
		BN:   nn.BatchNorm2D(p.Sub("bn"), out, bc),
		Pool: pool,
	}
}

// ForwardT implements nn.ModuleT.
func (c *ConvBNReLU) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	y := c.Conv.ForwardT(x, train)
	z := c.BN.ForwardT(y, train)
	y.MustDrop()
	r := relu(z, true)
	if !c.Pool {
		return r
	}
	return r.MustMaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
}

// torchDefaultInit is PyTorch's default weight init for conv and linear
// layers, kaiming_uniform(a=√5) = U(−1/√fan_in, 1/√fan_in). (gotch's
// NewKaimingUniformInit, its default, draws from N(0,1) instead: a 3×3
// conv of 64 channels starts 25× too large and training diverges.)
func torchDefaultInit(fanIn int64) nn.Init {
	b := 1 / math.Sqrt(float64(fanIn))
	return nn.NewUniformInit(-b, b)
}

func linearConfig(in int64) *nn.LinearConfig {
	c := nn.DefaultLinearConfig()
	c.WsInit = torchDefaultInit(in)
	return c
}

// SmallCNN is a VGG-style classifier for small face crops; with input
// H×H and width W:
//
//	stem    conv-bn-relu + maxpool              W    H/2
//	stage1  conv-bn-relu, conv-bn-relu + pool   2W   H/4
//	stage2  conv-bn-relu, conv-bn-relu + pool   4W   H/8
//	stage3  conv-bn-relu, conv-bn-relu          8W   H/8
//	global average pool → dropout → fc (8W → classes)
//
// Every stage after the stem costs the same (channels double as the side
// halves), about 18 M multiply-adds each at 48×48 with W = 24.
// Parameter names: stem.conv.weight, stem.bn.{weight,bias,running_mean,
// running_var}, stage1.conv1.conv.weight, stage1.conv1.bn.weight, ...,
// fc.weight, fc.bias.
type SmallCNN struct {
	Stem                   *ConvBNReLU
	Stage1, Stage2, Stage3 *SmallCNNStage
	FC                     *nn.Linear
	Cfg                    SmallCNNConfig
}

// SmallCNNStage is two conv-bn-relu units, the second optionally pooled.
type SmallCNNStage struct {
	Conv1, Conv2 *ConvBNReLU
}

func newSmallCNNStage(p *nn.Path, in, out int64, pool bool) *SmallCNNStage {
	return &SmallCNNStage{
		Conv1: newConvBNReLU(p.Sub("conv1"), in, out, false),
		Conv2: newConvBNReLU(p.Sub("conv2"), out, out, pool),
	}
}

// ForwardT implements nn.ModuleT.
func (s *SmallCNNStage) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := s.Conv1.ForwardT(x, train)
	y := s.Conv2.ForwardT(h, train)
	h.MustDrop()
	return y
}

// NewSmallCNN builds the network under p.
func NewSmallCNN(p *nn.Path, cfg SmallCNNConfig) (*SmallCNN, error) {
	if cfg.NumClasses < 1 || cfg.InChannels < 1 || cfg.Width < 1 {
		return nil, fmt.Errorf("smallcnn: num_classes %d, in_channels %d, width %d: all must be >= 1", cfg.NumClasses, cfg.InChannels, cfg.Width)
	}
	if cfg.Dropout < 0 || cfg.Dropout >= 1 {
		return nil, fmt.Errorf("smallcnn: dropout %v, want [0,1)", cfg.Dropout)
	}
	w := cfg.Width
	return &SmallCNN{
		Stem:   newConvBNReLU(p.Sub("stem"), cfg.InChannels, w, true),
		Stage1: newSmallCNNStage(p.Sub("stage1"), w, 2*w, true),
		Stage2: newSmallCNNStage(p.Sub("stage2"), 2*w, 4*w, true),
		Stage3: newSmallCNNStage(p.Sub("stage3"), 4*w, 8*w, false),
		FC:     nn.NewLinear(p.Sub("fc"), 8*w, cfg.NumClasses, linearConfig(8*w)),
		Cfg:    cfg,
	}, nil
}

// Features returns the pooled 8W-dimensional embedding.
func (m *SmallCNN) Features(x *ts.Tensor, train bool) *ts.Tensor {
	h := m.Stem.ForwardT(x, train)
	for _, st := range []*SmallCNNStage{m.Stage1, m.Stage2, m.Stage3} {
		n := st.ForwardT(h, train)
		h.MustDrop()
		h = n
	}
	p := h.MustAdaptiveAvgPool2d([]int64{1, 1}, true)
	return p.MustFlatten(1, -1, true)
}

// ForwardT implements nn.ModuleT: class logits [B, classes].
func (m *SmallCNN) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	f := m.Features(x, train)
	if m.Cfg.Dropout > 0 && train {
		d := ts.MustDropout(f, m.Cfg.Dropout, train)
		f.MustDrop()
		f = d
	}
	out := m.FC.Forward(f)
	f.MustDrop()
	return out
}

// smallCNNOptions are the config-file options of "smallcnn".
type smallCNNOptions struct {
	Width   int64   `yaml:"width"`
	Dropout float64 `yaml:"dropout"`
}

func init() {
	fer.RegisterModel("smallcnn", "small VGG-style CNN (7 convs, 0.65M params at width 24) for the synthetic demo; options: width, dropout",
		func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
			d := DefaultSmallCNNConfig(int64(spec.NumClasses))
			o := smallCNNOptions{Width: d.Width, Dropout: d.Dropout}
			if err := fer.DecodeOptions(spec.Options, &o, "model smallcnn"); err != nil {
				return nil, err
			}
			if len(spec.InputShape) != 3 {
				return nil, fmt.Errorf("smallcnn takes images [C,H,W], the data set gives %v (clips need a video model)", spec.InputShape)
			}
			d.Width, d.Dropout, d.InChannels = o.Width, o.Dropout, spec.InputShape[0]
			net, err := NewSmallCNN(vs.Root(), d)
			if err != nil {
				return nil, err
			}
			return fer.NewClassifier(net, vs), nil
		})
}
