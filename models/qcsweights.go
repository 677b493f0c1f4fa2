package models

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch/nn"
)

// Checkpoints of the public QCS code (birdwcp/QCS) load into fer's QCS
// by name. The code saves {'epoch', 'state_dict', 'best_acc', 'optimizer',
// 'recorder_m', 'recorder'} with the DataParallel model's state_dict
// ("module." prefix); its README's checkpoints come from two generations
// of the model files, the older naming the embeddings embed_q/embed_k/
// embed_v and the newer embed_1/embed_2/embed_3 (a comment in
// QCS_*.py says both exist). The public classes also build modules their
// forward never calls; their keys are in every checkpoint and are ignored
// (and reported), not an error.

// QCSClassOrders are the label orders of the public code's list files —
// and so of its checkpoints' heads — per data set, read from the
// confusion-matrix labels of its main_*.py scripts. They equal fer's data
// sets' orders (data.RAFDBClasses, data.FERPlusClasses,
// data.AffectNetClasses): RAF-DB's own label order (list label − 1),
// FERPlus's vote-column order, AffectNet's expression codes. The list
// files themselves are a Google-Drive download whose order cannot be
// checked here (SPEC.md §2.6); a checkpoint trained on other lists needs
// its own order (ParseClassOrder).
var QCSClassOrders = map[string][]string{
	"rafdb":      {"surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"},
	"ferplus":    {"neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"},
	"affectnet7": {"neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"},
	"affectnet8": {"neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"},
}

// QCSClassNames returns the class order of the public checkpoints for
// dataset ("rafdb", "ferplus", "affectnet7", "affectnet8").
func QCSClassNames(dataset string) ([]string, error) {
	c, ok := QCSClassOrders[strings.ToLower(dataset)]
	if !ok {
		return nil, fmt.Errorf("no QCS class order for data set %q (known: %s)", dataset, strings.Join(QCSDatasets, ", "))
	}
	return slices.Clone(c), nil
}

// ParseClassOrder parses a user's class order, "name1,name2,..." with
// exactly numClasses distinct names, to override a checkpoint's default.
func ParseClassOrder(s string, numClasses int) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("class order %q: empty name", s)
		}
		if seen[f] {
			return nil, fmt.Errorf("class order %q: %q twice", s, f)
		}
		seen[f] = true
		names = append(names, f)
	}
	if len(names) != numClasses {
		return nil, fmt.Errorf("class order %q has %d names, the model has %d classes", s, len(names), numClasses)
	}
	return names, nil
}

// qcsOldNames are the older checkpoints' embedding names.
var qcsOldNames = [][2]string{{"embed_q.", "embed_1."}, {"embed_k.", "embed_2."}, {"embed_v.", "embed_3."}}

// qcsUnused matches (after "module." and renaming) the keys of modules the
// public classes build but never call: IR-50's output_layer, and in both
// ViTs patch_embed, eca_block, CON1, IRLinear1/2, each block's Conv1d
// "conv", and the unused dist_token / head_dist of the distilled variant.
var qcsUnused = regexp.MustCompile(`^(ir_back\.output_layer\.|VIT_(base|cross)\.(patch_embed\.|eca_block\.|CON1\.|IRLinear[12]\.|blocks\.\d+\.conv\.|head_dist\.|dist_token$))`)

// qcsCanonicalKey maps a public checkpoint key (DataParallel prefix
// stripped) to fer's name; unused is true for keys of never-called
// modules (fusion.* too when the model has no fusion head).
func qcsCanonicalKey(key string, fusionHead bool) (name string, unused bool) {
	for _, r := range qcsOldNames {
		if strings.HasPrefix(key, r[0]) {
			key = r[1] + strings.TrimPrefix(key, r[0])
			break
		}
	}
	if qcsUnused.MatchString(key) || (!fusionHead && strings.HasPrefix(key, "fusion.")) {
		return key, true
	}
	return key, false
}

// QCSWeightsReport says how a QCS checkpoint was loaded.
type QCSWeightsReport struct {
	*LoadReport
	// OldNames is true when the checkpoint names the embeddings
	// embed_q/embed_k/embed_v (the older generation of the public code).
	OldNames bool
	// Unused are the checkpoint keys of modules the public classes build
	// but never call (ignored), in file order.
	Unused []string
	// NumClasses is the head size the checkpoint holds (0 if it has no
	// VIT_base head).
	NumClasses int
}

// Summary is a one-line account for logs: what was loaded and which
// never-used modules were ignored, grouped by module.
func (r *QCSWeightsReport) Summary() string {
	gen := "embed_1/2/3 names"
	if r.OldNames {
		gen = "older embed_q/k/v names"
	}
	s := fmt.Sprintf("loaded %d tensors from %s (%s, %d classes)", len(r.Loaded), r.Source, gen, r.NumClasses)
	if len(r.Unused) == 0 {
		return s
	}
	parts := groupCounts(r.Unused, unusedModule)
	return s + fmt.Sprintf("; ignored %d tensors of modules the public model builds but never uses: %s", len(r.Unused), strings.Join(parts, ", "))
}

// unusedModule names the module of an unused key for the summary
// ("VIT_base.blocks.*.conv", "ir_back.output_layer").
func unusedModule(key string) string {
	key, _ = qcsCanonicalKey(strings.TrimPrefix(key, "module."), false)
	if m := qcsUnused.FindString(key); m != "" {
		key = m
	} else if strings.HasPrefix(key, "fusion.") {
		key = "fusion"
	}
	return strings.TrimSuffix(regexp.MustCompile(`blocks\.\d+\.`).ReplaceAllString(key, "blocks.*."), ".")
}

// LoadQCSWeights loads a checkpoint written by the public QCS/DCS code (or
// any state_dict with its names) into a QCS model built with cfg whose
// variables are the VarStore's root (NewQCSModel). See LoadQCSStateDict.
func LoadQCSWeights(vs *nn.VarStore, file string, cfg QCSConfig) (*QCSWeightsReport, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	return LoadQCSStateDict(vs, sd, cfg)
}

// LoadQCSStateDict copies a public-code state_dict into the model: bare or
// nested under "state_dict" (ReadStateDict), with or without the
// "module." prefix, with either embedding naming. Keys of never-called
// modules are ignored and listed in Unused. Everything else must match by
// name and shape — a missing, unexpected or mis-shaped key (another model,
// QCS vs DCS, another class count) is an error naming the keys, and
// nothing is loaded.
func LoadQCSStateDict(vs *nn.VarStore, sd *StateDict, cfg QCSConfig) (*QCSWeightsReport, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	rep := &QCSWeightsReport{}
	fusionHead := cfg.Fusion == FusionHead
	for _, k := range sd.Names {
		name, unused := qcsCanonicalKey(strings.TrimPrefix(k, "module."), fusionHead)
		if unused {
			rep.Unused = append(rep.Unused, k)
		}
		if name != strings.TrimPrefix(k, "module.") {
			rep.OldNames = true
		}
		if name == "VIT_base.head.linear.weight" {
			if s := sd.Shape(k); len(s) == 2 {
				rep.NumClasses = int(s[0])
			}
		}
	}
	lr, err := LoadStateDict(vs, sd, LoadOptions{
		StripPrefixes: []string{"module."},
		Rename: func(key string) string {
			name, unused := qcsCanonicalKey(key, fusionHead)
			if unused {
				return ""
			}
			return name
		},
	})
	rep.LoadReport = lr
	if err != nil {
		var me *MismatchError
		if errors.As(err, &me) {
			return rep, fmt.Errorf("%w%s", err, qcsMismatchHint(me.Report, rep, cfg))
		}
		return rep, err
	}
	return rep, nil
}

// qcsMismatchHint explains the common mismatches in a sentence.
func qcsMismatchHint(r *LoadReport, rep *QCSWeightsReport, cfg QCSConfig) string {
	var hints []string
	if rep.NumClasses != 0 && rep.NumClasses != cfg.NumClasses {
		hints = append(hints, fmt.Sprintf("the checkpoint has %d classes (VIT_base.head.linear.weight), the model %d: build it for a %d-class data set", rep.NumClasses, cfg.NumClasses, rep.NumClasses))
	}
	has := func(list []string, sub string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, sub) })
	}
	switch {
	case cfg.Variant == QCSVariant && has(r.Missing, ".theta") && !has(r.Missing, ".proj.weight"):
		hints = append(hints, "its cross attention has no theta: a DCS checkpoint (use model dcs)")
	case cfg.Variant == DCSVariant && has(r.Unexpected, ".theta"):
		hints = append(hints, "its cross attention has theta: a QCS checkpoint (use model qcs)")
	}
	if len(r.Loaded) == 0 && has(r.Unexpected, "input_layer.0.weight") && !has(r.Unexpected, "ir_back.") {
		hints = append(hints, "it holds only an IR-50 backbone (ir50.pth): load it with LoadQCSBackboneInit (fercli train --init)")
	}
	if cfg.Fusion == FusionHead && has(r.Missing, "fusion.classifier") {
		hints = append(hints, "the model has a fusion head the checkpoint lacks")
	}
	if len(hints) == 0 {
		return ""
	}
	return "; " + strings.Join(hints, "; ")
}

// QCSCheckpointInfo describes a public QCS/DCS checkpoint without loading
// it into a model, so a caller can build the right one.
type QCSCheckpointInfo struct {
	Variant    string // "qcs" (cross attention with theta) or "dcs"
	NumClasses int
	OldNames   bool // embed_q/k/v
	// FusionKeys is true when the file holds fusion.* (DCS_8cls_affectnet).
	FusionKeys bool
}

// InspectQCSCheckpoint reads a checkpoint's names and shapes and says
// which QCS model it fits.
func InspectQCSCheckpoint(file string) (*QCSCheckpointInfo, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	return InspectQCSStateDict(sd)
}

// InspectQCSStateDict is InspectQCSCheckpoint on a state_dict already
// read.
func InspectQCSStateDict(sd *StateDict) (*QCSCheckpointInfo, error) {
	info := &QCSCheckpointInfo{Variant: DCSVariant}
	found := false
	for _, k := range sd.Names {
		name, _ := qcsCanonicalKey(strings.TrimPrefix(k, "module."), true)
		info.OldNames = info.OldNames || name != strings.TrimPrefix(k, "module.")
		switch {
		case name == "VIT_base.head.linear.weight":
			found = true
			if s := sd.Shape(k); len(s) == 2 {
				info.NumClasses = int(s[0])
			}
		case strings.HasPrefix(name, "cross_attention_") && strings.HasSuffix(name, ".theta"):
			info.Variant = QCSVariant
		case strings.HasPrefix(name, "fusion."):
			info.FusionKeys = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is not a QCS/DCS checkpoint: it has no VIT_base.head.linear.weight (its first keys: %s)", sd.Source, listSome(sd.Names))
	}
	return info, nil
}

// LoadQCSBackboneInit initialises the model's IR-50 ("ir_back") from file,
// as the public code does before training: ir50.pth — in the QCS/POSTER++
// layout (body1..body3) or face.evoLVe's (body.0..body.23, stage 4 and
// output_layer ignored) — or the ir_back.* part of a QCS/DCS checkpoint
// (QCS_7cls_raf_db.py starts RAF-DB from QCS_affect-8.pth's backbone; the
// rest of that checkpoint is ignored). The model's variables are the
// VarStore's root. The public code's loader silently skips any name it
// cannot match; here every backbone tensor must be found.
func LoadQCSBackboneInit(vs *nn.VarStore, file string) (*LoadReport, error) {
	rep, err := LoadIR50Init(vs, "ir_back", IR50QCSConfig(), file)
	if err != nil {
		return rep, fmt.Errorf("initialise the QCS backbone: %w", err)
	}
	return rep, nil
}

// LoadIR50Init loads IR-50 weights into the IR50 built with cfg under the
// dotted prefix into of vs ("" for the root): ir50.pth in the QCS/POSTER++
// layout (body1..), face.evoLVe's (body.N, mapped by cfg.RenameKey, parts
// cfg does not build ignored), or the ir_back.* tensors of a QCS/DCS
// checkpoint (the rest ignored). Ignored keys are listed, sorted, in the
// report; a missing backbone tensor is an error.
func LoadIR50Init(vs *nn.VarStore, into string, cfg IR50Config, file string) (*LoadReport, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	return LoadIR50StateDict(vs, into, cfg, sd)
}

// LoadIR50StateDict is LoadIR50Init on a state_dict already read.
func LoadIR50StateDict(vs *nn.VarStore, into string, cfg IR50Config, sd *StateDict) (*LoadReport, error) {
	return loadIR50(vs, into, cfg, sd, nil)
}

// loadIR50 is LoadIR50StateDict leaving the variables exclude accepts
// (a classifier head next to the backbone) out of the load.
func loadIR50(vs *nn.VarStore, into string, cfg IR50Config, sd *StateDict, exclude func(string) bool) (*LoadReport, error) {
	qcs := slices.ContainsFunc(sd.Names, func(k string) bool {
		return strings.HasPrefix(strings.TrimPrefix(k, "module."), "ir_back.")
	})
	rename := func(key string) string {
		if qcs {
			rest, ok := strings.CutPrefix(key, "ir_back.")
			if !ok {
				return "" // the rest of a QCS checkpoint
			}
			key = rest
		}
		return cfg.RenameKey(key)
	}
	rep, err := LoadStateDict(vs, sd, LoadOptions{Into: into, StripPrefixes: []string{"module."}, Rename: rename, Exclude: exclude})
	if err != nil {
		return rep, err
	}
	sort.Strings(rep.Ignored)
	return rep, nil
}
