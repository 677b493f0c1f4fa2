package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
)

// ClassIndex groups a data set's sample indices by class, for the
// class-balanced and quadruplet samplers.
type ClassIndex struct {
	labels  []int
	byClass [][]int
	pos     []int // pos[i]: position of sample i in byClass[labels[i]]
}

// NewClassIndex indexes labels (0 .. numClasses−1).
func NewClassIndex(labels []int, numClasses int) *ClassIndex {
	c := &ClassIndex{labels: labels, byClass: make([][]int, numClasses), pos: make([]int, len(labels))}
	for i, l := range labels {
		c.pos[i] = len(c.byClass[l])
		c.byClass[l] = append(c.byClass[l], i)
	}
	return c
}

// Counts is the number of samples per class.
func (c *ClassIndex) Counts() []int {
	out := make([]int, len(c.byClass))
	for k, idx := range c.byClass {
		out[k] = len(idx)
	}
	return out
}

// Members returns the indices of class k (not to be modified).
func (c *ClassIndex) Members(k int) []int { return c.byClass[k] }

// Quotas splits n samples over the classes in proportion to their sizes
// (largest remainder: ⌊n·count_k/total⌋ each, the rest one by one to the
// largest fractional parts, ties to the lower class), raised to at least
// one per non-empty class when n allows it (taken back from the largest
// quotas). It errors when n exceeds the samples.
func (c *ClassIndex) Quotas(n int) ([]int, error) {
	counts := c.Counts()
	total, nonEmpty := 0, 0
	for _, k := range counts {
		total += k
		if k > 0 {
			nonEmpty++
		}
	}
	if n < 1 || n > total {
		return nil, fmt.Errorf("a subset of %d of %d samples: want 1..%d", n, total, total)
	}
	q := make([]int, len(counts))
	type rem struct {
		k    int
		frac float64
	}
	var rems []rem
	left := n
	for k, cnt := range counts {
		exact := float64(n) * float64(cnt) / float64(total)
		q[k] = int(math.Floor(exact))
		left -= q[k]
		rems = append(rems, rem{k, exact - float64(q[k])})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; left > 0; i++ {
		if k := rems[i%len(rems)].k; q[k] < counts[k] {
			q[k]++
			left--
		}
	}
	if n >= nonEmpty {
		for k, cnt := range counts {
			if cnt > 0 && q[k] == 0 {
				big := 0
				for j := range q {
					if q[j] > q[big] {
						big = j
					}
				}
				q[big]--
				q[k]++
			}
		}
	}
	return q, nil
}

// Stratified draws a class-stratified subset of n samples: Quotas(n)
// samples of each class, uniformly without replacement with rng. The
// indices are returned in ascending order.
func (c *ClassIndex) Stratified(n int, rng *rand.Rand) ([]int, error) {
	q, err := c.Quotas(n)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, n)
	for k, members := range c.byClass {
		perm := rng.Perm(len(members))
		for _, j := range perm[:q[k]] {
			out = append(out, members[j])
		}
	}
	sort.Ints(out)
	return out, nil
}

// NegativeClass is how a quadruplet's negative class y' is chosen.
type NegativeClass int

const (
	// NegativeData draws the negative image uniformly from all images of
	// other classes, so y' follows the data distribution (the public QCS
	// code's data_processing/dataset_q0.py, used for RAF-DB and FERPlus).
	NegativeData NegativeClass = iota
	// NegativeUniform draws y' uniformly from the other classes, then the
	// negative from y' (dataset_q1.py, used for AffectNet).
	NegativeUniform
)

// ParseNegativeClass reads "data" or "uniform".
func ParseNegativeClass(s string) (NegativeClass, error) {
	switch s {
	case "data", "":
		return NegativeData, nil
	case "uniform":
		return NegativeUniform, nil
	}
	return 0, fmt.Errorf("negative_class = %q, want data (y' follows the data, QCS dataset_q0) or uniform (y' uniform over the other classes, QCS dataset_q1)", s)
}

func (n NegativeClass) String() string {
	if n == NegativeUniform {
		return "uniform"
	}
	return "data"
}

// CheckQuadruplets reports a class no quadruplet can be drawn for: a
// class with exactly one image has no positive for it (nor a second
// negative); with NegativeUniform every class can be drawn as y', so an
// empty class is an error too. classes names them for the message.
func (c *ClassIndex) CheckQuadruplets(mode NegativeClass, classes []string) error {
	nonEmpty := 0
	var bad []string
	for k, idx := range c.byClass {
		switch {
		case len(idx) >= 2:
			nonEmpty++
		case len(idx) == 1:
			nonEmpty++
			bad = append(bad, fmt.Sprintf("%s (1 image: no other image of the class for the positive)", className(classes, k)))
		case mode == NegativeUniform:
			bad = append(bad, fmt.Sprintf("%s (no image, but negative_class uniform can draw it)", className(classes, k)))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("quadruplet sampling needs at least 2 images in every class: %s", strings.Join(bad, "; "))
	}
	if nonEmpty < 2 {
		return fmt.Errorf("quadruplet sampling needs images of at least 2 classes (negatives are of another class)")
	}
	return nil
}

func className(classes []string, k int) string {
	if k < len(classes) {
		return fmt.Sprintf("class %d %q", k, classes[k])
	}
	return fmt.Sprintf("class %d", k)
}

// Quadruplet is one QCS training sample: anchor and positive of class
// Label, negative and negative2 of class NegLabel ≠ Label.
type Quadruplet struct {
	Anchor, Positive, Negative, Negative2 int
	Label, NegLabel                       int
}

// otherThan draws uniformly from members except the one at position skip.
func otherThan(members []int, skip int, rng *rand.Rand) int {
	k := rng.IntN(len(members) - 1)
	if k >= skip {
		k++
	}
	return members[k]
}

// Draw picks the positive and negatives for anchor as the public QCS
// code does (pandas .sample(1) is a uniform draw):
//   - positive: another image of the anchor's class y;
//   - NegativeData: negative = any image whose class is not y, y' its
//     class; NegativeUniform: y' uniform over the other classes, negative
//     any image of y';
//   - negative2: another image of class y'.
//
// CheckQuadruplets must have passed.
func (c *ClassIndex) Draw(anchor int, mode NegativeClass, rng *rand.Rand) Quadruplet {
	y := c.labels[anchor]
	q := Quadruplet{Anchor: anchor, Label: y}
	q.Positive = otherThan(c.byClass[y], c.pos[anchor], rng)
	switch mode {
	case NegativeUniform:
		k := rng.IntN(len(c.byClass) - 1)
		if k >= y {
			k++
		}
		q.NegLabel = k
		m := c.byClass[k]
		q.Negative = m[rng.IntN(len(m))]
	default:
		k := rng.IntN(len(c.labels) - len(c.byClass[y]))
		for cl, m := range c.byClass {
			if cl == y {
				continue
			}
			if k < len(m) {
				q.Negative, q.NegLabel = m[k], cl
				break
			}
			k -= len(m)
		}
	}
	q.Negative2 = otherThan(c.byClass[q.NegLabel], c.pos[q.Negative], rng)
	return q
}

// Balanced draws n sample indices with replacement, each with
// probability proportional to 1/count(its class): the public code's
// ImbalancedDatasetSampler and WeightedRandomSampler (QCS AffectNet,
// RMFER). Every class with images then has total weight 1, so a draw is
// a uniform class followed by a uniform image of it: the same
// distribution as torch.multinomial over the per-sample weights, in
// O(1) per draw.
func (c *ClassIndex) Balanced(n int, rng *rand.Rand) []int {
	var present []int
	for k, m := range c.byClass {
		if len(m) > 0 {
			present = append(present, k)
		}
	}
	out := make([]int, n)
	for i := range out {
		m := c.byClass[present[rng.IntN(len(present))]]
		out[i] = m[rng.IntN(len(m))]
	}
	return out
}

// PositionRand is the random generator of role (0 = sampling, 1.. =
// the images) of the sample at position j of a batch whose generator
// gave base: separate streams, so the positive, negatives and anchor are
// augmented independently, and two draws of the same image in one
// batch (sampling with replacement) are augmented differently.
func PositionRand(base uint64, j, role int) *rand.Rand {
	return rand.New(rand.NewPCG(base, splitmix64(uint64(j)*8+uint64(role)+0x632be59bd9b4e019)))
}

// QuadBatch is a batch of quadruplets: Anchor, Positive, Negative,
// Negative2 hold the images in the same order; Anchor.Labels are y,
// NegLabels y'.
type QuadBatch struct {
	Anchor, Positive, Negative, Negative2 *Batch
	NegLabels                             []int64
	Quads                                 []Quadruplet
}

// LoadQuadruplets draws a quadruplet for each anchor in idx (ci.Draw
// with the position's sampling generator) and loads the four images of
// each in training mode, every one with its own generator, on up to
// workers goroutines. The result is a function of rng's state and idx.
func LoadQuadruplets(ds Dataset, ci *ClassIndex, idx []int, mode NegativeClass, rng *rand.Rand, workers int) (*QuadBatch, error) {
	if len(idx) == 0 {
		return nil, fmt.Errorf("load quadruplets: no anchors")
	}
	base := rng.Uint64()
	quads := make([]Quadruplet, len(idx))
	for j, a := range idx {
		quads[j] = ci.Draw(a, mode, PositionRand(base, j, 0))
	}
	var jobs []loadJob
	for j, q := range quads {
		for k, i := range [4]int{q.Anchor, q.Positive, q.Negative, q.Negative2} {
			jobs = append(jobs, loadJob{index: i, rng: PositionRand(base, j, 1+k), train: true})
		}
	}
	samples, err := loadJobs(ds, jobs, workers)
	if err != nil {
		return nil, err
	}
	qb := &QuadBatch{Quads: quads, NegLabels: make([]int64, len(idx))}
	for k, dst := range []**Batch{&qb.Anchor, &qb.Positive, &qb.Negative, &qb.Negative2} {
		part := make([]Sample, len(quads))
		pidx := make([]int, len(quads))
		for j := range quads {
			part[j] = samples[4*j+k]
			pidx[j] = jobs[4*j+k].index
		}
		if *dst, err = stack(part, pidx); err != nil {
			return nil, err
		}
	}
	for j, q := range quads {
		qb.NegLabels[j] = int64(q.NegLabel)
	}
	return qb, nil
}

// CheckPairs reports a class with exactly one image: it has no positive
// for a pair (DCS's data_processing/dataset.py would stack a missing
// positive). classes names them for the message.
func (c *ClassIndex) CheckPairs(classes []string) error {
	var bad []string
	for k, idx := range c.byClass {
		if len(idx) == 1 {
			bad = append(bad, fmt.Sprintf("%s (1 image)", className(classes, k)))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("pair sampling needs at least 2 images in every class that has one (the positive is another image of the anchor's class): %s", strings.Join(bad, "; "))
	}
	return nil
}

// DrawPositive picks another image of anchor's class, uniformly: DCS's
// fetch_positive (pandas .sample(1) over the class's other images).
// CheckPairs must have passed.
func (c *ClassIndex) DrawPositive(anchor int, rng *rand.Rand) int {
	return otherThan(c.byClass[c.labels[anchor]], c.pos[anchor], rng)
}

// PairBatch is a batch of DCS pairs: Anchor and Positive hold the images
// in the same order, both of the class Anchor.Labels.
type PairBatch struct {
	Anchor, Positive *Batch
}

// LoadPairs draws a positive for each anchor in idx (DrawPositive) and
// loads both images through the training transforms, each augmented
// independently (the anchor and positive get the streams of a
// quadruplet's anchor and positive).
func LoadPairs(ds Dataset, ci *ClassIndex, idx []int, rng *rand.Rand, workers int) (*PairBatch, error) {
	if len(idx) == 0 {
		return nil, fmt.Errorf("load pairs: no anchors")
	}
	base := rng.Uint64()
	var jobs []loadJob
	for j, a := range idx {
		p := ci.DrawPositive(a, PositionRand(base, j, 0))
		for k, i := range [2]int{a, p} {
			jobs = append(jobs, loadJob{index: i, rng: PositionRand(base, j, 1+k), train: true})
		}
	}
	samples, err := loadJobs(ds, jobs, workers)
	if err != nil {
		return nil, err
	}
	pb := &PairBatch{}
	for k, dst := range []**Batch{&pb.Anchor, &pb.Positive} {
		part := make([]Sample, len(idx))
		pidx := make([]int, len(idx))
		for j := range idx {
			part[j] = samples[2*j+k]
			pidx[j] = jobs[2*j+k].index
		}
		if *dst, err = stack(part, pidx); err != nil {
			return nil, err
		}
	}
	return pb, nil
}

// LoadPositions loads the samples at idx like LoadBatch, but seeds each
// from its position in the batch instead of its index (so a sample drawn
// twice with replacement gets two augmentations).
func LoadPositions(ds Dataset, idx []int, train bool, rng *rand.Rand, workers int) (*Batch, error) {
	return loadSeeded(ds, idx, train, rng, workers, func(base uint64, j, _ int) *rand.Rand { return PositionRand(base, j, 1) })
}

type loadJob struct {
	index int
	rng   *rand.Rand
	train bool
}

// loadJobs loads the jobs on up to workers goroutines.
func loadJobs(ds Dataset, jobs []loadJob, workers int) ([]Sample, error) {
	samples := make([]Sample, len(jobs))
	errs := make([]error, len(jobs))
	workers = max(1, min(workers, len(jobs)))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				samples[j], errs[j] = loadOne(ds, jobs[j].index, jobs[j].rng, jobs[j].train)
			}
		}()
	}
	for j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	return samples, nil
}
