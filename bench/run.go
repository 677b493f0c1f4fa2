package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/autocast"
	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch"
)

// Phases that Run measures.
const (
	PhaseForward = "forward" // eval-mode forward, no autograd
	PhaseTrain   = "train"   // forward + backward + optimiser step
	PhaseData    = "data"    // decode + augment + batch + tensor
)

// AllPhases is the default phase list, in run order.
var AllPhases = []string{PhaseForward, PhaseTrain, PhaseData}

// RunConfig is one `fercli bench MODEL` run.
type RunConfig struct {
	Model         string
	Batch         int
	Height, Width int
	Frames        int
	Device        gotch.Device
	Optimizer     string
	AMP           bool
	// AMPDType is autocast's precision (gotch.Invalid or 0: the device's
	// default, bfloat16 on CPU and float16 on CUDA).
	AMPDType gotch.DType
	// Warmup untimed steps before the first timed round (and as the
	// data pipeline's fill batches in every round); Steps timed steps
	// per phase, split into Rounds rounds that alternate between fer and
	// PyTorch (one untimed re-warm step after each switch).
	Warmup, Steps, Rounds int
	Phases                []string
	// DataSteps timed batches of the data pipeline in DataRounds rounds
	// (0: Steps, Rounds). Use many: a round should be much longer than
	// the loaders' prefetch depth (fer 2 batches, PyTorch 2 per worker).
	DataSteps, DataRounds int
	// Workers for the data pipeline (both frameworks).
	Workers int
	// DataRoot is an existing fixture; empty: one is written to a
	// temporary directory and removed afterwards.
	DataRoot string
	Seed     int64
	// Threads is libtorch's intra-op thread count (reported, and set on
	// the PyTorch side).
	Threads int
	// Torch, when set, is the PyTorch side to interleave with.
	Torch *Torch
	// Extra are further PyTorch sides for the forward and train phases
	// (the same PyTorch on another BLAS, say); the data phase, which does
	// not depend on the BLAS, runs against Torch only.
	Extra []*Torch
	// Roofline counts each model phase's FLOPs per step (one untimed,
	// counted step each) and measures the machine's peak (Peak).
	Roofline bool
	// PeakSize is the side of the peak measurement's matrices (0: the
	// device's default).
	PeakSize int
	// Attention is the attention kernel in force (models.AttentionKernel),
	// recorded in the result.
	Attention string
	// Ops records, with Roofline, the outermost ops of one step by name,
	// of fer and of the first PyTorch side (its profiler): where the two
	// frameworks dispatch different work.
	Ops bool
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// PhaseResult is one phase's figures for both frameworks. Torch fields
// are zero without a PyTorch side.
type PhaseResult struct {
	Phase string `json:"phase"`
	// Items per step and their unit ("samples", "images", "frames").
	Items      int       `json:"items_per_step"`
	Unit       string    `json:"unit"`
	Fer        Stats     `json:"fer"`
	Torch      Stats     `json:"torch"`
	FerTimes   []float64 `json:"fer_times_s"`
	TorchTimes []float64 `json:"torch_times_s,omitempty"`
	// Ratio is fer's median step time over PyTorch's (< 1: fer faster);
	// for the data phase the ratio of the mean batch times (see
	// Throughput).
	Ratio float64 `json:"ratio"`
	// RatioMin is the ratio of the fastest steps: a second view that
	// background load (which only ever adds time) disturbs less.
	RatioMin float64 `json:"ratio_min"`
	// Peak resident memory of each process during the phase (VmHWM after
	// a reset; PyTorch's DataLoader workers are separate processes and
	// not included), and device memory (-1: not available).
	FerPeakRSS   int64 `json:"fer_peak_rss"`
	TorchPeakRSS int64 `json:"torch_peak_rss"`
	FerGPU       int64 `json:"fer_gpu"`
	TorchGPU     int64 `json:"torch_gpu"`
	// FLOPs per step (fer.CountFLOPs over one untimed step: the GEMM-like
	// ops, 2 per multiply-accumulate), GEMM-like ops and all dispatched
	// ops per step; 0 when not counted (the data phase, --roofline off).
	FLOPs int64 `json:"flops,omitempty"`
	GEMMs int64 `json:"gemm_ops,omitempty"`
	Ops   int64 `json:"ops,omitempty"`
	// Extra holds the further PyTorch sides (RunConfig.Extra), in order.
	Extra []SideResult `json:"extra,omitempty"`
	// FerOps and TorchOps are one step's outermost ops by name (--ops).
	FerOps   map[string]int64 `json:"fer_ops,omitempty"`
	TorchOps map[string]int64 `json:"torch_ops,omitempty"`
}

// SideResult is one further PyTorch side's figures for a phase.
type SideResult struct {
	Label    string    `json:"label"`
	Stats    Stats     `json:"stats"`
	Times    []float64 `json:"times_s"`
	Ratio    float64   `json:"ratio"`     // fer median / this side's median
	RatioMin float64   `json:"ratio_min"` // of the fastest steps
	PeakRSS  int64     `json:"peak_rss"`
	GPU      int64     `json:"gpu"`
}

// Result is a whole run.
type Result struct {
	Model       string     `json:"model"`
	Device      string     `json:"device"`
	Threads     int        `json:"threads"`
	Batch       int        `json:"batch"`
	Height      int        `json:"height"`
	Width       int        `json:"width"`
	Frames      int        `json:"frames,omitempty"`
	Workers     int        `json:"workers"`
	AMP         bool       `json:"amp"`
	AMPDType    string     `json:"amp_dtype,omitempty"`
	Optimizer   string     `json:"optimizer"`
	Warmup      int        `json:"warmup"`
	Steps       int        `json:"steps"`
	Rounds      int        `json:"rounds"`
	DataSteps   int        `json:"data_steps,omitempty"`
	DataRounds  int        `json:"data_rounds,omitempty"`
	FerParams   int64      `json:"fer_params"`
	TorchParams int64      `json:"torch_params,omitempty"`
	Torch       *TorchInfo `json:"torch,omitempty"`
	// Extra describes RunConfig.Extra's PyTorch sides.
	Extra []TorchInfo `json:"extra_torch,omitempty"`
	// FerBLAS is the BLAS fer ran on (fer.BLAS); OMPWait how libgomp's
	// idle threads waited (fer.OMPWaitPolicy; a PyTorch side started by
	// fer inherits it).
	FerBLAS string `json:"fer_blas,omitempty"`
	OMPWait string `json:"omp_wait,omitempty"`
	// Peak is the measured roof (nil: --roofline off).
	Peak *Peak `json:"peak,omitempty"`
	// Attention is the attention kernel fer used ("" before it existed).
	Attention string        `json:"attention,omitempty"`
	Phases    []PhaseResult `json:"phases"`
	// Notes are caveats found during the run (peak reset refused, ...).
	Notes []string `json:"notes,omitempty"`
	// LoadBefore and LoadAfter are the 1-, 5- and 15-minute load
	// averages when the run started and ended (other work on the machine
	// slows both frameworks; interleaving shares it out).
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
}

// Throughput is items per second of fer (torch = false) or PyTorch: at
// the median step time for forward and train, at the mean batch time for
// the data pipeline, whose prefetch buffers hand out some batches at once
// (its median would flatter the deeper buffer).
func (p *PhaseResult) Throughput(torch bool) float64 {
	s := p.Fer
	if torch {
		s = p.Torch
	}
	if p.Phase == PhaseData {
		return s.Rate(p.Items)
	}
	return s.Throughput(p.Items)
}

// Phase returns the named phase's result, nil when it was not run.
func (r *Result) Phase(name string) *PhaseResult {
	for i := range r.Phases {
		if r.Phases[i].Phase == name {
			return &r.Phases[i]
		}
	}
	return nil
}

func (c *RunConfig) logf(format string, a ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format, a...)
	}
}

// DeviceName is "cpu" or "cuda:N".
func DeviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}

// side is one framework's way of running n timed steps after warm
// untimed ones.
type side func(warm, n int) ([]float64, error)

// interleave runs the timed rounds of every side (fer first in the list),
// rotating which side goes first from round to round so that no side
// always follows the same one. The first round warms up with warmup
// steps, later rounds with rewarm. times[i] collects side i's step times.
func interleave(steps, rounds, warmup, rewarm int, sides ...side) (times [][]float64, err error) {
	times = make([][]float64, len(sides))
	for r, n := range Chunks(steps, rounds) {
		warm := rewarm
		if r == 0 {
			warm = warmup
		}
		for j := range sides {
			i := (r + j) % len(sides)
			ts, err := sides[i](warm, n)
			if err != nil {
				if i == 0 {
					return nil, fmt.Errorf("fer: %w", err)
				}
				return nil, err
			}
			times[i] = append(times[i], ts...)
		}
	}
	return times, nil
}

// Run measures the phases of cfg. It must run on the goroutine that does
// all torch work (a locked OS thread).
func Run(cfg RunConfig) (*Result, error) {
	info, err := LookupModel(cfg.Model)
	if err != nil {
		return nil, err
	}
	if cfg.Optimizer == "" {
		cfg.Optimizer = info.Optimizer
	}
	if cfg.Steps < 1 || cfg.Warmup < 0 {
		return nil, fmt.Errorf("bench: steps = %d, warmup = %d: want steps >= 1, warmup >= 0", cfg.Steps, cfg.Warmup)
	}
	if cfg.Rounds < 1 {
		cfg.Rounds = 1
	}
	if len(cfg.Phases) == 0 {
		cfg.Phases = AllPhases
	}
	if cfg.DataSteps < 1 {
		cfg.DataSteps = cfg.Steps
	}
	if cfg.DataRounds < 1 {
		cfg.DataRounds = cfg.Rounds
	}
	for _, p := range cfg.Phases {
		if !slices.Contains(AllPhases, p) {
			return nil, fmt.Errorf("bench: unknown phase %q, want %v", p, AllPhases)
		}
	}
	res := &Result{
		Model: info.Name, Device: DeviceName(cfg.Device), Threads: cfg.Threads, Batch: cfg.Batch,
		Height: cfg.Height, Width: cfg.Width, Frames: cfg.Frames, Workers: cfg.Workers, AMP: cfg.AMP,
		Optimizer: cfg.Optimizer, Warmup: cfg.Warmup, Steps: cfg.Steps, Rounds: cfg.Rounds,
	}
	if cfg.AMP {
		res.AMPDType = dtypeName(cfg.ampDType())
	}
	if slices.Contains(cfg.Phases, PhaseData) {
		res.DataSteps, res.DataRounds = cfg.DataSteps, cfg.DataRounds
	}
	if cfg.Torch != nil {
		ti := cfg.Torch.Info
		res.Torch = &ti
	} else if len(cfg.Extra) > 0 {
		return nil, fmt.Errorf("bench: further PyTorch sides without a first one")
	}
	for _, x := range cfg.Extra {
		res.Extra = append(res.Extra, x.Info)
	}
	res.FerBLAS = fer.BLAS().String()
	res.OMPWait = fer.OMPWaitPolicy().String()
	res.Attention = cfg.Attention
	res.LoadBefore, _ = LoadAverage()
	defer func() { res.LoadAfter, _ = LoadAverage() }()
	if err := ResetPeakRSS(); err != nil {
		res.Notes = append(res.Notes, err.Error())
	}
	modelPhases := slices.Contains(cfg.Phases, PhaseForward) || slices.Contains(cfg.Phases, PhaseTrain)
	if cfg.Roofline && modelPhases {
		n := cfg.PeakSize
		if n <= 0 {
			n = DefaultPeakSize(cfg.Device)
		}
		dt := gotch.Float
		if cfg.AMP {
			dt = cfg.ampDType()
		}
		cfg.logf("peak: %s %d×%d matmul\n", dtypeName(dt), n, n)
		pk, err := MeasurePeak(cfg.Device, dt, n, 8)
		if err != nil {
			return nil, err
		}
		if cfg.Device.IsCuda() {
			if names := fer.CUDADeviceNames(); int(cfg.Device.Value) < len(names) {
				pk.DeviceName = names[cfg.Device.Value]
				pk.SpecTFLOPS = GPUSpecTFLOPS(pk.DeviceName)
			}
		}
		res.Peak = &pk
	}
	if modelPhases {
		if err := runModelPhases(&cfg, res); err != nil {
			return nil, err
		}
	}
	if res.Peak != nil {
		// once more after the model phases, keeping the faster: on a
		// shared machine one measurement can land in a busy moment
		again, err := MeasurePeak(cfg.Device, dtypeByName(res.Peak.DType), res.Peak.N, res.Peak.Reps)
		if err != nil {
			return nil, err
		}
		res.Peak.First, res.Peak.Last = res.Peak.GFLOPS, again.GFLOPS
		res.Peak.GFLOPS = max(res.Peak.GFLOPS, again.GFLOPS)
	}
	if slices.Contains(cfg.Phases, PhaseData) {
		if err := runDataPhase(&cfg, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ampDType is the autocast precision in force: AMPDType or the device's
// default.
func (c *RunConfig) ampDType() gotch.DType {
	if c.AMPDType == 0 || c.AMPDType == gotch.Invalid {
		return autocast.DefaultDType(c.Device)
	}
	return c.AMPDType
}

func (c *RunConfig) torchModelRequest() map[string]any {
	return map[string]any{
		"op": "model", "model": c.Model, "batch": c.Batch, "height": c.Height, "width": c.Width,
		"frames": c.Frames, "classes": 7, "device": DeviceName(c.Device), "optimizer": c.Optimizer,
		"amp": c.AMP, "amp_dtype": dtypeName(c.ampDType()), "threads": c.Threads, "seed": c.Seed,
		"smallcnn_width": models.DefaultSmallCNNConfig(7).Width,
		"sgd":            map[string]float64{"lr": SGDLR, "momentum": SGDMomentum, "weight_decay": SGDWeightDecay},
		"adam":           map[string]float64{"lr": AdamLR},
		"sam_rho":        samRho[c.Model],
	}
}

func runModelPhases(cfg *RunConfig, res *Result) error {
	cfg.logf("building %s in fer (batch %d, %dx%d", cfg.Model, cfg.Batch, cfg.Height, cfg.Width)
	if cfg.Frames > 0 {
		cfg.logf(", %d frames", cfg.Frames)
	}
	cfg.logf(", %s, %s)\n", res.Device, cfg.Optimizer)
	t, err := NewTarget(TargetConfig{
		Model: cfg.Model, Batch: cfg.Batch, Height: cfg.Height, Width: cfg.Width, Frames: cfg.Frames,
		Device: cfg.Device, Optimizer: cfg.Optimizer, AMP: cfg.AMP, AMPDType: cfg.ampDType(),
	})
	if err != nil {
		return err
	}
	defer t.Close()
	res.FerParams = t.Params
	torches := cfg.torches()
	for i, tp := range torches {
		cfg.logf("building %s in PyTorch (%s)\n", cfg.Model, tp.Label())
		var r struct {
			Params  int64 `json:"params"`
			Threads int   `json:"threads"`
		}
		if err := tp.Call(cfg.torchModelRequest(), &r); err != nil {
			return err
		}
		if i == 0 {
			res.TorchParams = r.Params
			if res.Torch != nil {
				res.Torch.Threads = r.Threads
			}
		} else {
			res.Extra[i-1].Threads = r.Threads
		}
		if r.Params != t.Params {
			res.Notes = append(res.Notes, fmt.Sprintf("parameter counts differ: fer %d, PyTorch (%s) %d (the two models are not the same network)", t.Params, tp.Label(), r.Params))
		}
	}
	for _, phase := range []string{PhaseForward, PhaseTrain} {
		if !slices.Contains(cfg.Phases, phase) {
			continue
		}
		step := t.Forward
		if phase == PhaseTrain {
			step = t.TrainStep
		}
		pr := PhaseResult{Phase: phase, Items: t.ItemsPerStep(), Unit: "samples", FerGPU: -1, TorchGPU: -1}
		if cfg.Roofline {
			// one untimed step under the FLOP counter (it also warms up)
			c, err := fer.CountFLOPs(step)
			if err != nil {
				return fmt.Errorf("%s %s: %w", cfg.Model, phase, err)
			}
			pr.FLOPs, pr.GEMMs, pr.Ops = c.FLOPs, c.GEMMs, c.Ops
			if cfg.Ops {
				pr.FerOps = c.OpNames
				if len(torches) > 0 {
					var r struct {
						Ops map[string]int64 `json:"ops"`
					}
					if err := torches[0].Call(map[string]any{"op": "ops", "phase": phase}, &r); err != nil {
						return err
					}
					pr.TorchOps = r.Ops
				}
			}
		}
		_ = ResetPeakRSS()
		sides := []side{func(warm, n int) ([]float64, error) { return Time(warm, n, step, t.Sync) }}
		for _, tp := range torches {
			if err := tp.Call(map[string]any{"op": "reset_peak"}, nil); err != nil {
				return err
			}
			sides = append(sides, func(warm, n int) ([]float64, error) {
				var r TimesReply
				err := tp.Call(map[string]any{"op": phase, "warmup": warm, "steps": n}, &r)
				return r.Times, err
			})
		}
		cfg.logf("%s: %d warm-up + %d timed steps in %d rounds\n", phase, cfg.Warmup, cfg.Steps, len(Chunks(cfg.Steps, cfg.Rounds)))
		times, err := interleave(cfg.Steps, cfg.Rounds, cfg.Warmup, 1, sides...)
		if err != nil {
			return fmt.Errorf("%s %s: %w", cfg.Model, phase, err)
		}
		pr.FerTimes = times[0]
		if len(torches) > 0 {
			pr.TorchTimes = times[1]
		}
		for i := 2; i < len(times); i++ {
			pr.Extra = append(pr.Extra, SideResult{Label: torches[i-1].Label(), Times: times[i], GPU: -1})
		}
		if err := finishPhase(cfg, &pr); err != nil {
			return err
		}
		res.Phases = append(res.Phases, pr)
	}
	return nil
}

// torches is the PyTorch sides in order: Torch, then Extra.
func (c *RunConfig) torches() []*Torch {
	if c.Torch == nil {
		return nil
	}
	return append([]*Torch{c.Torch}, c.Extra...)
}

// finishPhase fills the statistics and memory figures.
func finishPhase(cfg *RunConfig, pr *PhaseResult) error {
	var err error
	if pr.Fer, err = Summarize(pr.FerTimes); err != nil {
		return err
	}
	if pr.Torch, err = Summarize(pr.TorchTimes); err != nil {
		return err
	}
	pr.Ratio = Ratio(pr.Fer, pr.Torch)
	if pr.Phase == PhaseData {
		pr.Ratio = RatioMean(pr.Fer, pr.Torch)
	}
	// (Not for the data phase: its fastest batches are the ones already
	// waiting in a prefetch buffer.)
	if pr.Phase != PhaseData && pr.Fer.N > 0 && pr.Torch.N > 0 && pr.Torch.Min > 0 {
		pr.RatioMin = pr.Fer.Min / pr.Torch.Min
	}
	if st, err := ReadProcStatus(); err == nil {
		pr.FerPeakRSS = st.PeakRSS
	}
	if cfg.Device.IsCuda() {
		if b, ok := GPUMemory(); ok {
			pr.FerGPU = b
		}
	}
	if cfg.Torch != nil {
		var m MemReply
		if err := cfg.Torch.Call(map[string]any{"op": "mem"}, &m); err != nil {
			return err
		}
		pr.TorchPeakRSS, pr.TorchGPU = m.PeakRSS, m.GPU
	}
	for i := range pr.Extra {
		x := &pr.Extra[i]
		if x.Stats, err = Summarize(x.Times); err != nil {
			return err
		}
		x.Ratio = Ratio(pr.Fer, x.Stats)
		if pr.Fer.N > 0 && x.Stats.N > 0 && x.Stats.Min > 0 {
			x.RatioMin = pr.Fer.Min / x.Stats.Min
		}
		var m MemReply
		if err := cfg.Extra[i].Call(map[string]any{"op": "mem"}, &m); err != nil {
			return err
		}
		x.PeakRSS, x.GPU = m.PeakRSS, m.GPU
	}
	return nil
}

// FixtureCounts is how many samples a data fixture needs so that one
// round (skip + the largest chunk of batches) fits in one epoch.
func FixtureCounts(batch, warmup, steps, rounds int) int {
	ch := Chunks(steps, rounds)
	largest := 0
	if len(ch) > 0 {
		largest = ch[0]
	}
	return max(16, (warmup+largest)*batch)
}

// WriteFixture writes the data fixture a run needs under dir (frames
// fixture side 224 px, DFEW's clip_224x224) and returns its root.
func WriteFixture(dir string, clips bool, n, frames int, seed int64) (string, error) {
	if clips {
		root := filepath.Join(dir, "dfew")
		// Half again as many frames as sampled, so that the training
		// sampler has a choice of offsets.
		return root, WriteDFEWTree(root, n, frames+frames/2, 224, seed)
	}
	root := filepath.Join(dir, "images")
	_, err := WriteImageFolder(root, n, 224, seed)
	return root, err
}

func runDataPhase(cfg *RunConfig, res *Result) error {
	if cfg.Height != cfg.Width {
		return fmt.Errorf("bench data: the augmentation makes square crops; size %dx%d is not square", cfg.Height, cfg.Width)
	}
	clips := cfg.Frames > 0
	root := cfg.DataRoot
	if root == "" {
		dir, err := os.MkdirTemp("", "fer-bench-fixture-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		n := FixtureCounts(cfg.Batch, max(cfg.Warmup, 1), cfg.DataSteps, cfg.DataRounds)
		what := "images"
		if clips {
			what = fmt.Sprintf("clips of %d frames", cfg.Frames+cfg.Frames/2)
		}
		cfg.logf("writing data fixture: %d 224×224 JPEG %s in %s\n", n, what, dir)
		if root, err = WriteFixture(dir, clips, n, cfg.Frames, cfg.Seed); err != nil {
			return err
		}
	}
	dc := DataConfig{Clips: clips, Root: root, Size: cfg.Height, Frames: cfg.Frames, Batch: cfg.Batch, Workers: cfg.Workers, Device: cfg.Device, Seed: cfg.Seed}
	pipe, err := OpenDataPipe(dc)
	if err != nil {
		return err
	}
	pr := PhaseResult{Phase: PhaseData, Items: pipe.ItemsPerStep(), Unit: "images", FerGPU: -1, TorchGPU: -1}
	if clips {
		pr.Unit = "frames"
	}
	var torchRun side
	if cfg.Torch != nil {
		req := map[string]any{"op": "data_open", "clips": clips, "root": root, "size": cfg.Height, "frames": cfg.Frames,
			"batch": cfg.Batch, "workers": cfg.Workers, "seed": cfg.Seed, "threads": cfg.Threads}
		if err := cfg.Torch.Call(req, nil); err != nil {
			return err
		}
		if err := cfg.Torch.Call(map[string]any{"op": "reset_peak"}, nil); err != nil {
			return err
		}
		torchRun = func(warm, n int) ([]float64, error) {
			var r TimesReply
			err := cfg.Torch.Call(map[string]any{"op": "data", "skip": warm, "steps": n}, &r)
			return r.Times, err
		}
	}
	_ = ResetPeakRSS()
	skip := max(cfg.Warmup, 1)
	cfg.logf("data: %d workers, %d fill batches per round, %d timed batches in %d rounds\n", cfg.Workers, skip, cfg.DataSteps, len(Chunks(cfg.DataSteps, cfg.DataRounds)))
	ferRun := func(_, n int) ([]float64, error) { return pipe.Run(skip, n) }
	var tr side
	if torchRun != nil {
		tr = func(_, n int) ([]float64, error) { return torchRun(skip, n) }
	}
	sides := []side{ferRun}
	if tr != nil {
		sides = append(sides, tr)
	}
	times, err := interleave(cfg.DataSteps, cfg.DataRounds, skip, skip, sides...)
	if err != nil {
		return fmt.Errorf("%s data: %w", cfg.Model, err)
	}
	pr.FerTimes = times[0]
	if tr != nil {
		pr.TorchTimes = times[1]
	}
	if err := finishPhase(cfg, &pr); err != nil {
		return err
	}
	res.Phases = append(res.Phases, pr)
	return nil
}

// fmtRatio prints a ratio or "–" when it is undefined (0).
func fmtRatio(r float64) string {
	if !(r > 0) || math.IsInf(r, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}
