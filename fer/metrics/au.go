package metrics

import "fmt"

// AffWild2AUs names the eight action units annotated in Aff-Wild2, in the
// column order of its AU_Set files (SPEC §1.1).
var AffWild2AUs = []string{"AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"}

// BinaryF1 returns the F1 score of binary predictions against binary targets,
// F1 = 2·TP / (2·TP + FP + FN). When there are no positives in either series
// (TP = FP = FN = 0) the score is 0, scikit-learn's default (zero_division)
// used by the ABAW evaluation. A length mismatch is an error.
func BinaryF1(pred, target []bool) (float64, error) {
	if len(pred) != len(target) {
		return 0, fmt.Errorf("binary f1: %d predictions but %d targets", len(pred), len(target))
	}
	var tp, fp, fn int
	for i := range pred {
		switch {
		case pred[i] && target[i]:
			tp++
		case pred[i]:
			fp++
		case target[i]:
			fn++
		}
	}
	den := 2*tp + fp + fn
	if den == 0 {
		return 0, nil
	}
	return float64(2*tp) / float64(den), nil
}

// PerAUF1 returns the F1 of each action unit for multi-label predictions laid
// out samples × AUs (pred[i][k] = AU k active in sample i). Every row of pred
// and target must have the same width; zero samples is an error. Each AU's F1
// follows BinaryF1 (0 when an AU is never active in either series).
func PerAUF1(pred, target [][]bool) ([]float64, error) {
	if len(pred) != len(target) {
		return nil, fmt.Errorf("per-AU f1: %d prediction rows but %d target rows", len(pred), len(target))
	}
	if len(pred) == 0 {
		return nil, fmt.Errorf("per-AU f1: no samples")
	}
	k := len(target[0])
	for i := range pred {
		if len(pred[i]) != k || len(target[i]) != k {
			return nil, fmt.Errorf("per-AU f1: sample %d has %d predicted and %d target AUs, want %d (as in sample 0)",
				i, len(pred[i]), len(target[i]), k)
		}
	}
	out := make([]float64, k)
	p, t := make([]bool, len(pred)), make([]bool, len(pred))
	for a := 0; a < k; a++ {
		for i := range pred {
			p[i], t[i] = pred[i][a], target[i][a]
		}
		out[a], _ = BinaryF1(p, t) // lengths are equal by construction
	}
	return out, nil
}

// MeanAUF1 is the unweighted mean of PerAUF1 over the AUs (the AU track's
// "mean F1").
func MeanAUF1(pred, target [][]bool) (float64, error) {
	f, err := PerAUF1(pred, target)
	if err != nil {
		return 0, err
	}
	if len(f) == 0 {
		return 0, fmt.Errorf("mean AU f1: zero action units per sample")
	}
	var s float64
	for _, v := range f {
		s += v
	}
	return s / float64(len(f)), nil
}
