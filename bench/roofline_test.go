package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
)

// ResNet-18 at 224² with 1000 classes is the textbook 1.814 GMACs
// (torchvision's "1.81 GFLOPS"; 1,814,073,344 multiply-accumulates of its
// convolutions and fc layer, counted with forward hooks on torchvision's
// model). The counter sees the same ops as libtorch dispatches them. A
// training step is forward + input gradients + weight gradients = 3×,
// less the input gradient of the first convolution, which no one needs.
func TestFLOPsResNet18KnownFigure(t *testing.T) {
	lockThread(t)
	tg, err := NewTarget(TargetConfig{Model: "resnet18", Batch: 1, Height: 224, Width: 224, Classes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	fwd, err := fer.CountFLOPs(tg.Forward)
	if err != nil {
		t.Fatal(err)
	}
	const macs = 1814073344
	if fwd.FLOPs != 2*macs {
		t.Errorf("forward: %d FLOPs, want 2 × %d", fwd.FLOPs, macs)
	}
	if fwd.GEMMs != 21 { // 20 convolutions (3 of them 1×1 downsamples) + fc
		t.Errorf("forward: %d GEMM-like ops, want 21", fwd.GEMMs)
	}
	train, err := fer.CountFLOPs(tg.TrainStep)
	if err != nil {
		t.Fatal(err)
	}
	conv1 := int64(2 * 64 * 3 * 7 * 7 * 112 * 112) // stem: 7×7/2 to 112²
	if want := 3*fwd.FLOPs - conv1; train.FLOPs != want {
		t.Errorf("train step: %d FLOPs, want 3 × forward − conv1's input gradient = %d (%.3f× forward)", train.FLOPs, want, float64(train.FLOPs)/float64(fwd.FLOPs))
	}
	t.Logf("ResNet-18 224²: forward %.3f GFLOP (%d ops dispatched), train %.3f GFLOP (%d ops)", float64(fwd.FLOPs)/1e9, fwd.Ops, float64(train.FLOPs)/1e9, train.Ops)
}

func TestMeasurePeak(t *testing.T) {
	lockThread(t)
	p, err := MeasurePeak(gotch.CPU, gotch.Float, 256, 3)
	if err != nil {
		t.Fatal(err)
	}
	// 2·256³ = 33.6 MFLOP: any working CPU does it at more than 0.1 and
	// less than 100 000 GFLOP/s
	if p.GFLOPS < 0.1 || p.GFLOPS > 1e5 || p.N != 256 || p.DType != "float32" {
		t.Errorf("peak %+v", p)
	}
	if _, err := MeasurePeak(gotch.CPU, gotch.Float, 0, 3); err == nil {
		t.Error("n = 0 accepted")
	}
}

func TestMFUArithmetic(t *testing.T) {
	// 10 TFLOP per step in 25 ms = 400 TFLOP/s; H200's dense bf16 peak
	// is 989.4 TFLOP/s: MFU 40.4 %.
	spec := GPUSpecTFLOPS("NVIDIA H200")
	if spec != 989.4 {
		t.Fatalf("H200 spec %v", spec)
	}
	p := &Peak{GFLOPS: 700e3, N: 8192, DType: "bfloat16", SpecTFLOPS: spec, DeviceName: "NVIDIA H200"}
	roof, what := p.Roof(true)
	if roof != 989.4e3 || !strings.Contains(what, "spec dense bf16") {
		t.Errorf("amp roof %v %q", roof, what)
	}
	if u := Utilization(10e12, 0.025, roof); math.Abs(u-400.0/989.4) > 1e-12 {
		t.Errorf("MFU %v", u)
	}
	// without autocast (float32) or without a spec, the measured peak
	if roof, _ := p.Roof(false); roof != 700e3 {
		t.Errorf("fp32 roof %v", roof)
	}
	if roof, what := (&Peak{GFLOPS: 80, N: 2048, DType: "float32"}).Roof(true); roof != 80 || !strings.Contains(what, "measured float32 2048×2048") {
		t.Errorf("CPU roof %v %q", roof, what)
	}
	if u := Utilization(0, 1, 1); u != 0 {
		t.Errorf("uncounted phase utilisation %v", u)
	}
	for name, want := range map[string]float64{
		"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756, "NVIDIA A100-SXM4-80GB": 312,
		"NVIDIA L40S": 362.1, "NVIDIA L4": 121, "Tesla T4": 0,
	} {
		if got := GPUSpecTFLOPS(name); got != want {
			t.Errorf("GPUSpecTFLOPS(%q) = %v, want %v", name, got, want)
		}
	}
	var np *Peak
	if roof, _ := np.Roof(true); roof != 0 {
		t.Error("nil peak has a roof")
	}
}

// The summary with two PyTorch sides and FLOP counts: ratio columns per
// side and the roofline table.
func TestWriteSummaryExtraSidesAndRoofline(t *testing.T) {
	r := sampleResult()
	r.Torch = &TorchInfo{Label: "stock"}
	r.Extra = []TorchInfo{{Label: "omp"}}
	r.Peak = &Peak{GFLOPS: 64, N: 2048, DType: "float32"}
	fw := &r.Phases[0]
	fw.FLOPs, fw.GEMMs, fw.Ops = 3.2e9, 21, 100
	fw.Extra = []SideResult{{Label: "omp", Stats: Stats{N: 4, Median: 0.08, Min: 0.075}, Ratio: 1.25, RatioMin: 1.2}}
	var b bytes.Buffer
	if err := WriteSummary(&b, []*Result{r}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| forward fer | forward PyTorch stock | ratio | forward PyTorch omp | ratio |",
		"| resnet18 | 2 | 16 | 112×112 | false | 100.0 ms | 125.0 ms | 0.80 | 80.0 ms | 1.25 (1.20) | | | | | |",
		// 3.2 GFLOP in 100 ms = 32 GFLOP/s = 50 % of 64
		"| resnet18 | false | 64 | 3.200 | 32.0 | 50.0% | | | |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"roof: 64.0 GFLOP/s (measured float32 2048×2048 matmul)", "forward: 3.200 GFLOP/step (21 GEMM-like ops", "= 50.0% of roof", "100 dispatched ops/step, 1000.0 µs per op", "omp"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
