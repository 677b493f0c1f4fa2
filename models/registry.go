package models

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sugarme/gotch/nn"
)

// BackboneInfo describes one backbone of the registry.
type BackboneInfo struct {
	// Name is the registry key ("resnet18", "ir50", ...).
	Name string
	// Layout says whose parameter names (and checkpoints) it follows.
	Layout string
	// InputSize is the input the published weights expect, "3×224×224".
	InputSize string
	// FeatureDim is the pooled feature length.
	FeatureDim int64
	// DefaultClasses is the classifier size of the reference model (1000
	// for ImageNet models, 2622 for VGG-Face, 0 for IR-50).
	DefaultClasses int64
	// Params is the number of trainable parameters with DefaultClasses.
	Params int64
	// New builds the backbone under p with numClasses outputs (0: none,
	// ForwardT returns pooled features).
	New func(p *nn.Path, numClasses int64) (Backbone, error)
	// Count returns the trainable parameters for numClasses outputs
	// without allocating any tensor.
	Count func(numClasses int64) (int64, error)
}

type backboneSpec struct {
	name, layout, input string
	featureDim          int64
	classes             int64
	build               func(b *builder, numClasses int64) (Backbone, error)
}

var backboneSpecs = []backboneSpec{
	{"resnet18", "torchvision resnet18", "3×224×224", 512, 1000,
		func(b *builder, n int64) (Backbone, error) { return asBackbone(newResNet(b, ResNet18Config(n))) }},
	{"resnet50", "torchvision resnet50", "3×224×224", 2048, 1000,
		func(b *builder, n int64) (Backbone, error) { return asBackbone(newResNet(b, ResNet50Config(n))) }},
	{"vgg16", "torchvision vgg16", "3×224×224", 4096, 1000,
		func(b *builder, n int64) (Backbone, error) { return asBackbone(newVGG(b, VGG16Config(n))) }},
	{"vggface", "torchvision vgg16 names (VGGFaceDagRename maps conv1_1…fc8)", "3×224×224", 4096, 2622,
		func(b *builder, n int64) (Backbone, error) { return asBackbone(newVGG(b, VGG16Config(n))) }},
	{"ir50", "QCS/POSTER++ ir50 (face.evoLVe ir, 3 stages)", "3×112×112", 256, 0,
		func(b *builder, n int64) (Backbone, error) {
			if n != 0 {
				return nil, fmt.Errorf("ir50 is a feature extractor: numClasses must be 0, got %d", n)
			}
			return asBackbone(newIR50(b, IR50QCSConfig()))
		}},
	{"ir50_face", "face.evoLVe IR_50 + 512-d embedding (body1-4)", "3×112×112", 512, 0,
		func(b *builder, n int64) (Backbone, error) {
			if n != 0 {
				return nil, fmt.Errorf("ir50_face is a feature extractor: numClasses must be 0, got %d", n)
			}
			return asBackbone(newIR50(b, IR50FaceConfig()))
		}},
	{"effnet_b2", "timm tf_efficientnet_b2_ns", "3×260×260", 1408, 1000,
		func(b *builder, n int64) (Backbone, error) {
			return asBackbone(newEfficientNet(b, EfficientNetB2Config(n)))
		}},
}

// Backbones lists the registered backbones with their parameter counts
// (computed by running each constructor in count-only mode: no tensor is
// allocated).
func Backbones() ([]BackboneInfo, error) {
	out := make([]BackboneInfo, 0, len(backboneSpecs))
	for _, s := range backboneSpecs {
		info := s.info()
		n, err := info.Count(s.classes)
		if err != nil {
			return nil, err
		}
		info.Params = n
		out = append(out, info)
	}
	return out, nil
}

// LookupBackbone returns the registry entry called name.
func LookupBackbone(name string) (BackboneInfo, error) {
	var names []string
	for _, s := range backboneSpecs {
		if s.name == name {
			info := s.info()
			n, err := info.Count(s.classes)
			if err != nil {
				return BackboneInfo{}, err
			}
			info.Params = n
			return info, nil
		}
		names = append(names, s.name)
	}
	sort.Strings(names)
	return BackboneInfo{}, fmt.Errorf("unknown backbone %q; known: %s", name, strings.Join(names, ", "))
}

func (s backboneSpec) info() BackboneInfo {
	return BackboneInfo{
		Name: s.name, Layout: s.layout, InputSize: s.input,
		FeatureDim: s.featureDim, DefaultClasses: s.classes,
		New: func(p *nn.Path, numClasses int64) (Backbone, error) {
			if p == nil {
				return nil, fmt.Errorf("%s: nil path", s.name)
			}
			return s.build(newBuilder(p), numClasses)
		},
		Count: func(numClasses int64) (int64, error) {
			b := newBuilder(nil)
			if _, err := s.build(b, numClasses); err != nil {
				return 0, err
			}
			return b.state.params, nil
		},
	}
}

// asBackbone converts a constructor's result, keeping a failed build a
// nil interface (not an interface holding a nil pointer).
func asBackbone[T Backbone](m T, err error) (Backbone, error) {
	if err != nil {
		return nil, err
	}
	return m, nil
}
