package plots

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fer-research/fer/data"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Embedding is a 2-D embedding of (a subsample of) a feature matrix.
type Embedding struct {
	Method string      // "t-SNE" or "MDS"
	Points [][]float64 // one [x, y] per embedded sample
	Labels []int       // class of each embedded sample
	Index  []int       // row of the input feature matrix of each sample
}

// checkFeatures validates a feature matrix and its labels.
func checkFeatures(X [][]float64, labels []int) (dim int, err error) {
	if len(X) == 0 {
		return 0, fmt.Errorf("no samples")
	}
	if len(labels) != len(X) {
		return 0, fmt.Errorf("%d labels for %d feature rows", len(labels), len(X))
	}
	dim = len(X[0])
	if dim == 0 {
		return 0, fmt.Errorf("feature rows are empty")
	}
	for i, r := range X {
		if len(r) != dim {
			return 0, fmt.Errorf("feature row %d has %d values, want %d (as row 0)", i, len(r), dim)
		}
		for j, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("feature row %d column %d is %v", i, j, v)
			}
		}
	}
	return dim, nil
}

// Subsample picks at most maxPoints sample indices, stratified by label:
// every label keeps a share proportional to its count (largest-remainder
// rounding, at least one sample for every label when maxPoints allows),
// drawn with a PCG generator seeded by seed. The result is sorted. When
// maxPoints <= 0 or there are no more samples than maxPoints, all indices
// are returned.
func Subsample(labels []int, maxPoints int, seed uint64) []int {
	n := len(labels)
	if maxPoints <= 0 || n <= maxPoints {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	groups := map[int][]int{}
	var keys []int
	for i, l := range labels {
		if _, ok := groups[l]; !ok {
			keys = append(keys, l)
		}
		groups[l] = append(groups[l], i)
	}
	slices.Sort(keys)
	// Quotas by largest remainder, at least one point per class: the
	// class-stratified subset of data.ClassIndex over the labels in order.
	dense := make([]int, n)
	for i, l := range labels {
		dense[i], _ = slices.BinarySearch(keys, l)
	}
	q, err := data.NewClassIndex(dense, len(keys)).Quotas(maxPoints)
	if err != nil { // unreachable: 0 < maxPoints < n
		q = make([]int, len(keys))
	}
	quota := make(map[int]int, len(keys))
	for i, k := range keys {
		quota[k] = q[i]
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed_5ab5))
	var idx []int
	for _, k := range keys {
		g := slices.Clone(groups[k])
		rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
		idx = append(idx, g[:quota[k]]...)
	}
	slices.Sort(idx)
	return idx
}

// ClassCentreDistance returns, for each class, the mean Euclidean distance
// of its samples to the class centre (the mean of its feature vectors), and
// the mean of that distance over all samples (each sample weighs the same,
// so large classes weigh more). Smaller values mean more compact classes:
// this is the statistic RMFER quotes with its feature-embedding figure.
// perClass has one entry per label 0..max(label); labels without samples get
// NaN. Negative labels (unlabelled) are ignored. Ragged rows, a length
// mismatch or no labelled sample are errors.
func ClassCentreDistance(X [][]float64, labels []int) (perClass []float64, mean float64, err error) {
	if len(labels) != len(X) {
		return nil, 0, fmt.Errorf("class-centre distance: %d labels for %d feature rows", len(labels), len(X))
	}
	nc := 0
	dim := -1
	for i, l := range labels {
		if l < 0 {
			continue
		}
		nc = max(nc, l+1)
		if dim < 0 {
			dim = len(X[i])
		} else if len(X[i]) != dim {
			return nil, 0, fmt.Errorf("class-centre distance: feature row %d has %d values, want %d", i, len(X[i]), dim)
		}
	}
	if nc == 0 {
		return nil, 0, fmt.Errorf("class-centre distance: no labelled sample")
	}
	centre := make([][]float64, nc)
	count := make([]int, nc)
	for k := range centre {
		centre[k] = make([]float64, dim)
	}
	for i, l := range labels {
		if l < 0 {
			continue
		}
		count[l]++
		for j, v := range X[i] {
			centre[l][j] += v
		}
	}
	for k := range centre {
		for j := range centre[k] {
			centre[k][j] /= float64(max(count[k], 1))
		}
	}
	perClass = make([]float64, nc)
	var total float64
	var n int
	for i, l := range labels {
		if l < 0 {
			continue
		}
		var s float64
		for j, v := range X[i] {
			d := v - centre[l][j]
			s += d * d
		}
		d := math.Sqrt(s)
		perClass[l] += d
		total += d
		n++
	}
	for k := range perClass {
		if count[k] == 0 {
			perClass[k] = math.NaN()
		} else {
			perClass[k] /= float64(count[k])
		}
	}
	return perClass, total / float64(n), nil
}

// scatterWidth leaves room for the legend column.
const scatterWidth = Width + vg.Inch

// ScatterSize is the size of a t-SNE, MDS or Scatter figure.
func ScatterSize() (w, h vg.Length) { return scatterWidth, Height }

// scatterOptions adjusts a class scatter.
type scatterOptions struct {
	xlabel, ylabel string
	legendNames    map[int]string // replaces the class name in the legend
	legendTitle    string         // first legend line, without a marker
}

// drawScatter draws e's points coloured and shaped by class with a legend
// right of the plot.
func drawScatter(path string, e *Embedding, classes []string, title string, o scatterOptions) error {
	if e == nil || len(e.Points) == 0 {
		return fmt.Errorf("plot %s: no points to draw", path)
	}
	if len(e.Labels) != len(e.Points) {
		return fmt.Errorf("plot %s: %d labels for %d points", path, len(e.Labels), len(e.Points))
	}
	byClass := map[int]plotter.XYs{}
	var ks []int
	for i, pt := range e.Points {
		if len(pt) < 2 {
			return fmt.Errorf("plot %s: point %d has %d coordinates, want 2", path, i, len(pt))
		}
		k := e.Labels[i]
		if _, ok := byClass[k]; !ok {
			ks = append(ks, k)
		}
		byClass[k] = append(byClass[k], plotter.XY{X: pt[0], Y: pt[1]})
	}
	slices.Sort(ks)
	p := newPlot(title, o.xlabel, o.ylabel)
	l := newLegend()
	if o.legendTitle != "" {
		l.Add(o.legendTitle)
	}
	radius := vg.Points(2.6)
	if len(e.Points) > 500 {
		radius = vg.Points(1.8)
	}
	for _, k := range ks {
		sc, err := plotter.NewScatter(byClass[k])
		if err != nil {
			return fmt.Errorf("plot %s: class %d: %w", path, k, err)
		}
		col, glyph := classStyle(k)
		name := className(classes, k)
		if k < 0 {
			col, glyph = classColors[len(classColors)-1], draw.CrossGlyph{}
			name = "unlabelled"
		}
		if s, ok := o.legendNames[k]; ok {
			name = s
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: radius, Shape: glyph}
		p.Add(sc)
		// A larger glyph in the legend than in the cloud.
		th := *sc
		th.GlyphStyle.Radius = vg.Points(3.5)
		l.Add(name, &th)
	}
	return render(path, scatterWidth, Height, func(dc draw.Canvas) error {
		drawWithLegend(dc, p, l)
		return nil
	})
}

// Scatter draws a 2-D embedding coloured by class, with a legend, to path
// (.png, .svg or .pdf).
func Scatter(path string, e *Embedding, classes []string, title string) error {
	m := "dim"
	if e != nil && e.Method != "" {
		m = e.Method
	}
	return drawScatter(path, e, classes, title, scatterOptions{xlabel: m + " 1", ylabel: m + " 2"})
}
