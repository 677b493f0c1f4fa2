package losses

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// CCCEps keeps the concordance correlation coefficient finite when both
// series are constant and equal within a batch (the denominator is then
// 0): the loss sees CCC = 0 for such a batch instead of NaN. (The metric,
// metrics.CCC, defines that case as 1.)
const CCCEps = 1e-8

// CCC is Lin's concordance correlation coefficient of two 1-D series of
// the same length, in the autograd graph:
//
//	CCC = 2·cov(p,t) / (σ²_p + σ²_t + (μ_p − μ_t)² + CCCEps)
//
// with population moments (divide by N), as metrics.CCC and the
// AVEC/ABAW evaluation scripts.
func CCC(pred, target *ts.Tensor) (*ts.Tensor, error) {
	s := &scope{what: "ccc"}
	defer s.free()
	none := gotch.Invalid
	mp := s.do("mean", func() (*ts.Tensor, error) { return pred.Mean(none, false) })
	mt := s.do("mean", func() (*ts.Tensor, error) { return target.Mean(none, false) })
	dp := s.do("centre", func() (*ts.Tensor, error) { return pred.Sub(mp, false) })
	dt := s.do("centre", func() (*ts.Tensor, error) { return target.Sub(mt, false) })
	vp := s.do("variance", func() (*ts.Tensor, error) { return dp.Square(false) })
	vp = s.do("variance", func() (*ts.Tensor, error) { return vp.Mean(none, false) })
	vt := s.do("variance", func() (*ts.Tensor, error) { return dt.Square(false) })
	vt = s.do("variance", func() (*ts.Tensor, error) { return vt.Mean(none, false) })
	cov := s.do("covariance", func() (*ts.Tensor, error) { return dp.Mul(dt, false) })
	cov = s.do("covariance", func() (*ts.Tensor, error) { return cov.Mean(none, false) })
	dm := s.do("mean gap", func() (*ts.Tensor, error) { return mp.Sub(mt, false) })
	dm = s.do("mean gap", func() (*ts.Tensor, error) { return dm.Square(false) })
	den := s.do("denominator", func() (*ts.Tensor, error) { return vp.Add(vt, false) })
	den = s.do("denominator", func() (*ts.Tensor, error) { return den.Add(dm, false) })
	den = s.do("denominator", func() (*ts.Tensor, error) { return den.AddScalar(ts.FloatScalar(CCCEps), false) })
	num := s.do("numerator", func() (*ts.Tensor, error) { return cov.MulScalar(ts.FloatScalar(2), false) })
	ccc := s.do("ratio", func() (*ts.Tensor, error) { return num.Div(den, false) })
	if s.err != nil {
		return nil, s.err
	}
	return s.keep(ccc), nil
}

// VALoss is the valence-arousal loss of the Kollias multi-task models,
// L_VA = 1 − (CCC_v + CCC_a)/2, for predictions and targets [N,2]
// (valence, arousal) of the labelled frames (N >= 2). It also returns
// CCC_v and CCC_a; the caller owns all three.
func VALoss(pred, target *ts.Tensor) (loss, cccV, cccA *ts.Tensor, err error) {
	ps, err := pred.Size()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("va loss: %w", err)
	}
	ts2, err := target.Size()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("va loss: %w", err)
	}
	if len(ps) != 2 || ps[1] != 2 || len(ts2) != 2 || ts2[0] != ps[0] || ts2[1] != 2 || ps[0] < 2 {
		return nil, nil, nil, fmt.Errorf("va loss: predictions %v and targets %v, want both [N,2] with N >= 2", ps, ts2)
	}
	s := &scope{what: "va loss"}
	defer s.free()
	col := func(x *ts.Tensor, j int64) *ts.Tensor {
		return s.do("column", func() (*ts.Tensor, error) { return x.Select(1, j, false) })
	}
	pv, pa, tv, ta := col(pred, 0), col(pred, 1), col(target, 0), col(target, 1)
	if s.err != nil {
		return nil, nil, nil, s.err
	}
	v := s.do("ccc valence", func() (*ts.Tensor, error) { return CCC(pv, tv) })
	a := s.do("ccc arousal", func() (*ts.Tensor, error) { return CCC(pa, ta) })
	sum := s.do("mean ccc", func() (*ts.Tensor, error) { return v.Add(a, false) })
	l := s.do("1 - mean ccc", func() (*ts.Tensor, error) { return sum.MulScalar(ts.FloatScalar(-0.5), false) })
	l = s.do("1 - mean ccc", func() (*ts.Tensor, error) { return l.AddScalar(ts.FloatScalar(1), false) })
	if s.err != nil {
		return nil, nil, nil, s.err
	}
	return s.keep(l), s.keep(v), s.keep(a), nil
}
