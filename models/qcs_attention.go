package models

// ----------------------------------------------------------------------
// LOCAL STAND-IN, DELETE AT MERGE. The perf branch adds models/attention.go
// with the shared ScaledDotProductAttention (libtorch's SDPA on >= 2.0,
// matmul + softmax on 1.13) with exactly this signature; once it is in,
// delete this file and QCS calls the shared function unchanged.
// ----------------------------------------------------------------------

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ScaledDotProductAttention is softmax(q·kᵀ·d^−½)·v on [B, H, N, d]
// tensors, with dropout on the attention probabilities in training. The
// scale multiplies the product (not q), as vit_model_7cls.py's
// Attention.forward does: (q @ k.transpose(-2, -1)) * self.scale.
func ScaledDotProductAttention(q, k, v *ts.Tensor, dropoutP float64, train bool) (*ts.Tensor, error) {
	sc := &sttScope{}
	defer sc.free()
	shape, err := q.Size()
	if err != nil {
		return nil, err
	}
	if len(shape) != 4 {
		return nil, fmt.Errorf("attention: q has shape %v, want [B, H, N, d]", shape)
	}
	kt, err := sc.t(k.Transpose(-2, -1, false))
	if err != nil {
		return nil, err
	}
	scores, err := sc.t(q.Matmul(kt, false))
	if err != nil {
		return nil, fmt.Errorf("attention q·kᵀ: %w", err)
	}
	if scores, err = sc.t(scores.MulScalar(ts.FloatScalar(math.Pow(float64(shape[3]), -0.5)), false)); err != nil {
		return nil, err
	}
	p, err := sc.t(scores.Softmax(-1, gotch.Invalid, false))
	if err != nil {
		return nil, fmt.Errorf("attention softmax: %w", err)
	}
	if p, err = sc.t(sttDropout(p, dropoutP, train)); err != nil {
		return nil, err
	}
	out, err := p.Matmul(v, false)
	if err != nil {
		return nil, fmt.Errorf("attention probabilities·v: %w", err)
	}
	return out, nil
}
