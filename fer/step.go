package fer

import (
	"fmt"
	"math"
	"sort"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/fer-research/fer/fer/optim"
	"github.com/sugarme/gotch/ts"
)

// StepContext is what a step function works with.
type StepContext struct {
	Model Model
	Loss  Loss
	Opt   *optim.Optimizer
	// SAM is non-nil when the config asks for sharpness-aware
	// minimisation (optimizer.sam_rho > 0).
	SAM *optim.SAM
	// ClipGradNorm > 0 clips the gradients' global L2 norm before the
	// update.
	ClipGradNorm float64
	// Epoch (1-based), Batch (0-based within the epoch) and Step (1-based
	// number of this optimisation step), for messages.
	Epoch, Batch, Step int
	// Sync averages the gradients over the ranks of a data-parallel run
	// (nil in one process); Backward uses it.
	Sync GradSync
}

// Backward back-propagates loss and, in a data-parallel run, returns
// when every gradient holds its average over the ranks. A Stepper calls
// it for every backward pass instead of loss.Backward().
func (sc *StepContext) Backward(loss *ts.Tensor) error {
	if sc.Sync != nil {
		if err := sc.Sync.BeforeBackward(loss); err != nil {
			return err
		}
	}
	if err := loss.Backward(); err != nil {
		return fmt.Errorf("backward: %s", torchx.Clean(err.Error()))
	}
	if sc.Sync != nil {
		return sc.Sync.AfterBackward()
	}
	return nil
}

// StepResult is what one training step reports.
type StepResult struct {
	// Loss and Parts are the values of the (first) forward pass.
	Loss  float64
	Parts map[string]float64
	// Outputs of the (first) forward pass, for the training metrics; the
	// trainer frees them.
	Outputs Outputs
	// GradNorm is the gradients' global L2 norm before clipping.
	GradNorm float64
}

// Stepper is implemented by a model family whose training step is not
// forward → loss → backward → clip → update (two optimisers, several
// passes, a contrastive queue, ...). The trainer calls it once per batch;
// it must zero the gradients it uses, back-propagate with sc.Backward
// (which averages gradients in data-parallel runs), update the weights
// through sc.Opt,
// and return a *NonFiniteError (see CheckFinite) instead of updating when
// a loss is NaN or infinite. DefaultStep and SAMStep are the built-in
// steps, usable as building blocks.
type Stepper interface {
	Step(sc *StepContext, b *Batch) (StepResult, error)
}

// StepFunc adapts a function to Stepper.
type StepFunc func(sc *StepContext, b *Batch) (StepResult, error)

// Step implements Stepper.
func (f StepFunc) Step(sc *StepContext, b *Batch) (StepResult, error) { return f(sc, b) }

// NonFiniteError reports a NaN or infinite loss or gradient. The step that
// found it did not update the weights.
type NonFiniteError struct {
	Epoch, Batch, Step int
	// What is "loss", "loss/<part>" or "gradient norm".
	What  string
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("%s is %v at step %d (epoch %d, batch %d)", e.What, e.Value, e.Step, e.Epoch, e.Batch+1)
}

// CheckFinite returns a *NonFiniteError for the first non-finite value
// among the loss and its parts.
func CheckFinite(sc *StepContext, loss float64, parts map[string]float64) error {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return &NonFiniteError{Epoch: sc.Epoch, Batch: sc.Batch, Step: sc.Step, What: "loss", Value: loss}
	}
	for _, k := range sortedKeys(parts) {
		if v := parts[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return &NonFiniteError{Epoch: sc.Epoch, Batch: sc.Batch, Step: sc.Step, What: "loss/" + k, Value: v}
		}
	}
	return nil
}

// ForwardLoss runs the model in training mode and the loss on a batch and
// reads the loss values. On success the caller owns out and lv (lv.Total
// is still attached to the graph for Backward).
func ForwardLoss(sc *StepContext, b *Batch) (out Outputs, lv LossValue, loss float64, parts map[string]float64, err error) {
	out, err = sc.Model.Forward(b, true)
	if err != nil {
		return nil, LossValue{}, 0, nil, fmt.Errorf("forward: %w", err)
	}
	lv, err = sc.Loss.Loss(out, b)
	if err != nil {
		out.Drop()
		return nil, LossValue{}, 0, nil, fmt.Errorf("loss: %w", err)
	}
	if lv.Total == nil {
		out.Drop()
		return nil, LossValue{}, 0, nil, fmt.Errorf("loss: no total")
	}
	loss, err = torchx.Item(torchx.Handle(lv.Total))
	if err != nil {
		out.Drop()
		lv.Drop()
		return nil, LossValue{}, 0, nil, fmt.Errorf("loss: %w", err)
	}
	if len(lv.Parts) > 0 {
		parts = make(map[string]float64, len(lv.Parts))
		for k, p := range lv.Parts {
			v, err := torchx.Item(torchx.Handle(p))
			if err != nil {
				out.Drop()
				lv.Drop()
				return nil, LossValue{}, 0, nil, fmt.Errorf("loss %s: %w", k, err)
			}
			parts[k] = v
		}
	}
	return out, lv, loss, parts, nil
}

// backwardChecked back-propagates lv.Total and returns the global gradient
// norm (clipping it when asked), failing with a *NonFiniteError when the
// norm is not finite.
func backwardChecked(sc *StepContext, lv LossValue) (float64, error) {
	if err := sc.Backward(lv.Total); err != nil {
		return 0, err
	}
	var norm float64
	var err error
	if sc.ClipGradNorm > 0 {
		norm, err = sc.Opt.ClipGradNorm(sc.ClipGradNorm)
	} else {
		norm, err = sc.Opt.GradNorm()
	}
	if err != nil {
		return 0, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, &NonFiniteError{Epoch: sc.Epoch, Batch: sc.Batch, Step: sc.Step, What: "gradient norm", Value: norm}
	}
	return norm, nil
}

// DefaultStep is zero-grad → forward → loss → backward → clip → update.
// The gradient norm is computed every step (it is cheap next to the
// backward pass) so a NaN gradient stops the run before it reaches the
// weights.
func DefaultStep(sc *StepContext, b *Batch) (StepResult, error) {
	if err := sc.Opt.ZeroGrad(); err != nil {
		return StepResult{}, err
	}
	out, lv, loss, parts, err := ForwardLoss(sc, b)
	if err != nil {
		return StepResult{}, err
	}
	defer lv.Drop()
	if err := CheckFinite(sc, loss, parts); err != nil {
		out.Drop()
		return StepResult{}, err
	}
	norm, err := backwardChecked(sc, lv)
	if err != nil {
		out.Drop()
		return StepResult{}, err
	}
	if err := sc.Opt.Step(); err != nil {
		out.Drop()
		return StepResult{}, err
	}
	return StepResult{Loss: loss, Parts: parts, Outputs: out, GradNorm: norm}, nil
}

// SAMStep is the two-pass SAM step (first_step / second_step of the
// sam.py QCS and RMFER use): gradient at w, move to w + e(w), gradient
// there, back to w, base update with the second gradient.
func SAMStep(sc *StepContext, b *Batch) (StepResult, error) {
	if sc.SAM == nil {
		return StepResult{}, fmt.Errorf("SAM step without a SAM configuration (optimizer.sam_rho)")
	}
	if err := sc.Opt.ZeroGrad(); err != nil {
		return StepResult{}, err
	}
	out, lv, loss, parts, err := ForwardLoss(sc, b)
	if err != nil {
		return StepResult{}, err
	}
	fail := func(err error) (StepResult, error) {
		out.Drop()
		return StepResult{}, err
	}
	if err := CheckFinite(sc, loss, parts); err != nil {
		lv.Drop()
		return fail(err)
	}
	norm, err := backwardChecked(sc, lv)
	lv.Drop()
	if err != nil {
		return fail(err)
	}
	if err := sc.SAM.Perturb(sc.Opt); err != nil {
		return fail(err)
	}
	restored := false
	restore := func() error {
		if restored {
			return nil
		}
		restored = true
		return sc.SAM.Restore(sc.Opt)
	}
	defer restore()
	if err := sc.Opt.ZeroGrad(); err != nil {
		return fail(err)
	}
	out2, lv2, loss2, parts2, err := ForwardLoss(sc, b)
	if err != nil {
		return fail(err)
	}
	out2.Drop()
	if err := CheckFinite(sc, loss2, parts2); err != nil {
		lv2.Drop()
		if nf, ok := err.(*NonFiniteError); ok {
			nf.What = "SAM second-pass " + nf.What
		}
		return fail(err)
	}
	if _, err := backwardChecked(sc, lv2); err != nil {
		lv2.Drop()
		return fail(err)
	}
	lv2.Drop()
	if err := restore(); err != nil {
		return fail(err)
	}
	if err := sc.Opt.Step(); err != nil {
		return fail(err)
	}
	return StepResult{Loss: loss, Parts: parts, Outputs: out, GradNorm: norm}, nil
}

// sumParts adds a step's parts into running sums weighted by n.
func sumParts(sums map[string]float64, parts map[string]float64, n int) map[string]float64 {
	if len(parts) == 0 {
		return sums
	}
	if sums == nil {
		sums = map[string]float64{}
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sums[k] += parts[k] * float64(n)
	}
	return sums
}
