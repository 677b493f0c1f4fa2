package fer

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/fer-research/fer/fer/metrics"
	"github.com/fer-research/fer/losses"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Outputs of the multi-task models (Aff-Wild2 family). Every output and
// target may carry extra leading dimensions (a sequence model gives
// [B,T,...] against targets [B,T,...]); the loss and the evaluator
// flatten them to one row per frame.
const (
	// OutputVA is the float [.., 2] valence and arousal in [−1, 1].
	OutputVA = "va"
	// OutputAU is the float [.., A] action-unit logits (active when > 0).
	OutputAU = "au"
	// OutputCosine is the float [.., C] cosines between a frame's
	// normalised feature and the normalised class centres of an ArcFace
	// head; OutputLogits is then s·cos (no margin), whose argmax is the
	// class with the highest cosine.
	OutputCosine = "cos"
)

// VAUnknown is the target value of a frame without valence/arousal label
// (ABAW's marker): a TargetVA row with a value below −1 is unlabelled.
const VAUnknown = -5

// MultiTaskLoss is the Kollias multi-task objective
//
//	L = WVA·L_VA + WExpr·L_EXPR + WAU·L_AU
//	L_VA   = 1 − (CCC_v + CCC_a)/2                       (losses.VALoss)
//	L_EXPR = softmax cross-entropy of "logits", or ArcFace on "cos"
//	L_AU   = binary cross-entropy of the "au" logits, mean over the
//	         labelled (frame, AU) entries
//
// Each task uses only the frames labelled for it: VA rows below −1, label
// −1 and AU entries −1 are masked; a target the batch does not have is a
// task with no labels. A task without labels in the batch (or VA with
// fewer than two labelled frames: CCC needs a spread) contributes exactly
// zero, never NaN. Parts "va", "expr", "au" are logged (unweighted).
type MultiTaskLoss struct {
	WVA, WExpr, WAU float64
	// ArcFace, when set, trains the expression task with the ArcFace loss
	// on OutputCosine instead of cross-entropy on OutputLogits.
	ArcFace *losses.ArcFace
}

// Loss implements Loss.
func (l MultiTaskLoss) Loss(out Outputs, b *Batch) (LossValue, error) {
	var sc mtScope
	defer sc.free()
	parts := map[string]*ts.Tensor{}
	var total *ts.Tensor
	add := func(name string, part *ts.Tensor, w float64) error {
		parts[name] = part
		if part == nil || w == 0 {
			return nil
		}
		wp, err := part.MulScalar(ts.FloatScalar(w), false)
		if err != nil {
			return fmt.Errorf("multi-task loss: %s: %w", name, err)
		}
		if total == nil {
			total = wp
			return nil
		}
		total, err = total.Add(wp, true)
		wp.Drop()
		return err
	}
	fail := func(err error) (LossValue, error) {
		for _, p := range parts {
			if p != nil {
				p.Drop()
			}
		}
		if total != nil {
			total.Drop()
		}
		return LossValue{}, err
	}
	va, err := l.vaLoss(out, b, &sc)
	if err != nil {
		return fail(err)
	}
	if err := add("va", va, l.WVA); err != nil {
		return fail(err)
	}
	ex, err := l.exprLoss(out, b, &sc)
	if err != nil {
		return fail(err)
	}
	if err := add("expr", ex, l.WExpr); err != nil {
		return fail(err)
	}
	au, err := l.auLoss(out, b, &sc)
	if err != nil {
		return fail(err)
	}
	if err := add("au", au, l.WAU); err != nil {
		return fail(err)
	}
	// tasks without labels: a zero part, and a zero total that still
	// belongs to the graph (backward then gives zero gradients)
	anchor, err := anyOutput(out)
	if err != nil {
		return fail(err)
	}
	zero, err := anchor.Sum(gotch.Invalid, false)
	if err == nil {
		zero, err = zero.MulScalar(ts.FloatScalar(0), true)
	}
	if err != nil {
		return fail(fmt.Errorf("multi-task loss: %w", err))
	}
	for _, k := range []string{"va", "expr", "au"} {
		if parts[k] == nil {
			if parts[k], err = zero.ZerosLike(false); err != nil {
				zero.Drop()
				return fail(err)
			}
			if err := parts[k].Detach_(); err != nil {
				zero.Drop()
				return fail(err)
			}
		}
	}
	if total == nil {
		total = zero
	} else {
		zero.Drop()
	}
	return LossValue{Total: total, Parts: parts}, nil
}

// anyOutput returns one output tensor (in a fixed order) to anchor a
// zero loss in the graph.
func anyOutput(out Outputs) (*ts.Tensor, error) {
	for _, k := range []string{OutputVA, OutputLogits, OutputCosine, OutputAU} {
		if t, ok := out[k]; ok && t != nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("multi-task loss: the model has none of the outputs va, logits, cos, au")
}

// matchTime averages per-frame outputs [B,T,k] over T when the target has
// one entry per sample (labels [B], or [B,k]): a frame model scored on
// clip-level labels (a DFEW clip) predicts the clip by its mean frame
// output. Otherwise it returns a new handle to pred. The caller owns the
// result.
func matchTime(pred, tgt *ts.Tensor, tgtIsLabels bool) (*ts.Tensor, error) {
	ps, err := pred.Size()
	if err != nil {
		return nil, err
	}
	ts2, err := tgt.Size()
	if err != nil {
		return nil, err
	}
	want := len(ts2) + 1 // labels [B] go with scores [B,C]
	if !tgtIsLabels {
		want = len(ts2)
	}
	if len(ps) == want+1 && len(ps) >= 3 && ps[0] == ts2[0] {
		return pred.MeanDim([]int64{1}, false, gotch.Invalid, false)
	}
	return pred.ShallowClone()
}

// rows flattens t to [N, k] (k = its last dimension, or 1 for a 1-D
// tensor when k1 is set).
func rows(t *ts.Tensor, sc *mtScope) (*ts.Tensor, int64, error) {
	shape, err := t.Size()
	if err != nil {
		return nil, 0, err
	}
	if len(shape) == 0 {
		return nil, 0, fmt.Errorf("scalar where a batch was expected")
	}
	k := shape[len(shape)-1]
	r, err := sc.t(t.Reshape([]int64{-1, k}, false))
	return r, k, err
}

// vaLoss is L_VA over the labelled frames, nil when fewer than two.
func (l MultiTaskLoss) vaLoss(out Outputs, b *Batch, sc *mtScope) (*ts.Tensor, error) {
	tgt, ok := b.Targets[TargetVA]
	pred, okp := out[OutputVA]
	if !ok || tgt == nil || l.WVA == 0 {
		return nil, nil
	}
	if !okp || pred == nil {
		return nil, fmt.Errorf("multi-task loss: the batch has valence/arousal targets but the model has no %q output", OutputVA)
	}
	pred, err := sc.t(matchTime(pred, tgt, false))
	if err != nil {
		return nil, err
	}
	p, kp, err := rows(pred, sc)
	if err != nil {
		return nil, fmt.Errorf("va loss: output: %w", err)
	}
	y, ky, err := rows(tgt, sc)
	if err != nil {
		return nil, fmt.Errorf("va loss: target: %w", err)
	}
	if kp != 2 || ky != 2 {
		return nil, fmt.Errorf("va loss: output has %d and target %d values per frame, want 2 (valence, arousal)", kp, ky)
	}
	host, err := float64Values(y)
	if err != nil {
		return nil, err
	}
	np, _ := p.Size()
	if int64(len(host)/2) != np[0] {
		return nil, fmt.Errorf("va loss: %d predicted frames for %d target frames", np[0], len(host)/2)
	}
	var idx []int64
	for i := 0; i+1 < len(host); i += 2 {
		if host[i] >= -1 && host[i+1] >= -1 {
			idx = append(idx, int64(i/2))
		}
	}
	if len(idx) < 2 {
		return nil, nil
	}
	it, err := sc.t(indexTensor(idx, p))
	if err != nil {
		return nil, err
	}
	ps, err := sc.t(p.IndexSelect(0, it, false))
	if err != nil {
		return nil, err
	}
	ys, err := sc.t(y.IndexSelect(0, it, false))
	if err != nil {
		return nil, err
	}
	if ys, err = sc.t(ys.Totype(ps.DType(), false)); err != nil {
		return nil, err
	}
	loss, cv, ca, err := losses.VALoss(ps, ys)
	if err != nil {
		return nil, err
	}
	cv.Drop()
	ca.Drop()
	return loss, nil
}

// exprLoss is L_EXPR over the labelled frames, nil when none.
func (l MultiTaskLoss) exprLoss(out Outputs, b *Batch, sc *mtScope) (*ts.Tensor, error) {
	tgt, ok := b.Targets[TargetLabel]
	if !ok || tgt == nil || l.WExpr == 0 {
		return nil, nil
	}
	name := OutputLogits
	if l.ArcFace != nil {
		name = OutputCosine
	}
	pred, okp := out[name]
	if !okp || pred == nil {
		return nil, fmt.Errorf("multi-task loss: the batch has expression labels but the model has no %q output", name)
	}
	pred, err := sc.t(matchTime(pred, tgt, true))
	if err != nil {
		return nil, err
	}
	p, C, err := rows(pred, sc)
	if err != nil {
		return nil, fmt.Errorf("expression loss: output: %w", err)
	}
	y, err := sc.t(tgt.Reshape([]int64{-1}, false))
	if err != nil {
		return nil, err
	}
	labels, err := int64Values(y)
	if err != nil {
		return nil, err
	}
	np, _ := p.Size()
	if int64(len(labels)) != np[0] {
		return nil, fmt.Errorf("expression loss: %d predicted frames for %d labels", np[0], len(labels))
	}
	if err := CheckLabels(y, int(C), frameIDs(b, len(labels))); err != nil {
		return nil, err
	}
	n := 0
	for _, v := range labels {
		if v >= 0 {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	if l.ArcFace != nil {
		return l.ArcFace.Loss(p, y)
	}
	noWeight := ts.NewTensor()
	defer noWeight.Drop()
	loss, err := p.CrossEntropyLoss(y, noWeight, ts.ReductionMean, -1, 0, false)
	if err != nil {
		return nil, fmt.Errorf("expression loss: %w", err)
	}
	return loss, nil
}

// auLoss is L_AU over the labelled (frame, AU) entries, nil when none.
func (l MultiTaskLoss) auLoss(out Outputs, b *Batch, sc *mtScope) (*ts.Tensor, error) {
	tgt, ok := b.Targets[TargetAU]
	if !ok || tgt == nil || l.WAU == 0 {
		return nil, nil
	}
	pred, okp := out[OutputAU]
	if !okp || pred == nil {
		return nil, fmt.Errorf("multi-task loss: the batch has AU targets but the model has no %q output", OutputAU)
	}
	pred, err := sc.t(matchTime(pred, tgt, false))
	if err != nil {
		return nil, err
	}
	p, kp, err := rows(pred, sc)
	if err != nil {
		return nil, fmt.Errorf("au loss: output: %w", err)
	}
	y, ky, err := rows(tgt, sc)
	if err != nil {
		return nil, fmt.Errorf("au loss: target: %w", err)
	}
	if kp != ky {
		return nil, fmt.Errorf("au loss: the model predicts %d AUs, the data set has %d", kp, ky)
	}
	mask, err := sc.t(y.Ge(ts.FloatScalar(0), false))
	if err != nil {
		return nil, err
	}
	if mask, err = sc.t(mask.Totype(p.DType(), false)); err != nil {
		return nil, err
	}
	cnt, err := sc.t(mask.Sum(gotch.Double, false))
	if err != nil {
		return nil, err
	}
	n, err := cnt.Float64Value([]int64{})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	y01, err := sc.t(y.ClampMin(ts.FloatScalar(0), false))
	if err != nil {
		return nil, err
	}
	if y01, err = sc.t(y01.Totype(p.DType(), false)); err != nil {
		return nil, err
	}
	noPos := ts.NewTensor()
	defer noPos.Drop()
	sum, err := sc.t(p.BinaryCrossEntropyWithLogits(y01, mask, noPos, 2 /* sum */, false))
	if err != nil {
		return nil, fmt.Errorf("au loss: %w", err)
	}
	return sum.DivScalar(ts.FloatScalar(n), false)
}

// frameIDs names the rows of a flattened batch for label errors.
func frameIDs(b *Batch, n int) []string {
	if len(b.IDs) == n || len(b.IDs) == 0 {
		return b.IDs
	}
	per := n / len(b.IDs)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s frame %d", b.IDs[min(i/per, len(b.IDs)-1)], i%per+1)
	}
	return out
}

func indexTensor(idx []int64, like *ts.Tensor) (*ts.Tensor, error) {
	dev, err := like.Device()
	if err != nil {
		return nil, err
	}
	return hostTensor(idx, []int64{int64(len(idx))}, dev)
}

// mtScope frees intermediate tensors.
type mtScope struct{ ts []*ts.Tensor }

func (s *mtScope) t(x *ts.Tensor, err error) (*ts.Tensor, error) {
	if err == nil && x != nil {
		s.ts = append(s.ts, x)
	}
	return x, err
}

func (s *mtScope) free() {
	for _, x := range s.ts {
		x.Drop()
	}
	s.ts = nil
}

// MultiTaskEvaluator accumulates the three tasks' statistics over a split
// and reports (keys of Metrics; a task the split has no label for is left
// out):
//
//	ccc_v, ccc_a     CCC of valence and arousal over the labelled frames
//	ccc              (ccc_v + ccc_a)/2, the ABAW VA score
//	acc (= war), uar, f1 (macro)    expression over the labelled frames
//	expr_score       0.67·f1 + 0.33·acc, the ABAW-2020 EXPR score
//	au_f1/<AU>       F1 of each AU (0 when it is never active in either series)
//	au_f1            mean of the per-AU F1
//	au_acc           accuracy over all labelled (frame, AU) entries
//	au_score         0.5·au_f1 + 0.5·au_acc, the ABAW-2020 AU score
//	mtl_score        ccc + f1 + au_f1 (ABAW-2022 multi-task score), with all three
//
// The ABAW-2020 combinations are from the challenge papers as recalled in
// SPEC.md §1.2 (unconfirmed there); the per-task numbers they combine are
// standard. Frames are masked as in MultiTaskLoss; an AU is active when
// its logit is > 0 (probability > 0.5). Statistics are sufficient sums
// (CCC from Σp, Σt, Σp², Σt², Σpt in float64; confusion counts; per-AU
// TP/FP/FN/TN), so the state in a checkpoint stays small.
type MultiTaskEvaluator struct {
	Classes, AUs []string
	// Output names the expression scores (default OutputLogits).
	Output string
	st     mtState
}

type mtState struct {
	Confusion [][]int64    `json:"confusion"`
	VA        [2]momentSum `json:"va"`
	AU        [][4]int64   `json:"au"` // tp, fp, fn, tn per AU
}

// momentSum are the sums CCC needs.
type momentSum struct {
	N                     int64
	SP, ST, SPP, STT, SPT float64
}

// ccc is Lin's CCC from the sums, with metrics.CCC's conventions
// (population moments; 1 when both series are constant and equal).
func (m momentSum) ccc() float64 {
	n := float64(m.N)
	mp, mt := m.SP/n, m.ST/n
	vp := m.SPP/n - mp*mp
	vt := m.STT/n - mt*mt
	cov := m.SPT/n - mp*mt
	den := vp + vt + (mp-mt)*(mp-mt)
	if den <= 0 {
		return 1
	}
	return 2 * cov / den
}

// NewMultiTaskEvaluator returns an evaluator for the given classes and
// AUs.
func NewMultiTaskEvaluator(classes, aus []string) *MultiTaskEvaluator {
	e := &MultiTaskEvaluator{Classes: classes, AUs: aus}
	e.Reset()
	return e
}

// Reset implements Evaluator.
func (e *MultiTaskEvaluator) Reset() {
	e.st = mtState{Confusion: metrics.NewConfusion(max(1, len(e.Classes))).Counts(), AU: make([][4]int64, len(e.AUs))}
}

// Confusion returns the expression confusion matrix so far.
func (e *MultiTaskEvaluator) Confusion() *metrics.Confusion {
	c, err := metrics.ConfusionFromCounts(e.st.Confusion)
	if err != nil {
		return metrics.NewConfusion(max(1, len(e.Classes)))
	}
	return c
}

// Add implements Evaluator.
func (e *MultiTaskEvaluator) Add(out Outputs, b *Batch) error {
	if err := e.addVA(out, b); err != nil {
		return err
	}
	if err := e.addExpr(out, b); err != nil {
		return err
	}
	return e.addAU(out, b)
}

// hostPair copies the output and target of one task to the host as rows
// of their last dimension (k values per frame), after matchTime; ok is
// false when the batch or the model lacks them.
func hostPair(out Outputs, b *Batch, output, target string) (p, y []float64, kp, ky int, ok bool, err error) {
	tgt := b.Targets[target]
	pred := out[output]
	if tgt == nil || pred == nil {
		return nil, nil, 0, 0, false, nil
	}
	pred, err = matchTime(pred, tgt, false)
	if err != nil {
		return nil, nil, 0, 0, false, err
	}
	defer pred.Drop()
	rowsOf := func(t *ts.Tensor) ([]float64, int, error) {
		shape, err := t.Size()
		if err != nil || len(shape) == 0 {
			return nil, 0, fmt.Errorf("evaluate: bad tensor shape %v: %v", shape, err)
		}
		v, err := float64Values(t)
		return v, int(shape[len(shape)-1]), err
	}
	if p, kp, err = rowsOf(pred); err != nil {
		return nil, nil, 0, 0, false, err
	}
	if y, ky, err = rowsOf(tgt); err != nil {
		return nil, nil, 0, 0, false, err
	}
	return p, y, kp, ky, true, nil
}

func (e *MultiTaskEvaluator) addVA(out Outputs, b *Batch) error {
	p, y, kp, ky, ok, err := hostPair(out, b, OutputVA, TargetVA)
	if !ok || err != nil {
		return err
	}
	if kp != 2 || ky != 2 || len(p) != len(y) {
		return fmt.Errorf("evaluate: va output %d values for %d targets (want 2 per frame)", len(p), len(y))
	}
	for i := 0; i+1 < len(y); i += 2 {
		if y[i] < -1 || y[i+1] < -1 {
			continue
		}
		for j := range 2 {
			s := &e.st.VA[j]
			s.N++
			s.SP += p[i+j]
			s.ST += y[i+j]
			s.SPP += p[i+j] * p[i+j]
			s.STT += y[i+j] * y[i+j]
			s.SPT += p[i+j] * y[i+j]
		}
	}
	return nil
}

func (e *MultiTaskEvaluator) addExpr(out Outputs, b *Batch) error {
	tgt, ok := b.Targets[TargetLabel]
	name := e.Output
	if name == "" {
		name = OutputLogits
	}
	pred, okp := out[name]
	if !ok || tgt == nil || !okp || pred == nil {
		return nil
	}
	pred, err := matchTime(pred, tgt, true)
	if err != nil {
		return err
	}
	defer pred.Drop()
	preds, trues, err := argmaxAndLabels(pred, tgt)
	if err != nil {
		return err
	}
	C := len(e.st.Confusion)
	for i, y := range trues {
		if y == -1 {
			continue
		}
		if y < 0 || int(y) >= C || preds[i] < 0 || int(preds[i]) >= C {
			ids := frameIDs(b, len(trues))
			who := fmt.Sprintf("frame %d of the batch", i)
			if i < len(ids) {
				who = ids[i]
			}
			return fmt.Errorf("%s: label %d / prediction %d outside the %d classes", who, y, preds[i], C)
		}
		e.st.Confusion[y][preds[i]]++
	}
	return nil
}

func (e *MultiTaskEvaluator) addAU(out Outputs, b *Batch) error {
	p, y, kp, ky, ok, err := hostPair(out, b, OutputAU, TargetAU)
	if !ok || err != nil {
		return err
	}
	if kp != ky || kp != len(e.st.AU) || len(p) != len(y) {
		return fmt.Errorf("evaluate: %d AU outputs and %d AU targets per frame, the evaluator has %d AUs", kp, ky, len(e.st.AU))
	}
	for i := range y {
		if y[i] < 0 {
			continue
		}
		a := i % ky
		on, want := p[i] > 0, y[i] > 0.5
		switch {
		case on && want:
			e.st.AU[a][0]++
		case on:
			e.st.AU[a][1]++
		case want:
			e.st.AU[a][2]++
		default:
			e.st.AU[a][3]++
		}
	}
	return nil
}

// Metrics implements Evaluator (see the type comment for the keys).
func (e *MultiTaskEvaluator) Metrics() map[string]float64 {
	m := map[string]float64{}
	haveVA := e.st.VA[0].N > 0
	if haveVA {
		m["ccc_v"] = e.st.VA[0].ccc()
		m["ccc_a"] = e.st.VA[1].ccc()
		m["ccc"] = (m["ccc_v"] + m["ccc_a"]) / 2
	}
	c := e.Confusion()
	haveEx := c.Total() > 0
	if haveEx {
		m["acc"] = c.Accuracy()
		m["war"] = c.WAR()
		m["uar"] = c.UAR()
		m["f1"] = c.MacroF1()
		m["expr_score"] = 0.67*m["f1"] + 0.33*m["acc"]
	}
	var f1Sum float64
	var right, all int64
	perAU := make([]float64, len(e.st.AU))
	for a, s := range e.st.AU {
		all += s[0] + s[1] + s[2] + s[3]
		right += s[0] + s[3]
		if den := 2*s[0] + s[1] + s[2]; den > 0 {
			perAU[a] = float64(2*s[0]) / float64(den)
		}
		f1Sum += perAU[a]
	}
	haveAU := all > 0
	if haveAU {
		for a, f1 := range perAU {
			name := fmt.Sprint(a)
			if a < len(e.AUs) {
				name = e.AUs[a]
			}
			m["au_f1/"+name] = f1
		}
		m["au_f1"] = f1Sum / float64(len(perAU))
		m["au_acc"] = float64(right) / float64(all)
		m["au_score"] = 0.5*m["au_f1"] + 0.5*m["au_acc"]
	}
	if haveVA && haveEx && haveAU {
		m["mtl_score"] = m["ccc"] + m["f1"] + m["au_f1"]
	}
	for k, v := range m {
		if math.IsNaN(v) {
			delete(m, k)
		}
	}
	return m
}

// State implements Evaluator.
func (e *MultiTaskEvaluator) State() ([]byte, error) { return json.Marshal(e.st) }

// SetState implements Evaluator.
func (e *MultiTaskEvaluator) SetState(b []byte) error {
	var st mtState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("multi-task evaluator state: %w", err)
	}
	if len(st.Confusion) != len(e.st.Confusion) || len(st.AU) != len(e.st.AU) {
		return fmt.Errorf("multi-task evaluator state has %d classes and %d AUs, want %d and %d", len(st.Confusion), len(st.AU), len(e.st.Confusion), len(e.st.AU))
	}
	e.st = st
	return nil
}
