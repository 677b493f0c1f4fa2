package bench

import (
	"testing"

	"github.com/sugarme/gotch"
)

func TestShortSoakRecordsPoints(t *testing.T) {
	lockThread(t)
	r, err := Soak(SoakConfig{Steps: 24, BaselineStep: 8, Every: 10, Batch: 8, Size: 16, FixtureImages: 20, Workers: 2, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, p := range r.Points {
		steps = append(steps, p.Step)
		if p.RSS <= 0 {
			t.Errorf("step %d: RSS %d", p.Step, p.RSS)
		}
	}
	want := []int{1, 8, 10, 20, 24}
	if len(steps) != len(want) {
		t.Fatalf("points at %v, want %v", steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Fatalf("points at %v, want %v", steps, want)
		}
	}
	if r.BaselineRSS != r.Points[1].RSS || r.FinalRSS != r.Points[4].RSS {
		t.Errorf("baseline %d / final %d do not match the points", r.BaselineRSS, r.FinalRSS)
	}
	if g := float64(r.FinalRSS)/float64(r.BaselineRSS) - 1; g != r.Growth {
		t.Errorf("growth %v, want %v", r.Growth, g)
	}
	if _, err := Soak(SoakConfig{Model: "stt", Steps: 20}); err == nil {
		t.Errorf("clip model accepted for the soak")
	}
	if _, err := Soak(SoakConfig{Steps: 5, BaselineStep: 5}); err == nil {
		t.Errorf("baseline at the last step accepted")
	}
}

// TestTrainStepLeaksNoCHeap: a training step (fer.DefaultStep: forward,
// loss, backward, gradient norm, SGD) leaves the C heap as it found it.
// gotch's op wrappers leaked a malloc(0) slot per op (about 17 KB a step
// of this model) until internal/gotchpatch freed them.
func TestTrainStepLeaksNoCHeap(t *testing.T) {
	lockThread(t)
	tg, err := NewTarget(TargetConfig{Model: "smallcnn", Batch: 4, Height: 16, Width: 16, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for range 30 { // allocator pools and caches warm up
		if err := tg.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	before := CHeapInUse()
	const steps = 200
	for range steps {
		if err := tg.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	grown := CHeapInUse() - before
	t.Logf("C heap %+d bytes over %d steps", grown, steps)
	if grown > 64<<10 {
		t.Fatalf("C heap grew %d bytes over %d training steps (%d a step): something leaks", grown, steps, grown/steps)
	}
}
