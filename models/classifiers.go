package models

import (
	"fmt"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Every registered backbone is also a trainable classifier, the
// baselines FER papers compare against: `fercli train resnet18 --rafdb`.
// A backbone with its own classifier (torchvision ResNet/VGG, timm
// EfficientNet) is built with num_classes outputs in place of its
// ImageNet/VGG-Face head, keeping the reference parameter names (fc.*,
// classifier.6.*, classifier.*); a feature extractor (IR-50) gets a
// linear head "head" on its pooled features.
func init() {
	for _, s := range backboneSpecs {
		fer.RegisterModel(s.name, fmt.Sprintf("%s as a classifier (%s layout, pretrained input %s, %d-d features; a num_classes head replaces the reference classifier)",
			s.name, s.layout, s.input, s.featureDim), backboneClassifier(s))
	}
}

// fixedInput are the backbones that only take one input size (a
// flattening layer instead of global pooling).
var fixedInput = map[string]int64{"ir50_face": 112}

func backboneClassifier(s backboneSpec) fer.ModelFactory {
	return func(vs *nn.VarStore, spec fer.ModelSpec) (fer.Model, error) {
		var o struct{} // no options yet: any key is an error naming the known ones
		if err := fer.DecodeOptions(spec.Options, &o, "model "+s.name); err != nil {
			return nil, err
		}
		in := spec.InputShape
		if len(in) != 3 || in[0] != 3 {
			return nil, fmt.Errorf("%s takes RGB images [3,H,W], the data set gives %v (clips need a video model; a greyscale pipeline needs grayscale: 3)", s.name, in)
		}
		if side, ok := fixedInput[s.name]; ok && (in[1] != side || in[2] != side) {
			return nil, fmt.Errorf("%s takes %dx%d images (its output layer flattens a 7x7 map), the data set gives %dx%d: resize to [%d, %d] in the transforms", s.name, side, side, in[1], in[2], side, side)
		}
		if in[1] < 16 || in[2] < 16 {
			return nil, fmt.Errorf("%s needs images of at least 16x16, the data set gives %dx%d", s.name, in[1], in[2])
		}
		if spec.NumClasses < 1 {
			return nil, fmt.Errorf("the data set has no class labels")
		}
		b := newBuilder(vs.Root())
		if s.classes > 0 {
			net, err := s.build(b, int64(spec.NumClasses))
			if err != nil {
				return nil, err
			}
			c := fer.NewClassifier(net, vs)
			if w, ok := classifierWeights[s.name]; ok {
				c.Weights = func(path string, classes []string) (string, error) { return w(vs, path, classes) }
			}
			return c, nil
		}
		net, err := s.build(b, 0)
		if err != nil {
			return nil, err
		}
		head := newLinear(b.sub("head"), s.featureDim, int64(spec.NumClasses))
		if err := b.err(); err != nil {
			return nil, fmt.Errorf("%s head: %w", s.name, err)
		}
		return fer.NewClassifier(withWeights(s.name, &featureClassifier{Backbone: net, Head: head}, vs), vs), nil
	}
}

// featureClassifier is a feature-extractor backbone followed by a linear
// head on its pooled features.
type featureClassifier struct {
	Backbone Backbone
	Head     *Linear
}

// ForwardT implements fer.ModuleT: logits [N, classes].
func (c *featureClassifier) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	f := c.Backbone.ForwardT(x, train)
	defer f.MustDrop()
	return c.Head.ForwardT(f, train)
}
