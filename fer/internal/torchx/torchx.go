// Package torchx calls libtorch through gotch's C layer for the few hot
// paths (optimiser updates, gradient norms, loss checks) where gotch's Go
// wrappers cost too much or leak:
//
//   - every gotch in-place method (Add_, MulScalar_, ...) overwrites the
//     Go tensor's C handle with the new handle the wrapper returns and
//     never frees the old one, which holds a reference to the storage; on
//     a temporary that keeps the whole storage alive forever, on a
//     parameter it leaks a handle per call;
//   - every gotch tensor carries a 100 KB Go allocation (to make the GC
//     notice it), so creating a few hundred scalars per step churns the
//     heap.
//
// Here every op gets its own output slot, and the caller frees what it
// does not keep (Free), so an optimiser step allocates nothing that
// outlives it.
package torchx

import (
	"fmt"
	"strings"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// T is a raw libtorch tensor handle (a heap-allocated torch::Tensor).
type T = lib.Ctensor

// Handle returns the raw handle of a gotch tensor. The handle stays owned
// by t: do not Free it.
func Handle(t *ts.Tensor) T { return T(t.Ctensor()) }

// Err returns libtorch's last error for this thread, without gotch's
// Go stack dump and the C++ backtrace, prefixed with op.
func Err(op string) error {
	err := ts.TorchErr()
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s", op, Clean(err.Error()))
}

// Clean trims a libtorch error message to its meaningful part on one
// line: without gotch's "Libtorch API Error" prefix, its Go stack dump and
// libtorch's C++ backtrace ("frame #0: ...", "Exception raised from").
func Clean(msg string) string {
	for _, cut := range []string{"\ngoroutine ", "\nException raised from", "\nFrame ", "\nframe #"} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = msg[:i]
		}
	}
	msg = strings.ReplaceAll(msg, "Libtorch API Error: ", "")
	return strings.Join(strings.Fields(msg), " ")
}

// Call runs one generated wrapper function that writes its result into
// out and returns that result (owned by the caller: Free it or wrap it
// with ts.New).
func Call(op string, f func(out *T)) (T, error) {
	var slot [1]T
	f(&slot[0])
	if err := Err(op); err != nil {
		return nil, err
	}
	return slot[0], nil
}

// InPlace runs an in-place wrapper function (atg_xxx_) and frees the extra
// handle it returns; self keeps its own handle.
func InPlace(op string, f func(out *T)) error {
	r, err := Call(op, f)
	if err != nil {
		return err
	}
	lib.AtFree(r)
	return nil
}

// Free frees handles; nil ones are skipped.
func Free(hs ...T) {
	for _, h := range hs {
		if h != nil {
			lib.AtFree(h)
		}
	}
}

// WithScalar runs f with a libtorch scalar holding v and frees it after.
func WithScalar(v float64, f func(s lib.Cscalar)) {
	s := lib.AtsFloat(v)
	f(s)
	lib.AtsFree(s)
}

// Item reads a one-element tensor as float64.
func Item(t T) (float64, error) {
	v := lib.AtDoubleValueAtIndexes(t, unsafe.Pointer(nil), 0)
	if err := Err("item"); err != nil {
		return 0, err
	}
	return v, nil
}

// Defined reports whether h holds a tensor (a parameter's grad before the
// first backward does not).
func Defined(h T) bool { return lib.AtDefined(h) }

// NoGrad runs f with autograd recording off on this thread and restores
// the previous mode after.
func NoGrad(f func() error) (err error) {
	// the wrapper returns a C int in a Go int: keep the low 32 bits
	prev := int(int32(lib.AtGradSetEnabled(0)))
	if err := Err("disable grad"); err != nil {
		return err
	}
	// restore the mode even when f panics (a libtorch failure raised by
	// gotch, recovered further up by fer.CatchTorch)
	defer func() {
		lib.AtGradSetEnabled(prev)
		if e := Err("restore grad mode"); e != nil && err == nil {
			err = e
		}
	}()
	return f()
}

// EnableGrad turns autograd recording on for this thread (a goroutine
// that migrated threads inside someone's no-grad section can find it off).
func EnableGrad() error {
	lib.AtGradSetEnabled(1)
	return Err("enable grad")
}

// Grad returns a handle to t's gradient (shares storage with it), or nil
// when t has none yet. Free it after use.
func Grad(t T) (T, error) {
	g, err := Call("grad", func(out *T) { lib.AtgGrad(out, t) })
	if err != nil {
		return nil, err
	}
	if !lib.AtDefined(g) {
		lib.AtFree(g)
		return nil, nil
	}
	return g, nil
}

// Shape returns t's sizes.
func Shape(t T) ([]int64, error) {
	dim := lib.AtDim(t)
	if err := Err("dim"); err != nil {
		return nil, err
	}
	shape := make([]int64, dim)
	if dim > 0 {
		lib.AtShape(t, unsafe.Pointer(&shape[0]))
		if err := Err("shape"); err != nil {
			return nil, err
		}
	}
	return shape, nil
}

// ZerosLike returns a zero tensor of t's shape, dtype and device.
func ZerosLike(t T) (T, error) {
	return Call("zeros_like", func(out *T) { lib.AtgZerosLike(out, t) })
}

// Clone returns a new tensor with t's values (zeros_like then copy_, so
// the copy is exact and owns its storage).
func Clone(t T) (T, error) {
	c, err := ZerosLike(t)
	if err != nil {
		return nil, err
	}
	lib.AtCopy_(c, t)
	if err := Err("copy_"); err != nil {
		lib.AtFree(c)
		return nil, err
	}
	return c, nil
}

// Copy copies src's values into dst.
func Copy(dst, src T) error {
	lib.AtCopy_(dst, src)
	return Err("copy_")
}

// MulScalar returns t·v as a new tensor.
func MulScalar(t T, v float64) (r T, err error) {
	WithScalar(v, func(s lib.Cscalar) {
		r, err = Call("mul", func(out *T) { lib.AtgMulScalar(out, t, s) })
	})
	return r, err
}

// MulScalar_ multiplies t by v in place.
func MulScalar_(t T, v float64) (err error) {
	WithScalar(v, func(s lib.Cscalar) {
		err = InPlace("mul_", func(out *T) { lib.AtgMulScalar_(out, t, s) })
	})
	return err
}

// AddScalar_ adds v to t in place.
func AddScalar_(t T, v float64) (err error) {
	WithScalar(v, func(s lib.Cscalar) {
		err = InPlace("add_", func(out *T) { lib.AtgAddScalar_(out, t, s) })
	})
	return err
}

// DivScalar_ divides t by v in place.
func DivScalar_(t T, v float64) (err error) {
	WithScalar(v, func(s lib.Cscalar) {
		err = InPlace("div_", func(out *T) { lib.AtgDivScalar_(out, t, s) })
	})
	return err
}

// Add_ adds o to t in place.
func Add_(t, o T) error {
	return InPlace("add_", func(out *T) { lib.AtgAdd_(out, t, o) })
}

// AddScaled_ does t += alpha·o in place: torch's t.add_(o, alpha=alpha),
// the same kernel (one pass, a fused multiply-add), through fer's
// wrapper entry point (gotch's generated add_ has no alpha).
func AddScaled_(t, o T, alpha float64) error {
	if alpha == 1 {
		return Add_(t, o)
	}
	return wrap("add_", lib.FerAddAlpha_(t, o, alpha))
}

// AddScaled returns t + alpha·o as a new tensor: torch's
// t.add(o, alpha=alpha).
func AddScaled(t, o T, alpha float64) (T, error) {
	if alpha == 1 {
		return Add(t, o)
	}
	r, err := lib.FerAddAlpha(t, o, alpha)
	if err != nil {
		return nil, wrap("add", err)
	}
	return r, nil
}

// wrap prefixes a wrapper error with op and trims it as Err does; nil
// stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s", op, Clean(err.Error()))
}

// Add returns t + o.
func Add(t, o T) (T, error) {
	return Call("add", func(out *T) { lib.AtgAdd(out, t, o) })
}

// Addcmul_ does t += a·b in place.
func Addcmul_(t, a, b T) error {
	return InPlace("addcmul_", func(out *T) { lib.AtgAddcmul_(out, t, a, b) })
}

// AddcmulValue_ does t += value·a·b in place: torch's
// t.addcmul_(a, b, value=value), one pass over t.
func AddcmulValue_(t, a, b T, value float64) error {
	return wrap("addcmul_", lib.FerAddcmul_(t, a, b, value))
}

// AddcdivValue_ does t += value·a/b in place: torch's
// t.addcdiv_(a, b, value=value), one pass over t.
func AddcdivValue_(t, a, b T, value float64) error {
	return wrap("addcdiv_", lib.FerAddcdiv_(t, a, b, value))
}

// Div returns t / o.
func Div(t, o T) (T, error) {
	return Call("div", func(out *T) { lib.AtgDiv(out, t, o) })
}

// Sqrt returns √t.
func Sqrt(t T) (T, error) {
	return Call("sqrt", func(out *T) { lib.AtgSqrt(out, t) })
}

// Mul returns t·o.
func Mul(t, o T) (T, error) {
	return Call("mul", func(out *T) { lib.AtgMul(out, t, o) })
}

// Abs returns |t|.
func Abs(t T) (T, error) {
	return Call("abs", func(out *T) { lib.AtgAbs(out, t) })
}

// Zero_ fills t with zeros in place.
func Zero_(t T) error {
	return InPlace("zero_", func(out *T) { lib.AtgZero_(out, t) })
}

// Norm returns the L2 norm of all elements of t as a 0-dim tensor.
func Norm(t T) (T, error) {
	return Call("norm", func(out *T) { lib.AtgNorm(out, t) })
}

// Stack stacks same-shaped tensors along a new first dimension.
func Stack(hs []T) (T, error) {
	return Call("stack", func(out *T) { lib.AtgStack(out, hs, len(hs), 0) })
}
