package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
)

// ArcFace: additive angular margin loss (Deng et al., CVPR 2019), used by
// MT-ArcRes and MT-ArcVGG for the expression task (SPEC.md §10.1). With
// cos θ_j = ⟨W_j/‖W_j‖, x/‖x‖⟩ the cosines between the normalised feature
// and the normalised class centres, the target logit becomes
//
//	φ = cos(θ_y + m) = cos θ_y·cos m − sin θ_y·sin m,   sin θ_y = √(1 − cos²θ_y)
//
// and every logit is scaled by s:
//
//	logits = s·(onehot·φ + (1 − onehot)·cos θ),   L = CE(logits, y).
//
// When θ_y + m would pass π (cos θ_y ≤ cos(π − m)), cos(θ_y + m) is no
// longer decreasing in θ_y; the reference implementations (ronghuaiyang/
// arcface-pytorch ArcMarginProduct, insightface arcface_torch) then use
// cos θ_y − m·sin m instead: φ = where(cos θ_y > cos(π−m), φ, cos θ_y −
// m·sin m). EasyMargin (arcface-pytorch's easy_margin) uses φ only where
// cos θ_y > 0. Rows with label −1 get no margin and no loss.
//
// One deviation from the references: 1 − cos² is clamped to [1e-7, 1]
// before the square root (arcface-pytorch clamps nothing), so the
// gradient stays finite when a feature lies exactly on its class centre.
type ArcFace struct {
	S, M       float64
	EasyMargin bool
}

// ArcFace defaults from the ArcFace paper; the values Kollias used are
// unknown (SPEC.md §1.2).
const (
	DefaultArcFaceS = 64
	DefaultArcFaceM = 0.5
)

// NewArcFace checks s > 0 and 0 <= m < π/2.
func NewArcFace(s, m float64, easyMargin bool) (*ArcFace, error) {
	if !(s > 0) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("arcface: s = %v, want > 0 (default %v)", s, DefaultArcFaceS)
	}
	if !(m >= 0 && m < math.Pi/2) {
		return nil, fmt.Errorf("arcface: m = %v, want in [0, π/2) (default %v)", m, DefaultArcFaceM)
	}
	return &ArcFace{S: s, M: m, EasyMargin: easyMargin}, nil
}

// Logits maps cosines [N,C] and int64 labels [N] (−1 = unlabelled) to the
// margin logits above. The caller owns the result.
func (a *ArcFace) Logits(cos, labels *ts.Tensor) (*ts.Tensor, error) {
	shape, err := cos.Size()
	if err != nil {
		return nil, fmt.Errorf("arcface: %w", err)
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("arcface: cosines have shape %v, want [N, classes]", shape)
	}
	C := shape[1]
	s := &scope{what: "arcface"}
	defer s.free()
	// one-hot of the labelled rows (label −1: all zero)
	valid := s.do("label mask", func() (*ts.Tensor, error) { return labels.Ge(ts.IntScalar(0), false) })
	lab0 := s.do("labels", func() (*ts.Tensor, error) { return labels.ClampMin(ts.IntScalar(0), false) })
	oh := s.do("one-hot", func() (*ts.Tensor, error) { return lab0.OneHot(C, false) })
	vm := s.do("label mask", func() (*ts.Tensor, error) { return valid.Unsqueeze(1, false) })
	oh = s.do("one-hot", func() (*ts.Tensor, error) { return oh.Mul(vm, false) })
	oh = s.do("one-hot", func() (*ts.Tensor, error) { return oh.Totype(cos.DType(), false) })
	// φ = cos θ·cos m − sin θ·sin m
	sin := s.do("sine", func() (*ts.Tensor, error) { return cos.Square(false) })
	sin = s.do("sine", func() (*ts.Tensor, error) { return sin.Neg(false) })
	sin = s.do("sine", func() (*ts.Tensor, error) { return sin.AddScalar(ts.FloatScalar(1), false) })
	sin = s.do("sine", func() (*ts.Tensor, error) { return sin.Clamp(ts.FloatScalar(1e-7), ts.FloatScalar(1), false) })
	sin = s.do("sine", func() (*ts.Tensor, error) { return sin.Sqrt(false) })
	pc := s.do("phi", func() (*ts.Tensor, error) { return cos.MulScalar(ts.FloatScalar(math.Cos(a.M)), false) })
	ps := s.do("phi", func() (*ts.Tensor, error) { return sin.MulScalar(ts.FloatScalar(math.Sin(a.M)), false) })
	phi := s.do("phi", func() (*ts.Tensor, error) { return pc.Sub(ps, false) })
	// the fallback where θ + m would pass π
	var cond, alt *ts.Tensor
	if a.EasyMargin {
		cond = s.do("margin condition", func() (*ts.Tensor, error) { return cos.Gt(ts.FloatScalar(0), false) })
		alt = cos
	} else {
		th := math.Cos(math.Pi - a.M)
		mm := math.Sin(math.Pi-a.M) * a.M
		cond = s.do("margin condition", func() (*ts.Tensor, error) { return cos.Gt(ts.FloatScalar(th), false) })
		alt = s.do("fallback", func() (*ts.Tensor, error) { return cos.AddScalar(ts.FloatScalar(-mm), false) })
	}
	phi = s.do("where", func() (*ts.Tensor, error) { return phi.WhereSelf(cond, alt, false) })
	// s·(onehot·φ + (1−onehot)·cos) = s·(cos + onehot·(φ − cos))
	d := s.do("combine", func() (*ts.Tensor, error) { return phi.Sub(cos, false) })
	d = s.do("combine", func() (*ts.Tensor, error) { return d.Mul(oh, false) })
	out := s.do("combine", func() (*ts.Tensor, error) { return cos.Add(d, false) })
	out = s.do("scale", func() (*ts.Tensor, error) { return out.MulScalar(ts.FloatScalar(a.S), false) })
	if s.err != nil {
		return nil, s.err
	}
	return s.keep(out), nil
}

// Loss is the mean cross-entropy of Logits over the labelled rows. The
// caller checks that at least one row is labelled (a batch without
// expression labels contributes nothing, see fer.MultiTaskLoss).
func (a *ArcFace) Loss(cos, labels *ts.Tensor) (*ts.Tensor, error) {
	z, err := a.Logits(cos, labels)
	if err != nil {
		return nil, err
	}
	defer z.Drop()
	noWeight := ts.NewTensor()
	defer noWeight.Drop()
	l, err := z.CrossEntropyLoss(labels, noWeight, 1 /* mean */, -1, 0, false)
	if err != nil {
		return nil, fmt.Errorf("arcface: cross-entropy: %w", err)
	}
	return l, nil
}

// Cosines returns ⟨W_j/‖W_j‖, x/‖x‖⟩ for features x [N,D] and class
// centres w [C,D] (F.linear(F.normalize(x), F.normalize(W)), eps 1e-12).
func Cosines(x, w *ts.Tensor) (*ts.Tensor, error) {
	s := &scope{what: "arcface cosines"}
	defer s.free()
	xn := s.do("normalise features", func() (*ts.Tensor, error) { return normalize(x) })
	wn := s.do("normalise centres", func() (*ts.Tensor, error) { return normalize(w) })
	noBias := ts.NewTensor()
	defer noBias.Drop()
	c := s.do("linear", func() (*ts.Tensor, error) { return ts.Linear(xn, wn, noBias) })
	if s.err != nil {
		return nil, s.err
	}
	return s.keep(c), nil
}

// normalize is F.normalize(x, p=2, dim=1, eps=1e-12).
func normalize(x *ts.Tensor) (*ts.Tensor, error) {
	n, err := x.NormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false)
	if err != nil {
		return nil, err
	}
	n, err = n.ClampMin(ts.FloatScalar(1e-12), true)
	if err != nil {
		return nil, err
	}
	defer n.Drop()
	return x.Div(n, false)
}
