package models

import "github.com/sugarme/gotch/ts"

// Backbone is what every network in this file family offers: a forward
// pass to logits (or, when built without a classifier, to its pooled
// feature vector) and a pass that also returns the intermediate stages.
type Backbone interface {
	// ForwardT maps images [N, 3, H, W] to logits [N, classes], or to the
	// pooled features [N, FeatureDim()] when the model has no classifier.
	// train selects training behaviour (batch statistics, dropout).
	ForwardT(x *ts.Tensor, train bool) *ts.Tensor
	// ForwardFeatures runs the network up to its pooled feature vector and
	// keeps the output of every stage on the way (STT reads ResNet-18's
	// stage 3, QCS IR-50's stages 1–3).
	ForwardFeatures(x *ts.Tensor, train bool) *Features
	// FeatureDim is the length of the pooled feature vector.
	FeatureDim() int64
	// NumClasses is the classifier's output size, 0 without classifier.
	NumClasses() int64
}

// Features are a backbone's intermediate outputs for one batch.
type Features struct {
	// Stages holds the output of each stage in order, stage 1 first
	// ([N, C_i, H_i, W_i]).
	Stages []*ts.Tensor
	// Pooled is the feature vector the classifier reads, [N, FeatureDim].
	Pooled *ts.Tensor
}

// Drop frees the tensors (their autograd graph stays alive as long as
// something else refers to it).
func (f *Features) Drop() {
	for _, s := range f.Stages {
		s.Drop()
	}
	if f.Pooled != nil {
		f.Pooled.Drop()
	}
	f.Stages, f.Pooled = nil, nil
}
