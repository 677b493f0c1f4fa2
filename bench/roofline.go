package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Peak is the roof the model phases are compared with: the throughput of
// a large square matrix product through libtorch on the same device,
// threads and precision, measured at the start of the run (on a loaded
// machine it is lower, like everything else).
type Peak struct {
	GFLOPS float64 `json:"gflops"` // best of the timed products, 2·N³ / time
	N      int     `json:"n"`      // matrix side
	DType  string  `json:"dtype"`  // "float", "bfloat16", "half"
	Reps   int     `json:"reps"`
	// First and Last are the measurements before and after the model
	// phases (GFLOPS is the larger).
	First float64 `json:"first_gflops,omitempty"`
	Last  float64 `json:"last_gflops,omitempty"`
	// SpecTFLOPS is the vendor's dense peak for DType on this GPU (0:
	// not known, or a CPU); MFU is computed against it when known.
	SpecTFLOPS float64 `json:"spec_tflops,omitempty"`
	DeviceName string  `json:"device_name,omitempty"`
}

// DefaultPeakSize is the matrix side of the peak measurement: big enough
// for the BLAS to reach its steady state (2048³ on CPU: 17 GFLOP, a fraction
// of a second), far bigger on a GPU.
func DefaultPeakSize(dev gotch.Device) int {
	if dev.IsCuda() {
		return 8192
	}
	return 2048
}

// MeasurePeak times reps products of two n×n random matrices after two
// warm-up products and returns the fastest as GFLOP/s. Run measures it
// before and after the model phases and keeps the faster.
func MeasurePeak(dev gotch.Device, dtype gotch.DType, n, reps int) (Peak, error) {
	if n < 1 || reps < 1 {
		return Peak{}, fmt.Errorf("peak: n = %d, reps = %d: want positive", n, reps)
	}
	p := Peak{N: n, DType: dtypeName(dtype), Reps: reps}
	a, err := ts.Randn([]int64{int64(n), int64(n)}, dtype, dev)
	if err != nil {
		return p, fmt.Errorf("peak: %w", err)
	}
	defer a.Drop()
	b, err := ts.Randn([]int64{int64(n), int64(n)}, dtype, dev)
	if err != nil {
		return p, fmt.Errorf("peak: %w", err)
	}
	defer b.Drop()
	sync := func() error {
		if dev.IsCuda() {
			return ts.CudaSynchronize(dev.Value)
		}
		return nil
	}
	best := 0.0
	for i := 0; i < reps+2; i++ {
		start := time.Now()
		c, err := a.Mm(b, false)
		if err != nil {
			return p, fmt.Errorf("peak: %w", err)
		}
		if err := sync(); err != nil {
			c.Drop()
			return p, fmt.Errorf("peak: %w", err)
		}
		d := time.Since(start).Seconds()
		c.Drop()
		if i < 2 || d <= 0 {
			continue
		}
		if g := 2 * float64(n) * float64(n) * float64(n) / d / 1e9; g > best {
			best = g
		}
	}
	p.GFLOPS = best
	return p, nil
}

func dtypeByName(s string) gotch.DType {
	for _, d := range []gotch.DType{gotch.Float, gotch.BFloat16, gotch.Half, gotch.Double} {
		if dtypeName(d) == s {
			return d
		}
	}
	return gotch.Float
}

func dtypeName(d gotch.DType) string {
	switch d {
	case gotch.Float:
		return "float32"
	case gotch.BFloat16:
		return "bfloat16"
	case gotch.Half:
		return "float16"
	case gotch.Double:
		return "float64"
	}
	return d.String()
}

// gpuSpecs are vendor dense (no sparsity) tensor-core peaks in TFLOP/s for
// bfloat16 and float16 with float32 accumulation, by a substring of the
// name nvidia-smi reports; the first match wins (more specific first).
var gpuSpecs = []struct {
	name string
	bf16 float64
}{
	{"H200", 989.4},
	{"GH200", 989.4},
	{"H100 PCIe", 756.0},
	{"H100 NVL", 835.0},
	{"H100", 989.4}, // SXM5
	{"H800", 989.4},
	{"A100", 312.0},
	{"A800", 312.0},
	{"L40S", 362.1},
	{"L40", 181.0},
	{"L4", 121.0},
	{"A10G", 70.0},
	{"A10", 125.0},
}

// GPUSpecTFLOPS is the dense bfloat16/float16 tensor-core peak of a GPU
// called name (nvidia-smi's name), 0 when it is not in the table.
func GPUSpecTFLOPS(name string) float64 {
	for _, s := range gpuSpecs {
		if strings.Contains(name, s.name) {
			return s.bf16
		}
	}
	return 0
}

// Roof is the throughput a phase is compared with, in GFLOP/s: the GPU's
// spec bf16/fp16 peak when known and the phase runs in reduced precision
// (model FLOPs utilisation, MFU), else the measured peak.
func (p *Peak) Roof(amp bool) (gflops float64, what string) {
	if p == nil {
		return 0, ""
	}
	if amp && p.SpecTFLOPS > 0 {
		return p.SpecTFLOPS * 1e3, fmt.Sprintf("%s spec dense bf16 peak %.0f TFLOP/s", p.DeviceName, p.SpecTFLOPS)
	}
	return p.GFLOPS, fmt.Sprintf("measured %s %d×%d matmul", p.DType, p.N, p.N)
}

// Utilization is achieved/roof (MFU when the roof is the spec peak), 0
// when either is unknown.
func Utilization(flopsPerStep int64, stepSeconds, roofGFLOPS float64) float64 {
	if flopsPerStep <= 0 || stepSeconds <= 0 || roofGFLOPS <= 0 {
		return 0
	}
	return float64(flopsPerStep) / stepSeconds / 1e9 / roofGFLOPS
}

// GFLOPS is the achieved rate of a phase: FLOPs per step over the median
// step time (0 when not counted).
func (p *PhaseResult) GFLOPS(torch bool) float64 {
	s := p.Fer
	if torch {
		s = p.Torch
	}
	if p.FLOPs <= 0 || s.Median <= 0 {
		return 0
	}
	return float64(p.FLOPs) / s.Median / 1e9
}
