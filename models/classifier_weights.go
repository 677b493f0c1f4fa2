package models

import (
	"fmt"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
)

// Published weights for the backbone classifiers (classifiers.go): a
// feature-extractor backbone whose reference weights exist in a public
// format gets a fer.WeightsLoader on its network (fer looks into a
// fer.Classifier's Net for one), so `fercli train ir50 --rafdb --init
// ir50.pth` starts from them. The files are backbones without an
// expression head: the loaders start training, they do not classify (no
// fer.StrictWeightsLoader).
var classifierBackbones = map[string]IR50Config{
	// QCS's IR-50 (3 stages): ir50.pth in the QCS/POSTER++ or face.evoLVe
	// layout, or a QCS/DCS checkpoint's ir_back.
	"ir50": IR50QCSConfig(),
	// face.evoLVe's IR_50 with its embedding layer: the whole
	// face-recognition network (backbone_ir50_ms1m_*.pth).
	"ir50_face": IR50FaceConfig(),
}

// withWeights gives the classifier network of backbone name its
// published-weights loader, when it has one.
func withWeights(name string, c *featureClassifier, vs *nn.VarStore) fer.ModuleT {
	cfg, ok := classifierBackbones[name]
	if !ok {
		return c
	}
	return &ir50Classifier{featureClassifier: c, vs: vs, cfg: cfg}
}

// ir50Classifier is an IR-50 feature classifier with a fer.WeightsLoader.
type ir50Classifier struct {
	*featureClassifier
	vs  *nn.VarStore
	cfg IR50Config
}

var _ fer.WeightsLoader = (*ir50Classifier)(nil)

// LoadWeights implements fer.WeightsLoader: IR-50 weights into the
// backbone (every backbone tensor must be in the file); the "head" keeps
// its initial values.
func (c *ir50Classifier) LoadWeights(file string, _ []string) (string, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return "", err
	}
	defer sd.Drop()
	isHead := func(name string) bool { return strings.HasPrefix(name, "head.") }
	rep, err := loadIR50(c.vs, "", c.cfg, sd, isHead)
	if err != nil {
		return "", fmt.Errorf("%s does not fit the IR-50 backbone: %w", file, err)
	}
	return fmt.Sprintf("IR-50 backbone (%s): %d tensors loaded%s; the class head keeps its initial values",
		ir50Layout(sd), len(rep.Loaded), ignoredSummary(rep.Ignored)), nil
}
