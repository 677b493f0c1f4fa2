package plots

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/mds"
)

// MDSOptions configures EmbedMDS.
type MDSOptions struct {
	// MaxPoints caps the number of embedded samples: classical MDS
	// eigen-decomposes an n×n matrix, O(n³), so larger inputs are
	// subsampled, stratified by class (default 1000; negative = no cap).
	MaxPoints int
	// Seed drives the subsample.
	Seed uint64
}

// CentreStats is the class-centre distance statistic (ClassCentreDistance)
// measured in one space.
type CentreStats struct {
	Space    string    // e.g. "feature space (1408-D)" or "MDS 2-D"
	Dim      int       // dimension of that space
	N        int       // samples it was measured on
	PerClass []float64 // mean distance to the class centre, per class
	Mean     float64   // mean over all samples
}

// MDSResult is a classical-MDS embedding with the class-compactness
// statistic in the original feature space and in the 2-D embedding.
type MDSResult struct {
	Embedding
	// Eigenvalues of the double-centred squared-distance matrix, largest
	// first (the first two give the embedding's axes).
	Eigenvalues []float64
	// Feature is measured on all labelled input samples in the original
	// feature space; Embedded on the embedded subsample in 2-D.
	Feature, Embedded CentreStats
}

// String prints the statistic per space and class.
func (r *MDSResult) String() string {
	return r.Format(nil)
}

// Format is String with class names.
func (r *MDSResult) Format(classes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mean Euclidean distance to class centre\n")
	for _, s := range []CentreStats{r.Feature, r.Embedded} {
		fmt.Fprintf(&b, "  %s, N=%d: mean %.4g\n", s.Space, s.N, s.Mean)
		for k, v := range s.PerClass {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&b, "    %-12s %.4g\n", className(classes, k), v)
		}
	}
	return b.String()
}

// EmbedMDS embeds the rows of X in 2-D by classical (Torgerson) MDS of
// their Euclidean distances, using gonum's stat/mds, and measures the
// class-centre distance in the feature space and in the embedding. Inputs
// larger than opt.MaxPoints are subsampled (stratified by class) for the
// embedding; the feature-space statistic uses every labelled sample.
// Classical MDS of Euclidean distances equals PCA: the axes are the first
// two principal components (up to sign).
func EmbedMDS(X [][]float64, labels []int, opt MDSOptions) (*MDSResult, error) {
	dim, err := checkFeatures(X, labels)
	if err != nil {
		return nil, fmt.Errorf("MDS: %w", err)
	}
	maxPts := opt.MaxPoints
	if maxPts == 0 {
		maxPts = 1000
	}
	idx := Subsample(labels, maxPts, opt.Seed)
	n := len(idx)
	if n < 2 {
		return nil, fmt.Errorf("MDS: need at least 2 samples, have %d", n)
	}
	dis := mat.NewSymDense(n, nil)
	for a := 0; a < n; a++ {
		xa := X[idx[a]]
		for b := a + 1; b < n; b++ {
			xb := X[idx[b]]
			var s float64
			for j := range xa {
				d := xa[j] - xb[j]
				s += d * d
			}
			dis.SetSym(a, b, math.Sqrt(s))
		}
	}
	var coords mat.Dense
	eig := make([]float64, n)
	k, eig := mds.TorgersonScaling(&coords, eig, dis)
	if k == 0 && coords.IsEmpty() {
		return nil, fmt.Errorf("MDS: eigen-decomposition failed (all %d points identical?)", n)
	}
	res := &MDSResult{Embedding: Embedding{Method: "MDS", Index: idx}}
	res.Points = make([][]float64, n)
	res.Labels = make([]int, n)
	for i := range res.Points {
		res.Points[i] = make([]float64, 2)
		for c := 0; c < min(k, 2); c++ {
			res.Points[i][c] = coords.At(i, c) // fewer than 2 positive eigenvalues: the rest stay 0
		}
		res.Labels[i] = labels[idx[i]]
	}
	res.Eigenvalues = eig

	pc, mean, err := ClassCentreDistance(X, labels)
	if err != nil {
		return nil, fmt.Errorf("MDS: %w", err)
	}
	nl := 0
	for _, l := range labels {
		if l >= 0 {
			nl++
		}
	}
	res.Feature = CentreStats{Space: fmt.Sprintf("feature space (%d-D)", dim), Dim: dim, N: nl, PerClass: pc, Mean: mean}
	pe, meanE, err := ClassCentreDistance(res.Points, res.Labels)
	if err != nil {
		return nil, fmt.Errorf("MDS: %w", err)
	}
	ne := 0
	for _, l := range res.Labels {
		if l >= 0 {
			ne++
		}
	}
	res.Embedded = CentreStats{Space: "MDS 2-D", Dim: 2, N: ne, PerClass: pe, Mean: meanE}
	return res, nil
}

// MDS embeds the rows of X with EmbedMDS and draws the result coloured by
// class to path (.png, .svg or .pdf). The title carries the mean distance
// to the class centre in the feature space and in the 2-D embedding, and
// each legend entry the class's feature-space value.
func MDS(path string, X [][]float64, labels []int, classes []string, title string, opt MDSOptions) (*MDSResult, error) {
	r, err := EmbedMDS(X, labels, opt)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", path, err)
	}
	sub := fmt.Sprintf("mean dist. to class centre: %.3g in %s, %.3g in 2-D", r.Feature.Mean, r.Feature.Space, r.Embedded.Mean)
	if title != "" {
		sub = title + "\n" + sub
	}
	names := map[int]string{}
	for k, v := range r.Feature.PerClass {
		if !math.IsNaN(v) {
			names[k] = fmt.Sprintf("%s (%.3g)", className(classes, k), v)
		}
	}
	xl, yl := "MDS 1", "MDS 2"
	if len(r.Points) < len(X) {
		xl = fmt.Sprintf("MDS 1  (%d of %d samples shown)", len(r.Points), len(X))
	}
	if err := drawScatter(path, &r.Embedding, classes, sub, scatterOptions{xlabel: xl, ylabel: yl, legendNames: names, legendTitle: "class (dist.)"}); err != nil {
		return nil, err
	}
	return r, nil
}
