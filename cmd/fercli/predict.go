package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "predict",
		Usage:     "classify the faces in photos and videos (or face crops)",
		ArgsUsage: "PHOTO|VIDEO|FOLDER...",
		Description: `Finds every face in photos (PNG, JPEG, GIF, BMP, TIFF, WebP) and videos
(anything ffmpeg reads), aligns it as the checkpoint's data set's images
were cropped (--crop), classifies it with the checkpoint, and prints one
row per face: CSV (or JSON lines with --json) with the box, the detector
score, the prediction and the class probabilities, plus valence/arousal
and AU probabilities when the model has them. Videos give one row per
frame and face, with the frame number, its time and a track ID; frames
are decoded as needed (ffmpeg pipe) while faces are detected on worker
goroutines and the model runs on batches of faces. Clip models (STT) get
each track's last T frames. A folder stands for the photos and videos
directly inside it. --faces whole classifies whole images (face crops, as
the data sets store them) without detection.

  fercli predict --ckpt best.ckpt photo.jpg --annotate out/
  fercli predict --ckpt best.ckpt clip.mp4 -o clip.csv --annotate clip-boxes.mp4
  fercli predict --ckpt best.ckpt --faces whole face1.png faces/

Published weights in a paper's reference format (no fer checkpoint, no
data set on disk): --weights FILE with --model and --data. The model is
built as the built-in configs/<model>_<data>.yaml says (if there is one;
--set changes a key), pictures are preprocessed as the data set's test
split, and the file must hold the whole model. The weights' class head is
read in the data set's class order (README lists them) unless --classes
gives the file's own order:

  fercli predict --model qcs --weights QCS_RAF-DB.pth --data rafdb photo.jpg`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "ckpt", Usage: "fer checkpoint file (RUN/best.ckpt)"},
			&cli.StringFlag{Name: "weights", Usage: "published weights in the model's reference format (e.g. a QCS checkpoint of birdwcp/QCS), instead of --ckpt; needs --model and --data"},
			&cli.StringFlag{Name: "model", Usage: "with --weights: the model the file holds (" + strings.Join(fer.ModelNames(), ", ") + ")"},
			&cli.StringFlag{Name: "data", Usage: "with --weights: the data set the weights were trained on (its classes and test preprocessing; no files needed for " + strings.Join(fer.StaticDatasetNames(), ", ") + ")"},
			&cli.StringFlag{Name: "data-root", Usage: "with --weights: the data set's folder, for data sets that read their classes from their files"},
			&cli.StringFlag{Name: "classes", Usage: "with --weights: the class order of the file's head, comma-separated (default: the data set's order)"},
			setFlag("with --weights: override a key of the model's built-in config, e.g. --set model.options.dim=64 (repeatable)"),
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "faces per forward pass"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines {file, prediction, probs, ...}"},
		}, mediaFlags()...),
		Action: predictAction,
	})
}

func predictAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give photos, videos or folders (fercli predict --ckpt CKPT PHOTO|VIDEO..., or --weights FILE --model M --data D PHOTO|VIDEO...)")
	}
	if bs := c.Int("batch-size"); bs < 1 {
		return fmt.Errorf("--batch-size %d: want >= 1", bs)
	}
	photos, videos, err := mediaInputs(c.Args().Slice())
	if err != nil {
		return err
	}
	r, err := loadPredictRun(c)
	if err != nil {
		return err
	}
	if c.String("faces") != "whole" || len(videos) > 0 {
		return predictMedia(c, r, photos, videos)
	}
	return predictCrops(c, r, photos)
}

// loadPredictRun rebuilds the checkpoint's run (model and
// preprocessing), or with --weights builds the model for the data set and
// loads the published weights.
func loadPredictRun(c *cli.Context) (*fer.Run, error) {
	var ov []string
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	if c.IsSet("weights") {
		return loadWeightsRun(c, ov)
	}
	for _, f := range []string{"model", "data", "data-root", "classes", "set"} {
		if c.IsSet(f) {
			return nil, fmt.Errorf("--%s goes with --weights: a fer checkpoint (--ckpt) knows its model, data set and classes", f)
		}
	}
	if !c.IsSet("ckpt") {
		return nil, fmt.Errorf("predict: give --ckpt RUN/best.ckpt, or published weights with --weights FILE --model M --data D")
	}
	r, _, err := fer.LoadRun(c.String("ckpt"), ov...)
	return r, err
}

// loadWeightsRun is predict --weights: the built-in config of (model,
// data) when there is one, --set on top, the data set described without
// its files, the weights loaded whole (fer.LoadWeightsRun). The loader's
// report goes to stderr.
func loadWeightsRun(c *cli.Context, ov []string) (*fer.Run, error) {
	if c.IsSet("ckpt") {
		return nil, fmt.Errorf("--ckpt and --weights exclude each other: a fer checkpoint or published weights")
	}
	model, data := c.String("model"), c.String("data")
	if model == "" || data == "" {
		return nil, fmt.Errorf("--weights needs --model (the model the file holds) and --data (the data set it was trained on, for its classes and preprocessing)")
	}
	pre := []string{fmt.Sprintf("model.name=%q", model), fmt.Sprintf("data.name=%q", data)}
	if c.IsSet("data-root") {
		pre = append(pre, fmt.Sprintf("data.root=%q", c.String("data-root")))
	}
	ov = append(append(pre, sets(c)...), ov...)
	var cfg *fer.Config
	var err error
	if src, name := embeddedConfig(model, data); src != nil {
		cfg, err = fer.ParseConfig(src, "built-in "+name, ov...)
	} else {
		cfg, err = fer.LoadConfig("", ov...)
	}
	if err != nil {
		return nil, err
	}
	var classes []string
	if c.IsSet("classes") {
		if classes, err = parseClassList(c.String("classes")); err != nil {
			return nil, fmt.Errorf("--classes: %w", err)
		}
	}
	r, rep, err := fer.LoadWeightsRun(cfg, c.String("weights"), classes)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "weights %s: %s\n", c.String("weights"), rep)
	return r, nil
}

// parseClassList reads "name1,name2,...": distinct, non-empty names.
func parseClassList(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			return nil, fmt.Errorf("%q has an empty class name", s)
		case seen[f]:
			return nil, fmt.Errorf("%q names %q twice", s, f)
		}
		seen[f] = true
		out = append(out, f)
	}
	return out, nil
}

// predictCrops classifies whole images (face crops), one row per image;
// an unreadable image is named on stderr and makes the exit status 1,
// the others are classified all the same.
func predictCrops(c *cli.Context, r *fer.Run, files []string) error {
	preds, err := r.Predict(files, c.Int("batch-size"))
	if err != nil {
		return err
	}
	out, done, err := predictOutput(c)
	if err != nil {
		return err
	}
	defer done()
	if err := printPredictions(out, preds, r.Data.Classes, c.Bool("json")); err != nil {
		return err
	}
	var bad []string
	for _, p := range preds {
		if p.Err != nil {
			fmt.Fprintln(os.Stderr, "fercli:", p.Err)
			bad = append(bad, p.Path)
		}
	}
	if len(bad) > 0 {
		return cli.Exit(fmt.Sprintf("fercli: %d of %d images could not be classified (above); the others were", len(bad), len(preds)), 1)
	}
	return nil
}

func printPredictions(out io.Writer, preds []fer.Prediction, classes []string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		for _, p := range preds {
			if p.Err != nil {
				continue
			}
			probs := map[string]float64{}
			for i, cl := range classes {
				probs[cl] = p.Probs[i]
			}
			if err := enc.Encode(map[string]any{"file": p.Path, "prediction": classes[p.Top], "probs": probs}); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "file\tprediction\t%s\n", strings.Join(classes, "\t"))
	for _, p := range preds {
		if p.Err != nil {
			continue
		}
		cells := make([]string, len(p.Probs))
		for i, v := range p.Probs {
			cells[i] = fmt.Sprintf("%.3f", v)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", p.Path, classes[p.Top], strings.Join(cells, "\t"))
	}
	return w.Flush()
}

// predictOutput is --out (created) or stdout; done closes it.
func predictOutput(c *cli.Context) (io.Writer, func(), error) {
	p := c.String("out")
	if p == "" {
		return os.Stdout, func() {}, nil
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, nil, fmt.Errorf("--out: %w", err)
	}
	return f, func() { f.Close() }, nil
}
