package models

import (
	"fmt"
	"strings"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// VGG in torchvision's layout (torchvision.models.vgg16 / vgg16_bn):
// "features.<i>" numbers every layer of the conv stack (conv, [BN,] ReLU,
// max-pool), "classifier.0/3/6" are fc6, fc7 and the output layer.
// VGG-Face (Parkhi et al. 2015; the conv stack of Kollias' MT-VGG) is the
// same network with a 2622-way output; its common PyTorch port names the
// layers conv1_1 … fc8 instead, which VGGFaceDagRename maps.
//
// gotch's vision.VGG16 hides its layers in nn.Sequential closures and
// initialises them gotch's way; these structs expose the stages and
// reproduce torchvision's initialisation.

// VGGConfig selects a VGG.
type VGGConfig struct {
	// Layers are the conv widths in order, 0 standing for a 2×2 max-pool
	// (torchvision's "M"). VGG16Layers is configuration "D".
	Layers []int64
	// BatchNorm adds a BN after every conv (vgg16_bn).
	BatchNorm bool
	// NumClasses is the size of the last layer (classifier.6); 0 builds
	// fc6 and fc7 only, and ForwardT returns the 4096-d fc7 features.
	NumClasses int64
	// Hidden is the width of fc6 and fc7 (4096).
	Hidden int64
	// Dropout is the dropout probability after fc6 and fc7 (0.5).
	Dropout float64
	// FCLayers is the number of hidden fully connected layers: 2 (fc6
	// and fc7, the default) or 1 (fc6 only, as AffWildNet's VGG-FACE-GRU:
	// conv stack → FC 4096 → GRU).
	FCLayers int
}

// VGG16Layers is torchvision's configuration "D" (13 convs, 5 pools).
var VGG16Layers = []int64{64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}

// VGG16Config is torchvision's vgg16 with numClasses outputs.
func VGG16Config(numClasses int64) VGGConfig {
	return VGGConfig{Layers: VGG16Layers, NumClasses: numClasses, Hidden: 4096, Dropout: 0.5}
}

// VGGFaceConfig is VGG-Face: VGG-16 with the 2622 identities of the
// VGG-Face data set as output.
func VGGFaceConfig() VGGConfig { return VGG16Config(2622) }

// VGG: the conv stack (3×3 convs with padding 1 and ReLU, 2×2 max-pools),
// adaptive average pooling to 7×7 (so inputs other than 224×224 work; at
// 224 it is the identity), then fc6 → ReLU → dropout → fc7 → ReLU →
// dropout → output layer.
type VGG struct {
	// Features is the conv stack in order, torchvision's "features".
	Features []VGGLayer
	FC6, FC7 *Linear // FC7 is nil with FCLayers 1
	FC8      *Linear // output layer "classifier.6"; nil without classifier

	cfg VGGConfig
}

// VGGLayer is one entry of the conv stack: a conv (with its optional BN)
// followed by ReLU, or a max-pool (Conv nil) that ends a stage.
type VGGLayer struct {
	Conv *Conv2d
	BN   *BatchNorm
}

// NewVGG builds a VGG under p, initialised like torchvision: convs
// kaiming_normal(fan_out, relu) with zero bias, BN 1/0, linear layers
// N(0, 0.01) with zero bias. With the same libtorch seed it draws exactly
// torchvision's initial weights.
func NewVGG(p *nn.Path, cfg VGGConfig) (*VGG, error) {
	if p == nil {
		return nil, fmt.Errorf("vgg: nil path")
	}
	return newVGG(newBuilder(p), cfg)
}

func newVGG(b *builder, cfg VGGConfig) (*VGG, error) {
	if len(cfg.Layers) == 0 {
		cfg.Layers = VGG16Layers
	}
	if cfg.Hidden == 0 {
		cfg.Hidden = 4096
	}
	if cfg.FCLayers == 0 {
		cfg.FCLayers = 2
	}
	if cfg.NumClasses < 0 || cfg.Dropout < 0 || cfg.Dropout >= 1 || cfg.FCLayers < 1 || cfg.FCLayers > 2 || cfg.Hidden < 1 {
		return nil, fmt.Errorf("vgg: NumClasses %d / Dropout %g / FCLayers %d / Hidden %d out of range", cfg.NumClasses, cfg.Dropout, cfg.FCLayers, cfg.Hidden)
	}
	m := &VGG{cfg: cfg}
	in, idx := int64(3), 0
	lastWidth := int64(0)
	for _, w := range cfg.Layers {
		if w == 0 {
			m.Features = append(m.Features, VGGLayer{})
			idx++
			continue
		}
		l := VGGLayer{Conv: newConv2d(b.sub(fmt.Sprintf("features.%d", idx)), in, w, 3, convOpts{padding: 1, bias: true})}
		idx++
		if cfg.BatchNorm {
			l.BN = newBatchNorm(b.sub(fmt.Sprintf("features.%d", idx)), w, 0)
			idx++
		}
		idx++ // ReLU
		m.Features = append(m.Features, l)
		in, lastWidth = w, w
	}
	if lastWidth == 0 {
		return nil, fmt.Errorf("vgg: Layers has no conv")
	}
	m.FC6 = newLinear(b.sub("classifier.0"), lastWidth*7*7, cfg.Hidden)
	if cfg.FCLayers == 2 {
		m.FC7 = newLinear(b.sub("classifier.3"), cfg.Hidden, cfg.Hidden)
	}
	if cfg.NumClasses > 0 {
		m.FC8 = newLinear(b.sub("classifier.6"), cfg.Hidden, cfg.NumClasses)
	}
	// torchvision's _initialize_weights, in module order
	for _, l := range m.Features {
		if l.Conv != nil {
			reinitConvReLU(b, l.Conv)
			b.reinit(l.Conv.Bias, initConst(0))
		}
		if l.BN != nil {
			l.BN.reset(b)
		}
	}
	for _, fc := range []*Linear{m.FC6, m.FC7, m.FC8} {
		if fc != nil {
			b.reinit(fc.Weight, initNormal(0.01))
			b.reinit(fc.Bias, initConst(0))
		}
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("vgg: %w", err)
	}
	return m, nil
}

// Config returns the configuration the model was built with.
func (m *VGG) Config() VGGConfig { return m.cfg }

// FeatureDim is the width of the last hidden FC layer (4096).
func (m *VGG) FeatureDim() int64 { return m.cfg.Hidden }

// NumClasses is the output layer size, 0 without it.
func (m *VGG) NumClasses() int64 { return m.cfg.NumClasses }

// ForwardT returns logits, or the fc7 features without output layer.
func (m *VGG) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	_, h := m.forward(x, train, false)
	if m.FC8 == nil {
		return h
	}
	h = dropout(h, m.cfg.Dropout, train, true)
	return step(m.FC8, h, train)
}

// ForwardFeatures returns the output of each of the five conv stages
// (after its max-pool) and the fc7 features (after ReLU, before dropout):
// the VGG-Face descriptor.
func (m *VGG) ForwardFeatures(x *ts.Tensor, train bool) *Features {
	stages, h := m.forward(x, train, true)
	return &Features{Stages: stages, Pooled: h}
}

func (m *VGG) forward(x *ts.Tensor, train, keep bool) ([]*ts.Tensor, *ts.Tensor) {
	h := x.MustShallowClone()
	var stages []*ts.Tensor
	for _, l := range m.Features {
		if l.Conv == nil {
			h = h.MustMaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
			if keep {
				stages = append(stages, h.MustShallowClone())
			}
			continue
		}
		h = step(l.Conv, h, train)
		if l.BN != nil {
			h = step(l.BN, h, train)
		}
		h = relu(h, true)
	}
	h = h.MustAdaptiveAvgPool2d([]int64{7, 7}, true)
	h = h.MustFlatten(1, -1, true)
	h = relu(step(m.FC6, h, train), true)
	if m.FC7 == nil {
		return stages, h
	}
	h = dropout(h, m.cfg.Dropout, train, true)
	h = relu(step(m.FC7, h, train), true)
	return stages, h
}

// VGGFaceDagRename maps the names of the common PyTorch port of VGG-Face
// (conv1_1 … conv5_3, fc6, fc7, fc8, as in vgg_face_dag.pth) to the
// torchvision names NewVGG uses ("conv1_1.weight" → "features.0.weight",
// "fc8.bias" → "classifier.6.bias"); other keys are kept. Use it as
// LoadOptions.Rename with a VGGFaceConfig model.
func VGGFaceDagRename(key string) string {
	layer, param, ok := strings.Cut(key, ".")
	if !ok {
		return key
	}
	if to, ok := vggFaceDag[layer]; ok {
		return to + "." + param
	}
	return key
}

var vggFaceDag = func() map[string]string {
	m := map[string]string{"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}
	idx, block, conv := 0, 1, 1
	for _, w := range VGG16Layers {
		if w == 0 {
			idx++
			block++
			conv = 1
			continue
		}
		m[fmt.Sprintf("conv%d_%d", block, conv)] = fmt.Sprintf("features.%d", idx)
		idx += 2
		conv++
	}
	return m
}()
