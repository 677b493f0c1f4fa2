package plots

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure geometry shared by every plot in the package.
const (
	// Width and Height are the size of a single-panel figure.
	Width  = 6 * vg.Inch
	Height = 5 * vg.Inch
	// DPI is the resolution of PNG output (SVG and PDF are vector).
	DPI = 150
)

// Font sizes: large enough to read a figure shrunk to one column of a paper.
const (
	titleSize  = vg.Length(13)
	labelSize  = vg.Length(12)
	tickSize   = vg.Length(10)
	legendSize = vg.Length(10)
)

// Formats lists the file extensions the plots can be written as.
var Formats = []string{".png", ".svg", ".pdf"}

// PixelSize is the size in pixels of a PNG written for a figure of w×h.
func PixelSize(w, h vg.Length) (int, int) {
	return int(w/vg.Inch*DPI + 0.5), int(h/vg.Inch*DPI + 0.5)
}

// newCanvas returns a canvas for the format chosen by path's extension.
func newCanvas(path string, w, h vg.Length) (vg.CanvasWriterTo, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png":
		c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI), vgimg.UseBackgroundColor(color.White))
		return vgimg.PngCanvas{Canvas: c}, nil
	case ".svg":
		return vgsvg.New(w, h), nil
	case ".pdf":
		return vgpdf.New(w, h), nil
	default:
		return nil, fmt.Errorf("unsupported file extension %q (use one of %s)", ext, strings.Join(Formats, ", "))
	}
}

// render draws a figure of size w×h with fn and writes it to path, the
// format chosen by the extension. The file is written to a temporary name
// and renamed, so a failed render leaves no partial file. gonum/plot panics
// on some degenerate inputs (e.g. an empty range); such a panic is returned
// as an error naming the path.
func render(path string, w, h vg.Length, fn func(dc draw.Canvas) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot %s: drawing failed: %v", path, r)
		}
	}()
	c, err := newCanvas(path, w, h)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := fn(draw.New(c)); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := writeAtomic(path, c); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, wt io.WriterTo) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(tmp)
	err = errors.Join(err, tmp.Chmod(0o644), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// newPlot returns a plot with the package's fonts and a title.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = titleSize
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Label.TextStyle.Font.Size = labelSize
	p.Y.Label.TextStyle.Font.Size = labelSize
	p.X.Tick.Label.Font.Size = tickSize
	p.Y.Tick.Label.Font.Size = tickSize
	p.Legend.TextStyle.Font.Size = legendSize
	return p
}

// drawWithLegend draws p with legend l placed in a column to the right of
// the plot area, outside the data, so dense scatters stay visible. The
// legend is vertically aligned with the top of the data area.
func drawWithLegend(dc draw.Canvas, p *plot.Plot, l plot.Legend) {
	r := l.Rectangle(dc)
	lw := r.Max.X - r.Min.X
	gap := vg.Points(8)
	pc := draw.Crop(dc, 0, -(lw + 2*gap), 0, 0)
	p.Draw(pc)
	data := p.DataCanvas(pc)
	lc := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: dc.Max.X - lw - gap, Y: data.Min.Y},
		Max: vg.Point{X: dc.Max.X - gap, Y: data.Max.Y},
	}}
	l.Top = true
	l.Left = true
	l.Draw(lc)
}

func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font.Size = legendSize
	l.Padding = vg.Points(2)
	return l
}

// classColors is ColorBrewer's Dark2: eight qualitative colours that all
// read well on white.
var classColors = func() []color.Color {
	p, err := brewer.GetPalette(brewer.TypeQualitative, "Dark2", 8)
	if err != nil { // cannot happen: Dark2 has an 8-colour variant
		return []color.Color{color.Black}
	}
	return p.Colors()
}()

// classGlyphs pairs with classColors; shapes make classes distinguishable
// in grey-scale print and for colour-blind readers.
var classGlyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.RingGlyph{},
	draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{},
}

// classStyle returns the colour and glyph of class k. Beyond eight classes
// the colours repeat with a different shape.
func classStyle(k int) (color.Color, draw.GlyphDrawer) {
	nc := len(classColors)
	return classColors[k%nc], classGlyphs[(k+k/nc)%len(classGlyphs)]
}

// className returns classes[k], or "class k" when no name is given.
func className(classes []string, k int) string {
	if k >= 0 && k < len(classes) && classes[k] != "" {
		return classes[k]
	}
	return fmt.Sprintf("class %d", k)
}
