package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/featfile"
	"github.com/fer-research/fer/models"
	"github.com/fer-research/fer/models/gradcam"
	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot/vg"
)

var setupOnce sync.Once

// lockTorch pins the test to its OS thread (libtorch's grad mode is per
// thread; GOTCH.md) and sets the runtime up once.
func lockTorch(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	setupOnce.Do(func() {
		if _, err := fer.Setup(fer.RuntimeOptions{Device: "cpu", Seed: 1}); err != nil {
			t.Fatal(err)
		}
	})
}

// runPlot runs `fercli plot args...` through the registered command and
// returns what it printed.
func runPlot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cmd *cli.Command
	for _, c := range commands {
		if c.Name == "plot" {
			cmd = c
		}
	}
	if cmd == nil {
		t.Fatal("plot command not registered")
	}
	var out bytes.Buffer
	app := &cli.App{Name: "fercli", Commands: []*cli.Command{cmd}, Writer: &out, ErrWriter: &out,
		Flags: []cli.Flag{&cli.StringFlag{Name: "device", Value: "cpu"}}}
	err := app.Run(append([]string{"fercli", "plot"}, args...))
	return out.String(), err
}

// checkPNG decodes path and checks its pixel size for a w×h figure.
func checkPNG(t *testing.T, path string, w, h vg.Length) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a valid PNG: %v", path, err)
	}
	pw, ph := plots.PixelSize(w, h)
	if b := img.Bounds(); b.Dx() != pw || b.Dy() != ph {
		t.Errorf("%s is %dx%d px, want %dx%d", path, b.Dx(), b.Dy(), pw, ph)
	}
}

// checkSVG checks that path is an SVG document of w×h points.
func checkSVG(t *testing.T, path string, w, h vg.Length) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		XMLName xml.Name
		Width   string `xml:"width,attr"`
		Height  string `xml:"height,attr"`
	}
	if err := xml.Unmarshal(b, &root); err != nil || root.XMLName.Local != "svg" {
		t.Fatalf("%s is not an SVG document: %v", path, err)
	}
	for _, c := range []struct {
		got  string
		want vg.Length
	}{{root.Width, w}, {root.Height, h}} {
		v, err := strconv.ParseFloat(strings.TrimSuffix(c.got, "pt"), 64)
		if err != nil || math.Abs(v-c.want.Points()) > 0.01 {
			t.Errorf("%s size %q, want %gpt", path, c.got, c.want.Points())
		}
	}
}

var testClasses = []string{"neutral", "happy", "sad", "surprise", "anger"}

// writeFeatures saves n samples of 5 Gaussian classes in 12-D (class
// i%5), the prediction wrong (the next class) in every fifth block of five.
func writeFeatures(t *testing.T, n int) (string, *featfile.Features) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 1))
	f := &featfile.Features{Classes: testClasses, Model: "testnet", Dataset: "synth/test"}
	for i := 0; i < n; i++ {
		c := i % 5
		row := make([]float32, 12)
		for j := range row {
			row[j] = float32(r.NormFloat64())
		}
		row[c] += 6
		f.X = append(f.X, row)
		f.Labels = append(f.Labels, c)
		p := c
		if (i/5)%5 == 4 {
			p = (c + 1) % 5
		}
		f.Preds = append(f.Preds, p)
	}
	p := filepath.Join(t.TempDir(), "feats.safetensors")
	if err := featfile.Save(p, f); err != nil {
		t.Fatal(err)
	}
	return p, f
}

func TestPlotTSNE(t *testing.T) {
	in, _ := writeFeatures(t, 120)
	w, h := plots.ScatterSize()
	// Default output: next to the input.
	if _, err := runPlot(t, "tsne", "--iterations", "300", in); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, strings.TrimSuffix(in, ".safetensors")+"-tsne.png", w, h)
	svg := filepath.Join(t.TempDir(), "t.svg")
	if _, err := runPlot(t, "tsne", "--max-points", "60", "--seed", "3", "--perplexity", "10", "--iterations", "300", "-o", svg, in); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg, w, h)
	if b, _ := os.ReadFile(svg); !bytes.Contains(b, []byte("60 of 120 samples")) || !bytes.Contains(b, []byte("perplexity 10")) {
		t.Error("t-SNE title does not report the subsample and perplexity")
	}
	if _, err := runPlot(t, "tsne", filepath.Join(t.TempDir(), "missing.safetensors")); err == nil {
		t.Error("missing feature file accepted")
	}
	if _, err := runPlot(t, "tsne"); err == nil {
		t.Error("no argument accepted")
	}
}

func TestPlotMDS(t *testing.T) {
	in, f := writeFeatures(t, 150)
	o := filepath.Join(t.TempDir(), "m.png")
	out, err := runPlot(t, "mds", "-o", o, in)
	if err != nil {
		t.Fatal(err)
	}
	w, h := plots.ScatterSize()
	checkPNG(t, o, w, h)
	// The printed statistic is the class-centre distance of the features.
	per, mean, err := plots.ClassCentreDistance(f.X64(), f.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("feature space (12-D), N=150: mean %.4g", mean); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if want := fmt.Sprintf("sad          %.4g", per[2]); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

func TestPlotConfusion(t *testing.T) {
	in, _ := writeFeatures(t, 100)
	w, h := plots.ConfusionSize(5)
	o := filepath.Join(t.TempDir(), "c.png")
	if _, err := runPlot(t, "confusion", "-o", o, in); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, o, w, h)
	f, _ := featfile.Load(in)
	counts, err := featureConfusion(f, in)
	if err != nil {
		t.Fatal(err)
	}
	// 20 samples per class: 16 right, 4 predicted as the next class.
	for i := 0; i < 5; i++ {
		if counts[i][i] != 16 || counts[i][(i+1)%5] != 4 {
			t.Errorf("row %d = %v, want 16 on the diagonal and 4 next to it", i, counts[i])
		}
	}

	dir := t.TempDir()
	csvPath := filepath.Join(dir, "cm.csv")
	os.WriteFile(csvPath, []byte("true\\pred,pos,neg,neu\npos,5,1,0\nneg,2,7,1\nneu,0,0,9\n"), 0o644)
	got, names, err := readCountsCSV(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[[5 1 0] [2 7 1] [0 0 9]]" || strings.Join(names, ",") != "pos,neg,neu" {
		t.Errorf("CSV read as %v %v", got, names)
	}
	bare := filepath.Join(dir, "bare.csv")
	os.WriteFile(bare, []byte("5,1\n2,7\n"), 0o644)
	if got, names, err := readCountsCSV(bare); err != nil || fmt.Sprint(got) != "[[5 1] [2 7]]" || names != nil {
		t.Errorf("bare CSV read as %v %v %v", got, names, err)
	}
	jsonPath := filepath.Join(dir, "cm.json")
	os.WriteFile(jsonPath, []byte(`{"classes":["a","b"],"counts":[[3,1],[0,4]]}`), 0o644)
	if got, names, err := readCountsJSON(jsonPath); err != nil || fmt.Sprint(got) != "[[3 1] [0 4]]" || strings.Join(names, ",") != "a,b" {
		t.Errorf("JSON read as %v %v %v", got, names, err)
	}
	w, h = plots.ConfusionSize(3)
	if _, err := runPlot(t, "confusion", csvPath); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "cm-confusion.png"), w, h)
	svg := filepath.Join(dir, "j.svg")
	if _, err := runPlot(t, "confusion", "--title", "from JSON", "-o", svg, jsonPath); err != nil {
		t.Fatal(err)
	}
	w, h = plots.ConfusionSize(2)
	checkSVG(t, svg, w, h)

	ragged := filepath.Join(dir, "ragged.csv")
	os.WriteFile(ragged, []byte("5,1,0\n2,7\n"), 0o644)
	if _, err := runPlot(t, "confusion", ragged); err == nil {
		t.Error("ragged table accepted")
	}
	if _, err := runPlot(t, "confusion", "--classes", "a,b,c", jsonPath); err == nil {
		t.Error("3 class names for a 2×2 table accepted")
	}
}

func TestPlotCurves(t *testing.T) {
	run := t.TempDir()
	var log strings.Builder
	for e := 1; e <= 4; e++ {
		fmt.Fprintf(&log, `{"epoch":%d,"step":%d,"split":"train","loss":%g,"acc":%g}`+"\n", e, 10*e, 2/float64(e), 0.3+0.1*float64(e))
		fmt.Fprintf(&log, `{"epoch":%d,"step":%d,"split":"val","loss":%g,"uar":%g}`+"\n", e, 10*e, 2.2/float64(e), 0.25+0.1*float64(e))
	}
	os.WriteFile(filepath.Join(run, fer.MetricsFile), []byte(log.String()), 0o644)
	if _, err := runPlot(t, "curves", run); err != nil {
		t.Fatal(err)
	}
	w, h := plots.CurvesSize(2)
	checkPNG(t, filepath.Join(run, "curves.png"), w, h)
	svg := filepath.Join(t.TempDir(), "c.svg")
	if _, err := runPlot(t, "curves", "-o", svg, filepath.Join(run, fer.MetricsFile)); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg, w, h)
	if _, err := runPlot(t, "curves", t.TempDir()); err == nil {
		t.Error("run folder without metrics.jsonl accepted")
	}
}

// testClipCNN is a clip model for the test: the SmallCNN on every frame,
// logits averaged over the frames. It implements gradcam.StageForwarder.
type testClipCNN struct {
	net *models.SmallCNN
	vs  *nn.VarStore
}

func (m *testClipCNN) frames(x *ts.Tensor) (*ts.Tensor, int64) {
	s := x.MustSize()
	return x.MustReshape([]int64{s[0] * s[1], s[2], s[3], s[4]}, false), s[1]
}

func (m *testClipCNN) Forward(b *fer.Batch, train bool) (fer.Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	f, T := m.frames(x)
	l := m.net.ForwardT(f, train)
	f.MustDrop()
	return fer.Outputs{fer.OutputLogits: m.average(l, T)}, nil
}

func (m *testClipCNN) average(l *ts.Tensor, T int64) *ts.Tensor {
	s := l.MustSize()
	r := l.MustReshape([]int64{s[0] / T, T, s[1]}, true)
	return r.MustMeanDim([]int64{1}, false, r.DType(), true)
}

func (m *testClipCNN) VarStore() *nn.VarStore { return m.vs }
func (m *testClipCNN) Stages() []string       { return gradcam.SmallCNN(m.net).Stages() }

func (m *testClipCNN) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	f, T := m.frames(x)
	defer f.MustDrop()
	l, act, err := gradcam.SmallCNN(m.net).ForwardWithStage(f, stage)
	if err != nil {
		return nil, nil, err
	}
	return m.average(l, T), act, nil
}

func init() {
	fer.RegisterModel("test-clipcnn", "test clip model", func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
		cfg := models.DefaultSmallCNNConfig(int64(spec.NumClasses))
		cfg.Width = 4
		net, err := models.NewSmallCNN(vs.Root(), cfg)
		if err != nil {
			return nil, err
		}
		return &testClipCNN{net: net, vs: vs}, nil
	})
}

// writeCheckpoint builds model on a small synth set (freshly initialised
// weights: Grad-CAM only needs a model) and saves a checkpoint.
func writeCheckpoint(t *testing.T, model string, frames int) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := fer.ParseConfig(nil, "test",
		"model.name="+model, "model.options={}",
		fmt.Sprintf("data.options={train_n: 14, val_n: 0, test_n: 0, size: 32, frames: %d}", frames),
		"device=cpu", fmt.Sprintf("run_dir=%q", dir))
	if err != nil {
		t.Fatal(err)
	}
	if model == "smallcnn" {
		cfg.Model.Options = map[string]any{"width": 4}
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "test.ckpt")
	if err := fer.SaveCheckpoint(p, r.Model, nil, fer.CheckpointMeta{Model: model, Epoch: 3, Config: string(y),
		Classes: r.Data.Classes, InputShape: r.Data.InputShape}); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFaces writes n synthetic faces (frames > 0: the frames of one clip)
// as PNG files into a new folder and returns their paths.
func writeFaces(t *testing.T, n, frames, size int) []string {
	t.Helper()
	s, err := synth.Generate(synth.Config{N: max(n, 1), Size: size, Frames: frames, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []*image.RGBA
	if frames > 0 {
		imgs = s[0].Frames
	} else {
		for i := range s {
			imgs = append(imgs, s[i].Image())
		}
	}
	dir := t.TempDir()
	var paths []string
	for i, img := range imgs {
		p := filepath.Join(dir, fmt.Sprintf("f%02d.png", i))
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestPlotGradCAM(t *testing.T) {
	lockTorch(t)
	ckpt := writeCheckpoint(t, "smallcnn", 0)
	faces := writeFaces(t, 2, 0, 64)

	// One image: input and overlay side by side, two title lines.
	o := filepath.Join(t.TempDir(), "cam.png")
	out, err := runPlot(t, "gradcam", "--checkpoint", ckpt, "--model", "smallcnn", "-o", o, faces[0])
	if err != nil {
		t.Fatal(err)
	}
	w, h := plots.GradCAMSize(2, 0, 1, 2)
	checkPNG(t, o, w, h)
	if !strings.Contains(out, "f00.png: ") || !strings.Contains(out, "(p = ") {
		t.Errorf("output lacks the explained class:\n%s", out)
	}
	// Two images (a folder), an explicit class and stage, SVG, default
	// output name next to the input.
	dir := filepath.Dir(faces[0])
	out, err = runPlot(t, "gradcam", "--ckpt", ckpt, "--class", "sad", "--stage", "stage2", dir)
	if err != nil {
		t.Fatal(err)
	}
	w, h = plots.GradCAMSize(2, 0, 1, 1)
	checkPNG(t, dir+"-gradcam.png", w, h)
	if strings.Count(out, "sad (p = ") != 2 {
		t.Errorf("both images should explain class sad:\n%s", out)
	}
	svg := filepath.Join(t.TempDir(), "cam.svg")
	if _, err := runPlot(t, "gradcam", "--checkpoint", ckpt, "--class", "2", "-o", svg, faces[1]); err != nil {
		t.Fatal(err)
	}
	w, h = plots.GradCAMSize(2, 0, 1, 2)
	checkSVG(t, svg, w, h)

	for _, bad := range [][]string{
		{"--model", "stt"},        // not the checkpoint's model
		{"--stage", "layer4"},     // no such stage
		{"--class", "contempt"},   // no such class
		{"--normalize", "zscore"}, // (ignored for images, accepted)
	} {
		args := append([]string{"gradcam", "--checkpoint", ckpt, "-o", filepath.Join(t.TempDir(), "x.png")}, bad...)
		_, err := runPlot(t, append(args, faces[0])...)
		if bad[0] == "--normalize" {
			if err != nil {
				t.Errorf("%v: %v", bad, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v accepted", bad)
		} else if bad[0] == "--stage" && !strings.Contains(err.Error(), "stage3") {
			t.Errorf("unknown stage error does not list the stages: %v", err)
		}
	}
	if _, err := runPlot(t, "gradcam", "--checkpoint", ckpt, filepath.Join(dir, "missing.png")); err == nil {
		t.Error("missing image accepted")
	}
}

func TestPlotGradCAMClip(t *testing.T) {
	lockTorch(t)
	ckpt := writeCheckpoint(t, "test-clipcnn", 4)
	frames := writeFaces(t, 1, 6, 48) // 6 frames, the model takes 4
	dir := filepath.Dir(frames[0])
	o := filepath.Join(t.TempDir(), "clip.png")
	out, err := runPlot(t, "gradcam", "--checkpoint", ckpt, "-o", o, dir)
	if err != nil {
		t.Fatal(err)
	}
	w, h := plots.GradCAMSize(4, 0, 1, 2)
	checkPNG(t, o, w, h)
	if !strings.Contains(out, dir+": ") {
		t.Errorf("output lacks the clip's class:\n%s", out)
	}
	if _, err := runPlot(t, "gradcam", "--checkpoint", ckpt, frames[0]); err == nil {
		t.Error("a single image accepted for a clip model")
	}
	if _, err := runPlot(t, "gradcam", "--checkpoint", ckpt, "--normalize", "zscore", dir); err == nil {
		t.Error("--normalize zscore accepted")
	}
}

// TestDumpFeatures drives eval's --dump-features hook (dumpFeatures) and
// plots the file it writes.
func TestDumpFeatures(t *testing.T) {
	lockTorch(t)
	ckpt := writeCheckpoint(t, "smallcnn", 0)
	p := filepath.Join(t.TempDir(), "f.safetensors")
	app := &cli.App{Name: "fercli", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}, Commands: []*cli.Command{{
		Name:  "eval",
		Flags: []cli.Flag{&cli.StringFlag{Name: "split", Value: "train"}, dumpFeaturesFlag},
		Action: func(c *cli.Context) error {
			r, _, err := fer.LoadRun(ckpt)
			if err != nil {
				return err
			}
			ds, err := pickSplit(r.Data, c.String("split"))
			if err != nil {
				return err
			}
			return dumpFeatures(c, r, ds, 5)
		},
	}}}
	if err := app.Run([]string{"fercli", "eval", "--dump-features", p}); err != nil {
		t.Fatal(err)
	}
	f, err := featfile.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	// 14 training faces; SmallCNN width 4 pools 8·4 = 32 features.
	if f.N() != 14 || f.Dim() != 32 || len(f.Probs[0]) != 7 || f.Model != "smallcnn" || f.Dataset != "synth/train" || f.Classes[1] != "happy" {
		t.Errorf("feature file: N=%d D=%d C=%d model %q dataset %q classes %v", f.N(), f.Dim(), len(f.Probs[0]), f.Model, f.Dataset, f.Classes)
	}
	for i, row := range f.X {
		for _, v := range row {
			if v < 0 {
				t.Fatalf("sample %d: feature %v < 0 after ReLU and average pooling", i, v)
			}
		}
	}
	if _, err := runPlot(t, "confusion", p); err != nil {
		t.Error(err)
	}
}
