package fer

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Distributed is the process group a data-parallel run trains in
// (fer/dist implements it over libtorch's c10d). Trainer.Dist = nil is
// a single process. The trainer follows torch.nn.parallel.
// DistributedDataParallel and DistributedSampler:
//
//   - parameters and buffers are broadcast from rank 0 before the first
//     step (after --resume too, where every rank loads rank 0's
//     last.ckpt bytes, so all resume from the same checkpoint);
//   - epoch e's order (EpochOrder: a permutation or the data set's own
//     EpochSampler) is the same on every rank for the same seed; it is
//     padded by repeating its head to a multiple of WorldSize and rank r
//     takes order[r::WorldSize] (ShardOrder), cut into batches of
//     Cfg.BatchSize: batch_size is per process, the global batch is
//     WorldSize·batch_size;
//   - before every step buffers (BatchNorm running statistics) are
//     broadcast from rank 0; batch statistics stay local to each rank;
//   - gradients are averaged over ranks (GradSync) inside
//     StepContext.Backward, so clipping, the NaN check and the update see
//     the same gradients on every rank;
//   - training sums (loss, sub-losses, sample counts) and evaluator
//     statistics (StateMerger) are reduced over ranks; validation is
//     sharded the same way, without padding;
//   - only rank 0 writes the run directory (checkpoints, metrics.jsonl,
//     config.yaml) and prints the epoch log.
//
// Every collective is called in the same order on every rank. A rank that
// dies makes the others' next collective fail with an error within the
// group's timeout.
type Distributed interface {
	Rank() int
	WorldSize() int
	// BroadcastTensors overwrites every rank's tensors with rank 0's.
	BroadcastTensors(tensors []*ts.Tensor) error
	// AllReduceFloat64 reduces vals in place over ranks: the maximum
	// when max, else the sum.
	AllReduceFloat64(vals []float64, max bool) error
	// BroadcastBytes returns rank 0's b on every rank.
	BroadcastBytes(b []byte) ([]byte, error)
	// AllGatherBytes returns every rank's b, by rank.
	AllGatherBytes(b []byte) ([][]byte, error)
	// NewGradSync returns the gradient synchroniser for a model's
	// trainable parameters (names in the same order) and its buffers.
	NewGradSync(params []*ts.Tensor, names []string, buffers []*ts.Tensor) (GradSync, error)
}

// GradSync averages gradients across the ranks of a data-parallel run.
// The trainer calls BeforeForward before each step; StepContext.Backward
// calls BeforeBackward and AfterBackward around each backward pass.
type GradSync interface {
	// BeforeForward is DDP's forward prologue: buffers from rank 0.
	BeforeForward() error
	// BeforeBackward arms the reduction for a backward pass from loss.
	BeforeBackward(loss *ts.Tensor) error
	// AfterBackward returns when every gradient holds the average over
	// ranks.
	AfterBackward() error
	Close()
}

// StateMerger is implemented by an Evaluator whose statistics from
// several ranks can be combined: MergeState adds another evaluator's
// State() to this one's. In a data-parallel run the trainer merges every
// rank's statistics, so training and validation metrics are those of the
// whole data; an evaluator without it reports rank 0's training shard,
// and validation then runs the whole split on every rank.
type StateMerger interface {
	MergeState(state []byte) error
}

// ShardOrder is rank's part of an epoch order under DistributedSampler's
// semantics (drop_last=False): the order is padded to a multiple of world
// by repeating it from its start, and rank takes every world-th index
// from position rank. Every rank gets the same number of samples.
func ShardOrder(order []int, rank, world int) []int {
	if world <= 1 {
		return order
	}
	n := len(order)
	if n == 0 {
		return nil
	}
	total := (n + world - 1) / world * world
	out := make([]int, 0, total/world)
	for i := rank; i < total; i += world {
		out = append(out, order[i%n])
	}
	return out
}

func (t *Trainer) isMain() bool { return t.Dist == nil || t.Dist.Rank() == 0 }

// epochBatches are this rank's training batches of epoch.
func (t *Trainer) epochBatches(epoch int) [][]int {
	order := EpochOrder(t.Train, t.Cfg.Seed, epoch)
	if t.Dist != nil {
		order = ShardOrder(order, t.Dist.Rank(), t.Dist.WorldSize())
	}
	return Chunks(order, t.Cfg.BatchSize, t.Cfg.DropLast)
}

// rankSeed is the seed of this rank's random streams: the run's seed on
// rank 0 (and in one process), a different one on every other rank, so
// ranks do not draw the same augmentations and dropout masks for their
// different samples.
func (t *Trainer) rankSeed() int64 {
	if t.Dist == nil || t.Dist.Rank() == 0 {
		return t.Cfg.Seed
	}
	return StepSeed(t.Cfg.Seed, -1-t.Dist.Rank())
}

// batchRand is BatchRand for this rank.
func (t *Trainer) batchRand(epoch, batch int) *rand.Rand {
	return BatchRand(t.rankSeed(), epoch, batch)
}

// stepSeed is StepSeed for this rank.
func (t *Trainer) stepSeed(step int) int64 { return StepSeed(t.rankSeed(), step) }

// stopRequested reports whether training must stop before the next step:
// the context was cancelled on any rank (every rank stops at the same
// step).
func (t *Trainer) stopRequested(ctx context.Context) (bool, error) {
	stop := ctx.Err() != nil
	if t.Dist == nil {
		return stop, nil
	}
	v := []float64{0}
	if stop {
		v[0] = 1
	}
	if err := t.Dist.AllReduceFloat64(v, true); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}

// loadCheckpoint reads the checkpoint to resume from: in a data-parallel
// run rank 0 reads the file and every rank loads those bytes.
func (t *Trainer) loadCheckpoint(path string) (*LoadedCheckpoint, error) {
	if t.Dist == nil {
		return LoadCheckpoint(path)
	}
	// payload: 0 + file bytes, or 1 + rank 0's error message
	var payload []byte
	if t.isMain() {
		b, err := os.ReadFile(path)
		if err != nil {
			payload = append([]byte{1}, err.Error()...)
		} else {
			payload = append([]byte{0}, b...)
		}
	}
	got, err := t.Dist.BroadcastBytes(payload)
	if err != nil {
		return nil, err
	}
	if len(got) == 0 || got[0] == 1 {
		msg := "empty"
		if len(got) > 0 {
			msg = string(got[1:])
		}
		if t.isMain() {
			return LoadCheckpoint(path) // the same error, with its type
		}
		return nil, fmt.Errorf("checkpoint: rank 0 could not read %s: %s", path, msg)
	}
	if t.isMain() {
		return LoadCheckpoint(path)
	}
	f, err := os.CreateTemp("", "fer-rank-ckpt-*")
	if err != nil {
		return nil, fmt.Errorf("checkpoint from rank 0: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(got[1:])
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint from rank 0: %w", err)
	}
	lc, err := LoadCheckpoint(tmp)
	if err != nil {
		return nil, err
	}
	lc.Path = path
	return lc, nil
}

// quietRanks silences the log and progress bar of ranks other than 0.
func (t *Trainer) quietRanks() {
	if !t.isMain() {
		t.Out = io.Discard
		off := false
		t.Progress = &off
	}
}

// distSetup prepares a data-parallel run after the model, optimiser and
// any resumed state exist: only rank 0 talks, every rank starts from rank
// 0's parameters and buffers, and the gradient synchroniser is built.
func (t *Trainer) distSetup(trainEval Evaluator) error {
	if t.Dist == nil {
		return nil
	}
	if !t.isMain() {
		// the resumed epoch sums are the whole job's, kept by rank 0
		if t.meta.Train != nil {
			t.meta.Train = &TrainAccum{}
			if trainEval != nil {
				trainEval.Reset()
			}
		}
	}
	params, names, buffers, err := SplitVariables(t.Model.VarStore())
	if err != nil {
		return err
	}
	// the gradient synchroniser first (it checks that every rank built
	// the same model), then rank 0's values
	if t.sync, err = t.Dist.NewGradSync(params, names, buffers); err != nil {
		return err
	}
	if err := torchx.NoGrad(func() error {
		return t.Dist.BroadcastTensors(append(append([]*ts.Tensor(nil), params...), buffers...))
	}); err != nil {
		return fmt.Errorf("broadcasting rank 0's parameters: %w", err)
	}
	fmt.Fprintf(t.Out, "data-parallel: %d processes, batch %d per process (%d in all)\n",
		t.Dist.WorldSize(), t.Cfg.BatchSize, t.Cfg.BatchSize*t.Dist.WorldSize())
	return nil
}

// SplitVariables returns vs's trainable variables (parameters, with their
// names) and the others (buffers: BatchNorm running statistics), both in
// name order, the optimiser's order.
func SplitVariables(vs *nn.VarStore) (params []*ts.Tensor, names []string, buffers []*ts.Tensor, err error) {
	vars := vs.Variables()
	for _, n := range sortedKeys(vars) {
		v := vars[n]
		rg, err := v.RequiresGrad()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", n, err)
		}
		if rg {
			params = append(params, &v)
			names = append(names, n)
		} else {
			buffers = append(buffers, &v)
		}
	}
	return params, names, buffers, nil
}

// reduceTrain returns the epoch's training sums over every rank and the
// evaluator's metrics over every rank (rank 0's when it cannot merge). In
// one process it returns acc and trainEval's metrics.
func (t *Trainer) reduceTrain(acc *TrainAccum, trainEval Evaluator) (*TrainAccum, map[string]float64, error) {
	var local map[string]float64
	if trainEval != nil {
		local = trainEval.Metrics()
	}
	if t.Dist == nil {
		return acc, local, nil
	}
	g := *acc
	keys := sortedKeys(acc.PartSums)
	sums := []float64{float64(acc.N), float64(acc.Batches), acc.LossSum}
	for _, k := range keys {
		sums = append(sums, acc.PartSums[k])
	}
	if err := t.Dist.AllReduceFloat64(sums, false); err != nil {
		return nil, nil, fmt.Errorf("reducing training metrics: %w", err)
	}
	g.N, g.Batches, g.LossSum = int(sums[0]), int(sums[1]), sums[2]
	if len(keys) > 0 {
		g.PartSums = map[string]float64{}
		for i, k := range keys {
			g.PartSums[k] = sums[3+i]
		}
	}
	tm := []float64{acc.TimeS}
	if err := t.Dist.AllReduceFloat64(tm, true); err != nil {
		return nil, nil, err
	}
	g.TimeS = tm[0]
	if trainEval == nil {
		return &g, nil, nil
	}
	merged, err := t.mergeEvaluators(trainEval)
	if err != nil {
		return nil, nil, fmt.Errorf("reducing training metrics: %w", err)
	}
	if merged == nil {
		return &g, local, nil
	}
	if g.Eval, err = merged.State(); err != nil {
		return nil, nil, err
	}
	return &g, merged.Metrics(), nil
}

// mergeEvaluators returns a new evaluator holding every rank's statistics
// of ev, or nil when ev cannot merge (the same on every rank).
func (t *Trainer) mergeEvaluators(ev Evaluator) (Evaluator, error) {
	if _, ok := ev.(StateMerger); !ok || t.NewEvaluator == nil {
		return nil, nil
	}
	st, err := ev.State()
	if err != nil {
		return nil, err
	}
	all, err := t.Dist.AllGatherBytes(st)
	if err != nil {
		return nil, err
	}
	m := t.NewEvaluator()
	m.Reset()
	sm, ok := m.(StateMerger)
	if !ok {
		return nil, fmt.Errorf("evaluator %T merges, a new one does not", m)
	}
	for r, s := range all {
		if err := sm.MergeState(s); err != nil {
			return nil, fmt.Errorf("rank %d's evaluator state: %w", r, err)
		}
	}
	return m, nil
}

// evaluate runs the validation pass. In a data-parallel run every rank
// first takes rank 0's buffers (as DDP's first forward after training
// does); with a merging evaluator (or none) each rank evaluates
// val[rank::world] and the loss and statistics are reduced, else every
// rank evaluates the whole split.
func (t *Trainer) evaluate(ctx context.Context, ev Evaluator) (map[string]float64, error) {
	cfg := t.Cfg
	if t.Dist == nil {
		return Evaluate(ctx, t.Model, t.Loss, t.Val, ev, cfg.EvalBatch(), t.Device, "val", t.Progress)
	}
	if t.sync != nil {
		if err := t.sync.BeforeForward(); err != nil {
			return nil, err
		}
	}
	_, merges := ev.(StateMerger)
	if ev != nil && !merges {
		return Evaluate(ctx, t.Model, t.Loss, t.Val, ev, cfg.EvalBatch(), t.Device, "val", t.Progress)
	}
	r, w := t.Dist.Rank(), t.Dist.WorldSize()
	var idx []int
	for i := r; i < t.Val.Len(); i += w {
		idx = append(idx, i)
	}
	var vals map[string]float64
	var err error
	if len(idx) > 0 {
		vals, err = Evaluate(ctx, t.Model, t.Loss, subset{t.Val, idx}, ev, cfg.EvalBatch(), t.Device, "val", t.Progress)
	} else if ev != nil {
		ev.Reset()
	}
	if err != nil {
		// the other ranks are waiting in the reduction below: they get
		// an error when this process exits
		return nil, err
	}
	sums := []float64{vals["loss"] * float64(len(idx)), float64(len(idx))}
	if err := t.Dist.AllReduceFloat64(sums, false); err != nil {
		return nil, fmt.Errorf("reducing validation metrics: %w", err)
	}
	out := map[string]float64{}
	if t.Loss != nil && sums[1] > 0 {
		out["loss"] = sums[0] / sums[1]
	}
	if ev != nil {
		m, err := t.mergeEvaluators(ev)
		if err != nil {
			return nil, fmt.Errorf("reducing validation metrics: %w", err)
		}
		for k, v := range m.Metrics() {
			out[k] = v
		}
	}
	return out, nil
}

// subset is the samples idx of a Dataset.
type subset struct {
	Dataset
	idx []int
}

func (s subset) Len() int { return len(s.idx) }

func (s subset) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	m := make([]int, len(idx))
	for i, j := range idx {
		m[i] = s.idx[j]
	}
	return s.Dataset.Batch(m, train, rng, dev)
}

// closeDist releases the gradient synchroniser.
func (t *Trainer) closeDist() {
	if t.sync != nil {
		t.sync.Close()
		t.sync = nil
	}
	runtime.KeepAlive(t.Model)
}

// MergeState implements StateMerger: confusion counts add up.
func (e *ClassificationEvaluator) MergeState(state []byte) error {
	o := NewClassificationEvaluator(e.C.NumClasses())
	if err := o.SetState(state); err != nil {
		return err
	}
	return e.C.Merge(o.C)
}
