package fer

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/sugarme/gotch"
)

// A second, unlabelled data stream drawn beside the labelled batch at
// every training step (RMFER's RMset for attention-based contrastive
// learning; any semi-supervised method's unlabelled set). The trainer
// loads the stream's batch for step (epoch e, batch i) and hands it to
// the model as Batch.Aux of the labelled batch; the model's Forward
// (training mode) and Loss use it, so the built-in steps (DefaultStep,
// SAMStep: both SAM passes see the same Aux) work unchanged. Evaluation
// batches never carry one.
//
// Phases: the stream is drawn only from epoch AuxStream.StartEpoch on
// (RMFER's K: L_pre alone for the first K epochs, L_pre + λ2·L_ACL
// after), inside one run.
//
// Determinism and resume: the indices and the augmentation rng of the
// stream's batch for (epoch e, batch i) are functions of (seed, e, i)
// only — its own order stream, independent of the labelled data's — so
// a run resumed from any checkpoint draws exactly what an uninterrupted
// run draws, with nothing to store in the checkpoint. Within an epoch
// the stream goes through its data in an order of its own (the data
// set's EpochSampler if it has one, else a permutation) and starts a new
// order when it has used every sample.

// The RMset batch layout (RMFER's ACL stream): an aux batch whose Inputs
// are
//
//	Inputs[RMsetInputAnchor]    anchors             float32 [A, 3, H, W]
//	Inputs[RMsetInputPositives] positive candidates float32 [A, P, 3, H, W]
//	Inputs[RMsetInputNegatives] negative candidates float32 [A, N, 3, H, W]
//
// for A anchors, each with P candidate positives (other people's faces in
// nearby frames) and N candidate negatives (the same person's faces in
// distant frames) as data.RMSampler draws them (P = N = 50 in the code's
// config); no targets; IDs are the anchors' files.
const (
	RMsetInputAnchor    = 0
	RMsetInputPositives = 1
	RMsetInputNegatives = 2
)

// AuxConfig is the config's "aux:" section: a registered data set opened
// as the second stream (its training split), how many of its samples a
// step draws, and from which epoch.
//
//	aux:
//	  data: {name: rmset, root: /data/rmset}
//	  batch_size: 1     # RMset: anchors per step
//	  start_epoch: 5    # K: epochs 1..5 train L_pre only
type AuxConfig struct {
	Data DataConfig `yaml:"data"`
	// BatchSize is the number of the stream's samples per step (0 = 1).
	BatchSize int `yaml:"batch_size"`
	// StartEpoch is the number of epochs trained before the stream is
	// drawn (0: from the first step). RMFER's K, the length of its
	// L_pre-only phase: UNCONFIRMED (the ACL stage was never released).
	StartEpoch int `yaml:"start_epoch"`
}

// Enabled reports whether the config asks for a second stream.
func (a AuxConfig) Enabled() bool { return a.Data.Name != "" }

func (a AuxConfig) validate() error {
	if !a.Enabled() {
		if a.BatchSize != 0 || a.StartEpoch != 0 {
			return errors.New("aux: batch_size / start_epoch set without aux.data.name")
		}
		return nil
	}
	if a.BatchSize < 0 || a.StartEpoch < 0 {
		return fmt.Errorf("aux: batch_size = %d, start_epoch = %d, want >= 0", a.BatchSize, a.StartEpoch)
	}
	return nil
}

// AuxStream is the second stream of a Trainer.
type AuxStream struct {
	// Data is the stream's data set; its Batch gets train = true and the
	// stream's own rng.
	Data Dataset
	// BatchSize is the number of samples per step (0 = 1).
	BatchSize int
	// StartEpoch is the first epoch (0-based) that draws the stream.
	StartEpoch int

	// the pass in use (it starts at position start of its epoch), kept
	// between steps
	epoch, pass, start int
	order              []int
}

// NewAuxStream opens the stream described by cfg (nil when cfg is not
// enabled).
func NewAuxStream(cfg AuxConfig, seed int64) (*AuxStream, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s, err := OpenDataset(cfg.Data, seed)
	if err != nil {
		return nil, fmt.Errorf("aux: %w", err)
	}
	return &AuxStream{Data: s.Train, BatchSize: cfg.BatchSize, StartEpoch: cfg.StartEpoch}, nil
}

// RNG streams of the aux data (see NewRand): its order and its batches'
// augmentation, apart from the labelled data's.
const (
	streamAuxOrder   = 3 << 40
	streamAuxAugment = 4 << 40
)

func (a *AuxStream) size() int { return max(a.BatchSize, 1) }

func (a *AuxStream) check() error {
	if a.Data == nil || a.Data.Len() == 0 {
		return errors.New("trainer: the aux stream has no data")
	}
	if a.BatchSize < 0 || a.StartEpoch < 0 {
		return fmt.Errorf("trainer: aux batch_size = %d, start_epoch = %d, want >= 0", a.BatchSize, a.StartEpoch)
	}
	return nil
}

// Active reports whether epoch (0-based) draws the stream.
func (a *AuxStream) Active(epoch int) bool { return a != nil && epoch >= a.StartEpoch }

// Indices are the stream's sample indices for batch (0-based) of epoch:
// positions batch·B … batch·B+B−1 of the epoch's sequence of passes over
// the data, pass p in the order passOrder(seed, epoch, p).
func (a *AuxStream) Indices(seed int64, epoch, batch int) []int {
	bs := a.size()
	out := make([]int, bs)
	for j := range out {
		pos := batch*bs + j
		if a.order == nil || a.epoch != epoch || pos < a.start {
			a.epoch, a.pass, a.start = epoch, 0, 0
			a.order = a.passOrder(seed, epoch, 0)
		}
		for pos >= a.start+len(a.order) {
			a.start += len(a.order)
			a.pass++
			a.order = a.passOrder(seed, epoch, a.pass)
		}
		out[j] = a.order[pos-a.start]
	}
	return out
}

// passOrder is the order of pass p of epoch: the data set's EpochSampler
// (given the pass's rng) when it returns samples, else a permutation.
func (a *AuxStream) passOrder(seed int64, epoch, pass int) []int {
	rng := NewRand(seed, streamAuxOrder+uint64(epoch)<<20+uint64(pass))
	if s, ok := a.Data.(EpochSampler); ok {
		if idx := s.EpochIndices(epoch, rng); len(idx) > 0 {
			return idx
		}
	}
	return rng.Perm(a.Data.Len())
}

// AuxRand is the augmentation rng of the stream's batch for batch
// (0-based) of epoch.
func AuxRand(seed int64, epoch, batch int) *rand.Rand {
	return NewRand(seed, streamAuxAugment+uint64(epoch)<<20+uint64(batch))
}

// Batch loads the stream's batch for batch (0-based) of epoch.
func (a *AuxStream) Batch(seed int64, epoch, batch int, dev gotch.Device) (*Batch, error) {
	b, err := a.Data.Batch(a.Indices(seed, epoch, batch), true, AuxRand(seed, epoch, batch), dev)
	if err != nil {
		return nil, fmt.Errorf("aux stream: %w", err)
	}
	return b, nil
}

// attachAux loads the aux batch of (epoch, batch) into b.Aux when the
// trainer has a stream active in that epoch.
func (t *Trainer) attachAux(b *Batch, epoch, batch int) error {
	if !t.Aux.Active(epoch) {
		return nil
	}
	// each rank of a data-parallel run draws its own samples
	aux, err := t.Aux.Batch(t.rankSeed(), epoch, batch, t.Device)
	if err != nil {
		return err
	}
	b.Aux = aux
	return nil
}
