package models

import (
	"fmt"
	"strings"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Aff-Wild2 multi-task VGG models — Kollias & Zafeiriou, "Expression,
// Affect, Action Unit Recognition: Aff-Wild2, Multi-Task Learning and
// ArcFace", BMVC 2019 (SPEC.md §1): MT-VGG, MT-VGG-RNN and
// A/V-MT-VGG-RNN.
//
// No code of these models is public and the paper's text could not be
// read; the structure follows the authors' AffWildNet code
// (dkollias/Aff-Wild-models, TensorFlow: vggface_gru.py,
// vggface_4096x4096x2.py) and the description. Forward pass, top
// to bottom (parameter names in quotes):
//
//	frames [B,(T,)3,H,W]
//	→ "vgg": VGG-Face conv stack (13 conv 3×3 + ReLU, 5 max-pools),
//	  adaptive 7×7 average pooling (torchvision's; the identity at 224 px),
//	  fc6 4096 + ReLU (+ dropout, fc7 4096 + ReLU with FCLayers 2)
//	→ dropout (training)                       fFeat [B·T, 4096]
//	A/V only: audio windows [B,(T,)1,n_mels,W] → "audio": AudioCNN → [B·T, AudioDim];
//	  concatenated to fFeat (feature-level fusion before the GRU)
//	→ MT-VGG-RNN, A/V: "gru": 2-layer GRU, 128 units, over the T frames
//	→ "head": one linear layer of 2 + C + A units per frame:
//	  va = tanh(units 0–1), logits = units 2…C+1 (expressions in the data
//	  set's class order), au = units C+2… (AU logits)
//
// Choices the paper leaves open (each a config option, defaults here and
// in README):
//   - FCLayers: 2 for MT-VGG (VGG-Face's fc6 + fc7, as AffWildNet's CNN
//     vggface_4096x4096x2), 1 for the RNN models (vggface_gru.py: conv →
//     FC 4096 → GRU).
//   - One fused 17-unit head (2 VA + 7 EXPR + 8 AU) on the last shared
//     layer, the reading of "multi-task output"; VA through tanh.
//   - Dropout 0.5 after the last FC during training (AffWildNet's comment).
//   - A/V fusion: concatenation of the visual fc feature and the audio
//     embedding of the same frame, before the GRU. Our choice: the GRU
//     then models both streams' dynamics jointly; fusing after the GRU
//     would leave the audio without temporal context.
//   - Audio branch (AudioCNN): "bn0" BatchNorm over the dB input (as
//     PANNs' CNN14 normalises log-mels), blocks of conv 3×3 (no bias) +
//     BN + ReLU + 2×2 max-pool with widths 32, 64, 128, global average
//     pooling, "fc" to AudioDim = 128 + ReLU.

// MTVGGConfig configures MT-VGG (Recurrent false), MT-VGG-RNN (Recurrent)
// and A/V-MT-VGG-RNN (Recurrent and Audio).
type MTVGGConfig struct {
	NumClasses int64 // expression classes C (7 on Aff-Wild2)
	NumAUs     int64 // action units A (8 on Aff-Wild2)
	// Hidden is the fc6/fc7 width (4096); FCLayers 1 or 2 (see above);
	// Dropout after the last FC in training (0.5).
	Hidden   int64
	FCLayers int
	Dropout  float64
	// Recurrent adds the GRU: GRUHidden units (128) in GRULayers layers
	// (2), GRUDropout between them (0).
	Recurrent  bool
	GRUHidden  int64
	GRULayers  int
	GRUDropout float64
	// Audio adds the audio branch: AudioWidths (32, 64, 128) and
	// AudioDim (128). It needs Recurrent.
	Audio       bool
	AudioWidths []int64
	AudioDim    int64
	// VAActivation is "tanh" (default) or "none".
	VAActivation string
}

// DefaultMTVGGConfig is MT-VGG (recurrent false) or MT-VGG-RNN (true)
// on Aff-Wild2's 7 expressions and 8 AUs.
func DefaultMTVGGConfig(recurrent bool) MTVGGConfig {
	c := MTVGGConfig{NumClasses: 7, NumAUs: 8, Hidden: 4096, FCLayers: 2, Dropout: 0.5, VAActivation: "tanh",
		GRUHidden: 128, GRULayers: 2, AudioWidths: []int64{32, 64, 128}, AudioDim: 128}
	if recurrent {
		c.Recurrent, c.FCLayers = true, 1
	}
	return c
}

// MTVGG is the network (see the comment at the top of this file).
type MTVGG struct {
	VGG   *VGG      // "vgg"
	Audio *AudioCNN // "audio"; A/V only
	GRU   *GRU      // "gru"; RNN models only
	Head  *Linear   // "head": 2 + C + A

	cfg MTVGGConfig
}

// NewMTVGG builds the model under p.
func NewMTVGG(p *nn.Path, cfg MTVGGConfig) (*MTVGG, error) {
	if p == nil {
		return nil, fmt.Errorf("mt-vgg: nil path")
	}
	return newMTVGG(newBuilder(p), cfg)
}

// MTVGGParamCount is the number of trainable parameters NewMTVGG(cfg)
// builds, computed without allocating them.
func MTVGGParamCount(cfg MTVGGConfig) (int64, error) {
	b := newBuilder(nil)
	if _, err := newMTVGG(b, cfg); err != nil {
		return 0, err
	}
	return b.state.params, nil
}

func newMTVGG(b *builder, cfg MTVGGConfig) (*MTVGG, error) {
	if cfg.NumClasses < 1 || cfg.NumAUs < 0 {
		return nil, fmt.Errorf("mt-vgg: %d classes, %d AUs: want >= 1 class", cfg.NumClasses, cfg.NumAUs)
	}
	if cfg.Audio && !cfg.Recurrent {
		return nil, fmt.Errorf("mt-vgg: the audio branch is fused before the GRU: Audio needs Recurrent")
	}
	switch strings.ToLower(cfg.VAActivation) {
	case "tanh", "none":
	default:
		return nil, fmt.Errorf("mt-vgg: va_activation = %q, want tanh or none", cfg.VAActivation)
	}
	m := &MTVGG{cfg: cfg}
	vgg, err := newVGG(b.sub("vgg"), VGGConfig{Layers: VGG16Layers, Hidden: cfg.Hidden, Dropout: cfg.Dropout, FCLayers: cfg.FCLayers})
	if err != nil {
		return nil, fmt.Errorf("mt-vgg: %w", err)
	}
	m.VGG = vgg
	feat := cfg.Hidden
	if cfg.Audio {
		if m.Audio, err = newAudioCNN(b.sub("audio"), cfg.AudioWidths, cfg.AudioDim); err != nil {
			return nil, fmt.Errorf("mt-vgg: %w", err)
		}
		feat += cfg.AudioDim
	}
	if cfg.Recurrent {
		if m.GRU, err = newGRU(b.sub("gru"), GRUConfig{InputSize: feat, HiddenSize: cfg.GRUHidden, NumLayers: cfg.GRULayers, Dropout: cfg.GRUDropout}); err != nil {
			return nil, fmt.Errorf("mt-vgg: %w", err)
		}
		feat = cfg.GRUHidden
	}
	m.Head = newLinear(b.sub("head"), feat, 2+cfg.NumClasses+cfg.NumAUs)
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("mt-vgg: %w", err)
	}
	return m, nil
}

// Config returns the configuration.
func (m *MTVGG) Config() MTVGGConfig { return m.cfg }

// MTOutputs are a multi-task model's per-frame outputs, each with the
// input's leading dimensions ([B] or [B,T]).
type MTOutputs struct {
	VA     *ts.Tensor // [..,2]
	Logits *ts.Tensor // [..,C]
	AU     *ts.Tensor // [..,A]
	// Cos are the ArcFace cosines [..,C] (MTArc only; Logits is then
	// s·Cos).
	Cos *ts.Tensor
}

// Drop frees the outputs.
func (o *MTOutputs) Drop() {
	for _, t := range []*ts.Tensor{o.VA, o.Logits, o.AU, o.Cos} {
		if t != nil {
			t.Drop()
		}
	}
}

// frames flattens clips [B,T,C,H,W] to [B·T,C,H,W] (images [B,C,H,W]
// pass as T = 1) and returns B, T and whether the input was a clip.
func frames(x *ts.Tensor, channels int64, what string) (*ts.Tensor, int64, int64, bool, error) {
	s, err := x.Size()
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case len(s) == 4 && s[1] == channels:
		y, err := x.ShallowClone()
		return y, s[0], 1, false, err
	case len(s) == 5 && s[2] == channels:
		y, err := x.Reshape([]int64{s[0] * s[1], s[2], s[3], s[4]}, false)
		return y, s[0], s[1], true, err
	}
	return nil, 0, 0, false, fmt.Errorf("%s: shape %v, want [B,%d,H,W] or [B,T,%d,H,W]", what, s, channels, channels)
}

// Forward runs the model on frames x and, for A/V, the audio windows.
func (m *MTVGG) Forward(x, audio *ts.Tensor, train bool) (*MTOutputs, error) {
	sc := &sttScope{}
	defer sc.free()
	imgs, B, T, clip, err := frames(x, 3, "mt-vgg: frames")
	if err != nil {
		return nil, err
	}
	sc.add(imgs)
	fFeat := sc.add(m.VGG.ForwardT(imgs, train)) // [B·T, Hidden]
	if fFeat, err = sc.t(sttDropout(fFeat, m.cfg.Dropout, train)); err != nil {
		return nil, fmt.Errorf("mt-vgg: dropout: %w", err)
	}
	if m.Audio != nil {
		if audio == nil {
			return nil, fmt.Errorf("a/v-mt-vgg-rnn needs the audio windows as its second input: set data.options.audio: true")
		}
		aw, aB, aT, _, err := frames(audio, 1, "a/v-mt-vgg-rnn: audio")
		if err != nil {
			return nil, err
		}
		sc.add(aw)
		if aB != B || aT != T {
			return nil, fmt.Errorf("a/v-mt-vgg-rnn: %d×%d audio windows for %d×%d frames", aB, aT, B, T)
		}
		emb, err := sc.t(m.Audio.Forward(aw, train))
		if err != nil {
			return nil, err
		}
		if fFeat, err = sc.t(ts.Cat([]*ts.Tensor{fFeat, emb}, 1)); err != nil {
			return nil, fmt.Errorf("a/v-mt-vgg-rnn: fusion: %w", err)
		}
	}
	h := fFeat
	if m.GRU != nil {
		seq, err := sc.t(h.Reshape([]int64{B, T, -1}, false))
		if err != nil {
			return nil, err
		}
		if h, err = sc.t(m.GRU.Forward(seq, train)); err != nil {
			return nil, fmt.Errorf("mt-vgg-rnn: %w", err)
		}
		if h, err = sc.t(h.Reshape([]int64{B * T, -1}, false)); err != nil {
			return nil, err
		}
	}
	y, err := sc.t(ts.Linear(h, m.Head.Weight, m.Head.Bias))
	if err != nil {
		return nil, fmt.Errorf("mt-vgg: head: %w", err)
	}
	lead := []int64{B}
	if clip {
		lead = []int64{B, T}
	}
	return splitHead(y, lead, m.cfg.NumClasses, m.cfg.NumAUs, m.cfg.VAActivation)
}

// splitHead cuts the fused head output [N, 2 + C + A] (C = 0: [N, 2 + A]
// without expression units) into the outputs, reshaped to lead + [k].
func splitHead(y *ts.Tensor, lead []int64, C, A int64, vaAct string) (*MTOutputs, error) {
	o := &MTOutputs{}
	cut := func(start, n int64) (*ts.Tensor, error) {
		part, err := y.Narrow(1, start, n, false)
		if err != nil {
			return nil, err
		}
		return part.Reshape(append(append([]int64(nil), lead...), n), true)
	}
	var err error
	if o.VA, err = cut(0, 2); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	if strings.ToLower(vaAct) == "tanh" {
		if o.VA, err = o.VA.Tanh(true); err != nil {
			return nil, fmt.Errorf("head: tanh: %w", err)
		}
	}
	if C > 0 {
		if o.Logits, err = cut(2, C); err != nil {
			o.Drop()
			return nil, fmt.Errorf("head: %w", err)
		}
	}
	if A > 0 {
		if o.AU, err = cut(2+C, A); err != nil {
			o.Drop()
			return nil, fmt.Errorf("head: %w", err)
		}
	}
	return o, nil
}

// AudioCNN is the A/V model's per-window audio network (see the comment
// at the top of this file): log-mel windows [N,1,n_mels,W] → [N, Dim].
type AudioCNN struct {
	BN0    *BatchNorm // "bn0"
	Blocks []AudioBlock
	FC     *Linear // "fc"
	Dim    int64
}

// AudioBlock is "blocks.i": conv 3×3 (no bias) → BN → ReLU → max-pool 2.
type AudioBlock struct {
	Conv *Conv2d
	BN   *BatchNorm
}

func newAudioCNN(b *builder, widths []int64, dim int64) (*AudioCNN, error) {
	if len(widths) == 0 || dim < 1 {
		return nil, fmt.Errorf("audio cnn: widths %v, dim %d: want at least one block and dim >= 1", widths, dim)
	}
	a := &AudioCNN{BN0: newBatchNorm(b.sub("bn0"), 1, 0), Dim: dim}
	in := int64(1)
	for i, w := range widths {
		if w < 1 {
			return nil, fmt.Errorf("audio cnn: width %d", w)
		}
		bb := b.sub(fmt.Sprintf("blocks.%d", i))
		a.Blocks = append(a.Blocks, AudioBlock{
			Conv: newConv2d(bb.sub("conv"), in, w, 3, convOpts{padding: 1}),
			BN:   newBatchNorm(bb.sub("bn"), w, 0),
		})
		in = w
	}
	a.FC = newLinear(b.sub("fc"), in, dim)
	return a, nil
}

// Forward maps windows [N,1,M,W] to embeddings [N, Dim]. Windows smaller
// than 2^blocks in either side are an error.
func (a *AudioCNN) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	s, err := x.Size()
	if err != nil {
		return nil, err
	}
	if min(s[2], s[3]) < int64(1)<<len(a.Blocks) {
		return nil, fmt.Errorf("audio cnn: window %dx%d is smaller than 2^%d (one 2x2 pool per block): use more mel bands / a longer audio_window", s[2], s[3], len(a.Blocks))
	}
	h := a.BN0.ForwardT(x, train)
	for _, blk := range a.Blocks {
		h = step(blk.Conv, h, train)
		h = step(blk.BN, h, train)
		h = relu(h, true)
		h = h.MustMaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
	}
	h = globalAvgPool(h, true)
	return relu(step(a.FC, h, train), true), nil
}
