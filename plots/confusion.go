package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"github.com/fer-research/fer/fer/metrics"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// confusionGrid exposes a row-normalised confusion matrix as a heat-map
// grid: column c is the predicted class c, grid row r is the true class
// n-1-r so that class 0 is drawn at the top, as in printed tables. Rows of
// classes without true samples are NaN (drawn grey).
type confusionGrid struct {
	norm [][]float64
}

func (g confusionGrid) Dims() (c, r int)   { return len(g.norm), len(g.norm) }
func (g confusionGrid) Z(c, r int) float64 { return g.norm[len(g.norm)-1-r][c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// bluesPalette is a white→dark-blue ramp with luminance linear in the value
// (ColorBrewer "Blues" as control points, interpolated by moreland).
func bluesPalette(n int) (palette.Palette, error) {
	b, err := brewer.GetPalette(brewer.TypeSequential, "Blues", 9)
	if err != nil {
		return nil, err
	}
	ctrl := slices.Clone(b.Colors())
	slices.Reverse(ctrl) // dark → light: NewLuminance wants increasing luminance
	cm, err := moreland.NewLuminance(ctrl)
	if err != nil {
		return nil, err
	}
	cm.SetMin(0)
	cm.SetMax(1)
	// Reverse the colours here: in gonum/plot v0.17.0,
	// palette.Reverse(cm).Palette(n) never copies the middle colour when n
	// is odd, leaving it nil (such cells are not drawn).
	cols := slices.Clone(cm.Palette(n).Colors())
	slices.Reverse(cols)
	return colorList(cols), nil
}

// colorList is a palette.Palette made of a colour slice.
type colorList []color.Color

func (c colorList) Colors() []color.Color { return c }

// Confusion draws the row-normalised confusion matrix c as a heat map
// (true class on the Y axis, top to bottom; predicted class on the X axis),
// each cell labelled with its percentage of the true class, and writes it to
// path (.png, .svg or .pdf). The title gets a second line with WAR, UAR and
// the sample count. classes names the classes (numbers are used where it is
// short); rows of classes with no true samples are grey.
func Confusion(path string, c *metrics.Confusion, classes []string, title string) error {
	if c == nil || c.NumClasses() == 0 {
		return fmt.Errorf("plot %s: empty confusion matrix", path)
	}
	if c.Total() == 0 {
		return fmt.Errorf("plot %s: confusion matrix has no samples", path)
	}
	n := c.NumClasses()
	norm := c.Normalized()
	sup := c.Support()
	for t := range norm {
		if sup[t] == 0 {
			for p := range norm[t] {
				norm[t][p] = math.NaN()
			}
		}
	}
	pal, err := bluesPalette(101)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}

	full := fmt.Sprintf("WAR %.2f%%  ·  UAR %.2f%%  ·  N = %d", 100*c.WAR(), 100*c.UAR(), c.Total())
	if title != "" {
		full = title + "\n" + full
	}
	p := newPlot(full, "Predicted class  (cells: % of the true class)", "True class")

	hm := plotter.NewHeatMap(confusionGrid{norm}, pal)
	hm.Min, hm.Max = 0, 1
	hm.NaN = color.Gray{Y: 0xdd}
	p.Add(hm)

	// Cell texts. The font shrinks for many classes so "100.0" fits a cell.
	fs := vg.Length(10)
	if n > 8 {
		fs = vg.Length(math.Max(5, 10*8/float64(n)))
	}
	lab, err := cellLabels(p, n, fs, func(t, q int) (string, bool) {
		v := norm[t][q]
		if math.IsNaN(v) {
			return "–", false
		}
		return fmt.Sprintf("%.1f", 100*v), v > 0.55
	})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	p.Add(lab)

	xnames := make([]string, n)
	ynames := make([]string, n)
	for k := 0; k < n; k++ {
		xnames[k] = className(classes, k)
		ynames[n-1-k] = className(classes, k)
	}
	p.NominalX(xnames...)
	p.NominalY(ynames...)
	// Rotate the predicted-class names when they would collide.
	maxw := vg.Length(0)
	for _, s := range xnames {
		maxw = max(maxw, p.X.Tick.Label.Width(s))
	}
	if cell := (Width - 1.5*vg.Inch) / vg.Length(n); maxw > cell*0.9 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YTop
	}

	w, h := ConfusionSize(n)
	return render(path, w, h, func(dc draw.Canvas) error {
		p.Draw(dc)
		return nil
	})
}

// cellLabels writes the text of every cell of an n×n heat map (row 0 at
// the top) in font size fs; cell(row, col) gives the text and whether the
// cell is dark (white text).
func cellLabels(p *plot.Plot, n int, fs vg.Length, cell func(row, col int) (string, bool)) (*plotter.Labels, error) {
	var xys plotter.XYs
	var labels []string
	var styles []text.Style
	for r := 0; r < n; r++ {
		for c := 0; c < n; c++ {
			s, dark := cell(r, c)
			sty := text.Style{
				Color:   color.Black,
				Font:    p.X.Tick.Label.Font,
				XAlign:  draw.XCenter,
				YAlign:  draw.YCenter,
				Handler: plot.DefaultTextHandler,
			}
			sty.Font.Size = fs
			if dark {
				sty.Color = color.White
			}
			xys = append(xys, plotter.XY{X: float64(c), Y: float64(n - 1 - r)})
			labels = append(labels, s)
			styles = append(styles, sty)
		}
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	lab.TextStyle = styles
	return lab, nil
}

// ConfusionSize is the figure size for n classes: square-ish cells for
// many classes.
func ConfusionSize(n int) (w, h vg.Length) {
	if n > 8 {
		return Width, Width
	}
	return Width, Height
}

// ConfusionCounts is Confusion for a raw count table (rows = true class,
// columns = predicted class).
func ConfusionCounts(path string, counts [][]int64, classes []string, title string) error {
	c, err := metrics.ConfusionFromCounts(counts)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return Confusion(path, c, classes, title)
}
