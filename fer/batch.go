package fer

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Standard target and output names. A model family may add its own; the
// built-in losses and evaluators read these.
const (
	// TargetLabel is the int64 [B] class index of each sample (-1 = no
	// label, skipped by the masked losses and metrics).
	TargetLabel = "label"
	// TargetVA is the float [B,2] valence and arousal.
	TargetVA = "va"
	// TargetAU is the float [B,NumAUs] action-unit occurrence (0/1, -1 =
	// unknown).
	TargetAU = "au"
	// TargetLabelNeg is the int64 [B] class y' of the two negatives of a
	// quadruplet batch (QCS): Inputs are then [anchor, positive, negative,
	// negative2], anchor and positive of class TargetLabel (y), the two
	// negatives of class TargetLabelNeg (y' != y). Evaluation batches of
	// the same data set have the single input [anchor].
	TargetLabelNeg = "label_neg"
	// OutputLogits is the float [B,C] class scores.
	OutputLogits = "logits"
)

// Batch is one mini-batch, already on the training device. The trainer
// frees it (Drop) after the step.
type Batch struct {
	// Inputs are the model inputs in the order the model expects them:
	// images [B,3,H,W], clips [B,T,3,H,W], or several (QCS's anchor,
	// positive, negative, negative2).
	Inputs []*ts.Tensor
	// Targets are named targets (TargetLabel, TargetVA, TargetAU, ...).
	Targets map[string]*ts.Tensor
	// Size is the number of samples B.
	Size int
	// IDs name the samples (file path, clip id) for messages; may be nil.
	IDs []string
	// Aux is the second (unlabelled) stream's batch drawn for this
	// training step (see AuxStream), nil when there is none; Drop frees it
	// with the batch.
	Aux *Batch
}

// Input returns input i or an error naming what is missing.
func (b *Batch) Input(i int) (*ts.Tensor, error) {
	if i < 0 || i >= len(b.Inputs) || b.Inputs[i] == nil {
		return nil, fmt.Errorf("batch has %d inputs, model needs input %d", len(b.Inputs), i)
	}
	return b.Inputs[i], nil
}

// Target returns the named target or an error listing the ones present.
func (b *Batch) Target(name string) (*ts.Tensor, error) {
	t, ok := b.Targets[name]
	if !ok || t == nil {
		return nil, fmt.Errorf("batch has no %q target (it has: %s)", name, strings.Join(sortedKeys(b.Targets), ", "))
	}
	return t, nil
}

// Drop frees every tensor of the batch.
func (b *Batch) Drop() {
	if b == nil {
		return
	}
	for _, t := range b.Inputs {
		if t != nil {
			t.Drop()
		}
	}
	for _, t := range b.Targets {
		if t != nil {
			t.Drop()
		}
	}
	b.Aux.Drop()
	b.Inputs, b.Targets, b.Aux = nil, nil, nil
}

// Outputs are a model's named outputs for one batch (OutputLogits, "va",
// "au", "features", ...).
type Outputs map[string]*ts.Tensor

// Get returns the named output or an error listing the ones present.
func (o Outputs) Get(name string) (*ts.Tensor, error) {
	t, ok := o[name]
	if !ok || t == nil {
		return nil, fmt.Errorf("model has no %q output (it has: %s)", name, strings.Join(sortedKeys(o), ", "))
	}
	return t, nil
}

// Drop frees every output tensor.
func (o Outputs) Drop() {
	for k, t := range o {
		if t != nil {
			t.Drop()
		}
		delete(o, k)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Model is a network together with the VarStore that holds its weights.
// Model families implement it directly or wrap a module with NewClassifier.
type Model interface {
	// Forward runs the network on a batch. train selects training
	// behaviour (dropout on, batch-norm batch statistics).
	Forward(b *Batch, train bool) (Outputs, error)
	// VarStore holds every parameter and buffer the model trains and
	// checkpoints. Keeping it reachable keeps the weights alive.
	VarStore() *nn.VarStore
}

// ModuleT is gotch's nn.ModuleT: a module with a train flag.
type ModuleT interface {
	ForwardT(x *ts.Tensor, train bool) *ts.Tensor
}

// Classifier adapts a single-input module returning class scores to Model:
// Forward returns {"logits": net.ForwardT(inputs[0], train)}.
type Classifier struct {
	Net ModuleT
	VS  *nn.VarStore
	// Weights, when set, reads published weights in the network's
	// reference format (HSEmotion's enet_b2_*.pt for effnet_b2): the
	// classifier's WeightsLoader.
	Weights func(path string, classes []string) (report string, err error)
}

// LoadWeights implements WeightsLoader through Weights; a network without
// a published-weights reader is an error that says so.
func (c *Classifier) LoadWeights(path string, classes []string) (string, error) {
	if c.Weights == nil {
		return "", fmt.Errorf("%s is not a fer checkpoint, and network %T reads no published-weights format", path, c.Net)
	}
	return c.Weights(path, classes)
}

// NewClassifier wraps net, whose weights live in vs.
func NewClassifier(net ModuleT, vs *nn.VarStore) *Classifier {
	return &Classifier{Net: net, VS: vs}
}

// Forward implements Model.
func (c *Classifier) Forward(b *Batch, train bool) (Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	return Outputs{OutputLogits: c.Net.ForwardT(x, train)}, nil
}

// VarStore implements Model.
func (c *Classifier) VarStore() *nn.VarStore { return c.VS }

// Dataset is one split of a data set. Batch assembles the samples at the
// given indices (decoding, sampling frames, augmenting when train) into a
// batch on dev. All randomness must come from rng, which the trainer
// derives from (seed, epoch, batch index): that is what makes runs
// repeatable and --resume exact.
type Dataset interface {
	Len() int
	Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error)
}

// EpochSampler is optionally implemented by a Dataset that chooses its own
// training order (class-balanced sampling with replacement, a fraction of
// the set per epoch, ...). The default is a random permutation of all
// samples. The result must depend only on rng (seeded from seed and
// epoch).
type EpochSampler interface {
	EpochIndices(epoch int, rng *rand.Rand) []int
}

// Labeled is optionally implemented by a Dataset whose samples carry a
// class label; Label(i) = -1 for an unlabeled sample.
type Labeled interface {
	Label(i int) int
}
