package bench

import (
	"math"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
)

// gradEnabled reads this thread's grad mode (and leaves it on).
func gradEnabled() bool { return int32(lib.AtGradSetEnabled(1)) == 1 }

// The parameter counts PyTorch reports for the same networks with 7
// classes (torch_bench.py's build_model, torch 1.13 / torchvision 0.14).
var torchParams = map[string]int64{
	"resnet18": 11180103, "ir50": 17613767, "stt": 19765319,
	"mt-arcres": 23542858, "rmfer": 11688464, // MT-VGG-RNN's 119,203,281 is checked without allocating in models.TestMTParamCounts
	"qcs": 66810513, // QCSNet.used_params(): the public class's never-called modules are not built in fer
}

func TestTargetsMatchPyTorchParameterCounts(t *testing.T) {
	lockThread(t)
	// SmallCNN: W = 24 gives conv weights 3·24·9 + 24·48·9 + 48·48·9 +
	// 48·96·9 + 96·96·9 + 96·192·9 + 192·192·9, BN 2·(24+2·48+2·96+2·192),
	// fc 192·7+7.
	if w := models.DefaultSmallCNNConfig(7).Width; w == 24 {
		torchParams["smallcnn"] = 9*(3*24+24*48+48*48+48*96+96*96+96*192+192*192) + 2*(24+2*48+2*96+2*192) + 192*7 + 7
	}
	for name, want := range torchParams {
		info, err := LookupModel(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := TargetConfig{Model: name, Batch: 1, Height: 32, Width: 32, Device: gotch.CPU}
		if info.Frames > 0 {
			cfg.Frames = 2
		}
		if name == "stt" {
			// STT's position embedding depends on the token grid: at the
			// PyTorch count's 112 px it is 7×7.
			cfg.Height, cfg.Width, cfg.Frames = 112, 112, 16
		}
		tg, err := NewTarget(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tg.Params != want {
			t.Errorf("%s: %d parameters, PyTorch has %d", name, tg.Params, want)
		}
		tg.Close()
	}
}

func TestTargetStepsTrainAndKeepGradMode(t *testing.T) {
	lockThread(t)
	for _, amp := range []bool{false, true} {
		tg, err := NewTarget(TargetConfig{Model: "smallcnn", Batch: 8, Height: 16, Width: 16, Device: gotch.CPU, AMP: amp})
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Forward(); err != nil {
			t.Fatal(err)
		}
		// gotch's GradSetEnabled returns a garbled previous state; a
		// forward pass restoring it used to leave autograd off.
		if !gradEnabled() {
			t.Fatalf("amp=%v: autograd off after Forward", amp)
		}
		sc := &fer.StepContext{Model: tg.Model, Loss: tg.Loss, Opt: tg.Opt}
		first := evalLoss(t, sc, tg)
		for i := 0; i < 15; i++ {
			if err := tg.TrainStep(); err != nil {
				t.Fatalf("amp=%v step %d: %v", amp, i+1, err)
			}
		}
		last := evalLoss(t, sc, tg)
		// 15 SGD steps on one fixed batch of 8 must fit it better.
		if !(last < first) || math.IsNaN(last) {
			t.Errorf("amp=%v: training loss on the fixed batch %v → %v, want a decrease", amp, first, last)
		}
		tg.Close()
	}
}

// evalLoss is the cross-entropy of the fixed batch in training mode,
// without updating anything.
func evalLoss(t *testing.T, sc *fer.StepContext, tg *Target) float64 {
	t.Helper()
	out, lv, loss, _, err := fer.ForwardLoss(sc, tg.Batch)
	if err != nil {
		t.Fatal(err)
	}
	out.Drop()
	lv.Drop()
	return loss
}

// The multi-task targets train with the multi-task loss on per-frame
// targets.
func TestMultiTaskTargetTrains(t *testing.T) {
	lockThread(t)
	tg, err := NewTarget(TargetConfig{Model: "mt-arcres", Batch: 2, Height: 32, Width: 32, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for _, k := range []string{fer.TargetLabel, fer.TargetVA, fer.TargetAU} {
		if _, err := tg.Batch.Target(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.TrainStep(); err != nil {
		t.Fatal(err)
	}
	if err := tg.Forward(); err != nil {
		t.Fatal(err)
	}
}

// The QCS target times what its recipe runs: a SAM(ρ 0.05) step over
// Adam on a quadruplet batch (y' ≠ y) with QCS's loss, and inference on
// the anchors alone.
func TestQCSTargetSAMStep(t *testing.T) {
	lockThread(t)
	tg, err := NewTarget(TargetConfig{Model: "qcs", Batch: 1, Height: 32, Width: 32, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if len(tg.Batch.Inputs) != 4 || tg.SAM == nil || tg.SAM.Rho != 0.05 {
		t.Fatalf("%d inputs, SAM %+v", len(tg.Batch.Inputs), tg.SAM)
	}
	y, _ := tg.Batch.Target(fer.TargetLabel)
	yn, err := tg.Batch.Target(fer.TargetLabelNeg)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range yn.Int64Values() {
		if v == y.Int64Values()[i] || v < 0 || v > 6 {
			t.Fatalf("negative class %d for class %d", v, y.Int64Values()[i])
		}
	}
	theta := func() float64 { v := tg.VS.Variables()["cross_attention_1.theta"]; return v.Float64Values()[0] }
	before := theta()
	if err := tg.TrainStep(); err != nil {
		t.Fatal(err)
	}
	if after := theta(); after == before {
		t.Fatal("the SAM step did not update the cross attention's theta")
	}
	if err := tg.Forward(); err != nil {
		t.Fatal(err)
	}
}

// The RMFER target times RMFER's phase-2 step: SAM's two passes over the
// labelled batch and an RMset group, ACL included (its loss is part of
// the step's), with a new selection every step.
func TestRMFERTargetStep(t *testing.T) {
	lockThread(t)
	tg, err := NewTarget(TargetConfig{Model: "rmfer", Batch: 4, Height: 32, Width: 32, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.SAM == nil || tg.Batch.Aux == nil || len(tg.Batch.Aux.Inputs) != 3 {
		t.Fatalf("rmfer target: SAM %v, aux %+v", tg.SAM, tg.Batch.Aux)
	}
	if k := tg.Batch.Aux.Inputs[fer.RMsetInputPositives].MustSize(); k[1] != RMFERCandidates {
		t.Fatalf("positives %v", k)
	}
	before := tg.Batch.Aux
	sc := &fer.StepContext{Model: tg.Model, Loss: tg.Loss, Opt: tg.Opt}
	out, lv, _, parts, err := fer.ForwardLoss(sc, tg.Batch)
	if err != nil {
		t.Fatal(err)
	}
	out.Drop()
	lv.Drop()
	if _, ok := parts["acl"]; !ok {
		t.Fatalf("loss parts %v lack acl", parts)
	}
	for i := 0; i < 2; i++ {
		if err := tg.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	steps := tg.Opt.State().Steps["classifier_main.weight"]
	if tg.Batch.Aux == before || steps != 2 {
		t.Fatalf("aux batch object reused %v, classifier_main stepped %d times", tg.Batch.Aux == before, steps)
	}
	if err := tg.Forward(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTarget(TargetConfig{Model: "rmfer", Batch: 2, Height: 32, Width: 32, AMP: true}); err == nil {
		t.Error("rmfer with --amp accepted")
	}
}

func TestNewTargetRejectsBadInput(t *testing.T) {
	lockThread(t)
	for _, cfg := range []TargetConfig{
		{Model: "nope", Batch: 1, Height: 8, Width: 8},
		{Model: "smallcnn", Batch: 0, Height: 8, Width: 8},
		{Model: "smallcnn", Batch: 1, Height: 8, Width: 8, Frames: 4},
		{Model: "stt", Batch: 1, Height: 32, Width: 32},
		{Model: "smallcnn", Batch: 1, Height: 8, Width: 8, Optimizer: "lbfgs"},
	} {
		if tg, err := NewTarget(cfg); err == nil {
			tg.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}
