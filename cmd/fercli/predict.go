package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "predict",
		Usage:     "print class probabilities for image files",
		ArgsUsage: "IMAGE|FOLDER...",
		Description: `Classifies images (PNG, JPEG, GIF, BMP, TIFF, WebP; a folder stands for the
images directly inside it) with a checkpoint, preprocessing them as the
checkpoint's dataset does at test time.

  fercli predict --ckpt runs/demo/best.ckpt face1.png faces/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ckpt", Required: true, Usage: "checkpoint file"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "images per forward pass"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines {file, prediction, probs}"},
		},
		Action: predictAction,
	})
}

func predictAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give image files or folders (fercli predict --ckpt CKPT IMAGE...)")
	}
	files, err := fer.ImageFiles(c.Args().Slice())
	if err != nil {
		return err
	}
	var ov []string
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	r, _, err := fer.LoadRun(c.String("ckpt"), ov...)
	if err != nil {
		return err
	}
	if bs := c.Int("batch-size"); bs < 1 {
		return fmt.Errorf("--batch-size %d: want >= 1", bs)
	}
	preds, err := r.Predict(files, c.Int("batch-size"))
	if err != nil {
		return err
	}
	if err := printPredictions(preds, r.Data.Classes, c.Bool("json")); err != nil {
		return err
	}
	// the unreadable images: each named on stderr, exit status 1
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

func printPredictions(preds []fer.Prediction, classes []string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
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
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
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
