package metrics

import (
	"math"
	"strings"
	"testing"
)

const tol = 1e-12

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol
}

func checkVec(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	for i := range got {
		if !near(got[i], want[i]) {
			t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
}

func checkNum(t *testing.T, name string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// fourClass builds the matrix used by several tests. Four classes:
//
//	true\pred  0  1  2  3
//	0          3  1  0  0   support 4
//	1          2  2  0  0   support 4
//	2          1  1  0  0   support 2  (present, never predicted)
//	3          0  0  0  0   support 0  (absent, never predicted)
//	predicted  6  4  0  0   total 10, correct 3+2 = 5
func fourClass(t *testing.T) *Confusion {
	t.Helper()
	c := NewConfusion(4)
	trues := []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}
	preds := []int{0, 0, 0, 1, 1, 1, 0, 0, 0, 1}
	if err := c.AddBatch(trues, preds); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfusionCounts(t *testing.T) {
	c := fourClass(t)
	want := [][]int64{{3, 1, 0, 0}, {2, 2, 0, 0}, {1, 1, 0, 0}, {0, 0, 0, 0}}
	got := c.Counts()
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] || c.At(i, j) != want[i][j] {
				t.Errorf("cell (%d,%d) = %d/%d, want %d", i, j, got[i][j], c.At(i, j), want[i][j])
			}
		}
	}
	if c.Total() != 10 {
		t.Errorf("Total = %d, want 10", c.Total())
	}
	sup, pc := c.Support(), c.PredictedCounts()
	for k, w := range []int64{4, 4, 2, 0} {
		if sup[k] != w {
			t.Errorf("Support[%d] = %d, want %d", k, sup[k], w)
		}
	}
	for k, w := range []int64{6, 4, 0, 0} {
		if pc[k] != w {
			t.Errorf("PredictedCounts[%d] = %d, want %d", k, pc[k], w)
		}
	}
	// Counts returns a copy.
	got[0][0] = 99
	if c.At(0, 0) != 3 {
		t.Error("Counts aliases the matrix")
	}
}

func TestConfusionSummaries(t *testing.T) {
	c := fourClass(t)
	nan := math.NaN()
	// WAR = correct/total = 5/10.
	checkNum(t, "Accuracy", c.Accuracy(), 0.5)
	checkNum(t, "WAR", c.WAR(), 0.5)
	// Recall = diag/support: 3/4, 2/4, 0/2, 0/0 (absent → NaN).
	checkVec(t, "PerClassAccuracy", c.PerClassAccuracy(), []float64{0.75, 0.5, 0, nan})
	checkVec(t, "Recall", c.Recall(), []float64{0.75, 0.5, 0, nan})
	// UAR averages the 3 present classes: (0.75 + 0.5 + 0)/3 = 1.25/3.
	checkNum(t, "UAR", c.UAR(), 1.25/3)
	// Precision = diag/predicted: 3/6, 2/4; class 2 present but never
	// predicted → 0; class 3 neither → NaN.
	checkVec(t, "Precision", c.Precision(), []float64{0.5, 0.5, 0, nan})
	// F1 = 2TP/(2TP+FP+FN):
	//   class 0: TP 3, FP 6-3 = 3, FN 4-3 = 1 → 6/10 = 0.6
	//   class 1: TP 2, FP 4-2 = 2, FN 4-2 = 2 → 4/8  = 0.5
	//   class 2: TP 0, FP 0,       FN 2       → 0/2  = 0
	//   class 3: 0/0 → NaN
	checkVec(t, "F1", c.F1(), []float64{0.6, 0.5, 0, nan})
	// Macro-F1 over classes seen as true or predicted {0,1,2}: 1.1/3.
	checkNum(t, "MacroF1", c.MacroF1(), 1.1/3)
	// Row-normalised; the absent class's row stays zero.
	n := c.Normalized()
	want := [][]float64{{0.75, 0.25, 0, 0}, {0.5, 0.5, 0, 0}, {0.5, 0.5, 0, 0}, {0, 0, 0, 0}}
	for i := range want {
		checkVec(t, "Normalized row", n[i], want[i])
	}
}

func TestConfusionPredictedButAbsent(t *testing.T) {
	// True labels all 0; predictions 0, 0, 2. Class 2 is predicted but never
	// true, class 1 neither.
	//   class 0: TP 2, FP 0, FN 1 → F1 4/5 = 0.8; recall 2/3
	//   class 2: TP 0, FP 1, FN 0 → F1 0;   precision 0/1 = 0; recall NaN
	//   class 1: F1 NaN, precision NaN, recall NaN
	// MacroF1 = (0.8 + 0)/2 = 0.4 (scikit-learn: f1_score([0,0,0],[0,0,2],
	// average="macro") = 0.4). UAR = 2/3 (only class 0 is present).
	c := NewConfusion(3)
	if err := c.AddBatch([]int{0, 0, 0}, []int{0, 0, 2}); err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	checkVec(t, "F1", c.F1(), []float64{0.8, nan, 0})
	checkVec(t, "Precision", c.Precision(), []float64{1, nan, 0})
	checkVec(t, "Recall", c.Recall(), []float64{2.0 / 3, nan, nan})
	checkNum(t, "MacroF1", c.MacroF1(), 0.4)
	checkNum(t, "UAR", c.UAR(), 2.0/3)
	checkNum(t, "WAR", c.WAR(), 2.0/3)
}

func TestConfusionPerfect(t *testing.T) {
	c := NewConfusion(3)
	for k := 0; k < 3; k++ {
		for r := 0; r <= k; r++ { // class k has k+1 samples
			if err := c.Add(k, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkNum(t, "WAR", c.WAR(), 1)
	checkNum(t, "UAR", c.UAR(), 1)
	checkNum(t, "MacroF1", c.MacroF1(), 1)
	checkVec(t, "F1", c.F1(), []float64{1, 1, 1})
	checkVec(t, "Precision", c.Precision(), []float64{1, 1, 1})
}

func TestConfusionImbalancedUARvsWAR(t *testing.T) {
	// 8 samples of class 0 all right, 2 samples of class 1 all wrong:
	// WAR = 8/10 = 0.8, UAR = (1 + 0)/2 = 0.5.
	c := NewConfusion(2)
	for i := 0; i < 8; i++ {
		_ = c.Add(0, 0)
	}
	_ = c.Add(1, 0)
	_ = c.Add(1, 0)
	checkNum(t, "WAR", c.WAR(), 0.8)
	checkNum(t, "UAR", c.UAR(), 0.5)
}

func TestConfusionEmpty(t *testing.T) {
	c := NewConfusion(3)
	for name, v := range map[string]float64{"Accuracy": c.Accuracy(), "UAR": c.UAR(), "MacroF1": c.MacroF1()} {
		if v != 0 {
			t.Errorf("%s of empty matrix = %v, want 0", name, v)
		}
	}
	for _, v := range c.PerClassAccuracy() {
		if !math.IsNaN(v) {
			t.Errorf("recall of empty class = %v, want NaN", v)
		}
	}
}

func TestConfusionErrors(t *testing.T) {
	c := NewConfusion(3)
	err := c.Add(3, 0)
	if err == nil || !strings.Contains(err.Error(), "true label 3") {
		t.Errorf("Add(3,0) error = %v, want one naming true label 3", err)
	}
	err = c.Add(0, -1)
	if err == nil || !strings.Contains(err.Error(), "prediction -1") {
		t.Errorf("Add(0,-1) error = %v, want one naming prediction -1", err)
	}
	err = c.AddBatch([]int{0, 1, 2}, []int{0, 1, 7})
	if err == nil || !strings.Contains(err.Error(), "sample 2") || !strings.Contains(err.Error(), "7") {
		t.Errorf("AddBatch error = %v, want one naming sample 2 and value 7", err)
	}
	if c.Total() != 0 {
		t.Errorf("failed AddBatch added %d samples, want none", c.Total())
	}
	if err := c.AddBatch([]int{0}, []int{0, 1}); err == nil {
		t.Error("AddBatch accepted a length mismatch")
	}
	if err := NewConfusion(0).Add(0, 0); err == nil {
		t.Error("0-class matrix accepted a sample")
	}
	if _, err := ConfusionFromCounts([][]int64{{1, 2}, {3}}); err == nil {
		t.Error("ConfusionFromCounts accepted a ragged table")
	}
}

func TestConfusionMergeFromCountsFormat(t *testing.T) {
	a := fourClass(t)
	b, err := ConfusionFromCounts(a.Counts())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Total() != 20 || a.At(0, 0) != 6 {
		t.Errorf("after merge Total=%d At(0,0)=%d, want 20 and 6", a.Total(), a.At(0, 0))
	}
	// Doubling every count leaves the rates unchanged.
	checkNum(t, "UAR after merge", a.UAR(), 1.25/3)
	if err := a.Merge(NewConfusion(2)); err == nil {
		t.Error("Merge accepted a different class count")
	}
	s := b.Format([]string{"happy", "sad", "neutral", "angry"})
	for _, want := range []string{"happy", "angry", "75.00", "WAR=50.00%", "UAR=41.67%", "macro-F1=36.67%"} {
		if !strings.Contains(s, want) {
			t.Errorf("Format output lacks %q:\n%s", want, s)
		}
	}
	a.Reset()
	if a.Total() != 0 {
		t.Error("Reset left counts")
	}
}

func TestCCC(t *testing.T) {
	cases := []struct {
		name         string
		pred, target []float64
		want         float64
	}{
		// μp=2, μt=4, σ²p=(1+0+1)/3=2/3, σ²t=(4+0+4)/3=8/3,
		// cov=((-1)(-2)+0+(1)(2))/3=4/3; den=2/3+8/3+(2-4)²=22/3;
		// CCC=(8/3)/(22/3)=4/11.
		{"scaled", []float64{1, 2, 3}, []float64{2, 4, 6}, 4.0 / 11},
		// Shift by one: σ²p=σ²t=cov=1, (μp-μt)²=1 → 2/3.
		{"shifted", []float64{1, 3}, []float64{0, 2}, 2.0 / 3},
		{"perfect", []float64{0.1, -0.5, 0.3}, []float64{0.1, -0.5, 0.3}, 1},
		// σ²=1 each, cov=-1, equal means → -2/2.
		{"negated", []float64{1, -1}, []float64{-1, 1}, -1},
		// Constant prediction: cov=0 → 0.
		{"constant pred", []float64{0.5, 0.5, 0.5}, []float64{0, 1, 2}, 0},
		// Both constant and equal → defined as 1.
		{"both constant equal", []float64{0.3, 0.3}, []float64{0.3, 0.3}, 1},
		// Both constant, different: den=(1-2)²=1, cov=0 → 0.
		{"both constant different", []float64{1, 1}, []float64{2, 2}, 0},
	}
	for _, tc := range cases {
		got, err := CCC(tc.pred, tc.target)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: CCC = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := CCC(nil, nil); err == nil {
		t.Error("CCC accepted empty input")
	}
	if _, err := CCC([]float64{1, 2}, []float64{1}); err == nil {
		t.Error("CCC accepted a length mismatch")
	}
	if _, err := CCC([]float64{1, math.NaN()}, []float64{1, 2}); err == nil || !strings.Contains(err.Error(), "prediction 1") {
		t.Errorf("CCC NaN error = %v, want one naming prediction 1", err)
	}
}

func TestBinaryF1(t *testing.T) {
	T, F := true, false
	// TP at 0 and 4, FP at 1, FN at 2 → 2·2/(4+1+1) = 2/3.
	got, err := BinaryF1([]bool{T, T, F, F, T}, []bool{T, F, T, F, T})
	if err != nil {
		t.Fatal(err)
	}
	checkNum(t, "BinaryF1", got, 2.0/3)
	got, _ = BinaryF1([]bool{F, F}, []bool{F, F})
	checkNum(t, "BinaryF1 no positives", got, 0)
	got, _ = BinaryF1([]bool{T, F}, []bool{T, F})
	checkNum(t, "BinaryF1 perfect", got, 1)
	if _, err := BinaryF1([]bool{T}, nil); err == nil {
		t.Error("BinaryF1 accepted a length mismatch")
	}
}

func TestPerAUF1(t *testing.T) {
	T, F := true, false
	// 4 samples × 3 AUs.
	//   AU0: pred 1100, target 1010 → TP1 FP1 FN1 → 2/4 = 0.5
	//   AU1: all active in both → 1
	//   AU2: never active → 0
	// mean = 1.5/3 = 0.5
	pred := [][]bool{{T, T, F}, {T, T, F}, {F, T, F}, {F, T, F}}
	target := [][]bool{{T, T, F}, {F, T, F}, {T, T, F}, {F, T, F}}
	f, err := PerAUF1(pred, target)
	if err != nil {
		t.Fatal(err)
	}
	checkVec(t, "PerAUF1", f, []float64{0.5, 1, 0})
	m, err := MeanAUF1(pred, target)
	if err != nil {
		t.Fatal(err)
	}
	checkNum(t, "MeanAUF1", m, 0.5)
	if _, err := PerAUF1([][]bool{{T, F}, {T}}, [][]bool{{T, F}, {T, F}}); err == nil || !strings.Contains(err.Error(), "sample 1") {
		t.Errorf("ragged PerAUF1 error = %v, want one naming sample 1", err)
	}
	if _, err := PerAUF1(nil, nil); err == nil {
		t.Error("PerAUF1 accepted zero samples")
	}
	if len(AffWild2AUs) != 8 || AffWild2AUs[4] != "AU12" {
		t.Errorf("AffWild2AUs = %v", AffWild2AUs)
	}
}
