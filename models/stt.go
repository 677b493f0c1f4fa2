package models

import (
	"fmt"
	"math"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// STT: spatio-temporal transformer for dynamic (video) FER — Ma, Sun & Li,
// "Spatio-Temporal Transformer for Dynamic Facial Expression Recognition
// in the Wild", arXiv 2205.04749 (2022).
//
// The paper's text was not available (SPEC.md §4). The abstract says a CNN
// turns each frame into a sequence of visual features, and that spatial
// and temporal attention are "jointly applied" in every transformer block.
// The sizes follow the closest code by the same first author (a MindSpore
// port of LOGO-Former, SPEC.md §4.2): 16 frames of 112×112, ResNet-18 up to
// stage 3 (256×7×7 per frame), a 1×1 "patch" conv to 512-d tokens,
// 16 × 49 = 784 tokens + one CLS token, learned spatial (49+1, CLS
// included) and temporal (16) position embeddings, 4 pre-norm blocks of
// 8 heads with a 4× MLP, stochastic depth up to 0.1, and the CLS token
// through a final LayerNorm into a 512→7 linear classifier.
//
// Forward pass, top to bottom (parameter names in quotes):
//
//	clip [B,T,3,H,W] → frames [B·T,3,H,W]
//	→ "backbone": ResNet conv1 … layer3        → [B·T,256,h,w]   (h = w = ⌈H/16⌉: 7 at 112 px)
//	→ "patch_embed.proj": 1×1 conv 256→D       → N = h·w tokens per frame
//	→ + "pos_embed"[1:] (spatial), + "time_embed" (temporal), prepend
//	  "cls_token" + "pos_embed"[0]              → [B, 1+T·N, D]
//	→ "blocks.0" … "blocks.{Depth-1}"          (STTBlock, below)
//	→ "norm" → CLS token → "head": Linear D→classes
//
// How spatial and temporal attention are combined inside a block is not
// known (SPEC.md §4.3), so it is a switch (STTConfig.Attention):
//
//   - "joint" (default) is OUR READING of "jointly applied": spatial
//     attention (over the N tokens of one frame) and temporal attention
//     (over the T tokens at one spatial position) both read the same
//     normalised input and their outputs are summed into one residual:
//     x ← x + DropPath(SA(LN₁(x)) + TA(LN₁(x))); x ← x + DropPath(MLP(LN₂(x))).
//   - "divided" is TimeSformer's divided space-time attention (the
//     operator order the LOGO-Former port keeps commented out: time, then
//     space): x ← x + TA(LN_t(x)); x ← x + SA(LN₁(x)); x ← x + MLP(LN₂(x)).
//     TimeSformer's extra temporal_fc projection is not included.
//   - "full" is one attention over all 1+T·N tokens (what TimeSformer calls
//     "joint space-time" attention — not our "joint").
//
// CLS token. Spatial attention (all variants) follows TimeSformer: every
// frame's sequence is [CLS, its N tokens]; the CLS copy is updated per
// frame and the T results are averaged. Temporal attention differs:
//
//   - "joint": symmetrically, every spatial position's sequence is
//     [CLS, its T tokens] and the N CLS results are averaged. Our choice,
//     and a necessary one: with parallel branches and TimeSformer's
//     CLS-free temporal attention, the last block's temporal attention
//     would only update patch tokens that nothing reads any more (the
//     classifier reads the CLS token), i.e. its parameters would never get
//     a gradient (a test checks that all parameters do).
//   - "divided": TimeSformer's convention, patch tokens only, the CLS
//     token gets a zero update (the following spatial attention of the
//     same block carries the temporal update to the CLS token).
//   - "full": the CLS token is one more token.

// STT attention variants (STTConfig.Attention).
const (
	STTAttentionJoint   = "joint"
	STTAttentionDivided = "divided"
	STTAttentionFull    = "full"
)

// STTConfig configures STT. Zero values of the structural fields
// (NumClasses … Heads, MLPRatio, Attention, Backbone) take the defaults of
// DefaultSTTConfig; Dropout and DropPath are used as given (0 disables
// them), so start from DefaultSTTConfig to get drop-path 0.1.
type STTConfig struct {
	NumClasses int     // classifier outputs; default 7
	Frames     int     // clip length T; default 16
	ImageSize  int     // frame side H = W in pixels; default 112
	Dim        int     // token width D; default 512
	Depth      int     // transformer blocks; default 4
	Heads      int     // attention heads (must divide Dim); default 8
	MLPRatio   float64 // MLP hidden width = MLPRatio·Dim; default 4
	// Dropout is applied after the position embeddings, to the attention
	// probabilities and after the attention and MLP projections; default 0
	// (the port's dropout_p).
	Dropout float64
	// DropPath is the stochastic-depth rate of the last block, rising
	// linearly from 0 in the first (timm); default 0.1.
	DropPath float64
	// Attention is "joint" (default), "divided" or "full"; see the
	// comment at the top of stt.go.
	Attention string
	// Backbone is the per-frame CNN, cut after its stage 3: "resnet18"
	// (default, 256 channels), "resnet34" (256) or "resnet50" (1024).
	Backbone string
}

// DefaultSTTConfig is the configuration described above (SPEC.md §4.2).
// It has 19,765,319 trainable parameters (ResNet-18 trunk 2,782,784,
// patch conv and embeddings 165,888, four joint blocks of 4,203,008,
// final norm and head 4,615); "divided" has 19,769,415 and "full"
// 15,562,823 (STTParamCount; checked by hand in stt_test.go).
func DefaultSTTConfig() STTConfig {
	return STTConfig{
		NumClasses: 7, Frames: 16, ImageSize: 112, Dim: 512, Depth: 4, Heads: 8,
		MLPRatio: 4, Dropout: 0, DropPath: 0.1, Attention: STTAttentionJoint, Backbone: "resnet18",
	}
}

// sttBackbones maps STTConfig.Backbone to a ResNet depth.
var sttBackbones = map[string]int{"resnet18": 18, "resnet34": 34, "resnet50": 50}

// normalized fills zero structural fields with defaults and validates.
func (c STTConfig) normalized() (STTConfig, error) {
	d := DefaultSTTConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.NumClasses, d.NumClasses)
	setInt(&c.Frames, d.Frames)
	setInt(&c.ImageSize, d.ImageSize)
	setInt(&c.Dim, d.Dim)
	setInt(&c.Depth, d.Depth)
	setInt(&c.Heads, d.Heads)
	if c.MLPRatio == 0 {
		c.MLPRatio = d.MLPRatio
	}
	if c.Attention == "" {
		c.Attention = d.Attention
	}
	if c.Backbone == "" {
		c.Backbone = d.Backbone
	}
	c.Attention = strings.ToLower(c.Attention)
	c.Backbone = strings.ToLower(c.Backbone)
	switch {
	case c.NumClasses < 1:
		return c, fmt.Errorf("stt: NumClasses = %d, want >= 1", c.NumClasses)
	case c.Frames < 1:
		return c, fmt.Errorf("stt: Frames = %d, want >= 1", c.Frames)
	case c.ImageSize < 16:
		return c, fmt.Errorf("stt: ImageSize = %d, want >= 16 (the backbone's stage 3 has stride 16)", c.ImageSize)
	case c.Dim < 1 || c.Heads < 1 || c.Dim%c.Heads != 0:
		return c, fmt.Errorf("stt: Dim = %d, Heads = %d: want Dim a positive multiple of Heads", c.Dim, c.Heads)
	case c.Depth < 1:
		return c, fmt.Errorf("stt: Depth = %d, want >= 1", c.Depth)
	case !(c.MLPRatio > 0) || math.IsInf(c.MLPRatio, 0) || int(c.MLPRatio*float64(c.Dim)) < 1:
		return c, fmt.Errorf("stt: MLPRatio = %v, want > 0", c.MLPRatio)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return c, fmt.Errorf("stt: Dropout = %v, want in [0, 1)", c.Dropout)
	case !(c.DropPath >= 0 && c.DropPath < 1):
		return c, fmt.Errorf("stt: DropPath = %v, want in [0, 1)", c.DropPath)
	}
	switch c.Attention {
	case STTAttentionJoint, STTAttentionDivided, STTAttentionFull:
	default:
		return c, fmt.Errorf("stt: Attention = %q, want %q, %q or %q", c.Attention, STTAttentionJoint, STTAttentionDivided, STTAttentionFull)
	}
	if _, ok := sttBackbones[c.Backbone]; !ok {
		return c, fmt.Errorf("stt: Backbone = %q, want resnet18, resnet34 or resnet50", c.Backbone)
	}
	return c, nil
}

// TokenGrid is the side of the per-frame token grid: the backbone halves
// the resolution four times (stem conv, max-pool, layer2, layer3), each
// time rounding up, so 112 → 7, 64 → 4, 56 → 4.
func (c STTConfig) TokenGrid() int {
	g := c.ImageSize
	for i := 0; i < 4; i++ {
		g = (g + 1) / 2
	}
	return g
}

// STT is the spatio-temporal transformer (see the comment at the top of
// this file). Build it with NewSTT.
type STT struct {
	Backbone   *ResNet    // "backbone": conv1 … layer3, no classifier
	PatchEmbed *Conv2d    // "patch_embed.proj": 1×1 conv C→D
	ClsToken   *ts.Tensor // "cls_token" [1,1,D]
	PosEmbed   *ts.Tensor // "pos_embed" [1,N+1,D]; index 0 is the CLS position
	TimeEmbed  *ts.Tensor // "time_embed" [1,T,D]
	Blocks     []*STTBlock
	Norm       *LayerNorm // "norm"
	Head       *Linear    // "head": D → NumClasses

	cfg    STTConfig
	grid   int64 // token grid side
	params int64 // trainable parameter elements

	// Grad-CAM (SetGradCAM): stage-3 maps of the last forward pass and
	// the zero leaf added to them, whose .grad is their gradient.
	gradCAM            bool
	camFeats, camLeaf  *ts.Tensor
	camFrames, camSize []int64
}

// STTBlock is one transformer block; which sub-layers exist depends on
// the attention variant.
type STTBlock struct {
	Norm1         *LayerNorm    // "norm1": before spatial (joint: both) attention
	Attn          *STTAttention // "attn": spatial attention ("full": over all tokens)
	TemporalNorm1 *LayerNorm    // "temporal_norm1": divided only
	TemporalAttn  *STTAttention // "temporal_attn": joint and divided
	Norm2         *LayerNorm    // "norm2"
	MLP           *STTMLP       // "mlp"
	DropPath      float64       // stochastic-depth rate of this block

	variant string
}

// STTAttention is multi-head self-attention (timm's Attention: "qkv"
// D→3D, "proj" D→D) on sequences [S, L, D]; the attention itself is
// ScaledDotProductAttention (fused on libtorch >= 2.0, matmul and softmax
// on 1.13).
type STTAttention struct {
	QKV, Proj *Linear
	Heads     int64
	Dim       int64
	Dropout   float64 // on the attention probabilities and after proj
}

// STTMLP is timm's Mlp: "fc1" D→hidden, GELU, dropout, "fc2" hidden→D,
// dropout.
type STTMLP struct {
	FC1, FC2 *Linear
	Dropout  float64
}

// NewSTT builds STT under p (parameter names relative to p). The backbone
// and the patch conv get torchvision's/PyTorch's default initialisation;
// the transformer's linear layers N(0, 0.02) weights and zero biases (timm's
// trunc_normal_(std=.02) truncates at ±2, i.e. ±100σ, so it is the same
// distribution); the CLS token and both position embeddings N(0, 0.02);
// LayerNorms 1 and 0.
func NewSTT(p *nn.Path, cfg STTConfig) (*STT, error) {
	if p == nil {
		return nil, fmt.Errorf("stt: nil path")
	}
	return newSTT(newBuilder(p), cfg)
}

// STTParamCount is the number of trainable parameters NewSTT(cfg) builds,
// computed without allocating them.
func STTParamCount(cfg STTConfig) (int64, error) {
	m, err := newSTT(newBuilder(nil), cfg)
	if err != nil {
		return 0, err
	}
	return m.params, nil
}

func newSTT(b *builder, cfg STTConfig) (*STT, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	backbone, err := newResNet(b.sub("backbone"), ResNetConfig{Depth: sttBackbones[cfg.Backbone], NumStages: 3})
	if err != nil {
		return nil, fmt.Errorf("stt: %w", err)
	}
	D := int64(cfg.Dim)
	grid := int64(cfg.TokenGrid())
	N := grid * grid
	m := &STT{Backbone: backbone, cfg: cfg, grid: grid}
	m.PatchEmbed = newConv2d(b.sub("patch_embed.proj"), backbone.FeatureDim(), D, 1, convOpts{bias: true})
	m.ClsToken = b.param("cls_token", []int64{1, 1, D}, initNormal(0.02))
	m.PosEmbed = b.param("pos_embed", []int64{1, N + 1, D}, initNormal(0.02))
	m.TimeEmbed = b.param("time_embed", []int64{1, int64(cfg.Frames), D}, initNormal(0.02))
	hidden := int64(cfg.MLPRatio * float64(cfg.Dim))
	for i := 0; i < cfg.Depth; i++ {
		bb := b.sub(fmt.Sprintf("blocks.%d", i))
		blk := &STTBlock{variant: cfg.Attention}
		if cfg.Depth > 1 {
			blk.DropPath = cfg.DropPath * float64(i) / float64(cfg.Depth-1)
		}
		blk.Norm1 = newLayerNorm(bb.sub("norm1"), D, 1e-6)
		blk.Attn = newSTTAttention(bb.sub("attn"), D, int64(cfg.Heads), cfg.Dropout)
		if cfg.Attention == STTAttentionDivided {
			blk.TemporalNorm1 = newLayerNorm(bb.sub("temporal_norm1"), D, 1e-6)
		}
		if cfg.Attention != STTAttentionFull {
			blk.TemporalAttn = newSTTAttention(bb.sub("temporal_attn"), D, int64(cfg.Heads), cfg.Dropout)
		}
		blk.Norm2 = newLayerNorm(bb.sub("norm2"), D, 1e-6)
		blk.MLP = &STTMLP{
			FC1:     newSTTLinear(bb.sub("mlp.fc1"), D, hidden),
			FC2:     newSTTLinear(bb.sub("mlp.fc2"), hidden, D),
			Dropout: cfg.Dropout,
		}
		m.Blocks = append(m.Blocks, blk)
	}
	m.Norm = newLayerNorm(b.sub("norm"), D, 1e-6)
	m.Head = newSTTLinear(b.sub("head"), D, int64(cfg.NumClasses))
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("stt: %w", err)
	}
	m.params = b.state.params
	return m, nil
}

// newSTTLinear is a Linear with timm's ViT initialisation: N(0, 0.02)
// weight, zero bias.
func newSTTLinear(b *builder, in, out int64) *Linear {
	return &Linear{
		Weight: b.param("weight", []int64{out, in}, initNormal(0.02)),
		Bias:   b.param("bias", []int64{out}, initConst(0)),
		In:     in,
		Out:    out,
	}
}

func newSTTAttention(b *builder, dim, heads int64, dropout float64) *STTAttention {
	return &STTAttention{
		QKV:     newSTTLinear(b.sub("qkv"), dim, 3*dim),
		Proj:    newSTTLinear(b.sub("proj"), dim, dim),
		Heads:   heads,
		Dim:     dim,
		Dropout: dropout,
	}
}

// Config returns the configuration the model was built with (defaults
// filled in).
func (m *STT) Config() STTConfig { return m.cfg }

// NumParameters is the number of trainable parameter elements.
func (m *STT) NumParameters() int64 { return m.params }

// ForwardT maps clips [B,T,3,H,W] (T = Frames, H = W = ImageSize) to
// logits [B, NumClasses]. It has gotch's nn.ModuleT signature, which has
// no error result: on an error (a clip of the wrong shape) it panics with
// fer.FailForward, which fer's training, evaluation and prediction recover
// as an error. Use Forward to get the error directly.
func (m *STT) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	y, err := m.Forward(x, train)
	if err != nil {
		fer.FailForward(err)
	}
	return y
}

// Forward maps clips [B,T,3,H,W] to logits [B, NumClasses].
func (m *STT) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	shape, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("stt: input: %w", err)
	}
	T, S := int64(m.cfg.Frames), int64(m.cfg.ImageSize)
	if len(shape) != 5 || shape[0] < 1 || shape[1] != T || shape[2] != 3 || shape[3] != S || shape[4] != S {
		return nil, fmt.Errorf("stt: input shape %v, want [B,%d,3,%d,%d] (clips of Frames RGB frames of ImageSize pixels; resize/sample the clip or build the model with that Frames/ImageSize)", shape, T, S, S)
	}
	B := shape[0]
	sc := &sttScope{}
	defer sc.free()

	frames, err := sc.t(x.Reshape([]int64{B * T, 3, S, S}, false))
	if err != nil {
		return nil, fmt.Errorf("stt: frames: %w", err)
	}
	feats, err := m.encode(frames, train)
	if err != nil {
		return nil, err
	}
	sc.add(feats)
	if m.gradCAM {
		if feats, err = m.recordGradCAM(feats, B, T); err != nil {
			return nil, err
		}
		sc.add(feats)
	}
	return m.fromFeatures(feats, B, T, train)
}

// fromFeatures runs everything after the backbone: stage-3 maps
// [B·T,C,g,g] to logits [B, NumClasses].
func (m *STT) fromFeatures(feats *ts.Tensor, B, T int64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	tokens, err := m.embed(feats, B, T, train)
	if err != nil {
		return nil, err
	}
	sc.add(tokens)
	for i, blk := range m.Blocks {
		if tokens, err = blk.Forward(tokens, T, m.grid*m.grid, train); err != nil {
			return nil, fmt.Errorf("stt: blocks.%d: %w", i, err)
		}
		sc.add(tokens)
	}
	h, err := sc.t(m.Norm.Forward(tokens))
	if err != nil {
		return nil, fmt.Errorf("stt: norm: %w", err)
	}
	cls, err := sc.t(h.Select(1, 0, false))
	if err != nil {
		return nil, fmt.Errorf("stt: cls token: %w", err)
	}
	logits, err := sttLinear(m.Head, cls)
	if err != nil {
		return nil, fmt.Errorf("stt: head: %w", err)
	}
	return logits, nil
}

// encode runs the backbone up to stage 3 on frames [B·T,3,H,W] and checks
// the token grid.
func (m *STT) encode(frames *ts.Tensor, train bool) (*ts.Tensor, error) {
	f := m.Backbone.ForwardFeatures(frames, train)
	last := len(f.Stages) - 1
	feats := f.Stages[last]
	f.Stages = f.Stages[:last]
	f.Drop()
	shape, err := feats.Size()
	if err != nil {
		feats.Drop()
		return nil, fmt.Errorf("stt: backbone output: %w", err)
	}
	if len(shape) != 4 || shape[1] != m.Backbone.FeatureDim() || shape[2] != m.grid || shape[3] != m.grid {
		feats.Drop()
		return nil, fmt.Errorf("stt: backbone stage 3 gives %v, want [B·T,%d,%d,%d]", shape, m.Backbone.FeatureDim(), m.grid, m.grid)
	}
	return feats, nil
}

// embed turns stage-3 maps [B·T,C,g,g] into the token sequence
// [B, 1+T·N, D]: CLS first, then frame-major patch tokens (index
// 1 + t·N + n).
func (m *STT) embed(feats *ts.Tensor, B, T int64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	D, N := int64(m.cfg.Dim), m.grid*m.grid
	wrap := func(step string, err error) error { return fmt.Errorf("stt: patch embedding: %s: %w", step, err) }

	tok, err := sc.t(ts.Conv2d(feats, m.PatchEmbed.Weight, m.PatchEmbed.Bias, []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1))
	if err != nil {
		return nil, wrap("1x1 conv", err)
	}
	if tok, err = sc.t(tok.Flatten(2, -1, false)); err != nil {
		return nil, wrap("flatten", err)
	}
	if tok, err = sc.t(tok.Transpose(1, 2, false)); err != nil { // [B·T, N, D]
		return nil, wrap("transpose", err)
	}
	pos, err := sc.t(m.PosEmbed.Narrow(1, 1, N, false))
	if err != nil {
		return nil, wrap("spatial position", err)
	}
	if tok, err = sc.t(tok.Add(pos, false)); err != nil {
		return nil, wrap("add spatial position", err)
	}
	if tok, err = sc.t(tok.Reshape([]int64{B, T, N, D}, false)); err != nil {
		return nil, wrap("reshape", err)
	}
	tpos, err := sc.t(m.TimeEmbed.Unsqueeze(2, false)) // [1,T,1,D]
	if err != nil {
		return nil, wrap("temporal position", err)
	}
	if tok, err = sc.t(tok.Add(tpos, false)); err != nil {
		return nil, wrap("add temporal position", err)
	}
	if tok, err = sc.t(tok.Reshape([]int64{B, T * N, D}, false)); err != nil {
		return nil, wrap("reshape", err)
	}
	cpos, err := sc.t(m.PosEmbed.Narrow(1, 0, 1, false))
	if err != nil {
		return nil, wrap("cls position", err)
	}
	cls, err := sc.t(m.ClsToken.Add(cpos, false))
	if err != nil {
		return nil, wrap("cls token", err)
	}
	if cls, err = sc.t(cls.Expand([]int64{B, 1, D}, false, false)); err != nil {
		return nil, wrap("expand cls", err)
	}
	x, err := sc.t(ts.Cat([]*ts.Tensor{cls, tok}, 1))
	if err != nil {
		return nil, wrap("cat", err)
	}
	out, err := sttDropout(x, m.cfg.Dropout, train)
	if err != nil {
		return nil, wrap("dropout", err)
	}
	return out, nil
}

// Forward applies the block to x [B, 1+T·N, D].
func (blk *STTBlock) Forward(x *ts.Tensor, T, N int64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	var err error
	switch blk.variant {
	case STTAttentionJoint:
		// Our reading of "jointly applied": both attentions read the same
		// LN₁(x); their sum is one residual branch.
		h, err := sc.t(blk.Norm1.Forward(x))
		if err != nil {
			return nil, err
		}
		s, err := sc.t(blk.spatial(h, T, N, train))
		if err != nil {
			return nil, err
		}
		t, err := sc.t(blk.temporal(h, T, N, true, train))
		if err != nil {
			return nil, err
		}
		a, err := sc.t(s.Add(t, false))
		if err != nil {
			return nil, err
		}
		if x, err = sc.t(sttResidual(x, a, blk.DropPath, train)); err != nil {
			return nil, err
		}
	case STTAttentionDivided:
		// TimeSformer: time, then space, each with its own norm.
		h, err := sc.t(blk.TemporalNorm1.Forward(x))
		if err != nil {
			return nil, err
		}
		t, err := sc.t(blk.temporal(h, T, N, false, train))
		if err != nil {
			return nil, err
		}
		if x, err = sc.t(sttResidual(x, t, blk.DropPath, train)); err != nil {
			return nil, err
		}
		if h, err = sc.t(blk.Norm1.Forward(x)); err != nil {
			return nil, err
		}
		s, err := sc.t(blk.spatial(h, T, N, train))
		if err != nil {
			return nil, err
		}
		if x, err = sc.t(sttResidual(x, s, blk.DropPath, train)); err != nil {
			return nil, err
		}
	case STTAttentionFull:
		h, err := sc.t(blk.Norm1.Forward(x))
		if err != nil {
			return nil, err
		}
		a, err := sc.t(blk.Attn.Forward(h, train))
		if err != nil {
			return nil, err
		}
		if x, err = sc.t(sttResidual(x, a, blk.DropPath, train)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown attention variant %q", blk.variant)
	}
	h, err := sc.t(blk.Norm2.Forward(x))
	if err != nil {
		return nil, err
	}
	f, err := sc.t(blk.MLP.Forward(h, train))
	if err != nil {
		return nil, err
	}
	return sttResidual(x, f, blk.DropPath, train)
}

// spatial is attention among the tokens of each frame, the CLS token
// taking part in every frame's sequence and its T outputs averaged.
// h is [B, 1+T·N, D]; so is the result.
func (blk *STTBlock) spatial(h *ts.Tensor, T, N int64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := h.Size()
	if err != nil {
		return nil, err
	}
	B, D := shape[0], shape[2]
	wrap := func(step string, err error) error { return fmt.Errorf("spatial attention: %s: %w", step, err) }

	cls, err := sc.t(h.Narrow(1, 0, 1, false)) // [B,1,D]
	if err != nil {
		return nil, wrap("cls", err)
	}
	if cls, err = sc.t(cls.Unsqueeze(1, false)); err != nil { // [B,1,1,D]
		return nil, wrap("cls", err)
	}
	if cls, err = sc.t(cls.Expand([]int64{B, T, 1, D}, false, false)); err != nil {
		return nil, wrap("repeat cls per frame", err)
	}
	if cls, err = sc.t(cls.Reshape([]int64{B * T, 1, D}, false)); err != nil {
		return nil, wrap("repeat cls per frame", err)
	}
	pt, err := sc.t(h.Narrow(1, 1, T*N, false))
	if err != nil {
		return nil, wrap("patch tokens", err)
	}
	if pt, err = sc.t(pt.Reshape([]int64{B * T, N, D}, false)); err != nil {
		return nil, wrap("per-frame sequences", err)
	}
	seq, err := sc.t(ts.Cat([]*ts.Tensor{cls, pt}, 1)) // [B·T, 1+N, D]
	if err != nil {
		return nil, wrap("cat", err)
	}
	out, err := sc.t(blk.Attn.Forward(seq, train))
	if err != nil {
		return nil, wrap("attention", err)
	}
	clsO, err := sc.t(out.Narrow(1, 0, 1, false))
	if err != nil {
		return nil, wrap("cls out", err)
	}
	if clsO, err = sc.t(clsO.Reshape([]int64{B, T, D}, false)); err != nil {
		return nil, wrap("cls out", err)
	}
	if clsO, err = sc.t(clsO.MeanDim([]int64{1}, true, gotch.Invalid, false)); err != nil { // [B,1,D]
		return nil, wrap("average cls over frames", err)
	}
	ptO, err := sc.t(out.Narrow(1, 1, N, false))
	if err != nil {
		return nil, wrap("patch out", err)
	}
	if ptO, err = sc.t(ptO.Reshape([]int64{B, T * N, D}, false)); err != nil {
		return nil, wrap("patch out", err)
	}
	res, err := ts.Cat([]*ts.Tensor{clsO, ptO}, 1)
	if err != nil {
		return nil, wrap("cat", err)
	}
	return res, nil
}

// temporal is attention among the T tokens at each spatial position.
// With cls (the "joint" variant) the CLS token takes part in every
// position's sequence and its N outputs are averaged, as in spatial;
// without (TimeSformer's "divided" convention) it gets a zero update.
// h is [B, 1+T·N, D]; so is the result.
func (blk *STTBlock) temporal(h *ts.Tensor, T, N int64, cls, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := h.Size()
	if err != nil {
		return nil, err
	}
	B, D := shape[0], shape[2]
	wrap := func(step string, err error) error { return fmt.Errorf("temporal attention: %s: %w", step, err) }

	pt, err := sc.t(h.Narrow(1, 1, T*N, false))
	if err != nil {
		return nil, wrap("patch tokens", err)
	}
	if pt, err = sc.t(pt.Reshape([]int64{B, T, N, D}, false)); err != nil {
		return nil, wrap("reshape", err)
	}
	if pt, err = sc.t(pt.Permute([]int64{0, 2, 1, 3}, false)); err != nil { // [B,N,T,D]
		return nil, wrap("permute", err)
	}
	if pt, err = sc.t(pt.Reshape([]int64{B * N, T, D}, false)); err != nil {
		return nil, wrap("per-position sequences", err)
	}
	if cls {
		c, err := sc.t(h.Narrow(1, 0, 1, false)) // [B,1,D]
		if err != nil {
			return nil, wrap("cls", err)
		}
		if c, err = sc.t(c.Unsqueeze(1, false)); err != nil { // [B,1,1,D]
			return nil, wrap("cls", err)
		}
		if c, err = sc.t(c.Expand([]int64{B, N, 1, D}, false, false)); err != nil {
			return nil, wrap("repeat cls per position", err)
		}
		if c, err = sc.t(c.Reshape([]int64{B * N, 1, D}, false)); err != nil {
			return nil, wrap("repeat cls per position", err)
		}
		if pt, err = sc.t(ts.Cat([]*ts.Tensor{c, pt}, 1)); err != nil { // [B·N, 1+T, D]
			return nil, wrap("cat", err)
		}
	}
	out, err := sc.t(blk.TemporalAttn.Forward(pt, train))
	if err != nil {
		return nil, wrap("attention", err)
	}
	var clsO *ts.Tensor
	if cls {
		if clsO, err = sc.t(out.Narrow(1, 0, 1, false)); err != nil {
			return nil, wrap("cls out", err)
		}
		if clsO, err = sc.t(clsO.Reshape([]int64{B, N, D}, false)); err != nil {
			return nil, wrap("cls out", err)
		}
		if clsO, err = sc.t(clsO.MeanDim([]int64{1}, true, gotch.Invalid, false)); err != nil { // [B,1,D]
			return nil, wrap("average cls over positions", err)
		}
		if out, err = sc.t(out.Narrow(1, 1, T, false)); err != nil {
			return nil, wrap("patch out", err)
		}
	} else {
		dev, err := h.Device()
		if err != nil {
			return nil, wrap("device", err)
		}
		if clsO, err = sc.t(ts.Zeros([]int64{B, 1, D}, h.DType(), dev)); err != nil {
			return nil, wrap("cls", err)
		}
	}
	if out, err = sc.t(out.Reshape([]int64{B, N, T, D}, false)); err != nil {
		return nil, wrap("reshape", err)
	}
	if out, err = sc.t(out.Permute([]int64{0, 2, 1, 3}, false)); err != nil { // [B,T,N,D]
		return nil, wrap("permute", err)
	}
	if out, err = sc.t(out.Reshape([]int64{B, T * N, D}, false)); err != nil {
		return nil, wrap("reshape", err)
	}
	res, err := ts.Cat([]*ts.Tensor{clsO, out}, 1)
	if err != nil {
		return nil, wrap("cat", err)
	}
	return res, nil
}

// Forward is self-attention on x [S, L, D] (S independent sequences of
// length L), returning [S, L, D].
func (a *STTAttention) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	out, _, err := a.forward(x, train, false)
	return out, err
}

// forward also returns the attention probabilities [S, heads, L, L] when
// keepProbs is set (for tests and attention maps).
func (a *STTAttention) forward(x *ts.Tensor, train, keepProbs bool) (out, probs *ts.Tensor, err error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := x.Size()
	if err != nil {
		return nil, nil, err
	}
	if len(shape) != 3 || shape[2] != a.Dim {
		return nil, nil, fmt.Errorf("attention input %v, want [S, L, %d]", shape, a.Dim)
	}
	S, L, H := shape[0], shape[1], a.Heads
	dh := a.Dim / H

	qkv, err := sc.t(sttLinear(a.QKV, x)) // [S, L, 3D]
	if err != nil {
		return nil, nil, fmt.Errorf("qkv: %w", err)
	}
	if qkv, err = sc.t(qkv.Reshape([]int64{S, L, 3, H, dh}, false)); err != nil {
		return nil, nil, err
	}
	if qkv, err = sc.t(qkv.Permute([]int64{2, 0, 3, 1, 4}, false)); err != nil { // [3, S, H, L, dh]
		return nil, nil, err
	}
	q, err := sc.t(qkv.Select(0, 0, false))
	if err != nil {
		return nil, nil, err
	}
	k, err := sc.t(qkv.Select(0, 1, false))
	if err != nil {
		return nil, nil, err
	}
	v, err := sc.t(qkv.Select(0, 2, false))
	if err != nil {
		return nil, nil, err
	}
	var ctx *ts.Tensor // [S, H, L, dh]
	if keepProbs {
		ctx, probs, err = AttentionWithProbs(q, k, v, a.Dropout, train)
	} else {
		ctx, err = ScaledDotProductAttention(q, k, v, a.Dropout, train)
	}
	if err != nil {
		return nil, nil, err
	}
	sc.add(ctx)
	defer func() {
		if err != nil && probs != nil {
			probs.Drop()
			probs = nil
		}
	}()
	if ctx, err = sc.t(ctx.Transpose(1, 2, false)); err != nil { // [S, L, H, dh]
		return nil, nil, err
	}
	if ctx, err = sc.t(ctx.Reshape([]int64{S, L, a.Dim}, false)); err != nil {
		return nil, nil, err
	}
	o, err := sc.t(sttLinear(a.Proj, ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("proj: %w", err)
	}
	if out, err = sttDropout(o, a.Dropout, train); err != nil {
		return nil, nil, err
	}
	return out, probs, nil
}

// Forward is fc2(drop(gelu(fc1(x)))) followed by dropout.
func (f *STTMLP) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	h, err := sc.t(sttLinear(f.FC1, x))
	if err != nil {
		return nil, fmt.Errorf("mlp.fc1: %w", err)
	}
	if h, err = sc.t(h.Gelu("none", false)); err != nil {
		return nil, fmt.Errorf("mlp gelu: %w", err)
	}
	if h, err = sc.t(sttDropout(h, f.Dropout, train)); err != nil {
		return nil, err
	}
	if h, err = sc.t(sttLinear(f.FC2, h)); err != nil {
		return nil, fmt.Errorf("mlp.fc2: %w", err)
	}
	return sttDropout(h, f.Dropout, train)
}

// SetGradCAM turns Grad-CAM recording on or off. While on, every forward
// pass keeps the backbone's stage-3 maps, and after a backward pass
// GradCAMFeatures returns them with their gradients. The maps are routed
// through a zero tensor that requires grad (features + 0), so the forward
// values and the backbone's gradients are unchanged and the zero tensor's
// .grad is the gradient with respect to the maps (gotch has no
// retain_grad).
func (m *STT) SetGradCAM(on bool) {
	m.gradCAM = on
	if !on {
		m.dropGradCAM()
	}
}

func (m *STT) dropGradCAM() {
	if m.camFeats != nil {
		m.camFeats.Drop()
		m.camLeaf.Drop()
	}
	m.camFeats, m.camLeaf = nil, nil
}

// recordGradCAM keeps feats [B·T,C,g,g] (detached) and returns feats + leaf.
func (m *STT) recordGradCAM(feats *ts.Tensor, B, T int64) (*ts.Tensor, error) {
	m.dropGradCAM()
	leaf, err := feats.ZerosLike(false)
	if err == nil {
		leaf, err = leaf.SetRequiresGrad(true, true)
	}
	if err != nil {
		return nil, fmt.Errorf("stt: grad-cam leaf: %w", err)
	}
	kept, err := feats.Detach(false)
	if err != nil {
		leaf.Drop()
		return nil, fmt.Errorf("stt: grad-cam features: %w", err)
	}
	out, err := feats.Add(leaf, false)
	if err != nil {
		leaf.Drop()
		kept.Drop()
		return nil, fmt.Errorf("stt: grad-cam: %w", err)
	}
	shape, _ := feats.Size()
	m.camFeats, m.camLeaf = kept, leaf
	m.camFrames = []int64{B, T}
	m.camSize = shape[1:]
	return out, nil
}

// GradCAMFeatures returns the stage-3 feature maps of the last forward
// pass and the gradient of the back-propagated quantity with respect to
// them, both [B,T,C,h,w] and owned by the caller. It needs SetGradCAM(true)
// before the forward pass and a backward pass after it.
func (m *STT) GradCAMFeatures() (features, grads *ts.Tensor, err error) {
	if m.camFeats == nil {
		return nil, nil, fmt.Errorf("stt: no Grad-CAM features: call SetGradCAM(true) before the forward pass")
	}
	g, err := m.camLeaf.Grad(false)
	if err != nil {
		return nil, nil, fmt.Errorf("stt: grad-cam gradient: %w", err)
	}
	if ok, err := g.Defined(); err != nil || !ok {
		g.Drop()
		return nil, nil, fmt.Errorf("stt: no Grad-CAM gradient yet: call Backward on a class score of the last forward pass")
	}
	shape := append(append([]int64(nil), m.camFrames...), m.camSize...)
	features, err = m.camFeats.Reshape(shape, false)
	if err != nil {
		g.Drop()
		return nil, nil, fmt.Errorf("stt: grad-cam features: %w", err)
	}
	grads, err = g.Reshape(shape, true)
	if err != nil {
		features.Drop()
		return nil, nil, fmt.Errorf("stt: grad-cam gradient: %w", err)
	}
	return features, grads, nil
}

// GradCAM returns the Grad-CAM maps [B,T,h,w] of the last forward and
// backward pass: ReLU(Σ_c α_c·A_c) with α_c the spatial mean of the
// gradient of channel c (Selvaraju et al. 2017), per frame.
func (m *STT) GradCAM() (*ts.Tensor, error) {
	feats, grads, err := m.GradCAMFeatures()
	if err != nil {
		return nil, err
	}
	sc := &sttScope{}
	defer sc.free()
	sc.add(feats)
	sc.add(grads)
	alpha, err := sc.t(grads.MeanDim([]int64{3, 4}, true, gotch.Invalid, false))
	if err != nil {
		return nil, fmt.Errorf("stt: grad-cam weights: %w", err)
	}
	w, err := sc.t(feats.Mul(alpha, false))
	if err != nil {
		return nil, fmt.Errorf("stt: grad-cam: %w", err)
	}
	s, err := sc.t(w.SumDimIntlist([]int64{2}, false, gotch.Invalid, false))
	if err != nil {
		return nil, fmt.Errorf("stt: grad-cam: %w", err)
	}
	return s.Relu(false)
}

// sttScope frees the intermediate tensors of one function on every return
// path; the function's result is never added to it.
type sttScope struct{ tensors []*ts.Tensor }

func (s *sttScope) add(x *ts.Tensor) *ts.Tensor {
	s.tensors = append(s.tensors, x)
	return x
}

// t records x when err is nil, and passes both through.
func (s *sttScope) t(x *ts.Tensor, err error) (*ts.Tensor, error) {
	if err == nil && x != nil {
		s.tensors = append(s.tensors, x)
	}
	return x, err
}

func (s *sttScope) free() {
	for _, x := range s.tensors {
		x.Drop()
	}
	s.tensors = nil
}

// sttLinear is F.linear with an error result.
func sttLinear(l *Linear, x *ts.Tensor) (*ts.Tensor, error) {
	return ts.Linear(x, l.Weight, l.Bias)
}

// sttDropout is F.dropout; when it is a no-op it returns a new handle to
// x, so the caller owns the result either way.
func sttDropout(x *ts.Tensor, p float64, train bool) (*ts.Tensor, error) {
	if p == 0 || !train {
		return x.ShallowClone()
	}
	return ts.Dropout(x, p, train)
}

// sttResidual returns x + DropPath(branch): in training each sample keeps
// the branch with probability 1−p, scaled by 1/(1−p) (timm's DropPath).
func sttResidual(x, branch *ts.Tensor, p float64, train bool) (*ts.Tensor, error) {
	if p == 0 || !train {
		return x.Add(branch, false)
	}
	shape, err := branch.Size()
	if err != nil {
		return nil, err
	}
	maskShape := make([]int64, len(shape))
	for i := range maskShape {
		maskShape[i] = 1
	}
	maskShape[0] = shape[0]
	sc := &sttScope{}
	defer sc.free()
	dev, err := branch.Device()
	if err != nil {
		return nil, err
	}
	u, err := sc.t(ts.Rand(maskShape, branch.DType(), dev))
	if err != nil {
		return nil, fmt.Errorf("drop path: %w", err)
	}
	keep, err := sc.t(u.Lt(ts.FloatScalar(1-p), false))
	if err != nil {
		return nil, fmt.Errorf("drop path: %w", err)
	}
	mask, err := sc.t(keep.Totype(branch.DType(), false))
	if err != nil {
		return nil, fmt.Errorf("drop path: %w", err)
	}
	if mask, err = sc.t(mask.DivScalar(ts.FloatScalar(1-p), false)); err != nil {
		return nil, fmt.Errorf("drop path: %w", err)
	}
	kept, err := sc.t(branch.Mul(mask, false))
	if err != nil {
		return nil, fmt.Errorf("drop path: %w", err)
	}
	return x.Add(kept, false)
}
