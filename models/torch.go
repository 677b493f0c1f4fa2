package models

import (
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Low-level helpers over gotch's C layer for parameter initialisation and
// checkpoint I/O. gotch's Go in-place methods (Uniform_, Normal_, Fill_,
// ...) replace the tensor's C handle with the one the wrapper returns and
// never free the old handle, which keeps the storage alive forever: a
// VGG-16 initialised that way would pin 553 MB after its VarStore is gone.
// Here every wrapper call gets its own output slot, which is freed.

// handle returns the raw libtorch handle of a gotch tensor (still owned by t).
func handle(t *ts.Tensor) lib.Ctensor { return lib.Ctensor(t.Ctensor()) }

// torchErr returns libtorch's last error on this thread, prefixed with op
// and trimmed of gotch's stack dump.
func torchErr(op string) error {
	err := ts.TorchErr()
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "Libtorch API Error: ")
	for _, cut := range []string{"\ngoroutine ", "\nException raised from", "\nFrame "} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = msg[:i]
		}
	}
	return fmt.Errorf("%s: %s", op, strings.TrimSpace(msg))
}

// inPlace runs an in-place wrapper (atg_xxx_) and frees the extra handle
// it returns.
func inPlace(op string, f func(out *lib.Ctensor)) error {
	var slot [1]lib.Ctensor
	f(&slot[0])
	if err := torchErr(op); err != nil {
		return err
	}
	lib.AtFree(slot[0])
	return nil
}

// newTensor runs a wrapper that creates a tensor and wraps the result.
func newTensor(op string, f func(out *lib.Ctensor)) (*ts.Tensor, error) {
	var slot [1]lib.Ctensor
	f(&slot[0])
	if err := torchErr(op); err != nil {
		return nil, err
	}
	return ts.New(slot[0]), nil
}

func uniform_(t *ts.Tensor, lo, hi float64) error {
	return inPlace("uniform_", func(out *lib.Ctensor) { lib.AtgUniform_(out, handle(t), lo, hi) })
}

func normal_(t *ts.Tensor, mean, std float64) error {
	return inPlace("normal_", func(out *lib.Ctensor) { lib.AtgNormal_(out, handle(t), mean, std) })
}

// truncNormal_ is torch.nn.init.trunc_normal_ (PyTorch 1.13's
// _no_grad_trunc_normal_), step for step so the same seed draws the same
// numbers: uniform in [2l−1, 2u−1] with l, u the normal CDF at the bounds,
// erfinv, scale by std·√2, shift by mean, clamp to [a, b].
func truncNormal_(t *ts.Tensor, mean, std, a, b float64) error {
	cdf := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt(2))) / 2 }
	l, u := cdf((a-mean)/std), cdf((b-mean)/std)
	if err := uniform_(t, 2*l-1, 2*u-1); err != nil {
		return err
	}
	if err := inPlace("erfinv_", func(out *lib.Ctensor) { lib.AtgErfinv_(out, handle(t)) }); err != nil {
		return err
	}
	scale := lib.AtsFloat(std * math.Sqrt(2))
	defer lib.AtsFree(scale)
	if err := inPlace("mul_", func(out *lib.Ctensor) { lib.AtgMulScalar_(out, handle(t), scale) }); err != nil {
		return err
	}
	shift := lib.AtsFloat(mean)
	defer lib.AtsFree(shift)
	if err := inPlace("add_", func(out *lib.Ctensor) { lib.AtgAddScalar_(out, handle(t), shift) }); err != nil {
		return err
	}
	lo, hi := lib.AtsFloat(a), lib.AtsFloat(b)
	defer lib.AtsFree(lo)
	defer lib.AtsFree(hi)
	return inPlace("clamp_", func(out *lib.Ctensor) { lib.AtgClamp_(out, handle(t), lo, hi) })
}

func fill_(t *ts.Tensor, v float64) error {
	s := lib.AtsFloat(v)
	defer lib.AtsFree(s)
	return inPlace("fill_", func(out *lib.Ctensor) { lib.AtgFill_(out, handle(t), s) })
}

// emptyTensor allocates an uninitialised tensor (torch.empty).
func emptyTensor(shape []int64, dtype gotch.DType, dev gotch.Device) (*ts.Tensor, error) {
	if len(shape) == 0 { // a scalar (QCS's theta): gotch's wrapper needs one size
		t, err := emptyTensor([]int64{1}, dtype, dev)
		if err != nil {
			return nil, err
		}
		defer t.Drop()
		return t.Squeeze(false)
	}
	return newTensor("empty", func(out *lib.Ctensor) {
		lib.AtgEmpty(out, shape, len(shape), dtype.CInt(), int32(dev.CInt()))
	})
}

// copyInto copies src's values into dst (shapes must match; dtype and
// device are converted), without recording autograd history.
func copyInto(dst, src *ts.Tensor) error {
	return noGrad(func() error {
		lib.AtCopy_(handle(dst), handle(src))
		return torchErr("copy_")
	})
}

// noGrad runs f with autograd recording off on this thread and restores
// the previous mode after (gotch's ts.NoGrad always re-enables it).
func noGrad(f func() error) (err error) {
	prev := lib.AtGradSetEnabled(0)
	if err := torchErr("disable grad"); err != nil {
		return err
	}
	// restored even when f panics with a libtorch failure (fer.CatchTorch)
	defer func() {
		lib.AtGradSetEnabled(prev)
		if e := torchErr("restore grad mode"); e != nil && err == nil {
			err = e
		}
	}()
	return f()
}

// tensorShape returns t's sizes.
func tensorShape(t *ts.Tensor) ([]int64, error) {
	h := handle(t)
	dim := lib.AtDim(h)
	if err := torchErr("dim"); err != nil {
		return nil, err
	}
	shape := make([]int64, dim)
	if dim > 0 {
		lib.AtShape(h, unsafe.Pointer(&shape[0]))
		if err := torchErr("shape"); err != nil {
			return nil, err
		}
	}
	return shape, nil
}

// tensorBytes returns the raw little-endian bytes of t (copied to the CPU,
// in row-major order).
func tensorBytes(t *ts.Tensor) ([]byte, error) {
	shape, err := tensorShape(t)
	if err != nil {
		return nil, err
	}
	n := numel(shape)
	size := int64(t.DType().Size())
	buf := make([]byte, n*size)
	if n == 0 {
		return buf, nil
	}
	lib.AtCopyData(handle(t), unsafe.Pointer(&buf[0]), uint(n), uint(size))
	if err := torchErr("copy data"); err != nil {
		return nil, err
	}
	return buf, nil
}

// tensorFromBytes builds a CPU tensor of the given shape and dtype from
// raw little-endian bytes.
func tensorFromBytes(data []byte, shape []int64, dtype gotch.DType) (*ts.Tensor, error) {
	n := numel(shape)
	if want := n * int64(dtype.Size()); int64(len(data)) != want {
		return nil, fmt.Errorf("%d bytes for %v of %v (want %d)", len(data), shape, dtype, want)
	}
	if n == 0 {
		return newTensor("zeros", func(out *lib.Ctensor) {
			lib.AtgZeros(out, shape, len(shape), dtype.CInt(), int32(gotch.CPU.CInt()))
		})
	}
	if len(shape) == 0 { // a scalar: build [1], then squeeze
		t, err := tensorFromBytes(data, []int64{1}, dtype)
		if err != nil {
			return nil, err
		}
		defer t.Drop()
		return t.Squeeze(false)
	}
	h := lib.AtTensorOfData(unsafe.Pointer(&data[0]), shape, uint(len(shape)), dtype.Size(), int(dtype.CKind()))
	if err := torchErr("tensor from data"); err != nil {
		return nil, err
	}
	return ts.New(h), nil
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
