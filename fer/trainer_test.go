package fer

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// train builds a fresh run from cfg and fits it.
func train(t *testing.T, cfg *Config, resume bool, onStep func(int)) (*Run, *FitResult, error) {
	t.Helper()
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	tr.OnStep = onStep
	res, err := tr.Fit(context.Background(), resume)
	return r, res, err
}

// records reads metrics.jsonl without the wall-clock fields.
func records(t *testing.T, dir string) []Record {
	t.Helper()
	recs, err := ReadMetricsLog(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		delete(r.Values, "time_s")
	}
	return recs
}

func sameRecords(t *testing.T, a, b []Record) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d records vs %d", len(a), len(b))
	}
	for i := range a {
		ja, _ := a[i].MarshalJSON()
		jb, _ := b[i].MarshalJSON()
		if string(ja) != string(jb) {
			t.Fatalf("record %d differs:\n%s\n%s", i, ja, jb)
		}
	}
}

// A run stopped part-way (Ctrl-C after step k, or killed after a step
// checkpoint) and resumed ends with exactly the weights, optimiser
// effect and metrics log of a run that was never stopped.
func TestResumeIsExact(t *testing.T) {
	for _, opt := range []string{
		"optimizer={name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005}",
		"optimizer={name: adam, lr: 0.003, sam_rho: 0.05, clip_grad_norm: 5}",
	} {
		// 120 samples / batch 16 = 8 batches per epoch, 3 epochs = 24 steps
		ref := tinyConfig(t, opt, "log_every_steps=3")
		rRef, resRef, err := train(t, ref, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resRef.Steps != 24 || resRef.Epochs != 3 {
			t.Fatalf("%s: %d steps, %d epochs; want 24, 3", opt, resRef.Steps, resRef.Epochs)
		}
		wantW := weights(rRef.Model)
		wantRecs := records(t, ref.RunDir)

		// 1. interrupted (context cancelled) after step 11, mid-epoch 2
		cfg := tinyConfig(t, opt, "log_every_steps=3")
		ctx, cancel := context.WithCancel(context.Background())
		r, err := BuildRun(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr := r.Trainer()
		tr.Out = io.Discard
		tr.OnStep = func(s int) {
			if s == 11 {
				cancel()
			}
		}
		_, err = tr.Fit(ctx, false)
		var ie *InterruptedError
		if !errors.As(err, &ie) || ie.Step != 11 || !strings.Contains(err.Error(), "--resume "+cfg.RunDir) {
			t.Fatalf("want an InterruptedError at step 11 telling how to resume, got %v", err)
		}
		m, err := ReadCheckpointMeta(filepath.Join(cfg.RunDir, LastCheckpoint))
		if err != nil || m.Step != 11 || m.Epoch != 1 || m.Batch != 3 {
			t.Fatalf("checkpoint after interrupt: %+v, %v", m, err)
		}
		r2, res2, err := train(t, cfg, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameWeights(wantW, weights(r2.Model)); err != nil {
			t.Fatalf("%s: resumed after interrupt: %v", opt, err)
		}
		sameRecords(t, wantRecs, records(t, cfg.RunDir))
		if res2.Best != resRef.Best || res2.BestEpoch != resRef.BestEpoch {
			t.Fatalf("best %v@%d vs %v@%d", res2.Best, res2.BestEpoch, resRef.Best, resRef.BestEpoch)
		}

		// 2. killed hard at step 15: the last checkpoint is the step-12
		// one (checkpoint_every_steps=4 — step 8 is an epoch end, 12 is
		// mid-epoch 2), and the log has records past it
		cfg = tinyConfig(t, opt, "log_every_steps=3", "checkpoint_every_steps=4")
		errKilled := errors.New("killed")
		func() {
			defer func() {
				if p := recover(); p != errKilled {
					panic(p)
				}
			}()
			train(t, cfg, false, func(s int) {
				if s == 15 {
					panic(errKilled)
				}
			})
		}()
		if m, err := ReadCheckpointMeta(filepath.Join(cfg.RunDir, LastCheckpoint)); err != nil || m.Step != 12 {
			t.Fatalf("last checkpoint before the kill: %+v %v", m, err)
		}
		r3, _, err := train(t, cfg, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameWeights(wantW, weights(r3.Model)); err != nil {
			t.Fatalf("%s: resumed after kill: %v", opt, err)
		}
		sameRecords(t, wantRecs, records(t, cfg.RunDir))
	}
}

// The tiny model learns the synthetic task, the log has the promised
// fields, best.ckpt holds the best epoch, and a second run in the same
// directory without --resume is refused.
func TestFitWritesRunDir(t *testing.T) {
	cfg := tinyConfig(t, "epochs=4", "data.options.train_n=280", "optimizer.lr=0.02")
	_, res, err := train(t, cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, cfg.RunDir)
	if len(recs) != 8 {
		t.Fatalf("%d records, want 4 train + 4 val", len(recs))
	}
	for i, r := range recs {
		want := "train"
		if i%2 == 1 {
			want = "val"
		}
		if r.Split != want || r.Epoch != i/2+1 {
			t.Fatalf("record %d: %s epoch %d", i, r.Split, r.Epoch)
		}
		for _, k := range map[string][]string{"train": {"loss", "acc", "lr"}, "val": {"loss", "acc", "uar", "war", "f1"}}[want] {
			if _, ok := r.Values[k]; !ok {
				t.Fatalf("record %d (%s) lacks %s: %v", i, want, k, r.Values)
			}
		}
	}
	// cosine schedule over 4 epochs from 0.02
	for e, want := range []float64{0.02, 0.017071068, 0.01, 0.002928932} {
		if got := recs[2*e].Values["lr"]; math.Abs(got-want) > 1e-8 {
			t.Fatalf("epoch %d lr %v, want %v", e+1, got, want)
		}
	}
	if l1, l4 := recs[0].Values["loss"], recs[6].Values["loss"]; !(l4 < l1-0.05) {
		t.Fatalf("training loss %.3f in epoch 1, %.3f in epoch 4: no learning", l1, l4)
	}
	best := math.Inf(-1)
	for _, r := range recs {
		if r.Split == "val" {
			best = math.Max(best, r.Values["uar"])
		}
	}
	if res.Best != best || res.BestCheckpoint == "" {
		t.Fatalf("best %v (%s), want %v", res.Best, res.BestCheckpoint, best)
	}
	bm, err := ReadCheckpointMeta(res.BestCheckpoint)
	if err != nil || bm.Metrics["val/uar"] != best || bm.Epoch != res.BestEpoch {
		t.Fatalf("best.ckpt meta %+v %v", bm, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.RunDir, ConfigFile)); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(filepath.Join(cfg.RunDir, ConfigFile))
	if err != nil || back.Optimizer.LR != 0.02 || back.Data.Options["train_n"] != 280 {
		t.Fatalf("config.yaml: %+v %v", back, err)
	}
	if _, _, err := train(t, cfg, false, nil); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("second run into the same dir: %v", err)
	}
}

// nanLoss turns the loss into NaN from step `at` on.
type nanLoss struct {
	inner Loss
	at    int
	step  *int
}

func (l nanLoss) Loss(out Outputs, b *Batch) (LossValue, error) {
	lv, err := l.inner.Loss(out, b)
	if err != nil || *l.step < l.at {
		return lv, err
	}
	nan := lv.Total.MustMulScalar(ts.FloatScalar(math.NaN()), true)
	return LossValue{Total: nan}, nil
}

func TestNaNLossStopsAndKeepsLastGoodCheckpoint(t *testing.T) {
	cfg := tinyConfig(t, "checkpoint_every_steps=2")
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	step := 1
	tr.Loss = nanLoss{inner: CrossEntropy{}, at: 6, step: &step}
	var before map[string][]float64
	tr.OnStep = func(s int) {
		step = s + 1
		if s == 5 {
			before = params(r.Model)
		}
	}
	_, err = tr.Fit(context.Background(), false)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 6 || nf.What != "loss" {
		t.Fatalf("want a NonFiniteError for the loss at step 6, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"loss is NaN at step 6", "last good checkpoint", "(step 4)", "--resume"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	// (the forward pass of the NaN step did update the batch-norm running
	// statistics, as torch's does; only the checkpoint is kept clean)
	if err := sameWeights(before, params(r.Model)); err != nil {
		t.Fatalf("parameters changed by the NaN step: %v", err)
	}
	lc, err := LoadCheckpoint(filepath.Join(cfg.RunDir, LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Drop()
	if lc.Meta.Step != 4 {
		t.Fatalf("last checkpoint at step %d, want 4", lc.Meta.Step)
	}
	for name, tt := range lc.Tensors {
		if tt.DType() != gotch.Float {
			continue
		}
		for _, v := range tt.Float64Values() {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("checkpoint tensor %s has %v", name, v)
			}
		}
	}
}

// badLabels is a data set whose sample 5 has label 9 of 7 classes.
type badLabels struct{ Dataset }

func (d badLabels) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	b, err := d.Dataset.Batch(idx, train, rng, dev)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		if i == 5 {
			lab := b.Targets[TargetLabel].Int64Values()
			lab[j] = 9
			b.Targets[TargetLabel].Drop()
			b.Targets[TargetLabel] = ts.MustOfSlice(lab)
		}
	}
	return b, nil
}

func TestLabelOutOfRangeIsAnError(t *testing.T) {
	cfg := tinyConfig(t)
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	tr.Train = badLabels{r.Data.Train}
	_, err = tr.Fit(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "label 9 of synth/train/5 is out of range") || !strings.Contains(err.Error(), "7 classes") {
		t.Fatalf("got %v", err)
	}
}
