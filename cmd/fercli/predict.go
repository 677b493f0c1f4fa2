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
  fercli predict --ckpt best.ckpt --faces whole face1.png faces/`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "ckpt", Required: true, Usage: "checkpoint file"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "faces per forward pass"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines {file, prediction, probs, ...}"},
		}, mediaFlags()...),
		Action: predictAction,
	})
}

func predictAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give photos, videos or folders (fercli predict --ckpt CKPT PHOTO|VIDEO...)")
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

// loadPredictRun rebuilds the checkpoint's run (model and preprocessing).
func loadPredictRun(c *cli.Context) (*fer.Run, error) {
	var ov []string
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	r, _, err := fer.LoadRun(c.String("ckpt"), ov...)
	return r, err
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
