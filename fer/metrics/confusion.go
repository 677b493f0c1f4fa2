// Package metrics holds the evaluation metrics shared by every model family:
// a confusion matrix with the FER summary numbers (WAR = overall accuracy,
// UAR = mean per-class recall, macro-F1), the concordance correlation
// coefficient (CCC) for valence/arousal, and per-action-unit F1.
//
// The package is pure Go and has no torch dependency, so it can be used on
// predictions read back from disk as well as inside the training loop.
//
// Conventions for degenerate inputs (documented per function):
//   - Summary numbers (Accuracy, WAR, UAR, MacroF1) are 0 on an empty matrix,
//     never NaN, so they can always be written to a JSON metrics log.
//   - Per-class vectors use NaN for a value that is undefined (0/0), for
//     example the recall of a class that has no true samples.
package metrics

import (
	"fmt"
	"math"
	"strings"
)

// Confusion is a square confusion matrix: rows are the true class, columns
// the predicted class, and cell (t, p) counts the samples of true class t
// predicted as p. The zero value is a 0-class matrix; use NewConfusion.
type Confusion struct {
	n      int
	counts []int64 // row-major n×n
}

// NewConfusion returns an empty confusion matrix for numClasses classes.
// A negative numClasses is treated as 0; every Add on a 0-class matrix fails.
func NewConfusion(numClasses int) *Confusion {
	if numClasses < 0 {
		numClasses = 0
	}
	return &Confusion{n: numClasses, counts: make([]int64, numClasses*numClasses)}
}

// ConfusionFromCounts builds a matrix from a square table of counts
// (rows = true class, columns = predicted class), e.g. one read back from a
// report. Ragged tables and negative counts are errors.
func ConfusionFromCounts(counts [][]int64) (*Confusion, error) {
	c := NewConfusion(len(counts))
	for t, row := range counts {
		if len(row) != c.n {
			return nil, fmt.Errorf("confusion counts: row %d has %d columns, want %d (the table must be square)", t, len(row), c.n)
		}
		for p, v := range row {
			if v < 0 {
				return nil, fmt.Errorf("confusion counts: cell (%d,%d) is negative (%d)", t, p, v)
			}
			c.counts[t*c.n+p] = v
		}
	}
	return c, nil
}

// NumClasses is the number of classes (rows and columns).
func (c *Confusion) NumClasses() int { return c.n }

func (c *Confusion) check(what string, v int) error {
	if v < 0 || v >= c.n {
		return fmt.Errorf("confusion: %s %d out of range [0,%d)", what, v, c.n)
	}
	return nil
}

// Add counts one sample. Labels outside [0, NumClasses) are an error naming
// the offending value; the matrix is unchanged then.
func (c *Confusion) Add(trueLabel, pred int) error {
	if err := c.check("true label", trueLabel); err != nil {
		return err
	}
	if err := c.check("prediction", pred); err != nil {
		return err
	}
	c.counts[trueLabel*c.n+pred]++
	return nil
}

// AddBatch counts trues[i] against preds[i] for every i. All pairs are
// validated first: on error (length mismatch or a label out of range, named
// with its index) nothing is added.
func (c *Confusion) AddBatch(trues, preds []int) error {
	if len(trues) != len(preds) {
		return fmt.Errorf("confusion: %d true labels but %d predictions", len(trues), len(preds))
	}
	for i := range trues {
		if err := c.check("true label", trues[i]); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
		if err := c.check("prediction", preds[i]); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	for i := range trues {
		c.counts[trues[i]*c.n+preds[i]]++
	}
	return nil
}

// Merge adds the counts of o (same number of classes) into c, e.g. to pool
// several evaluation shards.
func (c *Confusion) Merge(o *Confusion) error {
	if o.n != c.n {
		return fmt.Errorf("confusion: merge %d-class matrix into %d-class matrix", o.n, c.n)
	}
	for i, v := range o.counts {
		c.counts[i] += v
	}
	return nil
}

// Reset sets all counts to zero.
func (c *Confusion) Reset() {
	clear(c.counts)
}

// At returns the count of samples of true class t predicted as p (0 when out
// of range).
func (c *Confusion) At(t, p int) int64 {
	if t < 0 || t >= c.n || p < 0 || p >= c.n {
		return 0
	}
	return c.counts[t*c.n+p]
}

// Counts returns a copy of the matrix as rows (true class) of columns
// (predicted class).
func (c *Confusion) Counts() [][]int64 {
	out := make([][]int64, c.n)
	for t := range out {
		out[t] = append([]int64(nil), c.counts[t*c.n:(t+1)*c.n]...)
	}
	return out
}

// Total is the number of samples counted.
func (c *Confusion) Total() int64 {
	var s int64
	for _, v := range c.counts {
		s += v
	}
	return s
}

// Support returns the number of true samples per class (row sums).
func (c *Confusion) Support() []int64 {
	out := make([]int64, c.n)
	for t := 0; t < c.n; t++ {
		for p := 0; p < c.n; p++ {
			out[t] += c.counts[t*c.n+p]
		}
	}
	return out
}

// PredictedCounts returns how often each class was predicted (column sums).
func (c *Confusion) PredictedCounts() []int64 {
	out := make([]int64, c.n)
	for t := 0; t < c.n; t++ {
		for p := 0; p < c.n; p++ {
			out[p] += c.counts[t*c.n+p]
		}
	}
	return out
}

func (c *Confusion) correct() int64 {
	var s int64
	for k := 0; k < c.n; k++ {
		s += c.counts[k*c.n+k]
	}
	return s
}

// Accuracy is the overall accuracy, correct / total (0 when empty). In the
// dynamic-FER literature this is the WAR (weighted average recall).
func (c *Confusion) Accuracy() float64 {
	tot := c.Total()
	if tot == 0 {
		return 0
	}
	return float64(c.correct()) / float64(tot)
}

// WAR is the weighted average recall: per-class recall weighted by class
// support, which equals the overall accuracy. 0 when empty.
func (c *Confusion) WAR() float64 { return c.Accuracy() }

// UAR is the unweighted average recall (RMFER's "average accuracy", the
// mean-class accuracy): the mean of the per-class recalls over the classes
// that have at least one true sample. Classes with no true samples are
// excluded from the mean (their recall is undefined), so UAR of a test set
// that lacks a class is the mean over the classes it has. 0 when empty.
func (c *Confusion) UAR() float64 {
	var sum float64
	var k int
	for _, r := range c.PerClassAccuracy() {
		if !math.IsNaN(r) {
			sum += r
			k++
		}
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}

// PerClassAccuracy returns the recall of each class: correct predictions of
// the class over its true samples (the row-normalised diagonal). Classes
// with no true samples get NaN.
func (c *Confusion) PerClassAccuracy() []float64 {
	sup := c.Support()
	out := make([]float64, c.n)
	for k := range out {
		if sup[k] == 0 {
			out[k] = math.NaN()
			continue
		}
		out[k] = float64(c.counts[k*c.n+k]) / float64(sup[k])
	}
	return out
}

// Recall is PerClassAccuracy: NaN for classes with no true samples.
func (c *Confusion) Recall() []float64 { return c.PerClassAccuracy() }

// Precision returns, per class, the fraction of the predictions of that class
// that were correct. A class that is never predicted but has true samples
// gets 0 (scikit-learn's zero_division=0 convention); a class that is neither
// predicted nor present gets NaN.
func (c *Confusion) Precision() []float64 {
	sup, pc := c.Support(), c.PredictedCounts()
	out := make([]float64, c.n)
	for k := range out {
		switch {
		case pc[k] > 0:
			out[k] = float64(c.counts[k*c.n+k]) / float64(pc[k])
		case sup[k] > 0:
			out[k] = 0
		default:
			out[k] = math.NaN()
		}
	}
	return out
}

// F1 returns the per-class F1 = 2·TP / (2·TP + FP + FN). It is 0 for a class
// that is present but never predicted, or predicted but never present, and
// NaN for a class that is neither present nor predicted (0/0).
func (c *Confusion) F1() []float64 {
	sup, pc := c.Support(), c.PredictedCounts()
	out := make([]float64, c.n)
	for k := range out {
		tp := c.counts[k*c.n+k]
		fp, fn := pc[k]-tp, sup[k]-tp
		den := 2*tp + fp + fn
		if den == 0 {
			out[k] = math.NaN()
			continue
		}
		out[k] = float64(2*tp) / float64(den)
	}
	return out
}

// MacroF1 is the unweighted mean of the per-class F1 over the classes that
// occur as a true label or as a prediction (the F1 of other classes is
// undefined and skipped). This matches scikit-learn's
// f1_score(average="macro") with its default labels, the union of y_true and
// y_pred. 0 when empty.
func (c *Confusion) MacroF1() float64 {
	var sum float64
	var k int
	for _, f := range c.F1() {
		if !math.IsNaN(f) {
			sum += f
			k++
		}
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}

// Normalized returns the row-normalised matrix: cell (t, p) is the fraction
// of true class t predicted as p, so each non-empty row sums to 1. Rows of
// classes with no true samples stay all zero.
func (c *Confusion) Normalized() [][]float64 {
	sup := c.Support()
	out := make([][]float64, c.n)
	for t := range out {
		out[t] = make([]float64, c.n)
		if sup[t] == 0 {
			continue
		}
		for p := range out[t] {
			out[t][p] = float64(c.counts[t*c.n+p]) / float64(sup[t])
		}
	}
	return out
}

// Format renders the matrix as an aligned text table with class names
// (numbers are used when classes is shorter than NumClasses), followed by the
// per-class recall and the WAR/UAR/macro-F1 summary, for logs and reports.
func (c *Confusion) Format(classes []string) string {
	name := func(k int) string {
		if k < len(classes) && classes[k] != "" {
			return classes[k]
		}
		return fmt.Sprint(k)
	}
	w := len("true\\pred")
	for k := 0; k < c.n; k++ {
		w = max(w, len(name(k)))
	}
	for _, v := range c.counts {
		w = max(w, len(fmt.Sprint(v)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", w, "true\\pred")
	for p := 0; p < c.n; p++ {
		fmt.Fprintf(&b, " %*s", w, name(p))
	}
	fmt.Fprintf(&b, " %*s\n", w, "recall")
	rec := c.PerClassAccuracy()
	for t := 0; t < c.n; t++ {
		fmt.Fprintf(&b, "%-*s", w, name(t))
		for p := 0; p < c.n; p++ {
			fmt.Fprintf(&b, " %*d", w, c.counts[t*c.n+p])
		}
		if math.IsNaN(rec[t]) {
			fmt.Fprintf(&b, " %*s\n", w, "-")
		} else {
			fmt.Fprintf(&b, " %*.2f\n", w, 100*rec[t])
		}
	}
	fmt.Fprintf(&b, "N=%d  WAR=%.2f%%  UAR=%.2f%%  macro-F1=%.2f%%\n",
		c.Total(), 100*c.WAR(), 100*c.UAR(), 100*c.MacroF1())
	return b.String()
}
