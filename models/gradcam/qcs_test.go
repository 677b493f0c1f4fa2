package gradcam

import (
	"runtime"
	"testing"

	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestQCSGradCAM: a QCS model explains its base-path prediction on each of
// IR-50's stages, at the stage's resolution (QCS resizes the input inside
// the backbone).
func TestQCSGradCAM(t *testing.T) {
	lockThread(t)
	vs := nn.NewVarStore(gotch.CPU)
	defer runtime.KeepAlive(vs)
	cfg, err := models.QCSPreset("qcs", "rafdb")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dim, cfg.ResizeTo, cfg.BackboneUnits = 32, 32, []int{1, 1, 1}
	m, err := models.NewQCSModel(vs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	net, err := For(m)
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{2, 3, 48, 48}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	for i, stage := range []string{"body1", "body2", "body3"} {
		r, err := Compute(net, x, stage, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, w, k := r.StageSize()
		if side := 32 >> (i + 1); h != side || w != side || k != 64<<i || r.B != 2 || len(r.Maps[0]) != 1 {
			t.Errorf("%s: stage %dx%dx%d, B %d, want %dx%dx%d", stage, h, w, k, r.B, side, side, 64<<i)
		}
	}
	if _, err := Compute(net, x, "", nil); err != nil {
		t.Errorf("default stage: %v", err)
	}
}
