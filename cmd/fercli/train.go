package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
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
// the --set ones. A key set both by --set and by its flag is an error
// (which one was meant?).
func overrides(c *cli.Context) ([]string, error) {
	out := append([]string(nil), sets(c)...)
	setBy := map[string]string{}
	for _, s := range out {
		k, _, _ := strings.Cut(s, "=")
		setBy[strings.TrimSpace(k)] = s
	}
	flag := func(name, key, value string) error {
		if s, ok := setBy[key]; ok {
			return fmt.Errorf("%s is given twice, by --set %s and by --%s %s: keep one", key, s, name, c.Value(name))
		}
		out = append(out, key+"="+value)
		return nil
	}
	str := map[string]string{"model": "model.name", "data": "data.name", "data-root": "data.root",
		"optimizer": "optimizer.name", "schedule": "schedule.name", "best-metric": "best_metric", "run-dir": "run_dir"}
	for _, f := range []string{"model", "data", "data-root", "optimizer", "schedule", "best-metric", "run-dir"} {
		if c.IsSet(f) {
			if err := flag(f, str[f], fmt.Sprintf("%q", c.String(f))); err != nil {
				return nil, err
			}
		}
	}
	ints := map[string]string{"epochs": "epochs", "batch-size": "batch_size", "eval-every": "eval_every", "checkpoint-every": "checkpoint_every_steps"}
	for _, f := range []string{"epochs", "batch-size", "eval-every", "checkpoint-every"} {
		if c.IsSet(f) {
			if err := flag(f, ints[f], fmt.Sprint(c.Int(f))); err != nil {
				return nil, err
			}
		}
	}
	if c.IsSet("lr") {
		if err := flag("lr", "optimizer.lr", fmt.Sprint(c.Float64("lr"))); err != nil {
			return nil, err
		}
	}
	// the global --device and --seed, when given, beat the config file
	if globalSet(c, "device") {
		out = append(out, fmt.Sprintf("device=%q", c.String("device")))
	}
	if globalSet(c, "seed") {
		out = append(out, fmt.Sprintf("seed=%d", c.Int64("seed")))
	}
	return out, nil
}

// overwriteFlag lets train and demo replace an earlier run's results.
var overwriteFlag = &cli.BoolFlag{Name: "overwrite", Usage: "replace the results (last.ckpt, best.ckpt, metrics.jsonl) of an earlier run in the run dir; without it fercli refuses"}

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
  fercli train resnet18 --rafdb --data-root /data/RAF-DB/basic   # the data set's defaults
  fercli train mt-vgg-rnn --affwild2 --data-root /data/Aff-Wild2   # configs/mt-vgg-rnn_affwild2.yaml
  fercli train mt-arcres --init runs/mt-arcres_affwild2/best.ckpt --data rafdb --data-root /data/RAF-DB/basic
  fercli train qcs --rafdb --data-root /data/RAF-DB --init ir50.pth   # configs/qcs_rafdb.yaml, IR-50 from ir50.pth
  fercli train dcs --ferplus --data-root /data/FERPlus --init ir50.pth
  fercli train rmfer --rafdb --data-root /data/RAF-DB/basic --rmset /data/rmset   # configs/rmfer_rafdb.yaml: L_pre, then + ACL on the RMset

Ctrl-C finishes the current step, writes last.ckpt and prints the resume
command. A run dir is locked while a run uses it; a new run refuses to
replace an earlier run's results unless --overwrite is given.

Data-parallel training (torch.distributed's DDP semantics; batch_size is
per process):
  fercli train --nproc 2 --model smallcnn --data synth --run-dir runs/dp
  torchrun --nproc_per_node 2 --no_python --redirects 1 --tee 1 bin/fercli train ...
(README.md, "Training on several processes, GPUs and machines").

Models: ` + strings.Join(fer.ModelNames(), ", ") + `.

Datasets (data.options in README.md):
` + datasetsHelp(),
		Flags: append(append(append(runFlags(), presetFlags()...),
			&cli.StringFlag{Name: "resume", Usage: "continue the run in this run dir from its last.ckpt, or from the checkpoint file given (e.g. RUN/best.ckpt); the stored config with edits of RUN/config.yaml and any --set, printed as a diff"},
			overwriteFlag,
			&cli.StringFlag{Name: "init", Usage: "start from the weights of another run's checkpoint (RUN/best.ckpt), e.g. pre-trained on Aff-Wild2: heads whose shape or classes change are re-initialised and listed; or from published weights the model reads (ir50.pth, a QCS checkpoint): what was loaded and ignored is printed"},
		), distFlags()...),
		Action: trainAction,
	})
}

// datasetsHelp lists the registered data sets with their descriptions.
func datasetsHelp() string {
	var b strings.Builder
	for _, n := range fer.DatasetNames() {
		fmt.Fprintf(&b, "  %-11s %s\n", n, fer.DatasetHelp(n))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func trainAction(c *cli.Context) error {
	if launched, err := launchWorkers(c); launched {
		return err
	}
	var cfg *fer.Config
	var err error
	resume := c.String("resume")
	var plan *fer.ResumePlan
	if resume != "" {
		if d, _, _ := presetDataset(c); c.Args().Present() || d != "" || c.IsSet("fold") || c.IsSet("init") || c.IsSet("rmset") {
			return fmt.Errorf("--resume takes the run's stored config: drop the model argument, the data set flag, --fold, --init and --rmset (use --set to change a key)")
		}
		if c.Bool("overwrite") {
			return fmt.Errorf("--resume continues a run and --overwrite starts one over: give one of them")
		}
		ov, err := overrides(c)
		if err != nil {
			return err
		}
		if plan, err = fer.PlanResume(resume, ov...); err != nil {
			return err
		}
		cfg = plan.Config
		if len(plan.Changes) > 0 {
			fmt.Printf("resume: the config differs from the checkpoint's in %d key(s):\n  %s\n", len(plan.Changes), strings.Join(plan.Changes, "\n  "))
		}
	} else {
		if cfg, err = presetConfig(c); err != nil {
			return err
		}
		dropRootlessRMset(cfg)
		if c.IsSet("init") {
			cfg.Init = c.String("init")
		}
	}
	comm, err := joinJob(c, cfg)
	if err != nil {
		return err
	}
	// hold the run dir from the start: no other process may write there
	// while this one opens the data and builds the model (rank 0 writes
	// the run dir of a data-parallel run; the other ranks only read)
	var lock *fer.RunLock
	if comm == nil || comm.Rank() == 0 {
		if lock, err = fer.LockRunDir(cfg.RunDir); err != nil {
			return err
		}
		defer lock.Unlock()
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		lock.Abandon()
		return err
	}
	tr := r.Trainer()
	if comm != nil {
		tr.Dist = comm
		defer comm.PG.Close()
	}
	if comm == nil || comm.Rank() == 0 {
		printProtocolNote(r)
		printDrops(r.Data)
		printAuxDrops(r)
	}
	tr.Progress = progressFlag(c)
	tr.Overwrite = c.Bool("overwrite")
	if plan != nil {
		tr.ResumeFrom = plan.Checkpoint
	}
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
