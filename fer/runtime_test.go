package fer

import (
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestThreadsDefaultToCores(t *testing.T) {
	lockThread(t)
	rt, err := Setup(RuntimeOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Threads != runtime.NumCPU() {
		t.Fatalf("libtorch threads = %d, want one per core (%d)", rt.Threads, runtime.NumCPU())
	}
	if _, err := Setup(RuntimeOptions{Device: "cpu", Threads: 1}); err != nil {
		t.Fatal(err)
	}
	rt, _ = Setup(RuntimeOptions{Device: "cpu"})
	if rt.Threads != runtime.NumCPU() {
		t.Fatalf("threads not restored: %d", rt.Threads)
	}
}

// A tensor goes Go -> libtorch -> Go bit-exactly, including values that
// float formatting would round (denormals, NaN payload aside).
func TestTensorRoundTripExact(t *testing.T) {
	lockThread(t)
	in := []float32{0, -0, 1, -1.5, 3.1415927, 1e-38, 1.4e-45, 3.4028235e38, 0.1, -7.25e-3, 42}
	x, err := ts.NewTensorFromData(in, []int64{int64(len(in))})
	if err != nil {
		t.Fatal(err)
	}
	defer x.MustDrop()
	y := x.MustReshape([]int64{1, int64(len(in))}, false)
	defer y.MustDrop()
	out := y.Vals().([]float32)
	if len(out) != len(in) {
		t.Fatalf("len %d != %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("element %d: %v came back as %v", i, in[i], out[i])
		}
	}
	if got := y.MustSize(); got[0] != 1 || got[1] != int64(len(in)) {
		t.Fatalf("shape %v", got)
	}
	ints := []int64{-9007199254740993, 0, 1 << 62}
	xi := ts.MustOfSlice(ints)
	defer xi.MustDrop()
	for i, v := range xi.Int64Values() {
		if v != ints[i] {
			t.Fatalf("int64 %d: %d came back as %d", i, ints[i], v)
		}
	}
}

func TestParseDevice(t *testing.T) {
	lockThread(t)
	d, err := ParseDevice("cpu")
	if err != nil || d != gotch.CPU {
		t.Fatalf("cpu: %v %v", d, err)
	}
	for _, bad := range []string{"gpu", "cuda:x", "cuda:-1"} {
		if _, err := ParseDevice(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if !CUDAAvailable() {
		_, err := ParseDevice("cuda")
		if err == nil || !strings.Contains(err.Error(), "LIBTORCH") {
			t.Fatalf("cuda on a CPU libtorch: want an error telling how to get CUDA, got %v", err)
		}
		if d, _ := ParseDevice("auto"); d != gotch.CPU {
			t.Fatalf("auto without CUDA = %v", d)
		}
	}
}
