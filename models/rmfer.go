package models

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// RMFER (Cho et al., WACV 2024; SPEC.md §3): semi-supervised contrastive
// learning for FER with reaction-mashup video. Three modules share one
// backbone:
//
//   - classification: f = fFeat(x), the pooled EfficientNet-B2 feature
//     (1408-d), and fFER = classifier_main, a Linear(1408, E);
//   - inter-sample attention learning (IAL): a projection head H
//     (Linear → ReLU → Linear, 1408-d) maps f to z; S is the batch's
//     cosine-similarity matrix of z divided by τ; self-masking writes a
//     large negative value on S's diagonal so a sample does not attend to
//     itself; A = row-softmax(S); the attention feature v = A·f mixes the
//     *backbone* features (not z); fIAL = classifier_att, a
//     Linear(1408, E), classifies v;
//   - attention-based contrastive learning (ACL) on the unlabelled RMset:
//     for an anchor face, the important positives P_imp (the top γ of
//     the candidate positives by similarity) and negatives N_imp (the
//     bottom γ of the candidate negatives), L_ACL = −log(Σ_{P_imp} e^s /
//     Σ_{P_imp ∪ N_imp} e^s) with s the anchor's scaled cosine similarity.
//
// The structure, names and IAL arithmetic follow the public code,
// models/efficientnet.py (class EfficientNet); the ACL follows the sketch
// in models/model.py (get_positive / get_negative / contrastive_loss),
// because the code's README says the ACL stage was never released. The
// parameter names are the public model's state_dict keys:
// backbone.0.weight (conv_stem) … backbone.3.S.I.* (blocks) …
// backbone.5.* (bn2), projection_head.{0,2}.*, classifier_main.*,
// classifier_att.*, so its checkpoints load by name (LoadRMFERCheckpoint).

// RMFERConfig holds the choices the paper leaves open. Defaults
// (DefaultRMFERConfig) are the public code's values; UNCONFIRMED marks a
// value neither the code nor a secondary source fixes.
type RMFERConfig struct {
	// NumClasses is E, the number of expression classes.
	NumClasses int64
	// Tau is τ, the code's "scale": S = cos / τ. Every released config
	// (configs/{Base,IAL,ACL}/*.json) sets 1.0; the older models/model.py
	// defaults to 0.25; the paper's value is UNCONFIRMED.
	Tau float64
	// SelfMasking masks S's diagonal before the softmax (all released
	// configs: self_masking = true). false is the paper's ablation
	// without self-masking.
	SelfMasking bool
	// MaskValue is what self-masking writes on the diagonal. The code
	// writes −10e6 = −1e7 (self_masking_matrix(replace=-10e6)), which
	// gives the diagonal a softmax weight of exactly 0; the paper's text
	// writes s_ii = 1e−6 (the option MaskValue = 1e-6, which does not
	// zero the weight).
	MaskValue float64
	// Gamma is γ, the fraction of the candidate positives (largest
	// similarity) and negatives (smallest) kept by ACL: the code's
	// thres_per / sampling_ratio, 0.1.
	Gamma float64
	// ACLTau is τ for the ACL similarities; 0 means Tau (the code's
	// sketch uses the same get_cossimMat, hence the same scale).
	ACLTau float64
	// Backbone is the fFeat EfficientNet; zero means B2
	// (tf_efficientnet_b2_ns: 1408-d features, 260×260 input) with the
	// public code's names. Its NumClasses must be 0.
	Backbone EfficientNetConfig
}

// DefaultRMFERConfig is the public code's configuration for E classes.
func DefaultRMFERConfig(numClasses int64) RMFERConfig {
	return RMFERConfig{NumClasses: numClasses, Tau: 1.0, SelfMasking: true, MaskValue: -1e7, Gamma: 0.1}
}

// RMFER is the network: fFeat, H, fFER and fIAL.
type RMFER struct {
	// Backbone is fFeat ("backbone").
	Backbone *EfficientNet
	// ProjectionHead is H ("projection_head").
	ProjectionHead *ProjectionHead
	// ClassifierMain is fFER ("classifier_main"); ClassifierAtt is fIAL
	// ("classifier_att").
	ClassifierMain, ClassifierAtt *Linear

	cfg RMFERConfig
}

// ProjectionHead is H = nn.Sequential(Linear(d, d), ReLU(), Linear(d, d)):
// parameters "0.*" and "2.*".
type ProjectionHead struct {
	Fc1, Fc2 *Linear
}

// ForwardT maps features f [N, d] (not consumed) to z [N, d].
func (h *ProjectionHead) ForwardT(f *ts.Tensor, train bool) *ts.Tensor {
	return step(h.Fc2, relu(h.Fc1.ForwardT(f, train), true), train)
}

// NewRMFER builds the network under p. The backbone, heads and
// projection are initialised as timm and nn.Linear do; published weights
// are loaded afterwards (LoadRMFERInit, LoadRMFERCheckpoint).
func NewRMFER(p *nn.Path, cfg RMFERConfig) (*RMFER, error) {
	if p == nil {
		return nil, fmt.Errorf("rmfer: nil path")
	}
	return newRMFER(newBuilder(p), cfg)
}

func newRMFER(b *builder, cfg RMFERConfig) (*RMFER, error) {
	if cfg.Backbone.Width == 0 {
		cfg.Backbone = EfficientNetB2Config(0)
		cfg.Backbone.Names = "rmfer"
	}
	switch {
	case cfg.NumClasses < 1:
		return nil, fmt.Errorf("rmfer: NumClasses = %d, want >= 1", cfg.NumClasses)
	case !(cfg.Tau > 0) || cfg.ACLTau < 0:
		return nil, fmt.Errorf("rmfer: tau = %v, acl_tau = %v, want tau > 0 and acl_tau >= 0", cfg.Tau, cfg.ACLTau)
	case !(cfg.Gamma > 0 && cfg.Gamma <= 1):
		return nil, fmt.Errorf("rmfer: gamma = %v, want in (0, 1]", cfg.Gamma)
	case cfg.Backbone.NumClasses != 0:
		return nil, fmt.Errorf("rmfer: the backbone must have no classifier (NumClasses 0), got %d", cfg.Backbone.NumClasses)
	case math.IsNaN(cfg.MaskValue) || math.IsInf(cfg.MaskValue, 0):
		return nil, fmt.Errorf("rmfer: mask value %v, want finite", cfg.MaskValue)
	}
	bb, err := newEfficientNet(b.sub("backbone"), cfg.Backbone)
	if err != nil {
		return nil, fmt.Errorf("rmfer: %w", err)
	}
	d := bb.FeatureDim()
	m := &RMFER{Backbone: bb, cfg: cfg}
	m.ProjectionHead = &ProjectionHead{
		Fc1: newLinear(b.sub("projection_head.0"), d, d),
		Fc2: newLinear(b.sub("projection_head.2"), d, d),
	}
	m.ClassifierMain = newLinear(b.sub("classifier_main"), d, cfg.NumClasses)
	m.ClassifierAtt = newLinear(b.sub("classifier_att"), d, cfg.NumClasses)
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("rmfer: %w", err)
	}
	return m, nil
}

// CountRMFERParams returns the trainable parameters of NewRMFER(cfg)
// without allocating any tensor.
func CountRMFERParams(cfg RMFERConfig) (int64, error) {
	b := newBuilder(nil)
	if _, err := newRMFER(b, cfg); err != nil {
		return 0, err
	}
	return b.state.params, nil
}

// Config returns the configuration (defaults filled in).
func (m *RMFER) Config() RMFERConfig { return m.cfg }

// FeatureDim is the backbone feature length d (1408).
func (m *RMFER) FeatureDim() int64 { return m.Backbone.FeatureDim() }

// RMFEROutput is one IAL forward pass over a batch of N images. The
// caller owns the tensors (Drop).
type RMFEROutput struct {
	// Logits [N, E] = fFER(f): the prediction used at inference.
	Logits *ts.Tensor
	// AttLogits [N, E] = fIAL(A·f).
	AttLogits *ts.Tensor
	// Attention A [N, N]: row-softmax of the (self-masked) similarities.
	Attention *ts.Tensor
	// Features f [N, d] (backbone) and Z [N, d] = H(f).
	Features, Z *ts.Tensor
}

// Drop frees the tensors.
func (o *RMFEROutput) Drop() {
	for _, t := range []*ts.Tensor{o.Logits, o.AttLogits, o.Attention, o.Features, o.Z} {
		if t != nil {
			t.MustDrop()
		}
	}
	*o = RMFEROutput{}
}

// ForwardT is the inference path, the code's forward_only_origin:
// classifier_main(backbone(x)) — no attention, no dependence on the rest
// of the batch.
func (m *RMFER) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return step(m.ClassifierMain, m.Backbone.ForwardT(x, train), train)
}

// Forward is the code's forward: backbone features, both heads and the
// attention matrix for a batch x [N, 3, H, W].
func (m *RMFER) Forward(x *ts.Tensor, train bool) (*RMFEROutput, error) {
	f := m.Backbone.ForwardT(x, train)
	out, err := m.IAL(f, train)
	if err != nil {
		f.MustDrop()
		return nil, err
	}
	out.Features = f
	return out, nil
}

// IAL runs everything after the backbone on features f [N, d] (not
// consumed; Features of the result is left nil): logits, z = H(f),
// S = cos(z)/τ, A = softmax(mask(S)), AttLogits = fIAL(A·f).
func (m *RMFER) IAL(f *ts.Tensor, train bool) (*RMFEROutput, error) {
	shape, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("rmfer: features: %w", err)
	}
	if len(shape) != 2 || shape[1] != m.FeatureDim() {
		return nil, fmt.Errorf("rmfer: features of shape %v, want [N, %d]", shape, m.FeatureDim())
	}
	sc := &sttScope{} // temporaries, freed on return
	defer sc.free()
	out := &RMFEROutput{}
	fail := func(what string, err error) (*RMFEROutput, error) {
		out.Drop()
		return nil, fmt.Errorf("rmfer: %s: %w", what, err)
	}
	if out.Logits, err = ts.Linear(f, m.ClassifierMain.Weight, m.ClassifierMain.Bias); err != nil {
		return fail("classifier_main", err)
	}
	out.Z = m.ProjectionHead.ForwardT(f, train)
	s, err := sc.t(CosineSimilarityMatrix(out.Z, m.cfg.Tau))
	if err != nil {
		return fail("similarity", err)
	}
	if m.cfg.SelfMasking {
		if s, err = sc.t(selfMask(s, m.cfg.MaskValue)); err != nil {
			return fail("self-masking", err)
		}
	}
	// nn.Softmax(dim=1)
	if out.Attention, err = s.Softmax(1, gotch.Float, false); err != nil {
		return fail("softmax", err)
	}
	v, err := sc.t(out.Attention.Matmul(f, false))
	if err != nil {
		return fail("attention feature", err)
	}
	if out.AttLogits, err = ts.Linear(v, m.ClassifierAtt.Weight, m.ClassifierAtt.Bias); err != nil {
		return fail("classifier_att", err)
	}
	return out, nil
}

// CosineSimilarityMatrix is the code's get_cos_sim_mat on z [N, d]:
// (z·zᵀ) / (‖z‖ᵀ·‖z‖) / τ, with the norms from torch.norm(z, dim=1)
// (Frobenius over dim 1) and no epsilon, op for op as the public code.
func CosineSimilarityMatrix(z *ts.Tensor, tau float64) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	zt, err := sc.t(z.T(false))
	if err != nil {
		return nil, err
	}
	sim, err := sc.t(z.Matmul(zt, false))
	if err != nil {
		return nil, err
	}
	norms, err := sc.t(z.FrobeniusNorm([]int64{1}, false, false))
	if err != nil {
		return nil, err
	}
	row, err := sc.t(norms.View([]int64{1, -1}, false))
	if err != nil {
		return nil, err
	}
	col, err := sc.t(row.T(false))
	if err != nil {
		return nil, err
	}
	den, err := sc.t(col.Matmul(row, false))
	if err != nil {
		return nil, err
	}
	cos, err := sc.t(sim.Div(den, false))
	if err != nil {
		return nil, err
	}
	return cos.DivScalar(ts.FloatScalar(tau), false)
}

// selfMask writes value on the diagonal of s [N, N] (the code's
// matrix[diag] = replace, a detached constant: no gradient flows to the
// diagonal).
func selfMask(s *ts.Tensor, value float64) (*ts.Tensor, error) {
	n, err := s.Size()
	if err != nil {
		return nil, err
	}
	eye, err := ts.Eye(n[0], gotch.Bool, s.MustDevice())
	if err != nil {
		return nil, err
	}
	defer eye.MustDrop()
	return s.MaskedFill(eye, ts.FloatScalar(value), false)
}

// GroupAttention is the data of RMFER's Fig. 4: the attention matrix A
// the model computes over one RMset group embedded as a batch, [anchor
// (1), positives (P), negatives (N)] of [·,3,H,W] images, in eval mode
// without gradient; row i is sample i's attention over the group.
func (m *RMFER) GroupAttention(anchor, positives, negatives *ts.Tensor) ([][]float64, error) {
	var rows [][]float64
	err := noGrad(func() error {
		x, err := ts.Cat([]*ts.Tensor{anchor, positives, negatives}, 0)
		if err != nil {
			return err
		}
		defer x.MustDrop()
		out, err := m.Forward(x, false)
		if err != nil {
			return err
		}
		defer out.Drop()
		n, err := out.Attention.Size()
		if err != nil {
			return err
		}
		vals := out.Attention.Float64Values()
		for i := int64(0); i < n[0]; i++ {
			rows = append(rows, vals[i*n[1]:(i+1)*n[1]])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rmfer: group attention: %w", err)
	}
	return rows, nil
}
