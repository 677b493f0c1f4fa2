package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// SoakConfig is a long training run that watches resident memory.
type SoakConfig struct {
	// Model is an image model of Models (default smallcnn).
	Model string
	// Steps is the number of training steps (default 10000).
	Steps int
	// BaselineStep is where the reference RSS is read (default
	// min(1000, Steps/10)): by then allocator pools and caches are warm.
	BaselineStep int
	// Every is the sampling interval in steps (default Steps/20).
	Every int
	// Batch and Size (H = W) of the training batches (defaults 16, 32:
	// about 2 GFLOP a step, so 10k steps take minutes on 2 cores); the
	// fixture images are 64×64 JPEGs (FER2013/FERPlus scale).
	Batch, Size int
	// FixtureImages is the fixture size (default 512).
	FixtureImages int
	Workers       int
	Device        gotch.Device
	Seed          int64
	// Log receives one line per sample point (nil: none).
	Log io.Writer
}

// SoakPoint is one memory sample.
type SoakPoint struct {
	Step int `json:"step"`
	// RSS is VmRSS; GoHeap the Go heap in use (runtime.MemStats.HeapAlloc).
	RSS int64 `json:"rss"`
	// CHeap is the C heap in use (CHeapInUse).
	CHeap   int64   `json:"c_heap"`
	GoHeap  uint64  `json:"go_heap"`
	Elapsed float64 `json:"elapsed_s"`
	Loss    float64 `json:"loss"`
}

// SoakResult is the soak's record.
type SoakResult struct {
	Kind         string      `json:"kind"` // "soak"
	Model        string      `json:"model"`
	Device       string      `json:"device"`
	Steps        int         `json:"steps"`
	Batch        int         `json:"batch"`
	Size         int         `json:"size"`
	Workers      int         `json:"workers"`
	Points       []SoakPoint `json:"points"`
	BaselineStep int         `json:"baseline_step"`
	BaselineRSS  int64       `json:"baseline_rss"`
	FinalRSS     int64       `json:"final_rss"`
	PeakRSS      int64       `json:"peak_rss"`
	// Growth is FinalRSS/BaselineRSS − 1.
	Growth float64 `json:"growth"`
	// StepsPerSecond over the whole run (data loading included).
	StepsPerSecond float64 `json:"steps_per_s"`
}

// MaxSoakGrowth is the largest acceptable RSS growth from the baseline to
// the end of a soak.
const MaxSoakGrowth = 0.05

func (c *SoakConfig) defaults() error {
	if c.Model == "" {
		c.Model = "smallcnn"
	}
	if c.Steps == 0 {
		c.Steps = 10000
	}
	if c.BaselineStep == 0 {
		c.BaselineStep = min(1000, c.Steps/10)
	}
	if c.Every == 0 {
		c.Every = max(1, c.Steps/20)
	}
	if c.Batch == 0 {
		c.Batch = 16
	}
	if c.Size == 0 {
		c.Size = 32
	}
	if c.FixtureImages == 0 {
		c.FixtureImages = 512
	}
	if c.Steps < 2 || c.BaselineStep < 1 || c.BaselineStep >= c.Steps {
		return fmt.Errorf("soak: steps = %d, baseline step = %d: want 1 <= baseline < steps (at least 10 steps by default)", c.Steps, c.BaselineStep)
	}
	info, err := LookupModel(c.Model)
	if err != nil {
		return err
	}
	if info.Frames > 0 {
		return fmt.Errorf("soak: %s takes clips; the soak trains image models", c.Model)
	}
	return nil
}

// Soak trains cfg.Model for cfg.Steps steps with fer's loader over a JPEG
// fixture and fer.DefaultStep, reading the process RSS every cfg.Every
// steps, at the baseline step and at the end. It must run on the
// goroutine that does all torch work.
func Soak(cfg SoakConfig) (*SoakResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fer-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	root := dir + "/images"
	if _, err := WriteImageFolder(root, cfg.FixtureImages, 64, cfg.Seed); err != nil {
		return nil, err
	}
	pipe, err := OpenDataPipe(DataConfig{Root: root, Size: cfg.Size, Batch: cfg.Batch, Workers: cfg.Workers, Device: cfg.Device, Seed: cfg.Seed})
	if err != nil {
		return nil, err
	}
	t, err := NewTarget(TargetConfig{Model: cfg.Model, Batch: cfg.Batch, Height: cfg.Size, Width: cfg.Size, Device: cfg.Device})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	res := &SoakResult{Kind: "soak", Model: cfg.Model, Device: DeviceName(cfg.Device), Steps: cfg.Steps, Batch: cfg.Batch,
		Size: cfg.Size, Workers: pipe.loader.Config().Workers, BaselineStep: cfg.BaselineStep}
	sc := &fer.StepContext{Model: t.Model, Loss: t.Loss, Opt: t.Opt}
	start := time.Now()
	epoch := 0
	ep := pipe.loader.Epoch(epoch)
	defer func() { ep.Close() }()
	var ms runtime.MemStats
	for step := 1; step <= cfg.Steps; step++ {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			ep.Close()
			epoch++
			ep = pipe.loader.Epoch(epoch)
			b, err = ep.Next()
		}
		if err != nil {
			return nil, fmt.Errorf("soak step %d: %w", step, err)
		}
		x, y, err := b.Tensors(cfg.Device)
		if err != nil {
			return nil, fmt.Errorf("soak step %d: %w", step, err)
		}
		batch := &fer.Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{fer.TargetLabel: y}, Size: b.Size(), IDs: b.IDs}
		sc.Step, sc.Epoch, sc.Batch = step, epoch+1, step
		r, err := fer.DefaultStep(sc, batch)
		batch.Drop()
		if err != nil {
			return nil, fmt.Errorf("soak step %d: %w", step, err)
		}
		r.Outputs.Drop()
		if step%cfg.Every == 0 || step == cfg.BaselineStep || step == cfg.Steps || step == 1 {
			st, err := ReadProcStatus()
			if err != nil {
				return nil, err
			}
			runtime.ReadMemStats(&ms)
			p := SoakPoint{Step: step, RSS: st.RSS, CHeap: CHeapInUse(), GoHeap: ms.HeapAlloc, Elapsed: time.Since(start).Seconds(), Loss: r.Loss}
			res.Points = append(res.Points, p)
			if step == cfg.BaselineStep {
				res.BaselineRSS = st.RSS
			}
			if step == cfg.Steps {
				res.FinalRSS, res.PeakRSS = st.RSS, st.PeakRSS
			}
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "step %6d  RSS %s  C heap %s  Go heap %s  loss %.4f  %.1f s\n", step, MiB(p.RSS), MiB(p.CHeap), MiB(int64(p.GoHeap)), p.Loss, p.Elapsed)
			}
		}
	}
	res.Growth = float64(res.FinalRSS)/float64(res.BaselineRSS) - 1
	res.StepsPerSecond = float64(cfg.Steps) / time.Since(start).Seconds()
	return res, nil
}

// WriteSoakReport prints the soak's verdict.
func WriteSoakReport(w io.Writer, r *SoakResult) {
	verdict := "OK"
	if r.Growth >= MaxSoakGrowth {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "soak %s on %s: %d steps of batch %d at %d×%d (%d loader workers), %.1f steps/s\n",
		r.Model, r.Device, r.Steps, r.Batch, r.Size, r.Size, r.Workers, r.StepsPerSecond)
	fmt.Fprintf(w, "RSS at step %d: %s; at step %d: %s; growth %+.2f%% (limit %.0f%%): %s; peak %s\n",
		r.BaselineStep, MiB(r.BaselineRSS), r.Steps, MiB(r.FinalRSS), 100*r.Growth, 100*MaxSoakGrowth, verdict, MiB(r.PeakRSS))
}
