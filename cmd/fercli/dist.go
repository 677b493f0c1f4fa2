package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/dist"
	"github.com/urfave/cli/v2"
)

// distFlags are train's data-parallel flags.
func distFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "nproc", Value: 1, Usage: "train data-parallel in N local worker processes (batch_size is per process)"},
		&cli.StringFlag{Name: "dist-backend", Usage: "gloo or nccl (default: nccl on CUDA, gloo on CPU)"},
		&cli.DurationFlag{Name: "dist-timeout", Value: 30 * time.Minute, Usage: "how long a rendezvous or collective waits for the other ranks before failing"},
		&cli.BoolFlag{Name: "ddp-after-backward", Usage: "all-reduce gradient buckets after the backward pass instead of overlapping them with it (DDP's Reducer)"},
		&cli.Float64Flag{Name: "ddp-bucket-mb", Value: 25, Usage: "gradient bucket size in MiB (DDP's bucket_cap_mb)"},
		&cli.BoolFlag{Name: "find-unused-parameters", Usage: "DDP's find_unused_parameters: allow parameters that get no gradient in a step"},
	}
}

// launchWorkers runs `fercli train ...` (these same arguments) in --nproc
// local workers when asked and this process is not a worker already.
func launchWorkers(c *cli.Context) (bool, error) {
	n := c.Int("nproc")
	if n < 1 {
		return true, fmt.Errorf("--nproc %d: want >= 1", n)
	}
	if n == 1 || dist.Launched() {
		return false, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return true, fmt.Errorf("--nproc: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()
	err = dist.Launch(ctx, dist.LaunchOptions{NProc: n, Exe: exe, Args: os.Args[1:]})
	var we *dist.WorkerError
	if errors.As(err, &we) && we.Code > 0 {
		// the worker printed its own error already
		return true, cli.Exit("fercli: "+err.Error(), we.Code)
	}
	return true, err
}

// joinJob joins the process group when this process is a worker of a
// job (started by --nproc or torchrun) and adapts cfg's device to
// LOCAL_RANK. It returns nil outside a job.
func joinJob(c *cli.Context, cfg *fer.Config) (*dist.Comm, error) {
	if !dist.Launched() {
		return nil, nil
	}
	env, err := dist.EnvFromOS()
	if err != nil {
		return nil, err
	}
	if n := c.Int("nproc"); c.IsSet("nproc") && n != env.LocalWorldSize {
		fmt.Fprintf(os.Stderr, "fercli: --nproc %d ignored: this process is rank %d of a job of %d started by a launcher\n", n, env.Rank, env.WorldSize)
	}
	dev, err := fer.ParseDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	backend := dist.Backend(strings.ToLower(c.String("dist-backend")))
	if backend == "" {
		backend = dist.Gloo
		if dev.IsCuda() {
			backend = dist.NCCL
		}
	}
	if dev.IsCuda() {
		// one GPU per local rank, as torchrun scripts do with LOCAL_RANK
		if env.LocalRank >= fer.CUDADeviceCount() {
			return nil, fmt.Errorf("rank %d: LOCAL_RANK %d but only %d CUDA device(s) visible", env.Rank, env.LocalRank, fer.CUDADeviceCount())
		}
		cfg.Device = fmt.Sprintf("cuda:%d", env.LocalRank)
	}
	pg, err := dist.NewProcessGroup(env, backend, dist.GlooDevice{Interfaces: os.Getenv("GLOO_SOCKET_IFNAME")}, c.Duration("dist-timeout"))
	if err != nil {
		return nil, err
	}
	return &dist.Comm{PG: pg, AfterBackward: c.Bool("ddp-after-backward"),
		BucketBytes: int64(c.Float64("ddp-bucket-mb") * (1 << 20)), FindUnused: c.Bool("find-unused-parameters")}, nil
}

// workerThreads is the libtorch thread count: --threads / FER_THREADS
// when given; in a job, OMP_NUM_THREADS when set (torchrun sets it to 1
// for several workers), else the cores shared among the machine's
// workers; else 0 (one per core).
func workerThreads(c *cli.Context) int {
	if c.IsSet("threads") || !dist.Launched() {
		return c.Int("threads")
	}
	if n, err := strconv.Atoi(os.Getenv("OMP_NUM_THREADS")); err == nil && n > 0 {
		return n
	}
	local := 1
	if n, err := strconv.Atoi(os.Getenv(dist.EnvLocalWorldSize)); err == nil && n > 0 {
		local = n
	}
	return max(1, runtime.NumCPU()/local)
}
