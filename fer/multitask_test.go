package fer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fer-research/fer/fer/metrics"
	"github.com/fer-research/fer/losses"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func f32(t *testing.T, d []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.NewTensorFromData(d, shape)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func item(t *testing.T, x *ts.Tensor) float64 {
	t.Helper()
	v, err := x.Float64Value([]int64{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mtBatch is 2 windows × 3 frames with partial labels: VA unknown (−5) on
// frames 1 and 4, expression −1 on frames 0 and 5, AU entries −1 on frame
// 2 (all) and frame 3 (AU 0).
func mtBatch(t *testing.T) (*Batch, Outputs, []float32, []float32, []int64, []float32, []float32) {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	const N, C, A = 6, 4, 3
	va := []float32{0.1, 0.5, -5, -5, -0.3, 0.2, 0.7, -0.1, -5, -5, 0.4, 0.9}
	labels := []int64{-1, 2, 0, 3, 1, -1}
	au := []float32{1, 0, 1, 0, 0, 1, -1, -1, -1, -1, 1, 0, 0, 1, 1, 1, 0, 0}
	pva := make([]float32, 2*N)
	logits := make([]float32, C*N)
	pau := make([]float32, A*N)
	for _, s := range [][]float32{pva, logits, pau} {
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
	}
	for i := range pva {
		pva[i] = float32(math.Tanh(float64(pva[i])))
	}
	b, err := NewBatch(gotch.CPU, []string{"w0", "w1"}, nil, nil, map[string]any{
		TargetVA:    TensorData{va, []int64{2, 3, 2}},
		TargetLabel: TensorData64{labels, []int64{2, 3}},
		TargetAU:    TensorData{au, []int64{2, 3, A}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Size = 2
	out := Outputs{OutputVA: f32(t, pva, 2, 3, 2), OutputLogits: f32(t, logits, 2, 3, C), OutputAU: f32(t, pau, 2, 3, A)}
	return b, out, pva, logits, labels, pau, au
}

// The multi-task loss uses exactly the labelled frames of each task.
func TestMultiTaskLossMasking(t *testing.T) {
	lockThread(t)
	b, out, pva, logits, labels, pau, au := mtBatch(t)
	defer b.Drop()
	va := b.Targets[TargetVA].Float64Values()
	lv, err := MultiTaskLoss{WVA: 1, WExpr: 2, WAU: 0.5}.Loss(out, b)
	if err != nil {
		t.Fatal(err)
	}
	// VA: frames 0, 2, 3, 5
	var pv, tv, pa, ta []float64
	for _, k := range []int{0, 2, 3, 5} {
		pv, pa = append(pv, float64(pva[2*k])), append(pa, float64(pva[2*k+1]))
		tv, ta = append(tv, va[2*k]), append(ta, va[2*k+1])
	}
	cv, _ := metrics.CCC(pv, tv)
	ca, _ := metrics.CCC(pa, ta)
	wantVA := 1 - (cv+ca)/2
	// EXPR: CE over frames 1..4
	var ce float64
	for k := 1; k <= 4; k++ {
		row := logits[4*k : 4*k+4]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		ce += -(float64(row[labels[k]]) - m - math.Log(s))
	}
	ce /= 4
	// AU: BCE over the 14 labelled entries
	var bce float64
	n := 0
	for i, y := range au {
		if y < 0 {
			continue
		}
		x := float64(pau[i])
		bce += math.Max(x, 0) - x*float64(y) + math.Log1p(math.Exp(-math.Abs(x)))
		n++
	}
	bce /= float64(n)
	got := map[string]float64{}
	for k, p := range lv.Parts {
		got[k] = item(t, p)
	}
	if n != 14 || math.Abs(got["va"]-wantVA) > 1e-5 || math.Abs(got["expr"]-ce) > 1e-5 || math.Abs(got["au"]-bce) > 1e-5 {
		t.Fatalf("parts %v, want va %v expr %v au %v", got, wantVA, ce, bce)
	}
	if total := item(t, lv.Total); math.Abs(total-(wantVA+2*ce+0.5*bce)) > 1e-5 {
		t.Fatalf("total %v, want %v", total, wantVA+2*ce+0.5*bce)
	}
	lv.Drop()
}

// A batch without any label of a task contributes zero, not NaN, and
// back-propagates; a batch with no labels at all gives a zero total in
// the graph.
func TestMultiTaskLossNoLabels(t *testing.T) {
	lockThread(t)
	b, out, _, _, _, _, _ := mtBatch(t)
	defer b.Drop()
	for _, k := range []string{TargetVA, TargetLabel, TargetAU} {
		b.Targets[k].Drop()
	}
	b.Targets[TargetVA] = f32(t, []float32{-5, -5, 0.2, 0.1, -5, -5, -5, -5, -5, -5, -5, -5}, 2, 3, 2) // one frame: CCC needs two
	y, _ := ts.NewTensorFromData([]int64{-1, -1, -1, -1, -1, -1}, []int64{2, 3})
	b.Targets[TargetLabel] = y
	delete(b.Targets, TargetAU) // a data set without AUs
	x := out[OutputVA].MustSetRequiresGrad(true, false)
	out[OutputVA] = x
	lv, err := MultiTaskLoss{WVA: 1, WExpr: 1, WAU: 1}.Loss(out, b)
	if err != nil {
		t.Fatal(err)
	}
	if v := item(t, lv.Total); v != 0 {
		t.Fatalf("total %v, want 0", v)
	}
	for k, p := range lv.Parts {
		if v := item(t, p); v != 0 {
			t.Fatalf("part %s = %v", k, v)
		}
	}
	if err := lv.Total.Backward(); err != nil {
		t.Fatalf("backward of the zero loss: %v", err)
	}
	for _, g := range x.MustGrad(false).Float64Values() {
		if g != 0 {
			t.Fatalf("gradient %v, want 0", g)
		}
	}
	// with the ArcFace expression loss and no cos output: a clear error
	b.Targets[TargetLabel].Drop()
	b.Targets[TargetLabel], _ = ts.NewTensorFromData([]int64{0, 1, 2, 3, 0, 1}, []int64{2, 3})
	arc, _ := losses.NewArcFace(64, 0.5, false)
	if _, err := (MultiTaskLoss{WExpr: 1, ArcFace: arc}).Loss(out, b); err == nil {
		t.Fatal("want an error naming the missing cos output")
	}
}

// The evaluator's streaming statistics equal the direct metrics.
func TestMultiTaskEvaluator(t *testing.T) {
	lockThread(t)
	b, out, pva, logits, labels, pau, au := mtBatch(t)
	defer b.Drop()
	va := b.Targets[TargetVA].Float64Values()
	e := NewMultiTaskEvaluator([]string{"a", "b", "c", "d"}, []string{"AU1", "AU2", "AU4"})
	if err := e.Add(out, b); err != nil {
		t.Fatal(err)
	}
	// twice: sums accumulate across batches
	if err := e.Add(out, b); err != nil {
		t.Fatal(err)
	}
	m := e.Metrics()
	var pv, tv, pa, ta []float64
	for _, k := range []int{0, 2, 3, 5, 0, 2, 3, 5} {
		pv, pa = append(pv, float64(pva[2*k])), append(pa, float64(pva[2*k+1]))
		tv, ta = append(tv, va[2*k]), append(ta, va[2*k+1])
	}
	cv, _ := metrics.CCC(pv, tv)
	ca, _ := metrics.CCC(pa, ta)
	if math.Abs(m["ccc_v"]-cv) > 1e-9 || math.Abs(m["ccc_a"]-ca) > 1e-9 || math.Abs(m["ccc"]-(cv+ca)/2) > 1e-9 {
		t.Fatalf("ccc %v %v, want %v %v", m["ccc_v"], m["ccc_a"], cv, ca)
	}
	conf := metrics.NewConfusion(4)
	for k := 1; k <= 4; k++ {
		best := 0
		for c := 1; c < 4; c++ {
			if logits[4*k+c] > logits[4*k+best] {
				best = c
			}
		}
		conf.Add(int(labels[k]), best)
		conf.Add(int(labels[k]), best)
	}
	if m["acc"] != conf.Accuracy() || m["f1"] != conf.MacroF1() || math.Abs(m["expr_score"]-(0.67*conf.MacroF1()+0.33*conf.Accuracy())) > 1e-12 {
		t.Fatalf("expr %v", m)
	}
	var pred, tgt [][]bool
	right, all := 0, 0
	for k := 0; k < 6; k++ {
		for a := 0; a < 3; a++ {
			if au[3*k+a] < 0 {
				continue
			}
			row := make([]bool, 3)
			trow := make([]bool, 3)
			row[a], trow[a] = pau[3*k+a] > 0, au[3*k+a] > 0
			pred, tgt = append(pred, row), append(tgt, trow)
			if row[a] == trow[a] {
				right++
			}
			all++
		}
	}
	// per-AU F1 over the labelled entries of each AU (rows padded with
	// false in the other columns do not change an AU's TP/FP/FN)
	f1, _ := metrics.PerAUF1(pred, tgt)
	mean := (f1[0] + f1[1] + f1[2]) / 3
	if math.Abs(m["au_f1/AU1"]-f1[0]) > 1e-12 || math.Abs(m["au_f1/AU4"]-f1[2]) > 1e-12 || math.Abs(m["au_f1"]-mean) > 1e-12 ||
		math.Abs(m["au_acc"]-float64(right)/float64(all)) > 1e-12 || math.Abs(m["au_score"]-(mean+float64(right)/float64(all))/2) > 1e-12 {
		t.Fatalf("au %v, want f1 %v acc %v", m, f1, float64(right)/float64(all))
	}
	if math.Abs(m["mtl_score"]-(m["ccc"]+m["f1"]+m["au_f1"])) > 1e-12 {
		t.Fatal("mtl_score")
	}
	// state round trip
	st, err := e.State()
	if err != nil {
		t.Fatal(err)
	}
	e2 := NewMultiTaskEvaluator(e.Classes, e.AUs)
	if err := e2.SetState(st); err != nil {
		t.Fatal(err)
	}
	for k, v := range e2.Metrics() {
		if v != m[k] {
			t.Fatalf("restored %s = %v, want %v", k, v, m[k])
		}
	}
	// tasks without labels report nothing
	e.Reset()
	delete(out, OutputVA)
	if err := e.Add(out, b); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Metrics()["ccc"]; ok {
		t.Fatal("ccc without va output")
	}
	out.Drop()
}
