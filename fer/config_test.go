package fer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sampleYAML = `
model:
  name: smallcnn
  options: {width: 16}
data:
  name: synth
  options:
    train_n: 100
optimizer:
  name: adam
  lr: 0.001
  lr_mult: {"backbone.": 0.1}
schedule: {name: step, step_size: 40, gamma: 0.1}
epochs: 100
batch_size: 32
seed: 3
run_dir: runs/x
`

func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAndOverrides(t *testing.T) {
	p := writeTemp(t, "run.yaml", sampleYAML)
	cfg, err := LoadConfig(p,
		"optimizer.lr=0.01",
		"model.options.dropout=0.5",
		"data.options={train_n: 7, size: 40}",
		"optimizer.lr_mult[head.]=2",
		"schedule.gamma=0.5")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Optimizer.Name != "adam" || cfg.Optimizer.LR != 0.01 || cfg.Epochs != 100 || cfg.Seed != 3 {
		t.Fatalf("values: %+v", cfg)
	}
	// keys the file leaves out keep DefaultConfig's values
	if d := DefaultConfig(); cfg.Optimizer.Beta2 != d.Optimizer.Beta2 || cfg.EvalEvery != d.EvalEvery || cfg.Device != d.Device {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Model.Options, map[string]any{"width": 16, "dropout": 0.5}) {
		t.Fatalf("model options %v", cfg.Model.Options)
	}
	if !reflect.DeepEqual(cfg.Data.Options, map[string]any{"train_n": 7, "size": 40}) {
		t.Fatalf("data options %v (a mapping value replaces the mapping)", cfg.Data.Options)
	}
	if !reflect.DeepEqual(cfg.Optimizer.LRMult, map[string]float64{"backbone.": 0.1, "head.": 2}) {
		t.Fatalf("lr_mult %v", cfg.Optimizer.LRMult)
	}
	if cfg.Schedule.Gamma != 0.5 || cfg.Schedule.StepSize != 40 {
		t.Fatalf("schedule %+v", cfg.Schedule)
	}
	// Save → Load gives the same config
	out := filepath.Join(t.TempDir(), "config.yaml")
	if err := cfg.Save(out); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, back) {
		t.Fatalf("round trip:\n%+v\n%+v", cfg, back)
	}
}

func TestConfigErrors(t *testing.T) {
	p := writeTemp(t, "bad.yaml", sampleYAML+"optimiser:\n  lr: 1\n")
	_, err := LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), `unknown key "optimiser"`) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 18") {
		t.Fatalf("unknown top-level key: %v", err)
	}
	_, err = LoadConfig(p[:len(p)-8]+"run.yaml", "optimizer.momentun=0.9")
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
	good := writeTemp(t, "run.yaml", sampleYAML)
	cases := map[string]string{
		"optimizer.momentun=0.9": `unknown key "optimizer.momentun"`,
		"epochs=0":               "epochs = 0",
		"optimizer.name=rmsprop": "want sgd, adam or adamw",
		"schedule.step_size=0":   "step_size = 0",
		"optimizer.lr=-1":        "lr = -1",
		"best_mode=up":           "best_mode",
		"epochs=ten":             `epochs: want an integer, got "ten"`,
		"noequals":               "want key=value",
		"optimizer={name: sgd, lr: 0.1, momentum: 0, nesterov: true}": "nesterov needs momentum > 0",
	}
	for ov, want := range cases {
		_, err := LoadConfig(good, ov)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", ov, err, want)
		}
	}
	type opts struct {
		Width int `yaml:"width"`
	}
	o := opts{Width: 3}
	err = DecodeOptions(map[string]any{"widht": 4}, &o, "model smallcnn")
	if err == nil || !strings.Contains(err.Error(), `model smallcnn options: unknown key "widht"`) || !strings.Contains(err.Error(), "width") {
		t.Fatalf("options typo: %v", err)
	}
	if err := DecodeOptions(map[string]any{"width": 4}, &o, "m"); err != nil || o.Width != 4 {
		t.Fatalf("options: %v %+v", err, o)
	}
}

func TestBestKey(t *testing.T) {
	for _, c := range []struct {
		metric, mode, key string
		max               bool
	}{
		{"val/uar", "", "val/uar", true},
		{"war", "", "val/war", true},
		{"loss", "", "val/loss", false},
		{"val/loss/ce", "", "val/loss/ce", true}, // last path element is "ce"
		{"val/ccc", "min", "val/ccc", false},
	} {
		cfg := DefaultConfig()
		cfg.BestMetric, cfg.BestMode = c.metric, c.mode
		k, m := cfg.BestKey()
		if k != c.key || m != c.max {
			t.Errorf("%s/%s: %s %v, want %s %v", c.metric, c.mode, k, m, c.key, c.max)
		}
	}
}

// The schedules agree with torch.optim.lr_scheduler stepped once per
// epoch. Reference values printed by PyTorch 1.13 (testdata/schedules.py).
func TestSchedulesMatchTorch(t *testing.T) {
	ref := map[string][]float64{
		// StepLR(step_size=3, gamma=0.1), lr 0.1
		"step": {0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002, 0.0010000000000000002},
		// ExponentialLR(gamma=0.98), lr 3e-6
		"exponential": {3e-06, 2.9400000000000002e-06, 2.8812e-06, 2.823576e-06, 2.76710448e-06, 2.7117623904e-06, 2.657527142592e-06, 2.60437659974016e-06},
		// CosineAnnealingLR(T_max=8, eta_min=0.001), lr 0.1
		"cosine": {0.1, 0.0962320368593087, 0.0855017856687341, 0.06944282990207196, 0.0505, 0.03155717009792806, 0.0154982143312659, 0.004767963140691306},
	}
	cfgs := map[string]ScheduleConfig{
		"step":        {Name: "step", StepSize: 3, Gamma: 0.1},
		"exponential": {Name: "exponential", Gamma: 0.98},
		"cosine":      {Name: "cosine", TMax: 8, MinLR: 0.001},
	}
	base := map[string]float64{"step": 0.1, "exponential": 3e-6, "cosine": 0.1}
	for name, want := range ref {
		for e, w := range want {
			got := cfgs[name].LR(base[name], e, 8)
			if d := got - w; d > 1e-9*w || d < -1e-9*w {
				t.Errorf("%s epoch %d: %v, torch %v", name, e, got, w)
			}
		}
	}
	w := ScheduleConfig{Name: "constant", WarmupEpochs: 4}
	for e, want := range []float64{0.25, 0.5, 0.75, 1, 1} {
		if got := w.LR(1, e, 10); got != want {
			t.Errorf("warm-up epoch %d: %v, want %v", e, got, want)
		}
	}
}
