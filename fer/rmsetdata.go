package fer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// RMsetData is an RMset as an aux-stream Dataset: every sample is one
// draw of the candidate sampler (an anchor face, its candidate positives
// and negatives), every batch has the RMset layout (RMsetInput*). The
// index the sampler was built on comes from `fercli rmset build`; Load
// is the RMset's image pipeline (decode, Resize 260, the training
// augmentation and normalisation of the run's recipe).
//
// A sample is a function of the batch's rng and its index: draw d of a
// batch uses the generator seeded by (rng's d-th number, index), and the
// image at position k of the group the generator seeded by (that number,
// k), so which worker loads what does not matter.
type RMsetData struct {
	Sampler *data.RMSampler
	// Load turns one face crop into model input [3, H, W] (Shape);
	// train-mode augmentation takes its randomness from rng.
	Load func(face data.RMFace, train bool, rng *rand.Rand) ([]float32, error)
	// Shape is one image's input shape, [3, H, W].
	Shape []int64
	// N is the number of draws per pass over the stream (Len); 0 means
	// the sampler's number of valid anchors.
	N int
	// Workers is the number of goroutines loading images (0: one per
	// core).
	Workers int
	// Note describes the set for the log (what was opened, how many
	// anchors); may be empty.
	Note string
}

// ProtocolNote returns Note.
func (d *RMsetData) ProtocolNote() string { return d.Note }

// Drops implements data.DropReporter: the videos and people the sampler
// leaves out because they can never be anchors, by reason.
func (d *RMsetData) Drops() *data.Drops { return d.Sampler.Drops() }

// Len implements Dataset.
func (d *RMsetData) Len() int {
	if d.N > 0 {
		return d.N
	}
	return d.Sampler.Anchors()
}

type rmDraw struct {
	seed  uint64
	group data.RMGroup
}

// draws makes the sampler draws of a batch: draw d uses the generator
// seeded by (rng's d-th number, idx[d]).
func (d *RMsetData) draws(idx []int, rng *rand.Rand) []rmDraw {
	out := make([]rmDraw, len(idx))
	for a, i := range idx {
		seed := rng.Uint64()
		out[a] = rmDraw{seed, d.Sampler.Draw(rand.New(rand.NewPCG(seed, uint64(i))))}
	}
	return out
}

// Groups returns the groups (indices into Sampler.Faces()) that
// Batch(idx, _, rng, _) loads, given a generator in the same state.
func (d *RMsetData) Groups(idx []int, rng *rand.Rand) []data.RMGroup {
	out := make([]data.RMGroup, len(idx))
	for a, dr := range d.draws(idx, rng) {
		out[a] = dr.group
	}
	return out
}

// Batch implements Dataset: A = len(idx) draws as inputs anchors
// [A,3,H,W], positives [A,P,3,H,W], negatives [A,N,3,H,W]; IDs are the
// anchors' files.
func (d *RMsetData) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	if d.Sampler == nil || d.Load == nil || len(d.Shape) != 3 {
		return nil, errors.New("rmset: Sampler, Load and Shape [3,H,W] are required")
	}
	if rng == nil {
		return nil, errors.New("rmset: a batch needs a random generator")
	}
	cfg := d.Sampler.Config()
	P, N := cfg.NPositive, cfg.NNegative
	per := 1 + P + N
	faces := d.Sampler.Faces()
	img := int(d.Shape[0] * d.Shape[1] * d.Shape[2])
	A := len(idx)
	type job struct {
		face data.RMFace
		dst  []float32
		seed uint64
		pos  int
	}
	anchors := make([]float32, A*img)
	pos := make([]float32, A*P*img)
	neg := make([]float32, A*N*img)
	jobs := make([]job, 0, A*per)
	ids := make([]string, A)
	for a, dr := range d.draws(idx, rng) {
		seed, g := dr.seed, dr.group
		ids[a] = faces[g.Anchor].File
		jobs = append(jobs, job{faces[g.Anchor], anchors[a*img : (a+1)*img], seed, 0})
		for k, f := range g.Positives {
			o := (a*P + k) * img
			jobs = append(jobs, job{faces[f], pos[o : o+img], seed, 1 + k})
		}
		for k, f := range g.Negatives {
			o := (a*N + k) * img
			jobs = append(jobs, job{faces[f], neg[o : o+img], seed, 1 + P + k})
		}
	}
	workers := d.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				jb := jobs[j]
				v, err := d.Load(jb.face, train, rand.New(rand.NewPCG(jb.seed, 1<<32+uint64(jb.pos))))
				if err == nil && len(v) != img {
					err = fmt.Errorf("loaded %d values, want %v", len(v), d.Shape)
				}
				if err != nil {
					errs[j] = fmt.Errorf("rmset: %s (video %s, person %d, frame %d): %w", jb.face.File, jb.face.Video, jb.face.Person, jb.face.Frame, err)
					continue
				}
				copy(jb.dst, v)
			}
		}()
	}
	for j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	c, h, w := d.Shape[0], d.Shape[1], d.Shape[2]
	b := &Batch{Size: A, IDs: ids}
	for _, in := range []struct {
		v     []float32
		shape []int64
	}{{anchors, []int64{int64(A), c, h, w}}, {pos, []int64{int64(A), int64(P), c, h, w}}, {neg, []int64{int64(A), int64(N), c, h, w}}} {
		t, err := ts.NewTensorFromData(in.v, in.shape)
		if err == nil && dev != gotch.CPU {
			var moved *ts.Tensor
			moved, err = t.To(dev, true)
			t = moved
		}
		if err != nil {
			b.Drop()
			return nil, fmt.Errorf("rmset: batch tensor: %w", err)
		}
		b.Inputs = append(b.Inputs, t)
	}
	return b, nil
}
