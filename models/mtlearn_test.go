package models

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
)

// mtLearnRun trains one multi-task model on the synth benchmark (which
// carries valence/arousal and the 8 Aff-Wild2 AUs, derived from the drawn
// face) and returns the validation metrics of the last epoch.
func mtLearnRun(t *testing.T, overrides ...string) map[string]float64 {
	t.Helper()
	base := []string{"device=cpu", "seed=3", "run_dir=" + filepath.Join(t.TempDir(), "run"),
		"optimizer={name: adam, lr: 0.001}", "schedule={name: cosine}", "best_metric=val/mtl_score"}
	cfg, err := fer.ParseConfig(nil, "mt learn", append(base, overrides...)...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	var log strings.Builder
	tr.Out = &log
	start := time.Now()
	res, err := tr.Fit(context.Background(), false)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("%s: %d steps in %.1fs\n%s", cfg.Model.Name, res.Steps, time.Since(start).Seconds(), log.String())
	m := map[string]float64{}
	for k, v := range res.Last {
		m[strings.TrimPrefix(k, "val/")] = v
	}
	return m
}

// MT-ArcRes (with a ResNet-18 trunk to stay within the test budget: about
// 30 s of CPU) learns all three tasks of the synthetic faces in 99 steps:
// CCC of valence and arousal and expression accuracy well above what a
// model without the signal reaches (CCC 0, accuracy 1/7), AU accuracy
// above the all-inactive guess. Recorded on a loaded 2-core box: val
// ccc_v 0.180, ccc_a 0.510, acc 0.314, f1 0.262, au_f1 0.261, au_acc 0.786
// (all-inactive: 0.72). The five full models on larger synthetic sets:
// FER_AFFWILD_LEARN=1 (TestMTLearnAll).
func TestMTLearnsSynth(t *testing.T) {
	lockThread(t)
	m := mtLearnRun(t, "model={name: mt-arcres, options: {depth: 18, s: 16, m: 0.2, w_va: 3}}",
		"data={name: synth, options: {train_n: 1050, val_n: 210, test_n: 0, size: 48, crop: 40, shift: 2}}",
		"epochs=3", "batch_size=32", "optimizer={name: adam, lr: 0.001}")
	// the all-inactive AU guess on the same validation faces
	val := synthVal(t, 210, 48)
	zeros, all := 0, 0
	for _, s := range val {
		for _, a := range s.AU {
			all++
			if a == 0 {
				zeros++
			}
		}
	}
	base := float64(zeros) / float64(all)
	t.Logf("mt-arcres (resnet18 trunk) on synth: ccc_v %.3f ccc_a %.3f acc %.3f f1 %.3f au_f1 %.3f au_acc %.3f (all-inactive %.3f)",
		m["ccc_v"], m["ccc_a"], m["acc"], m["f1"], m["au_f1"], m["au_acc"], base)
	if m["ccc_v"] < 0.05 || m["ccc_a"] < 0.25 || m["acc"] < 0.22 || m["au_acc"] < base+0.02 {
		t.Errorf("did not learn the synthetic signal: %v", m)
	}
}

// synthVal generates the synth validation split the learning runs use.
func synthVal(t *testing.T, n, size int) []synth.Sample {
	t.Helper()
	_, val, _, err := synth.GenerateSplits(synth.Config{Size: size, Seed: fer.DefaultSynthOptions().Seed, Balanced: true}, 1050, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

// TestMTLearnAll trains four of the five models as built (VGG-16 /
// ResNet-50 trunks; the A/V model needs sound, which synth has not) on
// synthetic faces and records what they reach; opt-in, it takes hours on
// a 2-core CPU: FER_AFFWILD_LEARN=1.
func TestMTLearnAll(t *testing.T) {
	if os.Getenv("FER_AFFWILD_LEARN") == "" {
		t.Skip("set FER_AFFWILD_LEARN=1 to train the five multi-task models on synth (tens of minutes)")
	}
	lockThread(t)
	still := "data={name: synth, options: {train_n: 2800, val_n: 700, test_n: 0, size: 64, crop: 0, shift: 3}}"
	clips := "data={name: synth, options: {train_n: 700, val_n: 175, test_n: 0, size: 64, crop: 0, frames: 4, frame_targets: true, augment: false}}"
	for _, c := range []struct{ model, data, extra string }{
		{"mt-vgg", still, "model.options={hidden: 512}"},
		{"mt-vgg-rnn", clips, "model.options={hidden: 512}"},
		{"mt-arcres", still, "model.options={s: 16}"},
		{"mt-arcvgg", still, "model.options={hidden: 512, s: 16}"},
	} {
		m := mtLearnRun(t, "model.name="+c.model, c.extra, c.data, "epochs=6", "batch_size=32")
		t.Logf("%s on synth: ccc_v %.3f ccc_a %.3f acc %.3f f1 %.3f au_f1 %.3f", c.model, m["ccc_v"], m["ccc_a"], m["acc"], m["f1"], m["au_f1"])
	}
}
