package models

import (
	"fmt"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// ResNet in torchvision's layout (torchvision.models.resnet18/34/50/101/
// 152, v1.5: the stride of a bottleneck sits on its 3×3 conv). Parameter
// names equal torchvision's state_dict keys ("conv1.weight",
// "layer1.0.bn1.running_mean", "layer2.0.downsample.0.weight", "fc.bias"),
// so torchvision checkpoints load by name.
//
// gotch's vision.ResNet18 builds the same network but as closures inside
// nn.Sequential: its stages cannot be reached (STT needs the output of
// stage 3, Grad-CAM any stage), its layers use gotch's initialisation
// (N(0,1) weights) rather than torchvision's, and it cannot stop after
// stage 3. Hence these structs.

// ResNetConfig selects a ResNet.
type ResNetConfig struct {
	// Depth is 18, 34 (basic blocks), 50, 101 or 152 (bottlenecks).
	Depth int
	// NumClasses is the size of the "fc" classifier; 0 builds none, and
	// ForwardT then returns the pooled features.
	NumClasses int64
	// NumStages is how many residual stages (layer1..layer4) to build; 0
	// means all 4. STT uses ResNet-18 up to stage 3 (256×7×7 at 112 px).
	NumStages int
	// ZeroInitResidual is torchvision's zero_init_residual: the last BN of
	// every residual branch starts at weight 0.
	ZeroInitResidual bool
}

// ResNet18Config is torchvision's resnet18 with numClasses outputs.
func ResNet18Config(numClasses int64) ResNetConfig {
	return ResNetConfig{Depth: 18, NumClasses: numClasses}
}

// ResNet50Config is torchvision's resnet50 with numClasses outputs.
func ResNet50Config(numClasses int64) ResNetConfig {
	return ResNetConfig{Depth: 50, NumClasses: numClasses}
}

// ResNet: stem (7×7 conv stride 2, BN, ReLU, 3×3 max-pool stride 2), four
// stages of residual blocks at widths 64/128/256/512 (×4 for
// bottlenecks), global average pooling, then the fc classifier.
type ResNet struct {
	Conv1 *Conv2d
	BN1   *BatchNorm
	// Layers[i] is torchvision's layer{i+1}.
	Layers [][]ResNetBlock
	FC     *Linear // nil without classifier

	cfg        ResNetConfig
	featureDim int64
}

// ResNetBlock is a BasicBlock or a Bottleneck.
type ResNetBlock interface {
	ForwardT(x *ts.Tensor, train bool) *ts.Tensor
	// reinit applies torchvision's weight re-initialisation to the block's
	// layers in module order.
	reinit(b *builder, zeroInitResidual bool)
}

// Downsample is the projection shortcut: 1×1 conv (stride s) + BN, named
// "downsample.0" and "downsample.1".
type Downsample struct {
	Conv *Conv2d
	BN   *BatchNorm
}

// ForwardT projects x.
func (d *Downsample) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return step(d.BN, d.Conv.ForwardT(x, train), train)
}

// BasicBlock: two 3×3 convs (the first strided) with BN, ReLU between,
// the shortcut added before the final ReLU.
type BasicBlock struct {
	Conv1      *Conv2d
	BN1        *BatchNorm
	Conv2      *Conv2d
	BN2        *BatchNorm
	Downsample *Downsample // nil: identity shortcut
}

// ForwardT is relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
func (blk *BasicBlock) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := step(blk.BN1, blk.Conv1.ForwardT(x, train), train)
	h = relu(h, true)
	h = step(blk.Conv2, h, train)
	h = step(blk.BN2, h, train)
	return relu(addShortcut(h, x, blk.Downsample, train), true)
}

func (blk *BasicBlock) reinit(b *builder, zeroInitResidual bool) {
	reinitConvReLU(b, blk.Conv1)
	blk.BN1.reset(b)
	reinitConvReLU(b, blk.Conv2)
	blk.BN2.reset(b)
	if blk.Downsample != nil {
		reinitConvReLU(b, blk.Downsample.Conv)
		blk.Downsample.BN.reset(b)
	}
	if zeroInitResidual {
		b.reinit(blk.BN2.Weight, initConst(0))
	}
}

// Bottleneck: 1×1 reduce, 3×3 (strided), 1×1 expand ×4, each with BN,
// ReLU between, shortcut added before the final ReLU.
type Bottleneck struct {
	Conv1      *Conv2d
	BN1        *BatchNorm
	Conv2      *Conv2d
	BN2        *BatchNorm
	Conv3      *Conv2d
	BN3        *BatchNorm
	Downsample *Downsample
}

// ForwardT is relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)).
func (blk *Bottleneck) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := step(blk.BN1, blk.Conv1.ForwardT(x, train), train)
	h = relu(h, true)
	h = step(blk.Conv2, h, train)
	h = relu(step(blk.BN2, h, train), true)
	h = step(blk.Conv3, h, train)
	h = step(blk.BN3, h, train)
	return relu(addShortcut(h, x, blk.Downsample, train), true)
}

func (blk *Bottleneck) reinit(b *builder, zeroInitResidual bool) {
	reinitConvReLU(b, blk.Conv1)
	blk.BN1.reset(b)
	reinitConvReLU(b, blk.Conv2)
	blk.BN2.reset(b)
	reinitConvReLU(b, blk.Conv3)
	blk.BN3.reset(b)
	if blk.Downsample != nil {
		reinitConvReLU(b, blk.Downsample.Conv)
		blk.Downsample.BN.reset(b)
	}
	if zeroInitResidual {
		b.reinit(blk.BN3.Weight, initConst(0))
	}
}

// addShortcut returns h + shortcut(x), consuming h.
func addShortcut(h, x *ts.Tensor, ds *Downsample, train bool) *ts.Tensor {
	if ds == nil {
		return add(h, x, true)
	}
	id := ds.ForwardT(x, train)
	out := add(h, id, true)
	id.MustDrop()
	return out
}

// reinitConvReLU is torchvision's kaiming_normal_(w, mode="fan_out",
// nonlinearity="relu").
func reinitConvReLU(b *builder, c *Conv2d) {
	b.reinit(c.Weight, initNormal(kaimingNormalReLUStd(c.fanOut())))
}

var resnetLayout = map[int]struct {
	bottleneck bool
	blocks     [4]int
}{
	18:  {false, [4]int{2, 2, 2, 2}},
	34:  {false, [4]int{3, 4, 6, 3}},
	50:  {true, [4]int{3, 4, 6, 3}},
	101: {true, [4]int{3, 4, 23, 3}},
	152: {true, [4]int{3, 8, 36, 3}},
}

// NewResNet builds a ResNet under p (parameter names relative to p),
// initialised like torchvision: convs kaiming_normal(fan_out, relu), BN
// weight 1 and bias 0, fc as nn.Linear's default. With the same libtorch
// seed it draws exactly torchvision's initial weights.
func NewResNet(p *nn.Path, cfg ResNetConfig) (*ResNet, error) {
	if p == nil {
		return nil, fmt.Errorf("resnet%d: nil path", cfg.Depth)
	}
	return newResNet(newBuilder(p), cfg)
}

func newResNet(b *builder, cfg ResNetConfig) (*ResNet, error) {
	layout, ok := resnetLayout[cfg.Depth]
	if !ok {
		return nil, fmt.Errorf("resnet: depth %d not one of 18, 34, 50, 101, 152", cfg.Depth)
	}
	if cfg.NumStages == 0 {
		cfg.NumStages = 4
	}
	if cfg.NumStages < 1 || cfg.NumStages > 4 {
		return nil, fmt.Errorf("resnet%d: NumStages %d not in 1..4", cfg.Depth, cfg.NumStages)
	}
	if cfg.NumClasses < 0 {
		return nil, fmt.Errorf("resnet%d: NumClasses %d < 0", cfg.Depth, cfg.NumClasses)
	}
	expansion := int64(1)
	if layout.bottleneck {
		expansion = 4
	}
	m := &ResNet{cfg: cfg}
	// Construction order follows torchvision's, so that the layer defaults
	// consume the random stream exactly as PyTorch does.
	m.Conv1 = newConv2d(b.sub("conv1"), 3, 64, 7, convOpts{stride: 2, padding: 3})
	m.BN1 = newBatchNorm(b.sub("bn1"), 64, 0)
	inplanes := int64(64)
	for s := 0; s < cfg.NumStages; s++ {
		planes := int64(64) << s
		stride := int64(1)
		if s > 0 {
			stride = 2
		}
		var blocks []ResNetBlock
		for i := 0; i < layout.blocks[s]; i++ {
			bb := b.sub(fmt.Sprintf("layer%d.%d", s+1, i))
			var ds *Downsample
			st := int64(1)
			if i == 0 {
				st = stride
				if stride != 1 || inplanes != planes*expansion {
					// torchvision creates the projection before the block
					ds = &Downsample{
						Conv: newConv2d(bb.sub("downsample.0"), inplanes, planes*expansion, 1, convOpts{stride: stride}),
						BN:   newBatchNorm(bb.sub("downsample.1"), planes*expansion, 0),
					}
				}
			}
			if layout.bottleneck {
				blocks = append(blocks, &Bottleneck{
					Conv1:      newConv2d(bb.sub("conv1"), inplanes, planes, 1, convOpts{}),
					BN1:        newBatchNorm(bb.sub("bn1"), planes, 0),
					Conv2:      newConv2d(bb.sub("conv2"), planes, planes, 3, convOpts{stride: st, padding: 1}),
					BN2:        newBatchNorm(bb.sub("bn2"), planes, 0),
					Conv3:      newConv2d(bb.sub("conv3"), planes, planes*expansion, 1, convOpts{}),
					BN3:        newBatchNorm(bb.sub("bn3"), planes*expansion, 0),
					Downsample: ds,
				})
			} else {
				blocks = append(blocks, &BasicBlock{
					Conv1:      newConv2d(bb.sub("conv1"), inplanes, planes, 3, convOpts{stride: st, padding: 1}),
					BN1:        newBatchNorm(bb.sub("bn1"), planes, 0),
					Conv2:      newConv2d(bb.sub("conv2"), planes, planes, 3, convOpts{padding: 1}),
					BN2:        newBatchNorm(bb.sub("bn2"), planes, 0),
					Downsample: ds,
				})
			}
			inplanes = planes * expansion
		}
		m.Layers = append(m.Layers, blocks)
	}
	m.featureDim = inplanes
	if cfg.NumClasses > 0 {
		m.FC = newLinear(b.sub("fc"), inplanes, cfg.NumClasses)
	}
	// torchvision's init loop over self.modules(): convs and BNs in
	// module order; fc keeps nn.Linear's default.
	reinitConvReLU(b, m.Conv1)
	m.BN1.reset(b)
	for _, layer := range m.Layers {
		for _, blk := range layer {
			blk.reinit(b, cfg.ZeroInitResidual)
		}
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("resnet%d: %w", cfg.Depth, err)
	}
	return m, nil
}

// Config returns the configuration the model was built with (NumStages
// filled in).
func (m *ResNet) Config() ResNetConfig { return m.cfg }

// FeatureDim is the width of the last built stage (512 for ResNet-18,
// 2048 for ResNet-50).
func (m *ResNet) FeatureDim() int64 { return m.featureDim }

// NumClasses is the fc size, 0 without classifier.
func (m *ResNet) NumClasses() int64 { return m.cfg.NumClasses }

// ForwardT returns logits, or the pooled features without classifier.
func (m *ResNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	_, pooled := m.forward(x, train, false)
	if m.FC == nil {
		return pooled
	}
	return step(m.FC, pooled, train)
}

// ForwardFeatures returns the output of every built stage and the pooled
// features.
func (m *ResNet) ForwardFeatures(x *ts.Tensor, train bool) *Features {
	stages, pooled := m.forward(x, train, true)
	return &Features{Stages: stages, Pooled: pooled}
}

func (m *ResNet) forward(x *ts.Tensor, train, keep bool) ([]*ts.Tensor, *ts.Tensor) {
	h := step(m.BN1, m.Conv1.ForwardT(x, train), train)
	h = relu(h, true)
	h = h.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, false, true)
	var stages []*ts.Tensor
	for _, layer := range m.Layers {
		for _, blk := range layer {
			h = step(blk, h, train)
		}
		if keep {
			stages = append(stages, h.MustShallowClone())
		}
	}
	return stages, globalAvgPool(h, true)
}

// moduleT is gotch's nn.ModuleT.
type moduleT interface {
	ForwardT(x *ts.Tensor, train bool) *ts.Tensor
}

// step applies m to x and frees x (an intermediate the caller owns).
func step(m moduleT, x *ts.Tensor, train bool) *ts.Tensor {
	y := m.ForwardT(x, train)
	x.MustDrop()
	return y
}
