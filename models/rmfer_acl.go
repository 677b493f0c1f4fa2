package models

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Attention-based contrastive learning (ACL), RMFER's third module. The
// public repository never released it (its README); models/model.py
// holds a sketch that this follows:
//
//	get_positive(anchor, samples): with no_grad, S = get_cossimMat(
//	    backbone(cat[anchor, samples])); keep S[0][1:] > quantile(S[0][1:], 1−γ)
//	get_negative(anchor, samples): the same, S[0][1:] < quantile(…, γ)
//	contrastive_loss(anchor, P_imp, N_imp): S = get_cossimMat(backbone(
//	    cat[anchor, P_imp, N_imp])); −log(Σ_P e^{S[0][p]} / Σ_{P∪N} e^{S[0][j]})
//
// so the candidates are embedded with the current fFeat → H (in the
// model's current mode: BatchNorm uses the candidates' batch statistics
// and updates its running statistics during training, as the sketch
// does), the selection takes no gradient, and the loss is computed on a
// second pass over the anchor and the kept candidates only.

// ACLKeep returns how many of n candidates the code's quantile thresholds
// keep: positives S > quantile(S, 1−γ), negatives S < quantile(S, γ),
// torch.quantile interpolating linearly between order statistics. With
// distinct similarities that is the top k (bottom k) with
// k = n − 1 − ⌊(1−γ)(n−1)⌋ (k = ⌊γ(n−1)⌋ + 1, or γ(n−1) when that is
// a whole number); n = 50, γ = 0.1 keeps 5 of each. fer keeps exactly k
// (top-k): the code keeps fewer when similarities tie at the threshold.
// At least one candidate is always kept.
func ACLKeep(n int, gamma float64) (top, bottom int) {
	if n <= 0 {
		return 0, 0
	}
	// rounded to 1e-9 so that 0.9·10 counts as the whole number 9
	pt := math.Round((1-gamma)*float64(n-1)*1e9) / 1e9
	top = n - 1 - int(math.Floor(pt))
	pb := math.Round(gamma*float64(n-1)*1e9) / 1e9
	if pb == math.Floor(pb) {
		bottom = int(pb)
	} else {
		bottom = int(math.Floor(pb)) + 1
	}
	return max(top, 1), max(bottom, 1)
}

// ACLSelection is the important candidates of each anchor of a batch:
// Pos[a] indexes the anchor's positives (P_imp), Neg[a] its negatives
// (N_imp), both ascending.
type ACLSelection struct {
	Pos, Neg [][]int64
}

// anchorSimilarities embeds cat[anchor, cands] (anchor [1,3,H,W], cands
// [n,3,H,W]) with fFeat → H and returns the anchor's row of the scaled
// cosine-similarity matrix without the anchor itself, [n] (the code's
// S[0][1:]).
func (m *RMFER) anchorSimilarities(anchor, cands *ts.Tensor, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	imgs, err := sc.t(ts.Cat([]*ts.Tensor{anchor, cands}, 0))
	if err != nil {
		return nil, err
	}
	f := sc.add(m.Backbone.ForwardT(imgs, train))
	z := sc.add(m.ProjectionHead.ForwardT(f, train))
	s, err := sc.t(CosineSimilarityMatrix(z, m.aclTau()))
	if err != nil {
		return nil, err
	}
	n, err := cands.Size()
	if err != nil {
		return nil, err
	}
	row, err := sc.t(s.Select(0, 0, false))
	if err != nil {
		return nil, err
	}
	return row.Narrow(0, 1, n[0], false)
}

func (m *RMFER) aclTau() float64 {
	if m.cfg.ACLTau > 0 {
		return m.cfg.ACLTau
	}
	return m.cfg.Tau
}

// SelectImportant picks, without gradient, the important positives (the
// largest anchor similarities) and negatives (the smallest) of one anchor
// [1,3,H,W] among its candidates positives [P,3,H,W] and negatives
// [N,3,H,W], each embedded together with the anchor (the code's
// get_positive, then get_negative). The indices are ascending.
func (m *RMFER) SelectImportant(anchor, positives, negatives *ts.Tensor, train bool) (pImp, nImp []int64, err error) {
	err = noGrad(func() error {
		var err error
		if pImp, err = m.selectOne(anchor, positives, train, true); err != nil {
			return fmt.Errorf("positives: %w", err)
		}
		if nImp, err = m.selectOne(anchor, negatives, train, false); err != nil {
			return fmt.Errorf("negatives: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rmfer: ACL selection: %w", err)
	}
	return pImp, nImp, nil
}

func (m *RMFER) selectOne(anchor, cands *ts.Tensor, train, largest bool) ([]int64, error) {
	s, err := m.anchorSimilarities(anchor, cands, train)
	if err != nil {
		return nil, err
	}
	defer s.MustDrop()
	vals := s.Float64Values()
	top, bottom := ACLKeep(len(vals), m.cfg.Gamma)
	k := bottom
	if largest {
		k = top
	}
	return topK(vals, k, largest), nil
}

// topK returns the indices of the k largest (or smallest) values in
// ascending index order; ties go to the lower index.
func topK(vals []float64, k int, largest bool) []int64 {
	idx := make([]int64, len(vals))
	for i := range idx {
		idx[i] = int64(i)
	}
	slices.SortStableFunc(idx, func(a, b int64) int {
		x, y := vals[a], vals[b]
		if largest {
			x, y = y, x
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// ACLLoss is L_ACL for one anchor [1,3,H,W] with its important positives
// [p,3,H,W] and negatives [q,3,H,W]: the three are embedded together
// (the code's contrastive_loss) and
//
//	L = −log( Σ_{P_imp} e^{s_j} / Σ_{P_imp ∪ N_imp} e^{s_j} ),
//
// s_j the anchor's scaled cosine similarities, computed as
// logsumexp(s) − logsumexp(s_P) (the code exponentiates directly; the
// two agree to float rounding and this one cannot overflow for small τ).
func (m *RMFER) ACLLoss(anchor, pImp, nImp *ts.Tensor, train bool) (*ts.Tensor, error) {
	p, err := pImp.Size()
	if err != nil {
		return nil, err
	}
	cands, err := ts.Cat([]*ts.Tensor{pImp, nImp}, 0)
	if err != nil {
		return nil, fmt.Errorf("rmfer: ACL: %w", err)
	}
	defer cands.MustDrop()
	s, err := m.anchorSimilarities(anchor, cands, train)
	if err != nil {
		return nil, fmt.Errorf("rmfer: ACL: %w", err)
	}
	defer s.MustDrop()
	return ACLLossFromSimilarities(s, p[0])
}

// ACLLossFromSimilarities is L_ACL from an anchor's scaled similarities
// s [n] whose first nPos entries are the positives.
func ACLLossFromSimilarities(s *ts.Tensor, nPos int64) (*ts.Tensor, error) {
	n, err := s.Size()
	if err != nil {
		return nil, err
	}
	if len(n) != 1 || nPos < 1 || nPos > n[0] {
		return nil, fmt.Errorf("ACL loss: similarities of shape %v with %d positives", n, nPos)
	}
	sc := &sttScope{}
	defer sc.free()
	all, err := sc.t(s.Logsumexp([]int64{0}, false, false))
	if err != nil {
		return nil, err
	}
	sp, err := sc.t(s.Narrow(0, 0, nPos, false))
	if err != nil {
		return nil, err
	}
	pos, err := sc.t(sp.Logsumexp([]int64{0}, false, false))
	if err != nil {
		return nil, err
	}
	return all.Sub(pos, false)
}

// ACL is the mean L_ACL over the anchors of an RMset batch: anchors
// [A,3,H,W], positives [A,P,3,H,W], negatives [A,N,3,H,W] (the layout of
// fer.RMsetInput*). sel, when non-nil, gives the important candidates
// (a second SAM pass reuses the first's); otherwise they are selected
// now and returned.
func (m *RMFER) ACL(anchors, positives, negatives *ts.Tensor, train bool, sel *ACLSelection) (*ts.Tensor, *ACLSelection, error) {
	as, err := anchors.Size()
	if err != nil {
		return nil, nil, err
	}
	ps, err := positives.Size()
	if err != nil {
		return nil, nil, err
	}
	ns, err := negatives.Size()
	if err != nil {
		return nil, nil, err
	}
	if len(as) != 4 || len(ps) != 5 || len(ns) != 5 || ps[0] != as[0] || ns[0] != as[0] ||
		!slices.Equal(ps[2:], as[1:]) || !slices.Equal(ns[2:], as[1:]) || ps[1] < 1 || ns[1] < 1 {
		return nil, nil, fmt.Errorf("rmfer: ACL batch with anchors %v, positives %v, negatives %v; want [A,3,H,W], [A,P,3,H,W], [A,N,3,H,W]", as, ps, ns)
	}
	A := as[0]
	if sel != nil && (len(sel.Pos) != int(A) || len(sel.Neg) != int(A)) {
		return nil, nil, fmt.Errorf("rmfer: ACL selection for %d anchors, batch has %d", len(sel.Pos), A)
	}
	if sel == nil {
		sel = &ACLSelection{}
	} else {
		sel = &ACLSelection{Pos: sel.Pos, Neg: sel.Neg}
	}
	choose := len(sel.Pos) == 0
	var total *ts.Tensor
	for a := int64(0); a < A; a++ {
		loss, err := m.aclAnchor(anchors, positives, negatives, a, train, sel, choose)
		if err != nil {
			if total != nil {
				total.MustDrop()
			}
			return nil, nil, err
		}
		if total == nil {
			total = loss
			continue
		}
		sum, err := total.Add(loss, true)
		loss.MustDrop()
		if err != nil {
			return nil, nil, err
		}
		total = sum
	}
	mean, err := total.DivScalar(ts.FloatScalar(float64(A)), true)
	if err != nil {
		return nil, nil, err
	}
	return mean, sel, nil
}

func (m *RMFER) aclAnchor(anchors, positives, negatives *ts.Tensor, a int64, train bool, sel *ACLSelection, choose bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	anchor, err := sc.t(anchors.Narrow(0, a, 1, false))
	if err != nil {
		return nil, err
	}
	pos, err := sc.t(positives.Select(0, a, false))
	if err != nil {
		return nil, err
	}
	neg, err := sc.t(negatives.Select(0, a, false))
	if err != nil {
		return nil, err
	}
	if choose {
		p, n, err := m.SelectImportant(anchor, pos, neg, train)
		if err != nil {
			return nil, fmt.Errorf("anchor %d: %w", a, err)
		}
		sel.Pos, sel.Neg = append(sel.Pos, p), append(sel.Neg, n)
	}
	pImp, err := sc.t(indexRows(pos, sel.Pos[a]))
	if err != nil {
		return nil, err
	}
	nImp, err := sc.t(indexRows(neg, sel.Neg[a]))
	if err != nil {
		return nil, err
	}
	loss, err := m.ACLLoss(anchor, pImp, nImp, train)
	if err != nil {
		return nil, fmt.Errorf("anchor %d: %w", a, err)
	}
	return loss, nil
}

// indexRows is x[idx] along dim 0.
func indexRows(x *ts.Tensor, idx []int64) (*ts.Tensor, error) {
	it, err := ts.OfSlice(idx)
	if err != nil {
		return nil, err
	}
	defer it.MustDrop()
	dev := x.MustDevice()
	if dev != gotch.CPU {
		moved, err := it.To(dev, false)
		if err != nil {
			return nil, err
		}
		defer moved.MustDrop()
		it = moved
	}
	return x.IndexSelect(0, it, false)
}
