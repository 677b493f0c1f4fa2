package models

import (
	"fmt"
	"log"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// QCS: "Feature Refining from Quadruplet Cross Similarity for Facial
// Expression Recognition", Wang, Chen, Wang, Li & Lv, AAAI 2025
// (arXiv 2411.01988), and its two-branch variant DCS. Built from the public
// code (github.com/birdwcp/QCS, HEAD 293f28f): models/QCS_*.py, DCS_*.py,
// vit_model_{7,8}cls.py, ir50.py and utils.py. Where SPEC.md §2 and the code
// differ, this follows the code and says so at the line. Parameter names
// are the code's state_dict keys (the newer embed_1/2/3 spelling; see
// qcsweights.go for the older embed_q/k/v and the modules the public
// classes build but never use).
//
// Base path — the only one at inference (model(x, None, None, None)), run
// once per image of the group:
//
//	image [B,3,224,224]
//	→ "ir_back": IR-50 stages 1–3 after a nearest resize to 112 (ir50.go)
//	                         → body1 [B,64,56,56], body2 [B,128,28,28], body3 [B,256,14,14]
//	→ "conv1"/"conv2"/"conv3": one 3×3 stride-2 conv per stage
//	                         → [B,64,28,28], [B,128,14,14], [B,256,7,7]
//	→ token embeddings, 49 tokens of width D = 768 per scale:
//	  "embed_1": two 3×3 stride-2 convs 64→768→768, "embed_2": one 3×3
//	  stride-2 conv 128→768, "embed_3.proj": a 1×1 conv 256→768
//	→ concatenate                → x_o [B,147,768] (stage-1 tokens, stage-2, stage-3)
//	→ "VIT_base": CLS + learned position embedding, 2 pre-norm blocks
//	  (8 heads, MLP 3072), final LayerNorm (eps 1e-6)
//	                         → CLS [B,768] and x_0 [B,147,768]
//	→ "VIT_base.se_block" on the CLS token → "VIT_base.head.linear" → logits
//
// Training path (QCS: anchor a and positive p of class y, negatives n and
// n2 of class y' ≠ y; DCS: a and p only): the base path runs for each image
// (one after the other, so BatchNorm sees each group alone, as in the
// code); each image's x_0 is split into its three 49-token scales, and per
// scale a CrossAttention ("cross_attention_1/2/3", shared by the images)
// reweights every token by the cross-similarity attention (CSA):
//
//	QK, V = proj(LN1(x))                     one [B,49,768] pair per image
//	w     = CSA(QK_a, QK_p, QK_n, QK_n2)     one softmax weight per token, [B,49]
//	x     = LN1(x) + w·V;  x = LN2(x);  x = x + MLP(x)
//
// CSA (utils.py Attn_QCS_SD) compares token sets by Euclidean distance
// (torch.cdist): same-class pairs (a–p, n–n2) as similarities, cross-class
// pairs (a–n, p–n2) as distances, each matrix shifted by its minimum over
// the whole batch tensor; for each image it L2-normalises the rows that
// belong to its tokens, sums over the other image's tokens and takes
// softmax(S + (tanh θ + 1)·D) over its 49 tokens. So CSA is a per-token
// gate, not an N×N mixing of tokens. The three scales are concatenated
// back, added to x_0 (residual), and a second, separate ViT "VIT_cross"
// (depth 1, own CLS, position embedding, SE block and head) gives the cross
// logits. The loss is the mean of the 8 cross-entropies (qcsreg.go).

// QCS variants (QCSConfig.Variant).
const (
	QCSVariant = "qcs" // four branches: anchor, positive, negative, negative2
	DCSVariant = "dcs" // two branches: anchor, positive
)

// Cross-similarity attention variants (QCSConfig.CSA), utils.py's
// functions.
const (
	CSASimDist = "SD" // Attn_QCS_SD: softmax(S + (tanh θ + 1)·D), the paper's QCS
	CSASim     = "S"  // Attn_QCS_S: softmax(S), similarity only (θ unused)
	CSADist    = "D"  // Attn_QCS_D: softmax(D), distance only (θ unused)
)

// Fusion head options (QCSConfig.Fusion).
const (
	// FusionNone builds no fusion module (QCS_*.py, DCS_7cls_*.py,
	// DCS_8cls_ferplus.py).
	FusionNone = ""
	// FusionUnused is DCS_8cls_affectnet.py: the class builds
	// self.fusion = Fusion(num_classes) but its forward keeps the call
	// commented out. Its initial weights are drawn (same seed, same
	// weights as the code) but not kept; a checkpoint's fusion.* keys are
	// ignored and reported.
	FusionUnused = "unused"
	// FusionHead takes the cross logits from the bilinear-pooling Fusion
	// head instead of VIT_cross — the line the code keeps commented out
	// (out_a, ... = self.fusion(x_a_0, ..., attn_a_o, ...)).
	FusionHead = "head"
)

// QCSConfig configures QCS or DCS. Start from QCSPreset (or
// DefaultQCSConfig); zero structural fields take those defaults.
type QCSConfig struct {
	// Variant is "qcs" (default) or "dcs".
	Variant string
	// NumClasses is the head size: 7 (RAF-DB, AffectNet-7) or 8 (FERPlus,
	// AffectNet-8). The public classes take it from the imported ViT
	// module's default (vit_model_7cls / vit_model_8cls): their
	// num_classes argument never reaches VisionTransformer.
	NumClasses int
	// CSA is QCS's cross-similarity attention: "SD" (default), "S" or
	// "D". DCS always uses Attn_DCS_S.
	CSA string
	// Dim is the token width D (768 in the code, where it is also written
	// as a literal in the embedding convs; a different Dim is for tests).
	Dim int
	// Heads is the number of attention heads (8, hard-coded in the code's
	// Attention.__init__ whatever num_heads says).
	Heads int
	// BaseDepth and CrossDepth are the blocks of VIT_base (2) and
	// VIT_cross (1).
	BaseDepth, CrossDepth int
	// MLPRatio is the ViT MLP width over Dim (4); the CrossAttention MLP
	// is always 4·Dim, as in the code.
	MLPRatio float64
	// BaseDrop and CrossDrop are VisionTransformer's drop_ratio for
	// VIT_base and VIT_cross: dropout after the position embedding and
	// inside the MLPs (QCSPreset has the per-dataset values).
	BaseDrop, CrossDrop float64
	// AttnProjDrop applies drop_ratio after the attention projection too:
	// vit_model_8cls.py passes proj_drop_ratio=drop_ratio, while
	// vit_model_7cls.py passes attn_drop_ratio (0).
	AttnProjDrop bool
	// CrossPreNorm is DCS_8cls_affectnet.py's / DCS_8cls_ferplus.py's
	// CrossAttention: residuals onto the un-normalised tokens
	// (x + w·V, then x + MLP(LN2(x))). QCS and DCS_7cls_*.py add onto the
	// normalised tokens (LN1(x) + w·V, then LN2 and x + MLP(x)).
	CrossPreNorm bool
	// Fusion is FusionNone (default), FusionUnused or FusionHead.
	Fusion string
	// ResizeTo is the side the backbone resizes its input to (112, with
	// nearest interpolation); it sets the token grid: 7×7 per scale at
	// 97..112.
	ResizeTo int
	// BackboneUnits are IR-50's units per stage, nil = {3, 4, 14}; fewer
	// only to make tests fast.
	BackboneUnits []int
}

// DefaultQCSConfig is QCS as QCS_7cls_raf_db.py builds it.
func DefaultQCSConfig() QCSConfig {
	return QCSConfig{
		Variant: QCSVariant, NumClasses: 7, CSA: CSASimDist, Dim: 768, Heads: 8,
		BaseDepth: 2, CrossDepth: 1, MLPRatio: 4, ResizeTo: 112,
	}
}

// QCSDatasets are the data sets the public code has a model file for.
var QCSDatasets = []string{"rafdb", "ferplus", "affectnet7", "affectnet8"}

// QCSPreset is the configuration of the public model file for variant
// ("qcs" or "dcs") on dataset ("rafdb", "ferplus", "affectnet7",
// "affectnet8"):
//
//	file                    classes  base  cross  proj drop  cross norm  fusion
//	QCS_7cls_raf_db.py        7      0     0      no         post        –
//	QCS_8cls_ferplus.py       8      0     0.2    yes        post        –
//	QCS_7cls_affectnet.py     7      0     0.4    no         post        –
//	QCS_8cls_affectnet.py     8      0     0      yes        post        –
//	DCS_7cls_raf_db.py        7      0     0.2    no         post        –
//	DCS_8cls_ferplus.py       8      0     0.2    yes        pre         –
//	DCS_7cls_affectnet.py     7      0     0.4    no         post        –
//	DCS_8cls_affectnet.py     8      0.2   0.5    yes        pre         built, unused
//
// ("proj drop": the 8-class files import vit_model_8cls.py; "cross norm":
// see CrossPreNorm.) SPEC.md §2.1 says DCS_8cls_affectnet.py "uses" the
// bilinear Fusion head and lists only VIT_cross's dropout; the code builds
// Fusion but keeps its call commented out, and also sets VIT_base's
// dropout and the 8-class attention dropout — the table follows the code.
func QCSPreset(variant, dataset string) (QCSConfig, error) {
	c := DefaultQCSConfig()
	variant = strings.ToLower(variant)
	if variant == "" {
		variant = QCSVariant
	}
	c.Variant = variant
	switch variant {
	case QCSVariant, DCSVariant:
	default:
		return QCSConfig{}, fmt.Errorf("qcs: variant %q, want %q or %q", variant, QCSVariant, DCSVariant)
	}
	dcs := variant == DCSVariant
	switch strings.ToLower(dataset) {
	case "rafdb":
		c.NumClasses = 7
		if dcs {
			c.CrossDrop = 0.2
		}
	case "ferplus":
		c.NumClasses, c.CrossDrop, c.AttnProjDrop = 8, 0.2, true
		c.CrossPreNorm = dcs
	case "affectnet7":
		c.NumClasses, c.CrossDrop = 7, 0.4
	case "affectnet8":
		c.NumClasses, c.AttnProjDrop = 8, true
		if dcs {
			c.BaseDrop, c.CrossDrop, c.CrossPreNorm, c.Fusion = 0.2, 0.5, true, FusionUnused
		}
	default:
		return QCSConfig{}, fmt.Errorf("qcs: no preset for data set %q (known: %s)", dataset, strings.Join(QCSDatasets, ", "))
	}
	return c, nil
}

// normalized fills zero structural fields with the defaults and checks
// the rest.
func (c QCSConfig) normalized() (QCSConfig, error) {
	d := DefaultQCSConfig()
	if c.Variant == "" {
		c.Variant = d.Variant
	}
	c.Variant = strings.ToLower(c.Variant)
	if c.CSA == "" {
		c.CSA = d.CSA
	}
	c.CSA = strings.ToUpper(c.CSA)
	for _, f := range []struct {
		v   *int
		def int
	}{{&c.NumClasses, d.NumClasses}, {&c.Dim, d.Dim}, {&c.Heads, d.Heads}, {&c.BaseDepth, d.BaseDepth},
		{&c.CrossDepth, d.CrossDepth}, {&c.ResizeTo, d.ResizeTo}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.MLPRatio == 0 {
		c.MLPRatio = d.MLPRatio
	}
	switch {
	case c.Variant != QCSVariant && c.Variant != DCSVariant:
		return c, fmt.Errorf("qcs: variant %q, want %q or %q", c.Variant, QCSVariant, DCSVariant)
	case c.CSA != CSASimDist && c.CSA != CSASim && c.CSA != CSADist:
		return c, fmt.Errorf("qcs: csa %q, want SD, S or D", c.CSA)
	case c.Variant == DCSVariant && c.CSA != CSASimDist:
		return c, fmt.Errorf("qcs: csa %q is for QCS; DCS always uses Attn_DCS_S (similarity only)", c.CSA)
	case c.Fusion != FusionNone && c.Fusion != FusionUnused && c.Fusion != FusionHead:
		return c, fmt.Errorf("qcs: fusion %q, want %q (none), %q or %q", c.Fusion, FusionNone, FusionUnused, FusionHead)
	case c.NumClasses < 1 || c.Dim < 1 || c.Heads < 1 || c.BaseDepth < 1 || c.CrossDepth < 1 || c.MLPRatio <= 0:
		return c, fmt.Errorf("qcs: num classes %d, dim %d, heads %d, depths %d/%d, mlp ratio %g must be positive",
			c.NumClasses, c.Dim, c.Heads, c.BaseDepth, c.CrossDepth, c.MLPRatio)
	case c.Dim%c.Heads != 0:
		return c, fmt.Errorf("qcs: %d heads do not divide dim %d", c.Heads, c.Dim)
	case c.BaseDrop < 0 || c.BaseDrop >= 1 || c.CrossDrop < 0 || c.CrossDrop >= 1:
		return c, fmt.Errorf("qcs: drop ratios %g/%g not in [0,1)", c.BaseDrop, c.CrossDrop)
	case c.ResizeTo < 16:
		return c, fmt.Errorf("qcs: resize %d gives no token grid (QCS resizes to 112)", c.ResizeTo)
	}
	return c, nil
}

// backboneConfig is the configuration of the model's IR-50, "ir_back".
func (c QCSConfig) backboneConfig() IR50Config {
	bcfg := IR50QCSConfig()
	bcfg.ResizeTo, bcfg.Units = int64(c.ResizeTo), c.BackboneUnits
	return bcfg
}

// TokenGrid is the side g of each scale's token grid (7 at 112): four
// stride-2 3×3 convolutions (padding 1) after the resize.
func (c QCSConfig) TokenGrid() int {
	g := c.ResizeTo
	for i := 0; i < 4; i++ {
		g = (g-1)/2 + 1
	}
	return g
}

// Branches is the number of images per training sample: 4 (QCS) or 2
// (DCS).
func (c QCSConfig) Branches() int {
	if strings.EqualFold(c.Variant, DCSVariant) {
		return 2
	}
	return 4
}

// QCS is the network (QCS or DCS). Build it with NewQCS.
type QCS struct {
	Backbone *IR50      // "ir_back"
	Conv     [3]*Conv2d // "conv1".."conv3": 3×3 stride 2, on body1..body3
	Embed1   [2]*Conv2d // "embed_1.0", "embed_1.1": 3×3 stride 2, 64→D→D
	Embed2   *Conv2d    // "embed_2.0": 3×3 stride 2, 128→D
	Embed3   *Conv2d    // "embed_3.proj": 1×1, 256→D (PatchEmbed)
	Base     *QCSViT    // "VIT_base"
	Cross    *QCSViT    // "VIT_cross"
	CrossAtt [3]*QCSCrossAttention
	Fusion   *Linear // "fusion.classifier": D²→classes; nil unless Fusion == "head"

	cfg    QCSConfig
	grid   int64
	params int64
}

// QCSViT is vit_model_{7,8}cls.py's VisionTransformer as QCS uses it:
// tokens in, CLS + position embedding, pre-norm blocks, final norm, SE
// block and linear head on the CLS token.
type QCSViT struct {
	ClsToken *ts.Tensor // "cls_token" [1,1,D]
	PosEmbed *ts.Tensor // "pos_embed" [1,1+3N,D]
	Blocks   []*QCSBlock
	Norm     *LayerNorm // "norm" (eps 1e-6)
	SE1, SE2 *Linear    // "se_block.linear1", "se_block.linear2"
	Head     *Linear    // "head.linear"
	// Drop is drop_ratio: dropout after the position embedding (pos_drop)
	// and in every MLP.
	Drop float64
}

// QCSBlock is vit_model's Block: x + Attn(LN1(x)), then + MLP(LN2(·)).
type QCSBlock struct {
	Norm1    *LayerNorm // "norm1"
	QKV      *Linear    // "attn.qkv" D→3D (bias)
	Proj     *Linear    // "attn.proj"
	Norm2    *LayerNorm // "norm2"
	FC1, FC2 *Linear    // "mlp.fc1", "mlp.fc2"
	Heads    int64
	Drop     float64 // MLP dropout (drop_ratio)
	ProjDrop float64 // after attn.proj: drop_ratio (8-class files) or 0
}

// QCSCrossAttention is the code's CrossAttention module for one scale:
// "norm1", "norm2" (LayerNorm, eps 1e-5), "proj" D→2D (the QK and V
// halves), "mlp.fc1"/"mlp.fc2" (4·D, GELU) and, for QCS, the scalar
// "theta" (initialised to 0) that weighs distances against similarities.
type QCSCrossAttention struct {
	Norm1, Norm2 *LayerNorm
	Proj         *Linear
	FC1, FC2     *Linear
	Theta        *ts.Tensor // nil for DCS
	CSA          string     // QCS: SD, S or D; DCS: "" (Attn_DCS_S)
	PreNorm      bool
}

// NewQCS builds QCS (or DCS) under p with the public code's
// initialisation, drawing the same random numbers in the same order as its
// pyramid_trans_expr constructor — including the modules it builds but
// never uses — so the same seed gives the same weights (before the code
// loads ir50.pth into ir_back): VIT_base, VIT_cross, ir_back, conv1-3,
// embed_1-3, cross_attention_1-3, fusion.
func NewQCS(p *nn.Path, cfg QCSConfig) (*QCS, error) {
	if p == nil {
		return nil, fmt.Errorf("qcs: nil path")
	}
	return newQCS(newBuilder(p), cfg)
}

// QCSParamCount is the number of trainable parameters NewQCS(cfg) builds
// (the unused modules of the public classes are not built), computed
// without allocating them.
func QCSParamCount(cfg QCSConfig) (int64, error) {
	m, err := newQCS(newBuilder(nil), cfg)
	if err != nil {
		return 0, err
	}
	return m.params, nil
}

func newQCS(b *builder, cfg QCSConfig) (*QCS, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	D, C := int64(cfg.Dim), int64(cfg.NumClasses)
	g := int64(cfg.TokenGrid())
	m := &QCS{cfg: cfg, grid: g}
	tokens := 3 * g * g
	m.Base = newQCSViT(b.sub("VIT_base"), cfg, cfg.BaseDepth, cfg.BaseDrop, tokens)
	m.Cross = newQCSViT(b.sub("VIT_cross"), cfg, cfg.CrossDepth, cfg.CrossDrop, tokens)
	if m.Backbone, err = newIR50(b.sub("ir_back"), cfg.backboneConfig()); err != nil {
		return nil, fmt.Errorf("qcs: %w", err)
	}
	// the code writes 768 for the embedding width; Dim (768) here
	conv := func(name string, in, out, k, stride, pad int64) *Conv2d {
		return newConv2d(b.sub(name), in, out, k, convOpts{stride: stride, padding: pad, bias: true})
	}
	for i, c := range []int64{64, 128, 256} {
		m.Conv[i] = conv(fmt.Sprintf("conv%d", i+1), c, c, 3, 2, 1)
	}
	m.Embed1[0] = conv("embed_1.0", 64, D, 3, 2, 1)
	m.Embed1[1] = conv("embed_1.1", D, D, 3, 2, 1)
	m.Embed2 = conv("embed_2.0", 128, D, 3, 2, 1)
	m.Embed3 = conv("embed_3.proj", 256, D, 1, 1, 0)
	for i := range m.CrossAtt {
		cb := b.sub(fmt.Sprintf("cross_attention_%d", i+1))
		ca := &QCSCrossAttention{
			Norm1:   newLayerNorm(cb.sub("norm1"), D, 0),
			Norm2:   newLayerNorm(cb.sub("norm2"), D, 0),
			Proj:    newLinear(cb.sub("proj"), D, 2*D),
			FC1:     newLinear(cb.sub("mlp.fc1"), D, 4*D),
			FC2:     newLinear(cb.sub("mlp.fc2"), 4*D, D),
			PreNorm: cfg.CrossPreNorm,
		}
		if cfg.Variant == QCSVariant {
			ca.Theta = cb.param("theta", []int64{}, initConst(0))
			ca.CSA = cfg.CSA
		}
		m.CrossAtt[i] = ca
	}
	// Fusion(num_classes): Bilinear_Pooling (no parameters) and
	// nn.Linear(768*768, num_classes)
	switch cfg.Fusion {
	case FusionHead:
		m.Fusion = newLinear(b.sub("fusion.classifier"), D*D, C)
	case FusionUnused:
		b.sub("fusion.classifier").discard([]int64{C, D * D}, initUniform(kaimingUniformA5Bound(D*D)))
		b.sub("fusion.classifier").discard([]int64{C}, initUniform(1/math.Sqrt(float64(D*D))))
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("qcs: %w", err)
	}
	m.params = b.state.params
	return m, nil
}

// newQCSViT builds VisionTransformer(depth, drop_ratio) in the order of its
// __init__, drawing (and discarding) the initial weights of the modules it
// builds but never calls — patch_embed, two eca_blocks, CON1, IRLinear1/2
// and each block's 1×1 Conv1d — and then re-initialising as its
// self.apply(_init_vit_weights) does: trunc_normal(0.01) Linear weights,
// zero biases, kaiming_normal(fan_out) Conv2d weights, LayerNorms 1/0;
// cls_token and pos_embed trunc_normal(0.02).
func newQCSViT(b *builder, cfg QCSConfig, depth int, drop float64, tokens int64) *QCSViT {
	D, C := int64(cfg.Dim), int64(cfg.NumClasses)
	hidden := int64(float64(D) * cfg.MLPRatio)
	projDrop := 0.0
	if cfg.AttnProjDrop {
		projDrop = drop
	}
	v := &QCSViT{Drop: drop}
	v.ClsToken = b.param("cls_token", []int64{1, 1, D}, initConst(0))
	v.PosEmbed = b.param("pos_embed", []int64{1, tokens + 1, D}, initConst(0)) // in_c + 1 = 148
	v.SE1 = newLinear(b.sub("se_block.linear1"), D, D)
	v.SE2 = newLinear(b.sub("se_block.linear2"), D, D)
	// patch_embed = PatchEmbed(...): proj = nn.Conv2d(256, 768, 1), never called
	unusedConv(b.sub("patch_embed.proj"), []int64{768, 256, 1, 1}, true)
	v.Head = newLinear(b.sub("head.linear"), D, C)
	unusedConv(b.sub("eca_block.conv"), []int64{1, 1, 5}, false) // eca_block(channel=196): Conv1d(1, 1, 5, bias=False)
	unusedConv(b.sub("CON1"), []int64{768, 256, 1, 1}, false)
	unusedLinear(b.sub("IRLinear1"), 1024, 768)
	unusedLinear(b.sub("IRLinear2"), 768, 512)
	unusedConv(b.sub("eca_block.conv"), []int64{1, 1, 5}, false) // self.eca_block = eca_block() again
	for i := 0; i < depth; i++ {
		bb := b.sub(fmt.Sprintf("blocks.%d", i))
		blk := &QCSBlock{Heads: int64(cfg.Heads), Drop: drop, ProjDrop: projDrop}
		blk.Norm1 = newLayerNorm(bb.sub("norm1"), D, 1e-6)
		// self.conv = nn.Conv1d(in_c + 1, in_c + 1, 1), never called
		unusedConv(bb.sub("conv"), []int64{tokens + 1, tokens + 1, 1}, true)
		blk.QKV = newLinear(bb.sub("attn.qkv"), D, 3*D)
		blk.Proj = newLinear(bb.sub("attn.proj"), D, D)
		blk.Norm2 = newLayerNorm(bb.sub("norm2"), D, 1e-6)
		blk.FC1 = newLinear(bb.sub("mlp.fc1"), D, hidden)
		blk.FC2 = newLinear(bb.sub("mlp.fc2"), hidden, D)
		v.Blocks = append(v.Blocks, blk)
	}
	v.Norm = newLayerNorm(b.sub("norm"), D, 1e-6)

	// nn.init.trunc_normal_(pos_embed, std=.02), then cls_token
	b.reinit(v.PosEmbed, initTruncNormal(0.02))
	b.reinit(v.ClsToken, initTruncNormal(0.02))
	// self.apply(_init_vit_weights): children before parents, in
	// registration order (pos_drop, se_block, patch_embed, head, eca_block,
	// CON1, IRLinear1, IRLinear2, blocks, norm)
	vitLinear := func(l *Linear) {
		b.reinit(l.Weight, initTruncNormal(0.01))
		b.reinit(l.Bias, initConst(0))
	}
	vitLinear(v.SE1)
	vitLinear(v.SE2)
	b.discard([]int64{768, 256, 1, 1}, initNormal(kaimingNormalReLUStd(768))) // patch_embed.proj
	vitLinear(v.Head)
	b.discard([]int64{768, 256, 1, 1}, initNormal(kaimingNormalReLUStd(768))) // CON1
	b.discard([]int64{768, 1024}, initTruncNormal(0.01))                      // IRLinear1
	b.discard([]int64{512, 768}, initTruncNormal(0.01))                       // IRLinear2
	for _, blk := range v.Blocks {
		vitLinear(blk.QKV)
		vitLinear(blk.Proj)
		vitLinear(blk.FC1)
		vitLinear(blk.FC2)
	}
	return v
}

// unusedConv draws the default initialisation of a convolution the code
// builds but never calls (kaiming_uniform(a=√5) weight, U(±1/√fan_in)
// bias) without building it; shape is the weight's, [out, in, k(, k)].
func unusedConv(b *builder, shape []int64, bias bool) {
	fanIn := numel(shape[1:])
	b.discard(shape, initUniform(kaimingUniformA5Bound(fanIn)))
	if bias {
		b.discard(shape[:1], initUniform(1/math.Sqrt(float64(fanIn))))
	}
}

// unusedLinear draws nn.Linear(in, out)'s default initialisation without
// building it.
func unusedLinear(b *builder, in, out int64) {
	b.discard([]int64{out, in}, initUniform(kaimingUniformA5Bound(in)))
	b.discard([]int64{out}, initUniform(1/math.Sqrt(float64(in))))
}

// Config returns the configuration the model was built with (defaults
// filled in).
func (m *QCS) Config() QCSConfig { return m.cfg }

// NumParameters is the number of trainable parameter elements.
func (m *QCS) NumParameters() int64 { return m.params }

// ---------------------------------------------------------------------
// Forward passes

// QCSBranch holds the base-path tensors of one image group (the anchors,
// or the positives, ...), for Grad-CAM and plots. The caller owns them.
type QCSBranch struct {
	// Stages are IR-50's body1..body3 outputs ([B,64,56,56],
	// [B,128,28,28], [B,256,14,14] at 112).
	Stages [3]*ts.Tensor
	// Embeds are the token embeddings before flattening, [B,D,g,g] per
	// scale (embed_1, embed_2, embed_3).
	Embeds [3]*ts.Tensor
	// Tokens is x_o, the 3·g² embedded tokens [B,147,D] VIT_base reads.
	Tokens *ts.Tensor
	// CLS is VIT_base's normalised CLS token [B,D] (before the SE block).
	CLS *ts.Tensor
	// Out is x_0, VIT_base's normalised output tokens [B,147,D].
	Out *ts.Tensor
	// Logits are VIT_base's class scores [B,C] (the inference output).
	Logits *ts.Tensor
}

// Drop frees the tensors.
func (br *QCSBranch) Drop() {
	if br == nil {
		return
	}
	for _, t := range append(append(br.Stages[:], br.Embeds[:]...), br.Tokens, br.CLS, br.Out, br.Logits) {
		if t != nil {
			t.Drop()
		}
	}
	*br = QCSBranch{}
}

// QCSOutput is the training path's result for a group of 4 (QCS) or 2
// (DCS) image batches.
type QCSOutput struct {
	// Branches are the base paths of anchor, positive[, negative,
	// negative2].
	Branches []*QCSBranch
	// CrossMaps[s][i] is the CSA weight of every token of scale s for
	// branch i, [B,g²] (each row sums to 1).
	CrossMaps [3][]*ts.Tensor
	// K[s] is tanh(θ) of scale s (QCS; nil for DCS), the code's k1..k3.
	K [3]*ts.Tensor
	// CrossTokens[i] is x_0 + the cross-attention output, VIT_cross's
	// input [B,147,D].
	CrossTokens []*ts.Tensor
	// CrossLogits[i] are VIT_cross's (or the fusion head's) class scores.
	CrossLogits []*ts.Tensor
}

// Drop frees every tensor.
func (o *QCSOutput) Drop() {
	if o == nil {
		return
	}
	for _, br := range o.Branches {
		br.Drop()
	}
	var all []*ts.Tensor
	for _, maps := range o.CrossMaps {
		all = append(all, maps...)
	}
	all = append(append(append(all, o.K[:]...), o.CrossTokens...), o.CrossLogits...)
	for _, t := range all {
		if t != nil {
			t.Drop()
		}
	}
	*o = QCSOutput{}
}

// ForwardT maps images [B,3,H,W] to the base path's logits [B,C] (the
// inference path). Like gotch's nn.ModuleT it has no error result and
// ends the process on an error; use Forward to get the error.
func (m *QCS) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	y, err := m.Forward(x, train)
	if err != nil {
		log.Fatal(err)
	}
	return y
}

// Forward maps images [B,3,H,W] to the base path's logits [B,C]: the
// inference path (model(x, None, None, None) in the code).
func (m *QCS) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	br, err := m.ForwardBase(x, train)
	if err != nil {
		return nil, err
	}
	logits := br.Logits
	br.Logits = nil
	br.Drop()
	return logits, nil
}

// ForwardBase runs the base path on images [B,3,H,W] and returns its
// intermediate tensors.
func (m *QCS) ForwardBase(x *ts.Tensor, train bool) (*QCSBranch, error) {
	shape, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("qcs: input: %w", err)
	}
	if len(shape) != 4 || shape[0] < 1 || shape[1] != 3 || shape[2] < 1 || shape[3] < 1 {
		return nil, fmt.Errorf("qcs: input shape %v, want [B,3,H,W] (RGB images; QCS resizes them to %d inside)", shape, m.cfg.ResizeTo)
	}
	sc := &sttScope{}
	defer sc.free()
	br := &QCSBranch{}
	ok := false
	defer func() {
		if !ok {
			br.Drop()
		}
	}()
	// x_ir1, x_ir2, x_ir3 = self.ir_back(x)
	f := m.Backbone.ForwardFeatures(x, train)
	f.Pooled.Drop()
	copy(br.Stages[:], f.Stages)
	// self.conv1(x_ir1), self.conv2(x_ir2), self.conv3(x_ir3)
	var down [3]*ts.Tensor
	for i, c := range m.Conv {
		if down[i], err = sc.t(conv2d(c, br.Stages[i])); err != nil {
			return nil, fmt.Errorf("qcs: conv%d: %w", i+1, err)
		}
	}
	// embed_1 (two convs), embed_2, embed_3 (PatchEmbed's 1×1 proj)
	h, err := sc.t(conv2d(m.Embed1[0], down[0]))
	if err != nil {
		return nil, fmt.Errorf("qcs: embed_1.0: %w", err)
	}
	if br.Embeds[0], err = conv2d(m.Embed1[1], h); err != nil {
		return nil, fmt.Errorf("qcs: embed_1.1: %w", err)
	}
	if br.Embeds[1], err = conv2d(m.Embed2, down[1]); err != nil {
		return nil, fmt.Errorf("qcs: embed_2: %w", err)
	}
	if br.Embeds[2], err = conv2d(m.Embed3, down[2]); err != nil {
		return nil, fmt.Errorf("qcs: embed_3: %w", err)
	}
	// .flatten(2).transpose(1, 2) each, then torch.cat(dim=1)
	var toks [3]*ts.Tensor
	for i, e := range br.Embeds {
		es, err := e.Size()
		if err != nil {
			return nil, err
		}
		if es[2] != m.grid || es[3] != m.grid {
			return nil, fmt.Errorf("qcs: embed_%d gives a %d×%d token grid, want %d×%d", i+1, es[2], es[3], m.grid, m.grid)
		}
		t, err := sc.t(e.Flatten(2, -1, false))
		if err != nil {
			return nil, err
		}
		if toks[i], err = sc.t(t.Transpose(1, 2, false)); err != nil {
			return nil, err
		}
	}
	if br.Tokens, err = ts.Cat(toks[:], 1); err != nil {
		return nil, fmt.Errorf("qcs: tokens: %w", err)
	}
	// x, x_0 = self.VIT_base(x_o)
	vo, err := m.Base.Forward(br.Tokens, train)
	if err != nil {
		return nil, fmt.Errorf("qcs: VIT_base: %w", err)
	}
	br.Logits, br.CLS, br.Out = vo.Logits, vo.CLS, vo.Tokens
	ok = true
	return br, nil
}

// ForwardTrain runs the training path on the image batches of one group:
// anchor, positive, negative, negative2 for QCS (extra inputs are an
// error), anchor and positive for DCS (the first two of the inputs are
// used). train selects dropout and batch statistics; the code always runs
// this path in training mode.
func (m *QCS) ForwardTrain(xs []*ts.Tensor, train bool) (*QCSOutput, error) {
	nb := m.cfg.Branches()
	if len(xs) < nb || (nb == 4 && len(xs) > 4) {
		return nil, fmt.Errorf("qcs: %s training takes %d image batches (%s), got %d", m.cfg.Variant, nb, branchNames(nb), len(xs))
	}
	out := &QCSOutput{}
	ok := false
	defer func() {
		if !ok {
			out.Drop()
		}
	}()
	var B int64
	for i := 0; i < nb; i++ {
		br, err := m.ForwardBase(xs[i], train)
		if err != nil {
			return nil, fmt.Errorf("%s images: %w", strings.Split(branchNames(nb), ", ")[i], err)
		}
		out.Branches = append(out.Branches, br)
		s, _ := br.Logits.Size()
		if i == 0 {
			B = s[0]
		} else if s[0] != B {
			return nil, fmt.Errorf("qcs: the %s batch has %d images, the anchor batch %d", strings.Split(branchNames(nb), ", ")[i], s[0], B)
		}
	}
	sc := &sttScope{}
	defer sc.free()
	N := m.grid * m.grid
	// torch.split(x_0, [N, N, N], dim=1) per branch
	parts := make([][]*ts.Tensor, nb)
	for i, br := range out.Branches {
		ps, err := br.Out.SplitWithSizes([]int64{N, N, N}, 1)
		if err != nil {
			return nil, fmt.Errorf("qcs: split tokens: %w", err)
		}
		for _, p := range ps {
			sc.add(p)
		}
		parts[i] = ps
	}
	// attn_*s = self.cross_attention_s(x_a_0_s, x_p_0_s, ...)
	attn := make([][]*ts.Tensor, nb) // [branch][scale]
	for s, ca := range m.CrossAtt {
		in := make([]*ts.Tensor, nb)
		for i := range in {
			in[i] = parts[i][s]
		}
		r, err := ca.Forward(in, train)
		if err != nil {
			return nil, fmt.Errorf("qcs: cross_attention_%d: %w", s+1, err)
		}
		for i, y := range r.Out {
			attn[i] = append(attn[i], sc.add(y))
		}
		out.CrossMaps[s], out.K[s] = r.Maps, r.K
	}
	// attn_*_o = torch.cat([...], dim=1); x_*_0 = x_*_0 + attn_*_o. (With
	// DCS_8cls's pre-norm cross attention, whose output already carries
	// x_0, x_0 enters VIT_cross twice: 2·x_0 + w·V + MLP.)
	attnO := make([]*ts.Tensor, nb)
	for i := range attnO {
		a, err := sc.t(ts.Cat(attn[i], 1))
		if err != nil {
			return nil, fmt.Errorf("qcs: cat: %w", err)
		}
		attnO[i] = a
		z, err := out.Branches[i].Out.Add(a, false)
		if err != nil {
			return nil, fmt.Errorf("qcs: residual: %w", err)
		}
		out.CrossTokens = append(out.CrossTokens, z)
	}
	// out_* = self.VIT_cross(x_*_0), or the fusion head
	for i, z := range out.CrossTokens {
		var logits *ts.Tensor
		var err error
		if m.Fusion != nil {
			logits, err = m.fusionLogits(z, attnO[i])
		} else {
			var vo *QCSViTOutput
			if vo, err = m.Cross.Forward(z, train); err == nil {
				logits = vo.Logits
				vo.CLS.Drop()
				vo.Tokens.Drop()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("qcs: cross logits: %w", err)
		}
		out.CrossLogits = append(out.CrossLogits, logits)
	}
	ok = true
	return out, nil
}

func branchNames(n int) string {
	if n == 2 {
		return "anchor, positive"
	}
	return "anchor, positive, negative, negative2"
}

// conv2d applies a Conv2d with an error result.
func conv2d(c *Conv2d, x *ts.Tensor) (*ts.Tensor, error) {
	bias := c.Bias
	if bias == nil {
		bias = ts.NewTensor()
		defer bias.MustDrop()
	}
	return ts.Conv2d(x, c.Weight, bias, []int64{c.Stride, c.Stride}, []int64{c.Padding, c.Padding}, []int64{1, 1}, c.Groups)
}

// fusionLogits is Fusion.forward for one image: bilinear pooling of the
// cross tokens with the cross-attention output (utils.py Bilinear_Pooling:
// X = F1ᵀ·F2 / N, signed square root, 100·L2-normalised) → classifier.
func (m *QCS) fusionLogits(x, attn *ts.Tensor) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := x.Size()
	if err != nil {
		return nil, err
	}
	B, N, D := shape[0], shape[1], shape[2]
	f1, err := sc.t(x.Permute([]int64{0, 2, 1}, false)) // [B,D,N]
	if err != nil {
		return nil, err
	}
	f2, err := sc.t(attn.Permute([]int64{0, 2, 1}, false))
	if err != nil {
		return nil, err
	}
	f2t, err := sc.t(f2.Transpose(1, 2, false))
	if err != nil {
		return nil, err
	}
	X, err := sc.t(f1.Bmm(f2t, false))
	if err != nil {
		return nil, fmt.Errorf("fusion bmm: %w", err)
	}
	if X, err = sc.t(X.DivScalar(ts.FloatScalar(float64(N)), false)); err != nil {
		return nil, err
	}
	if X, err = sc.t(X.Reshape([]int64{B, D * D}, false)); err != nil {
		return nil, err
	}
	sign, err := sc.t(X.Sign(false))
	if err != nil {
		return nil, err
	}
	a, err := sc.t(X.Abs(false))
	if err != nil {
		return nil, err
	}
	if a, err = sc.t(a.AddScalar(ts.FloatScalar(1e-5), false)); err != nil {
		return nil, err
	}
	if a, err = sc.t(a.Sqrt(false)); err != nil {
		return nil, err
	}
	if X, err = sc.t(sign.Mul(a, false)); err != nil {
		return nil, err
	}
	if X, err = sc.t(l2Normalize(X, 1)); err != nil {
		return nil, err
	}
	if X, err = sc.t(X.MulScalar(ts.FloatScalar(100), false)); err != nil {
		return nil, err
	}
	return sttLinear(m.Fusion, X)
}

// QCSViTOutput is what VisionTransformer.forward returns (plus the CLS
// token): logits, the normalised CLS token and the normalised tokens.
type QCSViTOutput struct {
	Logits *ts.Tensor // [B,C]
	CLS    *ts.Tensor // [B,D]
	Tokens *ts.Tensor // [B,T,D]
}

// Forward is VisionTransformer.forward on tokens [B,T,D].
func (v *QCSViT) Forward(x *ts.Tensor, train bool) (*QCSViTOutput, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := x.Size()
	if err != nil {
		return nil, err
	}
	ps, err := v.PosEmbed.Size()
	if err != nil {
		return nil, err
	}
	if len(shape) != 3 || shape[1]+1 != ps[1] || shape[2] != ps[2] {
		return nil, fmt.Errorf("tokens %v, want [B,%d,%d]", shape, ps[1]-1, ps[2])
	}
	B, T := shape[0], shape[1]
	// cls_token.expand(B, -1, -1); torch.cat((cls_token, x), dim=1)
	cls, err := sc.t(v.ClsToken.Expand([]int64{B, -1, -1}, false, false))
	if err != nil {
		return nil, err
	}
	h, err := sc.t(ts.Cat([]*ts.Tensor{cls, x}, 1))
	if err != nil {
		return nil, err
	}
	// self.pos_drop(x + self.pos_embed)
	if h, err = sc.t(h.Add(v.PosEmbed, false)); err != nil {
		return nil, err
	}
	if h, err = sc.t(sttDropout(h, v.Drop, train)); err != nil {
		return nil, err
	}
	for i, blk := range v.Blocks {
		if h, err = sc.t(blk.Forward(h, train)); err != nil {
			return nil, fmt.Errorf("blocks.%d: %w", i, err)
		}
	}
	if h, err = sc.t(v.Norm.Forward(h)); err != nil {
		return nil, err
	}
	out := &QCSViTOutput{}
	// x[:, 0] (pre_logits is Identity), x[:, 1:]
	if out.CLS, err = h.Select(1, 0, false); err != nil {
		return nil, err
	}
	if out.Tokens, err = h.Narrow(1, 1, T, false); err != nil {
		out.CLS.Drop()
		return nil, err
	}
	// se_block: x * sigmoid(linear2(relu(linear1(x)))), then head.linear
	s, err := sc.t(sttLinear(v.SE1, out.CLS))
	if err == nil {
		s, err = sc.t(s.Relu(false))
	}
	if err == nil {
		s, err = sc.t(sttLinear(v.SE2, s))
	}
	if err == nil {
		s, err = sc.t(s.Sigmoid(false))
	}
	if err == nil {
		s, err = sc.t(out.CLS.Mul(s, false))
	}
	if err == nil {
		out.Logits, err = sttLinear(v.Head, s)
	}
	if err != nil {
		out.CLS.Drop()
		out.Tokens.Drop()
		return nil, fmt.Errorf("se block / head: %w", err)
	}
	return out, nil
}

// Forward is Block.forward: x + attn(norm1(x)), then + mlp(norm2(·))
// (drop path is the identity: drop_path_ratio 0).
func (blk *QCSBlock) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	h, err := sc.t(blk.Norm1.Forward(x))
	if err != nil {
		return nil, err
	}
	a, err := sc.t(blk.attention(h, train))
	if err != nil {
		return nil, err
	}
	xi, err := sc.t(x.Add(a, false))
	if err != nil {
		return nil, err
	}
	h2, err := sc.t(blk.Norm2.Forward(xi))
	if err != nil {
		return nil, err
	}
	mo, err := sc.t(qcsMLP(blk.FC1, blk.FC2, h2, blk.Drop, train))
	if err != nil {
		return nil, err
	}
	return xi.Add(mo, false)
}

// attention is vit_model's Attention.forward: qkv → 8 heads →
// softmax(q·kᵀ·d^−½)·v → proj → proj_drop. (Its x[:, :in_c+1] slice
// keeps every token: the sequence is exactly in_c+1 long.)
func (blk *QCSBlock) attention(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := x.Size()
	if err != nil {
		return nil, err
	}
	B, N, C := shape[0], shape[1], shape[2]
	H := blk.Heads
	qkv, err := sc.t(sttLinear(blk.QKV, x))
	if err != nil {
		return nil, fmt.Errorf("attn.qkv: %w", err)
	}
	// reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
	if qkv, err = sc.t(qkv.Reshape([]int64{B, N, 3, H, C / H}, false)); err != nil {
		return nil, err
	}
	if qkv, err = sc.t(qkv.Permute([]int64{2, 0, 3, 1, 4}, false)); err != nil {
		return nil, err
	}
	var qkvs [3]*ts.Tensor
	for i := range qkvs {
		if qkvs[i], err = sc.t(qkv.Select(0, int64(i), false)); err != nil {
			return nil, err
		}
	}
	ctx, err := sc.t(ScaledDotProductAttentionScaled(qkvs[0], qkvs[1], qkvs[2], 0, train, ScaleScores)) // attn_drop_ratio 0; (q @ k.transpose(-2, -1)) * self.scale
	if err != nil {
		return nil, err
	}
	// (attn @ v).transpose(1, 2).reshape(B, N, C)
	if ctx, err = sc.t(ctx.Transpose(1, 2, false)); err != nil {
		return nil, err
	}
	if ctx, err = sc.t(ctx.Reshape([]int64{B, N, C}, false)); err != nil {
		return nil, err
	}
	o, err := sc.t(sttLinear(blk.Proj, ctx))
	if err != nil {
		return nil, fmt.Errorf("attn.proj: %w", err)
	}
	return sttDropout(o, blk.ProjDrop, train)
}

// qcsMLP is the code's Mlp: fc2(drop(gelu(fc1(x)))) then dropout.
func qcsMLP(fc1, fc2 *Linear, x *ts.Tensor, drop float64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	h, err := sc.t(sttLinear(fc1, x))
	if err != nil {
		return nil, fmt.Errorf("mlp.fc1: %w", err)
	}
	if h, err = sc.t(h.Gelu("none", false)); err != nil {
		return nil, err
	}
	if h, err = sc.t(sttDropout(h, drop, train)); err != nil {
		return nil, err
	}
	if h, err = sc.t(sttLinear(fc2, h)); err != nil {
		return nil, fmt.Errorf("mlp.fc2: %w", err)
	}
	return sttDropout(h, drop, train)
}

// QCSCrossResult is one CrossAttention call's result, per branch.
type QCSCrossResult struct {
	Out  []*ts.Tensor // the refined tokens [B,N,D]
	Maps []*ts.Tensor // CSA weights [B,N]
	K    *ts.Tensor   // tanh(θ) (QCS), nil for DCS
}

// Forward is CrossAttention.forward on one scale's tokens of each branch
// (QCS: a, p, n, n2; DCS: a, p), each [B,N,D].
func (ca *QCSCrossAttention) Forward(xs []*ts.Tensor, train bool) (*QCSCrossResult, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := xs[0].Size()
	if err != nil {
		return nil, err
	}
	B, N, C := shape[0], shape[1], shape[2]
	n := len(xs)
	if want := 2; ca.Theta != nil && n != 4 || ca.Theta == nil && n != want {
		if ca.Theta != nil {
			want = 4
		}
		return nil, fmt.Errorf("cross attention takes %d branches, got %d", want, n)
	}
	xn := make([]*ts.Tensor, n) // norm1(x)
	qk := make([]*ts.Tensor, n)
	v := make([]*ts.Tensor, n)
	for i, x := range xs {
		if xn[i], err = sc.t(ca.Norm1.Forward(x)); err != nil {
			return nil, err
		}
	}
	for i := range xs {
		// self.proj(x).reshape(B, N, 2, C).permute(2, 0, 1, 3); [0] QK, [1] V
		p, err := sc.t(sttLinear(ca.Proj, xn[i]))
		if err != nil {
			return nil, fmt.Errorf("proj: %w", err)
		}
		if p, err = sc.t(p.Reshape([]int64{B, N, 2, C}, false)); err != nil {
			return nil, err
		}
		if p, err = sc.t(p.Permute([]int64{2, 0, 1, 3}, false)); err != nil {
			return nil, err
		}
		if qk[i], err = sc.t(p.Select(0, 0, false)); err != nil {
			return nil, err
		}
		if v[i], err = sc.t(p.Select(0, 1, false)); err != nil {
			return nil, err
		}
	}
	res := &QCSCrossResult{}
	ok := false
	defer func() {
		if !ok {
			for _, t := range append(append([]*ts.Tensor{res.K}, res.Maps...), res.Out...) {
				if t != nil {
					t.Drop()
				}
			}
		}
	}()
	if ca.Theta != nil {
		// k = torch.tanh(self.theta); Attn_QCS_*(QK1, QK2, QK3, QK4, k)
		if res.K, err = ca.Theta.Tanh(false); err != nil {
			return nil, err
		}
		var maps [4]*ts.Tensor
		switch ca.CSA {
		case CSASim:
			maps, err = AttnQCSS([4]*ts.Tensor(qk))
		case CSADist:
			maps, err = AttnQCSD([4]*ts.Tensor(qk))
		default:
			maps, err = AttnQCSSD([4]*ts.Tensor(qk), res.K)
		}
		if err != nil {
			return nil, fmt.Errorf("CSA: %w", err)
		}
		res.Maps = maps[:]
	} else {
		// Attn_DCS_S(K1, Q2): K from the anchor, Q from the positive
		m1, m2, err := AttnDCSS(qk[0], qk[1])
		if err != nil {
			return nil, fmt.Errorf("CSA: %w", err)
		}
		res.Maps = []*ts.Tensor{m1, m2}
	}
	for i := range xs {
		// cross_map = reshape(B, N, 1); x = x + cross_map * V
		w, err := sc.t(res.Maps[i].Reshape([]int64{B, N, 1}, false))
		if err != nil {
			return nil, err
		}
		wv, err := sc.t(w.Mul(v[i], false))
		if err != nil {
			return nil, err
		}
		// QCS and DCS_7cls: x was overwritten by norm1(x), so the residual
		// lands on the normalised tokens (SPEC §2.1 item 7), and again
		// after norm2; DCS_8cls keeps x and normalises a copy (pre-norm).
		base := xn[i]
		if ca.PreNorm {
			base = xs[i]
		}
		y, err := sc.t(base.Add(wv, false))
		if err != nil {
			return nil, err
		}
		yn, err := sc.t(ca.Norm2.Forward(y))
		if err != nil {
			return nil, err
		}
		mo, err := sc.t(qcsMLP(ca.FC1, ca.FC2, yn, 0, train)) // Mlp(drop=0)
		if err != nil {
			return nil, err
		}
		resid := yn
		if ca.PreNorm {
			resid = y
		}
		o, err := resid.Add(mo, false)
		if err != nil {
			return nil, err
		}
		res.Out = append(res.Out, o)
	}
	ok = true
	return res, nil
}

// ---------------------------------------------------------------------
// Cross-similarity attention (utils.py), op for op. Inputs are the QK
// halves [B,N,C] of each branch: 1 anchor, 2 positive, 3 negative,
// 4 negative2. Outputs are per-token weights [B,N], softmax over N.
//
// Quirks kept from the code: every min and max is over the WHOLE batch
// tensor (torch.min(D) with no dim), so a sample's weights depend on the
// other samples in its batch; only the distances are shifted by the
// minimum, and same-class similarities are max − D of the shifted
// distances; F.normalize divides by max(‖·‖, 1e-12).

// AttnQCSSD is Attn_QCS_SD: per image, softmax(S + (k + 1)·D) with k =
// tanh(θ), S from its same-class partner, D from its cross-class partner.
func AttnQCSSD(qk [4]*ts.Tensor, k *ts.Tensor) ([4]*ts.Tensor, error) {
	return attnQCS(qk, k, true, true)
}

// AttnQCSS is Attn_QCS_S: per image, softmax(S) (similarity only).
func AttnQCSS(qk [4]*ts.Tensor) ([4]*ts.Tensor, error) { return attnQCS(qk, nil, true, false) }

// AttnQCSD is Attn_QCS_D: per image, softmax(D) (distance only).
func AttnQCSD(qk [4]*ts.Tensor) ([4]*ts.Tensor, error) { return attnQCS(qk, nil, false, true) }

func attnQCS(qk [4]*ts.Tensor, k *ts.Tensor, useS, useD bool) (maps [4]*ts.Tensor, err error) {
	sc := &sttScope{}
	defer sc.free()
	var S21, S43, D31, D42 *ts.Tensor
	if useS {
		// D_2x1 = cdist(QK2, QK1) - min; S_2x1 = max(D_2x1) - D_2x1 (same for 4x3)
		if S21, err = sc.t(cdistSimilarity(qk[1], qk[0])); err != nil {
			return maps, err
		}
		if S43, err = sc.t(cdistSimilarity(qk[3], qk[2])); err != nil {
			return maps, err
		}
	}
	if useD {
		// D_3x1 = cdist(QK3, QK1) - min; D_4x2 = cdist(QK4, QK2) - min
		if D31, err = sc.t(cdistShifted(qk[2], qk[0])); err != nil {
			return maps, err
		}
		if D42, err = sc.t(cdistShifted(qk[3], qk[1])); err != nil {
			return maps, err
		}
	}
	var kp1 *ts.Tensor
	if useS && useD {
		if kp1, err = sc.t(k.AddScalar(ts.IntScalar(1), false)); err != nil { // k = k + 1
			return maps, err
		}
	}
	// combine returns softmax(S + k·D), softmax(S) or softmax(D)
	combine := func(S, D *ts.Tensor) (*ts.Tensor, error) {
		var z *ts.Tensor
		switch {
		case S != nil && D != nil:
			kd, err := sc.t(kp1.Mul(D, false))
			if err != nil {
				return nil, err
			}
			if z, err = sc.t(S.Add(kd, false)); err != nil {
				return nil, err
			}
		case S != nil:
			z = S
		default:
			z = D
		}
		return z.Softmax(-1, gotch.Invalid, false)
	}
	type term struct {
		m              *ts.Tensor
		normDim, sumDm int64
		transpose      bool
	}
	// K1 (anchor): S1 = sum(normalize(S_2x1, dim=2), dim=1),
	//              D1 = sum(normalize(D_3x1, dim=2), dim=1)
	// K2 (positive): S2 from S_1x2 = S_2x1ᵀ (dim 2, sum 1),
	//              D2 = sum(normalize(D_4x2, dim=2), dim=1)
	// Q3 (negative): S3 from S_3x4 = S_4x3ᵀ (dim 1, sum 2),
	//              D3 = sum(normalize(D_3x1, dim=1), dim=2)
	// Q4 (negative2): S4 = sum(normalize(S_4x3, dim=1), dim=2),
	//              D4 = sum(normalize(D_4x2, dim=1), dim=2)
	// The code computes them in the order K1, Q4, K2, Q3.
	sTerms := [4]term{{S21, 2, 1, false}, {S21, 2, 1, true}, {S43, 1, 2, true}, {S43, 1, 2, false}}
	dTerms := [4]term{{D31, 2, 1, false}, {D42, 2, 1, false}, {D31, 1, 2, false}, {D42, 1, 2, false}}
	reduce := func(t term) (*ts.Tensor, error) {
		if t.m == nil {
			return nil, nil
		}
		x := t.m
		if t.transpose {
			var err error
			if x, err = sc.t(x.Transpose(1, 2, false)); err != nil {
				return nil, err
			}
		}
		nx, err := sc.t(l2Normalize(x, t.normDim))
		if err != nil {
			return nil, err
		}
		return sc.t(nx.SumDimIntlist([]int64{t.sumDm}, false, gotch.Invalid, false))
	}
	defer func() {
		if err != nil {
			for i, m := range maps {
				if m != nil {
					m.Drop()
					maps[i] = nil
				}
			}
		}
	}()
	for _, i := range []int{0, 3, 1, 2} {
		S, err := reduce(sTerms[i])
		if err != nil {
			return maps, err
		}
		D, err := reduce(dTerms[i])
		if err != nil {
			return maps, err
		}
		if maps[i], err = combine(S, D); err != nil {
			return maps, err
		}
	}
	return maps, nil
}

// AttnDCSS is Attn_DCS_S(K1, Q2): S = max(D) − D of the min-shifted
// distances D = cdist(Q2, K1) [B,N2,N1]; the anchor's weights are
// softmax(sum(normalize(S, dim=2), dim=1)), the positive's
// softmax(sum(normalize(S, dim=1), dim=2)).
func AttnDCSS(k1, q2 *ts.Tensor) (m1, m2 *ts.Tensor, err error) {
	sc := &sttScope{}
	defer sc.free()
	S, err := sc.t(cdistSimilarity(q2, k1))
	if err != nil {
		return nil, nil, err
	}
	one := func(normDim, sumDim int64) (*ts.Tensor, error) {
		n, err := sc.t(l2Normalize(S, normDim))
		if err != nil {
			return nil, err
		}
		s, err := sc.t(n.SumDimIntlist([]int64{sumDim}, false, gotch.Invalid, false))
		if err != nil {
			return nil, err
		}
		return s.Softmax(-1, gotch.Invalid, false)
	}
	if m1, err = one(2, 1); err != nil {
		return nil, nil, err
	}
	if m2, err = one(1, 2); err != nil {
		m1.Drop()
		return nil, nil, err
	}
	return m1, m2, nil
}

// cdistShifted is D = torch.cdist(a, b, p=2); D − torch.min(D) (the
// minimum over the whole tensor, all samples).
func cdistShifted(a, b *ts.Tensor) (*ts.Tensor, error) {
	D, err := ts.Cdist(a, b, 2, nil)
	if err != nil {
		return nil, fmt.Errorf("cdist: %w", err)
	}
	defer D.Drop()
	mn, err := D.Min(false)
	if err != nil {
		return nil, err
	}
	defer mn.Drop()
	return D.Sub(mn, false)
}

// cdistSimilarity is S = torch.max(D) − D of the shifted distances.
func cdistSimilarity(a, b *ts.Tensor) (*ts.Tensor, error) {
	D, err := cdistShifted(a, b)
	if err != nil {
		return nil, err
	}
	defer D.Drop()
	mx, err := D.Max(false)
	if err != nil {
		return nil, err
	}
	defer mx.Drop()
	return mx.Sub(D, false)
}

// l2Normalize is F.normalize(x, p=2, dim): x / max(‖x‖₂ over dim, 1e-12),
// with the same ops (norm, clamp_min, expand_as, div).
func l2Normalize(x *ts.Tensor, dim int64) (*ts.Tensor, error) {
	n, err := x.NormScalaroptDim(ts.FloatScalar(2), []int64{dim}, true, false)
	if err != nil {
		return nil, err
	}
	defer n.Drop()
	c, err := n.ClampMin(ts.FloatScalar(1e-12), false)
	if err != nil {
		return nil, err
	}
	defer c.Drop()
	e, err := c.ExpandAs(x, false)
	if err != nil {
		return nil, err
	}
	defer e.Drop()
	return x.Div(e, false)
}
