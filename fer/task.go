package fer

import (
	"encoding/json"
	"fmt"

	"github.com/fer-research/fer/fer/metrics"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Loss maps a model's outputs and a batch's targets to the scalar the
// optimiser minimises, plus named sub-losses for the log.
type Loss interface {
	Loss(out Outputs, b *Batch) (LossValue, error)
}

// LossValue is a loss for one batch.
type LossValue struct {
	// Total is the scalar to minimise (part of the autograd graph).
	Total *ts.Tensor
	// Parts are named scalar terms (e.g. "ce", "ccc_v", "au_bce") logged
	// as "loss/<name>"; may be nil. The trainer frees them.
	Parts map[string]*ts.Tensor
}

// Drop frees Total and Parts.
func (l LossValue) Drop() {
	if l.Total != nil {
		l.Total.Drop()
	}
	for _, p := range l.Parts {
		if p != nil {
			p.Drop()
		}
	}
}

// Evaluator accumulates predictions over a split and summarises them.
// The trainer uses one on the training outputs (train accuracy) and one
// on each evaluation pass.
type Evaluator interface {
	Reset()
	// Add accumulates one batch; a target it cannot use (a label out of
	// range) is an error.
	Add(out Outputs, b *Batch) error
	// Metrics are the summary numbers, e.g. {"acc","war","uar","f1"}.
	Metrics() map[string]float64
	// State and SetState carry the accumulated statistics through a
	// checkpoint, so a run resumed mid-epoch reports the same epoch
	// metrics as one that was never stopped.
	State() ([]byte, error)
	SetState([]byte) error
}

// CrossEntropy is softmax cross-entropy between an output's class scores
// and an int64 label target (torch.nn.CrossEntropyLoss, mean over the
// labelled samples; label -1 is ignored). Labels outside [-1, C) are an
// error naming the batch position instead of a libtorch abort.
type CrossEntropy struct {
	Output    string  // default OutputLogits
	Target    string  // default TargetLabel
	Smoothing float64 // label smoothing in [0,1)
}

// Loss implements Loss.
func (c CrossEntropy) Loss(out Outputs, b *Batch) (LossValue, error) {
	on, tn := c.Output, c.Target
	if on == "" {
		on = OutputLogits
	}
	if tn == "" {
		tn = TargetLabel
	}
	logits, err := out.Get(on)
	if err != nil {
		return LossValue{}, err
	}
	labels, err := b.Target(tn)
	if err != nil {
		return LossValue{}, err
	}
	shape, err := logits.Size()
	if err != nil {
		return LossValue{}, err
	}
	if len(shape) != 2 {
		return LossValue{}, fmt.Errorf("cross-entropy: %s has shape %v, want [batch, classes]", on, shape)
	}
	if err := CheckLabels(labels, int(shape[1]), b.IDs); err != nil {
		return LossValue{}, err
	}
	loss, err := logits.CrossEntropyLoss(labels, ts.None, ts.ReductionMean, -1, c.Smoothing, false)
	if err != nil {
		return LossValue{}, fmt.Errorf("cross-entropy: %w", err)
	}
	return LossValue{Total: loss}, nil
}

// CheckLabels verifies that every label is -1 (unlabelled) or in
// [0, numClasses), naming the first bad sample.
func CheckLabels(labels *ts.Tensor, numClasses int, ids []string) error {
	vals, err := int64Values(labels)
	if err != nil {
		return err
	}
	for i, v := range vals {
		if v < -1 || v >= int64(numClasses) {
			who := fmt.Sprintf("sample %d of the batch", i)
			if i < len(ids) && ids[i] != "" {
				who = ids[i]
			}
			return fmt.Errorf("label %d of %s is out of range: the model has %d classes (0..%d, -1 = unlabelled); check the label file or model.options num_classes", v, who, numClasses, numClasses-1)
		}
	}
	return nil
}

// int64Values copies an integer tensor to the host.
func int64Values(t *ts.Tensor) ([]int64, error) {
	if t.DType() != gotch.Int64 {
		return nil, fmt.Errorf("labels have dtype %v, want int64", t.DType())
	}
	cpu, err := t.To(gotch.CPU, false)
	if err != nil {
		return nil, err
	}
	defer cpu.Drop()
	n := cpu.Numel()
	out := make([]int64, n)
	if n > 0 {
		if err := cpu.CopyData(out, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ClassificationEvaluator fills a confusion matrix from an output's
// argmax and the label target (label -1 skipped) and reports acc (= war,
// overall accuracy), uar (mean per-class recall) and f1 (macro-F1).
type ClassificationEvaluator struct {
	Output, Target string // defaults OutputLogits, TargetLabel
	C              *metrics.Confusion
}

// NewClassificationEvaluator returns an evaluator for numClasses classes.
func NewClassificationEvaluator(numClasses int) *ClassificationEvaluator {
	return &ClassificationEvaluator{C: metrics.NewConfusion(numClasses)}
}

// Reset implements Evaluator.
func (e *ClassificationEvaluator) Reset() { e.C.Reset() }

// Confusion returns the confusion matrix (the interface `fercli eval`
// prints any evaluator's matrix through).
func (e *ClassificationEvaluator) Confusion() *metrics.Confusion { return e.C }

// Add implements Evaluator.
func (e *ClassificationEvaluator) Add(out Outputs, b *Batch) error {
	on, tn := e.Output, e.Target
	if on == "" {
		on = OutputLogits
	}
	if tn == "" {
		tn = TargetLabel
	}
	logits, err := out.Get(on)
	if err != nil {
		return err
	}
	labels, err := b.Target(tn)
	if err != nil {
		return err
	}
	preds, trues, err := argmaxAndLabels(logits, labels)
	if err != nil {
		return err
	}
	for i := range trues {
		if trues[i] == -1 {
			continue
		}
		if err := e.C.Add(int(trues[i]), int(preds[i])); err != nil {
			if i < len(b.IDs) && b.IDs[i] != "" {
				return fmt.Errorf("%s: %w", b.IDs[i], err)
			}
			return fmt.Errorf("sample %d of the batch: %w", i, err)
		}
	}
	return nil
}

// argmaxAndLabels copies the argmax over the last dimension of scores and
// the labels to the host, checking that they pair up.
func argmaxAndLabels(scores, labels *ts.Tensor) (preds, trues []int64, err error) {
	am, err := scores.Argmax([]int64{-1}, false, false)
	if err != nil {
		return nil, nil, err
	}
	preds, err = int64Values(am)
	am.Drop()
	if err != nil {
		return nil, nil, err
	}
	if trues, err = int64Values(labels); err != nil {
		return nil, nil, err
	}
	if len(preds) != len(trues) {
		return nil, nil, fmt.Errorf("evaluate: %d predictions for %d labels", len(preds), len(trues))
	}
	return preds, trues, nil
}

// Metrics implements Evaluator.
func (e *ClassificationEvaluator) Metrics() map[string]float64 {
	return map[string]float64{
		"acc": e.C.Accuracy(),
		"war": e.C.WAR(),
		"uar": e.C.UAR(),
		"f1":  e.C.MacroF1(),
	}
}

// State implements Evaluator.
func (e *ClassificationEvaluator) State() ([]byte, error) { return json.Marshal(e.C.Counts()) }

// SetState implements Evaluator.
func (e *ClassificationEvaluator) SetState(b []byte) error {
	var counts [][]int64
	if err := json.Unmarshal(b, &counts); err != nil {
		return fmt.Errorf("evaluator state: %w", err)
	}
	c, err := metrics.ConfusionFromCounts(counts)
	if err != nil {
		return err
	}
	if c.NumClasses() != e.C.NumClasses() {
		return fmt.Errorf("evaluator state has %d classes, want %d", c.NumClasses(), e.C.NumClasses())
	}
	e.C = c
	return nil
}
