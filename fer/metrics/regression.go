package metrics

import (
	"fmt"
	"math"
)

// CCC returns Lin's concordance correlation coefficient between predictions
// and targets (valence or arousal):
//
//	CCC = 2·cov(p,t) / (σ²_p + σ²_t + (μ_p − μ_t)²)
//
// with population moments (divide by N), as in the AVEC/ABAW evaluation
// scripts (np.mean / np.var). The value lies in [−1, 1].
//
// Degenerate cases: constant predictions against a varying target give 0
// (the covariance is 0). When both series are constant and equal, the
// denominator is 0 and the series are identical, so CCC is defined as 1; when
// both are constant but different, the denominator is (μ_p − μ_t)² > 0 and
// CCC is 0.
//
// Errors: empty input, a length mismatch, or a NaN/Inf value (named with its
// index).
func CCC(pred, target []float64) (float64, error) {
	if len(pred) != len(target) {
		return 0, fmt.Errorf("ccc: %d predictions but %d targets", len(pred), len(target))
	}
	if len(pred) == 0 {
		return 0, fmt.Errorf("ccc: empty input")
	}
	for i := range pred {
		if math.IsNaN(pred[i]) || math.IsInf(pred[i], 0) {
			return 0, fmt.Errorf("ccc: prediction %d is %v", i, pred[i])
		}
		if math.IsNaN(target[i]) || math.IsInf(target[i], 0) {
			return 0, fmt.Errorf("ccc: target %d is %v", i, target[i])
		}
	}
	n := float64(len(pred))
	var mp, mt float64
	for i := range pred {
		mp += pred[i]
		mt += target[i]
	}
	mp /= n
	mt /= n
	// Second pass on centred values (numerically stabler than E[x²]−E[x]²).
	var vp, vt, cov float64
	for i := range pred {
		dp, dt := pred[i]-mp, target[i]-mt
		vp += dp * dp
		vt += dt * dt
		cov += dp * dt
	}
	vp /= n
	vt /= n
	cov /= n
	den := vp + vt + (mp-mt)*(mp-mt)
	if den == 0 {
		// Both constant with the same mean: identical series.
		return 1, nil
	}
	return 2 * cov / den, nil
}
