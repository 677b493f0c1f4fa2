package models

import (
	"math"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func newRegisteredSTT(t *testing.T, opts map[string]any, shape []int64) (fer.Model, error) {
	t.Helper()
	vs := nn.NewVarStore(gotch.CPU)
	return fer.NewModel(vs, fer.ModelSpec{Name: "stt", NumClasses: 7, InputShape: shape, Options: opts})
}

// The registered "stt" maps its options onto STTConfig (frames and image
// size from the data), runs a batch, and trains with the compact softmax
// CE unless loss: ce.
func TestSTTRegistered(t *testing.T) {
	sttLockThread(t)
	tiny := map[string]any{"dim": 32, "depth": 1, "heads": 2, "attention": "divided", "drop_path": 0.0, "lambda": 0.5}
	m, err := newRegisteredSTT(t, tiny, []int64{4, 3, 32, 32})
	if err != nil {
		t.Fatal(err)
	}
	sm := m.(*STTModel)
	if c := sm.Net.Config(); c.Frames != 4 || c.ImageSize != 32 || c.Dim != 32 || c.Depth != 1 || c.Heads != 2 ||
		c.Attention != STTAttentionDivided || c.NumClasses != 7 || c.DropPath != 0 {
		t.Fatalf("config %+v", c)
	}
	x := ts.MustRandn([]int64{2, 4, 3, 32, 32}, gotch.Float, gotch.CPU)
	y := ts.MustOfSlice([]int64{3, 6})
	b := &fer.Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{fer.TargetLabel: y}, Size: 2}
	defer b.Drop()
	out, err := m.Forward(b, true)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	loss, err := m.(fer.LossProvider).DefaultLoss()
	if err != nil {
		t.Fatal(err)
	}
	lv, err := loss.Loss(out, b)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Drop()
	total := lv.Total.Float64Values()[0]
	ce, compact := lv.Parts["ce"].Float64Values()[0], lv.Parts["compact"].Float64Values()[0]
	if math.Abs(total-(ce+0.5*compact)) > 1e-5 || compact <= 0 {
		t.Fatalf("total %v, ce %v, compact %v (λ = 0.5)", total, ce, compact)
	}
	// a label out of range names the clip instead of aborting
	bad := &fer.Batch{Inputs: b.Inputs, Targets: map[string]*ts.Tensor{fer.TargetLabel: ts.MustOfSlice([]int64{3, 7})}, Size: 2, IDs: []string{"00001", "00002"}}
	if _, err := loss.Loss(out, bad); err == nil || !strings.Contains(err.Error(), "00002") {
		t.Fatalf("bad label: %v", err)
	}
	bad.Targets[fer.TargetLabel].MustDrop()

	m2, err := newRegisteredSTT(t, map[string]any{"dim": 32, "depth": 1, "heads": 2, "loss": "ce"}, []int64{4, 3, 32, 32})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := m2.(fer.LossProvider).DefaultLoss(); l != (fer.CrossEntropy{}) {
		t.Fatalf("loss: ce gave %T", l)
	}

	for _, c := range []struct {
		opts  map[string]any
		shape []int64
		want  string
	}{
		{map[string]any{"frames": 8}, []int64{4, 3, 32, 32}, "data.options frames/size"},
		{nil, []int64{3, 32, 32}, "clip data set"},
		{map[string]any{"loss": "focal"}, []int64{4, 3, 32, 32}, "want compact or ce"},
		{map[string]any{"lambda": -1}, []int64{4, 3, 32, 32}, "lambda"},
		{map[string]any{"depht": 2}, []int64{4, 3, 32, 32}, `unknown key "depht"`},
		{map[string]any{"attention": "axial", "dim": 32, "heads": 2}, []int64{4, 3, 32, 32}, "Attention"},
	} {
		if _, err := newRegisteredSTT(t, c.opts, c.shape); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one mentioning %q", c.opts, c.shape, err, c.want)
		}
	}
}
