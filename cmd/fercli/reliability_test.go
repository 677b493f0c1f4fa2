package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Reliability of the CLI under hostile but realistic use (issue #11):
// every failure is one error line with exit status 1, and no run's files
// are lost.

// tinyTrain are the flags of a training run of a second or two.
func tinyTrain(dir string, extra ...string) []string {
	return append([]string{"--device", "cpu", "train", "--model", "smallcnn", "--data", "synth",
		"--set", "data.options={train_n: 48, val_n: 14, test_n: 14, size: 32, crop: 0}", "--set", "model.options.width=4",
		"--epochs", "1", "--batch-size", "16", "--progress=false", "--run-dir", dir}, extra...)
}

// oneLineError checks an exit status 1 with a single "fercli: ..." line
// on stderr that contains every part, and no trace.
func oneLineError(t *testing.T, what, stderr string, code int, parts ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "fercli: ") {
		t.Fatalf("%s: want exit 1 and one error line, got exit %d, stderr:\n%s", what, code, stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("%s: error lacks %q: %s", what, p, stderr)
		}
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := run(t, args...)
	if code != 0 {
		t.Fatalf("fercli %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// Crashes that were not errors: a batch size of 0 allocated until the OOM
// killer came, -1 panicked, a huge model ended in gotch's log.Fatal, a
// shape error in a forward pass too.
func TestLibtorchFailuresAreOneErrorLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	mustRun(t, tinyTrain(dir)...)
	best := filepath.Join(dir, fer.BestCheckpoint)

	// --batch-size 0 is the run's eval batch size, as the help says
	out := mustRun(t, "--device", "cpu", "eval", "--ckpt", best, "--batch-size", "0", "--progress=false")
	if !strings.Contains(out, "14 samples") {
		t.Fatalf("eval --batch-size 0:\n%s", out)
	}
	_, errs, code := run(t, "--device", "cpu", "eval", "--ckpt", best, "--batch-size", "-1")
	oneLineError(t, "eval --batch-size -1", errs, code, "--batch-size -1", ">= 1")
	_, errs, code = run(t, "--device", "cpu", "predict", "--ckpt", best, "--batch-size", "0", best)
	oneLineError(t, "predict --batch-size 0", errs, code, "--batch-size 0")

	// parameters that cannot be allocated: 100000 channels
	_, errs, code = run(t, tinyTrain(filepath.Join(t.TempDir(), "huge"), "--set", "model.options.width=100000")...)
	oneLineError(t, "width=100000", errs, code, "out of memory", "model.options", "width=100000")

	// a shape error inside a forward pass written with gotch's Must* ops,
	// as every model's is
	_, errs, code = run(t, tinyTrain(filepath.Join(t.TempDir(), "shape"), "--model", "test-shapeerror")...)
	oneLineError(t, "shape error", errs, code, "training step", "channels")
}

// shapeErrorNet is a model whose forward pass fails in libtorch: a
// convolution with 5 input channels on RGB images.
type shapeErrorNet struct {
	w  *ts.Tensor
	vs *nn.VarStore
}

func (m *shapeErrorNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return ts.MustConv2d(x, m.w, ts.NewTensor(), []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1)
}

func init() {
	fer.RegisterModel("test-shapeerror", "test model whose forward pass fails in libtorch", func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
		w, err := vs.Root().Zeros("w", []int64{int64(spec.NumClasses), 5, 1, 1})
		if err != nil {
			return nil, err
		}
		return fer.NewClassifier(&shapeErrorNet{w: w, vs: vs}, vs), nil
	})
}

// Two processes, one run dir: the second is refused while the first runs.
func TestRunDirLockAndOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	first := fercli(tinyTrain(dir, "--epochs", "200", "--checkpoint-every", "1")...)
	var out1, err1 bytes.Buffer
	first.Stdout, first.Stderr = &out1, &err1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	waitFor(t, filepath.Join(dir, fer.LastCheckpoint))
	_, errs, code := run(t, tinyTrain(dir, "--overwrite")...)
	oneLineError(t, "second run", errs, code, "in use by another process", "pid ")
	var out string
	// the holder is killed -9: the kernel releases the lock, and the
	// temporary file of a checkpoint in progress may stay behind
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	stale := filepath.Join(dir, ".last.ckpt.tmp-4242")
	os.WriteFile(stale, []byte("half a checkpoint"), 0o644)

	// a new run does not replace the killed run's results (it removes
	// the stale temporary file: it holds the lock)...
	out, errs, code = run(t, tinyTrain(dir)...)
	oneLineError(t, "new run over a run", errs, code, "already holds a run", "--resume "+dir, "--overwrite")
	if _, err := os.Stat(stale); !os.IsNotExist(err) || !strings.Contains(out, "removed 1 temporary file") {
		t.Fatalf("stale temporary file not removed (%v):\n%s", err, out)
	}
	// ...nor those of a finished run without last.ckpt
	os.Remove(filepath.Join(dir, fer.LastCheckpoint))
	_, errs, code = run(t, tinyTrain(dir)...)
	oneLineError(t, "new run over results", errs, code, "results of an earlier run", fer.MetricsFile, "--overwrite")
	// --overwrite replaces them
	out, errs, code = run(t, tinyTrain(dir, "--overwrite")...)
	if code != 0 || !strings.Contains(out, "replacing the earlier run") {
		t.Fatalf("--overwrite: exit %d\n%s\n%s", code, out, errs)
	}
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil || len(recs) != 2 {
		t.Fatalf("metrics after --overwrite: %d records, %v", len(recs), err)
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

// A truncated last.ckpt says how to continue from best.ckpt, which works
// with --resume FILE; edits to config.yaml are applied with a diff.
func TestResumeRecoveryAndConfigEdits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	mustRun(t, tinyTrain(dir, "--epochs", "2")...)
	last := filepath.Join(dir, fer.LastCheckpoint)
	b, _ := os.ReadFile(last)
	os.WriteFile(last, b[:len(b)/2], 0o644)
	_, errs, code := run(t, "--device", "cpu", "train", "--resume", dir)
	oneLineError(t, "truncated last.ckpt", errs, code, "damaged", "fercli train --resume "+filepath.Join(dir, fer.BestCheckpoint))

	// continue from best.ckpt; config.yaml says 3 epochs now
	cfgPath := filepath.Join(dir, fer.ConfigFile)
	y, _ := os.ReadFile(cfgPath)
	if !bytes.Contains(y, []byte("epochs: 2\n")) {
		t.Fatalf("config.yaml:\n%s", y)
	}
	os.WriteFile(cfgPath, bytes.Replace(y, []byte("epochs: 2\n"), []byte("epochs: 3\n"), 1), 0o644)
	out := mustRun(t, "--device", "cpu", "train", "--resume", filepath.Join(dir, fer.BestCheckpoint), "--set", "optimizer.lr=0.02", "--progress=false")
	for _, want := range []string{"epochs: 2 -> 3 (config.yaml)", "optimizer.lr: 0.01 -> 0.02 (--set)", "done: 3 epochs"} {
		if !strings.Contains(out, want) {
			t.Errorf("resume output lacks %q:\n%s", want, out)
		}
	}
	m, err := fer.ReadCheckpointMeta(last)
	if err != nil || m.Epoch != 3 {
		t.Fatalf("last.ckpt after resume: %+v %v", m, err)
	}
}

// Config surprises: a bad --set value beside a flag for the same key, YAML
// errors without the key, optimiser values that can only diverge.
func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	for _, c := range []struct {
		args  []string
		parts []string
	}{
		{[]string{"--set", "epochs=abc", "--epochs", "3"}, []string{"epochs", "abc"}},
		{[]string{"--set", "epochs=5", "--epochs", "3"}, []string{"epochs is given twice"}},
		{[]string{"--set", "optimizer.lr=fast"}, []string{"optimizer.lr", "want a number", `"fast"`}},
		{[]string{"--set", "optimizer.momentum=1"}, []string{"optimizer.momentum = 1", "< 1"}},
		{[]string{"--set", "optimizer.weight_decay=-0.1"}, []string{"optimizer.weight_decay = -0.1"}},
		{[]string{"--set", "optimizer.lr=.inf"}, []string{"optimizer.lr", "finite"}},
	} {
		args := tinyTrain(dir, c.args...)
		_, errs, code := run(t, args...)
		oneLineError(t, strings.Join(c.args, " "), errs, code, c.parts...)
	}
	if _, err := os.Stat(filepath.Join(dir, fer.ConfigFile)); !os.IsNotExist(err) {
		t.Fatal("a refused config wrote config.yaml")
	}
}

// CLI paper cuts: help after arguments, flags after arguments, NaN at
// step 1, predict with one bad image.
func TestCLIPaperCuts(t *testing.T) {
	out := mustRun(t, "train", "stt", "--help")
	if !strings.Contains(out, "fercli train") || !strings.Contains(out, "--overwrite") {
		t.Fatalf("train stt --help:\n%s", out)
	}
	out = mustRun(t, "plot", "tsne", "--help")
	if !strings.Contains(out, "--perplexity") {
		t.Fatalf("plot tsne --help:\n%s", out)
	}
	feats, _ := writeFeatures(t, 40)
	png := filepath.Join(t.TempDir(), "out.png")
	// flags after the file, as README writes them
	_, errs, code := run(t, "plot", "tsne", feats, "-o", png, "--iterations", "50")
	if code != 0 {
		t.Fatalf("plot tsne FILE -o: exit %d: %s", code, errs)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatal("plot tsne FILE -o wrote nothing")
	}
	_, errs, code = run(t, "plot", "tsne", feats, "--perplexity", "0")
	oneLineError(t, "--perplexity 0", errs, code, "--perplexity 0")

	// NaN at step 1: no checkpoint, so no --resume advice
	dir := filepath.Join(t.TempDir(), "nan")
	_, errs, code = run(t, tinyTrain(dir, "--lr", "1e30")...)
	oneLineError(t, "NaN at step 1", errs, code, "no checkpoint was written yet", "start the run again")
	if strings.Contains(errs, "--resume") {
		t.Errorf("advises --resume without a checkpoint: %s", errs)
	}
	// ...and starting again needs no --overwrite
	out, errs, code = run(t, tinyTrain(dir)...)
	if code != 0 {
		t.Fatalf("restart after NaN: exit %d: %s", code, errs)
	}

	// predict: one corrupt image in a folder of good ones
	imgs := filepath.Join(t.TempDir(), "faces")
	samples, err := synth.Generate(synth.Config{N: 2, Size: 32, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.WritePNGs(imgs, samples); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(imgs, "broken.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	out, errs, code = run(t, "--device", "cpu", "predict", "--faces", "whole", "--ckpt", filepath.Join(dir, fer.BestCheckpoint), imgs)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(rows) != 3 || !strings.Contains(errs, bad) || !strings.Contains(errs, "1 of 3 images") {
		t.Fatalf("predict with a bad image: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// A full disk while a checkpoint is written: one error line, the previous
// checkpoint intact (needs root to mount a small tmpfs; skipped without).
func TestFullDiskDuringCheckpoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	dir := filepath.Join(mnt, "run")
	// a checkpoint is ~150 KB (weights and momentum): the first epoch's
	// best.ckpt and last.ckpt fit, the second epoch's temporary file not
	_, errs, code := run(t, tinyTrain(dir, "--epochs", "3")...)
	oneLineError(t, "full disk", errs, code, "no space left on device", "free space")
	if m, err := fer.ReadCheckpointMeta(filepath.Join(dir, fer.LastCheckpoint)); err != nil || m.Epoch < 1 {
		t.Fatalf("previous last.ckpt: %+v %v", m, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if regexp.MustCompile(`\.tmp-`).MatchString(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, fer.LastCheckpoint) {
		t.Fatalf("run dir after the failure: %v", names)
	}
}
