package gradcam

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/models"
	"github.com/sugarme/gotch/ts"
)

// FromForwarder makes a Net of a StageForwarder: the input is made a leaf
// that requires grad (so the activations do even when the weights are
// frozen), and d score / d activations comes from torch::autograd::grad
// (gotch's RunBackward), which leaves the parameters' .grad untouched.
func FromForwarder(f StageForwarder) Net { return forwarderNet{f} }

type forwarderNet struct{ f StageForwarder }

func (n forwarderNet) Stages() []string { return n.f.Stages() }

func (n forwarderNet) StageGradients(x *ts.Tensor, stage string, targets []int) (*Pass, error) {
	sc := &scope{}
	defer sc.free()
	in, err := sc.t(x.Detach(false))
	if err != nil {
		return nil, err
	}
	if in, err = sc.t(in.SetRequiresGrad(true, false)); err != nil {
		return nil, err
	}
	logits, act, err := n.f.ForwardWithStage(in, stage)
	if err != nil {
		return nil, err
	}
	sc.add(logits)
	sc.add(act)
	rows, err := logitRows(logits)
	if err != nil {
		return nil, err
	}
	tg, err := resolveTargets(rows, targets)
	if err != nil {
		return nil, err
	}
	score, err := sc.t(targetScore(logits, tg))
	if err != nil {
		return nil, fmt.Errorf("class score: %w", err)
	}
	grads, err := ts.RunBackward([]*ts.Tensor{score}, []*ts.Tensor{act}, false, false)
	if err != nil {
		return nil, fmt.Errorf("gradient of the class score: %w", err)
	}
	g := sc.add(grads[0])
	shape, err := act.Size()
	if err != nil {
		return nil, err
	}
	B := int64(len(rows))
	if len(shape) != 4 || B == 0 || shape[0]%B != 0 {
		return nil, fmt.Errorf("stage %s activations have shape %v, want [N,K,h,w] or [N·T,K,h,w] for a batch of %d", stage, shape, B)
	}
	s5 := []int64{B, shape[0] / B, shape[1], shape[2], shape[3]}
	a5, err := act.Reshape(s5, false)
	if err != nil {
		return nil, err
	}
	g5, err := g.Reshape(s5, false)
	if err != nil {
		a5.Drop()
		return nil, err
	}
	return &Pass{Logits: rows, Targets: tg, Act: a5, Grad: g5}, nil
}

// SmallCNN returns a StageForwarder for the demo network, with stages
// stem, stage1, stage2 and stage3 (the last conv stage, the default).
func SmallCNN(m *models.SmallCNN) StageForwarder { return smallCNN{m} }

type smallCNN struct{ m *models.SmallCNN }

var smallCNNStages = []string{"stem", "stage1", "stage2", "stage3"}

func (s smallCNN) Stages() []string { return slices.Clone(smallCNNStages) }

// ForwardWithStage repeats SmallCNN.ForwardT in evaluation mode (dropout
// is then the identity) keeping the chosen stage's output; a test checks
// that the logits equal ForwardT's.
func (s smallCNN) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	k := slices.Index(smallCNNStages, stage)
	if k < 0 {
		return nil, nil, fmt.Errorf("smallcnn: unknown stage %q (have %s)", stage, strings.Join(smallCNNStages, ", "))
	}
	m := s.m
	h := x
	for i, unit := range []fer.ModuleT{m.Stem, m.Stage1, m.Stage2, m.Stage3} {
		next := unit.ForwardT(h, false)
		if h != x && h != act {
			h.Drop()
		}
		h = next
		if i == k {
			act = h
		}
	}
	pooled, err := h.AdaptiveAvgPool2d([]int64{1, 1}, false)
	if h != act {
		h.Drop()
	}
	if err == nil {
		pooled, err = pooled.Flatten(1, -1, true)
	}
	if err != nil {
		act.Drop()
		return nil, nil, fmt.Errorf("smallcnn: pooling: %w", err)
	}
	logits = m.FC.Forward(pooled)
	pooled.Drop()
	return logits, act, nil
}

// Backbone returns a StageForwarder for a backbone with a classifier:
// ResNet (stages layer1 … layer4, torchvision's names), VGG (pool1 …
// pool5, each conv block after its max-pool) or EfficientNet (blocks.0 …
// blocks.6, timm's names). The stages are those ForwardFeatures returns,
// and the logits are the classifier applied to its pooled features (in
// evaluation mode the dropout before it is the identity).
func Backbone(b models.Backbone) (StageForwarder, error) {
	var head *models.Linear
	var names []string
	switch m := b.(type) {
	case *models.ResNet:
		head = m.FC
		for i := range m.Layers {
			names = append(names, fmt.Sprintf("layer%d", i+1))
		}
	case *models.VGG:
		head = m.FC8
		for _, l := range m.Features {
			if l.Conv == nil {
				names = append(names, fmt.Sprintf("pool%d", len(names)+1))
			}
		}
	case *models.EfficientNet:
		head = m.Classifier
		for i := range m.Blocks {
			names = append(names, fmt.Sprintf("blocks.%d", i))
		}
	default:
		return nil, fmt.Errorf("grad-cam: backbone %T is not supported (ResNet, VGG and EfficientNet are)", b)
	}
	if head == nil {
		return nil, fmt.Errorf("grad-cam: the %T backbone has no classifier (built with 0 classes): there is no class score to explain", b)
	}
	return backbone{b: b, head: head, names: names}, nil
}

type backbone struct {
	b     models.Backbone
	head  *models.Linear
	names []string
}

func (n backbone) Stages() []string { return slices.Clone(n.names) }

func (n backbone) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	k := slices.Index(n.names, stage)
	if k < 0 {
		return nil, nil, fmt.Errorf("%T: unknown stage %q (have %s)", n.b, stage, strings.Join(n.names, ", "))
	}
	f := n.b.ForwardFeatures(x, false)
	if len(f.Stages) != len(n.names) {
		f.Drop()
		return nil, nil, fmt.Errorf("%T: ForwardFeatures returned %d stages, want %d", n.b, len(f.Stages), len(n.names))
	}
	act = f.Stages[k]
	for i, s := range f.Stages {
		if i != k {
			s.Drop()
		}
	}
	logits = n.head.ForwardT(f.Pooled, false)
	f.Pooled.Drop()
	return logits, act, nil
}

// STT returns a Net for the spatio-temporal transformer: Grad-CAM of its
// backbone's stage 3 ("layer3"), per frame. It uses STT's own recording
// (SetGradCAM, GradCAMFeatures), which needs an ordinary backward pass:
// the parameters' .grad accumulate the explained score's gradient (zero
// them before training the same model further).
func STT(m *models.STT) Net { return sttNet{m} }

type sttNet struct{ m *models.STT }

func (sttNet) Stages() []string { return []string{"layer3"} }

func (n sttNet) StageGradients(x *ts.Tensor, stage string, targets []int) (*Pass, error) {
	if stage != "layer3" {
		return nil, fmt.Errorf("stt: unknown stage %q (Grad-CAM reads the backbone's layer3)", stage)
	}
	n.m.SetGradCAM(true)
	defer n.m.SetGradCAM(false)
	sc := &scope{}
	defer sc.free()
	logits, err := sc.t(n.m.Forward(x, false))
	if err != nil {
		return nil, err
	}
	rows, err := logitRows(logits)
	if err != nil {
		return nil, err
	}
	tg, err := resolveTargets(rows, targets)
	if err != nil {
		return nil, err
	}
	score, err := sc.t(targetScore(logits, tg))
	if err != nil {
		return nil, fmt.Errorf("class score: %w", err)
	}
	if err := score.Backward(); err != nil {
		return nil, fmt.Errorf("backward: %w", err)
	}
	act, grad, err := n.m.GradCAMFeatures()
	if err != nil {
		return nil, err
	}
	return &Pass{Logits: rows, Targets: tg, Act: act, Grad: grad}, nil
}

// For returns the Grad-CAM Net of a fer model: the model itself when it
// implements Net or StageForwarder or is the registered STT model, else its
// network when the model is a fer.Classifier around a SmallCNN, a
// supported backbone, an STT, or any network implementing Net or
// StageForwarder.
func For(m fer.Model) (Net, error) {
	if n, err := forNet(m); err == nil || !isUnsupported(err) {
		return n, err
	}
	if c, ok := m.(*fer.Classifier); ok {
		n, err := forNet(c.Net)
		if err == nil || !isUnsupported(err) {
			return n, err
		}
		return nil, fmt.Errorf("grad-cam: network %T is not supported: implement gradcam.StageForwarder (ForwardWithStage) for it", c.Net)
	}
	return nil, fmt.Errorf("grad-cam: model %T is not supported: implement gradcam.StageForwarder (ForwardWithStage) for it", m)
}

type unsupported struct{}

func (unsupported) Error() string { return "unsupported" }

func isUnsupported(err error) bool { _, ok := err.(unsupported); return ok }

func forNet(v any) (Net, error) {
	switch n := v.(type) {
	case Net:
		return n, nil
	case StageForwarder:
		return FromForwarder(n), nil
	case *models.SmallCNN:
		return FromForwarder(SmallCNN(n)), nil
	case *models.STT:
		return STT(n), nil
	case *models.STTModel: // the registered "stt" model
		return STT(n.Net), nil
	case models.Backbone:
		f, err := Backbone(n)
		if err != nil {
			return nil, err
		}
		return FromForwarder(f), nil
	}
	return nil, unsupported{}
}
