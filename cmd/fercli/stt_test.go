package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
)

// writeDFEWFixture writes a DFEW-layout tree: clips 1..14 of 20 frames of
// 32×32 random-colour JPEGs in Clip/clip_224x224, and fold-1 split CSVs
// (train: clips 1..7, test: 8..14, each with one clip of every class).
func writeDFEWFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	var train, test strings.Builder
	train.WriteString("video_name,label\n")
	test.WriteString("video_name,label\n")
	for v := 1; v <= 14; v++ {
		dir := filepath.Join(root, "Clip", "clip_224x224", fmt.Sprintf("%05d", v))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k := 1; k <= 20; k++ {
			img := image.NewRGBA(image.Rect(0, 0, 32, 32))
			for i := range img.Pix {
				img.Pix[i] = uint8(rng.IntN(256))
			}
			writeTestJPEG(t, filepath.Join(dir, fmt.Sprintf("%05d.jpg", k)), img)
		}
		line := fmt.Sprintf("%d,%d\n", v, (v-1)%7+1)
		if v <= 7 {
			train.WriteString(line)
		} else {
			test.WriteString(line)
		}
	}
	for split, content := range map[string]string{"train": train.String(), "test": test.String()} {
		p := filepath.Join(root, "EmoLabel_DataSplit", split+"(single-labeled)", "set_1.csv")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func writeTestJPEG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tinySTT are the train flags that shrink the built-in STT config to a
// run of seconds: 4 frames of 32×32, 32-d tokens, one block.
var tinySTT = []string{"--epochs", "2", "--batch-size", "4", "--progress=false",
	"--set", "data.options.frames=4", "--set", "data.options.size=32", "--set", "data.options.min_frames=0",
	"--set", "data.options.workers=2",
	"--set", "model.options.dim=32", "--set", "model.options.depth=1", "--set", "model.options.heads=2"}

// `fercli train stt --dfew --fold 1` with the built-in config (shrunk by
// --set), then `fercli eval` in text and JSON, through the real CLI.
func TestTrainEvalSTTDFEW(t *testing.T) {
	root := writeDFEWFixture(t)
	dir := filepath.Join(t.TempDir(), "stt")
	args := append([]string{"--device", "cpu", "train", "stt", "--dfew", "--data-root", root, "--fold", "1", "--run-dir", dir}, tinySTT...)
	out, errs, code := run(t, args...)
	if code != 0 {
		t.Fatalf("train exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if strings.Count(out, "val = the test fold") != 1 || !strings.Contains(out, "fold 1: 7 train / 7 test clips") {
		t.Fatalf("train output lacks the DFEW protocol note (once):\n%s", out)
	}
	for _, f := range []string{fer.ConfigFile, fer.MetricsFile, fer.LastCheckpoint, fer.BestCheckpoint} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("train did not write %s: %v", f, err)
		}
	}
	// the stored config is the built-in one plus the overrides
	cfg, err := fer.LoadConfig(filepath.Join(dir, fer.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Model.Name != "stt" || cfg.Data.Name != "dfew" || cfg.Data.Root != root || cfg.Epochs != 2 || cfg.BatchSize != 4 ||
		cfg.Optimizer.Name != "sgd" || cfg.Optimizer.LR != 0.01 || cfg.Optimizer.Momentum != 0.9 || cfg.Optimizer.WeightDecay != 1e-4 ||
		cfg.Schedule.Name != "step" || cfg.Schedule.StepSize != 40 || cfg.Schedule.Gamma != 0.1 || cfg.BestMetric != "val/uar" {
		t.Fatalf("stored config: %+v", cfg)
	}
	if cfg.Data.Options["fold"] != 1 || cfg.Data.Options["frames"] != 4 || cfg.Model.Options["loss"] != "compact" {
		t.Fatalf("stored options: data %v, model %v", cfg.Data.Options, cfg.Model.Options)
	}
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil || len(recs) != 4 {
		t.Fatalf("metrics.jsonl: %+v %v", recs, err)
	}
	// the compact softmax CE logs its two parts
	if _, ok := recs[0].Values["loss/compact"]; !ok {
		t.Fatalf("train metrics lack loss/compact: %v", recs[0].Values)
	}

	best := filepath.Join(dir, fer.BestCheckpoint)
	out, errs, code = run(t, "--device", "cpu", "eval", "--ckpt", best, "--split", "test", "--progress=false")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, errs)
	}
	t.Logf("fercli eval output:\n%s", out)
	for _, want := range []string{"uar", "war", "WAR=", "UAR=", "per-class accuracy"} {
		if !strings.Contains(out, want) {
			t.Fatalf("eval output lacks %q:\n%s", want, out)
		}
	}
	for _, name := range data.DFEWClasses {
		if !regexp.MustCompile(`(?m)^  ` + name + ` +[0-9.]+  \(1 samples\)$`).MatchString(out) {
			t.Fatalf("eval output lacks the per-class line of %s:\n%s", name, out)
		}
	}

	out, errs, code = run(t, "--device", "cpu", "eval", "--ckpt", best, "--split", "test", "--json", "--progress=false")
	if code != 0 {
		t.Fatalf("eval --json exit %d: %s", code, errs)
	}
	var ev struct {
		Metrics  map[string]float64 `json:"metrics"`
		PerClass map[string]float64 `json:"per_class_accuracy"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if len(ev.PerClass) != 7 {
		t.Fatalf("per_class_accuracy: %v", ev.PerClass)
	}
	// one test clip per class: per-class accuracies are 0 or 1, UAR is
	// their mean and equals WAR
	sum := 0.0
	for name, a := range ev.PerClass {
		if a != 0 && a != 1 {
			t.Fatalf("class %s accuracy %v with one sample", name, a)
		}
		sum += a
	}
	if u := ev.Metrics["uar"]; u != sum/7 || ev.Metrics["war"] != u {
		t.Fatalf("uar %v, war %v, per-class mean %v", u, ev.Metrics["war"], sum/7)
	}

	// Grad-CAM of the registered STT model over a folder of frames (it
	// said "model *models.STTModel is not supported")
	png := filepath.Join(t.TempDir(), "cam.png")
	out, errs, code = run(t, "--device", "cpu", "plot", "gradcam", "--checkpoint", best, filepath.Join(root, "Clip", "clip_224x224", "00003"), "-o", png)
	if code != 0 || !strings.Contains(errs, "wrote "+png) {
		t.Fatalf("plot gradcam of STT: exit %d\n%s\n%s", code, out, errs)
	}
}

// Bad preset combinations fail with a message naming the fix.
func TestTrainPresetErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "stt", "--afew", "--dfew", "--data-root", "x"}, "exclude each other"},
		{[]string{"train", "stt", "--fold", "2"}, "--fold is for DFEW"},
		{[]string{"train", "stt", "--dfew", "--fold", "6", "--data-root", "x"}, "folds 1..5"},
		{[]string{"train", "--dfew"}, "needs a model"},
		{[]string{"train", "stt", "--dfew", "--data-root", filepath.Join(t.TempDir(), "none")}, "DFEW folder"},
		{[]string{"train", "stt", "--dfew"}, "--data-root"},
	} {
		_, errs, code := run(t, append([]string{"--device", "cpu"}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want it to mention %q", c.args, code, errs, c.want)
		}
	}
}

// repro/stt_dfew.sh on the fixture, one fold, tiny config: the table has
// the fold's row, the mean and the paper's numbers, and they agree with
// the fold's eval JSON.
func TestReproSTTDFEWScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	root := writeDFEWFixture(t)
	runs := filepath.Join(t.TempDir(), "runs")
	script, err := filepath.Abs("../../repro/stt_dfew.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{script, root}, tinySTT...)...)
	cmd.Env = append(os.Environ(), "FERCLI="+os.Args[0], "FERCLI_RUN_MAIN=1", "OMP_WAIT_POLICY=PASSIVE",
		"FER_DEVICE=cpu", "FOLDS=1", "RUNS="+runs)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	t.Logf("repro/stt_dfew.sh output:\n%s", out)
	var ev struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	b, err := os.ReadFile(filepath.Join(runs, "fold1", "eval_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf("%-6s %8.2f %8.2f", "1", 100*ev.Metrics["uar"], 100*ev.Metrics["war"])
	mean := fmt.Sprintf("%-6s %8.2f %8.2f   (1 folds)", "mean", 100*ev.Metrics["uar"], 100*ev.Metrics["war"])
	for _, want := range []string{row, mean, "paper     54.58    66.65"} {
		if !strings.Contains(out, want) {
			t.Fatalf("script output lacks %q:\n%s", want, out)
		}
	}
	// a second call finds the finished run and only re-evaluates
	cmd = exec.Command("bash", script, root)
	cmd.Env = append(os.Environ(), "FERCLI="+os.Args[0], "FERCLI_RUN_MAIN=1", "OMP_WAIT_POLICY=PASSIVE",
		"FER_DEVICE=cpu", "FOLDS=1", "RUNS="+runs)
	outb, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(outb), "already finished") || !strings.Contains(string(outb), row) {
		t.Fatalf("rerun: %v\n%s", err, outb)
	}
}
