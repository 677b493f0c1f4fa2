package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/metrics"
	"github.com/fer-research/fer/plots"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "eval",
		Usage:     "evaluate a checkpoint on a dataset split",
		ArgsUsage: " ",
		Description: `Rebuilds the model and dataset stored in the checkpoint (override them with
--data/--data-root/--set) and reports loss, accuracy (WAR), UAR and macro-F1;
multi-task models also CCC of valence and arousal, per-AU F1 and the ABAW
scores. On another data set (--data) the classes and AUs are matched by
name, and what has no counterpart is reported.

  fercli eval --ckpt runs/demo/best.ckpt --split test --confusion cm.png
  fercli eval --ckpt runs/mt-arcres_affwild2/best.ckpt --data rafdb --data-root /data/RAF-DB/basic`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ckpt", Required: true, Usage: "checkpoint file (best.ckpt, last.ckpt)"},
			&cli.StringFlag{Name: "split", Value: "test", Usage: "val or test (train also works)"},
			&cli.StringFlag{Name: "data", Usage: "evaluate on another registered dataset"},
			&cli.StringFlag{Name: "data-root", Usage: "dataset folder on disk"},
			setFlag("override a key of the stored config (repeatable)"),
			&cli.IntFlag{Name: "batch-size", Usage: "evaluation batch size (0: the run's eval batch size)"},
			&cli.StringFlag{Name: "confusion", Usage: "write the confusion matrix as a PNG here"},
			dumpFeaturesFlag,
			&cli.BoolFlag{Name: "json", Usage: "print the metrics as JSON"},
			&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar on stderr when it is a terminal"},
		},
		Action: evalAction,
	})
}

func evalAction(c *cli.Context) error {
	if n := c.Int("batch-size"); n < 0 {
		return fmt.Errorf("--batch-size %d: want >= 1 (or 0 for the run's eval batch size)", n)
	}
	ov := append([]string(nil), sets(c)...)
	if c.IsSet("data") {
		ov = append(ov, fmt.Sprintf("data.name=%q", c.String("data")))
	}
	if c.IsSet("data-root") {
		ov = append(ov, fmt.Sprintf("data.root=%q", c.String("data-root")))
	}
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	r, meta, err := fer.LoadRun(c.String("ckpt"), ov...)
	if err != nil {
		return err
	}
	printDrops(r.Data)
	ds, err := pickSplit(r.Data, c.String("split"))
	if err != nil {
		return err
	}
	if r.Cross != nil && !c.Bool("json") {
		fmt.Print(r.Cross.Report())
	}
	bs := r.Cfg.EvalBatch()
	if n := c.Int("batch-size"); n > 0 {
		bs = n
	}
	if err := dumpFeatures(c, r, ds, bs); err != nil {
		return err
	}
	ev := r.NewEvaluator
	var e fer.Evaluator
	if ev != nil {
		e = ev()
	}
	vals, err := fer.Evaluate(c.Context, r.Model, r.Loss, ds, e, bs, r.Device, "eval "+c.String("split"), progressFlag(c))
	if err != nil {
		return err
	}
	cm, hasCM := e.(interface{ Confusion() *metrics.Confusion })
	var masked map[string]int
	if md, ok := ds.(*fer.MappedDataset); ok {
		masked = md.Masked()
	}
	if c.Bool("json") {
		out := map[string]any{"checkpoint": c.String("ckpt"), "split": c.String("split"), "epoch": meta.Epoch, "metrics": vals}
		if hasCM && cm.Confusion().Total() > 0 {
			out["per_class_accuracy"] = perClassAccuracy(cm.Confusion(), r.Data.Classes)
		}
		if r.Cross != nil {
			cross := map[string]any{"left_out": masked}
			if r.Cross.Classes != nil {
				cross["classes_without_counterpart"] = r.Cross.Classes.UnmatchedData
				cross["model_classes_not_in_data"] = r.Cross.Classes.UnmatchedModel
			}
			out["cross_database"] = cross
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
	} else {
		fmt.Printf("%s (epoch %d, step %d) on %s/%s, %d samples:\n", c.String("ckpt"), meta.Epoch, meta.Step, r.Cfg.Data.Name, c.String("split"), ds.Len())
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  %-6s %.4f\n", k, vals[k])
		}
		if len(masked) > 0 {
			var parts []string
			for _, n := range sortedNames(masked) {
				parts = append(parts, fmt.Sprintf("%d %s", masked[n], n))
			}
			fmt.Printf("left out (no counterpart among the model's classes): %s\n", strings.Join(parts, ", "))
		}
	}
	if hasCM && cm.Confusion().Total() > 0 {
		conf := cm.Confusion()
		if !c.Bool("json") {
			fmt.Print(conf.Format(r.Data.Classes))
			fmt.Println("per-class accuracy (%):")
			acc := conf.PerClassAccuracy()
			for k, a := range acc {
				name := fmt.Sprint(k)
				if k < len(r.Data.Classes) {
					name = r.Data.Classes[k]
				}
				fmt.Printf("  %-10s %6.2f  (%d samples)\n", name, 100*a, conf.Support()[k])
			}
		}
		if p := c.String("confusion"); p != "" {
			title := fmt.Sprintf("%s on %s/%s", r.Cfg.Model.Name, r.Cfg.Data.Name, c.String("split"))
			if err := plots.Confusion(p, conf, r.Data.Classes, title); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "confusion matrix: %s\n", p)
		}
	}
	return nil
}

func pickSplit(s *fer.Splits, name string) (fer.Dataset, error) {
	var ds fer.Dataset
	switch name {
	case "train":
		ds = s.Train
	case "val":
		ds = s.Val
	case "test":
		ds = s.Test
	default:
		return nil, fmt.Errorf("split %q: want train, val or test", name)
	}
	if ds == nil {
		return nil, fmt.Errorf("the dataset has no %s split", name)
	}
	return ds, nil
}

// perClassAccuracy maps each class name to its accuracy (recall) on the
// split; classes without samples are left out (their accuracy is NaN,
// which JSON cannot hold).
func perClassAccuracy(c *metrics.Confusion, classes []string) map[string]float64 {
	out := map[string]float64{}
	for k, a := range c.PerClassAccuracy() {
		name := fmt.Sprint(k)
		if k < len(classes) && classes[k] != "" {
			name = classes[k]
		}
		if !math.IsNaN(a) {
			out[name] = a
		}
	}
	return out
}

func sortedNames(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
