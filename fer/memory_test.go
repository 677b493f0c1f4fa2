package fer

import (
	"context"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// liveTensors is the number of gotch tensors not yet freed (by Drop or,
// for the ones the code forgot, by a GC finalizer).
func liveTensors() int { return strings.Count(ts.CheckCMemLeak(), `"`) / 2 }

// rssMB is the resident set size of this process.
func rssMB() float64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.Atoi(f[1])
	return float64(pages*os.Getpagesize()) / (1 << 20)
}

// Every tensor a training step creates (batch, outputs, loss, gradients
// handles, optimiser temporaries) is freed by the step itself, not left
// to the garbage collector: over 300 steps with SGD, SAM and clipping the
// number of live tensors is the same at every step boundary, also with
// the GC switched off, and the RSS does not grow.
func TestTrainingStepsDoNotLeak(t *testing.T) {
	// 160 samples / 16 = 10 steps per epoch; 30 epochs = 300 steps,
	// validation every 10 epochs, checkpoint every epoch
	cfg := tinyConfig(t, "data.options={train_n: 160, val_n: 32, test_n: 0, size: 32, crop: 0}",
		"epochs=30", "eval_every=10", "optimizer={name: adam, lr: 0.001, sam_rho: 0.05, clip_grad_norm: 1}")
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	counts := map[int]int{}
	var rss50, rss300 float64
	tr.OnStep = func(s int) {
		switch {
		case s == 100:
			// from here to step 120 nothing may reach the finalizers
			debug.SetGCPercent(-1)
			counts[s] = liveTensors()
		case s == 120:
			counts[s] = liveTensors()
			debug.SetGCPercent(100)
		case s%50 == 0:
			counts[s] = liveTensors()
		}
		if s == 50 {
			runtime.GC()
			rss50 = rssMB()
		}
		if s == 300 {
			runtime.GC()
			rss300 = rssMB()
		}
	}
	defer debug.SetGCPercent(100)
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	t.Logf("live tensors at steps: %v; RSS %.0f MB at step 50, %.0f MB at step 300", counts, rss50, rss300)
	if len(counts) != 7 {
		t.Fatalf("sampled %d step boundaries, want 7", len(counts))
	}
	for s, n := range counts {
		if n != counts[50] {
			t.Fatalf("live tensors: %d at step %d, %d at step 50 (%v)", n, s, counts[50], counts)
		}
	}
	// one forgotten 16×3×32×32 input per step would add 49 MB
	if rss300-rss50 > 20 {
		t.Fatalf("RSS grew from %.0f MB to %.0f MB over 250 steps", rss50, rss300)
	}
}
