package models

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// mtOptions are the config-file options (model.options) of the five
// Aff-Wild2 multi-task models; mtAllowed says which keys each accepts.
// Zero values mean the defaults of DefaultMTVGGConfig/DefaultMTArcConfig
// (written in the comments below and in README).
type mtOptions struct {
	// Pretrained is a checkpoint (.pth/.pt/.safetensors) of the backbone:
	// vgg_face_dag.pth (VGG-Face, names conv1_1 … fc7 mapped; fc8
	// ignored) for the MT-VGG models, torchvision resnet50 / vgg16
	// weights (fc / classifier.6 ignored) for MT-ArcRes / MT-ArcVGG.
	Pretrained string `yaml:"pretrained"`
	// Loss weights w_va, w_expr, w_au (default 1 each; set 0 to drop a task).
	WVA   *float64 `yaml:"w_va"`
	WExpr *float64 `yaml:"w_expr"`
	WAU   *float64 `yaml:"w_au"`
	// VAActivation: tanh (default) or none.
	VAActivation string `yaml:"va_activation"`
	// Dropout after the last shared layer in training (MT-VGG models 0.5,
	// Arc models 0).
	Dropout *float64 `yaml:"dropout"`
	// VGG: Hidden fc width (4096), FCLayers 1 or 2 (MT-VGG and
	// MT-ArcVGG 2, the RNN models 1).
	Hidden   int64 `yaml:"hidden"`
	FCLayers int   `yaml:"fc_layers"`
	// GRU (RNN models): 128 units, 2 layers, dropout 0 between them.
	GRUHidden  int64   `yaml:"gru_hidden"`
	GRULayers  int     `yaml:"gru_layers"`
	GRUDropout float64 `yaml:"gru_dropout"`
	// Audio branch (A/V): block widths (32, 64, 128), embedding (128).
	AudioWidths []int64 `yaml:"audio_widths"`
	AudioDim    int64   `yaml:"audio_dim"`
	// ArcFace (Arc models): s (64), m (0.5), easy_margin (false),
	// embed_dim (0: ArcFace on the backbone features), depth of the
	// ResNet (MT-ArcRes: 50).
	S          float64  `yaml:"s"`
	M          *float64 `yaml:"m"`
	EasyMargin bool     `yaml:"easy_margin"`
	EmbedDim   int64    `yaml:"embed_dim"`
	Depth      int      `yaml:"depth"`
}

var (
	mtCommon = []string{"pretrained", "w_va", "w_expr", "w_au", "va_activation", "dropout"}
	mtVGG    = []string{"hidden", "fc_layers"}
	mtRNN    = []string{"gru_hidden", "gru_layers", "gru_dropout"}
	mtArc    = []string{"s", "m", "easy_margin", "embed_dim"}
	// mtAllowed lists each model's option keys.
	mtAllowed = map[string][]string{
		"mt-vgg":        concat(mtCommon, mtVGG),
		"mt-vgg-rnn":    concat(mtCommon, mtVGG, mtRNN),
		"av-mt-vgg-rnn": concat(mtCommon, mtVGG, mtRNN, []string{"audio_widths", "audio_dim"}),
		"mt-arcres":     concat(mtCommon, mtArc, []string{"depth"}),
		"mt-arcvgg":     concat(mtCommon, mtArc, mtVGG),
	}
)

func concat(xs ...[]string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x...)
	}
	return out
}

func init() {
	fer.RegisterModel("mt-vgg", "MT-VGG (Kollias & Zafeiriou 2019): VGG-Face conv stack + fc6/fc7 4096 → one 2+C+A multi-task head (VA tanh, expression, AU); CCC + CE + BCE; options: pretrained, hidden, fc_layers, dropout, w_va, w_expr, w_au", newMTModel("mt-vgg"))
	fer.RegisterModel("mt-vgg-rnn", "MT-VGG-RNN: VGG-Face conv + FC 4096 per frame → 2-layer GRU(128) → per-frame multi-task head; sequences [T,3,H,W] (data seq_len); options: + gru_hidden, gru_layers, gru_dropout", newMTModel("mt-vgg-rnn"))
	fer.RegisterModel("av-mt-vgg-rnn", "A/V-MT-VGG-RNN: MT-VGG-RNN with a log-mel audio CNN per frame, fused by concatenation before the GRU; needs data.options.audio: true; options: + audio_widths, audio_dim", newMTModel("av-mt-vgg-rnn"))
	fer.RegisterModel("mt-arcres", "MT-ArcRes: ResNet-50 → VA/AU head + ArcFace expression head (s 64, m 0.5); test prediction = highest cosine; options: pretrained, depth, s, m, easy_margin, embed_dim, dropout, w_*", newMTModel("mt-arcres"))
	fer.RegisterModel("mt-arcvgg", "MT-ArcVGG: VGG-16 (fc7 4096) → VA/AU head + ArcFace expression head (s 64, m 0.5); options: pretrained, hidden, fc_layers, s, m, easy_margin, embed_dim, dropout, w_*", newMTModel("mt-arcvgg"))
}

func newMTModel(name string) fer.ModelFactory {
	return func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
		allowed := map[string]bool{}
		for _, k := range mtAllowed[name] {
			allowed[k] = true
		}
		for k := range spec.Options {
			if !allowed[k] {
				keys := append([]string(nil), mtAllowed[name]...)
				sort.Strings(keys)
				return nil, fmt.Errorf("model %s options: unknown key %q; known keys here: %s", name, k, strings.Join(keys, ", "))
			}
		}
		var o mtOptions
		if err := fer.DecodeOptions(spec.Options, &o, "model "+name); err != nil {
			return nil, err
		}
		if spec.NumClasses < 2 {
			return nil, fmt.Errorf("the data set has %d expression classes, want >= 2", spec.NumClasses)
		}
		if in := spec.InputShape; len(in) < 3 || in[len(in)-3] != 3 {
			return nil, fmt.Errorf("%s takes RGB frames [3,H,W] or windows [T,3,H,W], the data set gives %v", name, in)
		}
		nAU := int64(len(spec.AUs))
		aus := spec.AUs
		if nAU == 0 {
			// a data set without AU labels (RAF-DB, ...): keep Aff-Wild2's
			// 8 AU outputs, so the architecture (and --init) stays the same
			nAU, aus = int64(len(data.AffWild2AUs)), data.AffWild2AUs
		}
		m := &MTModel{Name: name, VS: vs, AUs: aus,
			Loss: fer.MultiTaskLoss{WVA: deref(o.WVA, 1), WExpr: deref(o.WExpr, 1), WAU: deref(o.WAU, 1)}}
		var err error
		switch name {
		case "mt-vgg", "mt-vgg-rnn", "av-mt-vgg-rnn":
			c := DefaultMTVGGConfig(name != "mt-vgg")
			c.NumClasses, c.NumAUs = int64(spec.NumClasses), nAU
			c.Audio = name == "av-mt-vgg-rnn"
			setMTVGG(&c, o)
			if m.VGGNet, err = NewMTVGG(vs.Root(), c); err != nil {
				return nil, err
			}
			m.heads = []string{"head.weight", "head.bias"}
			err = loadPretrained(vs, o.Pretrained, "vgg", VGGFaceDagRename)
		default:
			backbone := "vgg16"
			if name == "mt-arcres" {
				backbone = fmt.Sprintf("resnet%d", max(o.Depth, 0))
				if o.Depth == 0 {
					backbone = "resnet50"
				}
			}
			c := DefaultMTArcConfig(backbone)
			c.NumClasses, c.NumAUs = int64(spec.NumClasses), nAU
			setMTArc(&c, o)
			if m.ArcNet, err = NewMTArc(vs.Root(), c); err != nil {
				return nil, err
			}
			m.Loss.ArcFace = m.ArcNet.ArcFace()
			m.heads = []string{"arc.weight"}
			drop := "fc."
			if backbone == "vgg16" {
				drop = "classifier.6."
			}
			err = loadPretrained(vs, o.Pretrained, "backbone", DropPrefix(drop))
		}
		if err != nil {
			return nil, fmt.Errorf("model %s: pretrained: %w", name, err)
		}
		return m, nil
	}
}

func deref(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// setShared applies the options every family has to the given fields.
func setShared(o mtOptions, hidden *int64, fcLayers *int, dropout *float64, vaAct *string) {
	if o.Hidden != 0 {
		*hidden = o.Hidden
	}
	if o.FCLayers != 0 {
		*fcLayers = o.FCLayers
	}
	*dropout = deref(o.Dropout, *dropout)
	if o.VAActivation != "" {
		*vaAct = o.VAActivation
	}
}

func setMTVGG(c *MTVGGConfig, o mtOptions) {
	setShared(o, &c.Hidden, &c.FCLayers, &c.Dropout, &c.VAActivation)
	if o.GRUHidden != 0 {
		c.GRUHidden = o.GRUHidden
	}
	if o.GRULayers != 0 {
		c.GRULayers = o.GRULayers
	}
	c.GRUDropout = o.GRUDropout
	if len(o.AudioWidths) > 0 {
		c.AudioWidths = o.AudioWidths
	}
	if o.AudioDim != 0 {
		c.AudioDim = o.AudioDim
	}
}

func setMTArc(c *MTArcConfig, o mtOptions) {
	setShared(o, &c.Hidden, &c.FCLayers, &c.Dropout, &c.VAActivation)
	if o.S != 0 {
		c.S = o.S
	}
	c.M = deref(o.M, c.M)
	c.EasyMargin = o.EasyMargin
	c.EmbedDim = o.EmbedDim
}

// loadPretrained loads a backbone checkpoint into the sub-tree into;
// rename maps the file's names (then names the model lacks are ignored,
// e.g. VGG-Face's fc8). Every backbone variable must be in the file.
func loadPretrained(vs *nn.VarStore, file, into string, rename func(string) string) error {
	if file == "" {
		return nil
	}
	sd, err := ReadStateDict(file)
	if err != nil {
		return err
	}
	defer sd.Drop()
	_, err = loadBackbone(vs, sd, into, rename)
	return err
}

// loadBackbone is loadPretrained on a state dict in memory.
func loadBackbone(vs *nn.VarStore, sd *StateDict, into string, rename func(string) string) (*LoadReport, error) {
	have := map[string]bool{}
	for n := range vs.Variables() {
		if rest, ok := strings.CutPrefix(n, into+"."); ok {
			have[rest] = true
		}
	}
	return LoadStateDict(vs, sd, LoadOptions{Into: into, Rename: func(k string) string {
		k = rename(k)
		if !have[k] {
			return "" // reported as ignored
		}
		return k
	}})
}

// MTModel is one of the five multi-task models as a fer.Model: input 0
// the frames, input 1 (A/V) the audio windows; outputs va, logits, au
// (and cos for the ArcFace models), per frame.
type MTModel struct {
	Name   string
	VGGNet *MTVGG // mt-vgg, mt-vgg-rnn, av-mt-vgg-rnn
	ArcNet *MTArc // mt-arcres, mt-arcvgg
	VS     *nn.VarStore
	Loss   fer.MultiTaskLoss
	AUs    []string
	heads  []string
}

// Forward implements fer.Model.
func (m *MTModel) Forward(b *fer.Batch, train bool) (fer.Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	var o *MTOutputs
	if m.VGGNet != nil {
		var audio *ts.Tensor
		if len(b.Inputs) > 1 {
			audio = b.Inputs[1]
		}
		o, err = m.VGGNet.Forward(x, audio, train)
	} else {
		o, err = m.ArcNet.Forward(x, train)
	}
	if err != nil {
		return nil, err
	}
	out := fer.Outputs{fer.OutputVA: o.VA, fer.OutputLogits: o.Logits, fer.OutputAU: o.AU}
	if o.Cos != nil {
		out[fer.OutputCosine] = o.Cos
	}
	return out, nil
}

// VarStore implements fer.Model.
func (m *MTModel) VarStore() *nn.VarStore { return m.VS }

// DefaultLoss implements fer.LossProvider: the multi-task loss.
func (m *MTModel) DefaultLoss() (fer.Loss, error) { return m.Loss, nil }

// NewEvaluator implements fer.EvaluatorProvider: CCC, expression and AU
// metrics.
func (m *MTModel) NewEvaluator(classes []string) fer.Evaluator {
	return fer.NewMultiTaskEvaluator(classes, m.AUs)
}

// ClassHeadParams implements fer.ClassHeads: the parameters indexed by
// the expression classes.
func (m *MTModel) ClassHeadParams() []string { return m.heads }
