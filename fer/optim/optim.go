// Package optim implements SGD (with momentum and Nesterov), Adam and
// AdamW over the tensors of a gotch VarStore, with torch.optim's update
// formulas, plus gradient-norm clipping and Sharpness-Aware Minimisation
// (SAM).
//
// Why not gotch's nn.Optimizer: it wraps libtorch's C++ optimisers, whose
// state (momentum buffers, Adam moments, step counts) gotch's C API cannot
// read or write. A checkpoint without that state cannot resume a run
// exactly, so the optimisers live here, in Go, and their state is ours to
// save (State / LoadState). The arithmetic still runs in libtorch, with
// torch.optim's single-tensor op sequence and kernels (add_ with alpha,
// addcmul_/addcdiv_ with value, through fer's wrapper entry points where
// gotch's generated API lacks the scalar argument), so the updates match
// PyTorch bit for bit on the same machine and make as many passes over
// each parameter.
package optim

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Kind names an update rule.
type Kind string

const (
	SGD   Kind = "sgd"
	Adam  Kind = "adam"
	AdamW Kind = "adamw"
)

// Config holds the hyper-parameters, with torch.optim's names and
// meanings. Fields a Kind does not use are ignored.
type Config struct {
	Kind Kind
	LR   float64
	// SGD
	Momentum  float64
	Dampening float64
	Nesterov  bool
	// WeightDecay is L2 added to the gradient for SGD and Adam, decoupled
	// decay (param ·= 1 − lr·wd) for AdamW.
	WeightDecay float64
	// Adam, AdamW
	Beta1, Beta2, Eps float64
	// LRMult scales the learning rate of parameters whose name starts
	// with a key; the longest matching prefix wins.
	LRMult map[string]float64
}

type param struct {
	name string
	h    torchx.T // the VarStore's handle (not owned)
	mult float64
	// state
	step int64
	buf1 *ts.Tensor // SGD momentum buffer, Adam exp_avg
	buf2 *ts.Tensor // Adam exp_avg_sq
}

// Optimizer updates the trainable tensors of a VarStore.
type Optimizer struct {
	cfg    Config
	lr     float64
	vs     *nn.VarStore // keeps the parameters alive
	params []*param     // sorted by name
}

// New collects the trainable variables of vs (those with requires_grad),
// in name order, and returns an optimiser over them.
func New(vs *nn.VarStore, cfg Config) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	if cfg.Kind != SGD && (cfg.Beta1 == 0 && cfg.Beta2 == 0 && cfg.Eps == 0) {
		cfg.Beta1, cfg.Beta2, cfg.Eps = 0.9, 0.999, 1e-8
	}
	o := &Optimizer{cfg: cfg, lr: cfg.LR, vs: vs}
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := vars[n]
		h := torchx.Handle(&t)
		rg, err := t.RequiresGrad()
		if err != nil {
			return nil, fmt.Errorf("optimizer: %s: %w", n, err)
		}
		if !rg {
			continue
		}
		o.params = append(o.params, &param{name: n, h: h, mult: lrMult(cfg.LRMult, n)})
	}
	if len(o.params) == 0 {
		return nil, fmt.Errorf("optimizer: the VarStore has no trainable variables")
	}
	return o, nil
}

// Validate checks the hyper-parameters against the ranges torch.optim
// accepts and, beyond it, rejects values that can only diverge: momentum
// >= 1 (the velocity never decays) and non-finite numbers. Messages name
// the torch.optim argument ("momentum = 1.5, want ...").
func (c Config) Validate() error {
	switch c.Kind {
	case SGD, Adam, AdamW:
	default:
		return fmt.Errorf("kind %q: want sgd, adam or adamw", c.Kind)
	}
	for _, kv := range []struct {
		k string
		v float64
	}{{"lr", c.LR}, {"momentum", c.Momentum}, {"dampening", c.Dampening}, {"weight_decay", c.WeightDecay},
		{"beta1", c.Beta1}, {"beta2", c.Beta2}, {"eps", c.Eps}} {
		if math.IsNaN(kv.v) || math.IsInf(kv.v, 0) {
			return fmt.Errorf("%s = %v, want a finite number", kv.k, kv.v)
		}
	}
	switch {
	case !(c.LR > 0):
		return fmt.Errorf("lr = %v, want > 0", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return fmt.Errorf("momentum = %v, want 0 <= momentum < 1 (0.9 is usual; >= 1 never forgets a gradient and diverges)", c.Momentum)
	case c.Dampening < 0 || c.Dampening > 1:
		return fmt.Errorf("dampening = %v, want 0..1", c.Dampening)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight_decay = %v, want >= 0 (e.g. 5e-4)", c.WeightDecay)
	case c.Eps < 0:
		return fmt.Errorf("eps = %v, want >= 0", c.Eps)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("beta1 = %v, beta2 = %v, want both in [0, 1)", c.Beta1, c.Beta2)
	case c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0):
		return fmt.Errorf("nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)")
	}
	keys := make([]string, 0, len(c.LRMult))
	for p := range c.LRMult {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		if v := c.LRMult[p]; !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("lr_mult[%s] = %v, want a finite number >= 0", p, v)
		}
	}
	return nil
}

func lrMult(m map[string]float64, name string) float64 {
	best, mult := -1, 1.0
	for p, v := range m {
		if strings.HasPrefix(name, p) && len(p) > best {
			best, mult = len(p), v
		}
	}
	return mult
}

// Kind is the update rule.
func (o *Optimizer) Kind() Kind { return o.cfg.Kind }

// LR is the current base learning rate.
func (o *Optimizer) LR() float64 { return o.lr }

// SetLR sets the base learning rate (schedules call it each epoch);
// parameters with an LRMult get lr·mult.
func (o *Optimizer) SetLR(lr float64) { o.lr = lr }

// ParamNames lists the optimised parameters in update order.
func (o *Optimizer) ParamNames() []string {
	out := make([]string, len(o.params))
	for i, p := range o.params {
		out[i] = p.name
	}
	return out
}

// ZeroGrad zeroes every parameter's gradient in place (torch 1.13's
// zero_grad(set_to_none=False)); parameters without a gradient are
// skipped.
func (o *Optimizer) ZeroGrad() error {
	return torchx.NoGrad(func() error {
		for _, p := range o.params {
			g, err := torchx.Grad(p.h)
			if err != nil {
				return fmt.Errorf("zero_grad %s: %w", p.name, err)
			}
			if g == nil {
				continue
			}
			err = torchx.Zero_(g)
			torchx.Free(g)
			if err != nil {
				return fmt.Errorf("zero_grad %s: %w", p.name, err)
			}
		}
		return nil
	})
}

// GradNorm is the L2 norm of all gradients together, as if concatenated
// into one vector (torch.nn.utils.clip_grad_norm_'s total_norm). It is NaN
// or Inf when a gradient is.
func (o *Optimizer) GradNorm() (float64, error) {
	var norms []torchx.T
	defer func() { torchx.Free(norms...) }()
	err := torchx.NoGrad(func() error {
		for _, p := range o.params {
			g, err := torchx.Grad(p.h)
			if err != nil {
				return err
			}
			if g == nil {
				continue
			}
			n, err := torchx.Norm(g)
			torchx.Free(g)
			if err != nil {
				return fmt.Errorf("grad norm %s: %w", p.name, err)
			}
			norms = append(norms, n)
		}
		return nil
	})
	if err != nil || len(norms) == 0 {
		return 0, err
	}
	st, err := torchx.Stack(norms)
	if err != nil {
		return 0, err
	}
	defer torchx.Free(st)
	tot, err := torchx.Norm(st)
	if err != nil {
		return 0, err
	}
	defer torchx.Free(tot)
	return torchx.Item(tot)
}

// ScaleGrads multiplies every gradient by c in place.
func (o *Optimizer) ScaleGrads(c float64) error {
	return torchx.NoGrad(func() error {
		for _, p := range o.params {
			g, err := torchx.Grad(p.h)
			if err != nil {
				return err
			}
			if g == nil {
				continue
			}
			err = torchx.MulScalar_(g, c)
			torchx.Free(g)
			if err != nil {
				return fmt.Errorf("scale grad %s: %w", p.name, err)
			}
		}
		return nil
	})
}

// ClipGradNorm scales the gradients so their total L2 norm is at most max
// (torch.nn.utils.clip_grad_norm_: coefficient max/(norm+1e-6), capped at
// 1) and returns the norm before clipping. A non-finite norm is returned
// without touching the gradients; the caller decides (the trainer stops).
func (o *Optimizer) ClipGradNorm(max float64) (float64, error) {
	norm, err := o.GradNorm()
	if err != nil || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, err
	}
	// in float32 as torch does for float32 gradients: clip_coef =
	// max_norm / (total_norm + 1e-6) on a float32 tensor, and a Python
	// number divided by a tensor is tensor.reciprocal() * number
	coef := float32(float32(1)/(float32(norm)+float32(1e-6))) * float32(max)
	if coef < 1 {
		if err := o.ScaleGrads(float64(coef)); err != nil {
			return norm, err
		}
	}
	return norm, nil
}

// Step applies one update to every parameter that has a gradient.
func (o *Optimizer) Step() error {
	return torchx.NoGrad(func() error {
		for _, p := range o.params {
			g, err := torchx.Grad(p.h)
			if err != nil {
				return fmt.Errorf("step %s: %w", p.name, err)
			}
			if g == nil {
				continue // torch skips parameters whose grad is None
			}
			lr := o.lr * p.mult
			switch o.cfg.Kind {
			case SGD:
				err = o.sgd(p, g, lr)
			default:
				err = o.adam(p, g, lr)
			}
			torchx.Free(g)
			if err != nil {
				return fmt.Errorf("%s step %s: %w", o.cfg.Kind, p.name, err)
			}
		}
		return nil
	})
}

// sgd is torch.optim.SGD's _single_tensor_sgd:
//
//	d = g + wd·p
//	buf = d (first step) | buf·momentum + (1−dampening)·d
//	d = d + momentum·buf (nesterov) | buf
//	p = p − lr·d
func (o *Optimizer) sgd(p *param, g torchx.T, lr float64) error {
	c := o.cfg
	d := g
	var tmps []torchx.T
	defer func() { torchx.Free(tmps...) }()
	if c.WeightDecay != 0 {
		var err error
		if d, err = torchx.AddScaled(g, p.h, c.WeightDecay); err != nil {
			return err
		}
		tmps = append(tmps, d)
	}
	if c.Momentum != 0 {
		if p.buf1 == nil {
			b, err := torchx.Clone(d)
			if err != nil {
				return err
			}
			p.buf1 = ts.New(b)
		} else {
			buf := torchx.Handle(p.buf1)
			if err := torchx.MulScalar_(buf, c.Momentum); err != nil {
				return err
			}
			if err := torchx.AddScaled_(buf, d, 1-c.Dampening); err != nil {
				return err
			}
		}
		buf := torchx.Handle(p.buf1)
		if c.Nesterov {
			var err error
			if d, err = torchx.AddScaled(d, buf, c.Momentum); err != nil {
				return err
			}
			tmps = append(tmps, d)
		} else {
			d = buf
		}
	}
	p.step++
	return torchx.AddScaled_(p.h, d, -lr)
}

// adam is torch.optim.Adam's / AdamW's _single_tensor_adam(w) (torch
// 1.13, amsgrad off), op for op:
//
//	AdamW: p.mul_(1 − lr·wd);  Adam: g = g.add(p, alpha=wd)
//	m.mul_(β1).add_(g, alpha=1−β1)
//	v.mul_(β2).addcmul_(g, g, value=1−β2)
//	denom = (v.sqrt() / √(1−β2^t)).add_(eps)
//	p.addcdiv_(m, denom, value=−lr/(1−β1^t))
func (o *Optimizer) adam(p *param, g torchx.T, lr float64) error {
	c := o.cfg
	var tmps []torchx.T
	defer func() { torchx.Free(tmps...) }()
	if p.buf1 == nil {
		m, err := torchx.ZerosLike(p.h)
		if err != nil {
			return err
		}
		p.buf1 = ts.New(m)
		v, err := torchx.ZerosLike(p.h)
		if err != nil {
			return err
		}
		p.buf2 = ts.New(v)
	}
	p.step++
	if c.WeightDecay != 0 {
		if c.Kind == AdamW {
			if err := torchx.MulScalar_(p.h, 1-lr*c.WeightDecay); err != nil {
				return err
			}
		} else {
			var err error
			if g, err = torchx.AddScaled(g, p.h, c.WeightDecay); err != nil {
				return err
			}
			tmps = append(tmps, g)
		}
	}
	m, v := torchx.Handle(p.buf1), torchx.Handle(p.buf2)
	if err := torchx.MulScalar_(m, c.Beta1); err != nil {
		return err
	}
	if err := torchx.AddScaled_(m, g, 1-c.Beta1); err != nil {
		return err
	}
	if err := torchx.MulScalar_(v, c.Beta2); err != nil {
		return err
	}
	if err := torchx.AddcmulValue_(v, g, g, 1-c.Beta2); err != nil {
		return err
	}
	t := float64(p.step)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	stepSize := lr / bc1
	denom, err := torchx.Sqrt(v)
	if err != nil {
		return err
	}
	tmps = append(tmps, denom)
	if err := torchx.DivScalar_(denom, math.Sqrt(bc2)); err != nil {
		return err
	}
	if err := torchx.AddScalar_(denom, c.Eps); err != nil {
		return err
	}
	return torchx.AddcdivValue_(p.h, m, denom, -stepSize)
}

// Close frees the optimiser's state tensors now rather than at GC time.
func (o *Optimizer) Close() {
	for _, p := range o.params {
		for _, b := range []*ts.Tensor{p.buf1, p.buf2} {
			if b != nil {
				b.Drop()
			}
		}
		p.buf1, p.buf2 = nil, nil
	}
}

// State is an optimiser's resumable state: the per-parameter step counts
// and buffers, named as in torch.optim's state_dict ("momentum_buffer",
// "exp_avg", "exp_avg_sq") plus "/" and the parameter name.
type State struct {
	Kind  Kind             `json:"kind"`
	LR    float64          `json:"lr"`
	Steps map[string]int64 `json:"steps"`
	// Tensors are owned by the optimiser: save them, do not Drop them.
	Tensors []ts.NamedTensor `json:"-"`
}

func bufNames(k Kind) (string, string) {
	if k == SGD {
		return "momentum_buffer", ""
	}
	return "exp_avg", "exp_avg_sq"
}

// State returns the current state (see State).
func (o *Optimizer) State() *State {
	st := &State{Kind: o.cfg.Kind, LR: o.lr, Steps: map[string]int64{}}
	n1, n2 := bufNames(o.cfg.Kind)
	for _, p := range o.params {
		if p.step > 0 {
			st.Steps[p.name] = p.step
		}
		if p.buf1 != nil {
			st.Tensors = append(st.Tensors, ts.NamedTensor{Name: n1 + "/" + p.name, Tensor: p.buf1})
		}
		if p.buf2 != nil {
			st.Tensors = append(st.Tensors, ts.NamedTensor{Name: n2 + "/" + p.name, Tensor: p.buf2})
		}
	}
	return st
}

// LoadState restores a State saved from an optimiser of the same kind over
// the same parameters. The values of tensors are copied, so the caller
// keeps ownership of them.
func (o *Optimizer) LoadState(st *State, tensors map[string]*ts.Tensor) error {
	if st.Kind != o.cfg.Kind {
		return fmt.Errorf("optimizer state is for %s, this optimizer is %s", st.Kind, o.cfg.Kind)
	}
	known := map[string]bool{}
	for _, p := range o.params {
		known[p.name] = true
	}
	for name := range st.Steps {
		if !known[name] {
			return fmt.Errorf("optimizer state has parameter %q, which the model does not train", name)
		}
	}
	n1, n2 := bufNames(o.cfg.Kind)
	load := func(name string, like torchx.T) (*ts.Tensor, error) {
		src, ok := tensors[name]
		if !ok {
			return nil, nil
		}
		ps, err := torchx.Shape(like)
		if err != nil {
			return nil, err
		}
		ss, err := src.Size()
		if err != nil {
			return nil, err
		}
		if fmt.Sprint(ps) != fmt.Sprint(ss) {
			return nil, fmt.Errorf("optimizer state %s has shape %v, the parameter has %v", name, ss, ps)
		}
		c, err := torchx.ZerosLike(like)
		if err != nil {
			return nil, err
		}
		if err := torchx.Copy(c, torchx.Handle(src)); err != nil {
			torchx.Free(c)
			return nil, err
		}
		return ts.New(c), nil
	}
	o.Close()
	o.lr = st.LR
	return torchx.NoGrad(func() error {
		for _, p := range o.params {
			p.step = st.Steps[p.name]
			b1, err := load(n1+"/"+p.name, p.h)
			if err != nil {
				return err
			}
			p.buf1 = b1
			if n2 != "" {
				b2, err := load(n2+"/"+p.name, p.h)
				if err != nil {
					return err
				}
				p.buf2 = b2
			}
			if p.step > 0 && (p.buf1 == nil && (o.cfg.Kind != SGD || o.cfg.Momentum != 0) || n2 != "" && p.buf2 == nil) {
				return fmt.Errorf("optimizer state: parameter %s has %d steps but no %s buffer", p.name, p.step, n1)
			}
		}
		return nil
	})
}
