package models

import (
	"fmt"
	"math"
	"strings"

	"github.com/fer-research/fer/losses"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// MT-ArcRes and MT-ArcVGG — the two networks of Kollias & Zafeiriou
// (BMVC 2019, SPEC.md §1) trained with an ArcFace loss "adapted to the
// emotion recognition context": a ResNet-50 (MT-ArcRes) or VGG-16
// (MT-ArcVGG) whose expression head is an ArcFace head, next to the
// valence-arousal and AU outputs. Forward pass, top to bottom:
//
//	frames [B,(T,)3,H,W]
//	→ "backbone": torchvision ResNet-50 up to global average pooling
//	  (2048-d) or VGG-16 up to fc7 (4096-d, ReLU)
//	→ optional "embed": linear to EmbedDim (0 = none, the default)
//	→ dropout (training; 0 by default)            fFeat [N, D]
//	→ "head": linear D → 2 + A: va = tanh(units 0–1), au = units 2…
//	→ "arc": ArcFace head, class centres W [C, D]:
//	  cos = ⟨W_j/‖W_j‖, fFeat/‖fFeat‖⟩, logits = s·cos
//
// Training adds the angular margin m to the target class (losses.ArcFace,
// with the cos θ > cos(π−m) fallback); at test time the prediction is the
// class with the highest cosine (= argmax of logits, which carry no
// margin). Defaults s = 64, m = 0.5 are the ArcFace paper's; the values of
// the BMVC paper are unknown (SPEC.md §1.2, §10.1). The class centres are
// initialised xavier_uniform (ronghuaiyang/arcface-pytorch).

// MTArcConfig configures MT-ArcRes (Backbone "resnet50") and MT-ArcVGG
// (Backbone "vgg16").
type MTArcConfig struct {
	Backbone   string // "resnet50" (or resnet18/34/101/152) or "vgg16"
	NumClasses int64
	NumAUs     int64
	// EmbedDim > 0 adds a linear embedding before the heads (0: none).
	EmbedDim int64
	// Dropout before the heads in training (0).
	Dropout float64
	// S, M, EasyMargin: the ArcFace scale, margin and easy_margin switch.
	S, M       float64
	EasyMargin bool
	// Hidden and FCLayers configure the VGG-16's fc layers (4096, 2).
	Hidden   int64
	FCLayers int
	// VAActivation is "tanh" (default) or "none".
	VAActivation string
}

// DefaultMTArcConfig is MT-ArcRes ("resnet50") or MT-ArcVGG ("vgg16") on
// Aff-Wild2's 7 expressions and 8 AUs.
func DefaultMTArcConfig(backbone string) MTArcConfig {
	return MTArcConfig{Backbone: backbone, NumClasses: 7, NumAUs: 8, S: losses.DefaultArcFaceS, M: losses.DefaultArcFaceM,
		Hidden: 4096, FCLayers: 2, VAActivation: "tanh"}
}

// MTArc is MT-ArcRes or MT-ArcVGG (see the comment at the top of this
// file).
type MTArc struct {
	ResNet *ResNet  // "backbone" of MT-ArcRes
	VGG    *VGG     // "backbone" of MT-ArcVGG
	Embed  *Linear  // "embed"; nil when EmbedDim is 0
	Head   *Linear  // "head": D → 2 + A
	Arc    *ArcHead // "arc"

	loss *losses.ArcFace
	cfg  MTArcConfig
}

// ArcHead holds the ArcFace class centres "weight" [C, D].
type ArcHead struct {
	Weight *ts.Tensor
}

// NewMTArc builds the model under p.
func NewMTArc(p *nn.Path, cfg MTArcConfig) (*MTArc, error) {
	if p == nil {
		return nil, fmt.Errorf("mt-arc: nil path")
	}
	return newMTArc(newBuilder(p), cfg)
}

// MTArcParamCount counts the trainable parameters without allocating.
func MTArcParamCount(cfg MTArcConfig) (int64, error) {
	b := newBuilder(nil)
	if _, err := newMTArc(b, cfg); err != nil {
		return 0, err
	}
	return b.state.params, nil
}

func newMTArc(b *builder, cfg MTArcConfig) (*MTArc, error) {
	if cfg.NumClasses < 2 || cfg.NumAUs < 0 || cfg.EmbedDim < 0 || !(cfg.Dropout >= 0 && cfg.Dropout < 1) {
		return nil, fmt.Errorf("mt-arc: %d classes, %d AUs, embed %d, dropout %v: want >= 2 classes, the rest >= 0, dropout < 1", cfg.NumClasses, cfg.NumAUs, cfg.EmbedDim, cfg.Dropout)
	}
	switch strings.ToLower(cfg.VAActivation) {
	case "tanh", "none":
	default:
		return nil, fmt.Errorf("mt-arc: va_activation = %q, want tanh or none", cfg.VAActivation)
	}
	loss, err := losses.NewArcFace(cfg.S, cfg.M, cfg.EasyMargin)
	if err != nil {
		return nil, err
	}
	m := &MTArc{cfg: cfg, loss: loss}
	var D int64
	name := strings.ToLower(cfg.Backbone)
	switch {
	case name == "vgg16":
		if m.VGG, err = newVGG(b.sub("backbone"), VGGConfig{Layers: VGG16Layers, Hidden: cfg.Hidden, Dropout: 0.5, FCLayers: cfg.FCLayers}); err != nil {
			return nil, fmt.Errorf("mt-arcvgg: %w", err)
		}
		D = m.VGG.FeatureDim()
	case strings.HasPrefix(name, "resnet"):
		var depth int
		if _, err := fmt.Sscanf(name, "resnet%d", &depth); err != nil {
			return nil, fmt.Errorf("mt-arc: backbone %q, want resnet50 (or resnet18/34/101/152) or vgg16", cfg.Backbone)
		}
		if m.ResNet, err = newResNet(b.sub("backbone"), ResNetConfig{Depth: depth}); err != nil {
			return nil, fmt.Errorf("mt-arcres: %w", err)
		}
		D = m.ResNet.FeatureDim()
	default:
		return nil, fmt.Errorf("mt-arc: backbone %q, want resnet50 or vgg16", cfg.Backbone)
	}
	if cfg.EmbedDim > 0 {
		m.Embed = newLinear(b.sub("embed"), D, cfg.EmbedDim)
		D = cfg.EmbedDim
	}
	m.Head = newLinear(b.sub("head"), D, 2+cfg.NumAUs)
	// nn.init.xavier_uniform_: U(±√(6/(fan_in + fan_out)))
	m.Arc = &ArcHead{Weight: b.sub("arc").param("weight", []int64{cfg.NumClasses, D}, initUniform(math.Sqrt(6/float64(D+cfg.NumClasses))))}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("mt-arc: %w", err)
	}
	return m, nil
}

// Config returns the configuration.
func (m *MTArc) Config() MTArcConfig { return m.cfg }

// ArcFace is the margin loss the model trains with.
func (m *MTArc) ArcFace() *losses.ArcFace { return m.loss }

// Forward runs the model on frames [B,3,H,W] or [B,T,3,H,W].
func (m *MTArc) Forward(x *ts.Tensor, train bool) (*MTOutputs, error) {
	sc := &sttScope{}
	defer sc.free()
	imgs, B, T, clip, err := frames(x, 3, "mt-arc: frames")
	if err != nil {
		return nil, err
	}
	sc.add(imgs)
	var f *ts.Tensor
	if m.ResNet != nil {
		f = sc.add(m.ResNet.ForwardT(imgs, train))
	} else {
		f = sc.add(m.VGG.ForwardT(imgs, train))
	}
	if m.Embed != nil {
		if f, err = sc.t(ts.Linear(f, m.Embed.Weight, m.Embed.Bias)); err != nil {
			return nil, fmt.Errorf("mt-arc: embed: %w", err)
		}
	}
	fFeat, err := sc.t(sttDropout(f, m.cfg.Dropout, train))
	if err != nil {
		return nil, err
	}
	y, err := sc.t(ts.Linear(fFeat, m.Head.Weight, m.Head.Bias))
	if err != nil {
		return nil, fmt.Errorf("mt-arc: head: %w", err)
	}
	lead := []int64{B}
	if clip {
		lead = []int64{B, T}
	}
	o, err := splitHead(y, lead, 0, m.cfg.NumAUs, m.cfg.VAActivation)
	if err != nil {
		return nil, fmt.Errorf("mt-arc: %w", err)
	}
	cos, err := sc.t(losses.Cosines(fFeat, m.Arc.Weight))
	if err != nil {
		o.Drop()
		return nil, err
	}
	shape := append(append([]int64(nil), lead...), m.cfg.NumClasses)
	if o.Cos, err = cos.Reshape(shape, false); err != nil {
		o.Drop()
		return nil, err
	}
	if o.Logits, err = o.Cos.MulScalar(ts.FloatScalar(m.cfg.S), false); err != nil {
		o.Drop()
		return nil, err
	}
	return o, nil
}
