package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "demo",
		Usage:     "train and test a small CNN on the embedded synthetic benchmark (CPU, minutes)",
		ArgsUsage: " ",
		Description: `Generates the procedural face benchmark (data/synth: 7 expressions), trains
models/smallcnn on it, selects the epoch with the best validation UAR,
and reports held-out test accuracy (WAR), UAR and the confusion matrix.
Writes into --run-dir: config.yaml, metrics.jsonl, last.ckpt, best.ckpt,
confusion.png and curves.png. Needs no download and no GPU.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "train-n", Value: 6000, Usage: "training images"},
			&cli.IntFlag{Name: "val-n", Value: 700, Usage: "validation images (model selection)"},
			&cli.IntFlag{Name: "test-n", Value: 1400, Usage: "held-out test images"},
			&cli.IntFlag{Name: "size", Value: 64, Usage: "generated image side in pixels"},
			&cli.IntFlag{Name: "crop", Value: 48, Usage: "side of the central crop the CNN sees (0: whole image)"},
			&cli.IntFlag{Name: "epochs", Value: 12, Usage: "training epochs"},
			&cli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch size"},
			&cli.Float64Flag{Name: "lr", Value: 0.05, Usage: "SGD learning rate (cosine schedule)"},
			&cli.IntFlag{Name: "width", Value: 24, Usage: "channels of the CNN's stem (stages have 2, 4, 8 times as many)"},
			&cli.StringFlag{Name: "run-dir", Value: filepath.Join("runs", "demo"), Usage: "output folder (an earlier run there is kept unless --overwrite)"},
			overwriteFlag,
			setFlag("override any config key, e.g. --set optimizer.name=adam (repeatable)"),
			&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar on stderr when it is a terminal"},
		},
		Action: demoAction,
	})
}

func demoConfig(c *cli.Context) (*fer.Config, error) {
	ov := []string{
		"model.name=smallcnn",
		fmt.Sprintf("model.options.width=%d", c.Int("width")),
		"data.name=synth",
		fmt.Sprintf("data.options={train_n: %d, val_n: %d, test_n: %d, size: %d, crop: %d, seed: 2024}",
			c.Int("train-n"), c.Int("val-n"), c.Int("test-n"), c.Int("size"), c.Int("crop")),
		fmt.Sprintf("optimizer={name: sgd, lr: %v, momentum: 0.9, nesterov: true, weight_decay: 0.0005}", c.Float64("lr")),
		"schedule.name=cosine",
		fmt.Sprintf("epochs=%d", c.Int("epochs")),
		fmt.Sprintf("batch_size=%d", c.Int("batch-size")),
		"eval_batch_size=256",
		"best_metric=val/uar",
		fmt.Sprintf("run_dir=%q", c.String("run-dir")),
		fmt.Sprintf("device=%q", c.String("device")),
		fmt.Sprintf("seed=%d", c.Int64("seed")),
	}
	ov = append(ov, sets(c)...)
	return fer.ParseConfig(nil, "demo", ov...)
}

func demoAction(c *cli.Context) error {
	start := time.Now()
	cfg, err := demoConfig(c)
	if err != nil {
		return err
	}
	// the run dir is ours until the figures are written
	lock, err := fer.LockRunDir(cfg.RunDir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if files := fer.RunResults(cfg.RunDir); len(files) > 0 && !c.Bool("overwrite") {
		return &fer.RunDirUsedError{Dir: cfg.RunDir, Files: files, HasLast: slices.Contains(files, fer.LastCheckpoint)}
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		return err
	}
	o := fer.DefaultSynthOptions()
	if err := fer.DecodeOptions(cfg.Data.Options, &o, "dataset synth"); err != nil {
		return err
	}
	crop := ""
	if o.Crop > 0 {
		crop = fmt.Sprintf(" (central %dx%d crop)", o.Crop, o.Crop)
	}
	fmt.Printf("synthetic benchmark: %d train / %d val / %d test faces, %dx%d%s, 7 expressions\n", o.TrainN, o.ValN, o.TestN, o.Size, o.Size, crop)
	if sd, ok := r.Data.Train.(*fer.SynthDataset); ok {
		t0 := time.Now()
		if _, err := sd.Samples(); err != nil {
			return err
		}
		fmt.Printf("generated in %.1fs\n", time.Since(t0).Seconds())
	}
	fmt.Printf("model %s (width %v) on %s, %d epochs, batch %d, SGD lr %v cosine, %d libtorch threads\n",
		cfg.Model.Name, cfg.Model.Options["width"], deviceName(r.Device), cfg.Epochs, cfg.BatchSize, cfg.Optimizer.LR, rt.Threads)
	tr := r.Trainer()
	tr.Progress = progressFlag(c)
	tr.Overwrite = c.Bool("overwrite")
	ctx, stop := signalContext()
	defer stop()
	res, err := tr.Fit(ctx, false)
	if err != nil {
		var ie *fer.InterruptedError
		if errors.As(err, &ie) {
			return cli.Exit("fercli: "+err.Error(), 130)
		}
		return err
	}
	trainTime := time.Since(start)

	// held-out test with the weights of the best validation epoch
	ckpt := res.LastCheckpoint
	if res.BestCheckpoint != "" {
		ckpt = res.BestCheckpoint
	}
	lc, err := fer.LoadCheckpoint(ckpt)
	if err != nil {
		return err
	}
	err = lc.LoadWeights(r.Model.VarStore())
	lc.Drop()
	if err != nil {
		return err
	}
	ev := fer.NewClassificationEvaluator(len(r.Data.Classes))
	test := r.Data.Test
	split := "test"
	if test == nil {
		test, split = r.Data.Val, "val"
	}
	vals, err := fer.Evaluate(ctx, r.Model, r.Loss, test, ev, cfg.EvalBatch(), r.Device, "test", progressFlag(c))
	if err != nil {
		return err
	}
	fmt.Printf("\nheld-out %s set (%d images), weights of epoch %d (best %s %.4f):\n", split, test.Len(), res.BestEpoch, res.BestKey, res.Best)
	fmt.Printf("  accuracy (WAR) %.2f%%   UAR %.2f%%   macro-F1 %.2f%%\n", 100*vals["war"], 100*vals["uar"], 100*vals["f1"])
	fmt.Print(ev.C.Format(r.Data.Classes))
	cm := filepath.Join(cfg.RunDir, "confusion.png")
	if err := plots.Confusion(cm, ev.C, r.Data.Classes, fmt.Sprintf("smallcnn on synth/%s: accuracy %.1f%%", split, 100*vals["war"])); err != nil {
		return err
	}
	curves := filepath.Join(cfg.RunDir, "curves.png")
	if err := plots.CurvesFromLog(cfg.RunDir, curves); err != nil {
		fmt.Fprintf(os.Stderr, "fercli: training curves: %v\n", err)
		curves = ""
	}
	fmt.Printf("\nconfusion matrix %s\nmetrics log      %s\n", cm, filepath.Join(cfg.RunDir, fer.MetricsFile))
	if curves != "" {
		fmt.Printf("training curves  %s\n", curves)
	}
	fmt.Printf("checkpoint       %s\n", ckpt)
	fmt.Printf("total time %.1fs (training and selection %.1fs)\n", time.Since(start).Seconds(), trainTime.Seconds())
	return nil
}

func deviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}
