package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/dist"
	"github.com/fer-research/fer/fer/optim"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:  "bench-dist",
		Usage: "time data-parallel training steps and the process group's allreduce bandwidth over N local processes",
		Description: `Starts --nproc local workers (as train --nproc does; run it under torchrun
for several machines) that

  1. time --steps training steps of MODEL (forward + cross-entropy + backward
     + SGD, fer.DefaultStep) on a fixed random batch of --batch per process,
     with gradients averaged by DDP's Reducer during the backward pass
     ("overlap") and by bucketed allreduces after it ("after-backward"), and
     on rank 0 alone while the others wait ("local", one process), and on
     every rank without averaging ("no-sync": what sharing the machine's
     cores costs, without any communication);
  2. time allreduce of float32 tensors of --sizes bytes.

Rank 0 prints median step times, the step time and scaling efficiency
(time of one process alone / time per process in the job: 100% means N
processes do N times the work in the time one does its own), and the
allreduce's algorithm bandwidth (bytes / time) and bus bandwidth
(algbw · 2(N−1)/N, as nccl-tests report).

  fercli --threads 1 bench-dist --nproc 2 --model smallcnn --batch 32`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nproc", Value: 2, Usage: "worker processes"},
			&cli.StringFlag{Name: "model", Value: "smallcnn", Usage: "model to train"},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "batch per process"},
			&cli.IntFlag{Name: "size", Value: 48, Usage: "input side (3×size×size images)"},
			&cli.IntFlag{Name: "steps", Value: 20, Usage: "timed steps per mode"},
			&cli.IntFlag{Name: "warmup", Value: 3, Usage: "untimed steps per mode"},
			&cli.StringFlag{Name: "sizes", Value: "4K,64K,1M,4M,16M,64M", Usage: "allreduce sizes in bytes (K, M suffixes)"},
			&cli.IntFlag{Name: "iters", Value: 20, Usage: "timed allreduces per size"},
			&cli.DurationFlag{Name: "dist-timeout", Value: 5 * time.Minute, Usage: "collective timeout"},
		},
		Action: benchDistAction,
	})
}

func benchDistAction(c *cli.Context) error {
	if !dist.Launched() {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		ctx, stop := signalContext()
		defer stop()
		return dist.Launch(ctx, dist.LaunchOptions{NProc: c.Int("nproc"), Exe: exe, Args: os.Args[1:]})
	}
	env, err := dist.EnvFromOS()
	if err != nil {
		return err
	}
	pg, err := dist.NewProcessGroup(env, dist.Gloo, dist.GlooDevice{Interfaces: os.Getenv("GLOO_SOCKET_IFNAME")}, c.Duration("dist-timeout"))
	if err != nil {
		return err
	}
	defer pg.Close()
	main := pg.Rank() == 0
	say := func(format string, a ...any) {
		if main {
			fmt.Printf(format, a...)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	say("bench-dist: %d processes, %d libtorch thread(s) each, %d cores; load average %s", pg.WorldSize(), rt.Threads, runtime.NumCPU(), load)

	steps, err := benchDistSteps(c, pg)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if main {
		fmt.Fprintf(w, "mode\tmedian step\tmin\tmax\tscaling efficiency vs local\n")
		for _, m := range []string{"local", "no-sync", "overlap", "after-backward"} {
			s := steps[m]
			eff := "-"
			if m != "local" {
				eff = fmt.Sprintf("%.0f%%", 100*steps["local"][0]/s[0])
			}
			fmt.Fprintf(w, "%s\t%.1f ms\t%.1f ms\t%.1f ms\t%s\n", m, s[0]*1e3, s[1]*1e3, s[2]*1e3, eff)
		}
		w.Flush()
	}

	var sizes []int64
	for _, s := range strings.Split(c.String("sizes"), ",") {
		n, err := parseBytes(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		sizes = append(sizes, n)
	}
	if main {
		fmt.Fprintf(w, "\nallreduce bytes\tmedian\talgbw\tbusbw\n")
	}
	for _, n := range sizes {
		x, err := ts.Ones([]int64{n / 4}, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		var times []float64
		for i := -2; i < c.Int("iters"); i++ {
			if err := pg.Barrier(); err != nil {
				return err
			}
			t0 := time.Now()
			if err := pg.AllReduce(dist.Sum, x); err != nil {
				return err
			}
			if i >= 0 {
				times = append(times, time.Since(t0).Seconds())
			}
		}
		x.MustDrop()
		med := median(times)
		alg := float64(n) / med
		bus := alg * 2 * float64(pg.WorldSize()-1) / float64(pg.WorldSize())
		if main {
			fmt.Fprintf(w, "%d\t%.3f ms\t%.2f GB/s\t%.2f GB/s\n", n, med*1e3, alg/1e9, bus/1e9)
		}
	}
	if main {
		w.Flush()
	}
	return pg.Barrier()
}

// benchDistSteps times training steps in the three modes; it returns
// rank 0's [median, min, max] seconds per mode (the slowest rank's time
// per step, as every step waits for it).
func benchDistSteps(c *cli.Context, pg *dist.ProcessGroup) (map[string][3]float64, error) {
	size := int64(c.Int("size"))
	batch := int64(c.Int("batch"))
	fer.SeedTorch(1)
	vs := nn.NewVarStore(gotch.CPU)
	m, err := fer.NewModel(vs, fer.ModelSpec{Name: c.String("model"), NumClasses: 7, InputShape: []int64{3, size, size}})
	if err != nil {
		return nil, err
	}
	opt, err := optim.New(vs, optim.Config{Kind: optim.SGD, LR: 0.001, Momentum: 0.9})
	if err != nil {
		return nil, err
	}
	fer.SeedTorch(int64(100 + pg.Rank()))
	x, err := ts.Randn([]int64{batch, 3, size, size}, gotch.Float, gotch.CPU)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(pg.Rank()), 1))
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(rng.IntN(7))
	}
	y, err := ts.NewTensorFromData(labels, []int64{batch})
	if err != nil {
		return nil, err
	}
	b := &fer.Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{fer.TargetLabel: y}, Size: int(batch)}
	out := map[string][3]float64{}
	for _, mode := range []string{"local", "overlap", "after-backward", "no-sync", "overlap"} {
		comm := &dist.Comm{PG: pg, AfterBackward: mode == "after-backward"}
		var sync fer.GradSync
		if mode == "overlap" || mode == "after-backward" {
			// with the buffers: DDP broadcasts them before every step
			params, names, bufs, err := fer.SplitVariables(vs)
			if err != nil {
				return nil, err
			}
			if sync, err = comm.NewGradSync(params, names, bufs); err != nil {
				return nil, err
			}
		}
		sc := &fer.StepContext{Model: m, Loss: fer.CrossEntropy{}, Opt: opt, Sync: sync}
		var times []float64
		for i := -c.Int("warmup"); i < c.Int("steps"); i++ {
			if err := pg.Barrier(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			if sync != nil {
				if err := sync.BeforeForward(); err != nil {
					return nil, err
				}
			}
			// "local" is one process alone: the others wait
			if mode != "local" || pg.Rank() == 0 {
				r, err := fer.DefaultStep(sc, b)
				if err != nil {
					return nil, err
				}
				r.Outputs.Drop()
			}
			// the step ends when the slowest rank's does
			if err := pg.Barrier(); err != nil {
				return nil, err
			}
			if i >= 0 {
				times = append(times, time.Since(t0).Seconds())
			}
		}
		if sync != nil {
			sync.Close()
		}
		sort.Float64s(times)
		// "overlap" runs twice (first and last) so both distributed
		// modes see the same warm state; the second is reported
		out[mode] = [3]float64{median(times), times[0], times[len(times)-1]}
	}
	runtime.KeepAlive(vs)
	return out, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("--sizes: %q is not a byte count", s)
	}
	return n * mult, nil
}
