package models

import (
	"os"
	"testing"

	"github.com/fer-research/fer/data/synth"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestSTTProbeInit(t *testing.T) {
	if os.Getenv("STT_PROBE2") == "" {
		t.Skip()
	}
	sttLockThread(t)
	lib.FerSetNumThreads(1)
	samples, _ := synth.Generate(synth.Config{N: 16, Size: 48, Frames: 2, Seed: 3, Balanced: true})
	idx := make([]int, 16)
	for i := range idx {
		idx[i] = i
	}
	data, _, shape, _ := synth.BatchClips(samples, idx, synth.ImageNetMean, synth.ImageNetStd)
	x := ts.MustOfSlice(data).MustView(shape, true)
	lib.FerManualSeed(1)
	vs := nn.NewVarStore(gotch.CPU)
	m, _ := NewSTT(vs.Root(), STTConfig{Frames: 2, ImageSize: 48, Dim: 64, Depth: 2, Heads: 4, MLPRatio: 2})
	report := func(name string, y *ts.Tensor) {
		sd := y.MustStdDim([]int64{0}, false, false, false).MustMean(gotch.Float, true).Float64Values()[0]
		all := y.MustStd(false, false).Float64Values()[0]
		mean := y.MustAbs(false).MustMean(gotch.Float, true).Float64Values()[0]
		t.Logf("%s: across-sample std %.4g, overall std %.4g, mean|.| %.4g", name, sd, all, mean)
	}
	ts.NoGrad(func() {
		frames := x.MustReshape([]int64{32, 3, 48, 48}, false)
		f, _ := m.encode(frames, true)
		report("stage3", f.MustMeanDim([]int64{2, 3}, false, gotch.Float, false))
		tok, _ := m.embed(f, 16, 2, false)
		report("cls0", tok.MustSelect(1, 0, false))
		report("patch tokens", tok.MustNarrow(1, 1, 18, false).MustMeanDim([]int64{1}, false, gotch.Float, false))
		for i, b := range m.Blocks {
			tok, _ = b.Forward(tok, 2, 9, false)
			report("cls after block "+string(rune('0'+i)), tok.MustSelect(1, 0, false))
		}
		h, _ := m.Norm.Forward(tok)
		report("norm cls", h.MustSelect(1, 0, false))
		y, _ := m.Forward(x, true)
		report("logits", y)
	})
}
