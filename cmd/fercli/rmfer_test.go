package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/featfile"
	"github.com/fer-research/fer/internal/rmsetfixture"
	fx "github.com/fer-research/fer/internal/staticfixtures"
)

// tinyRMFER are the train flags that shrink a built-in RMFER recipe to a
// seconds-long run: 32×32 faces through the recipe's pipelines (same
// steps, smaller resize), an EfficientNet with 0.25 channel and depth
// multipliers, 4 + 4 RMset candidates per anchor, and the RMset stream
// from epoch 2 (K = 1). Everything else — SAM over Adam, the balanced
// sampler, IAL, ACL, the normalisations — is the recipe's.
var tinyRMFER = []string{"--epochs", "2", "--batch-size", "8", "--progress=false",
	"--set", "data.options.train_transforms=[{resize: [32, 32]}, {random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}, to_tensor, {normalize: rmfer_affectnet_train}]",
	"--set", "data.options.test_transforms=[{resize: [32, 32]}, to_tensor, {normalize: rmfer_affectnet_val}]",
	"--set", "aux.data.options={n_positive: 4, n_negative: 4, workers: 2, train_transforms: [{resize: [32, 32]}, {random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}, to_tensor, {normalize: rmset}], test_transforms: [{resize: [32, 32]}, to_tensor, {normalize: rmset}]}",
	"--set", "aux.start_epoch=1",
	"--set", "model.options.channel_multiplier=0.25", "--set", "model.options.depth_multiplier=0.25",
	"--set", "data.options.workers=2"}

// writeRAFDBFaces writes a RAF-DB basic fixture: 4 training and 2 test
// images per class (28 / 14), each class its own colour pattern.
func writeRAFDBFaces(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	fx.RAFDB(t, root, fx.Counts{Train: 4, Test: 2})
	return root
}

// sameCheckpoints fails unless two checkpoints hold the same tensors
// (weights, BatchNorm statistics and optimiser buffers) bit for bit and
// the same training counters.
func sameCheckpoints(t *testing.T, a, b string) {
	t.Helper()
	runtime.LockOSThread() // libtorch state is per thread (GOTCH.md)
	defer runtime.UnlockOSThread()
	x, err := fer.LoadCheckpoint(a)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Drop()
	y, err := fer.LoadCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Drop()
	if len(x.Tensors) != len(y.Tensors) || x.Meta.Step != y.Meta.Step {
		t.Fatalf("%s: %d tensors at step %d, %s: %d at step %d", a, len(x.Tensors), x.Meta.Step, b, len(y.Tensors), y.Meta.Step)
	}
	for name, v := range x.Tensors {
		if name == "__meta__" { // the JSON metadata: run dir, times
			continue
		}
		w, ok := y.Tensors[name]
		if !ok || !v.MustEqual(w, false) {
			t.Fatalf("%s differs between %s and %s", name, a, b)
		}
	}
}

// TestRMFERTwoPhaseEndToEnd is the "done when": an RMset built by
// `fercli rmset build` from a generated reaction-mashup video (four
// reactors, 2.8 s = 67 frames: the code's anchor range [31, frames − 31]
// needs at least 63 frames with faces), synthetic labelled faces in
// RAF-DB's layout, and `fercli train rmfer --rafdb --rmset` with the
// built-in recipe: epoch 1 trains L_pre, epoch 2 and 3 add L_ACL. A run
// killed with SIGKILL in phase 2 and resumed ends with the checkpoint of
// the uninterrupted run, bit for bit. Then the figures of a real run:
// Fig. 4 (`fercli rmset attention` + `fercli plot attention`) and Fig. 5
// (`fercli eval --dump-features` + `fercli plot mds` on RMFER's backbone
// features).
func TestRMFERTwoPhaseEndToEnd(t *testing.T) {
	dir := t.TempDir()
	video := rmsetfixture.Mashup(t, dir, "mashup01.avi", 2.8)
	rm := filepath.Join(dir, "rmset")
	out := mustRun(t, "rmset", "build", "--out", rm, "--remove", "0,0,360,264", "--progress=false", video)
	if !strings.Contains(out, "1 videos built, 0 skipped") || !strings.Contains(out, "4 people") {
		t.Fatalf("rmset build:\n%s", out)
	}
	raf := writeRAFDBFaces(t)
	train := func(run string, extra ...string) []string {
		return append(append([]string{"--device", "cpu", "train", "rmfer", "--rafdb", "--data-root", raf, "--rmset", rm, "--run-dir", run},
			tinyRMFER...), append([]string{"--epochs", "3"}, extra...)...)
	}
	a := filepath.Join(dir, "a")
	out = mustRun(t, train(a)...)
	for _, s := range []string{"aux rmset: RMset " + rm + ": 1 videos", "aux rmset: 1 sample(s) per step from epoch 2 on", "done: 3 epochs, 9 steps"} {
		if !strings.Contains(out, s) {
			t.Fatalf("train output lacks %q:\n%s", s, out)
		}
	}
	recs := trainRecordsOf(t, a)
	if len(recs) != 3 {
		t.Fatalf("%d train records", len(recs))
	}
	for e, r := range recs {
		acl, ok := r.Values["loss/acl"]
		if ok != (e > 0) || (ok && !(acl > 0)) {
			t.Fatalf("epoch %d: loss/acl %v (logged %v); want it from epoch 2 on", e+1, acl, ok)
		}
	}

	// killed in phase 2 (after a checkpoint of step 4 or later), resumed
	b := filepath.Join(dir, "b")
	cmd := fercli(train(b, "--checkpoint-every", "1")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(b, fer.LastCheckpoint)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if m, err := fer.ReadCheckpointMeta(last); err == nil && m.Step >= 4 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no phase-2 checkpoint after 3 minutes:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	m, err := fer.ReadCheckpointMeta(last)
	if err != nil || m.Step < 4 || m.Step >= 9 {
		t.Fatalf("after SIGKILL: %+v, %v (want a phase-2 checkpoint before the end)", m, err)
	}
	t.Logf("killed after step %d", m.Step)
	out = mustRun(t, "--device", "cpu", "train", "--resume", b, "--progress=false")
	if !strings.Contains(out, "resuming "+b) || !strings.Contains(out, "done: 3 epochs, 9 steps") {
		t.Fatalf("resume:\n%s", out)
	}
	sameCheckpoints(t, filepath.Join(a, fer.LastCheckpoint), last)

	// Fig. 4 from the run: the RMset folder comes from the checkpoint
	dump := filepath.Join(dir, "att.json")
	out = mustRun(t, "--device", "cpu", "rmset", "attention", "--ckpt", filepath.Join(a, fer.BestCheckpoint), "--groups", "2",
		"--positives", "3", "--negatives", "3", "-o", dump)
	if strings.Count(out, "mean attention to its positives") != 2 || !strings.Contains(out, "mean over 2 groups") {
		t.Fatalf("rmset attention:\n%s", out)
	}
	fig4 := filepath.Join(dir, "fig4.png")
	mustRun(t, "plot", "attention", "-o", fig4, dump)
	if st, err := os.Stat(fig4); err != nil || st.Size() < 10000 {
		t.Fatalf("fig4: %v", err)
	}
	// Fig. 5: MDS of the backbone features of the test split
	feats := filepath.Join(dir, "test.safetensors")
	mustRun(t, "--device", "cpu", "eval", "--ckpt", filepath.Join(a, fer.BestCheckpoint), "--split", "test", "--dump-features", feats, "--progress=false")
	f, err := featfile.Load(feats)
	if err != nil {
		t.Fatal(err)
	}
	if f.N() != 14 || f.Dim() != 320 { // EfficientNet ×0.25: round(1280·0.25) = 320 features
		t.Fatalf("features %d×%d, want 14×320", f.N(), f.Dim())
	}
	out = mustRun(t, "plot", "mds", feats, "-o", filepath.Join(dir, "fig5.png"))
	if !strings.Contains(out, "mean Euclidean distance to class centre") || !strings.Contains(out, "feature space (320-D), N=14") {
		t.Fatalf("plot mds:\n%s", out)
	}
}

// trainRecordsOf are the per-epoch training records of a run.
func trainRecordsOf(t *testing.T, run string) []fer.Record {
	t.Helper()
	recs, err := fer.ReadMetricsLog(filepath.Join(run, fer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []fer.Record
	for _, r := range recs {
		if r.Split == "train" {
			out = append(out, r)
		}
	}
	return out
}

// TestReproRMFERScript: repro/rmfer.sh on RAF-DB fixtures (synthetic
// labelled faces, a synthetic RMset in the builder's layout) trains the
// baseline (λ1 = 0, no RMset), w/o ACL (L_pre), full (L_pre, then + ACL)
// and the semi-supervised run (LABELLED=14 of 28 images, recorded in
// labelled.txt), and prints each run's test WAR/UAR as `fercli eval`
// measured them beside the paper's columns, which stay "unknown".
func TestReproRMFERScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	raf := writeRAFDBFaces(t)
	rm := t.TempDir()
	rmsetfixture.Synthetic{Videos: 1, People: 4, Frames: 70, Size: 32}.Write(t, rm)
	runs := filepath.Join(t.TempDir(), "runs")
	script, err := filepath.Abs("../../repro/rmfer.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "FERCLI="+os.Args[0], "FERCLI_RUN_MAIN=1", "OMP_WAIT_POLICY=PASSIVE",
		"FER_DEVICE=cpu", "RUNS="+runs, "LABELLED=14")
	// a larger learning rate than the recipe's 2e-6, so that six steps move the runs apart
	cmd := exec.Command("bash", append(append([]string{script, "rafdb", raf, rm}, tinyRMFER...), "--lr", "0.003")...)
	cmd.Env = env
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	t.Logf("repro/rmfer.sh output:\n%s", out[strings.Index(out, "RMFER on rafdb"):])
	rows := map[string]string{"baseline": "baseline (L_FER)", "wo_acl": "w/o ACL (L_pre)", "full": "full (L_pre + ACL)", "semi_14": "full, 14 labels"}
	for name, title := range rows {
		var ev struct {
			Metrics map[string]float64 `json:"metrics"`
		}
		b, err := os.ReadFile(filepath.Join(runs, name, "eval_test.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		row := fmt.Sprintf("%-22s %8.2f %8.2f   %14s %14s", title, 100*ev.Metrics["acc"], 100*ev.Metrics["uar"], "unknown", "unknown")
		if !strings.Contains(out, row) {
			t.Errorf("output lacks %q", row)
		}
		_, acl := trainRecordsOf(t, filepath.Join(runs, name))[1].Values["loss/acl"]
		if acl != (name == "full" || name == "semi_14") {
			t.Errorf("%s: ACL loss logged %v", name, acl)
		}
	}
	cfg, err := fer.LoadConfig(filepath.Join(runs, "baseline", fer.ConfigFile))
	if err != nil || cfg.Model.Options["lambda1"] != 0 || cfg.Aux.Enabled() {
		t.Fatalf("baseline config: lambda1 %v, aux %+v (%v)", cfg.Model.Options["lambda1"], cfg.Aux, err)
	}
	lb, err := os.ReadFile(filepath.Join(runs, "semi_14", fer.LabelledFile))
	if err != nil || strings.Count(string(lb), "\n") != 15 || !strings.HasPrefix(string(lb), "# 14 of 28 training images") {
		t.Fatalf("labelled.txt: %v\n%s", err, lb)
	}
	// a second call finds the finished runs and only re-evaluates
	cmd = exec.Command("bash", script, "rafdb", raf, rm)
	cmd.Env = env
	outb, err = cmd.CombinedOutput()
	if err != nil || strings.Count(string(outb), "already finished") != 4 {
		t.Fatalf("rerun: %v\n%s", err, outb)
	}
}
