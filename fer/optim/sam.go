package optim

import (
	"fmt"

	"github.com/fer-research/fer/fer/internal/torchx"
)

// SAM is Sharpness-Aware Minimisation (Foret et al., ICLR 2021) in the
// two-step form QCS and RMFER train with (their sam.py):
//
//	loss(w).backward();  sam.Perturb(opt)   // w ← w + ρ·g/‖g‖  (first_step)
//	opt.ZeroGrad(); loss(w).backward()      // gradient at the perturbed point
//	sam.Restore(); opt.Step()               // back to w, base update (second_step)
//
// With Adaptive (ASAM) the perturbation of each element is scaled by w²
// and the norm is taken over |w|·g.
type SAM struct {
	Rho      float64
	Adaptive bool

	saved []torchx.T // w before the perturbation, per parameter (nil: no grad)
}

// Perturb moves every parameter with a gradient to w + e(w), e(w) =
// ρ·(w² if adaptive)·g / (‖(|w| if adaptive)·g‖ + 1e-12), remembering w.
func (s *SAM) Perturb(o *Optimizer) error {
	if s.saved != nil {
		return fmt.Errorf("sam: Perturb called twice without Restore")
	}
	s.saved = make([]torchx.T, len(o.params))
	var norms, tmps []torchx.T
	defer func() { torchx.Free(norms...); torchx.Free(tmps...) }()
	grads := make([]torchx.T, len(o.params))
	defer func() { torchx.Free(grads...) }()
	return torchx.NoGrad(func() error {
		for i, p := range o.params {
			g, err := torchx.Grad(p.h)
			if err != nil {
				return err
			}
			if g == nil {
				continue
			}
			grads[i] = g
			x := g
			if s.Adaptive {
				a, err := torchx.Abs(p.h)
				if err != nil {
					return err
				}
				tmps = append(tmps, a)
				if x, err = torchx.Mul(a, g); err != nil {
					return err
				}
				tmps = append(tmps, x)
			}
			n, err := torchx.Norm(x)
			if err != nil {
				return err
			}
			norms = append(norms, n)
		}
		if len(norms) == 0 {
			return nil
		}
		st, err := torchx.Stack(norms)
		if err != nil {
			return err
		}
		tmps = append(tmps, st)
		tot, err := torchx.Norm(st)
		if err != nil {
			return err
		}
		tmps = append(tmps, tot)
		norm, err := torchx.Item(tot)
		if err != nil {
			return err
		}
		scale := s.Rho / (norm + 1e-12)
		for i, p := range o.params {
			g := grads[i]
			if g == nil {
				continue
			}
			w, err := torchx.Clone(p.h)
			if err != nil {
				return err
			}
			s.saved[i] = w
			e, err := torchx.MulScalar(g, scale)
			if err != nil {
				return err
			}
			tmps = append(tmps, e)
			if s.Adaptive {
				w2, err := torchx.Mul(p.h, p.h)
				if err != nil {
					return err
				}
				tmps = append(tmps, w2)
				if e, err = torchx.Mul(e, w2); err != nil {
					return err
				}
				tmps = append(tmps, e)
			}
			if err := torchx.Add_(p.h, e); err != nil {
				return fmt.Errorf("sam perturb %s: %w", p.name, err)
			}
		}
		return nil
	})
}

// Restore puts back the weights saved by Perturb (exactly, by copy).
func (s *SAM) Restore(o *Optimizer) error {
	if s.saved == nil {
		return fmt.Errorf("sam: Restore without Perturb")
	}
	defer func() { torchx.Free(s.saved...); s.saved = nil }()
	return torchx.NoGrad(func() error {
		for i, p := range o.params {
			if s.saved[i] == nil {
				continue
			}
			if err := torchx.Copy(p.h, s.saved[i]); err != nil {
				return fmt.Errorf("sam restore %s: %w", p.name, err)
			}
		}
		return nil
	})
}
