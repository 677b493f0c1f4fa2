package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fer-research/fer/bench"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "bench",
		Usage:     "time a model's forward pass, training step and data pipeline (optionally side by side with PyTorch), or run the memory soak",
		ArgsUsage: "MODEL",
		Description: `Times, after warm-up, an eval-mode forward pass without autograd, one training
step (forward + cross-entropy + backward + the model recipe's SGD-momentum or
Adam update, exactly fer.DefaultStep) and the training data pipeline (JPEG
decode + random resized crop + flip + batch + tensor, from a fixture of
224×224 JPEGs written to a temporary directory: an image folder for 2-D
models, a DFEW-layout clip tree for STT). Prints median/min/max per step,
throughput and peak RSS (VmHWM; GPU memory from nvidia-smi on CUDA).

--compare runs the same model, batch, input size, thread count and data
pipeline in PyTorch (bench/torch_bench.py under Debian's /usr/bin/python3),
alternating fer and PyTorch in --rounds rounds so that background load hits
both, and prints the ratio fer/PyTorch of the median step times.

--soak trains a small model (default smallcnn) for --soak-steps steps
(default 10000) through fer's loader and DefaultStep and checks that RSS
grows less than 5% from step min(1000, steps/10) to the end.

Models: ` + modelList(),
		Flags: benchFlags,
		// urfave/cli v2 stops at the first argument, and the documented
		// form is `fercli bench MODEL --flags`: parse ourselves, flags
		// first (runBench).
		SkipFlagParsing: true,
		Action:          func(c *cli.Context) error { return runBench(c.Args().Slice()) },
	})
}

var benchFlags = []cli.Flag{
	&cli.IntFlag{Name: "batch", Usage: "batch size (0: the model's default, 16× larger on CUDA)"},
	&cli.StringFlag{Name: "size", Usage: "input size HxW (default: the model's, 112x112 for most)"},
	&cli.IntFlag{Name: "frames", Value: -1, Usage: "clip length for video models (-1: default 16)"},
	&cli.StringFlag{Name: "device", Usage: "cpu, cuda or cuda:N (default: the global --device)"},
	&cli.IntFlag{Name: "steps", Value: 10, Usage: "timed steps per phase"},
	&cli.IntFlag{Name: "warmup", Value: 3, Usage: "untimed warm-up steps (and data-pipeline fill batches per round)"},
	&cli.IntFlag{Name: "rounds", Value: 5, Usage: "split the timed steps into this many rounds, alternating fer and PyTorch"},
	&cli.IntFlag{Name: "data-steps", Value: 40, Usage: "timed batches of the data pipeline (many: prefetch buffers hide single batches)"},
	&cli.IntFlag{Name: "data-rounds", Value: 2, Usage: "rounds of the data-pipeline measurement"},
	&cli.StringFlag{Name: "phases", Value: "forward,train,data", Usage: "comma-separated subset of forward, train, data"},
	&cli.IntFlag{Name: "workers", Usage: "data-pipeline workers, both frameworks (0: one per core)"},
	&cli.StringFlag{Name: "optimizer", Usage: "override the recipe's optimizer: sgd or adam"},
	&cli.BoolFlag{Name: "amp", Usage: "mixed precision: forward and loss under autocast (bfloat16 on CPU, float16 on CUDA)"},
	&cli.StringFlag{Name: "amp-dtype", Usage: "autocast precision with --amp: bfloat16 or float16 (CUDA only; default: bfloat16 on CPU, float16 on CUDA)"},
	&cli.BoolFlag{Name: "compare", Usage: "run PyTorch side by side and print fer/PyTorch ratios"},
	&cli.StringFlag{Name: "torch-blas", Value: "system", Usage: "with --compare: comma-separated BLAS builds for PyTorch, one PyTorch process each (model phases interleave all, the data phase uses the first): system, pthreads (Debian's default OpenBLAS), openmp (the build fer loads) or a directory with libblas.so.3"},
	&cli.BoolFlag{Name: "roofline", Value: true, Usage: "count each model phase's FLOPs (one untimed step) and measure the peak of a large matmul: GFLOP/s and % of peak (MFU against the GPU's spec bf16 peak under --amp); --roofline=false skips both"},
	&cli.IntFlag{Name: "peak-size", Usage: "matrix side of the peak matmul (0: 2048 on CPU, 8192 on CUDA)"},
	&cli.BoolFlag{Name: "ops", Usage: "with --roofline: list one step's outermost libtorch ops by name, fer beside PyTorch (with --compare), where the counts differ"},
	&cli.StringFlag{Name: "attention", Value: "auto", Usage: "attention kernel of transformer models: auto (fused scaled_dot_product_attention on libtorch >= 2.0, else matmul), matmul or sdpa"},
	&cli.BoolFlag{Name: "list", Usage: "print the model names, one per line, and exit"},
	&cli.StringFlag{Name: "python", Value: bench.DefaultPython, Usage: "Python with PyTorch for --compare"},
	&cli.StringFlag{Name: "torch-script", Usage: "path of torch_bench.py (default: bench/torch_bench.py of the repository around the working directory)"},
	&cli.StringFlag{Name: "fixture", Usage: "keep the data fixture in this directory (reused when it exists)"},
	&cli.StringFlag{Name: "json", Usage: "append the result as a JSON line to this file"},
	&cli.StringFlag{Name: "cpuprofile", Usage: "write a pprof CPU profile of the fer side to this file"},
	&cli.StringFlag{Name: "summary", Usage: "print the Markdown table of the runs in this JSON-lines file and exit"},
	&cli.BoolFlag{Name: "soak", Usage: "memory soak: train a small model for --soak-steps steps and check RSS growth < 5%"},
	&cli.IntFlag{Name: "soak-steps", Value: 10000, Usage: "steps of the soak"},
}

// runBench parses the bench command line with the flags moved before the
// positional arguments and runs benchAction.
func runBench(args []string) error {
	app := &cli.App{
		Name:            "fercli bench",
		Usage:           "see `fercli help bench`",
		ArgsUsage:       "MODEL",
		Flags:           benchFlags,
		Action:          benchAction,
		HideHelpCommand: true,
	}
	return app.Run(append([]string{"fercli bench"}, flagsFirst(args, benchFlags)...))
}

// flagsFirst reorders args so that every flag (with its value, unless it
// is a boolean flag or written --name=value) comes before the positional
// arguments, keeping relative order. Everything after "--" stays
// positional: the "--" is kept when a positional argument starts with a
// dash.
func flagsFirst(args []string, flags []cli.Flag) []string {
	isBool := boolFlags(flags)
	var fl, pos []string
	dashed := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			for _, p := range args[i+1:] {
				dashed = dashed || strings.HasPrefix(p, "-")
			}
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			fl = append(fl, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !isBool[name] && i+1 < len(args) {
				i++
				fl = append(fl, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	if dashed {
		fl = append(fl, "--")
	}
	return append(fl, pos...)
}

func modelList() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, m := range bench.Models {
		in := fmt.Sprintf("3×%d×%d", m.Size, m.Size)
		if m.Frames > 0 {
			in = fmt.Sprintf("%d×%s", m.Frames, in)
		}
		fmt.Fprintf(tw, "\n  %s\tbatch %d of %s (CUDA: %d)\t%s", m.Name, m.Batch, in, m.CUDABatch(), m.Optimizer)
	}
	tw.Flush()
	return b.String()
}

// parseSize reads "HxW" (or "S" for S×S).
func parseSize(s string) (h, w int, err error) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		b = a
	}
	h, err1 := strconv.Atoi(strings.TrimSpace(a))
	w, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || h < 1 || w < 1 {
		return 0, 0, fmt.Errorf("--size %q: want HxW, e.g. 112x112", s)
	}
	return h, w, nil
}

func benchAction(c *cli.Context) error {
	if f := c.String("summary"); f != "" {
		rs, err := bench.ReadResults(f)
		if err != nil {
			return err
		}
		return bench.WriteSummary(os.Stdout, rs)
	}
	dev := rt.Device
	if d := c.String("device"); d != "" {
		var err error
		if dev, err = fer.ParseDevice(d); err != nil {
			return err
		}
	}
	workers := c.Int("workers")
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if c.Bool("list") {
		for _, m := range bench.Models {
			fmt.Println(m.Name)
		}
		return nil
	}
	kernel, err := models.ParseAttentionKernel(c.String("attention"))
	if err != nil {
		return err
	}
	if err := models.SetAttentionKernel(kernel); err != nil {
		return fmt.Errorf("--attention %s: %w", kernel, err)
	}
	if c.Bool("soak") {
		return soakAction(c, dev, workers)
	}
	if c.NArg() != 1 {
		return fmt.Errorf("bench: want one MODEL argument (or --soak / --summary FILE); models:%s", modelList())
	}
	info, err := bench.LookupModel(c.Args().First())
	if err != nil {
		return err
	}
	cfg := bench.RunConfig{
		Model: info.Name, Batch: info.Batch, Height: info.Size, Width: info.Size, Frames: info.Frames,
		Device: dev, Optimizer: c.String("optimizer"), AMP: c.Bool("amp"),
		Warmup: c.Int("warmup"), Steps: c.Int("steps"), Rounds: c.Int("rounds"),
		DataSteps: c.Int("data-steps"), DataRounds: c.Int("data-rounds"),
		Workers: workers, Seed: rt.Seed, Threads: rt.Threads, Log: os.Stderr,
		Roofline: c.Bool("roofline"), PeakSize: c.Int("peak-size"), Ops: c.Bool("ops"),
		Attention: string(models.CurrentAttentionKernel()),
	}
	if dev.IsCuda() {
		cfg.Batch = info.CUDABatch()
	}
	if b := c.Int("batch"); b > 0 {
		cfg.Batch = b
	}
	switch d := strings.ToLower(c.String("amp-dtype")); d {
	case "":
	case "bfloat16", "bf16":
		cfg.AMPDType = gotch.BFloat16
	case "float16", "fp16", "half":
		cfg.AMPDType = gotch.Half
	default:
		return fmt.Errorf("--amp-dtype %q: want bfloat16 or float16", d)
	}
	if cfg.AMPDType != 0 && !cfg.AMP {
		return fmt.Errorf("--amp-dtype needs --amp")
	}
	if s := c.String("size"); s != "" {
		if cfg.Height, cfg.Width, err = parseSize(s); err != nil {
			return err
		}
	}
	if f := c.Int("frames"); f >= 0 && info.Frames > 0 {
		cfg.Frames = f
	} else if f > 0 {
		return fmt.Errorf("--frames %d: %s takes images, not clips", f, info.Name)
	}
	for _, p := range strings.Split(c.String("phases"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases = append(cfg.Phases, p)
		}
	}
	if dir := c.String("fixture"); dir != "" {
		root, err := ensureFixture(dir, cfg)
		if err != nil {
			return err
		}
		cfg.DataRoot = root
	}
	if c.Bool("compare") {
		script := c.String("torch-script")
		if script == "" {
			wd, _ := os.Getwd()
			repo, err := bench.FindRepoRoot(wd)
			if err != nil {
				return fmt.Errorf("--compare: %w", err)
			}
			script = filepath.Join(repo, bench.TorchScript)
		}
		for i, spec := range strings.Split(c.String("torch-blas"), ",") {
			label, dir, err := bench.TorchBLAS(spec)
			if err != nil {
				return err
			}
			if !strings.Contains(c.String("torch-blas"), ",") && label == "system" {
				label = "" // a single plain side keeps the plain name
			}
			t, err := bench.StartTorchWith(c.String("python"), script, bench.TorchOptions{Label: label, BLASDir: dir})
			if err != nil {
				return err
			}
			defer t.Close()
			if i == 0 {
				cfg.Torch = t
			} else {
				cfg.Extra = append(cfg.Extra, t)
			}
		}
	} else if c.IsSet("torch-blas") {
		return fmt.Errorf("--torch-blas needs --compare")
	}
	res, err := bench.Run(cfg)
	if err != nil {
		return err
	}
	if err := bench.WriteReport(os.Stdout, res); err != nil {
		return err
	}
	if f := c.String("json"); f != "" {
		return bench.AppendJSON(f, res)
	}
	return nil
}

// ensureFixture returns the fixture root under dir for cfg, writing it
// when it is not there yet.
func ensureFixture(dir string, cfg bench.RunConfig) (string, error) {
	clips := cfg.Frames > 0
	root := filepath.Join(dir, "images")
	if clips {
		root = filepath.Join(dir, "dfew")
	}
	if _, err := os.Stat(root); err == nil {
		return root, nil
	}
	n := bench.FixtureCounts(cfg.Batch, max(cfg.Warmup, 1), cfg.DataSteps, cfg.DataRounds)
	fmt.Fprintf(os.Stderr, "writing data fixture in %s\n", root)
	return bench.WriteFixture(dir, clips, n, cfg.Frames, cfg.Seed)
}

func soakAction(c *cli.Context, dev gotch.Device, workers int) error {
	cfg := bench.SoakConfig{Steps: c.Int("soak-steps"), Device: dev, Workers: workers, Seed: rt.Seed, Log: os.Stderr}
	if c.NArg() > 0 {
		cfg.Model = c.Args().First()
	}
	if b := c.Int("batch"); b > 0 {
		cfg.Batch = b
	}
	if s := c.String("size"); s != "" {
		h, w, err := parseSize(s)
		if err != nil {
			return err
		}
		if h != w {
			return fmt.Errorf("--soak: size must be square, got %s", s)
		}
		cfg.Size = h
	}
	res, err := bench.Soak(cfg)
	if err != nil {
		return err
	}
	bench.WriteSoakReport(os.Stdout, res)
	if f := c.String("json"); f != "" {
		if err := bench.AppendJSON(f, res); err != nil {
			return err
		}
	}
	if res.Growth >= bench.MaxSoakGrowth {
		return fmt.Errorf("soak: RSS grew %.2f%% from step %d to step %d (limit %.0f%%)", 100*res.Growth, res.BaselineStep, res.Steps, 100*bench.MaxSoakGrowth)
	}
	return nil
}
