package fer

import (
	"fmt"
	"math"
	"runtime"

	"github.com/fer-research/fer/fer/internal/torchx"
)

// Scores are a model's outputs for a batch of inputs, on the host.
type Scores struct {
	// Probs are the class probabilities (softmax of the logits), one row
	// per input; Top the argmax of each row.
	Probs [][]float64
	Top   []int
	// VA are valence and arousal as the model outputs them; nil when the
	// model has no "va" output.
	VA [][]float64
	// AU are action-unit probabilities (sigmoid of the "au" logits); nil
	// when the model has no "au" output.
	AU [][]float64
}

// Score runs the model (eval mode, no gradients) on n inputs already
// preprocessed into x (n × InputShape values, concatenated) and returns
// the class probabilities, plus valence/arousal and AU probabilities when
// the model has those outputs. It runs on the calling goroutine's OS
// thread (locked for the call).
func (r *Run) Score(x []float32, n int) (*Scores, error) {
	if len(r.Data.Classes) == 0 {
		return nil, fmt.Errorf("dataset %s has no classes to predict", r.Cfg.Data.Name)
	}
	per := 1
	for _, d := range r.Data.InputShape {
		per *= int(d)
	}
	if n < 1 || len(x) != n*per {
		return nil, fmt.Errorf("score: %d values for %d inputs of shape %v", len(x), n, r.Data.InputShape)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	shape := append([]int64{int64(n)}, r.Data.InputShape...)
	b, err := NewBatch(r.Device, nil, [][]float32{x}, [][]int64{shape}, nil)
	if err != nil {
		return nil, err
	}
	defer b.Drop()
	var probs, va, au []float64
	err = torchx.NoGrad(func() error {
		o, err := r.Model.Forward(b, false)
		if err != nil {
			return err
		}
		defer o.Drop()
		logits, err := o.Get(OutputLogits)
		if err != nil {
			return err
		}
		sm, err := logits.Softmax(-1, logits.DType(), false)
		if err != nil {
			return err
		}
		defer sm.Drop()
		if probs, err = float64Values(sm); err != nil {
			return err
		}
		if t, ok := o[OutputVA]; ok && t != nil {
			if va, err = float64Values(t); err != nil {
				return err
			}
		}
		if t, ok := o[OutputAU]; ok && t != nil {
			if au, err = float64Values(t); err != nil {
				return err
			}
			for i, v := range au {
				au[i] = 1 / (1 + math.Exp(-v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c := len(probs) / n
	if c != len(r.Data.Classes) || len(probs) != n*c {
		return nil, fmt.Errorf("model gives %d scores per input, the data set has %d classes", c, len(r.Data.Classes))
	}
	s := &Scores{Probs: splitRows(probs, n), Top: make([]int, n)}
	for i, p := range s.Probs {
		for k := range p {
			if p[k] > p[s.Top[i]] {
				s.Top[i] = k
			}
		}
	}
	if va != nil {
		if len(va) != 2*n {
			return nil, fmt.Errorf("model's %q output has %d values for %d inputs, want 2 each", OutputVA, len(va), n)
		}
		s.VA = splitRows(va, n)
	}
	if au != nil {
		if len(au)%n != 0 {
			return nil, fmt.Errorf("model's %q output has %d values for %d inputs", OutputAU, len(au), n)
		}
		s.AU = splitRows(au, n)
	}
	return s, nil
}

// splitRows splits v into n equal rows.
func splitRows(v []float64, n int) [][]float64 {
	out := make([][]float64, n)
	c := len(v) / n
	for i := range out {
		out[i] = v[i*c : (i+1)*c : (i+1)*c]
	}
	return out
}
