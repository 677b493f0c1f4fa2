package models

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fer-research/fer/fer"
)

// QCS and DCS as fer.WeightsLoader and fer.StrictWeightsLoader: the
// published files of the public code (birdwcp/QCS) start a fer run
// (`fercli train qcs --init FILE`) or classify pictures (`fercli predict
// --model qcs --weights FILE --data rafdb`), with no renaming by the user.
//
// --init (LoadWeights) does what every public model file does in its
// constructor, load_pretrained_weights(self.ir_back, torch.load(...)):
// it loads an IR-50 into ir_back and leaves the rest of the model at its
// initial values. The file is
//
//   - ir50.pth, the MS-Celeb-1M IR-50 of the QCS README (QCS/POSTER++
//     layout body1-3, or face.evoLVe's body.N; output_layer and stage 4
//     ignored): every model file but QCS_7cls_raf_db.py;
//   - or a published QCS/DCS checkpoint, of which only ir_back.* is used:
//     QCS_7cls_raf_db.py starts RAF-DB from QCS_affect-8.pth this way (the
//     ‡ protocol, 93.02 %), and QCS_8cls_ferplus.py keeps the same line
//     for DCS_affect-8.pth commented out.
//
// A whole published checkpoint classifies through LoadWeightsStrict
// (`fercli predict --weights`). Its class head carries no class names:
// the rows are read in the order the caller gives (the data set's
// classes, which are the orders of the public lists: QCSClassOrders), and
// the report says so.

var (
	_ fer.WeightsLoader       = (*QCSModel)(nil)
	_ fer.StrictWeightsLoader = (*QCSModel)(nil)
)

// LoadWeights implements fer.WeightsLoader (--init FILE): the IR-50 of
// ir50.pth or of a QCS/DCS checkpoint into ir_back; see above.
func (m *QCSModel) LoadWeights(file string, _ []string) (string, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return "", err
	}
	defer sd.Drop()
	cfg := m.Net.cfg
	info, qerr := InspectQCSStateDict(sd)
	rep, err := LoadIR50StateDict(m.VS, "ir_back", cfg.backboneConfig(), sd)
	if err != nil {
		if qerr != nil {
			return "", fmt.Errorf("%s is neither a QCS/DCS checkpoint nor an IR-50 (ir50.pth) that fits ir_back: %w", file, err)
		}
		return "", fmt.Errorf("%s (a %s checkpoint of %d classes): its IR-50 does not fit the model's: %w", file, strings.ToUpper(info.Variant), info.NumClasses, err)
	}
	what := ir50Layout(sd)
	if qerr == nil {
		what = fmt.Sprintf("the IR-50 of a %s checkpoint of %d classes; its other modules ignored, as load_pretrained_weights(self.ir_back, ...) does", strings.ToUpper(info.Variant), info.NumClasses)
	}
	return fmt.Sprintf("IR-50 backbone (%s): %d tensors loaded into ir_back%s; the rest of %s keeps its initial values, as in the public code (whole published checkpoints classify with fercli predict --weights)",
		what, len(rep.Loaded), ignoredSummary(qcsBackboneIgnored(rep.Ignored, qerr == nil)), strings.ToUpper(cfg.Variant)), nil
}

// qcsBackboneIgnored keeps, of a QCS checkpoint's ignored keys, those of
// its IR-50 (the never-used output_layer), not its other modules.
func qcsBackboneIgnored(keys []string, qcs bool) []string {
	if !qcs {
		return keys
	}
	var out []string
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(strings.TrimPrefix(k, "module."), "ir_back."); ok {
			out = append(out, rest)
		}
	}
	return out
}

// LoadWeightsStrict implements fer.StrictWeightsLoader (fercli predict
// --weights): the file must be a QCS/DCS checkpoint that sets the whole
// model (LoadQCSStateDict: another class count or variant is an error
// naming the keys).
func (m *QCSModel) LoadWeightsStrict(file string, classes []string) (string, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return "", err
	}
	defer sd.Drop()
	if _, err := InspectQCSStateDict(sd); err != nil {
		if looksLikeIR50(sd) {
			return "", fmt.Errorf("%s holds only an IR-50 backbone (ir50.pth): it initialises training (--init %s) but has no expression head to classify with", file, file)
		}
		return "", err
	}
	rep, err := LoadQCSStateDict(m.VS, sd, m.Net.cfg)
	if err != nil {
		var me *MismatchError
		if errors.As(err, &me) {
			return "", fmt.Errorf("%w (build the model the checkpoint was trained as: --model qcs|dcs, a data set of its class count, --set model.options.KEY=VALUE)", err)
		}
		return "", err
	}
	return rep.Summary() + "; " + headOrder(classes), nil
}

// headOrder states how the class head's rows were read.
func headOrder(classes []string) string {
	if len(classes) == 0 {
		return "class head rows in the checkpoint's order"
	}
	return "class head rows read as: " + strings.Join(classes, ", ")
}

// ir50Layout names the layout of an IR-50 state_dict.
func ir50Layout(sd *StateDict) string {
	for _, k := range sd.Names {
		k = strings.TrimPrefix(k, "module.")
		switch {
		case strings.HasPrefix(k, "ir_back."):
			return "the ir_back of a QCS checkpoint"
		case strings.HasPrefix(k, "body."):
			return "face.evoLVe layout body.N"
		case strings.HasPrefix(k, "body1."):
			return "QCS/POSTER++ layout body1-3"
		}
	}
	return "IR-50"
}

// looksLikeIR50 reports whether sd holds IR-50 backbone names.
func looksLikeIR50(sd *StateDict) bool {
	for _, k := range sd.Names {
		if strings.HasPrefix(strings.TrimPrefix(k, "module."), "input_layer.") {
			return true
		}
	}
	return false
}

// ignoredSummary groups ignored keys by their first two name parts:
// "; ignored output_layer (6), body3.14 (...)".
func ignoredSummary(keys []string) string {
	var kept []string
	for _, k := range keys {
		if !strings.HasSuffix(k, "num_batches_tracked") { // BatchNorm's counters: never loaded
			kept = append(kept, k)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	items := groupCounts(kept, func(k string) string {
		parts := strings.SplitN(strings.TrimPrefix(k, "module."), ".", 3)
		if parts[0] == "body" && len(parts) > 1 {
			return "body." + parts[1]
		}
		return parts[0]
	})
	return fmt.Sprintf("; %d ignored: %s", len(kept), listSome(items))
}

// groupCounts groups keys by group(key), in order of first appearance,
// as "group (count)" items.
func groupCounts(keys []string, group func(string) string) []string {
	count := map[string]int{}
	var groups []string
	for _, k := range keys {
		g := group(k)
		if count[g] == 0 {
			groups = append(groups, g)
		}
		count[g]++
	}
	items := make([]string, len(groups))
	for i, g := range groups {
		items[i] = fmt.Sprintf("%s (%d)", g, count[g])
	}
	return items
}
