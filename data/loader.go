package data

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	// BatchSize is the number of samples per batch (>= 1).
	BatchSize int
	// Workers is the number of loading goroutines (0 = runtime.NumCPU()).
	Workers int
	// Prefetch is how many batches may be queued or in progress ahead of
	// the consumer (0 = 2). Samples of a batch are loaded in parallel, so
	// 2 keeps every worker busy while bounding memory (a 32-clip batch of
	// 16×3×112×112 is 77 MB).
	Prefetch int
	// Shuffle permutes the samples each epoch (from Seed and the epoch).
	Shuffle bool
	// DropLast drops the last batch of an epoch when it is smaller than
	// BatchSize.
	DropLast bool
	// Train passes train = true to Dataset.Load: training-time frame
	// sampling and augmentation.
	Train bool
	// Seed, with the epoch and the sample index, seeds every random
	// choice (SampleRNG), so an epoch is repeatable and does not depend on
	// worker scheduling, the batch size or the number of workers.
	Seed int64
}

// Loader turns a Dataset into batches with several goroutines.
type Loader struct {
	ds  Dataset
	cfg LoaderConfig
}

// NewLoader checks the configuration and fills in its defaults.
func NewLoader(ds Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, fmt.Errorf("loader: empty data set")
	}
	if cfg.BatchSize < 1 {
		return nil, fmt.Errorf("loader: batch size = %d, want >= 1", cfg.BatchSize)
	}
	if cfg.Workers < 0 || cfg.Prefetch < 0 {
		return nil, fmt.Errorf("loader: workers = %d, prefetch = %d, want >= 0", cfg.Workers, cfg.Prefetch)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 2
	}
	if cfg.DropLast && ds.Len() < cfg.BatchSize {
		return nil, fmt.Errorf("loader: %d samples < batch size %d with drop_last: an epoch would be empty", ds.Len(), cfg.BatchSize)
	}
	return &Loader{ds: ds, cfg: cfg}, nil
}

// Config returns the effective configuration.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Len is the number of batches per epoch.
func (l *Loader) Len() int {
	n, b := l.ds.Len(), l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Order returns the sample indices of an epoch in batch order: 0..n−1, or
// with Shuffle a permutation drawn from SampleRNG(Seed, epoch, −1).
func (l *Loader) Order(epoch int) []int {
	n := l.ds.Len()
	if !l.cfg.Shuffle {
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		return order
	}
	return SampleRNG(l.cfg.Seed, epoch, shuffleIndex).Perm(n)
}

// Batch is a batch of samples of one shape, stacked.
type Batch struct {
	// Data is the stacked samples, row-major with shape Shape, e.g.
	// [B, T, 3, H, W] for clips or [B, 3, H, W] for images.
	Data []float32
	// Shape is [B] followed by the sample shape.
	Shape []int
	// Labels are the class indices.
	Labels []int64
	// IDs name the samples; Indices are their data-set indices.
	IDs     []string
	Indices []int
	// Extra are the samples' Extra arrays stacked: shape [B] followed by
	// the per-sample shape.
	Extra map[string]Array
}

// Size is the number of samples B.
func (b *Batch) Size() int { return len(b.Labels) }

// stack assembles loaded samples into a Batch.
func stack(samples []Sample, idx []int) (*Batch, error) {
	shape := samples[0].Shape
	per := len(samples[0].Data)
	b := &Batch{
		Data:    make([]float32, 0, per*len(samples)),
		Shape:   append([]int{len(samples)}, shape...),
		Labels:  make([]int64, len(samples)),
		IDs:     make([]string, len(samples)),
		Indices: slices.Clone(idx),
	}
	for j, s := range samples {
		if !slices.Equal(s.Shape, shape) || len(s.Data) != per {
			return nil, fmt.Errorf("sample %s has shape %v, but sample %s of the same batch has %v", s.ID, s.Shape, samples[0].ID, shape)
		}
		b.Data = append(b.Data, s.Data...)
		b.Labels[j] = int64(s.Label)
		b.IDs[j] = s.ID
	}
	if err := stackExtra(b, samples); err != nil {
		return nil, err
	}
	return b, nil
}

// stackExtra stacks the samples' Extra arrays into b.Extra.
func stackExtra(b *Batch, samples []Sample) error {
	first := samples[0]
	if len(first.Extra) == 0 {
		for _, s := range samples {
			if len(s.Extra) > 0 {
				return fmt.Errorf("sample %s has extra arrays but sample %s of the same batch has none", s.ID, first.ID)
			}
		}
		return nil
	}
	b.Extra = map[string]Array{}
	for name, a := range first.Extra {
		out := Array{Shape: append([]int{len(samples)}, a.Shape...)}
		for _, s := range samples {
			x, ok := s.Extra[name]
			if !ok || !slices.Equal(x.Shape, a.Shape) || (x.I64 == nil) != (a.I64 == nil) || x.Len() != a.Len() {
				return fmt.Errorf("sample %s: extra %q does not match sample %s's (shape %v)", s.ID, name, first.ID, a.Shape)
			}
			if a.I64 != nil {
				out.I64 = append(out.I64, x.I64...)
			} else {
				out.F32 = append(out.F32, x.F32...)
			}
		}
		b.Extra[name] = out
	}
	for _, s := range samples {
		if len(s.Extra) != len(first.Extra) {
			return fmt.Errorf("sample %s has %d extra arrays, sample %s %d", s.ID, len(s.Extra), first.ID, len(first.Extra))
		}
	}
	return nil
}

// LoadBatch loads the samples at idx with up to workers goroutines and
// stacks them. Sample j's random generator is seeded from one draw of rng
// and idx[j], so the batch is a function of rng's state, idx and train
// only. This is the synchronous path for a trainer that hands out one
// random generator per batch (fer.Dataset.Batch).
func LoadBatch(ds Dataset, idx []int, train bool, rng *rand.Rand, workers int) (*Batch, error) {
	return loadSeeded(ds, idx, train, rng, workers, func(base uint64, _, i int) *rand.Rand {
		return rand.New(rand.NewPCG(base, splitmix64(uint64(int64(i)))))
	})
}

// loadSeeded loads and stacks the samples at idx; sample j (index i)
// gets the generator seed(base, j, i), base being one draw of rng (0
// without one).
func loadSeeded(ds Dataset, idx []int, train bool, rng *rand.Rand, workers int, seed func(base uint64, j, i int) *rand.Rand) (*Batch, error) {
	if len(idx) == 0 {
		return nil, fmt.Errorf("load batch: no indices")
	}
	var base uint64
	if rng != nil {
		base = rng.Uint64()
	}
	jobs := make([]loadJob, len(idx))
	for j, i := range idx {
		jobs[j] = loadJob{index: i, rng: seed(base, j, i), train: train}
	}
	samples, err := loadJobs(ds, jobs, workers)
	if err != nil {
		return nil, err
	}
	return stack(samples, idx)
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// loadOne is ds.Load with the index and ID in the error.
func loadOne(ds Dataset, i int, rng *rand.Rand, train bool) (Sample, error) {
	s, err := ds.Load(i, rng, train)
	if err != nil {
		if d, ok := ds.(Described); ok {
			return s, fmt.Errorf("load sample %d (%s): %w", i, d.ID(i), err)
		}
		return s, fmt.Errorf("load sample %d: %w", i, err)
	}
	if len(s.Data) == 0 {
		return s, fmt.Errorf("load sample %d (%s): no data", i, s.ID)
	}
	return s, nil
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("loader: epoch closed")

// pending is one batch being loaded.
type pending struct {
	idx     []int
	samples []Sample
	errs    []error
	left    atomic.Int64  // samples not loaded yet
	done    chan struct{} // closed by the worker that loads the last sample
}

type job struct {
	p *pending
	j int
}

// Epoch is one pass over the data set in progress. Next returns the
// batches in order; Close stops the workers. An Epoch is used by one
// goroutine.
type Epoch struct {
	queue chan *pending // batches in order, bounded by Prefetch
	quit  chan struct{}
	wg    sync.WaitGroup
	err   error
	once  sync.Once
}

// Epoch starts loading epoch epoch (any integer; 0-based by convention):
// a dispatcher cuts Order(epoch) into batches and feeds their samples to
// Workers goroutines; at most Prefetch batches are queued or in progress
// ahead of the consumer. Always Close the returned Epoch (also after
// io.EOF or an error); closing early stops the goroutines.
func (l *Loader) Epoch(epoch int) *Epoch {
	e := &Epoch{
		queue: make(chan *pending, l.cfg.Prefetch),
		quit:  make(chan struct{}),
	}
	jobs := make(chan job)
	order := l.Order(epoch)
	nb, bs := l.Len(), l.cfg.BatchSize
	for range l.cfg.Workers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case <-e.quit:
					return
				case jb, ok := <-jobs:
					if !ok {
						return
					}
					i := jb.p.idx[jb.j]
					rng := SampleRNG(l.cfg.Seed, epoch, i)
					jb.p.samples[jb.j], jb.p.errs[jb.j] = loadOne(l.ds, i, rng, l.cfg.Train)
					if jb.p.left.Add(-1) == 0 {
						close(jb.p.done)
					}
				}
			}
		}()
	}
	e.wg.Add(1)
	go func() { // dispatcher
		defer e.wg.Done()
		defer close(jobs)
		defer close(e.queue)
		for b := range nb {
			idx := order[b*bs : min((b+1)*bs, len(order))]
			p := &pending{idx: idx, samples: make([]Sample, len(idx)), errs: make([]error, len(idx)), done: make(chan struct{})}
			p.left.Store(int64(len(idx)))
			select {
			case e.queue <- p:
			case <-e.quit:
				return
			}
			for j := range idx {
				select {
				case jobs <- job{p, j}:
				case <-e.quit:
					return
				}
			}
		}
	}()
	return e
}

// Next returns the next batch, io.EOF after the last one, or the first
// error of a batch (naming the sample and file); after an error the epoch
// is over.
func (e *Epoch) Next() (*Batch, error) {
	if e.err != nil {
		return nil, e.err
	}
	var p *pending
	var ok bool
	select {
	case p, ok = <-e.queue:
	case <-e.quit:
		return nil, ErrClosed
	}
	if !ok {
		e.err = io.EOF
		return nil, io.EOF
	}
	select {
	case <-p.done:
	case <-e.quit:
		return nil, ErrClosed
	}
	if err := firstErr(p.errs); err != nil {
		e.err = err
		return nil, err
	}
	b, err := stack(p.samples, p.idx)
	if err != nil {
		e.err = err
		return nil, err
	}
	return b, nil
}

// Close stops the dispatcher and the workers and waits for them (a
// worker finishes the sample it is decoding first). It is safe to call
// more than once.
func (e *Epoch) Close() {
	e.once.Do(func() {
		close(e.quit)
		e.wg.Wait()
		if e.err == nil {
			e.err = ErrClosed
		}
	})
}
