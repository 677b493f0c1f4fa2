package models

import (
	"fmt"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/losses"
	"github.com/sugarme/gotch/nn"
)

// sttOptions are the config-file options (model.options) of "stt".
// Frames and ImageSize default to the data set's clip shape (0 = take
// it from the data); the rest default to DefaultSTTConfig.
type sttOptions struct {
	Frames    int     `yaml:"frames"`
	ImageSize int     `yaml:"image_size"`
	Dim       int     `yaml:"dim"`
	Depth     int     `yaml:"depth"`
	Heads     int     `yaml:"heads"`
	MLPRatio  float64 `yaml:"mlp_ratio"`
	Attention string  `yaml:"attention"`
	Dropout   float64 `yaml:"dropout"`
	DropPath  float64 `yaml:"drop_path"`
	Backbone  string  `yaml:"backbone"`
	// Loss is "compact" (compact softmax CE, losses.CompactCE, default) or
	// "ce" (plain cross-entropy, for comparison); Lambda weighs the
	// compact term.
	Loss   string  `yaml:"loss"`
	Lambda float64 `yaml:"lambda"`
}

func init() {
	fer.RegisterModel("stt", "STT spatio-temporal transformer for clips [T,3,H,W] (ResNet-18 stage 1-3 + joint/divided space-time attention), compact softmax CE; options: dim, depth, heads, mlp_ratio, attention joint|divided|full, dropout, drop_path, backbone, loss compact|ce, lambda",
		newSTTModel)
}

func newSTTModel(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
	d := DefaultSTTConfig()
	o := sttOptions{Dim: d.Dim, Depth: d.Depth, Heads: d.Heads, MLPRatio: d.MLPRatio, Attention: d.Attention,
		Dropout: d.Dropout, DropPath: d.DropPath, Backbone: d.Backbone, Loss: "compact", Lambda: losses.DefaultCompactLambda}
	if err := fer.DecodeOptions(spec.Options, &o, "model stt"); err != nil {
		return nil, err
	}
	in := spec.InputShape
	if len(in) != 4 || in[1] != 3 || in[2] != in[3] {
		return nil, fmt.Errorf("stt takes square RGB clips [T,3,S,S], the data set gives %v (use a clip data set: dfew, afew, or synth with frames > 0)", in)
	}
	if o.Frames == 0 {
		o.Frames = int(in[0])
	}
	if o.ImageSize == 0 {
		o.ImageSize = int(in[2])
	}
	if int64(o.Frames) != in[0] || int64(o.ImageSize) != in[2] {
		return nil, fmt.Errorf("model options frames = %d, image_size = %d, but the data set gives clips %v: set data.options frames/size to match (or leave the model's unset)", o.Frames, o.ImageSize, in)
	}
	if spec.NumClasses < 1 {
		return nil, fmt.Errorf("the data set has no class labels")
	}
	var loss fer.Loss
	switch strings.ToLower(o.Loss) {
	case "compact", "":
		c, err := losses.NewCompactCE(o.Lambda)
		if err != nil {
			return nil, err
		}
		loss = compactLoss{c}
	case "ce":
		loss = fer.CrossEntropy{}
	default:
		return nil, fmt.Errorf("loss = %q, want compact or ce", o.Loss)
	}
	cfg := STTConfig{NumClasses: spec.NumClasses, Frames: o.Frames, ImageSize: o.ImageSize, Dim: o.Dim, Depth: o.Depth,
		Heads: o.Heads, MLPRatio: o.MLPRatio, Dropout: o.Dropout, DropPath: o.DropPath, Attention: o.Attention, Backbone: o.Backbone}
	net, err := NewSTT(vs.Root(), cfg)
	if err != nil {
		return nil, err
	}
	return &STTModel{Net: net, VS: vs, Loss: loss}, nil
}

// STTModel is STT as a fer.Model: the clip batch's input 0 [B,T,3,H,W] →
// "logits", trained with Loss (compact softmax CE unless the options say
// loss: ce).
type STTModel struct {
	Net  *STT
	VS   *nn.VarStore
	Loss fer.Loss
}

// Forward implements fer.Model.
func (m *STTModel) Forward(b *fer.Batch, train bool) (fer.Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	y, err := m.Net.Forward(x, train)
	if err != nil {
		return nil, err
	}
	return fer.Outputs{fer.OutputLogits: y}, nil
}

// VarStore implements fer.Model.
func (m *STTModel) VarStore() *nn.VarStore { return m.VS }

// DefaultLoss implements fer.LossProvider.
func (m *STTModel) DefaultLoss() (fer.Loss, error) { return m.Loss, nil }

// compactLoss adapts losses.CompactCE to fer.Loss on the "logits" output
// and the "label" target; its parts "ce" and "compact" are logged.
type compactLoss struct{ c *losses.CompactCE }

// Loss implements fer.Loss.
func (l compactLoss) Loss(out fer.Outputs, b *fer.Batch) (fer.LossValue, error) {
	logits, err := out.Get(fer.OutputLogits)
	if err != nil {
		return fer.LossValue{}, err
	}
	labels, err := b.Target(fer.TargetLabel)
	if err != nil {
		return fer.LossValue{}, err
	}
	shape, err := logits.Size()
	if err != nil {
		return fer.LossValue{}, err
	}
	if len(shape) != 2 {
		return fer.LossValue{}, fmt.Errorf("compact softmax CE: logits have shape %v, want [batch, classes]", shape)
	}
	// a clear error naming the clip instead of libtorch's abort
	if err := fer.CheckLabels(labels, int(shape[1]), b.IDs); err != nil {
		return fer.LossValue{}, err
	}
	total, parts, err := l.c.Loss(logits, labels)
	if err != nil {
		return fer.LossValue{}, err
	}
	return fer.LossValue{Total: total, Parts: parts}, nil
}
