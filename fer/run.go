package fer

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
)

// Run is a config turned into the objects a training or evaluation needs:
// the device, the opened data set, the model (weights freshly initialised
// from the seed), its loss and its evaluator.
type Run struct {
	Cfg          *Config
	Device       gotch.Device
	Data         *Splits
	Model        Model
	Loss         Loss
	NewEvaluator func() Evaluator
	// Aux is the second data stream of cfg.Aux (nil without one).
	Aux *AuxStream
	// Cross is set when a checkpoint is evaluated on a data set whose
	// classes or AUs differ from the ones it was trained on (LoadRun):
	// the model's outputs and the data set's targets are matched by name.
	Cross *CrossDataset
}

// BuildRun opens cfg's data set and builds cfg's model on cfg's device,
// seeding libtorch with cfg.Seed first so the initial weights are a
// function of the seed. The model's LossProvider / EvaluatorProvider are
// used when it has them; otherwise cross-entropy and classification
// metrics.
//
// With cfg.Init set and no model options in cfg, the model options come
// from the init checkpoint's stored config (same model), so --init needs
// no copy of them; cfg is updated and the run stores them.
func BuildRun(cfg *Config) (*Run, error) {
	if err := initModelOptions(cfg); err != nil {
		return nil, err
	}
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	data, err := OpenDataset(cfg.Data, cfg.Seed)
	if err != nil {
		return nil, err
	}
	return buildRun(cfg, dev, data, data.Classes, data.AUs)
}

// buildRun builds the model for the given classes and AUs (those of the
// data set, or a checkpoint's) with its loss and evaluator.
func buildRun(cfg *Config, dev gotch.Device, data *Splits, classes, aus []string) (*Run, error) {
	r := &Run{Cfg: cfg, Device: dev, Data: data}
	var err error
	if r.Aux, err = NewAuxStream(cfg.Aux, cfg.Seed); err != nil {
		return nil, err
	}
	if r.Model, err = buildModel(cfg, data, dev, classes, aus); err != nil {
		return nil, err
	}
	if lp, ok := r.Model.(LossProvider); ok {
		if r.Loss, err = lp.DefaultLoss(); err != nil {
			return nil, fmt.Errorf("model %s: loss: %w", cfg.Model.Name, err)
		}
	} else {
		r.Loss = CrossEntropy{}
	}
	if ep, ok := r.Model.(EvaluatorProvider); ok {
		r.NewEvaluator = func() Evaluator { return ep.NewEvaluator(data.Classes) }
	} else if len(data.Classes) > 0 {
		n := len(data.Classes)
		r.NewEvaluator = func() Evaluator { return NewClassificationEvaluator(n) }
	}
	return r, nil
}

// BuildModel builds cfg's model for data on dev, after seeding libtorch
// with cfg.Seed.
func BuildModel(cfg *Config, data *Splits, dev gotch.Device) (Model, error) {
	return buildModel(cfg, data, dev, data.Classes, data.AUs)
}

func buildModel(cfg *Config, data *Splits, dev gotch.Device, classes, aus []string) (Model, error) {
	SeedTorch(cfg.Seed)
	vs := nn.NewVarStore(dev)
	return NewModel(vs, ModelSpec{Name: cfg.Model.Name, NumClasses: len(classes),
		InputShape: data.InputShape, AUs: aus, Options: cfg.Model.Options})
}

// Trainer returns a Trainer for the run's training and validation splits.
func (r *Run) Trainer() *Trainer {
	return &Trainer{Cfg: r.Cfg, Model: r.Model, Loss: r.Loss, Train: r.Data.Train, Val: r.Data.Val,
		NewEvaluator: r.NewEvaluator, Device: r.Device, Classes: r.Data.Classes, InputShape: r.Data.InputShape, Aux: r.Aux, AUs: r.Data.AUs}
}

// SplitDrops is one split's dropped samples.
type SplitDrops struct {
	Split string // "train", "val", "test" or "val/test" when shared
	Drops *data.Drops
}

// NamedSplit is one distinct split of a data set.
type NamedSplit struct {
	// Name is "train", "val", "test", or "val/test" when one split object
	// serves both.
	Name    string
	Dataset Dataset
}

// Distinct lists the splits that are set, each split object once, in the
// order train, val, test.
func (s *Splits) Distinct() []NamedSplit {
	var out []NamedSplit
	for _, sp := range []NamedSplit{{"train", s.Train}, {"val", s.Val}, {"test", s.Test}} {
		if sp.Dataset == nil {
			continue
		}
		dup := false
		for i := range out {
			if sameDataset(out[i].Dataset, sp.Dataset) {
				out[i].Name += "/" + sp.Name
				dup = true
			}
		}
		if !dup {
			out = append(out, sp)
		}
	}
	return out
}

// Drops lists, per split, the samples the data set's readers left out
// when it was opened (splits implementing data.DropReporter). Splits that
// dropped nothing are left out.
func (s *Splits) Drops() []SplitDrops {
	var out []SplitDrops
	for _, sp := range s.Distinct() {
		dr, ok := sp.Dataset.(data.DropReporter)
		if !ok || dr.Drops().Total() == 0 {
			continue
		}
		out = append(out, SplitDrops{Split: sp.Name, Drops: dr.Drops()})
	}
	return out
}

// DropReport is Drops as text, one line per split and reason:
//
//	train: 412 dropped: expression 8 (None) is not one of the 7 classes (a.jpg, b.jpg, c.jpg, ...)
//
// and "" when nothing was dropped.
func (s *Splits) DropReport() string {
	var b strings.Builder
	for _, sd := range s.Drops() {
		for _, l := range strings.Split(sd.Drops.String(), "\n") {
			fmt.Fprintf(&b, "%s: %s\n", sd.Split, l)
		}
	}
	return b.String()
}

// sameDataset reports whether a and b are the same split object (== on
// an interface holding an uncomparable type would panic).
func sameDataset(a, b Dataset) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}
