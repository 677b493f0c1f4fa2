package bench

// Benchmarks (go test -bench . ./bench). They print speeds; nothing here
// asserts a timing. The data-pipeline ones split the per-image cost into
// JPEG decode, augmentation and the copy into a tensor, the parts
// `fercli bench --phases data` measures together.

import (
	"bytes"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/synth"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func fixtureJPEG(b *testing.B) ([]byte, image.Image) {
	b.Helper()
	s, err := synth.Generate(synth.Config{N: 1, Size: 224, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, s[0].Image(), &jpeg.Options{Quality: FixtureQuality}); err != nil {
		b.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), img
}

// BenchmarkDecodeJPEG224 is image/jpeg on one 224×224 face JPEG.
func BenchmarkDecodeJPEG224(b *testing.B) {
	raw, _ := fixtureJPEG(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrainTransform112 is fer's training augmentation of a decoded
// 224×224 image to 112×112 floats (random resized crop, flip, /255).
func BenchmarkTrainTransform112(b *testing.B) {
	_, img := fixtureJPEG(b)
	ds, err := data.NewImageDataset("bench", []data.ImageItem{{ID: "x", Pixels: img}}, []string{"a"}, data.Transform{Size: 112})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := ds.Load(0, rng, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadImage112 is one training sample from a JPEG file: open,
// decode, augment.
func BenchmarkLoadImage112(b *testing.B) {
	raw, _ := fixtureJPEG(b)
	p := filepath.Join(b.TempDir(), "x.jpg")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	ds, err := data.NewImageDataset("bench", []data.ImageItem{{ID: "x", Path: p}}, []string{"a"}, data.Transform{Size: 112})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := ds.Load(0, rng, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchTensors16x112 copies a 16×3×112×112 batch into libtorch.
func BenchmarkBatchTensors16x112(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bt := &data.Batch{Data: make([]float32, 16*3*112*112), Shape: []int{16, 3, 112, 112}, Labels: make([]int64, 16)}
	b.SetBytes(int64(4 * len(bt.Data)))
	for b.Loop() {
		x, y, err := bt.Tensors(gotch.CPU)
		if err != nil {
			b.Fatal(err)
		}
		x.MustDrop()
		y.MustDrop()
	}
}

func benchStep(b *testing.B, model string, batch, size, frames int, train bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := NewTarget(TargetConfig{Model: model, Batch: batch, Height: size, Width: size, Frames: frames, Device: gotch.CPU})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	step := t.Forward
	if train {
		step = t.TrainStep
	}
	if err := step(); err != nil { // warm-up
		b.Fatal(err)
	}
	for b.Loop() {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkSmallCNNTrainStep(b *testing.B) { benchStep(b, "smallcnn", 32, 48, 0, true) }
func BenchmarkResNet18Forward(b *testing.B)   { benchStep(b, "resnet18", 16, 112, 0, false) }
func BenchmarkResNet18TrainStep(b *testing.B) { benchStep(b, "resnet18", 16, 112, 0, true) }
func BenchmarkSTTTrainStep(b *testing.B)      { benchStep(b, "stt", 2, 112, 16, true) }

// BenchmarkTinyOp is the per-op cost of gotch on a one-element tensor
// (cgo call, error check, Go Tensor wrapper, drop): the overhead every
// layer call pays on top of libtorch. Compare PyTorch's torch.relu on a
// one-element tensor (bench/RESULTS.md). B/op shows gotch's 100 KB
// bigStruct that every Go Tensor carries.
func BenchmarkTinyOp(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x, err := ts.Ones([]int64{1}, gotch.Float, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer x.MustDrop()
	b.ReportAllocs()
	for b.Loop() {
		y, err := x.Relu(false)
		if err != nil {
			b.Fatal(err)
		}
		y.MustDrop()
	}
}

// BenchmarkEffNetB2ForwardBatch1 shows the Go-side allocation of a
// many-layer forward pass (B/op).
func BenchmarkEffNetB2ForwardBatch1(b *testing.B) {
	b.ReportAllocs()
	benchStep(b, "effnet_b2", 1, 64, 0, false)
}

// optimizerTarget is a model after one training step (gradients and
// momentum buffers exist), for timing the optimiser alone.
func optimizerTarget(b *testing.B, model string) *Target {
	t, err := NewTarget(TargetConfig{Model: model, Batch: 2, Height: 32, Width: 32, Device: gotch.CPU})
	if err != nil {
		b.Fatal(err)
	}
	if err := t.TrainStep(); err != nil {
		b.Fatal(err)
	}
	return t
}

// benchOptimizer times op on a model after one training step.
func benchOptimizer(b *testing.B, model string, op func(*Target) error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := optimizerTarget(b, model)
	defer t.Close()
	for b.Loop() {
		if err := op(t); err != nil {
			b.Fatal(err)
		}
	}
}

func sgdStep(t *Target) error  { return t.Opt.Step() }
func zeroGrad(t *Target) error { return t.Opt.ZeroGrad() }
func gradNorm(t *Target) error { _, err := t.Opt.GradNorm(); return err }

// BenchmarkSGDStepResNet50 is fer/optim's SGD update (momentum 0.9,
// weight decay 1e-4) of ResNet-50's 23.5 M parameters; compare
// torch.optim.SGD.step() (bench/RESULTS.md).
func BenchmarkSGDStepResNet50(b *testing.B) { benchOptimizer(b, "resnet50", sgdStep) }

// BenchmarkGradNormResNet50 is the global gradient norm fer.DefaultStep
// computes every step (a plain PyTorch loop does not).
func BenchmarkGradNormResNet50(b *testing.B) { benchOptimizer(b, "resnet50", gradNorm) }

// BenchmarkZeroGradResNet50 is fer/optim's in-place zero_grad.
func BenchmarkZeroGradResNet50(b *testing.B) { benchOptimizer(b, "resnet50", zeroGrad) }

// BenchmarkSGDStepVGG16 is the SGD update of VGG-16's 134 M parameters
// (fc6 alone is 103 M), where temporaries of parameter size show
// (bench/RESULTS.md: 1.11 s before fer/internal/torchx's addcmul_ form,
// 0.41 s after; PyTorch 0.20–0.37 s).
func BenchmarkSGDStepVGG16(b *testing.B) { benchOptimizer(b, "vgg16", sgdStep) }

// BenchmarkGradNormVGG16: see BenchmarkGradNormResNet50.
func BenchmarkGradNormVGG16(b *testing.B) { benchOptimizer(b, "vgg16", gradNorm) }
