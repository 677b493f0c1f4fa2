package models

import (
	"fmt"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// qcsOptions are the config-file options (model.options) of "qcs" and
// "dcs". Preset selects the public model file's settings for a data set
// (QCSPreset); every other key overrides one field of it.
type qcsOptions struct {
	Preset        string  `yaml:"preset"`
	CSA           string  `yaml:"csa"`
	Dim           int     `yaml:"dim"`
	Heads         int     `yaml:"heads"`
	BaseDepth     int     `yaml:"base_depth"`
	CrossDepth    int     `yaml:"cross_depth"`
	MLPRatio      float64 `yaml:"mlp_ratio"`
	BaseDrop      float64 `yaml:"base_drop"`
	CrossDrop     float64 `yaml:"cross_drop"`
	AttnProjDrop  bool    `yaml:"attn_proj_drop"`
	CrossPreNorm  bool    `yaml:"cross_prenorm"`
	Fusion        string  `yaml:"fusion"`
	Resize        int     `yaml:"resize"`
	BackboneUnits []int   `yaml:"backbone_units"`
}

func init() {
	const opts = "options: preset rafdb|ferplus|affectnet7|affectnet8 (the public model file's settings), base_drop, cross_drop, attn_proj_drop, fusion none|unused|head, dim, heads, base_depth, cross_depth, mlp_ratio, resize"
	fer.RegisterModel(QCSVariant, "QCS quadruplet cross similarity (AAAI 2025): IR-50 stages 1-3 → 147 tokens → ViT; training adds cross-similarity attention over (anchor, positive, negative, negative2) batches and a cross ViT, mean of 8 CE; inference runs the base path; "+opts+", csa SD|S|D",
		qcsFactory(QCSVariant))
	fer.RegisterModel(DCSVariant, "DCS, QCS's two-branch variant (anchor, positive; similarity-only cross attention, mean of 4 CE); "+opts+", cross_prenorm",
		qcsFactory(DCSVariant))
}

// QCSConfigFromOptions builds the configuration of model "qcs" or "dcs"
// from its config-file options for a data set with numClasses classes.
func QCSConfigFromOptions(variant string, options map[string]any, numClasses int) (QCSConfig, error) {
	what := "model " + variant
	var o qcsOptions
	if err := fer.DecodeOptions(options, &o, what); err != nil {
		return QCSConfig{}, err
	}
	cfg := DefaultQCSConfig()
	cfg.Variant = variant
	if o.Preset != "" {
		var err error
		if cfg, err = QCSPreset(variant, o.Preset); err != nil {
			return QCSConfig{}, fmt.Errorf("%s options: %w", what, err)
		}
		if numClasses > 0 && cfg.NumClasses != numClasses {
			return QCSConfig{}, fmt.Errorf("%s options: preset %s builds %d classes, the data set has %d", what, o.Preset, cfg.NumClasses, numClasses)
		}
	}
	// the preset's values are the defaults the other keys override
	o = qcsOptions{Preset: o.Preset, CSA: cfg.CSA, Dim: cfg.Dim, Heads: cfg.Heads, BaseDepth: cfg.BaseDepth,
		CrossDepth: cfg.CrossDepth, MLPRatio: cfg.MLPRatio, BaseDrop: cfg.BaseDrop, CrossDrop: cfg.CrossDrop,
		AttnProjDrop: cfg.AttnProjDrop, CrossPreNorm: cfg.CrossPreNorm, Fusion: cfg.Fusion, Resize: cfg.ResizeTo}
	if err := fer.DecodeOptions(options, &o, what); err != nil {
		return QCSConfig{}, err
	}
	if strings.EqualFold(o.Fusion, "none") {
		o.Fusion = FusionNone
	}
	if numClasses > 0 {
		cfg.NumClasses = numClasses
	}
	cfg.CSA, cfg.Dim, cfg.Heads, cfg.BaseDepth, cfg.CrossDepth = o.CSA, o.Dim, o.Heads, o.BaseDepth, o.CrossDepth
	cfg.MLPRatio, cfg.BaseDrop, cfg.CrossDrop, cfg.AttnProjDrop = o.MLPRatio, o.BaseDrop, o.CrossDrop, o.AttnProjDrop
	cfg.CrossPreNorm, cfg.Fusion, cfg.ResizeTo, cfg.BackboneUnits = o.CrossPreNorm, strings.ToLower(o.Fusion), o.Resize, o.BackboneUnits
	if variant == DCSVariant && cfg.CSA != CSASimDist {
		return QCSConfig{}, fmt.Errorf("%s options: csa is QCS's; DCS always uses similarity-only attention", what)
	}
	norm, err := cfg.normalized()
	if err != nil {
		return QCSConfig{}, fmt.Errorf("%s options: %w", what, err)
	}
	return norm, nil
}

func qcsFactory(variant string) fer.ModelFactory {
	return func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
		if in := spec.InputShape; len(in) != 3 || in[0] != 3 {
			return nil, fmt.Errorf("%s takes RGB images [3,H,W], the data set gives %v", variant, in)
		}
		if spec.NumClasses < 1 {
			return nil, fmt.Errorf("the data set has no class labels")
		}
		cfg, err := QCSConfigFromOptions(variant, spec.Options, spec.NumClasses)
		if err != nil {
			return nil, err
		}
		return NewQCSModel(vs, cfg)
	}
}

// Output names of QCSModel's training pass: the base path's logits of
// anchor ("logits"), positive, negative, negative2, and the cross path's.
// DCS has the first two of each.
var (
	QCSBaseOutputs  = [4]string{fer.OutputLogits, "base_p", "base_n", "base_n2"}
	QCSCrossOutputs = [4]string{"cross_a", "cross_p", "cross_n", "cross_n2"}
)

// QCSModel is QCS or DCS as a fer.Model. Training batches are quadruplets
// (fer.TargetLabelNeg's contract: inputs anchor, positive, negative,
// negative2; DCS reads the first two); evaluation batches have one input
// and run the base path only. Its loss is QCSLoss; train it with
// optimizer.sam_rho 0.05 over Adam, weight decay 0, as the code does.
type QCSModel struct {
	Net *QCS
	VS  *nn.VarStore
}

// NewQCSModel builds QCS (or DCS) at the root of vs.
func NewQCSModel(vs *nn.VarStore, cfg QCSConfig) (*QCSModel, error) {
	net, err := NewQCS(vs.Root(), cfg)
	if err != nil {
		return nil, err
	}
	return &QCSModel{Net: net, VS: vs}, nil
}

// Forward implements fer.Model.
func (m *QCSModel) Forward(b *fer.Batch, train bool) (fer.Outputs, error) {
	nb := m.Net.cfg.Branches()
	if !train || len(b.Inputs) == 1 {
		if train {
			kind, targets := "quadruplet", "label and label_neg"
			if nb == 2 {
				kind, targets = "pair", "label"
			}
			return nil, fmt.Errorf("%s trains on %s batches (inputs %s; targets %s): use a data set with %s sampling",
				m.Net.cfg.Variant, kind, branchNames(nb), targets, kind)
		}
		x, err := b.Input(0)
		if err != nil {
			return nil, err
		}
		y, err := m.Net.Forward(x, false)
		if err != nil {
			return nil, err
		}
		return fer.Outputs{fer.OutputLogits: y}, nil
	}
	o, err := m.Net.ForwardTrain(b.Inputs, train)
	if err != nil {
		return nil, err
	}
	defer o.Drop()
	out := fer.Outputs{}
	for i := range o.Branches {
		out[QCSBaseOutputs[i]] = o.Branches[i].Logits
		o.Branches[i].Logits = nil
		out[QCSCrossOutputs[i]] = o.CrossLogits[i]
		o.CrossLogits[i] = nil
	}
	return out, nil
}

// VarStore implements fer.Model.
func (m *QCSModel) VarStore() *nn.VarStore { return m.VS }

// DefaultLoss implements fer.LossProvider.
func (m *QCSModel) DefaultLoss() (fer.Loss, error) { return QCSLoss{}, nil }

// LoadQCSWeights loads a public QCS/DCS checkpoint into the whole model
// (LoadQCSWeights). LoadWeights and LoadWeightsStrict (qcsinit.go) are
// the fer.WeightsLoader side.
func (m *QCSModel) LoadQCSWeights(file string) (*QCSWeightsReport, error) {
	return LoadQCSWeights(m.VS, file, m.Net.cfg)
}

// LoadBackboneInit loads ir50.pth (or a QCS checkpoint's backbone) into
// ir_back, built as the model's configuration says (LoadIR50Init).
func (m *QCSModel) LoadBackboneInit(file string) (*LoadReport, error) {
	rep, err := LoadIR50Init(m.VS, "ir_back", m.Net.cfg.backboneConfig(), file)
	if err != nil {
		return rep, fmt.Errorf("initialise the QCS backbone: %w", err)
	}
	return rep, nil
}

// Stages implements gradcam.StageForwarder: IR-50's three stages.
func (m *QCSModel) Stages() []string { return []string{"body1", "body2", "body3"} }

// ForwardWithStage implements gradcam.StageForwarder: the base path in
// evaluation mode, with the activations of IR-50's stage (body1..body3).
func (m *QCSModel) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	i := map[string]int{"body1": 0, "body2": 1, "body3": 2}
	s, ok := i[stage]
	if !ok {
		return nil, nil, fmt.Errorf("qcs: unknown stage %q (stages: body1, body2, body3)", stage)
	}
	br, err := m.Net.ForwardBase(x, false)
	if err != nil {
		return nil, nil, err
	}
	logits, act = br.Logits, br.Stages[s]
	br.Logits, br.Stages[s] = nil, nil
	br.Drop()
	return logits, act, nil
}

// QCSLoss is the code's training loss: the mean of the cross-entropies of
// the base and cross logits of every branch, anchor and positive against
// "label" (y), the negatives against "label_neg" (y') — 8 terms for QCS,
// 4 for DCS — added in the code's order (base a, p, n, n2, cross a, p, n,
// n2). Plain nn.CrossEntropyLoss: no smoothing, no class weights. On an
// evaluation pass (base logits only) it is the plain cross-entropy of the
// logits, as the code's validate(). Parts: "base" and "cross", the means
// of their terms.
type QCSLoss struct{}

// Loss implements fer.Loss.
func (QCSLoss) Loss(out fer.Outputs, b *fer.Batch) (fer.LossValue, error) {
	if _, ok := out[QCSCrossOutputs[0]]; !ok {
		return fer.CrossEntropy{}.Loss(out, b)
	}
	var terms [2][]*ts.Tensor // base, cross
	lv := fer.LossValue{}
	fail := func(err error) (fer.LossValue, error) {
		for _, g := range terms {
			for _, t := range g {
				t.Drop()
			}
		}
		lv.Drop()
		return fer.LossValue{}, err
	}
	for g, names := range [2][4]string{QCSBaseOutputs, QCSCrossOutputs} {
		for i, name := range names {
			if _, ok := out[name]; !ok {
				continue
			}
			target := fer.TargetLabel
			if i >= 2 {
				target = fer.TargetLabelNeg
			}
			v, err := fer.CrossEntropy{Output: name, Target: target}.Loss(out, b)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", name, err))
			}
			terms[g] = append(terms[g], v.Total)
		}
	}
	if len(terms[0]) != len(terms[1]) || (len(terms[0]) != 2 && len(terms[0]) != 4) {
		return fail(fmt.Errorf("qcs loss: %d base and %d cross outputs, want 4+4 (QCS) or 2+2 (DCS)", len(terms[0]), len(terms[1])))
	}
	// ((t1 + t2) + t3) + ..., as the code's sum
	sum := func(list []*ts.Tensor) (*ts.Tensor, error) {
		acc, err := list[0].ShallowClone()
		if err != nil {
			return nil, err
		}
		for _, t := range list[1:] {
			next, err := acc.Add(t, true)
			if err != nil {
				return nil, err
			}
			acc = next
		}
		return acc, nil
	}
	all, err := sum(append(append([]*ts.Tensor(nil), terms[0]...), terms[1]...))
	if err != nil {
		return fail(err)
	}
	n := float64(len(terms[0]) + len(terms[1]))
	lv.Total, err = all.DivScalar(ts.FloatScalar(n), true)
	if err != nil {
		return fail(err)
	}
	lv.Parts = map[string]*ts.Tensor{}
	for g, key := range []string{"base", "cross"} {
		s, err := sum(terms[g])
		if err != nil {
			return fail(err)
		}
		if lv.Parts[key], err = s.DivScalar(ts.FloatScalar(float64(len(terms[g]))), true); err != nil {
			return fail(err)
		}
	}
	for _, g := range terms {
		for _, t := range g {
			t.Drop()
		}
	}
	return lv, nil
}
