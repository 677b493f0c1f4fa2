package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/fer"
)

// tinyTrain are the arguments of a small smallcnn-on-synth run.
func tinyDistTrain(dir string, batch int) []string {
	return []string{"--device", "cpu", "train", "--model", "smallcnn", "--data", "synth",
		"--set", "data.options={train_n: 128, val_n: 64, test_n: 0, size: 32, crop: 0}",
		"--set", "model.options.width=8", "--epochs", "2", "--batch-size", strconv.Itoa(batch),
		"--lr", "0.05", "--run-dir", dir, "--progress=false"}
}

func lastVal(t *testing.T, dir string) fer.Record {
	t.Helper()
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var val []fer.Record
	for _, r := range recs {
		if r.Split == "val" {
			val = append(val, r)
		}
	}
	if len(val) != 2 || len(recs) != 4 {
		t.Fatalf("%s: %d records (%d val), want 4 (2 val)", dir, len(recs), len(val))
	}
	return val[1]
}

// TestTrainNproc: `fercli train --nproc 2` with batch 16 per process
// trains smallcnn on synth like one process with batch 32: rank 0 alone
// logs and writes the run directory, and the validation figures are
// close (not equal: BatchNorm statistics are per process and dropout
// masks differ, as under DDP). The full demo comparison is in
// bench/RESULTS.md.
func TestTrainNproc(t *testing.T) {
	one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
	if out, errs, code := run(t, tinyDistTrain(one, 32)...); code != 0 {
		t.Fatalf("1 process: exit %d\n%s\n%s", code, out, errs)
	}
	out, errs, code := run(t, append(tinyDistTrain(two, 16), "--nproc", "2")...)
	if code != 0 {
		t.Fatalf("--nproc 2: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "data-parallel: 2 processes, batch 16 per process (32 in all)") ||
		strings.Count(out, "epoch 2/2") != 1 || strings.Contains(out, "[rank 1]") {
		t.Errorf("--nproc 2 output (rank 0 alone should log):\n%s\nstderr:\n%s", out, errs)
	}
	a, b := lastVal(t, one), lastVal(t, two)
	t.Logf("val after 2 epochs: 1×32 acc %.3f loss %.3f; 2×16 acc %.3f loss %.3f", a.Values["acc"], a.Values["loss"], b.Values["acc"], b.Values["loss"])
	if a.Step != b.Step {
		t.Errorf("steps: %d vs %d", a.Step, b.Step)
	}
	if math.Abs(a.Values["acc"]-b.Values["acc"]) > 0.15 || math.Abs(a.Values["loss"]-b.Values["loss"]) > 0.25 {
		t.Errorf("2 processes reached val acc %.3f loss %.3f, 1 process %.3f %.3f", b.Values["acc"], b.Values["loss"], a.Values["acc"], a.Values["loss"])
	}
	for _, f := range []string{fer.LastCheckpoint, fer.BestCheckpoint, fer.ConfigFile} {
		if _, err := os.Stat(filepath.Join(two, f)); err != nil {
			t.Error(err)
		}
	}
	// a rank that cannot start its run fails the job with one message
	out, errs, code = run(t, append(tinyDistTrain(two, 16), "--nproc", "2")...)
	if code == 0 || !strings.Contains(errs, "already holds a run") {
		t.Errorf("second run into the same dir: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestTrainTorchrun: fercli runs unchanged under PyTorch's torchrun
// (--no_python; static rendezvous: the agent serves the store).
func TestTrainTorchrun(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch.distributed.run").Run(); err != nil {
		t.Skipf("%s has no torch.distributed.run (apt install python3-torch): %v", py, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	args := append([]string{"-m", "torch.distributed.run", "--nproc_per_node", "2", "--no_python",
		"--redirects", "1", "--tee", "1", "--master_addr", "127.0.0.1", "--master_port", strconv.Itoa(port), os.Args[0]},
		tinyDistTrain(dir, 16)...)
	c := exec.CommandContext(ctx, py, args...)
	c.Env = append(os.Environ(), "FERCLI_RUN_MAIN=1", "OMP_WAIT_POLICY=PASSIVE", "GLOO_SOCKET_IFNAME=lo")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Fatalf("torchrun: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "data-parallel: 2 processes") {
		t.Errorf("torchrun output:\n%s", out.String())
	}
	lastVal(t, dir)
}

// TestTrainNprocDemo (opt-in: FER_DIST_DEMO=1; about 2 × the demo's time)
// trains the demo's model and benchmark (fercli demo's configuration) in
// one process with batch 64 and with --nproc 2 at batch 32 each, and
// compares their held-out test accuracy (eval of best.ckpt): within 2
// points.
func TestTrainNprocDemo(t *testing.T) {
	if os.Getenv("FER_DIST_DEMO") != "1" {
		t.Skip("set FER_DIST_DEMO=1 to train the demo model in 1 and 2 processes")
	}
	cfg := filepath.Join(t.TempDir(), "demo.yaml")
	if err := os.WriteFile(cfg, []byte(`model: {name: smallcnn, options: {width: 24}}
data: {name: synth, options: {train_n: 6000, val_n: 700, test_n: 1400, size: 64, crop: 48, seed: 2024}}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005}
schedule: {name: cosine}
epochs: 12
eval_batch_size: 256
best_metric: val/uar
device: cpu
`), 0o644); err != nil {
		t.Fatal(err)
	}
	war := map[int]float64{}
	for _, nproc := range []int{1, 2} {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("nproc%d", nproc))
		start := time.Now()
		out, errs, code := run(t, "train", "--config", cfg, "--batch-size", strconv.Itoa(64/nproc),
			"--nproc", strconv.Itoa(nproc), "--run-dir", dir, "--progress=false")
		if code != 0 {
			t.Fatalf("--nproc %d: exit %d\n%s\n%s", nproc, code, out, errs)
		}
		took := time.Since(start)
		out, errs, code = run(t, "--device", "cpu", "eval", "--ckpt", filepath.Join(dir, fer.BestCheckpoint), "--split", "test", "--json")
		if code != 0 {
			t.Fatalf("eval: exit %d: %s", code, errs)
		}
		var ev struct {
			Metrics map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("eval --json: %v\n%s", err, out)
		}
		war[nproc] = ev.Metrics["war"]
		t.Logf("--nproc %d (batch %d each): test WAR %.2f%% UAR %.2f%%, %v", nproc, 64/nproc, 100*ev.Metrics["war"], 100*ev.Metrics["uar"], took.Round(time.Second))
	}
	if math.Abs(war[1]-war[2]) > 0.02 {
		t.Errorf("test accuracy: 1 process %.2f%%, 2 processes %.2f%%", 100*war[1], 100*war[2])
	}
}
