package main

import (
	"bytes"
	"encoding/json"
	"github.com/fer-research/fer/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
)

// TestMain lets the test binary act as fercli itself (FERCLI_RUN_MAIN=1),
// so the end-to-end tests run the real main, flags and exit codes.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	if os.Getenv("FERCLI_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	qcsPublished.remove()
	os.Exit(code)
}

func fercli(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FERCLI_RUN_MAIN=1", "OMP_WAIT_POLICY=PASSIVE")
	return cmd
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := fercli(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// demo → eval → predict on a reduced benchmark, through the real CLI.
func TestDemoEvalPredict(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	start := time.Now()
	out, errs, code := run(t, "--device", "cpu", "demo", "--train-n", "140", "--val-n", "70", "--test-n", "70",
		"--size", "32", "--crop", "0", "--width", "8", "--epochs", "2", "--batch-size", "32", "--run-dir", dir)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	t.Logf("demo took %v", time.Since(start))
	m := regexp.MustCompile(`accuracy \(WAR\) ([0-9.]+)%\s+UAR ([0-9.]+)%`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "held-out test set (70 images)") || !strings.Contains(out, "true\\pred") {
		t.Fatalf("demo output lacks the held-out report:\n%s", out)
	}
	for _, f := range []string{fer.ConfigFile, fer.MetricsFile, fer.LastCheckpoint, fer.BestCheckpoint, "confusion.png", "curves.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("demo did not write %s: %v", f, err)
		}
	}
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil || len(recs) != 4 || recs[3].Split != "val" || recs[3].Epoch != 2 {
		t.Fatalf("metrics.jsonl: %+v %v", recs, err)
	}

	// eval of best.ckpt on the test split reproduces the demo's figure
	best := filepath.Join(dir, fer.BestCheckpoint)
	out, errs, code = run(t, "--device", "cpu", "eval", "--ckpt", best, "--split", "test", "--json")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, errs)
	}
	var ev struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if got := strconv.FormatFloat(100*ev.Metrics["war"], 'f', 2, 64); got != m[1] {
		t.Fatalf("eval WAR %s%%, demo printed %s%%", got, m[1])
	}

	// predict: two synthetic faces and a folder of them
	imgs := filepath.Join(t.TempDir(), "faces")
	samples, err := synth.Generate(synth.Config{N: 3, Size: 32, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.WritePNGs(imgs, samples); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(imgs, "*.png"))
	out, errs, code = run(t, "predict", "--ckpt", best, "--faces", "whole", files[0], imgs)
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "file") || !strings.Contains(lines[0], "neutral") {
		t.Fatalf("predict output:\n%s", out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2+len(synth.Classes) {
			t.Fatalf("predict row %q", l)
		}
		sum := 0.0
		for _, p := range f[2:] {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
		if sum < 0.99 || sum > 1.01 {
			t.Fatalf("probabilities of %q sum to %v", l, sum)
		}
	}
	// a corrupt image is an error naming it, exit status 1
	bad := filepath.Join(imgs, "broken.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	_, errs, code = run(t, "predict", "--ckpt", best, bad)
	if code != 1 || !strings.Contains(errs, bad) || !strings.Contains(errs, "corrupt") {
		t.Fatalf("corrupt image: exit %d, stderr %q", code, errs)
	}
	_, errs, code = run(t, "predict", "--ckpt", filepath.Join(dir, "nope.ckpt"), files[0])
	if code != 1 || !strings.Contains(errs, "nope.ckpt") {
		t.Fatalf("missing checkpoint: exit %d, stderr %q", code, errs)
	}
}

// SIGINT during `fercli train` finishes the step, writes last.ckpt, exits
// 130 and says how to resume; `train --resume` then completes the run.
func TestTrainInterruptAndResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cmd := fercli("--device", "cpu", "train", "--model", "smallcnn", "--data", "synth",
		"--set", "data.options={train_n: 64, val_n: 16, test_n: 0, size: 32, crop: 0}", "--set", "model.options.width=4",
		"--epochs", "40", "--batch-size", "16", "--checkpoint-every", "1", "--run-dir", dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, fer.LastCheckpoint)
	deadline := time.Now().Add(40 * time.Second)
	for {
		if _, err := os.Stat(ckpt); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("want exit 130 after SIGINT, got %v\nstdout %s\nstderr %s", err, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "fercli train --resume "+dir) {
		t.Fatalf("stderr does not say how to resume: %s", errb.String())
	}
	meta, err := fer.ReadCheckpointMeta(ckpt)
	if err != nil || meta.Step < 1 || meta.Epoch >= 40 {
		t.Fatalf("checkpoint after SIGINT: %+v %v", meta, err)
	}
	o, errs, code := run(t, "--device", "cpu", "train", "--resume", dir)
	if code != 0 {
		t.Fatalf("resume exit %d: %s\n%s", code, o, errs)
	}
	if !strings.Contains(o, "resuming "+dir) || !strings.Contains(o, "done: 40 epochs, 160 steps") {
		t.Fatalf("resume output:\n%s", o)
	}
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil || len(recs) != 80 {
		t.Fatalf("metrics.jsonl after resume: %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Epoch != i/2+1 {
			t.Fatalf("record %d is epoch %d: duplicated or missing epochs", i, r.Epoch)
		}
	}
}
