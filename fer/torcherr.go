package fer

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/fer-research/fer/fer/internal/torchx"
)

// Many libtorch calls have no error result in Go: gotch's Must* functions,
// in which every model's ForwardT is written (nn.ModuleT has no error
// result), and gotch's layer constructors. Upstream gotch ends the process
// there (log.Fatal); fer's patched copy (internal/gotchpatch, fatal.go)
// panics instead with a value that has a FerTorchFatal method. CatchTorch
// turns that panic back into an error at fer's API boundaries (building a
// model, a training step, an evaluation, a prediction), so a libtorch
// failure — an allocation that does not fit in memory, a shape mismatch —
// reaches the user as one error line, and the run's files stay as they
// were.

// torchFatal is the panic value of the patched gotch's fatal paths
// (*gotch.FerFatalError). fer matches the method, not the type.
type torchFatal interface {
	error
	FerTorchFatal()
}

// TorchError is a libtorch failure recovered by CatchTorch.
type TorchError struct {
	// Op says what fer was doing ("forward", "build model resnet18").
	Op string
	// Msg is libtorch's message without stack traces.
	Msg string
	// OutOfMemory is set for a failed allocation; Bytes is its size when
	// libtorch says it.
	OutOfMemory bool
	Bytes       int64
}

func (e *TorchError) Error() string {
	if e.OutOfMemory {
		size := ""
		if e.Bytes > 0 {
			size = " (" + formatBytes(e.Bytes) + ")"
		}
		return fmt.Sprintf("%s: out of memory: libtorch could not allocate a tensor%s", e.Op, size)
	}
	return fmt.Sprintf("%s: %s", e.Op, e.Msg)
}

// CatchTorch, deferred, recovers a libtorch failure that gotch raised as a
// panic and stores it in *err as a *TorchError for op:
//
//	func (m *Model) Step(...) (err error) {
//		defer fer.CatchTorch(&err, "training step")
//
// Any other panic is a bug and is re-raised.
func CatchTorch(err *error, op string) {
	r := recover()
	if r == nil {
		return
	}
	tf, ok := r.(torchFatal)
	if !ok {
		panic(r)
	}
	*err = NewTorchError(op, tf.Error())
}

// FailForward ends a ForwardT with err: nn.ModuleT's ForwardT has no
// error result, so a module that finds an error there (an input of the
// wrong shape) panics with a value CatchTorch recovers, and the error
// reaches the caller of Fit, Evaluate or Predict as an error, not as an
// exit.
func FailForward(err error) {
	panic(forwardFailure{err})
}

type forwardFailure struct{ err error }

func (f forwardFailure) Error() string { return f.err.Error() }
func (f forwardFailure) Unwrap() error { return f.err }
func (forwardFailure) FerTorchFatal()  {}

// allocFailure matches libtorch's allocation failures: the CPU allocator's
// "you tried to allocate N bytes" and CUDA's "out of memory".
var (
	allocFailure = regexp.MustCompile(`(?i)can't allocate memory|out of memory|DefaultCPUAllocator`)
	allocBytes   = regexp.MustCompile(`tried to allocate (\d+) bytes`)
)

// NewTorchError classifies a libtorch error message.
func NewTorchError(op, msg string) *TorchError {
	e := &TorchError{Op: op, Msg: torchx.Clean(msg)}
	if allocFailure.MatchString(e.Msg) {
		e.OutOfMemory = true
		if m := allocBytes.FindStringSubmatch(e.Msg); m != nil {
			e.Bytes, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	return e
}

// IsOutOfMemory reports whether err is (or wraps) a failed libtorch
// allocation.
func IsOutOfMemory(err error) bool {
	var te *TorchError
	if errors.As(err, &te) {
		return te.OutOfMemory
	}
	return err != nil && allocFailure.MatchString(err.Error())
}

// formatBytes prints a size with a binary unit: "670.6 GiB".
func formatBytes(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n)
	u := 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + units[u]
}
