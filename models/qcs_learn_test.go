package models

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// synthQuads serves synthetic faces as QCS's training data does
// (dataset_q0.py): each anchor with a positive of its class, a negative
// class y' drawn from the other classes and two images of it; evaluation
// batches hold the anchors alone.
type synthQuads struct {
	samples []synth.Sample
	byClass map[int][]int
	classes []int
}

func newSynthQuads(samples []synth.Sample) *synthQuads {
	q := &synthQuads{samples: samples, byClass: map[int][]int{}}
	for i, s := range samples {
		if len(q.byClass[s.Label]) == 0 {
			q.classes = append(q.classes, s.Label)
		}
		q.byClass[s.Label] = append(q.byClass[s.Label], i)
	}
	return q
}

func (q *synthQuads) Len() int        { return len(q.samples) }
func (q *synthQuads) Label(i int) int { return q.samples[i].Label }
func (q *synthQuads) other(i int, rng *rand.Rand) int {
	same := q.byClass[q.samples[i].Label]
	for {
		if j := same[rng.IntN(len(same))]; j != i {
			return j
		}
	}
}

func (q *synthQuads) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*fer.Batch, error) {
	groups := [][]int{idx}
	var neg []int64
	if train {
		p, n, n2 := make([]int, len(idx)), make([]int, len(idx)), make([]int, len(idx))
		for k, i := range idx {
			p[k] = q.other(i, rng)
			y := q.samples[i].Label
			yn := y
			for yn == y {
				yn = q.classes[rng.IntN(len(q.classes))]
			}
			c := q.byClass[yn]
			n[k] = c[rng.IntN(len(c))]
			n2[k] = q.other(n[k], rng)
			neg = append(neg, int64(yn))
		}
		groups = append(groups, p, n, n2)
	}
	b := &fer.Batch{Size: len(idx), Targets: map[string]*ts.Tensor{}}
	for _, g := range groups {
		x, labels, shape, err := synth.BatchCHW(q.samples, g, synth.ImageNetMean, synth.ImageNetStd)
		if err != nil {
			return nil, err
		}
		t, err := ts.NewTensorFromData(x, shape)
		if err != nil {
			return nil, err
		}
		b.Inputs = append(b.Inputs, t)
		if len(b.Inputs) == 1 {
			b.Targets[fer.TargetLabel] = ts.MustOfSlice(labels)
		}
	}
	if train {
		b.Targets[fer.TargetLabelNeg] = ts.MustOfSlice(neg)
	}
	return b, nil
}

type qcsLearnRun struct {
	size, resize, dim, batch, epochs, nTrain, nTest int
	units                                           []int
	lr                                              float64
	classes                                         []int
	seed                                            int64
}

// qcsTrainSynthetic trains QCS through fer's trainer — quadruplet batches,
// QCSLoss, SAM(ρ 0.05) over Adam, weight decay 0 — and returns the
// held-out accuracy of the base path.
func qcsTrainSynthetic(t *testing.T, run qcsLearnRun) float64 {
	t.Helper()
	train, _, test, err := synth.GenerateSplits(synth.Config{Size: run.size, Seed: run.seed, Balanced: true, Classes: run.classes}, run.nTrain, 0, run.nTest)
	if err != nil {
		t.Fatal(err)
	}
	fer.SeedTorch(run.seed)
	vs := newCPUStore()
	defer runtime.KeepAlive(vs)
	cfg := DefaultQCSConfig()
	cfg.NumClasses, cfg.Dim, cfg.ResizeTo, cfg.BackboneUnits = synth.NumClasses, run.dim, run.resize, run.units
	m, err := NewQCSModel(vs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := fer.DefaultConfig()
	c.Model.Name, c.Seed, c.Device, c.RunDir = QCSVariant, run.seed, "cpu", t.TempDir()
	c.Optimizer = fer.OptimizerConfig{Name: "adam", LR: run.lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, SAMRho: 0.05}
	c.Epochs, c.BatchSize, c.EvalEvery, c.BestMetric = run.epochs, run.batch, run.epochs, "val/acc"
	loss, _ := m.DefaultLoss()
	tr := &fer.Trainer{Cfg: &c, Model: m, Loss: loss, Train: newSynthQuads(train), Val: newSynthQuads(test),
		NewEvaluator: func() fer.Evaluator { return fer.NewClassificationEvaluator(synth.NumClasses) },
		Device:       gotch.CPU, Out: io.Discard}
	if testing.Verbose() {
		tr.Out = os.Stdout
	}
	start := time.Now()
	res, err := tr.Fit(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	acc := res.Last["val/acc"]
	// the run's best.ckpt (theta, a 0-dim tensor, included) evaluates the
	// same in a fresh model
	lc, err := fer.LoadCheckpoint(res.BestCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Drop()
	vs2 := newCPUStore()
	defer runtime.KeepAlive(vs2)
	m2, err := NewQCSModel(vs2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.LoadWeights(vs2); err != nil {
		t.Fatal(err)
	}
	vals, err := fer.Evaluate(context.Background(), m2, loss, newSynthQuads(test), fer.NewClassificationEvaluator(synth.NumClasses), c.EvalBatch(), gotch.CPU, "val", new(bool))
	if err != nil {
		t.Fatal(err)
	}
	if vals["acc"] != acc {
		t.Errorf("best.ckpt reloaded: accuracy %g, the run reported %g", vals["acc"], acc)
	}
	t.Logf("QCS (width %d, IR-50 units %v, %d-px input resized to %d, %d tokens/scale) on %d synthetic faces of %d classes, batch %d quadruplets, %d epochs (%d SAM steps, %.1fs): held-out accuracy %.1f%% on %d (chance %.1f%%)",
		run.dim, run.units, run.size, run.resize, cfg.TokenGrid()*cfg.TokenGrid(), run.nTrain, nClasses(run.classes), run.batch, run.epochs, res.Steps, time.Since(start).Seconds(),
		100*acc, run.nTest, 100/float64(nClasses(run.classes)))
	return acc
}

func nClasses(subset []int) int {
	if subset == nil {
		return synth.NumClasses
	}
	return len(subset)
}

// TestQCSLearnsSyntheticFaces: QCS trained from scratch on quadruplets of
// synthetic faces beats chance on held-out faces. The default run is a
// small configuration of the real code path (width 32, one IR unit per
// stage, 24-pixel backbone input: 2×2 tokens per scale, 3 classes, 40 SAM
// steps of 6 quadruplets; about 25 s of CPU). FER_QCS_LEARN=full trains
// the small network on all 7 classes at 32 pixels (350 steps, ~8 minutes
// on 2 loaded cores). The full-size network is not trained here: on a 2-core
// CPU one SAM step of 6 quadruplets at 768 wide and 112 pixels takes
// minutes.
func TestQCSLearnsSyntheticFaces(t *testing.T) {
	lockThread(t)
	if os.Getenv("FER_QCS_LEARN") == "full" {
		acc := qcsTrainSynthetic(t, qcsLearnRun{size: 32, resize: 32, dim: 32, units: []int{1, 1, 1}, batch: 6, epochs: 5, nTrain: 420, nTest: 280, lr: 3e-4, seed: 3})
		// chance 1/7; 20% is 2.7 standard errors above it on 280 faces
		// (measured: 23.9%; the 420 training faces are over-fitted by then)
		if acc < 0.2 {
			t.Errorf("seven-class held-out accuracy %.3f, want >= 0.2 (chance 0.143)", acc)
		}
		return
	}
	// seeds 5, 6, 7 reached 54.4%, 54.4%, 58.9%
	acc := qcsTrainSynthetic(t, qcsLearnRun{size: 32, resize: 24, dim: 32, units: []int{1, 1, 1}, batch: 6, epochs: 2, nTrain: 120, nTest: 90, lr: 5e-4, seed: 5,
		classes: []int{synth.Happy, synth.Surprise, synth.Anger}})
	// chance 1/3; 45% is 2.4 standard errors above it on 90 faces
	if acc < 0.45 {
		t.Errorf("three-class held-out accuracy %.3f, want >= 0.45 (chance 0.333)", acc)
	}
}
