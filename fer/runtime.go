package fer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
)

// RuntimeOptions configure the process-wide libtorch state. The zero value
// means: all cores, automatic device choice, seed 0.
type RuntimeOptions struct {
	// Threads is libtorch's intra-op thread count; 0 means one per core.
	// Debian's libtorch defaults to ONE thread, which halves training speed
	// on a 2-core box, so fer always sets it explicitly.
	Threads int
	// Device is "auto" (CUDA when available, else CPU), "cpu", "cuda" or
	// "cuda:N". Empty means "auto".
	Device string
	// Seed seeds libtorch's global generator and the Go-side RNG.
	Seed int64
}

// Runtime is what Setup decided: the device to put models and batches on,
// the thread count in force and the seed.
type Runtime struct {
	Device  gotch.Device
	Threads int
	Seed    int64
	// Warnings are problems of the set-up that make fer slow but not
	// wrong (the pthreads OpenBLAS: BLASInfo.Problem); callers show them.
	Warnings []string
}

// Setup applies opts to libtorch. Call it once, from the goroutine that
// does all torch work, after runtime.LockOSThread (grad mode is per OS
// thread in libtorch; see GOTCH.md).
func Setup(opts RuntimeOptions) (*Runtime, error) {
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	lib.FerSetNumThreads(threads)
	tuneMalloc()
	dev, err := ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	SeedTorch(opts.Seed)
	r := &Runtime{Device: dev, Threads: lib.FerGetNumThreads(), Seed: opts.Seed}
	if p := BLAS().Problem(); p != "" {
		r.Warnings = append(r.Warnings, p)
	}
	return r, nil
}

// SeedTorch seeds libtorch's global random generator (CPU and CUDA).
func SeedTorch(seed int64) { lib.FerManualSeed(seed) }

// NewRand returns a Go RNG seeded deterministically from seed and a stream
// id, for data shuffling and augmentation that must be repeatable.
func NewRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// CUDAAvailable reports whether the libtorch fer was built against can
// see a CUDA device.
func CUDAAvailable() bool { return lib.AtcCudaIsAvailable() }

// CUDADeviceCount is the number of CUDA devices libtorch sees.
func CUDADeviceCount() int { return int(lib.AtcCudaDeviceCount()) }

// ParseDevice turns "auto", "cpu", "cuda" or "cuda:N" into a gotch device,
// failing with a clear message when CUDA is asked for but not present.
func ParseDevice(s string) (gotch.Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "auto":
		if CUDAAvailable() {
			return gotch.CudaBuilder(0), nil
		}
		return gotch.CPU, nil
	case s == "cpu":
		return gotch.CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if rest, ok := strings.CutPrefix(s, "cuda:"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: want cuda:N with N a device index", s)
			}
			idx = n
		}
		if !CUDAAvailable() {
			return gotch.CPU, fmt.Errorf("device %q: this libtorch (%s) has no CUDA device; rebuild with LIBTORCH=<cuda libtorch> ./setup-gotch.sh or use --device cpu", s, LibtorchVersion())
		}
		if n := CUDADeviceCount(); idx >= n {
			return gotch.CPU, fmt.Errorf("device %q: only %d CUDA device(s) visible", s, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: want auto, cpu, cuda or cuda:N", s)
}

// LibtorchVersion is the version of the libtorch the patched gotch was
// built against, as recorded by setup-gotch.sh.
func LibtorchVersion() string { return lib.FerLibtorchVersion }

// LibtorchCUDA reports whether that libtorch was built with CUDA.
func LibtorchCUDA() bool { return lib.FerLibtorchCUDA }

// GotchVersion is the gotch release fer patches.
func GotchVersion() string { return lib.FerGotchVersion }

// StubbedFunctions lists the generated wrapper functions that do not
// compile against this libtorch and were replaced by stubs that return an
// error (see internal/gotchpatch).
func StubbedFunctions() []string { return append([]string(nil), lib.FerStubbed...) }

// LibtorchDir is the directory holding the libtorch libraries fer links.
func LibtorchDir() string { return lib.FerLibtorchDir }

// CUDADeviceNames names the visible CUDA devices. gotch exposes no device
// properties, so the names come from nvidia-smi (in CUDA_VISIBLE_DEVICES
// order when that is set); a device it cannot name is reported as such.
func CUDADeviceNames() []string {
	n := CUDADeviceCount()
	if n == 0 {
		return nil
	}
	var lines []string
	if out, err := exec.Command("nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader").Output(); err == nil {
		all := strings.Split(strings.TrimSpace(string(out)), "\n")
		if vis := os.Getenv("CUDA_VISIBLE_DEVICES"); vis != "" {
			for _, id := range strings.Split(vis, ",") {
				for _, l := range all {
					if strings.HasPrefix(l, strings.TrimSpace(id)+",") {
						lines = append(lines, l)
					}
				}
			}
		} else {
			lines = all
		}
	}
	names := make([]string, n)
	for i := range names {
		if i < len(lines) {
			f := strings.SplitN(lines[i], ",", 2)
			names[i] = strings.TrimSpace(f[len(f)-1])
		} else {
			names[i] = "(unnamed: nvidia-smi not available)"
		}
	}
	return names
}
