package fer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestShardOrderPadsAndStrides(t *testing.T) {
	order := []int{10, 11, 12, 13, 14}
	got := [][]int{ShardOrder(order, 0, 2), ShardOrder(order, 1, 2)}
	// DistributedSampler(drop_last=False): pad with the head to 6, then
	// indices[rank::2]
	want := [][]int{{10, 12, 14}, {11, 13, 10}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// more ranks than samples: the order repeats
	if g := ShardOrder([]int{7, 8}, 4, 5); fmt.Sprint(g) != "[7]" {
		t.Errorf("rank 4 of 5 over 2 samples: %v", g)
	}
	if g := ShardOrder(order, 0, 1); !slices.Equal(g, order) {
		t.Errorf("one rank: %v", g)
	}
}

// sizeOnly is a Distributed that only knows its place.
type sizeOnly struct{ rank, world int }

func (s sizeOnly) Rank() int                            { return s.rank }
func (s sizeOnly) WorldSize() int                       { return s.world }
func (sizeOnly) BroadcastTensors([]*ts.Tensor) error    { return errors.New("unused") }
func (sizeOnly) AllReduceFloat64([]float64, bool) error { return errors.New("unused") }
func (sizeOnly) BroadcastBytes([]byte) ([]byte, error)  { return nil, errors.New("unused") }
func (sizeOnly) AllGatherBytes([]byte) ([][]byte, error) {
	return nil, errors.New("unused")
}
func (sizeOnly) NewGradSync([]*ts.Tensor, []string, []*ts.Tensor) (GradSync, error) {
	return nil, errors.New("unused")
}

// ownOrder is a data set with its own epoch order (like a class-balanced
// sampler drawing with replacement): 13 draws from 0..4 per epoch.
type ownOrder struct{}

func (ownOrder) Len() int { return 5 }
func (ownOrder) Batch([]int, bool, *rand.Rand, gotch.Device) (*Batch, error) {
	return nil, errors.New("unused")
}
func (ownOrder) EpochIndices(epoch int, rng *rand.Rand) []int {
	out := make([]int, 13)
	for i := range out {
		out[i] = rng.IntN(5)
	}
	return out
}

// TestEpochBatchesShardSamplerOrder: with an EpochSampler data set the
// ranks' batches are disjoint positions of the data set's own order, and
// together (interleaved) they are that order, padded.
func TestEpochBatchesShardSamplerOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BatchSize, cfg.Seed = 3, 9
	for _, epoch := range []int{0, 1} {
		order := EpochOrder(ownOrder{}, cfg.Seed, epoch)
		world := 3
		var shards [][]int
		for r := range world {
			tr := &Trainer{Cfg: &cfg, Train: ownOrder{}, Dist: sizeOnly{r, world}}
			var flat []int
			for _, b := range tr.epochBatches(epoch) {
				if len(b) > cfg.BatchSize {
					t.Fatalf("batch of %d", len(b))
				}
				flat = append(flat, b...)
			}
			shards = append(shards, flat)
		}
		// 13 padded to 15: 5 per rank
		var inter []int
		for i := range 5 {
			for r := range world {
				if len(shards[r]) != 5 {
					t.Fatalf("rank %d has %d samples, want 5", r, len(shards[r]))
				}
				inter = append(inter, shards[r][i])
			}
		}
		want := append(slices.Clone(order), order[:2]...)
		if !slices.Equal(inter, want) {
			t.Errorf("epoch %d: interleaved shards %v, want the padded order %v", epoch, inter, want)
		}
	}
	// a different epoch gives a different order; the same seed the same
	a, b := EpochOrder(ownOrder{}, 9, 0), EpochOrder(ownOrder{}, 9, 1)
	if slices.Equal(a, b) {
		t.Error("epochs 0 and 1 have the same order")
	}
	if !slices.Equal(a, EpochOrder(ownOrder{}, 9, 0)) {
		t.Error("the same seed and epoch gave another order")
	}
}

// TestRankSeeds: rank 0 draws what a single process draws; other ranks
// draw differently (their samples get their own augmentation/dropout).
func TestRankSeeds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 3
	one := &Trainer{Cfg: &cfg}
	r0 := &Trainer{Cfg: &cfg, Dist: sizeOnly{0, 2}}
	r1 := &Trainer{Cfg: &cfg, Dist: sizeOnly{1, 2}}
	if one.stepSeed(5) != StepSeed(3, 5) || r0.stepSeed(5) != one.stepSeed(5) {
		t.Error("rank 0's step seed differs from a single process's")
	}
	if r1.stepSeed(5) == r0.stepSeed(5) {
		t.Error("ranks 0 and 1 share a step seed")
	}
	if one.batchRand(1, 2).Uint64() != BatchRand(3, 1, 2).Uint64() || r1.batchRand(1, 2).Uint64() == BatchRand(3, 1, 2).Uint64() {
		t.Error("batch rng: rank 0 must match one process, rank 1 must not")
	}
}

func TestClassificationEvaluatorMergeState(t *testing.T) {
	a, b := NewClassificationEvaluator(3), NewClassificationEvaluator(3)
	for _, p := range [][2]int{{0, 0}, {1, 2}, {2, 2}} {
		if err := a.C.Add(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.C.Add(1, 1); err != nil {
		t.Fatal(err)
	}
	st, err := b.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.MergeState(st); err != nil {
		t.Fatal(err)
	}
	if a.C.Total() != 4 || a.C.At(1, 1) != 1 || a.C.At(1, 2) != 1 {
		t.Errorf("merged counts %v", a.C.Counts())
	}
	if err := a.MergeState([]byte("[[1]]")); err == nil {
		t.Error("merged a 1-class state into a 3-class evaluator")
	}
}
