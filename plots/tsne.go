package plots

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/danaugrs/go-tsne/tsne"
	"gonum.org/v1/gonum/mat"
)

// TSNEOptions configures EmbedTSNE. Zero fields take the defaults, which
// follow scikit-learn's exact t-SNE.
type TSNEOptions struct {
	// Perplexity of the Gaussian kernels (default 30; lowered to (n-1)/3
	// for small n).
	Perplexity float64
	// LearningRate (default: scikit-learn's "auto", max(n/Exaggeration/4, 50)).
	LearningRate float64
	// Iterations of gradient descent (default 1000).
	Iterations int
	// Exaggeration multiplies P during the first ExaggerationIters
	// iterations (defaults 12 and 250, or a quarter of Iterations when
	// fewer than 1000).
	Exaggeration      float64
	ExaggerationIters int
	// MaxPoints caps the number of embedded samples: t-SNE is O(n²) in time
	// and memory, so larger inputs are subsampled, stratified by class
	// (default 2000; negative = no cap).
	MaxPoints int
	// Seed drives the subsample and the initial solution. The same seed on
	// the same input gives bit-identical coordinates.
	Seed uint64
}

func (o TSNEOptions) withDefaults(n int) TSNEOptions {
	if o.Perplexity <= 0 {
		o.Perplexity = 30
	}
	if maxP := float64(n-1) / 3; o.Perplexity > maxP {
		o.Perplexity = maxP
	}
	if o.Iterations <= 0 {
		o.Iterations = 1000
	}
	if o.Exaggeration <= 0 {
		o.Exaggeration = 12
	}
	if o.ExaggerationIters <= 0 {
		o.ExaggerationIters = min(250, o.Iterations/4)
	}
	if o.LearningRate <= 0 {
		o.LearningRate = math.Max(float64(n)/o.Exaggeration/4, 50)
	}
	if o.MaxPoints == 0 {
		o.MaxPoints = 2000
	}
	return o
}

// EmbedTSNE embeds the rows of X in 2-D with t-SNE and returns the
// embedding of (a stratified subsample of at most opt.MaxPoints of) the
// samples.
//
// The input affinities P (per-point Gaussian kernels calibrated to the
// perplexity by binary search, symmetrised) come from
// github.com/danaugrs/go-tsne. Its optimiser is not used, for two reasons
// found in its source: the initial solution is drawn from the global
// math/rand source, which cannot be seeded since Go 1.24 (rand.Seed is a
// no-op unless the main package sets //go:debug randseednop=0, which a
// library cannot do), so results were not repeatable; and its gradient
// buffer is never reset between iterations, so each step applies the sum
// of all past gradients. The gradient descent here is the standard one of
// van der Maaten's reference implementation (early exaggeration, momentum
// 0.5 then 0.8, per-coordinate gains), started from a Gaussian (σ = 1e-4)
// drawn with a PCG generator seeded by opt.Seed. Rows are processed in
// parallel, but every sum runs in a fixed order, so results do not depend
// on the number of CPUs.
func EmbedTSNE(X [][]float64, labels []int, opt TSNEOptions) (*Embedding, error) {
	dim, err := checkFeatures(X, labels)
	if err != nil {
		return nil, fmt.Errorf("t-SNE: %w", err)
	}
	maxPts := opt.MaxPoints
	if maxPts == 0 {
		maxPts = 2000
	}
	idx := Subsample(labels, maxPts, opt.Seed)
	n := len(idx)
	if n < 4 {
		return nil, fmt.Errorf("t-SNE: need at least 4 samples, have %d", n)
	}
	opt = opt.withDefaults(n)

	flat := make([]float64, 0, n*dim)
	lab := make([]int, n)
	for i, r := range idx {
		flat = append(flat, X[r]...)
		lab[i] = labels[r]
	}
	scaleToUnitVariance(flat, n, dim)
	P, err := affinities(mat.NewDense(n, dim, flat), opt.Perplexity)
	if err != nil {
		return nil, fmt.Errorf("t-SNE: %w", err)
	}
	Y, _ := optimizeTSNE(P, n, opt)
	pts := make([][]float64, n)
	for i := range pts {
		pts[i] = []float64{Y[2*i], Y[2*i+1]}
	}
	return &Embedding{Method: "t-SNE", Points: pts, Labels: lab, Index: idx}, nil
}

// scaleToUnitVariance divides the n×dim row-major data by the square root
// of its total variance (so the mean squared pairwise distance is 2). t-SNE
// is scale-invariant (the kernel widths adapt to the perplexity), but
// go-tsne's binary search for each kernel starts at precision 1 and stops
// after 50 halvings/bisections, so it loses accuracy for distances many
// orders of magnitude away from 1.
func scaleToUnitVariance(flat []float64, n, dim int) {
	var total float64
	for j := 0; j < dim; j++ {
		var m, m2 float64
		for i := 0; i < n; i++ {
			m += flat[i*dim+j]
		}
		m /= float64(n)
		for i := 0; i < n; i++ {
			d := flat[i*dim+j] - m
			m2 += d * d
		}
		total += m2 / float64(n)
	}
	if total <= 0 {
		return
	}
	s := 1 / math.Sqrt(total)
	for i := range flat {
		flat[i] *= s
	}
}

// affinities returns go-tsne's joint probabilities P (n×n, row-major):
// running its embedding with zero iterations computes P and nothing else
// that matters (its random initial solution is discarded).
func affinities(X *mat.Dense, perplexity float64) (P []float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-tsne: %v", r)
		}
	}()
	t := tsne.NewTSNE(2, perplexity, 1, 0, false)
	t.EmbedData(X, nil)
	n, _ := X.Dims()
	P = make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			P[i*n+j] = t.P.At(i, j)
		}
	}
	return P, nil
}

// parallelRows runs fn(i) for i in [0,n) on GOMAXPROCS goroutines, in
// contiguous blocks.
func parallelRows(n int, fn func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 || n < 64 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	block := (n + w - 1) / w
	for lo := 0; lo < n; lo += block {
		hi := min(lo+block, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// tsneGradient computes the gradient of KL(exag·P ‖ Q) with respect to the
// 2-D solution (y0[i], y1[i]) into (g0, g1), using num as n×n scratch, and
// returns KL(P ‖ Q) (the cost for exag = 1) when withKL is set, else 0:
//
//	q_ij = (1+‖y_i−y_j‖²)⁻¹ / Σ_{k≠l} (1+‖y_k−y_l‖²)⁻¹
//	∂C/∂y_i = 4 Σ_j (exag·p_ij − q_ij)(1+‖y_i−y_j‖²)⁻¹ (y_i − y_j)
func tsneGradient(P, y0, y1, g0, g1, num, rowSum []float64, exag float64, withKL bool) float64 {
	n := len(y0)
	y1 = y1[:n]
	parallelRows(n, func(i int) {
		var s float64
		a0, a1 := y0[i], y1[i]
		row := num[i*n : (i+1)*n]
		for j := range row {
			d0, d1 := a0-y0[j], a1-y1[j]
			v := 1 / (1 + d0*d0 + d1*d1)
			row[j] = v
			s += v
		}
		row[i] = 0 // the diagonal term computed above is 1/(1+0) = 1
		rowSum[i] = s - 1
	})
	var sumQ float64
	for _, s := range rowSum {
		sumQ += s
	}
	inv := 1 / sumQ
	klRow := rowSum // reuse: rowSum is no longer needed
	parallelRows(n, func(i int) {
		var s0, s1, kl float64
		a0, a1 := y0[i], y1[i]
		row := num[i*n : (i+1)*n]
		prow := P[i*n : (i+1)*n]
		prow = prow[:len(row)]
		for j, w := range row { // w = 0 on the diagonal, so it adds nothing
			m := (exag*prow[j] - w*inv) * w
			s0 += m * (a0 - y0[j])
			s1 += m * (a1 - y1[j])
		}
		if withKL {
			for j, w := range row {
				if j != i {
					kl += prow[j] * math.Log(prow[j]/math.Max(w*inv, 1e-12))
				}
			}
		}
		g0[i], g1[i] = 4*s0, 4*s1
		klRow[i] = kl
	})
	var kl float64
	for _, v := range klRow {
		kl += v
	}
	return kl
}

// optimizeTSNE runs gradient descent from a seeded Gaussian start and
// returns the solution (flat, n×2) and the final KL(P ‖ Q).
func optimizeTSNE(P []float64, n int, o TSNEOptions) ([]float64, float64) {
	rng := rand.New(rand.NewPCG(o.Seed, 0x7_54e5))
	y := [2][]float64{make([]float64, n), make([]float64, n)}
	for i := 0; i < n; i++ {
		y[0][i] = 1e-4 * rng.NormFloat64()
		y[1][i] = 1e-4 * rng.NormFloat64()
	}
	g := [2][]float64{make([]float64, n), make([]float64, n)}
	update := [2][]float64{make([]float64, n), make([]float64, n)}
	gains := [2][]float64{make([]float64, n), make([]float64, n)}
	for d := range gains {
		for i := range gains[d] {
			gains[d][i] = 1
		}
	}
	num := make([]float64, n*n)
	rowSum := make([]float64, n)
	for it := 0; it < o.Iterations; it++ {
		exag, mom := 1.0, 0.8
		if it < o.ExaggerationIters {
			exag, mom = o.Exaggeration, 0.5
		}
		tsneGradient(P, y[0], y[1], g[0], g[1], num, rowSum, exag, false)
		for d := range y {
			yd, gd, ud, gnd := y[d], g[d], update[d], gains[d]
			var mean float64
			for i := range yd {
				if (gd[i] > 0) != (ud[i] > 0) {
					gnd[i] += 0.2
				} else {
					gnd[i] *= 0.8
				}
				gnd[i] = math.Max(gnd[i], 0.01)
				ud[i] = mom*ud[i] - o.LearningRate*gnd[i]*gd[i]
				yd[i] += ud[i]
				mean += yd[i]
			}
			mean /= float64(n)
			for i := range yd {
				yd[i] -= mean
			}
		}
	}
	kl := tsneGradient(P, y[0], y[1], g[0], g[1], num, rowSum, 1, true)
	Y := make([]float64, 2*n)
	for i := 0; i < n; i++ {
		Y[2*i], Y[2*i+1] = y[0][i], y[1][i]
	}
	return Y, kl
}

// TSNE embeds the rows of X with EmbedTSNE and draws the result coloured by
// class to path (.png, .svg or .pdf). The title gets the number of points
// and the perplexity.
func TSNE(path string, X [][]float64, labels []int, classes []string, title string, opt TSNEOptions) (*Embedding, error) {
	e, err := EmbedTSNE(X, labels, opt)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", path, err)
	}
	o := opt.withDefaults(len(e.Points))
	sub := fmt.Sprintf("t-SNE of %d samples (perplexity %.0f, seed %d)", len(e.Points), o.Perplexity, opt.Seed)
	if len(e.Points) < len(X) {
		sub = fmt.Sprintf("t-SNE of %d of %d samples (perplexity %.0f, seed %d)", len(e.Points), len(X), o.Perplexity, opt.Seed)
	}
	if title != "" {
		sub = title + "\n" + sub
	}
	if err := drawScatter(path, e, classes, sub, scatterOptions{xlabel: "t-SNE 1", ylabel: "t-SNE 2"}); err != nil {
		return nil, err
	}
	return e, nil
}
