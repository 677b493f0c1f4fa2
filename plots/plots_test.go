package plots

import (
	"encoding/xml"
	"flag"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer/metrics"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/plot/vg"
)

// go test ./plots -run Figure -plots.out DIR writes the sample figures to
// DIR (to look at them) instead of a temporary directory.
var outDir = flag.String("plots.out", "", "write sample figures to this directory")

func figPath(t *testing.T, name string) string {
	t.Helper()
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(*outDir, name)
	}
	return filepath.Join(t.TempDir(), name)
}

// checkPNG decodes path and checks its pixel size for a w×h figure.
func checkPNG(t *testing.T, path string, w, h vg.Length) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a valid PNG: %v", path, err)
	}
	pw, ph := PixelSize(w, h)
	if b := img.Bounds(); b.Dx() != pw || b.Dy() != ph {
		t.Errorf("%s is %dx%d px, want %dx%d", path, b.Dx(), b.Dy(), pw, ph)
	}
	// Not blank: some pixels are not white.
	dark := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if r, g, bb, _ := img.At(x, y).RGBA(); r+g+bb < 3*0xc000 {
				dark++
			}
		}
	}
	if dark < 100 {
		t.Errorf("%s looks blank (%d dark samples)", path, dark)
	}
}

// checkSVG parses path as XML and checks the root's width/height (points).
func checkSVG(t *testing.T, path string, w, h vg.Length) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		XMLName xml.Name
		Width   string `xml:"width,attr"`
		Height  string `xml:"height,attr"`
	}
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s is not valid XML: %v", path, err)
	}
	if root.XMLName.Local != "svg" {
		t.Errorf("%s root element is %q, want svg", path, root.XMLName.Local)
	}
	for _, c := range []struct {
		name, got string
		want      float64
	}{{"width", root.Width, w.Points()}, {"height", root.Height, h.Points()}} {
		v, err := strconv.ParseFloat(strings.TrimSuffix(c.got, "pt"), 64)
		if err != nil || !strings.HasSuffix(c.got, "pt") || math.Abs(v-c.want) > 0.01 {
			t.Errorf("%s %s %q, want %gpt", path, c.name, c.got, c.want)
		}
	}
	if !strings.Contains(string(b), "<text") {
		t.Errorf("%s has no text elements (title, labels)", path)
	}
}

func checkBoth(t *testing.T, name string, w, h vg.Length, draw func(path string) error) {
	t.Helper()
	for _, ext := range []string{".png", ".svg"} {
		p := figPath(t, name+ext)
		if err := draw(p); err != nil {
			t.Fatal(err)
		}
		if ext == ".png" {
			checkPNG(t, p, w, h)
		} else {
			checkSVG(t, p, w, h)
		}
	}
}

var emotions = []string{"happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"}

// clusters returns n samples of k Gaussian classes in d dimensions; class c
// has spread 1+0.3c and class 0 takes every third sample (imbalance).
func clusters(n, d, k int, seed uint64) ([][]float64, []int) {
	r := rand.New(rand.NewPCG(seed, 1))
	cent := make([][]float64, k)
	for c := range cent {
		cent[c] = make([]float64, d)
		for j := range cent[c] {
			cent[c][j] = 4 * r.NormFloat64()
		}
	}
	X := make([][]float64, n)
	lab := make([]int, n)
	for i := range X {
		c := i % k
		if i%3 == 0 {
			c = 0
		}
		lab[i] = c
		X[i] = make([]float64, d)
		for j := range X[i] {
			X[i][j] = cent[c][j] + (1+0.3*float64(c))*r.NormFloat64()
		}
	}
	return X, lab
}

func TestConfusionFigure(t *testing.T) {
	c, err := metrics.ConfusionFromCounts([][]int64{
		{873, 20, 30, 15, 10, 2, 5},
		{40, 600, 100, 30, 5, 8, 10},
		{50, 80, 700, 20, 10, 3, 7},
		{30, 20, 40, 500, 30, 20, 10},
		{20, 10, 20, 30, 300, 5, 40},
		{0, 0, 0, 0, 0, 0, 0}, // absent class: grey row
		{10, 20, 10, 20, 60, 2, 120},
	})
	if err != nil {
		t.Fatal(err)
	}
	w, h := ConfusionSize(7)
	checkBoth(t, "confusion", w, h, func(p string) error { return Confusion(p, c, emotions, "STT, DFEW fold 1") })

	// Many classes with long names: square figure, rotated labels.
	big := metrics.NewConfusion(12)
	for i := 0; i < 12; i++ {
		for j := 0; j <= i; j++ {
			_ = big.Add(i, (i+j)%12)
		}
	}
	names := make([]string, 12)
	for i := range names {
		names[i] = fmt.Sprintf("expression-%02d", i)
	}
	w, h = ConfusionSize(12)
	checkBoth(t, "confusion12", w, h, func(p string) error { return ConfusionCounts(p, big.Counts(), names, "") })
}

func TestConfusionGrid(t *testing.T) {
	// Row-normalised 2×2 [[3,1],[0,2]] → [[.75,.25],[0,1]]. Grid row 0 is
	// the bottom row = true class 1; grid row 1 = true class 0.
	c, _ := metrics.ConfusionFromCounts([][]int64{{3, 1}, {0, 2}})
	g := confusionGrid{c.Normalized()}
	want := map[[2]int]float64{{0, 1}: 0.75, {1, 1}: 0.25, {0, 0}: 0, {1, 0}: 1}
	for cr, v := range want {
		if got := g.Z(cr[0], cr[1]); got != v {
			t.Errorf("Z(%d,%d) = %v, want %v", cr[0], cr[1], got, v)
		}
	}
}

func TestConfusionErrors(t *testing.T) {
	dir := t.TempDir()
	c := metrics.NewConfusion(3)
	if err := Confusion(filepath.Join(dir, "a.png"), c, nil, ""); err == nil || !strings.Contains(err.Error(), "a.png") {
		t.Errorf("empty matrix error = %v, want one naming the path", err)
	}
	_ = c.Add(0, 1)
	if err := Confusion(filepath.Join(dir, "a.jpg"), c, nil, ""); err == nil || !strings.Contains(err.Error(), "a.jpg") || !strings.Contains(err.Error(), ".png") {
		t.Errorf("bad extension error = %v, want one naming the path and the supported formats", err)
	}
	missing := filepath.Join(dir, "no", "such", "dir", "a.png")
	if err := Confusion(missing, c, nil, ""); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory error = %v, want one naming the path", err)
	}
	if err := ConfusionCounts(filepath.Join(dir, "b.png"), [][]int64{{1, 2}, {3}}, nil, ""); err == nil {
		t.Error("ragged counts accepted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed renders left %d files behind", len(ents))
	}
}

// writeLog writes a synthetic metrics.jsonl: 3 epochs of 4 steps, per-step
// losses every 2 steps, a torn last line, unknown keys.
func writeLog(t *testing.T, dir string, torn bool) string {
	t.Helper()
	var b strings.Builder
	step := 0
	for e := 1; e <= 3; e++ {
		for s := 0; s < 2; s++ {
			step += 2
			fmt.Fprintf(&b, `{"epoch":%d,"step":%d,"split":"train_step","loss":%g,"lr":0.01}`+"\n", e, step, 3.0-0.1*float64(step))
		}
		fmt.Fprintf(&b, `{"epoch":%d,"step":%d,"split":"train","loss":%g,"acc":%g,"lr":0.01,"time_s":3.5,"loss/ce":%g}`+"\n",
			e, step, 2.5-0.5*float64(e), 0.3+0.2*float64(e), 2.4-0.5*float64(e))
		uar := fmt.Sprint(0.2 + 0.1*float64(e))
		if e == 2 {
			uar = "null"
		}
		fmt.Fprintf(&b, `{"epoch":%d,"step":%d,"split":"val","loss":%g,"uar":%s,"war":%g,"note":"ok","extra":{"a":1}}`+"\n",
			e, step, 2.6-0.4*float64(e), uar, 0.25+0.15*float64(e))
	}
	if torn {
		b.WriteString(`{"epoch":4,"step":14,"spl`)
	}
	p := filepath.Join(dir, MetricsLogName)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadMetricsLog(t *testing.T) {
	dir := t.TempDir()
	p := writeLog(t, dir, true)
	recs, err := ReadMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 12 { // 3 epochs × (2 step + train + val); torn line skipped
		t.Fatalf("%d records, want 12", len(recs))
	}
	r := recs[2] // epoch 1 train
	if r.Split != "train" || r.Epoch != 1 || r.Step != 4 || r.Values["acc"] != 0.5 || r.Values["loss/ce"] != 1.9 {
		t.Errorf("record 2 = %+v", r)
	}
	if _, ok := recs[3].Values["note"]; ok {
		t.Error("string field read as a value")
	}
	if v := recs[7].Values["uar"]; !math.IsNaN(v) {
		t.Errorf("null uar read as %v, want NaN", v)
	}

	// A bad line in the middle is an error naming the file and line.
	b, _ := os.ReadFile(p)
	lines := strings.Split(string(b), "\n")
	lines[4] = "{broken"
	bad := filepath.Join(dir, "bad.jsonl")
	_ = os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)
	if _, err := ReadMetricsLog(bad); err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad line error = %v, want one naming %s line 5", err, bad)
	}
	if _, err := ReadMetricsLog(filepath.Join(dir, "nope.jsonl")); err == nil {
		t.Error("missing log accepted")
	}
}

func TestLogSeries(t *testing.T) {
	recs, err := ReadMetricsLog(writeLog(t, t.TempDir(), false))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Series{}
	var order []string
	for _, s := range LogSeries(recs) {
		got[s.Name] = s
		order = append(order, s.Name)
	}
	wantOrder := []string{"train loss (per step)", "train loss", "train loss/ce", "val loss", "train acc", "val uar", "val war"}
	if strings.Join(order, "|") != strings.Join(wantOrder, "|") {
		t.Errorf("series %q, want %q (lr, time_s, note must be left out)", order, wantOrder)
	}
	for _, n := range wantOrder[:4] {
		if got[n].Panel != PanelLoss {
			t.Errorf("%s in panel %q, want %q", n, got[n].Panel, PanelLoss)
		}
	}
	// Epoch e ends at step 4e; a step record at step s of epoch e sits at
	// (e-1) + (s - 4(e-1))/4: steps 2,4,6,8,10,12 → 0.5,1,1.5,2,2.5,3.
	st := got["train loss (per step)"]
	for i, want := range []float64{0.5, 1, 1.5, 2, 2.5, 3} {
		if math.Abs(st.X[i]-want) > 1e-12 {
			t.Errorf("per-step x[%d] = %v, want %v", i, st.X[i], want)
		}
	}
	if acc := got["train acc"]; len(acc.X) != 3 || acc.X[2] != 3 || math.Abs(acc.Y[2]-0.9) > 1e-12 {
		t.Errorf("train acc = %+v", acc)
	}
	if u := got["val uar"]; !math.IsNaN(u.Y[1]) {
		t.Errorf("val uar epoch 2 = %v, want NaN (null in the log)", u.Y[1])
	}
}

func TestCurvesFigure(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, true)
	w, h := CurvesSize(2)
	checkBoth(t, "curves", w, h, func(p string) error { return CurvesFromLog(dir, p) })

	// A log with only losses gives one panel; a log file path works too.
	one := filepath.Join(t.TempDir(), "m.jsonl")
	_ = os.WriteFile(one, []byte(`{"epoch":1,"step":5,"split":"train","loss":1}`+"\n"+`{"epoch":2,"step":10,"split":"train","loss":0.5}`+"\n"), 0o644)
	w, h = CurvesSize(1)
	checkBoth(t, "curves1", w, h, func(p string) error { return CurvesFromLog(one, p) })

	empty := filepath.Join(t.TempDir(), "e.jsonl")
	_ = os.WriteFile(empty, []byte(`{"epoch":1,"step":5,"split":"train","lr":1}`+"\n"), 0o644)
	if err := CurvesFromLog(empty, filepath.Join(t.TempDir(), "x.png")); err == nil {
		t.Error("log without losses or metrics accepted")
	}
	if err := Curves(filepath.Join(t.TempDir(), "x.png"), "", Series{Name: "a", X: []float64{1}, Y: nil}); err == nil {
		t.Error("series with mismatched x/y accepted")
	}
}

func TestSubsample(t *testing.T) {
	labels := make([]int, 0, 1000)
	for i := 0; i < 900; i++ {
		labels = append(labels, 0)
	}
	for i := 0; i < 95; i++ {
		labels = append(labels, 1)
	}
	for i := 0; i < 5; i++ {
		labels = append(labels, 2)
	}
	idx := Subsample(labels, 100, 7)
	if len(idx) != 100 {
		t.Fatalf("%d indices, want 100", len(idx))
	}
	count := map[int]int{}
	for i, r := range idx {
		if i > 0 && r <= idx[i-1] {
			t.Fatal("indices not sorted and unique")
		}
		count[labels[r]]++
	}
	// Quotas 900·0.1 = 90, 95·0.1 = 9.5, 5·0.1 = 0.5: the two remainders 0.5
	// share one leftover point (stable order gives it to class 1), and the
	// empty class 2 takes one point from the largest class: 89, 10, 1.
	if count[0] != 89 || count[1] != 10 || count[2] != 1 {
		t.Errorf("per-class counts %v, want 89/10/1", count)
	}
	again := Subsample(labels, 100, 7)
	other := Subsample(labels, 100, 8)
	if fmt.Sprint(again) != fmt.Sprint(idx) {
		t.Error("same seed gave a different subsample")
	}
	if fmt.Sprint(other) == fmt.Sprint(idx) {
		t.Error("different seeds gave the same subsample")
	}
	if all := Subsample(labels[:50], 100, 1); len(all) != 50 || all[49] != 49 {
		t.Errorf("small input not returned whole: %v", all)
	}
}

func TestClassCentreDistance(t *testing.T) {
	// Class 0: (0,0), (2,0): centre (1,0), distances 1, 1 → 1.
	// Class 1: (3,4), (-3,-4): centre (0,0), distances 5, 5 → 5.
	// Class 2: absent → NaN. Class 3: (7,7) alone → 0.
	// The unlabelled (-1) sample is ignored.
	// Mean over the 5 labelled samples: (1+1+5+5+0)/5 = 2.4.
	X := [][]float64{{0, 0}, {2, 0}, {3, 4}, {-3, -4}, {7, 7}, {100, 100}}
	labels := []int{0, 0, 1, 1, 3, -1}
	pc, mean, err := ClassCentreDistance(X, labels)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 5, math.NaN(), 0}
	if len(pc) != 4 {
		t.Fatalf("perClass %v, want 4 entries", pc)
	}
	for k := range want {
		if !(pc[k] == want[k] || math.IsNaN(pc[k]) && math.IsNaN(want[k])) {
			t.Errorf("perClass[%d] = %v, want %v", k, pc[k], want[k])
		}
	}
	if math.Abs(mean-2.4) > 1e-12 {
		t.Errorf("mean = %v, want 2.4", mean)
	}
	if _, _, err := ClassCentreDistance(X, labels[:3]); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, _, err := ClassCentreDistance([][]float64{{1, 2}, {1}}, []int{0, 0}); err == nil {
		t.Error("ragged rows accepted")
	}
}

// rotateInto places 2-D points in d dimensions by a random orthonormal
// pair of directions plus an offset: all pairwise distances are kept.
func rotateInto(pts [][]float64, d int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	u := make([]float64, d)
	v := make([]float64, d)
	off := make([]float64, d)
	for j := range u {
		u[j], v[j], off[j] = r.NormFloat64(), r.NormFloat64(), 10*r.NormFloat64()
	}
	norm := func(a []float64) {
		var s float64
		for _, x := range a {
			s += x * x
		}
		for j := range a {
			a[j] /= math.Sqrt(s)
		}
	}
	norm(u)
	var dot float64
	for j := range u {
		dot += u[j] * v[j]
	}
	for j := range v {
		v[j] -= dot * u[j]
	}
	norm(v)
	out := make([][]float64, len(pts))
	for i, p := range pts {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = off[j] + p[0]*u[j] + p[1]*v[j]
		}
	}
	return out
}

func dist(a, b []float64) float64 {
	var s float64
	for j := range a {
		s += (a[j] - b[j]) * (a[j] - b[j])
	}
	return math.Sqrt(s)
}

func TestMDSRecoversDistances(t *testing.T) {
	cases := map[string][][]float64{
		"3-4-5 triangle": {{0, 0}, {3, 0}, {0, 4}},
		"unit square":    {{0, 0}, {1, 0}, {1, 1}, {0, 1}},
	}
	for name, pts := range cases {
		X := rotateInto(pts, 6, 1)
		labels := make([]int, len(X))
		r, err := EmbedMDS(X, labels, MDSOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for a := range pts {
			for b := a + 1; b < len(pts); b++ {
				want := dist(pts[a], pts[b])
				got := dist(r.Points[a], r.Points[b])
				if math.Abs(got-want) > 1e-9 {
					t.Errorf("%s: distance %d-%d = %.12f, want %.12f", name, a, b, got, want)
				}
			}
		}
	}
	// Square centred at (.5,.5): B = XXᵀ of the centred corners (±.5, ±.5)
	// has eigenvalues Σx² = Σy² = 4·0.25 = 1, 1, then 0, 0.
	r, _ := EmbedMDS(rotateInto(cases["unit square"], 6, 2), []int{0, 0, 0, 0}, MDSOptions{})
	for i, want := range []float64{1, 1, 0, 0} {
		if math.Abs(r.Eigenvalues[i]-want) > 1e-9 {
			t.Errorf("eigenvalue %d = %v, want %v", i, r.Eigenvalues[i], want)
		}
	}
}

func TestMDSCentreStats(t *testing.T) {
	// Intrinsically 2-D data: MDS is an isometry, so the class-centre
	// distance is the same in the 6-D feature space and in the embedding.
	r := rand.New(rand.NewPCG(5, 5))
	var pts [][]float64
	var labels []int
	for i := 0; i < 40; i++ {
		c := i % 3
		pts = append(pts, []float64{5*float64(c) + r.NormFloat64(), r.NormFloat64() * float64(c+1)})
		labels = append(labels, c)
	}
	X := rotateInto(pts, 6, 9)
	res, err := EmbedMDS(X, labels, MDSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantPC, wantMean, _ := ClassCentreDistance(pts, labels)
	for _, s := range []CentreStats{res.Feature, res.Embedded} {
		if math.Abs(s.Mean-wantMean) > 1e-9 {
			t.Errorf("%s mean %v, want %v", s.Space, s.Mean, wantMean)
		}
		for k := range wantPC {
			if math.Abs(s.PerClass[k]-wantPC[k]) > 1e-9 {
				t.Errorf("%s class %d: %v, want %v", s.Space, k, s.PerClass[k], wantPC[k])
			}
		}
		if s.N != 40 {
			t.Errorf("%s N = %d, want 40", s.Space, s.N)
		}
	}
	if res.Feature.Dim != 6 || res.Feature.Space != "feature space (6-D)" || res.Embedded.Dim != 2 {
		t.Errorf("spaces %q/%d, %q/%d", res.Feature.Space, res.Feature.Dim, res.Embedded.Space, res.Embedded.Dim)
	}
	if s := res.Format([]string{"a", "b", "c"}); !strings.Contains(s, "feature space (6-D), N=40") || !strings.Contains(s, "MDS 2-D") {
		t.Errorf("Format output:\n%s", s)
	}
}

func TestMDSFigure(t *testing.T) {
	X, lab := clusters(400, 32, 7, 1)
	var res *MDSResult
	checkBoth(t, "mds", scatterWidth, Height, func(p string) error {
		var err error
		res, err = MDS(p, X, lab, emotions, "synthetic features", MDSOptions{MaxPoints: 300, Seed: 1})
		return err
	})
	if len(res.Points) != 300 || res.Feature.N != 400 || res.Embedded.N != 300 {
		t.Errorf("points %d, feature N %d, embedded N %d; want 300, 400, 300", len(res.Points), res.Feature.N, res.Embedded.N)
	}
	// The spread of class c grows as 1+0.3c, so its distance to the centre
	// grows with c in the feature space.
	for k := 1; k < 7; k++ {
		if res.Feature.PerClass[k] <= res.Feature.PerClass[k-1] {
			t.Errorf("feature-space class %d distance %v not above class %d's %v", k, res.Feature.PerClass[k], k-1, res.Feature.PerClass[k-1])
		}
	}
	bad := [][]float64{{1, 2}, {math.NaN(), 0}}
	if _, err := MDS(filepath.Join(t.TempDir(), "x.png"), bad, []int{0, 1}, nil, "", MDSOptions{}); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("NaN feature error = %v, want one naming row 1", err)
	}
}

// TestTSNEGradient checks the analytic gradient against central finite
// differences of KL(P‖Q).
func TestTSNEGradient(t *testing.T) {
	const n = 7
	r := rand.New(rand.NewPCG(3, 4))
	P := make([]float64, n*n)
	var s float64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := r.Float64()
			P[i*n+j], P[j*n+i] = v, v
			s += 2 * v
		}
	}
	for i := range P {
		P[i] /= s
	}
	y := [2][]float64{make([]float64, n), make([]float64, n)}
	for d := range y {
		for i := range y[d] {
			y[d][i] = r.NormFloat64()
		}
	}
	num := make([]float64, n*n)
	rs := make([]float64, n)
	g := [2][]float64{make([]float64, n), make([]float64, n)}
	tsneGradient(P, y[0], y[1], g[0], g[1], num, rs, 1, true)
	scratch := [2][]float64{make([]float64, n), make([]float64, n)}
	kl := func() float64 { return tsneGradient(P, y[0], y[1], scratch[0], scratch[1], num, rs, 1, true) }
	const h = 1e-6
	for d := range y {
		for i := 0; i < n; i++ {
			orig := y[d][i]
			y[d][i] = orig + h
			up := kl()
			y[d][i] = orig - h
			down := kl()
			y[d][i] = orig
			fd := (up - down) / (2 * h)
			if math.Abs(fd-g[d][i]) > 1e-6*math.Max(1, math.Abs(fd)) {
				t.Errorf("dKL/dy[%d][%d]: analytic %v, finite difference %v", i, d, g[d][i], fd)
			}
		}
	}
}

func TestTSNERepeatable(t *testing.T) {
	X, lab := clusters(90, 10, 3, 2) // n ≥ 64 exercises the parallel path
	opt := TSNEOptions{Iterations: 200, Perplexity: 10, Seed: 42}
	a, err := EmbedTSNE(X, lab, opt)
	if err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1)
	b, err := EmbedTSNE(X, lab, opt)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Points {
		if a.Points[i][0] != b.Points[i][0] || a.Points[i][1] != b.Points[i][1] {
			t.Fatalf("same seed, point %d: %v vs %v (GOMAXPROCS %d vs 1)", i, a.Points[i], b.Points[i], prev)
		}
	}
	opt.Seed = 43
	c, err := EmbedTSNE(X, lab, opt)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range a.Points {
		if a.Points[i][0] != c.Points[i][0] {
			differ++
		}
	}
	if differ < len(a.Points)/2 {
		t.Errorf("seeds 42 and 43 differ at only %d of %d points", differ, len(a.Points))
	}
	// The three well-separated classes form separate clusters: every
	// point's nearest neighbour in the embedding has its class.
	for _, e := range []*Embedding{a, c} {
		wrong := 0
		for i, p := range e.Points {
			best, bd := -1, math.Inf(1)
			for j, q := range e.Points {
				if j != i {
					if d := dist(p, q); d < bd {
						best, bd = j, d
					}
				}
			}
			if e.Labels[best] != e.Labels[i] {
				wrong++
			}
		}
		if wrong > 0 {
			t.Errorf("%d of %d points have a nearest neighbour of another class", wrong, len(e.Points))
		}
	}
}

func TestTSNEFigure(t *testing.T) {
	X, lab := clusters(150, 16, 7, 3)
	var e *Embedding
	checkBoth(t, "tsne", scatterWidth, Height, func(p string) error {
		var err error
		e, err = TSNE(p, X, lab, emotions, "synthetic features", TSNEOptions{Iterations: 250, MaxPoints: 120, Seed: 1})
		return err
	})
	if len(e.Points) != 120 || len(e.Index) != 120 {
		t.Errorf("%d points, want the 120-point subsample", len(e.Points))
	}
	for i, r := range e.Index {
		if e.Labels[i] != lab[r] {
			t.Fatalf("label of point %d is %d, input row %d has %d", i, e.Labels[i], r, lab[r])
		}
	}
	if _, err := EmbedTSNE(X[:3], lab[:3], TSNEOptions{}); err == nil {
		t.Error("3 samples accepted")
	}
	// Scatter draws a given embedding.
	checkBoth(t, "scatter", scatterWidth, Height, func(p string) error { return Scatter(p, e, emotions, "again") })
}

func TestBluesPalette(t *testing.T) {
	for _, n := range []int{2, 9, 101} {
		p, err := bluesPalette(n)
		if err != nil {
			t.Fatal(err)
		}
		cols := p.Colors()
		if len(cols) != n {
			t.Fatalf("%d colours, want %d", len(cols), n)
		}
		prev := uint32(math.MaxUint32)
		for i, c := range cols {
			if c == nil {
				t.Fatalf("n=%d: colour %d is nil", n, i)
			}
			r, g, b, _ := c.RGBA()
			// Luminance falls monotonically from white-ish to dark blue.
			if l := 299*r + 587*g + 114*b; l > prev {
				t.Errorf("n=%d: colour %d is lighter than colour %d", n, i, i-1)
			} else {
				prev = l
			}
		}
	}
}

func TestEpochTicks(t *testing.T) {
	labels := func(lo, hi float64) string {
		var out []string
		for _, tk := range (epochTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0.5, 3, "1,2,3"},           // span 2.5: every epoch
		{1, 30, "5,10,15,20,25,30"}, // span 29: 29/5 ≤ 8
		{1, 100, "20,40,60,80,100"}, // span 99: 99/20 ≤ 8
		{0.3, 3.7, "1,2,3"},
	} {
		if got := labels(c.lo, c.hi); got != c.want {
			t.Errorf("ticks on [%v,%v]: %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
}

func TestTSNEScaleInvariant(t *testing.T) {
	// Multiplying the features by 1e6 must not change the affinities P
	// beyond rounding: the input is scaled to unit variance first.
	X, _ := clusters(40, 8, 2, 4)
	var ps [][]float64
	for _, scale := range []float64{1, 1e6} {
		flat := make([]float64, 0, 40*8)
		for _, r := range X {
			for _, v := range r {
				flat = append(flat, scale*v)
			}
		}
		scaleToUnitVariance(flat, 40, 8)
		P, err := affinities(mat.NewDense(40, 8, flat), 8)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, P)
	}
	var sum float64
	for i := range ps[0] {
		sum += ps[0][i]
		if math.Abs(ps[0][i]-ps[1][i]) > 1e-12 {
			t.Fatalf("P[%d] = %v at scale 1, %v at scale 1e6", i, ps[0][i], ps[1][i])
		}
	}
	// P is a joint distribution (the 40 diagonal entries hold 1e-12 each).
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("ΣP = %v, want 1", sum)
	}
}

func TestLogSeriesAccAlias(t *testing.T) {
	// The trainer logs accuracy as acc and war: one curve when equal,
	// both when they differ.
	recs := []Record{
		{Epoch: 1, Split: "val", Values: map[string]float64{"acc": 0.5, "war": 0.5, "uar": 0.4}},
		{Epoch: 2, Split: "val", Values: map[string]float64{"acc": 0.6, "war": 0.6, "uar": 0.5}},
		{Epoch: 1, Split: "train", Values: map[string]float64{"acc": 0.7}},
	}
	var names []string
	for _, s := range LogSeries(recs) {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, "|"); got != "train acc|val uar|val war" {
		t.Errorf("series %s, want train acc|val uar|val war", got)
	}
	recs[1].Values["acc"] = 0.61
	names = nil
	for _, s := range LogSeries(recs) {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, "|"); got != "train acc|val acc|val uar|val war" {
		t.Errorf("series %s, want val acc kept where it differs from war", got)
	}
}
