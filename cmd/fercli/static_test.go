package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	fx "github.com/fer-research/fer/internal/staticfixtures"
)

// tinyStatic trains on 24×24 inputs for a few steps.
var tinyStatic = []string{
	"--epochs", "1", "--batch-size", "8", "--progress=false",
	"--set", "data.options.train_transforms=[{resize: [28, 28]}, hflip, {random_rotation: 10}, {random_crop: 24}, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]",
	"--set", "data.options.test_transforms=[{resize: [28, 28]}, {center_crop: 24}, to_tensor, {normalize: imagenet}]",
	"--set", "data.options.workers=2",
}

// Each still-image data set format trains a model through the CLI
// (--rafdb/--ferplus/--affectnet7/--affectnet8 with the data set's
// defaults, a few settings changed), with plain and quadruplet batches,
// and the checkpoint evaluates.
func TestTrainEvalStaticDatasets(t *testing.T) {
	n := fx.Counts{Train: 2, Test: 2}
	rafdb, ferplus, affectnet, affList := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	fx.RAFDB(t, rafdb, n)
	ferList := t.TempDir()
	fx.FERPlus(t, ferplus, n)
	fx.QCSList(t, ferList, "ferplus_training.txt", "ferplus_test.txt", "img", 8, n, ".png")
	fx.AffectNet(t, affectnet, n, 7)
	fx.QCSList(t, affList, "affectnet_training-cls8-v7.txt", "affectnet_validation-cls8.txt", "Manually_trainval_croped", 8, n, ".jpg")
	for _, c := range []struct {
		flag, root string
		extra      []string
		note       string
		test       int
	}{
		{"--rafdb", rafdb, nil, "RAF-DB has no validation split: val = test", 14},
		{"--ferplus", ferplus, []string{"--set", "data.options.quadruplet=true"}, "val = PublicTest, test = PrivateTest", 16},
		{"--ferplus", ferList, nil, "FERPlus from the QCS lists ferplus_training.txt / ferplus_test.txt", 16},
		{"--affectnet7", affectnet, []string{"--set", "data.options.face_box=true"}, "class-balanced sampling, 14 anchors per epoch", 14},
		{"--affectnet8", affList, []string{"--set", "data.options.quadruplet=true", "--set", "data.options.epoch_divisor=2"}, "quadruplet batches (negative class: uniform)", 16},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		args := append([]string{"--device", "cpu", "train", "smallcnn", c.flag, "--data-root", c.root, "--run-dir", dir, "--set", "model.options.width=4"}, tinyStatic...)
		out, errs, code := run(t, append(args, c.extra...)...)
		if code != 0 {
			t.Fatalf("%s %s: train exit %d\nstdout:\n%s\nstderr:\n%s", c.flag, c.extra, code, out, errs)
		}
		if !strings.Contains(out, c.note) {
			t.Fatalf("%s: train output lacks %q:\n%s", c.flag, c.note, out)
		}
		out, errs, code = run(t, "--device", "cpu", "eval", "--ckpt", filepath.Join(dir, fer.BestCheckpoint), "--split", "test", "--json", "--progress=false")
		if code != 0 {
			t.Fatalf("%s: eval exit %d: %s", c.flag, code, errs)
		}
		var ev struct {
			Metrics  map[string]float64 `json:"metrics"`
			PerClass map[string]float64 `json:"per_class_accuracy"`
		}
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("%s: eval --json: %v\n%s", c.flag, err, out)
		}
		if w := ev.Metrics["war"]; !(w >= 0 && w <= 1) || ev.Metrics["loss"] <= 0 {
			t.Fatalf("%s: eval metrics %v", c.flag, ev.Metrics)
		}
		// the accuracy is a multiple of 1/test images
		if k := ev.Metrics["war"] * float64(c.test); k-float64(int(k+0.5)) > 1e-9 || float64(int(k+0.5))-k > 1e-9 {
			t.Fatalf("%s: WAR %v is not k/%d", c.flag, ev.Metrics["war"], c.test)
		}
	}
}

// A baseline from the backbone registry trains with the data set's
// defaults and nothing else but sizes (`fercli train resnet18 --rafdb
// --data-root P`), evaluates, and predicts class names for a picture.
func TestTrainBaselinePredict(t *testing.T) {
	root := t.TempDir()
	fx.QCSList(t, root, "raf_db_basic_train.txt", "raf_db_basic_test.txt", "basic", 7, fx.Counts{Train: 2, Test: 1}, ".png")
	dir := filepath.Join(t.TempDir(), "r18")
	out, errs, code := run(t, append([]string{"--device", "cpu", "train", "resnet18", "--rafdb", "--data-root", root, "--run-dir", dir,
		"--optimizer", "adam", "--lr", "0.001"}, tinyStatic...)...)
	if code != 0 {
		t.Fatalf("train exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	cfg, err := fer.LoadConfig(filepath.Join(dir, fer.ConfigFile))
	if err != nil || cfg.Model.Name != "resnet18" || cfg.Data.Name != "rafdb" {
		t.Fatalf("stored config %+v %v", cfg, err)
	}
	pic := filepath.Join(root, "basic", "c3", "img_3_2.png") // a test image of class 3 (happiness)
	out, errs, code = run(t, "--device", "cpu", "predict", "--faces", "whole", "--ckpt", filepath.Join(dir, fer.BestCheckpoint), pic)
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "happiness") || !strings.Contains(lines[0], "surprise") || !strings.Contains(lines[1], "img_3_2.png") {
		t.Fatalf("predict output:\n%s", out)
	}
	// no config for (resnet18, rafdb): the run dir defaults to runs/resnet18_rafdb
	cwd := t.TempDir()
	cmd := fercli("--device", "cpu", "train", "resnet18", "--rafdb", "--data-root", filepath.Join(root, "missing"))
	cmd.Dir = cwd
	b, _ := cmd.CombinedOutput()
	if !strings.Contains(string(b), "missing is not a folder") {
		t.Fatalf("missing root: %s", b)
	}
	if _, err := os.Stat(filepath.Join(cwd, "runs", "resnet18_rafdb")); err == nil {
		t.Fatal("a failed start created the run dir")
	}
}

// Dataset preset flags come from one table: two of them, or one with a
// different --data, are refused.
func TestStaticPresetErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "resnet18", "--rafdb", "--ferplus", "--data-root", "x"}, "--rafdb and --ferplus exclude each other"},
		{[]string{"train", "resnet18", "--affectnet8", "--data", "rafdb", "--data-root", "x"}, "--affectnet8 and --data rafdb exclude each other"},
		{[]string{"train", "--affectnet7"}, "--affectnet7 needs a model"},
		{[]string{"train", "resnet18", "--rafdb"}, "--data-root"},
		{[]string{"train", "--resume", "x", "--rafdb"}, "drop the model argument, the data set flag"},
	} {
		_, errs, code := run(t, append([]string{"--device", "cpu"}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want it to mention %q", c.args, code, errs, c.want)
		}
	}
	for _, p := range datasetPresets {
		if fer.DatasetHelp(p.dataset) == "" {
			t.Errorf("preset --%s names the unregistered data set %s", p.flag, p.dataset)
		}
	}
}
