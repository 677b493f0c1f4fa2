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
