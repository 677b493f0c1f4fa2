package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/featfile"
	"github.com/fer-research/fer/fer/metrics"
	"github.com/fer-research/fer/models/gradcam"
	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/urfave/cli/v2"
	xdraw "golang.org/x/image/draw"
)

func init() {
	out := func(def string) cli.Flag {
		return &cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output figure (.png, .svg or .pdf; default " + def + ")"}
	}
	title := &cli.StringFlag{Name: "title", Usage: "figure title (default: model and dataset of the file)"}
	register(&cli.Command{
		Name:  "plot",
		Usage: "draw figures: t-SNE, MDS, confusion matrix, training curves, Grad-CAM, RMFER attention, video timelines",
		Subcommands: []*cli.Command{
			timelineCommand(),
			{
				Name:      "tsne",
				Usage:     "t-SNE of the features in a feature file, coloured by true class",
				ArgsUsage: "FEATURES.safetensors",
				Description: `Reads a feature file (fercli eval --dump-features) and embeds its features
in 2-D with exact t-SNE (perplexity --perplexity, --iterations steps). Files
with more than --max-points samples are subsampled, stratified by class.

  fercli plot tsne feats.safetensors -o tsne.png`,
				Flags: []cli.Flag{
					out("FILE-tsne.png"), title,
					&cli.IntFlag{Name: "max-points", Value: 2000, Usage: "samples embedded at most (t-SNE is O(n²); -1: all)"},
					&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "seed of the subsample and the initial solution"},
					&cli.Float64Flag{Name: "perplexity", Value: 30, Usage: "t-SNE perplexity"},
					&cli.IntFlag{Name: "iterations", Value: 1000, Usage: "gradient-descent iterations"},
				},
				Action: plotTSNE,
			},
			{
				Name:      "mds",
				Usage:     "classical MDS of the features in a feature file; prints the class-centre distances",
				ArgsUsage: "FEATURES.safetensors",
				Description: `Embeds the features in 2-D by classical (Torgerson) MDS and prints, per
class and overall, the mean Euclidean distance of the samples to their
class centre, in the feature space and in the 2-D embedding (smaller =
more compact classes).

  fercli plot mds feats.safetensors -o mds.png`,
				Flags: []cli.Flag{
					out("FILE-mds.png"), title,
					&cli.IntFlag{Name: "max-points", Value: 1000, Usage: "samples embedded at most (MDS is O(n³); -1: all)"},
					&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "seed of the subsample"},
				},
				Action: plotMDS,
			},
			{
				Name:      "confusion",
				Usage:     "confusion matrix from a feature file (labels, predictions) or a count table (CSV, JSON)",
				ArgsUsage: "FEATURES.safetensors|COUNTS.csv|COUNTS.json",
				Description: `FILE is a feature file (fercli eval --dump-features: its labels and
predictions are counted), a CSV table of counts (rows = true class, columns
= predicted class; an optional first row and first column of class names),
or JSON: {"classes": [...], "counts": [[...], ...]} or a bare [[...], ...].

  fercli plot confusion feats.safetensors -o confusion.png`,
				Flags: []cli.Flag{
					out("FILE-confusion.png"), title,
					&cli.StringFlag{Name: "classes", Usage: "comma-separated class names (default: from the file)"},
				},
				Action: plotConfusion,
			},
			{
				Name:      "curves",
				Usage:     "training curves (loss, accuracy / UAR) of a run",
				ArgsUsage: "RUN_DIR|metrics.jsonl",
				Description: `Draws the loss and metric curves of every split from a run's metrics.jsonl.

  fercli plot curves runs/demo`,
				Flags:  []cli.Flag{out("RUN_DIR/curves.png")},
				Action: plotCurves,
			},
			{
				Name:      "gradcam",
				Usage:     "Grad-CAM heat maps of a checkpoint's model over images or a clip",
				ArgsUsage: "IMAGE...|FOLDER",
				Description: `Rebuilds the checkpoint's model, runs the inputs through it and draws the
Grad-CAM map of the chosen stage (default: the last conv stage) for the
predicted class (or --class) over each input. Image models take image
files (a folder stands for the images in it); clip models (inputs
[T,3,H,W], e.g. STT) take ONE folder of frames, sampled at T segment
centres, and get a map per frame.

  fercli plot gradcam --checkpoint runs/demo/best.ckpt face.png -o cam.png`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "checkpoint", Aliases: []string{"ckpt"}, Required: true, Usage: "checkpoint file"},
					&cli.StringFlag{Name: "model", Usage: "model name; checked against the checkpoint's (default: the checkpoint's)"},
					&cli.StringFlag{Name: "stage", Usage: "stage to explain (default: the model's last; a wrong name lists them)"},
					&cli.StringFlag{Name: "class", Usage: "class to explain, name or index (default: the predicted class)"},
					&cli.Float64Flag{Name: "alpha", Value: plots.DefaultCAMAlpha, Usage: "heat-map opacity"},
					&cli.StringFlag{Name: "normalize", Usage: "clip frames: imagenet or none (default: the dataset's; single images always use the dataset's preprocessing)"},
					&cli.IntFlag{Name: "cols", Usage: "panels per row (default: up to 8)"},
					setFlag("override a key of the stored config (repeatable)"),
					out("INPUT-gradcam.png"),
				},
				Action: plotGradCAM,
			},
			{
				Name:      "attention",
				Usage:     "RMFER's Fig. 4: the attention between an RMset anchor, its positives and negatives",
				ArgsUsage: "ATTENTION.json",
				Description: `Draws one group of an attention dump (plots.AttentionDump: the matrix A of
RMFER's inter-sample attention over [anchor, positives, negatives]) as a heat
map, with the face crops above their columns when the dump's files can be
read (relative to the dump's "root", default its folder), and prints the
anchor's mean attention to its positives and to its negatives.

  fercli plot attention --group 0 -o fig4.png attention.json`,
				Flags: []cli.Flag{
					out("FILE-attention.png"), title,
					&cli.IntFlag{Name: "group", Usage: "index of the group in the dump"},
					&cli.BoolFlag{Name: "no-faces", Usage: "do not draw the face crops"},
				},
				Action: plotAttention,
			},
		},
	})
}

// outPath is --out, or the input path with its extension replaced by
// "-<kind>.png".
func outPath(c *cli.Context, in, kind string) string {
	if o := c.String("out"); o != "" {
		return o
	}
	in = strings.TrimRight(in, string(filepath.Separator))
	return strings.TrimSuffix(in, filepath.Ext(in)) + "-" + kind + ".png"
}

// checkMaxPoints rejects --max-points 0 (and below -1): -1 means all.
func checkMaxPoints(c *cli.Context) error {
	if n := c.Int("max-points"); n == 0 || n < -1 {
		return fmt.Errorf("--max-points %d: want >= 1, or -1 for all samples", n)
	}
	return nil
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("plot %s: give exactly one %s (fercli plot %s --help)", c.Command.Name, what, c.Command.Name)
	}
	return c.Args().First(), nil
}

func wrote(c *cli.Context, path string) { fmt.Fprintf(c.App.ErrWriter, "wrote %s\n", path) }

// fileTitle is "<model> on <dataset>" from a feature file's metadata.
func fileTitle(c *cli.Context, f *featfile.Features, path string) string {
	if c.IsSet("title") {
		return c.String("title")
	}
	var parts []string
	if f.Model != "" {
		parts = append(parts, f.Model)
	}
	if f.Dataset != "" {
		parts = append(parts, "on "+f.Dataset)
	}
	if len(parts) == 0 {
		return filepath.Base(path)
	}
	return strings.Join(parts, " ")
}

func plotTSNE(c *cli.Context) error {
	in, err := oneArg(c, "feature file")
	if err != nil {
		return err
	}
	f, err := featfile.Load(in)
	if err != nil {
		return err
	}
	o := outPath(c, in, "tsne")
	opt := plots.TSNEOptions{MaxPoints: c.Int("max-points"), Seed: c.Uint64("seed"),
		Perplexity: c.Float64("perplexity"), Iterations: c.Int("iterations")}
	if err := checkMaxPoints(c); err != nil {
		return err
	}
	if p := opt.Perplexity; !(p > 0) || math.IsInf(p, 0) {
		return fmt.Errorf("--perplexity %v: want a number > 0 (5 to 50 is usual; it is lowered to (samples-1)/3 for small files)", p)
	}
	if opt.Iterations < 1 {
		return fmt.Errorf("--iterations %d: want >= 1", opt.Iterations)
	}
	if _, err := plots.TSNE(o, f.X64(), f.Labels, f.Classes, fileTitle(c, f, in), opt); err != nil {
		return err
	}
	wrote(c, o)
	return nil
}

func plotMDS(c *cli.Context) error {
	in, err := oneArg(c, "feature file")
	if err != nil {
		return err
	}
	f, err := featfile.Load(in)
	if err != nil {
		return err
	}
	o := outPath(c, in, "mds")
	opt := plots.MDSOptions{MaxPoints: c.Int("max-points"), Seed: c.Uint64("seed")}
	if err := checkMaxPoints(c); err != nil {
		return err
	}
	r, err := plots.MDS(o, f.X64(), f.Labels, f.Classes, fileTitle(c, f, in), opt)
	if err != nil {
		return err
	}
	fmt.Fprint(c.App.Writer, r.Format(f.Classes))
	wrote(c, o)
	return nil
}

func plotConfusion(c *cli.Context) error {
	in, err := oneArg(c, "feature file or count table")
	if err != nil {
		return err
	}
	var counts [][]int64
	var classes []string
	title := filepath.Base(in)
	switch strings.ToLower(filepath.Ext(in)) {
	case ".csv":
		counts, classes, err = readCountsCSV(in)
	case ".json":
		counts, classes, err = readCountsJSON(in)
	default:
		var f *featfile.Features
		if f, err = featfile.Load(in); err == nil {
			counts, err = featureConfusion(f, in)
			classes, title = f.Classes, fileTitle(c, f, in)
		}
	}
	if err != nil {
		return err
	}
	if c.IsSet("classes") {
		classes = strings.Split(c.String("classes"), ",")
	}
	if c.IsSet("title") {
		title = c.String("title")
	}
	if len(classes) > 0 && len(classes) != len(counts) {
		return fmt.Errorf("%s: %d class names for a %d×%d table", in, len(classes), len(counts), len(counts))
	}
	o := outPath(c, in, "confusion")
	if err := plots.ConfusionCounts(o, counts, classes, title); err != nil {
		return err
	}
	wrote(c, o)
	return nil
}

// featureConfusion counts a feature file's (label, prediction) pairs;
// unlabelled samples (-1) are skipped.
func featureConfusion(f *featfile.Features, path string) ([][]int64, error) {
	if f.Preds == nil {
		return nil, fmt.Errorf("%s has no predictions (preds); re-create it with fercli eval --dump-features", path)
	}
	n := len(f.Classes)
	if n == 0 {
		for i := range f.Labels {
			n = max(n, f.Labels[i]+1, f.Preds[i]+1)
		}
	}
	cm := metrics.NewConfusion(n)
	for i, l := range f.Labels {
		if l < 0 {
			continue
		}
		if err := cm.Add(l, f.Preds[i]); err != nil {
			return nil, fmt.Errorf("%s sample %d: %w", path, i, err)
		}
	}
	return cm.Counts(), nil
}

// readCountsCSV reads a square count table, with optional class names in
// the first row and/or first column.
func readCountsCSV(path string) ([][]int64, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(bytes.NewReader(b))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil, fmt.Errorf("%s: empty table", path)
	}
	isNum := func(s string) bool { _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); return err == nil }
	var header []string
	if !isNum(recs[0][len(recs[0])-1]) {
		header, recs = recs[0], recs[1:]
	}
	rowNames := len(recs) > 0 && !isNum(recs[0][0])
	var counts [][]int64
	var names []string
	for i, rec := range recs {
		if rowNames {
			names = append(names, strings.TrimSpace(rec[0]))
			rec = rec[1:]
		}
		row := make([]int64, len(rec))
		for j, s := range rec {
			v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s row %d column %d: %q is not a count", path, i+1, j+1, s)
			}
			row[j] = v
		}
		counts = append(counts, row)
	}
	if header != nil {
		if len(header) == len(counts)+1 {
			header = header[1:] // corner cell above the row names
		}
		for i := range header {
			header[i] = strings.TrimSpace(header[i])
		}
		if names == nil {
			names = header
		}
	}
	if err := squareCounts(counts); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return counts, names, nil
}

// readCountsJSON reads {"classes": [...], "counts": [[...]]} (or
// "confusion" for "counts") or a bare [[...]].
func readCountsJSON(path string) ([][]int64, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var counts [][]int64
	var obj struct {
		Classes   []string  `json:"classes"`
		Counts    [][]int64 `json:"counts"`
		Confusion [][]int64 `json:"confusion"`
	}
	if err := json.Unmarshal(b, &counts); err != nil {
		if err2 := json.Unmarshal(b, &obj); err2 != nil {
			return nil, nil, fmt.Errorf("%s: want {\"classes\": [...], \"counts\": [[...]]} or [[...]]: %w", path, err2)
		}
		counts = obj.Counts
		if counts == nil {
			counts = obj.Confusion
		}
	}
	if err := squareCounts(counts); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return counts, obj.Classes, nil
}

func squareCounts(counts [][]int64) error {
	if len(counts) == 0 {
		return errors.New("no counts")
	}
	for i, r := range counts {
		if len(r) != len(counts) {
			return fmt.Errorf("row %d has %d counts, want %d (a square table: rows = true class, columns = predicted)", i+1, len(r), len(counts))
		}
	}
	return nil
}

func plotCurves(c *cli.Context) error {
	in, err := oneArg(c, "run folder")
	if err != nil {
		return err
	}
	o := c.String("out")
	if o == "" {
		dir := in
		if st, err := os.Stat(in); err == nil && !st.IsDir() {
			dir = filepath.Dir(in)
		}
		o = filepath.Join(dir, "curves.png")
	}
	if err := plots.CurvesFromLog(in, o); err != nil {
		return err
	}
	wrote(c, o)
	return nil
}

// camInput is what gradcam runs: the model input, the images to draw on
// (one per map) and their captions.
type camInput struct {
	x     []float32
	shape []int64
	shown []image.Image
	names []string // file of each sample (images) or frame (clips)
	clip  bool
}

func plotGradCAM(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("plot gradcam: give image files, an image folder, or a clip's frame folder")
	}
	ov := sets(c)
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, meta, err := fer.LoadRun(c.String("checkpoint"), ov...)
	if err != nil {
		return err
	}
	name := r.Cfg.Model.Name
	if m := c.String("model"); m != "" && !strings.EqualFold(m, name) {
		return fmt.Errorf("checkpoint %s holds model %s, not %s", c.String("checkpoint"), name, m)
	}
	net, err := gradcam.For(r.Model)
	if err != nil {
		return fmt.Errorf("model %s: %w", name, err)
	}
	in, err := gradcamInput(r, c.Args().Slice(), c.String("normalize"))
	if err != nil {
		return err
	}
	classes := r.Data.Classes
	target := -1
	if s := c.String("class"); s != "" {
		if target, err = classIndex(s, classes); err != nil {
			return err
		}
	}
	B := int(in.shape[0])
	targets := make([]int, B)
	for i := range targets {
		targets[i] = target
	}
	x, err := ts.NewTensorFromData(in.x, in.shape)
	if err != nil {
		return err
	}
	defer x.Drop()
	if r.Device != gotch.CPU {
		xd, err := x.To(r.Device, false)
		if err != nil {
			return err
		}
		defer xd.Drop()
		x = xd
	}
	res, err := gradcam.Compute(net, x, c.String("stage"), targets)
	if err != nil {
		return fmt.Errorf("model %s: %w", name, err)
	}

	cls := func(k int) string {
		if k < len(classes) {
			return classes[k]
		}
		return fmt.Sprintf("class %d", k)
	}
	explain := func(b int) string {
		t, p := res.Targets[b], res.Probs[b]
		top := 0
		for k := range p {
			if p[k] > p[top] {
				top = k
			}
		}
		s := fmt.Sprintf("%s (p = %.2f)", cls(t), p[t])
		if t != top {
			s += fmt.Sprintf("; predicted %s", cls(top))
		}
		if res.Flat[b] {
			s += ", no positive evidence"
		}
		return s
	}
	title := fmt.Sprintf("Grad-CAM of %s at %s (epoch %d)", name, res.Stage, meta.Epoch)
	var panels []plots.CAMPanel
	switch {
	case in.clip:
		title += "\n" + filepath.Base(strings.TrimRight(c.Args().First(), string(filepath.Separator))) + ": " + explain(0)
		for t := 0; t < res.T; t++ {
			panels = append(panels, plots.CAMPanel{Image: in.shown[t], CAM: res.Maps[0][t], Caption: fmt.Sprintf("frame %d", t+1)})
		}
	case B == 1:
		title += "\n" + filepath.Base(in.names[0])
		panels = []plots.CAMPanel{
			{Image: in.shown[0], Caption: "input"},
			{Image: in.shown[0], CAM: res.Maps[0][0], Caption: explain(0)},
		}
	default:
		for b := 0; b < B; b++ {
			panels = append(panels, plots.CAMPanel{Image: in.shown[b], CAM: res.Maps[b][0],
				Caption: strings.TrimSuffix(filepath.Base(in.names[b]), filepath.Ext(in.names[b])) + ": " + explain(b)})
		}
	}
	first := c.Args().First()
	o := outPath(c, first, "gradcam")
	if err := plots.GradCAMFigure(o, title, panels, c.Int("cols"), c.Float64("alpha")); err != nil {
		return err
	}
	for b := 0; b < B; b++ {
		fmt.Fprintf(c.App.Writer, "%s: %s\n", in.names[b], explain(b))
	}
	wrote(c, o)
	return nil
}

// classIndex parses a class name (case-insensitive) or index.
func classIndex(s string, classes []string) (int, error) {
	for i, c := range classes {
		if strings.EqualFold(c, s) {
			return i, nil
		}
	}
	if k, err := strconv.Atoi(s); err == nil && k >= 0 && (len(classes) == 0 || k < len(classes)) {
		return k, nil
	}
	return 0, fmt.Errorf("--class %q: not a class of the model (%s) or an index", s, strings.Join(classes, ", "))
}

// maxCAMImages is the most images one Grad-CAM figure takes.
const maxCAMImages = 32

// maxShown is the longest side of an image as drawn in a Grad-CAM figure
// (larger inputs are scaled down, keeping the figure file small).
const maxShown = 256

// shownImage scales img down to at most maxShown pixels a side.
func shownImage(img image.Image) image.Image {
	b := img.Bounds()
	s := max(b.Dx(), b.Dy())
	if s <= maxShown {
		return img
	}
	w, h := b.Dx()*maxShown/s, b.Dy()*maxShown/s
	dst := image.NewRGBA(image.Rect(0, 0, max(w, 1), max(h, 1)))
	xdraw.BiLinear.Scale(dst, dst.Rect, img, b, xdraw.Src, nil)
	return dst
}

// gradcamInput loads the images (image models) or the frames of one clip
// (clip models, InputShape [T,3,H,W]) and preprocesses them for r.
func gradcamInput(r *fer.Run, args []string, normalize string) (*camInput, error) {
	shape := r.Data.InputShape
	per := int64(1)
	for _, d := range shape {
		per *= d
	}
	in := &camInput{}
	switch len(shape) {
	case 3:
		if r.Data.ImageInput == nil {
			return nil, fmt.Errorf("dataset %s cannot turn single images into model inputs", r.Cfg.Data.Name)
		}
		files, err := fer.ImageFiles(args)
		if err != nil {
			return nil, err
		}
		if len(files) > maxCAMImages {
			return nil, fmt.Errorf("%d images: one Grad-CAM figure shows at most %d (pass fewer files)", len(files), maxCAMImages)
		}
		for _, p := range files {
			img, err := fer.LoadImage(p)
			if err != nil {
				return nil, err
			}
			v, err := r.Data.ImageInput(img)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", p, err)
			}
			if int64(len(v)) != per {
				return nil, fmt.Errorf("image %s: preprocessing gave %d values, the model takes %v", p, len(v), shape)
			}
			in.x = append(in.x, v...)
			in.shown = append(in.shown, shownImage(img))
			in.names = append(in.names, p)
		}
		in.shape = append([]int64{int64(len(files))}, shape...)
	case 4:
		if len(args) != 1 {
			return nil, fmt.Errorf("model %s takes clips: give one folder of frames", r.Cfg.Model.Name)
		}
		if st, err := os.Stat(args[0]); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s: model %s takes clips: give a folder of frame images", args[0], r.Cfg.Model.Name)
		}
		files, err := fer.ImageFiles(args)
		if err != nil {
			return nil, err
		}
		frame, err := frameInput(r, normalize)
		if err != nil {
			return nil, err
		}
		T := int(shape[0])
		for t := 0; t < T; t++ {
			// the centre of segment t of T (frames repeat when the
			// clip is shorter than T)
			p := files[min((2*t+1)*len(files)/(2*T), len(files)-1)]
			img, err := fer.LoadImage(p)
			if err != nil {
				return nil, err
			}
			in.x = append(in.x, frame(img, int(shape[2]), int(shape[3]))...)
			in.shown = append(in.shown, shownImage(img))
		}
		in.names = []string{args[0]}
		in.shape = append([]int64{1}, shape...)
		in.clip = true
	default:
		return nil, fmt.Errorf("model %s takes inputs of shape %v: Grad-CAM needs images [3,H,W] or clips [T,3,H,W]", r.Cfg.Model.Name, shape)
	}
	return in, nil
}

// frameInput returns the preprocessing of one clip frame: resized to H×W
// (bilinear), scaled to [0,1] and normalised per channel with ImageNet's
// mean and std ("imagenet") or not at all ("none"). The default is the
// synth dataset's own normalize option, and "none" (pixel/255, Former-DFER's
// protocol, which fer's clip loaders follow) for other datasets. Clip
// datasets publish no single-frame preprocessing (fer.Splits.ImageInput is
// for image datasets), hence this.
func frameInput(r *fer.Run, normalize string) (func(img image.Image, h, w int) []float32, error) {
	if normalize == "" {
		normalize = "none"
		if r.Cfg.Data.Name == "synth" {
			o := fer.DefaultSynthOptions()
			if err := fer.DecodeOptions(r.Cfg.Data.Options, &o, "dataset synth"); err == nil && o.Normalize != "" {
				normalize = o.Normalize
			}
		}
	}
	mean, std := synth.ZeroMean, synth.UnitStd
	switch normalize {
	case "imagenet":
		mean, std = synth.ImageNetMean, synth.ImageNetStd
	case "none":
	default:
		return nil, fmt.Errorf("--normalize %q: want imagenet or none", normalize)
	}
	return func(img image.Image, h, w int) []float32 {
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		xdraw.BiLinear.Scale(dst, dst.Rect, img, img.Bounds(), xdraw.Src, nil)
		return synth.ToCHW(dst, mean, std)
	}, nil
}
