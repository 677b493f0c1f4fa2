package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/dist"
	_ "github.com/fer-research/fer/models" // registers the model families
	"github.com/urfave/cli/v2"
)

// runFlags are the config flags shared by train and demo: each one set
// becomes a key=value override on top of --config.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "run config YAML file"},
		setFlag("override a config key, e.g. --set optimizer.lr=0.01 --set model.options.width=64 (repeatable)"),
		&cli.StringFlag{Name: "model", Usage: "model name (" + strings.Join(fer.ModelNames(), ", ") + ")"},
		&cli.StringFlag{Name: "data", Usage: "dataset name (" + strings.Join(fer.DatasetNames(), ", ") + ")"},
		&cli.StringFlag{Name: "data-root", Usage: "dataset folder on disk"},
		&cli.IntFlag{Name: "epochs", Usage: "number of epochs"},
		&cli.IntFlag{Name: "batch-size", Usage: "training batch size"},
		&cli.StringFlag{Name: "optimizer", Usage: "sgd, adam or adamw"},
		&cli.Float64Flag{Name: "lr", Usage: "base learning rate"},
		&cli.StringFlag{Name: "schedule", Usage: "constant, step, exponential or cosine"},
		&cli.IntFlag{Name: "eval-every", Usage: "evaluate every N epochs (0: never)"},
		&cli.StringFlag{Name: "best-metric", Usage: "validation metric that selects best.ckpt, e.g. val/uar"},
		&cli.IntFlag{Name: "checkpoint-every", Usage: "also checkpoint every N steps"},
		&cli.StringFlag{Name: "run-dir", Usage: "output folder (config.yaml, metrics.jsonl, last.ckpt, best.ckpt)"},
		&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar on stderr when it is a terminal"},
	}
}

// overrides turns the flags that were set into config overrides, after
// the --set ones, so explicit flags win.
func overrides(c *cli.Context) []string {
	out := append([]string(nil), sets(c)...)
	str := map[string]string{"model": "model.name", "data": "data.name", "data-root": "data.root",
		"optimizer": "optimizer.name", "schedule": "schedule.name", "best-metric": "best_metric", "run-dir": "run_dir"}
	for _, f := range []string{"model", "data", "data-root", "optimizer", "schedule", "best-metric", "run-dir"} {
		if c.IsSet(f) {
			out = append(out, fmt.Sprintf("%s=%q", str[f], c.String(f)))
		}
	}
	ints := map[string]string{"epochs": "epochs", "batch-size": "batch_size", "eval-every": "eval_every", "checkpoint-every": "checkpoint_every_steps"}
	for _, f := range []string{"epochs", "batch-size", "eval-every", "checkpoint-every"} {
		if c.IsSet(f) {
			out = append(out, fmt.Sprintf("%s=%d", ints[f], c.Int(f)))
		}
	}
	if c.IsSet("lr") {
		out = append(out, fmt.Sprintf("optimizer.lr=%v", c.Float64("lr")))
	}
	// the global --device and --seed, when given, beat the config file
	if globalSet(c, "device") {
		out = append(out, fmt.Sprintf("device=%q", c.String("device")))
	}
	if globalSet(c, "seed") {
		out = append(out, fmt.Sprintf("seed=%d", c.Int64("seed")))
	}
	return out
}

// globalSet reports whether a global flag was given on the command line
// or through its environment variable.
func globalSet(c *cli.Context, name string) bool {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return true
		}
	}
	return false
}

// signalContext is cancelled by SIGINT or SIGTERM: the trainer finishes
// the step in progress, writes a checkpoint and returns.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func progressFlag(c *cli.Context) *bool {
	if c.IsSet("progress") {
		v := c.Bool("progress")
		return &v
	}
	return nil
}

func init() {
	register(&cli.Command{
		Name:      "train",
		Usage:     "train a model on a dataset",
		ArgsUsage: "[MODEL]",
		Description: `Trains the model named by --model (or the config) on --data and writes
config.yaml, metrics.jsonl, last.ckpt and best.ckpt into --run-dir.

  fercli train --model smallcnn --data synth --epochs 10 --run-dir runs/a
  fercli train --config runs.yaml --set optimizer.lr=0.01
  fercli train --resume runs/a          # continue an interrupted run exactly
  fercli train stt --dfew --data-root /data/DFEW --fold 1   # built-in configs/stt_dfew.yaml
  fercli train stt --afew --data-root /data/AFEW            # built-in configs/stt_afew.yaml

Ctrl-C finishes the current step, writes last.ckpt and prints the resume
command.

Data-parallel training (torch.distributed's DDP semantics; batch_size is
per process):
  fercli train --nproc 2 --model smallcnn --data synth --run-dir runs/dp
  torchrun --nproc_per_node 2 --no_python --redirects 1 --tee 1 bin/fercli train ...
(README.md, "Training on several processes, GPUs and machines").

Models: ` + strings.Join(fer.ModelNames(), ", ") + `. Datasets: ` + strings.Join(fer.DatasetNames(), ", ") + `.`,
		Flags: append(append(append(runFlags(), presetFlags()...),
			&cli.StringFlag{Name: "resume", Usage: "continue the run in this run dir from its last.ckpt (its stored config, plus any --set)"},
		), distFlags()...),
		Action: trainAction,
	})
}

func trainAction(c *cli.Context) error {
	if launched, err := launchWorkers(c); launched {
		return err
	}
	var cfg *fer.Config
	var err error
	resume := c.String("resume")
	if resume != "" {
		if c.Args().Present() || c.Bool("dfew") || c.Bool("afew") || c.IsSet("fold") {
			return fmt.Errorf("--resume takes the run's stored config: drop the model argument and --dfew/--afew/--fold (use --set to change a key)")
		}
		ckpt := filepath.Join(resume, fer.LastCheckpoint)
		meta, err := fer.ReadCheckpointMeta(ckpt)
		if err != nil {
			return err
		}
		// the run dir is where the checkpoint is, whatever the stored
		// config says (the folder may have been moved)
		ov := append(overrides(c), fmt.Sprintf("run_dir=%q", resume))
		if cfg, err = fer.ParseConfig([]byte(meta.Config), ckpt, ov...); err != nil {
			return err
		}
	} else {
		if cfg, err = presetConfig(c); err != nil {
			return err
		}
	}
	comm, err := joinJob(c, cfg)
	if err != nil {
		return err
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		return err
	}
	tr := r.Trainer()
	if comm != nil {
		tr.Dist = comm
		defer comm.PG.Close()
	}
	if comm == nil || comm.Rank() == 0 {
		printProtocolNote(r)
	}
	tr.Progress = progressFlag(c)
	ctx, stop := signalContext()
	defer stop()
	res, err := tr.Fit(ctx, resume != "")
	if err != nil {
		var ie *fer.InterruptedError
		if errors.As(err, &ie) {
			return cli.Exit("fercli: "+err.Error(), 130)
		}
		if errors.Is(err, dist.ErrPeerLost) {
			// tell a launcher this rank is not where the job failed
			return cli.Exit("fercli: "+err.Error(), dist.ExitPeerLost)
		}
		return err
	}
	if comm != nil {
		// no rank leaves (closing its sockets) while another still reads
		if err := comm.PG.Barrier(); err != nil {
			return err
		}
		if comm.Rank() != 0 {
			return nil
		}
	}
	printResult(res)
	return nil
}

func printResult(res *fer.FitResult) {
	fmt.Printf("done: %d epochs, %d steps; run dir %s\n", res.Epochs, res.Steps, res.RunDir)
	if res.BestEpoch > 0 {
		fmt.Printf("best %s = %.4f at epoch %d (%s)\n", res.BestKey, res.Best, res.BestEpoch, res.BestCheckpoint)
	}
}

// setList collects repeated --set key=value flags. (cli.StringSliceFlag
// would split "optimizer={name: adam, lr: 0.1}" at its comma.)
type setList []string

func (s *setList) Set(v string) error { *s = append(*s, v); return nil }
func (s *setList) String() string     { return strings.Join(*s, " ") }

func setFlag(usage string) cli.Flag {
	return &cli.GenericFlag{Name: "set", Value: &setList{}, Usage: usage}
}

// sets returns the --set values of c.
func sets(c *cli.Context) []string {
	if l, ok := c.Generic("set").(*setList); ok && l != nil {
		return append([]string(nil), (*l)...)
	}
	return nil
}
