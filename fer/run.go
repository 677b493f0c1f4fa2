package fer

import (
	"fmt"

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
}

// BuildRun opens cfg's data set and builds cfg's model on cfg's device,
// seeding libtorch with cfg.Seed first so the initial weights are a
// function of the seed. The model's LossProvider / EvaluatorProvider are
// used when it has them; otherwise cross-entropy and classification
// metrics.
func BuildRun(cfg *Config) (*Run, error) {
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	data, err := OpenDataset(cfg.Data, cfg.Seed)
	if err != nil {
		return nil, err
	}
	r := &Run{Cfg: cfg, Device: dev, Data: data}
	if r.Model, err = BuildModel(cfg, data, dev); err != nil {
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
	SeedTorch(cfg.Seed)
	vs := nn.NewVarStore(dev)
	return NewModel(vs, ModelSpec{Name: cfg.Model.Name, NumClasses: len(data.Classes),
		InputShape: data.InputShape, AUs: data.AUs, Options: cfg.Model.Options})
}

// Trainer returns a Trainer for the run's training and validation splits.
func (r *Run) Trainer() *Trainer {
	return &Trainer{Cfg: r.Cfg, Model: r.Model, Loss: r.Loss, Train: r.Data.Train, Val: r.Data.Val,
		NewEvaluator: r.NewEvaluator, Device: r.Device, Classes: r.Data.Classes, InputShape: r.Data.InputShape, AUs: r.Data.AUs}
}
