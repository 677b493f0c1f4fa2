package plots

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// MetricsLogName is the file name of a run's metrics log inside its run
// directory.
const MetricsLogName = "metrics.jsonl"

// Record is one line of a run's metrics.jsonl, as written by the trainer
// (package fer): a flat JSON object
//
//	{"epoch":1,"step":120,"split":"train","loss":1.23,"acc":0.41,"lr":0.01}
//	{"epoch":1,"step":120,"split":"val","loss":1.4,"uar":0.33,"war":0.45}
//
// epoch is 1-based (fractional epochs are accepted), step counts the
// optimisation steps done so far, split is "train", "val", "test" or
// "train_step" (records logged every N steps). Every other numeric field is
// a value; null is read as NaN; non-numeric fields are ignored, so the
// reader tolerates keys it does not know.
//
// This reader is separate from the trainer's own so that plots stays a
// pure-Go package that builds without libtorch.
type Record struct {
	Epoch  float64
	Step   int64
	Split  string
	Values map[string]float64
}

func parseRecord(line []byte) (Record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return Record{}, err
	}
	r := Record{Values: map[string]float64{}}
	for k, raw := range m {
		var v float64
		isNull := string(raw) == "null"
		numErr := json.Unmarshal(raw, &v)
		switch k {
		case "epoch":
			if numErr != nil {
				return Record{}, fmt.Errorf("epoch %s is not a number", raw)
			}
			r.Epoch = v
		case "step":
			if numErr != nil {
				return Record{}, fmt.Errorf("step %s is not a number", raw)
			}
			r.Step = int64(v)
		case "split":
			if err := json.Unmarshal(raw, &r.Split); err != nil {
				return Record{}, fmt.Errorf("split %s is not a string", raw)
			}
		default:
			switch {
			case isNull:
				r.Values[k] = math.NaN()
			case numErr == nil:
				r.Values[k] = v
			}
		}
	}
	return r, nil
}

// ReadMetricsLog reads every record of a metrics.jsonl file. Blank lines are
// skipped, and so is a torn last line (a run killed, or still running,
// mid-write); a bad line elsewhere is an error naming the file and line.
func ReadMetricsLog(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics log: %w", err)
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	lines := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		lines++
	}
	for ln := 1; sc.Scan(); ln++ {
		txt := bytes.TrimSpace(sc.Bytes())
		if len(txt) == 0 {
			continue
		}
		r, err := parseRecord(txt)
		if err != nil {
			if ln == lines && b[len(b)-1] != '\n' {
				break // torn last line
			}
			return nil, fmt.Errorf("metrics log %s line %d: %w", path, ln, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics log %s: %w", path, err)
	}
	return out, nil
}

// Series is one curve of a Curves figure.
type Series struct {
	// Panel groups series that share axes; panels are drawn top to bottom
	// in order of first appearance, and the panel name is the Y label.
	Panel string
	// Name is the legend entry.
	Name string
	// X and Y are the points (NaN points are skipped).
	X, Y []float64
	// Split selects the line style: "train" solid, "val" dashed, "test"
	// dotted, "train_step" thin and light; anything else dash-dotted.
	Split string
}

var splitDashes = map[string][]vg.Length{
	"train":      nil,
	"train_step": nil,
	"val":        {vg.Points(6), vg.Points(3)},
	"test":       {vg.Points(2), vg.Points(2)},
}

// Curves draws training curves, one panel per distinct Series.Panel stacked
// vertically with a shared "epoch" X label, legends to the right, and writes
// the figure to path (.png, .svg or .pdf).
func Curves(path, title string, series ...Series) error {
	var panels []string
	byPanel := map[string][]Series{}
	for _, s := range series {
		if len(s.X) != len(s.Y) {
			return fmt.Errorf("plot %s: series %q has %d x and %d y values", path, s.Name, len(s.X), len(s.Y))
		}
		if _, ok := byPanel[s.Panel]; !ok {
			panels = append(panels, s.Panel)
		}
		byPanel[s.Panel] = append(byPanel[s.Panel], s)
	}
	if len(panels) == 0 {
		return fmt.Errorf("plot %s: no curves to draw", path)
	}

	var plots []*plot.Plot
	var legends []*plot.Legend
	for _, name := range panels {
		p := newPlot("", "epoch", name)
		p.X.Tick.Marker = epochTicks{}
		drawn := 0
		l := newLegend()
		ci := 0
		for _, s := range byPanel[name] {
			// Points, and the runs of consecutive valid points: a NaN
			// (null in the log) leaves a gap in the line.
			var xys plotter.XYs
			var runs []plotter.XYs
			var run plotter.XYs
			for k := range s.X {
				if math.IsNaN(s.X[k]) || math.IsNaN(s.Y[k]) || math.IsInf(s.Y[k], 0) {
					if len(run) > 0 {
						runs = append(runs, run)
					}
					run = nil
					continue
				}
				xy := plotter.XY{X: s.X[k], Y: s.Y[k]}
				xys = append(xys, xy)
				run = append(run, xy)
			}
			if len(run) > 0 {
				runs = append(runs, run)
			}
			if len(xys) == 0 {
				continue
			}
			col, glyph := classStyle(ci)
			ci++
			var line *plotter.Line
			for _, r := range runs {
				ln, err := plotter.NewLine(r)
				if err != nil {
					return fmt.Errorf("plot %s: series %q: %w", path, s.Name, err)
				}
				ln.Color = col
				ln.Width = vg.Points(1.5)
				ln.Dashes = splitDashes[s.Split]
				if _, known := splitDashes[s.Split]; !known {
					ln.Dashes = []vg.Length{vg.Points(6), vg.Points(2), vg.Points(1), vg.Points(2)}
				}
				if s.Split == "train_step" {
					ln.Width = vg.Points(0.6)
					ln.Color = fade(col)
				}
				p.Add(ln)
				if line == nil {
					line = ln
				}
			}
			thumbs := []plot.Thumbnailer{line}
			if len(xys) <= 60 && s.Split != "train_step" {
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return fmt.Errorf("plot %s: series %q: %w", path, s.Name, err)
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(2.2), Shape: glyph}
				p.Add(sc)
				thumbs = append(thumbs, sc)
			}
			l.Add(s.Name, thumbs...)
			drawn++
		}
		p.Add(plotter.NewGrid())
		if drawn > 0 { // a panel whose series are all NaN is left out
			plots = append(plots, p)
			legends = append(legends, &l)
		}
	}
	if len(plots) == 0 {
		return fmt.Errorf("plot %s: every series is empty or NaN", path)
	}
	plots[0].Title.Text = title
	// Shared epoch range so the panels' X axes line up.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, p := range plots {
		xmin, xmax = math.Min(xmin, p.X.Min), math.Max(xmax, p.X.Max)
	}
	for _, p := range plots {
		p.X.Min, p.X.Max = xmin, xmax
	}

	w, h := CurvesSize(len(plots))
	return render(path, w, h, func(dc draw.Canvas) error {
		drawStacked(dc, plots, legends, vg.Points(6))
		return nil
	})
}

// drawStacked draws plots stacked vertically with aligned data areas and
// legends[i] (nil: none) in one column to the right of panel i, as wide
// as the widest legend.
func drawStacked(dc draw.Canvas, plots []*plot.Plot, legends []*plot.Legend, padY vg.Length) {
	var lw vg.Length
	for _, l := range legends {
		if l != nil {
			r := l.Rectangle(dc)
			lw = max(lw, r.Max.X-r.Min.X)
		}
	}
	gap := vg.Points(8)
	body := draw.Crop(dc, 0, -(lw + 2*gap), 0, 0)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: padY, PadTop: vg.Points(2), PadBottom: vg.Points(2)}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	cs := plot.Align(grid, tiles, body)
	for i, p := range plots {
		p.Draw(cs[i][0])
		if i >= len(legends) || legends[i] == nil {
			continue
		}
		data := p.DataCanvas(cs[i][0])
		lc := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: dc.Max.X - lw - gap, Y: data.Min.Y},
			Max: vg.Point{X: dc.Max.X - gap, Y: data.Max.Y},
		}}
		legends[i].Top, legends[i].Left = true, true
		legends[i].Draw(lc)
	}
}

// epochTicks labels the epoch axis with round numbers (1, 2, 5, 10, 20, ...
// apart, at most about 8 labels) and unlabelled minor ticks between them.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	step := 1.0
	for mag := 1.0; ; mag *= 10 {
		found := false
		for _, m := range []float64{1, 2, 5} {
			if span/(m*mag) <= 8 {
				step, found = m*mag, true
				break
			}
		}
		if found {
			break
		}
	}
	if span < 2 { // fractional epochs only
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	minor := step / 5
	if step == 2 {
		minor = 1
	}
	var ticks []plot.Tick
	perMajor := int(math.Round(step / minor))
	for k := int(math.Ceil(lo/minor - 1e-9)); float64(k)*minor <= hi+1e-9; k++ {
		t := plot.Tick{Value: float64(k) * minor}
		if k%perMajor == 0 {
			t.Label = strconv.FormatFloat(float64(k/perMajor)*step, 'f', -1, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// CurvesSize is the figure size for a number of panels.
func CurvesSize(panels int) (w, h vg.Length) {
	return 7 * vg.Inch, 3.2*vg.Inch*vg.Length(panels) + 0.3*vg.Inch
}

// fade mixes c halfway to white (for per-step curves drawn under the
// per-epoch ones).
func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8 + 255) / 2) }
	return color.RGBA{mix(r), mix(g), mix(b), 255}
}

// isLossKey reports whether a log key is a loss: "loss", "loss/<part>" or
// "loss_<part>".
func isLossKey(k string) bool {
	return k == "loss" || strings.HasPrefix(k, "loss/") || strings.HasPrefix(k, "loss_")
}

// metricPrefixes are the accuracy-type keys drawn in the metrics panel
// (optionally followed by "/head" or "_head", e.g. "uar/att").
var metricPrefixes = []string{"acc", "accuracy", "uar", "war", "f1", "macro_f1", "mean_f1", "au_f1", "ccc", "ccc_v", "ccc_a", "precision", "recall", "top5"}

// isMetricKey reports whether k is an accuracy-type metric. Keys such as lr,
// time_s or throughput are neither losses nor metrics and are not drawn.
func isMetricKey(k string) bool {
	for _, p := range metricPrefixes {
		if k == p || strings.HasPrefix(k, p+"/") || strings.HasPrefix(k, p+"_") {
			return true
		}
	}
	return false
}

// Panel names used by LogSeries.
const (
	PanelLoss    = "loss"
	PanelMetrics = "accuracy / score"
)

// LogSeries turns metrics-log records into curves against the epoch: a
// loss panel (every loss key of every split) and a metrics panel (acc, uar,
// war, f1, ccc... of every split; see isMetricKey; "acc" is left out where
// a record's "war" holds the same value). Per-epoch records are
// placed at their epoch; when a split has several records for one epoch (a
// resumed run) the last one wins. "train_step" losses are placed at
// fractional epochs, (epoch-1) + fraction of that epoch's steps done, using
// the step counts of the per-epoch "train" records.
func LogSeries(recs []Record) []Series {
	type key struct{ split, name string }
	pts := map[key]map[float64]float64{}
	var order []key
	add := func(k key, x, y float64) {
		m, ok := pts[k]
		if !ok {
			m = map[float64]float64{}
			pts[k] = m
			order = append(order, k)
		}
		m[x] = y
	}

	// Step at the end of each epoch, from the per-epoch train records.
	endStep := map[int]int64{}
	for _, r := range recs {
		if r.Split == "train" {
			endStep[int(math.Round(r.Epoch))] = r.Step
		}
	}
	maxStepIn := map[int]int64{}
	for _, r := range recs {
		if r.Split == "train_step" {
			e := int(math.Round(r.Epoch))
			maxStepIn[e] = max(maxStepIn[e], r.Step)
		}
	}
	stepX := func(epoch float64, step int64) float64 {
		e := int(math.Round(epoch))
		start := endStep[e-1] // 0 before the first epoch
		end, ok := endStep[e]
		if !ok {
			if prev, ok2 := endStep[e-1]; ok2 && e-1 >= 1 {
				end = prev + (prev - endStep[e-2])
			} else {
				end = maxStepIn[e]
			}
		}
		if end <= start {
			return float64(e)
		}
		return float64(e-1) + float64(step-start)/float64(end-start)
	}

	for _, r := range recs {
		names := make([]string, 0, len(r.Values))
		for k := range r.Values {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			v := r.Values[k]
			if r.Split == "train_step" {
				if k == "loss" {
					add(key{r.Split, k}, stepX(r.Epoch, r.Step), v)
				}
				continue
			}
			if k == "acc" {
				if w, ok := r.Values["war"]; ok && (w == v || math.IsNaN(w) && math.IsNaN(v)) {
					continue // the trainer logs accuracy as both acc and war: one curve
				}
			}
			if isLossKey(k) || isMetricKey(k) {
				add(key{r.Split, k}, r.Epoch, v)
			}
		}
	}

	// Order: loss panel first; inside a panel train_step, train, val, test,
	// other splits; then by key.
	rank := map[string]int{"train_step": 0, "train": 1, "val": 2, "test": 3}
	splitRank := func(s string) int {
		if r, ok := rank[s]; ok {
			return r
		}
		return 4
	}
	slices.SortStableFunc(order, func(a, b key) int {
		la, lb := isLossKey(a.name), isLossKey(b.name)
		if la != lb {
			if la {
				return -1
			}
			return 1
		}
		if d := splitRank(a.split) - splitRank(b.split); d != 0 {
			return d
		}
		if a.split != b.split {
			return strings.Compare(a.split, b.split)
		}
		return strings.Compare(a.name, b.name)
	})

	var out []Series
	for _, k := range order {
		m := pts[k]
		xs := make([]float64, 0, len(m))
		for x := range m {
			xs = append(xs, x)
		}
		sort.Float64s(xs)
		s := Series{Panel: PanelMetrics, Name: k.split + " " + k.name, Split: k.split}
		if isLossKey(k.name) {
			s.Panel = PanelLoss
		}
		if k.split == "train_step" {
			s.Name = "train loss (per step)"
		}
		for _, x := range xs {
			s.X = append(s.X, x)
			s.Y = append(s.Y, m[x])
		}
		out = append(out, s)
	}
	return out
}

// CurvesFromLog draws the training curves of a run: run is the run
// directory (its metrics.jsonl is read) or the metrics log file itself; out
// is the figure path (.png, .svg or .pdf). The figure title is the run's
// directory name.
func CurvesFromLog(run, out string) error {
	logPath := run
	if st, err := os.Stat(run); err == nil && st.IsDir() {
		logPath = filepath.Join(run, MetricsLogName)
	}
	recs, err := ReadMetricsLog(logPath)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("metrics log %s: no records (has the run logged an epoch yet?)", logPath)
	}
	series := LogSeries(recs)
	if len(series) == 0 {
		return fmt.Errorf("metrics log %s: no loss or metric values to draw", logPath)
	}
	title := "training curves: " + filepath.Base(filepath.Dir(logPath))
	return Curves(out, title, series...)
}
