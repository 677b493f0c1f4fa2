package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Compact softmax cross-entropy (STT, Ma, Sun & Li 2022).
//
// STT's abstract says only that a "compact softmax cross entropy loss"
// minimises intra-class and maximises inter-class distances; the formula and
// its weight are not available to us (SPEC.md §4.3, UNCONFIRMED). What this
// file implements is OUR READING of that description, not a confirmed STT
// formula:
//
//	p   = softmax(z)                              (z: logits, K classes, y: target)
//	q_j = p_j / (1 − p_y) = softmax_{k≠y}(z)_j,   j ≠ y   (non-target distribution, K−1 classes)
//	u   = 1/(K−1)                                 (uniform over the non-target classes)
//	SKL = KL(q‖u) + KL(u‖q) = Σ_{j≠y} (q_j − u)·(log q_j − log u)
//	L   = mean_batch( −log p_y ) + λ · mean_batch( SKL )
//
// The compact term is zero exactly when the wrong classes share the
// leftover probability evenly: no wrong class is singled out, so the
// softmax (and, through it, the features) of a class is pulled towards one
// point per class while the target margin is left to the CE term. λ = 1 is
// our default, chosen without a source; keep it configurable.
//
// Why the symmetric KL is computed from the gathered non-target logits
// (log q = log_softmax over the K−1 wrong logits) instead of masking the
// target out of a K-wide softmax: a −inf mask turns the masked term of
// (q−u)(log q − log u) into 0·∞ = NaN in the backward pass. Gathering keeps
// every quantity finite and is exact.

// DefaultCompactLambda is the default weight λ of the compact term (our
// choice; the paper's value is unknown).
const DefaultCompactLambda = 1.0

// CompactCE is the compact softmax cross-entropy loss; see the file comment
// for the formula (our reading of STT's description).
type CompactCE struct {
	// Lambda weighs the symmetric-KL compact term; 0 gives plain CE.
	Lambda float64
}

// NewCompactCE returns the loss with weight lambda (finite, >= 0).
func NewCompactCE(lambda float64) (*CompactCE, error) {
	if math.IsNaN(lambda) || math.IsInf(lambda, 0) || lambda < 0 {
		return nil, fmt.Errorf("compact softmax CE: lambda = %v, want a finite value >= 0 (default %v)", lambda, DefaultCompactLambda)
	}
	return &CompactCE{Lambda: lambda}, nil
}

// Loss computes the loss of logits [B,K] (K >= 3, float) against int64
// labels [B] in 0..K-1. It returns the total (a scalar tensor that
// back-propagates to logits) and the unweighted sub-losses by name: "ce"
// (mean cross-entropy) and "compact" (mean symmetric KL, before λ).
// The caller owns all returned tensors.
func (c *CompactCE) Loss(logits, labels *ts.Tensor) (total *ts.Tensor, parts map[string]*ts.Tensor, err error) {
	ce, compact, err := compactTerms(logits, labels)
	if err != nil {
		return nil, nil, err
	}
	weighted, err := compact.MulScalar(ts.FloatScalar(c.Lambda), false)
	if err != nil {
		return nil, nil, fmt.Errorf("compact softmax CE: %w", err)
	}
	total, err = ce.Add(weighted, false)
	weighted.Drop()
	if err != nil {
		return nil, nil, fmt.Errorf("compact softmax CE: %w", err)
	}
	return total, map[string]*ts.Tensor{"ce": ce, "compact": compact}, nil
}

// compactTerms returns the batch-mean CE and the batch-mean symmetric KL
// of the non-target distribution against uniform.
func compactTerms(logits, labels *ts.Tensor) (ce, compact *ts.Tensor, err error) {
	shape, err := logits.Size()
	if err != nil {
		return nil, nil, fmt.Errorf("compact softmax CE: logits: %w", err)
	}
	if len(shape) != 2 || shape[0] < 1 {
		return nil, nil, fmt.Errorf("compact softmax CE: logits have shape %v, want [B,K]", shape)
	}
	B, K := shape[0], shape[1]
	if K < 3 {
		return nil, nil, fmt.Errorf("compact softmax CE: %d classes; the non-target distribution needs K >= 3", K)
	}
	if dt := logits.DType(); dt != gotch.Float && dt != gotch.Double && dt != gotch.Half && dt != gotch.BFloat16 {
		return nil, nil, fmt.Errorf("compact softmax CE: logits dtype %v, want a floating type", dt)
	}
	lshape, err := labels.Size()
	if err != nil {
		return nil, nil, fmt.Errorf("compact softmax CE: labels: %w", err)
	}
	if len(lshape) != 1 || lshape[0] != B {
		return nil, nil, fmt.Errorf("compact softmax CE: labels have shape %v, want [%d] (one class index per logits row)", lshape, B)
	}
	if labels.DType() != gotch.Int64 {
		return nil, nil, fmt.Errorf("compact softmax CE: labels dtype %v, want int64 class indices", labels.DType())
	}

	// Cross-entropy; libtorch also rejects labels outside 0..K-1 here.
	noWeight := ts.NewTensor() // undefined tensor = no class weights
	ce, err = logits.CrossEntropyLoss(labels, noWeight, 1 /* mean */, -100, 0, false)
	noWeight.Drop()
	if err != nil {
		return nil, nil, fmt.Errorf("compact softmax CE: cross-entropy (labels must lie in 0..%d): %w", K-1, err)
	}

	compact, err = nonTargetSymKL(logits, labels, B, K)
	if err != nil {
		ce.Drop()
		return nil, nil, err
	}
	return ce, compact, nil
}

// nonTargetSymKL is mean_b Σ_{j≠y_b} (q_bj − u)(log q_bj − log u).
func nonTargetSymKL(logits, labels *ts.Tensor, B, K int64) (*ts.Tensor, error) {
	wrap := func(step string, err error) error {
		return fmt.Errorf("compact softmax CE: %s: %w", step, err)
	}
	dev, err := logits.Device()
	if err != nil {
		return nil, wrap("device", err)
	}
	// Indices of the K−1 non-target classes of every row, in ascending
	// order, without leaving the device: sort key = class + K·[class == y],
	// so the target sorts last and is cut off.
	classes, err := ts.Arange(ts.IntScalar(K), gotch.Int64, dev)
	if err != nil {
		return nil, wrap("arange", err)
	}
	oneHot, err := labels.OneHot(K, false)
	if err != nil {
		classes.Drop()
		return nil, wrap("one-hot labels", err)
	}
	key, err := oneHot.MulScalar(ts.IntScalar(K), true)
	if err == nil {
		key, err = key.Add(classes, true) // [B,K] + [K]
	}
	classes.Drop()
	if err != nil {
		return nil, wrap("sort key", err)
	}
	order, err := key.Argsort(1, false, true)
	if err != nil {
		return nil, wrap("argsort", err)
	}
	idx, err := order.Narrow(1, 0, K-1, true)
	if err != nil {
		return nil, wrap("non-target index", err)
	}
	zn, err := logits.Gather(1, idx, false, false) // [B,K-1]
	idx.Drop()
	if err != nil {
		return nil, wrap("gather non-target logits", err)
	}
	logq, err := zn.LogSoftmax(1, gotch.Invalid, true)
	if err != nil {
		return nil, wrap("log-softmax", err)
	}
	q, err := logq.Exp(false)
	if err != nil {
		logq.Drop()
		return nil, wrap("exp", err)
	}
	u := 1 / float64(K-1)
	dq, err := q.AddScalar(ts.FloatScalar(-u), true)
	if err != nil {
		logq.Drop()
		return nil, wrap("q - u", err)
	}
	dlog, err := logq.AddScalar(ts.FloatScalar(-math.Log(u)), true)
	if err != nil {
		dq.Drop()
		return nil, wrap("log q - log u", err)
	}
	prod, err := dq.Mul(dlog, true)
	dlog.Drop()
	if err != nil {
		return nil, wrap("product", err)
	}
	perRow, err := prod.SumDimIntlist([]int64{1}, false, gotch.Invalid, true)
	if err != nil {
		return nil, wrap("sum over classes", err)
	}
	mean, err := perRow.Mean(gotch.Invalid, true)
	if err != nil {
		return nil, wrap("mean over batch", err)
	}
	return mean, nil
}
