// Package autocast turns libtorch's automatic mixed precision on and off
// from Go, like torch.autocast in Python: inside a region, matmul-like
// ops (conv, linear, matmul, ...) run in a reduced precision (bfloat16 on
// CPU, float16 or bfloat16 on CUDA) while the weights stay float32 and
// precision-sensitive ops stay float32.
//
// Why a shim: gotch v0.9.1's C wrapper declares at_autocast_set_enabled,
// at_autocast_is_enabled, at_autocast_increment/decrement_nesting and
// at_autocast_clear_cache, but has no Go functions for them, and they
// switch CUDA autocast only (libtorch keeps a separate CPU switch and CPU
// dtype that the wrapper does not reach). shim.cpp calls libtorch's
// at::autocast functions directly.
//
// Autocast state is per OS thread in libtorch: enter and leave a region
// on the locked thread that does the torch work (GOTCH.md). Run the
// backward pass after leaving the region, as PyTorch recommends.
package autocast

/*
#cgo CXXFLAGS: -std=c++17 -O2
#cgo LDFLAGS: -ltorch_cpu -lc10
int fer_autocast_is_enabled(int cuda);
int fer_autocast_get_dtype(int cuda);
int fer_autocast_set(int cuda, int enabled, int dtype);
int fer_autocast_increment_nesting();
int fer_autocast_decrement_nesting();
void fer_autocast_clear_cache();
*/
import "C"

import (
	"fmt"

	"github.com/sugarme/gotch"
)

// DefaultDType is the reduced precision torch.autocast uses by default
// on dev: bfloat16 on CPU, float16 on CUDA.
func DefaultDType(dev gotch.Device) gotch.DType {
	if dev.IsCuda() {
		return gotch.Half
	}
	return gotch.BFloat16
}

func cudaFlag(dev gotch.Device) C.int {
	if dev.IsCuda() {
		return 1
	}
	return 0
}

// State is one device type's autocast switch and dtype.
type State struct {
	Enabled bool
	DType   gotch.DType
}

// Get returns the autocast state of dev's device type on this thread.
func Get(dev gotch.Device) (State, error) {
	on := C.fer_autocast_is_enabled(cudaFlag(dev))
	dt := C.fer_autocast_get_dtype(cudaFlag(dev))
	if on < 0 || dt < 0 {
		return State{}, fmt.Errorf("autocast: libtorch refused to report its state")
	}
	return State{Enabled: on == 1, DType: gotch.DType(dt)}, nil
}

// Enter turns autocast on for dev's device type with dtype (gotch.Invalid
// means DefaultDType) and returns the function that leaves the region:
// it restores the previous state and, when the outermost region closes,
// frees the casted-weight cache, as torch.autocast's __exit__ does.
// Regions nest.
func Enter(dev gotch.Device, dtype gotch.DType) (exit func(), err error) {
	if dtype == gotch.Invalid {
		dtype = DefaultDType(dev)
	}
	switch {
	case dev.IsCuda() && dtype != gotch.Half && dtype != gotch.BFloat16:
		return nil, fmt.Errorf("autocast: CUDA supports float16 and bfloat16, not %v", dtype)
	case !dev.IsCuda() && dtype != gotch.BFloat16:
		return nil, fmt.Errorf("autocast: CPU autocast supports bfloat16 only (libtorch 1.13), not %v", dtype)
	}
	prev, err := Get(dev)
	if err != nil {
		return nil, err
	}
	if C.fer_autocast_set(cudaFlag(dev), 1, C.int(dtype)) != 0 {
		return nil, fmt.Errorf("autocast: enabling %v autocast failed", dtype)
	}
	C.fer_autocast_increment_nesting()
	return func() {
		if C.fer_autocast_decrement_nesting() == 0 {
			C.fer_autocast_clear_cache()
		}
		C.fer_autocast_set(cudaFlag(dev), boolInt(prev.Enabled), C.int(prev.DType))
	}, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
