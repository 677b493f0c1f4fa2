package models

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// AttentionKernel selects how ScaledDotProductAttention computes.
type AttentionKernel string

const (
	// AttentionAuto uses libtorch's fused scaled_dot_product_attention
	// where this libtorch has it (>= 2.0: flash / memory-efficient kernels
	// on CUDA, a fused kernel on CPU) and the matmul path otherwise. The
	// default.
	AttentionAuto AttentionKernel = "auto"
	// AttentionMatmul is softmax(q·kᵀ/√D)·v spelled out with matmul and
	// softmax: the only kernel on libtorch 1.13, bit-identical to the
	// PyTorch reference modules written the same way (timm's Attention).
	AttentionMatmul AttentionKernel = "matmul"
	// AttentionSDPA requires the fused kernel and fails where it is
	// missing (for measuring it).
	AttentionSDPA AttentionKernel = "sdpa"
)

// sdpaFunction is fer's wrapper of torch::scaled_dot_product_attention
// (internal/gotchpatch: gotch's own cannot pass "no mask");
// setup-gotch.sh stubs it on libtorch < 2.0, where it does not exist.
const sdpaFunction = "fer_sdpa"

var (
	attnMu     sync.Mutex
	attnKernel = AttentionAuto
	sdpaOnce   sync.Once
	sdpaErr    error // why the fused kernel is not usable; nil if it is
)

// ParseAttentionKernel reads "auto", "matmul" or "sdpa".
func ParseAttentionKernel(s string) (AttentionKernel, error) {
	k := AttentionKernel(strings.ToLower(strings.TrimSpace(s)))
	if k == "" {
		return AttentionAuto, nil
	}
	if !slices.Contains([]AttentionKernel{AttentionAuto, AttentionMatmul, AttentionSDPA}, k) {
		return "", fmt.Errorf("attention kernel %q: want auto, matmul or sdpa", s)
	}
	return k, nil
}

// SetAttentionKernel chooses the kernel of every later
// ScaledDotProductAttention call in this process (fercli bench
// --attention). AttentionSDPA fails here when the fused kernel is not
// usable, with the reason.
func SetAttentionKernel(k AttentionKernel) error {
	if _, err := ParseAttentionKernel(string(k)); err != nil {
		return err
	}
	if k == AttentionSDPA {
		if err := SDPAUsable(); err != nil {
			return err
		}
	}
	attnMu.Lock()
	attnKernel = k
	attnMu.Unlock()
	return nil
}

// CurrentAttentionKernel is the kernel ScaledDotProductAttention runs
// now: AttentionMatmul or AttentionSDPA ("auto" resolved).
func CurrentAttentionKernel() AttentionKernel {
	attnMu.Lock()
	k := attnKernel
	attnMu.Unlock()
	if k == AttentionAuto {
		if SDPAUsable() == nil {
			return AttentionSDPA
		}
		return AttentionMatmul
	}
	return k
}

// SDPAUsable reports whether libtorch's scaled_dot_product_attention can
// run here (nil) or why not: stubbed on this libtorch (1.13 has only the
// private _scaled_dot_product_attention with another signature), or
// failing a one-time probe on a tiny CPU input.
func SDPAUsable() error {
	sdpaOnce.Do(func() { sdpaErr = probeSDPA(fer.StubbedFunctions()) })
	return sdpaErr
}

// probeSDPA decides SDPAUsable from the stub list and, when the function
// is not stubbed, one call on [1, 1, 2, 4] inputs.
func probeSDPA(stubbed []string) error {
	if slices.Contains(stubbed, sdpaFunction) {
		return fmt.Errorf("scaled_dot_product_attention is not in libtorch %s (it appeared in 2.0): fer uses matmul + softmax", fer.LibtorchVersion())
	}
	q, err := ts.Randn([]int64{1, 1, 2, 4}, gotch.Float, gotch.CPU)
	if err != nil {
		return fmt.Errorf("scaled_dot_product_attention probe: %w", err)
	}
	defer q.Drop()
	out, err := sdpa(q, q, q, 0)
	if err != nil {
		return fmt.Errorf("scaled_dot_product_attention probe: %w", err)
	}
	out.Drop()
	return nil
}

// sdpa is torch::scaled_dot_product_attention(q, k, v, no mask, dropoutP).
func sdpa(q, k, v *ts.Tensor, dropoutP float64) (*ts.Tensor, error) {
	c, err := lib.FerSDPA(lib.Ctensor(q.Ctensor()), lib.Ctensor(k.Ctensor()), lib.Ctensor(v.Ctensor()), dropoutP, false)
	runtime.KeepAlive(q)
	runtime.KeepAlive(k)
	runtime.KeepAlive(v)
	if err != nil {
		return nil, err
	}
	return ts.New(c), nil
}

// ScaledDotProductAttention is the attention of every transformer in fer:
//
//	softmax(q·kᵀ / √D) · v,  dropout on the attention probabilities
//
// for q [B, H, Nq, D], k [B, H, Nk, D] and v [B, H, Nk, Dv] (any leading
// dimensions, as torch.nn.functional.scaled_dot_product_attention), giving
// [B, H, Nq, Dv]. dropoutP applies only when train is set. No mask, not
// causal. The inputs stay owned by the caller; the result is new.
//
// The kernel is CurrentAttentionKernel(): libtorch's fused
// scaled_dot_product_attention on libtorch >= 2.0, else (and with
// AttentionMatmul) q·(1/√D) → matmul with kᵀ → softmax(-1) → dropout →
// matmul with v, the sequence of timm's Attention, bit-identical to it on
// the same libtorch. The two kernels agree to rounding (the fused one
// scales q and k by D^-¼ each), and draw dropout masks differently.
func ScaledDotProductAttention(q, k, v *ts.Tensor, dropoutP float64, train bool) (*ts.Tensor, error) {
	return scaledDotProductAttention(q, k, v, dropoutP, train, ScaleQuery)
}

// AttentionScale is where the matmul path applies 1/√D.
type AttentionScale int

const (
	// ScaleQuery multiplies q before the product, as timm's Attention
	// does (q = q * self.scale; attn = q @ k.transpose(-2, -1)).
	ScaleQuery AttentionScale = iota
	// ScaleScores multiplies the product, as older timm and the ViTs of
	// POSTER++ / QCS do (attn = (q @ k.transpose(-2, -1)) * self.scale).
	// The two orders differ by float32 rounding only, enough to move
	// gradients by 1e-5 over a few blocks.
	ScaleScores
)

// ScaledDotProductAttentionScaled is ScaledDotProductAttention with the
// matmul path's scale placement chosen, for a model family whose
// reference code scales the product (QCS). The fused kernel, where used,
// is the same.
func ScaledDotProductAttentionScaled(q, k, v *ts.Tensor, dropoutP float64, train bool, scale AttentionScale) (*ts.Tensor, error) {
	return scaledDotProductAttention(q, k, v, dropoutP, train, scale)
}

func scaledDotProductAttention(q, k, v *ts.Tensor, dropoutP float64, train bool, scale AttentionScale) (*ts.Tensor, error) {
	if !train {
		dropoutP = 0
	}
	if CurrentAttentionKernel() == AttentionSDPA {
		out, err := sdpa(q, k, v, dropoutP)
		if err != nil {
			return nil, fmt.Errorf("scaled_dot_product_attention: %w", err)
		}
		return out, nil
	}
	out, probs, err := attentionMatmul(q, k, v, dropoutP, train, false, scale)
	if probs != nil {
		probs.Drop()
	}
	return out, err
}

// AttentionWithProbs is the matmul path of ScaledDotProductAttention that
// also returns the attention probabilities [.., Nq, Nk] (before dropout),
// for attention maps and tests. It never uses the fused kernel, which
// does not expose them.
func AttentionWithProbs(q, k, v *ts.Tensor, dropoutP float64, train bool) (out, probs *ts.Tensor, err error) {
	if !train {
		dropoutP = 0
	}
	return attentionMatmul(q, k, v, dropoutP, train, true, ScaleQuery)
}

func attentionMatmul(q, k, v *ts.Tensor, dropoutP float64, train, keepProbs bool, scale AttentionScale) (out, probs *ts.Tensor, err error) {
	shape, err := q.Size()
	if err != nil {
		return nil, nil, err
	}
	if len(shape) < 2 {
		return nil, nil, fmt.Errorf("attention: q has shape %v, want [..., N, D]", shape)
	}
	var tmp []*ts.Tensor
	defer func() {
		for _, x := range tmp {
			x.Drop()
		}
	}()
	keep := func(x *ts.Tensor, err error) (*ts.Tensor, error) {
		if err == nil {
			tmp = append(tmp, x)
		}
		return x, err
	}
	d := shape[len(shape)-1]
	s := ts.FloatScalar(1 / math.Sqrt(float64(d)))
	qs := q
	if scale == ScaleQuery {
		if qs, err = keep(q.MulScalar(s, false)); err != nil {
			return nil, nil, fmt.Errorf("attention: scale q: %w", err)
		}
	}
	kt, err := keep(k.Transpose(-2, -1, false))
	if err != nil {
		return nil, nil, fmt.Errorf("attention: kᵀ: %w", err)
	}
	scores, err := keep(qs.Matmul(kt, false))
	if err != nil {
		return nil, nil, fmt.Errorf("attention: q·kᵀ: %w", err)
	}
	if scale == ScaleScores {
		if scores, err = keep(scores.MulScalar(s, false)); err != nil {
			return nil, nil, fmt.Errorf("attention: scale q·kᵀ: %w", err)
		}
	}
	p, err := scores.Softmax(-1, gotch.Invalid, false)
	if err != nil {
		return nil, nil, fmt.Errorf("attention: softmax: %w", err)
	}
	if !keepProbs {
		tmp = append(tmp, p)
	}
	pd := p
	if dropoutP > 0 && train {
		if pd, err = keep(ts.Dropout(p, dropoutP, train)); err != nil {
			if keepProbs {
				p.Drop()
			}
			return nil, nil, fmt.Errorf("attention: dropout: %w", err)
		}
	}
	out, err = pd.Matmul(v, false)
	if err != nil {
		if keepProbs {
			p.Drop()
		}
		return nil, nil, fmt.Errorf("attention: probabilities·v: %w", err)
	}
	if keepProbs {
		probs = p
	}
	return out, probs, nil
}
