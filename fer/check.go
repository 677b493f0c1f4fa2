package fer

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
)

// CheckDataset is what `fercli check` runs before a long training: it
// reads every sample of every split of an opened data set once and
// reports, per split, the samples per class, the samples its readers
// dropped (data.DropReporter) and the samples that fail to load (a
// corrupt JPEG, a truncated video, a missing frame folder).
//
// It works for any registered data set: splits that are also a
// data.Dataset (sample-level Load, no tensors: clip and image readers)
// are read by workers goroutines; other splits through fer.Dataset.Batch
// in batches of 16 on the calling goroutine, and a failed batch is read
// again sample by sample to name the bad ones.

// DataCheck is CheckDataset's result.
type DataCheck struct {
	Classes []string
	Splits  []SplitCheck
}

// SplitCheck is one split's result.
type SplitCheck struct {
	// Name is "train", "val", "test", or "val/test" when one split object
	// serves both.
	Name    string
	Samples int
	// PerClass counts samples by label (nil when the split has no labels:
	// it does not implement Labeled); Unlabelled counts label -1.
	PerClass   []int
	Unlabelled int
	// Drops are the samples the reader left out when opening (nil: none
	// reported).
	Drops *data.Drops
	// Failed are the samples that could not be loaded.
	Failed []SampleFailure
}

// SampleFailure is one sample that failed to load.
type SampleFailure struct {
	Index int
	ID    string
	Err   error
}

// Problems is the number of samples that failed to load.
func (c *DataCheck) Problems() int {
	n := 0
	for _, s := range c.Splits {
		n += len(s.Failed)
	}
	return n
}

// CheckDataset reads every sample of s (see above). workers <= 0 means
// one per core; progress shows a progress bar on stderr (nil: when it is
// a terminal).
func CheckDataset(ctx context.Context, s *Splits, workers int, progress *bool) (res *DataCheck, err error) {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	defer CatchTorch(&err, "check")
	splits := s.Distinct()
	total := 0
	for _, sp := range splits {
		total += sp.Dataset.Len()
	}
	bar := newBar(total, "reading samples", progress)
	defer bar.Finish()
	tick := func() { bar.Add(1) }
	res = &DataCheck{Classes: s.Classes}
	for _, sp := range splits {
		ds := sp.Dataset
		sc := SplitCheck{Name: sp.Name, Samples: ds.Len()}
		if l, ok := ds.(Labeled); ok {
			sc.PerClass = make([]int, len(s.Classes))
			for i := range ds.Len() {
				switch y := l.Label(i); {
				case y < 0:
					sc.Unlabelled++
				case y < len(sc.PerClass):
					sc.PerClass[y]++
				default:
					return nil, fmt.Errorf("%s sample %d has label %d, the data set has %d classes", sp.Name, i, y, len(s.Classes))
				}
			}
		}
		if dr, ok := ds.(data.DropReporter); ok && dr.Drops().Total() > 0 {
			sc.Drops = dr.Drops()
		}
		var failed []SampleFailure
		if dd, ok := ds.(data.Dataset); ok {
			failed, err = checkSamples(ctx, dd, workers, tick)
		} else {
			failed, err = checkBatches(ctx, ds, tick)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sp.Name, err)
		}
		if d, ok := ds.(interface{ ID(int) string }); ok {
			for i := range failed {
				failed[i].ID = d.ID(failed[i].Index)
			}
		}
		sc.Failed = failed
		res.Splits = append(res.Splits, sc)
	}
	return res, nil
}

// checkSamples loads every sample of ds with workers goroutines.
func checkSamples(ctx context.Context, ds data.Dataset, workers int, tick func()) ([]SampleFailure, error) {
	n := ds.Len()
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = loadSample(ds, i)
				tick()
			}
		}()
	}
	var cerr error
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			cerr = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if cerr != nil {
		return nil, cerr
	}
	var out []SampleFailure
	for i, e := range errs {
		if e != nil {
			out = append(out, SampleFailure{Index: i, Err: e})
		}
	}
	return out, nil
}

// loadSample loads sample i in test mode; a panic in a reader is a bug,
// but one bad file must not hide the others: it becomes that sample's
// error.
func loadSample(ds data.Dataset, i int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reader panicked: %v", r)
		}
	}()
	_, err = ds.Load(i, data.SampleRNG(0, 0, i), false)
	return err
}

// checkBatches loads ds through Batch, 16 samples at a time; a failing
// batch is retried sample by sample.
func checkBatches(ctx context.Context, ds Dataset, tick func()) ([]SampleFailure, error) {
	rng := NewRand(0, 0)
	order := make([]int, ds.Len())
	for i := range order {
		order[i] = i
	}
	load := func(idx []int) error {
		b, err := ds.Batch(idx, false, rng, gotch.CPU)
		if err != nil {
			return err
		}
		b.Drop()
		return nil
	}
	var out []SampleFailure
	for _, idx := range Chunks(order, 16, false) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := load(idx); err != nil {
			for _, i := range idx {
				if err := load([]int{i}); err != nil {
					out = append(out, SampleFailure{Index: i, Err: err})
				}
			}
		}
		for range idx {
			tick()
		}
	}
	return out, nil
}
