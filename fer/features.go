package fer

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/fer-research/fer/fer/featfile"
	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// featuresOutput is the Outputs name of a model's penultimate features
// [B, D] (see Outputs).
const featuresOutput = "features"

// FeatureNet is implemented by networks that can return their penultimate
// feature vector (the input of the classifier), e.g. models.SmallCNN.
// ExtractFeatures uses it for a Classifier whose Net implements it, when
// the model's outputs carry no "features".
type FeatureNet interface {
	Features(x *ts.Tensor, train bool) *ts.Tensor
}

// ExtractFeatures runs m over every sample of ds in order (evaluation mode,
// no gradients) and collects, per sample, the penultimate features, the
// label (target "label", -1 when the data set has none), the predicted
// class and the class probabilities (softmax of "logits"), for
// `fercli eval --dump-features` (save the result with featfile.Save) and
// the t-SNE / MDS plots.
//
// The features are the model's "features" output when it has one;
// otherwise m must be a *Classifier whose Net implements FeatureNet (its
// features then take a second forward pass). Features of more than two
// dimensions are flattened per sample. classes is stored in the result
// (and checks the logits' width when set).
func ExtractFeatures(ctx context.Context, m Model, ds Dataset, classes []string, batchSize int, dev gotch.Device) (_ *featfile.Features, err error) {
	if ds == nil || ds.Len() == 0 {
		return nil, errors.New("extract features: empty split")
	}
	if batchSize < 1 {
		return nil, fmt.Errorf("extract features: batch size %d, want >= 1", batchSize)
	}
	defer CatchTorch(&err, "extract features")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	order := make([]int, ds.Len())
	for i := range order {
		order[i] = i
	}
	f := &featfile.Features{Classes: append([]string(nil), classes...)}
	rng := NewRand(0, 0) // evaluation batches are not augmented
	err = torchx.NoGrad(func() error {
		for bi, idx := range Chunks(order, batchSize, false) {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := ds.Batch(idx, false, rng, dev)
			if err != nil {
				return fmt.Errorf("batch %d: %w", bi+1, err)
			}
			err = extractBatch(m, b, f)
			b.Drop()
			if err != nil {
				return fmt.Errorf("batch %d: %w", bi+1, err)
			}
		}
		return nil
	})
	runtime.KeepAlive(m)
	if err != nil {
		return nil, fmt.Errorf("extract features: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("extract features: %w", err)
	}
	return f, nil
}

// extractBatch appends one batch's rows to f.
func extractBatch(m Model, b *Batch, f *featfile.Features) error {
	out, err := m.Forward(b, false)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	defer out.Drop()
	logits, err := out.Get(OutputLogits)
	if err != nil {
		return err
	}
	feats, ok := out[featuresOutput]
	if !ok || feats == nil {
		c, isCls := m.(*Classifier)
		var fn FeatureNet
		if isCls {
			fn, _ = c.Net.(FeatureNet)
		}
		if fn == nil {
			return fmt.Errorf("model %T has no %q output and its network does not implement fer.FeatureNet: it cannot give per-sample features", netOf(m), featuresOutput)
		}
		x, err := b.Input(0)
		if err != nil {
			return err
		}
		feats = fn.Features(x, false)
		defer feats.Drop()
	}
	fs, err := feats.Size()
	if err != nil {
		return err
	}
	if len(fs) < 2 || fs[0] != int64(b.Size) {
		return fmt.Errorf("features of shape %v for a batch of %d", fs, b.Size)
	}
	fv, err := float64Values(feats)
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	ls, err := logits.Size()
	if err != nil {
		return err
	}
	if len(ls) != 2 || ls[0] != int64(b.Size) {
		return fmt.Errorf("logits of shape %v for a batch of %d", ls, b.Size)
	}
	if n := len(f.Classes); n > 0 && ls[1] != int64(n) {
		return fmt.Errorf("the model gives %d class scores for %d classes", ls[1], n)
	}
	sm, err := logits.Softmax(-1, gotch.Float, false)
	if err != nil {
		return err
	}
	pv, err := float64Values(sm)
	sm.Drop()
	if err != nil {
		return fmt.Errorf("probabilities: %w", err)
	}
	labels := make([]int64, b.Size)
	for i := range labels {
		labels[i] = -1
	}
	if lt, ok := b.Targets[TargetLabel]; ok && lt != nil {
		if labels, err = int64Values(lt); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		if len(labels) != b.Size {
			return fmt.Errorf("%d labels for a batch of %d", len(labels), b.Size)
		}
	}
	d, c := len(fv)/b.Size, int(ls[1])
	for i := 0; i < b.Size; i++ {
		row := make([]float32, d)
		for j := range row {
			row[j] = float32(fv[i*d+j])
		}
		prob := make([]float32, c)
		top := 0
		for k := range prob {
			prob[k] = float32(pv[i*c+k])
			if pv[i*c+k] > pv[i*c+top] {
				top = k
			}
		}
		f.X = append(f.X, row)
		f.Probs = append(f.Probs, prob)
		f.Preds = append(f.Preds, top)
		f.Labels = append(f.Labels, int(labels[i]))
	}
	return nil
}

// netOf names the network inside a Classifier for messages.
func netOf(m Model) any {
	if c, ok := m.(*Classifier); ok {
		return c.Net
	}
	return m
}
