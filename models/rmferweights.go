package models

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sugarme/gotch/nn"
)

// Published weights through fer.WeightsLoader, read without Python
// (`fercli train rmfer --init FILE` when FILE is not a fer checkpoint,
// `fercli predict --model effnet_b2 --weights FILE`). A class-indexed
// head is always mapped by class name to the data set's classes, and the
// map is part of the report:
//
//   - rmfer: HSEmotion's enet_b2_7.pt / enet_b2_8.pt (the initialisation
//     the public code starts from: backbone, and the expression head into
//     both classifier_main and classifier_att; heads in HSEmotion's
//     alphabetical order, HSEmotionClasses); the RMFER repository's split
//     pair enet_b2_backbone_Nemo.pth + enet_b2_classifier_Nemo.pth (either
//     file names the pair); a model trained by the public code — its
//     Lightning checkpoint (last.ckpt), a state_dict of its module, or
//     save_model's four files (any one of enet_{backbone,projection,
//     classifier_main,classifier_att}_TAG.pth names the set) — whose heads
//     are in the code's label order (RMFERCodeClasses8).
//   - effnet_b2 (the classifier baseline): HSEmotion's enet_b2_*.pt.

// RMFERCodeClasses8 is the public RMFER code's label order, AffectNet's
// expression codes (LightningModule_RMFER.py, label2exp_dict: 0 Neutral,
// 1 Happiness, … 7 Contempt); a 7-class model has the first seven.
var RMFERCodeClasses8 = []string{"Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt"}

var (
	// the RMFER notebook's split of an HSEmotion model
	hseSplitName = regexp.MustCompile(`^enet_b2_(backbone|classifier)_(.+)\.pth$`)
	// save_model's files: f"{model_name}_{part}_{epoch:04}.pth"
	saveModelName = regexp.MustCompile(`^enet_(backbone|projection|classifier_main|classifier_att)_(.+)\.pth$`)
)

// LoadWeights implements fer.WeightsLoader for rmfer (see above).
func (m *RMFERModel) LoadWeights(path string, classes []string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("rmfer weights: %w", err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("rmfer weights %s is a folder: give a file (HSEmotion's enet_b2_8.pt, the RMFER repository's enet_b2_backbone_8emo.pth with its classifier file beside it, one of save_model's enet_backbone_TAG.pth, or a Lightning last.ckpt)", path)
	}
	base := filepath.Base(path)
	var (
		r         *LoadReport
		cm        *ClassMap
		what, ord string
	)
	const hseOrder = "HSEmotion's alphabetical head (hsemotion idx_to_class) mapped by name"
	const codeOrder = "the RMFER code's labels (AffectNet codes, label2exp_dict) mapped by name"
	switch {
	case hseSplitName.MatchString(base):
		sm := hseSplitName.FindStringSubmatch(base)
		other := map[string]string{"backbone": "classifier", "classifier": "backbone"}[sm[1]]
		pair := filepath.Join(filepath.Dir(path), "enet_b2_"+other+"_"+sm[2]+".pth")
		if _, err := os.Stat(pair); err != nil {
			return "", fmt.Errorf("rmfer weights: %s is one half of the RMFER repository's split HSEmotion model; the %s half: %w", path, other, err)
		}
		r, cm, err = LoadRMFERInit(m.VS, []string{path, pair}, classes, ClassOrderByName)
		what, ord = fmt.Sprintf("the RMFER repository's split HSEmotion EfficientNet-B2 (%s + %s): the backbone, and the head into classifier_main and classifier_att, as the code initialises", base, filepath.Base(pair)), hseOrder
	case saveModelName.MatchString(base):
		tag := saveModelName.FindStringSubmatch(base)[2]
		r, cm, err = loadRMFERCode(m.VS, filepath.Dir(path), tag, classes)
		what, ord = fmt.Sprintf("a model the public RMFER code saved (save_model, tag %s: backbone, projection, classifier_main, classifier_att)", tag), codeOrder
	default:
		code, cerr := isRMFERCodeFile(path)
		if cerr != nil {
			return "", cerr
		}
		if code {
			r, cm, err = loadRMFERCode(m.VS, path, "", classes)
			what, ord = "a model trained by the public RMFER code (Lightning checkpoint or state_dict)", codeOrder
		} else {
			r, cm, err = LoadRMFERInit(m.VS, []string{path}, classes, ClassOrderByName)
			what, ord = "HSEmotion EfficientNet-B2 (whole pickled timm model or its state_dict): the backbone, and the head into classifier_main and classifier_att, as the public code initialises", hseOrder
		}
	}
	if err != nil {
		return "", err
	}
	return weightsReport(path, what, ord, r, cm), nil
}

// isRMFERCodeFile reports whether a checkpoint holds a whole RMFER model
// of the public code (keys under backbone., with Lightning's model. or
// DataParallel's module. prefix) rather than an HSEmotion model.
func isRMFERCodeFile(path string) (bool, error) {
	sd, err := ReadStateDict(path)
	if err != nil {
		return false, err
	}
	defer sd.Drop()
	for _, k := range sd.Names {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "model."), "module.")
		if strings.HasPrefix(k, "backbone.") {
			return true, nil
		}
	}
	return false, nil
}

// loadRMFERCode loads a model trained by the public RMFER code (see
// readRMFERCheckpoint) with both heads' rows mapped by name from the
// code's label order to classes.
func loadRMFERCode(vs *nn.VarStore, path, tag string, classes []string) (*LoadReport, *ClassMap, error) {
	sd, err := readRMFERCheckpoint(path, tag)
	if err != nil {
		return nil, nil, err
	}
	defer sd.Drop()
	w := sd.Shape("classifier_main.weight")
	if len(w) != 2 || (w[0] != 7 && w[0] != 8) {
		return nil, nil, fmt.Errorf("rmfer weights %s: classifier_main.weight has shape %v: the public code's heads have 7 or 8 classes", path, w)
	}
	cm, err := MapClasses(RMFERCodeClasses8[:w[0]], classes)
	if err != nil {
		return nil, nil, fmt.Errorf("rmfer weights %s: %w", path, err)
	}
	for _, k := range []string{"classifier_main.weight", "classifier_main.bias", "classifier_att.weight", "classifier_att.bias"} {
		t, ok := sd.Tensors[k]
		if !ok {
			return nil, nil, fmt.Errorf("rmfer weights %s: no %s", path, k)
		}
		p, err := permuteRows(t, cm.Index)
		if err != nil {
			return nil, nil, fmt.Errorf("rmfer weights %s: %s: %w", path, k, err)
		}
		t.MustDrop()
		sd.Tensors[k] = p
	}
	r, err := LoadStateDict(vs, sd, LoadOptions{})
	return r, cm, err
}

// weightsReport is what LoadWeights returns: what was read, what was
// loaded, what kept its initialisation, and the class map.
func weightsReport(path, what, order string, r *LoadReport, cm *ClassMap) string {
	var b strings.Builder
	fmt.Fprintf(&b, "weights %s: %s; %d variables loaded", path, what, len(r.Loaded))
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; kept their initialisation: %s", listSome(r.Missing))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "; not used: %s", listSome(r.Unexpected))
	}
	fmt.Fprintf(&b, "\nclass map (%s): %s", order, cm)
	return b.String()
}

// loadHSEmotionClassifier is effnet_b2's published-weights reader
// (fer.Classifier.Weights): an HSEmotion enet_b2_*.pt into the timm-named
// classifier, its head mapped by name to classes.
func loadHSEmotionClassifier(vs *nn.VarStore, path string, classes []string) (string, error) {
	r, cm, err := LoadHSEmotionEffNet(vs, path, classes, ClassOrderByName, "")
	if err != nil {
		return "", err
	}
	return weightsReport(path, "HSEmotion EfficientNet-B2 (whole pickled timm model or its state_dict)",
		"HSEmotion's alphabetical head (hsemotion idx_to_class) mapped by name", r, cm), nil
}

// classifierWeights are the published-weights readers of the registered
// backbone classifiers, by model name (fer.Classifier.Weights).
var classifierWeights = map[string]func(vs *nn.VarStore, path string, classes []string) (string, error){
	"effnet_b2": loadHSEmotionClassifier,
}
