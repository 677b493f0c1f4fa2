package bench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/autocast"
	"github.com/fer-research/fer/fer/optim"
	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// ModelInfo is a model `fercli bench` can build in fer and in
// torch_bench.py, with CPU-friendly defaults.
type ModelInfo struct {
	Name string
	// Batch and Size (H = W) are the defaults on CPU; Frames > 0 makes
	// the input clips [B, Frames, 3, H, W].
	Batch, Size, Frames int
	// Optimizer is the update rule of the model's training recipe: "sgd"
	// (momentum 0.9, weight decay 1e-4, lr 0.01) or "adam" (lr 1e-4).
	Optimizer string
	// About says what is built and which recipe the optimizer follows.
	About string
}

// GPUBatchFactor scales the CPU default batch to the CUDA one: large
// enough to keep a GPU busy (ResNet-18 256, STT 32 clips).
const GPUBatchFactor = 16

// CUDABatch is the default batch on CUDA.
func (m ModelInfo) CUDABatch() int { return GPUBatchFactor * m.Batch }

// Models lists the benchmarkable models.
var Models = []ModelInfo{
	{"resnet18", 16, 112, 0, "sgd", "torchvision ResNet-18, 7-way fc; SGD momentum (DAN/Former-DFER-style recipe)"},
	{"resnet50", 8, 112, 0, "sgd", "torchvision ResNet-50, 7-way fc; SGD momentum (MT-ArcRes backbone)"},
	{"vgg16", 8, 112, 0, "sgd", "torchvision VGG-16 (adaptive 7×7 pool, fc6/fc7 4096, dropout), 7-way fc8; SGD momentum (MT-VGG)"},
	{"ir50", 8, 112, 0, "adam", "QCS IR-50 (3 stages, nearest resize to 112) + linear 256→7; Adam (QCS wraps it in SAM, which doubles the passes: one plain Adam step is timed)"},
	{"effnet_b2", 8, 112, 0, "adam", "timm tf_efficientnet_b2 layout (TF 'same' padding), 7-way classifier; Adam (RMFER wraps it in SAM: one plain Adam step is timed)"},
	{"stt", 2, 112, 16, "sgd", "STT: ResNet-18 to stage 3, 4 joint spatial+temporal blocks (D 512, 8 heads), drop-path 0.1; SGD momentum (Former-DFER recipe)"},
	{"smallcnn", 32, 48, 0, "sgd", "fer's demo SmallCNN (width 32, dropout 0.2); SGD momentum (fer default)"},
	{"mt-vgg-rnn", 2, 64, 8, "adam", "MT-VGG-RNN on a sequence batch: VGG-16 conv + fc6 4096 per frame → 2-layer GRU(128) → 17-unit head per frame; multi-task loss (1 − mean CCC + CE + BCE); Adam (configs/mt-vgg-rnn_affwild2.yaml)"},
	{"mt-arcres", 8, 112, 0, "adam", "MT-ArcRes: ResNet-50 → VA/AU head + ArcFace expression head (s 64, m 0.5); multi-task loss; Adam (configs/mt-arcres_affwild2.yaml)"},
	{"qcs", 2, 224, 0, "adam", "QCS (QCS_7cls_raf_db: IR-50 stages 1-3 → 147 tokens → ViT, cross attention + cross ViT in training); train: one SAM(ρ 0.05)-over-Adam step on a quadruplet batch (4 × batch images, two forward/backward passes, mean of 8 CE; configs/qcs_rafdb.yaml); forward: the base path alone (inference)"},
	{"rmfer", 8, 112, 0, "adam", fmt.Sprintf("RMFER phase-2 step: EfficientNet-B2 + IAL on the labelled batch (L_pre, λ1 = 1) and ACL on one RMset anchor with %d + %d candidates (selection passes without gradient, loss on the anchor and the kept 10 %%, λ2 = 1); SAM (ρ %g) over Adam: two forward/backward passes (configs/rmfer_*.yaml)", RMFERCandidates, RMFERCandidates, samRho["rmfer"])},
}

// RMFERCandidates is the RMFER row's RMset group: one anchor per step (the
// recipes' aux.batch_size) with this many positive and as many negative
// candidates (the recipes' 50 + 50 scaled down for CPU timing; ACL keeps
// ⌈10 %⌉ of each).
const RMFERCandidates = 10

// samRho is the SAM radius of the models whose recipe wraps the optimiser
// in SAM (configs/qcs_*.yaml, configs/rmfer_*.yaml) and whose timed step
// is the two-pass SAM step; torch_bench.py gets it in the request.
var samRho = map[string]float64{"qcs": 0.05, "rmfer": 0.05}

// LookupModel returns the entry called name.
func LookupModel(name string) (ModelInfo, error) {
	var names []string
	for _, m := range Models {
		if m.Name == strings.ToLower(name) {
			return m, nil
		}
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return ModelInfo{}, fmt.Errorf("bench: unknown model %q; known: %s", name, strings.Join(names, ", "))
}

// Hyper-parameters of the timed optimiser steps (the values do not change
// the cost of a step, but both frameworks use the same ones).
const (
	SGDLR          = 0.01
	SGDMomentum    = 0.9
	SGDWeightDecay = 1e-4
	AdamLR         = 1e-4
)

// TargetConfig says what to build.
type TargetConfig struct {
	Model         string
	Batch         int
	Height, Width int
	// Frames > 0: clip input [B, Frames, 3, H, W] (STT).
	Frames  int
	Classes int          // default 7
	Device  gotch.Device // zero value: CPU
	// Optimizer overrides the model's recipe ("sgd" or "adam").
	Optimizer string
	// AMP runs forward and loss under autocast (bfloat16 on CPU, float16
	// on CUDA); backward and the update stay outside the region.
	AMP bool
	// AMPDType is autocast's precision (gotch.Invalid: autocast's default
	// for the device).
	AMPDType gotch.DType
}

// Target is a model with its optimiser and one fixed random batch, ready
// to time. Use it on one locked OS thread; Close frees it.
type Target struct {
	Cfg    TargetConfig
	VS     *nn.VarStore
	Model  fer.Model
	Opt    *optim.Optimizer
	Loss   fer.Loss
	Batch  *fer.Batch
	Params int64
	// SAM is set for models trained with SAM (samRho): TrainStep is then
	// fer.SAMStep.
	SAM *optim.SAM
	// tuple > 1: training batches hold that many image groups (QCS
	// quadruplets); the forward phase times the first group alone.
	tuple int
}

// sttModel adapts STT to fer.Model with its error-returning Forward.
type sttModel struct {
	net *models.STT
	vs  *nn.VarStore
}

func (m *sttModel) Forward(b *fer.Batch, train bool) (fer.Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	y, err := m.net.Forward(x, train)
	if err != nil {
		return nil, err
	}
	return fer.Outputs{fer.OutputLogits: y}, nil
}

func (m *sttModel) VarStore() *nn.VarStore { return m.vs }

// withHead puts a linear classifier on a feature extractor (IR-50 has
// none: QCS reads its stage outputs).
type withHead struct {
	body models.Backbone
	head *nn.Linear
}

func (w *withHead) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	f := w.body.ForwardT(x, train)
	y := w.head.Forward(f)
	f.MustDrop()
	return y
}

// NewTarget builds the model on cfg.Device, its optimiser and a random
// batch (standard-normal inputs, uniform labels).
func NewTarget(cfg TargetConfig) (t *Target, err error) {
	info, err := LookupModel(cfg.Model)
	if err != nil {
		return nil, err
	}
	if cfg.Classes == 0 {
		cfg.Classes = 7
	}
	if cfg.Device.Name == "" { // the zero Device makes gotch log.Fatal
		cfg.Device = gotch.CPU
	}
	if cfg.Optimizer == "" {
		cfg.Optimizer = info.Optimizer
	}
	if cfg.Batch < 1 || cfg.Height < 1 || cfg.Width < 1 || cfg.Frames < 0 {
		return nil, fmt.Errorf("bench %s: batch %d, size %dx%d, frames %d: want positive sizes", cfg.Model, cfg.Batch, cfg.Height, cfg.Width, cfg.Frames)
	}
	if (info.Frames > 0) != (cfg.Frames > 0) {
		return nil, fmt.Errorf("bench %s: frames = %d, but %s takes %s", cfg.Model, cfg.Frames, cfg.Model, map[bool]string{true: "clips (frames > 0)", false: "images (frames = 0)"}[info.Frames > 0])
	}
	vs := nn.NewVarStore(cfg.Device)
	t = &Target{Cfg: cfg, VS: vs, Loss: fer.CrossEntropy{}}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	classes := int64(cfg.Classes)
	multiTask, rmset := false, false
	switch info.Name {
	case "rmfer":
		if cfg.AMP {
			return nil, fmt.Errorf("bench rmfer: --amp is not measured for the SAM step")
		}
		net, err := models.NewRMFER(vs.Root(), models.DefaultRMFERConfig(classes))
		if err != nil {
			return nil, err
		}
		t.Model = &models.RMFERModel{Net: net, VS: vs, Lambda1: 1, Lambda2: 1}
		t.Loss = models.RMFERLoss{Lambda1: 1, Lambda2: 1}
		rmset = true
	case "mt-vgg-rnn":
		c := models.DefaultMTVGGConfig(true)
		c.NumClasses = classes
		net, err := models.NewMTVGG(vs.Root(), c)
		if err != nil {
			return nil, err
		}
		t.Model = &models.MTModel{Name: info.Name, VGGNet: net, VS: vs, AUs: data.AffWild2AUs}
		t.Loss, multiTask = fer.MultiTaskLoss{WVA: 1, WExpr: 1, WAU: 1}, true
	case "mt-arcres":
		c := models.DefaultMTArcConfig("resnet50")
		c.NumClasses = classes
		net, err := models.NewMTArc(vs.Root(), c)
		if err != nil {
			return nil, err
		}
		t.Model = &models.MTModel{Name: info.Name, ArcNet: net, VS: vs, AUs: data.AffWild2AUs}
		t.Loss, multiTask = fer.MultiTaskLoss{WVA: 1, WExpr: 1, WAU: 1, ArcFace: net.ArcFace()}, true
	case "stt":
		if cfg.Height != cfg.Width {
			return nil, fmt.Errorf("bench stt: frames must be square, got %dx%d", cfg.Height, cfg.Width)
		}
		c := models.DefaultSTTConfig()
		c.NumClasses, c.Frames, c.ImageSize = cfg.Classes, cfg.Frames, cfg.Height
		net, err := models.NewSTT(vs.Root(), c)
		if err != nil {
			return nil, err
		}
		t.Model = &sttModel{net: net, vs: vs}
	case "qcs":
		c, err := models.QCSPreset(models.QCSVariant, "rafdb")
		if err != nil {
			return nil, err
		}
		c.NumClasses = cfg.Classes
		m, err := models.NewQCSModel(vs, c)
		if err != nil {
			return nil, err
		}
		t.Model, t.tuple = m, 4
		if t.Loss, err = m.DefaultLoss(); err != nil {
			return nil, err
		}
	case "smallcnn":
		net, err := models.NewSmallCNN(vs.Root(), models.DefaultSmallCNNConfig(classes))
		if err != nil {
			return nil, err
		}
		t.Model = fer.NewClassifier(net, vs)
	case "ir50":
		bi, err := models.LookupBackbone("ir50")
		if err != nil {
			return nil, err
		}
		body, err := bi.New(vs.Root().Sub("backbone"), 0)
		if err != nil {
			return nil, err
		}
		head := nn.NewLinear(vs.Root().Sub("head"), body.FeatureDim(), classes, nn.DefaultLinearConfig())
		t.Model = fer.NewClassifier(&withHead{body: body, head: head}, vs)
	default:
		bi, err := models.LookupBackbone(info.Name)
		if err != nil {
			return nil, err
		}
		net, err := bi.New(vs.Root(), classes)
		if err != nil {
			return nil, err
		}
		t.Model = fer.NewClassifier(net, vs)
	}
	for _, v := range vs.TrainableVariables() {
		t.Params += int64(v.Numel())
	}
	oc := optim.Config{Kind: optim.Kind(cfg.Optimizer)}
	switch oc.Kind {
	case optim.SGD:
		oc.LR, oc.Momentum, oc.WeightDecay = SGDLR, SGDMomentum, SGDWeightDecay
	case optim.Adam:
		oc.LR = AdamLR
	default:
		return nil, fmt.Errorf("bench %s: optimizer %q, want sgd or adam", cfg.Model, cfg.Optimizer)
	}
	if t.Opt, err = optim.New(vs, oc); err != nil {
		return nil, err
	}
	if rho := samRho[info.Name]; rho > 0 {
		t.SAM = &optim.SAM{Rho: rho}
	}
	shape := []int64{int64(cfg.Batch), 3, int64(cfg.Height), int64(cfg.Width)}
	if cfg.Frames > 0 {
		shape = []int64{int64(cfg.Batch), int64(cfg.Frames), 3, int64(cfg.Height), int64(cfg.Width)}
	}
	x, err := ts.Randn(shape, gotch.Float, cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("bench %s: input: %w", cfg.Model, err)
	}
	y, err := ts.Randint(classes, []int64{int64(cfg.Batch)}, gotch.Int64, cfg.Device)
	if err != nil {
		x.Drop()
		return nil, fmt.Errorf("bench %s: labels: %w", cfg.Model, err)
	}
	t.Batch = &fer.Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{fer.TargetLabel: y}, Size: cfg.Batch}
	if t.tuple > 1 {
		if err := t.tupleBatch(classes); err != nil {
			return nil, err
		}
	}
	if multiTask {
		if err := t.multiTaskTargets(); err != nil {
			return nil, err
		}
	}
	if rmset {
		if err := t.rmsetBatch(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// rmsetBatch gives the batch a random RMset group (fer.RMsetInput*
// layout): one anchor [1,3,H,W], RMFERCandidates positives and negatives
// [1,K,3,H,W], as torch_bench.py makes them.
func (t *Target) rmsetBatch() error {
	h, w := int64(t.Cfg.Height), int64(t.Cfg.Width)
	aux := &fer.Batch{Size: 1}
	for _, shape := range [][]int64{{1, 3, h, w}, {1, RMFERCandidates, 3, h, w}, {1, RMFERCandidates, 3, h, w}} {
		x, err := ts.Randn(shape, gotch.Float, t.Cfg.Device)
		if err != nil {
			aux.Drop()
			return fmt.Errorf("bench rmfer: RMset batch: %w", err)
		}
		aux.Inputs = append(aux.Inputs, x)
	}
	t.Batch.Aux = aux
	return nil
}

// multiTaskTargets replaces the batch's labels with per-frame multi-task
// targets (every frame labelled): labels, valence/arousal U(−1, 1), AUs
// 0/1, [B] or [B, Frames] as the input, as torch_bench.py makes them.
func (t *Target) multiTaskTargets() error {
	lead := []int64{int64(t.Cfg.Batch)}
	if t.Cfg.Frames > 0 {
		lead = append(lead, int64(t.Cfg.Frames))
	}
	dev := t.Cfg.Device
	y, err := ts.Randint(int64(t.Cfg.Classes), lead, gotch.Int64, dev)
	if err != nil {
		return err
	}
	t.Batch.Targets[fer.TargetLabel].Drop()
	t.Batch.Targets[fer.TargetLabel] = y
	va, err := ts.Rand(append(append([]int64{}, lead...), 2), gotch.Float, dev)
	if err == nil {
		va, err = va.MulScalar(ts.FloatScalar(2), true)
	}
	if err == nil {
		va, err = va.AddScalar(ts.FloatScalar(-1), true)
	}
	if err != nil {
		return err
	}
	t.Batch.Targets[fer.TargetVA] = va
	au, err := ts.Randint(2, append(append([]int64{}, lead...), int64(len(data.AffWild2AUs))), gotch.Float, dev)
	if err != nil {
		return err
	}
	t.Batch.Targets[fer.TargetAU] = au
	return nil
}

// tupleBatch adds the other image groups of a QCS quadruplet (positive,
// negative, negative2: standard-normal images) and the negatives' class
// y' = (y + U{1..classes−1}) mod classes, as torch_bench.py makes them.
func (t *Target) tupleBatch(classes int64) error {
	shape := []int64{int64(t.Cfg.Batch), 3, int64(t.Cfg.Height), int64(t.Cfg.Width)}
	for range t.tuple - 1 {
		x, err := ts.Randn(shape, gotch.Float, t.Cfg.Device)
		if err != nil {
			return fmt.Errorf("bench %s: input: %w", t.Cfg.Model, err)
		}
		t.Batch.Inputs = append(t.Batch.Inputs, x)
	}
	shift, err := ts.Randint(classes-1, []int64{int64(t.Cfg.Batch)}, gotch.Int64, t.Cfg.Device)
	if err != nil {
		return err
	}
	defer shift.Drop()
	y := t.Batch.Targets[fer.TargetLabel]
	sum, err := y.Add(shift, false)
	if err == nil {
		sum, err = sum.AddScalar(ts.IntScalar(1), true)
	}
	if err != nil {
		return err
	}
	defer sum.Drop()
	neg, err := sum.Remainder(ts.IntScalar(classes), false)
	if err != nil {
		return err
	}
	t.Batch.Targets[fer.TargetLabelNeg] = neg
	return nil
}

// ItemsPerStep is the number of samples one step processes.
func (t *Target) ItemsPerStep() int { return t.Cfg.Batch }

// Sync waits for the device (CUDA kernels are asynchronous); a no-op on
// CPU.
func (t *Target) Sync() error {
	if t.Cfg.Device.IsCuda() {
		return ts.CudaSynchronize(t.Cfg.Device.Value)
	}
	return nil
}

func (t *Target) region() (exit func(), err error) {
	if !t.Cfg.AMP {
		return func() {}, nil
	}
	dt := t.Cfg.AMPDType
	if dt == 0 {
		dt = gotch.Invalid
	}
	return autocast.Enter(t.Cfg.Device, dt)
}

// Forward is one evaluation-mode forward pass without autograd
// (torch.no_grad + model.eval()).
func (t *Target) Forward() error {
	restore := noGrad()
	defer restore()
	exit, err := t.region()
	if err != nil {
		return err
	}
	b := t.Batch
	if t.tuple > 1 { // inference runs on single images: the anchors
		b = &fer.Batch{Inputs: t.Batch.Inputs[:1], Targets: t.Batch.Targets, Size: t.Batch.Size}
	}
	out, err := t.Model.Forward(b, false)
	exit()
	if err != nil {
		return err
	}
	out.Drop()
	return nil
}

// TrainStep is one training step: fer.DefaultStep (zero-grad, forward,
// cross-entropy, backward, gradient-norm check, optimiser update), the
// step fer's trainer runs, or fer.SAMStep for a model trained with SAM
// (qcs, rmfer). With AMP the same sequence is spelled out so that only
// forward and loss run under autocast.
func (t *Target) TrainStep() error {
	sc := &fer.StepContext{Model: t.Model, Loss: t.Loss, Opt: t.Opt, SAM: t.SAM, Step: 1}
	if t.SAM != nil {
		if t.Cfg.AMP {
			return fmt.Errorf("bench %s: --amp with a SAM step is not timed", t.Cfg.Model)
		}
		if aux := t.Batch.Aux; aux != nil {
			// a new RMset group object each step, as training draws one:
			// RMFER selects P_imp/N_imp anew (its SAM second pass reuses
			// the step's selection)
			t.Batch.Aux = &fer.Batch{Inputs: aux.Inputs, Size: aux.Size}
		}
		res, err := fer.SAMStep(sc, t.Batch)
		if err != nil {
			return err
		}
		res.Outputs.Drop()
		return nil
	}
	if !t.Cfg.AMP {
		res, err := fer.DefaultStep(sc, t.Batch)
		if err != nil {
			return err
		}
		res.Outputs.Drop()
		return nil
	}
	if err := t.Opt.ZeroGrad(); err != nil {
		return err
	}
	exit, err := t.region()
	if err != nil {
		return err
	}
	out, lv, loss, parts, err := fer.ForwardLoss(sc, t.Batch)
	exit()
	if err != nil {
		return err
	}
	defer out.Drop()
	defer lv.Drop()
	if err := fer.CheckFinite(sc, loss, parts); err != nil {
		return err
	}
	if err := lv.Total.Backward(); err != nil {
		return fmt.Errorf("backward: %w", err)
	}
	if _, err := t.Opt.GradNorm(); err != nil {
		return err
	}
	return t.Opt.Step()
}

// noGrad turns autograd recording off on this thread and returns the
// function that restores the previous mode. Not ts.GradSetEnabled: gotch
// reads the wrapper's C int result through an 8-byte Go int, so the
// "previous state" it returns is garbage (mostly false) and restoring it
// leaves autograd off.
func noGrad() (restore func()) {
	prev := int(int32(lib.AtGradSetEnabled(0)))
	return func() { lib.AtGradSetEnabled(prev) }
}

// Close frees the optimiser state, the batch and the weights.
func (t *Target) Close() {
	if t == nil {
		return
	}
	if t.Opt != nil {
		t.Opt.Close()
	}
	t.Batch.Drop()
	if t.VS != nil {
		t.VS.Destroy()
	}
}
