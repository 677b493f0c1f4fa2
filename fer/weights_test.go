package fer

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	fx "github.com/fer-research/fer/internal/staticfixtures"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// publishedMLP is the test model with published-weights loaders on its
// network (inside the Classifier, as the backbone classifiers have
// them). Its "file format" is one line of text: "whole" sets every
// variable (fc2.bias to 0.25), "backbone" only fc1; the strict loader
// refuses "backbone".
type publishedMLP struct {
	*testMLP
	vs    *nn.VarStore
	calls []string
}

func (m *publishedMLP) load(path string, classes []string, strict bool) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	kind := strings.TrimSpace(string(b))
	m.calls = append(m.calls, fmt.Sprintf("%s %v %s", kind, strict, strings.Join(classes, ",")))
	switch {
	case kind == "backbone" && strict:
		return "", fmt.Errorf("%s holds no head: missing keys fc2.weight, fc2.bias", path)
	case kind != "backbone" && kind != "whole":
		return "", fmt.Errorf("%s: unknown format", path)
	}
	if kind == "whole" {
		b := m.vs.Variables()["fc2.bias"]
		ts.NoGrad(func() { b.Fill_(ts.FloatScalar(0.25)) })
	}
	return kind + " loaded; head rows " + strings.Join(classes, ", "), nil
}

func (m *publishedMLP) LoadWeights(path string, classes []string) (string, error) {
	return m.load(path, classes, false)
}

func (m *publishedMLP) LoadWeightsStrict(path string, classes []string) (string, error) {
	return m.load(path, classes, true)
}

func init() {
	RegisterModel("test-published", "test model with published-weights loaders", func(vs *nn.VarStore, spec ModelSpec) (Model, error) {
		m, err := newTestMLP(vs, spec)
		if err != nil {
			return nil, err
		}
		c := m.(*Classifier)
		c.Net = &publishedMLP{testMLP: c.Net.(*testMLP), vs: vs}
		return c, nil
	})
}

func writeText(t *testing.T, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// IsCheckpoint tells fer checkpoints (libtorch archives, also when cut
// short) from torch.save files (zip or legacy) by their structure.
func TestIsCheckpoint(t *testing.T) {
	_, ckpt := fitTiny(t, "data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0}")
	dir := t.TempDir()
	full, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	cut := writeText(t, dir, "cut.ckpt", string(full[:200]))
	legacy := writeText(t, dir, "legacy.pth", "\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")
	zipPath := filepath.Join(dir, "torchsave.pth")
	f, err := os.Create(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range []string{"torchsave/data.pkl", "torchsave/data/0", "torchsave/version"} {
		w, _ := zw.Create(name)
		w.Write([]byte("x"))
	}
	zw.Close()
	f.Close()
	for path, want := range map[string]bool{ckpt: true, cut: true, legacy: false, zipPath: false} {
		got, err := IsCheckpoint(path)
		if err != nil || got != want {
			t.Errorf("IsCheckpoint(%s) = %v, %v; want %v", filepath.Base(path), got, err, want)
		}
	}
	if _, err := IsCheckpoint(filepath.Join(dir, "none")); err == nil {
		t.Error("missing file: want error")
	}
}

// --init FILE: a file that is not a fer checkpoint goes to the model's
// WeightsLoader (here on the network inside the Classifier) with the data
// set's classes; the trainer prints its report. A model without one is
// an error that says so.
func TestInitWeightsPublished(t *testing.T) {
	dir := t.TempDir()
	file := writeText(t, dir, "published.pth", "backbone")
	cfg := tinyConfig(t, "model.name=test-published", "epochs=1", "init="+file,
		"data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0}")
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	var log strings.Builder
	tr.Out = &log
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	want := "init from " + file + " (published weights): backbone loaded; head rows neutral, happy"
	if !strings.Contains(log.String(), want) {
		t.Fatalf("train log lacks %q:\n%s", want, log.String())
	}
	net := r.Model.(*Classifier).Net.(*publishedMLP)
	if len(net.calls) != 1 || net.calls[0] != "backbone false neutral,happy,sad,surprise,fear,disgust,anger" {
		t.Fatalf("loader calls %q", net.calls)
	}
	tiny, err := BuildRun(tinyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitWeights(tiny.Model, file, tiny.Data.Classes); err == nil || !strings.Contains(err.Error(), "is not a fer checkpoint, and model *fer.testMLP reads no published weights") {
		t.Fatalf("model without a loader: %v", err)
	}
	if _, err := InitWeights(r.Model, filepath.Join(dir, "none.pth"), nil); err == nil || !strings.Contains(err.Error(), "none.pth") {
		t.Fatalf("missing file: %v", err)
	}
}

// predict --weights: the still-image data sets describe themselves
// without files (classes, input shape, the test split's preprocessing),
// the model is built for them and the file must be whole
// (StrictWeightsLoader); --classes renames the head's rows.
func TestLoadWeightsRun(t *testing.T) {
	lockThread(t)
	dir := t.TempDir()
	whole := writeText(t, dir, "whole.pth", "whole")
	backbone := writeText(t, dir, "backbone.pth", "backbone")
	cfg := func(model string) *Config {
		c, err := ParseConfig(nil, "test", "model.name="+model, "data.name=rafdb", "device=cpu",
			"data.options={train_transforms: [{resize: [18, 18]}, hflip, {random_crop: 16}, to_tensor], test_transforms: [{resize: [18, 18]}, {center_crop: 16}, to_tensor]}")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r, rep, err := LoadWeightsRun(cfg("test-published"), whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Data.Classes, data.RAFDBClasses) || !slices.Equal(r.Data.InputShape, []int64{3, 16, 16}) || r.Data.Train != nil {
		t.Fatalf("described data: classes %v, shape %v", r.Data.Classes, r.Data.InputShape)
	}
	if rep != "whole loaded; head rows "+strings.Join(data.RAFDBClasses, ", ") {
		t.Fatalf("report %q", rep)
	}
	// a picture is classified as the test split preprocesses it, with the
	// loaded head (bias 0.25 everywhere, so the weights were used)
	pic := filepath.Join(dir, "face.png")
	fx.WritePNG(t, pic, fx.Face(40, 44, 3, 1))
	preds, err := r.Predict([]string{pic}, 1)
	if err != nil || preds[0].Err != nil || len(preds[0].Probs) != 7 {
		t.Fatalf("predict: %v %+v", err, preds)
	}
	if b := r.Model.VarStore().Variables()["fc2.bias"]; b.Float64Values()[0] != 0.25 {
		t.Fatalf("fc2.bias %v: the weights were not loaded", b.Float64Values())
	}
	// the same picture through the data set opened on disk: same input
	root := t.TempDir()
	fx.QCSList(t, root, "raf_db_basic_train.txt", "raf_db_basic_test.txt", "basic", 7, fx.Counts{Train: 2, Test: 1}, ".png")
	opened, err := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: cfg("x").Data.Options}, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := LoadImage(pic)
	if err != nil {
		t.Fatal(err)
	}
	a, err1 := r.Data.ImageInput(img)
	b, err2 := opened.ImageInput(img)
	if err1 != nil || err2 != nil || !slices.Equal(a, b) || !slices.Equal(r.Data.InputShape, opened.InputShape) {
		t.Fatalf("described and opened preprocessing differ (%v, %v)", err1, err2)
	}

	// --classes: the file's own order
	own := []string{"a", "b", "c", "d", "e", "f", "g"}
	r, rep, err = LoadWeightsRun(cfg("test-published"), whole, own)
	if err != nil || !slices.Equal(r.Data.Classes, own) || !strings.HasSuffix(rep, "a, b, c, d, e, f, g") {
		t.Fatalf("--classes: %v %v %q", err, r.Data.Classes, rep)
	}
	for _, c := range []struct {
		model, file string
		classes     []string
		want        string
	}{
		{"test-published", backbone, nil, "holds no head: missing keys fc2.weight"},
		{"test-published", whole, own[:3], "3 class names given for the weights' head, data set rafdb has 7 classes"},
		{"test-tiny", whole, nil, "model test-tiny reads no published weights: classify with a fer checkpoint (--ckpt)"},
		{"test-published", filepath.Join(dir, "none.pth"), nil, "none.pth"},
	} {
		if _, _, err := LoadWeightsRun(cfg(c.model), c.file, c.classes); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want it to mention %q", c.model, filepath.Base(c.file), err, c.want)
		}
	}
	// a fer checkpoint is refused with the flag to use instead
	_, ckpt := fitTiny(t, "data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0}")
	if _, _, err := LoadWeightsRun(cfg("test-published"), ckpt, nil); err == nil || !strings.Contains(err.Error(), "is a fer checkpoint: use --ckpt") {
		t.Fatalf("fer checkpoint as weights: %v", err)
	}
	// a data set without a describer is opened (synth needs no files)
	c := cfg("test-published")
	c.Data = DataConfig{Name: "synth", Options: map[string]any{"size": 32}}
	if r, _, err := LoadWeightsRun(c, whole, nil); err != nil || len(r.Data.Classes) != 7 {
		t.Fatalf("synth: %v", err)
	}
	// describe checks the options as opening does
	c = cfg("test-published")
	c.Data.Options["train_transforms"] = []any{map[string]any{"resize": []any{20, 20}}, "to_tensor"}
	if _, _, err := LoadWeightsRun(c, whole, nil); err == nil || !strings.Contains(err.Error(), "train_transforms") {
		t.Fatalf("train/test sizes differ: %v", err)
	}
}
