package plots

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"

	xdraw "golang.org/x/image/draw"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CAM is a class-activation map (Grad-CAM): W×H values in [0,1],
// row-major, top row first, as computed by the models/gradcam package.
type CAM struct {
	W, H int
	V    []float64
}

func (m *CAM) check() error {
	if m.W < 1 || m.H < 1 {
		return fmt.Errorf("CAM is %d×%d", m.W, m.H)
	}
	if len(m.V) != m.W*m.H {
		return fmt.Errorf("CAM of %d×%d has %d values", m.W, m.H, len(m.V))
	}
	for i, v := range m.V {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("CAM value %d is %v", i, v)
		}
	}
	return nil
}

// Resize returns m resampled to w×h with golang.org/x/image/draw's
// bilinear kernel (values are clamped to [0,1] and quantised to 16 bits,
// far below what a colour map shows).
func (m *CAM) Resize(w, h int) (*CAM, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if w == m.W && h == m.H {
		return &CAM{W: w, H: h, V: append([]float64(nil), m.V...)}, nil
	}
	src := image.NewGray16(image.Rect(0, 0, m.W, m.H))
	for i, v := range m.V {
		src.SetGray16(i%m.W, i/m.W, color.Gray16{Y: uint16(math.Round(clamp01(v) * 0xffff))})
	}
	dst := image.NewGray16(image.Rect(0, 0, w, h))
	xdraw.BiLinear.Scale(dst, dst.Rect, src, src.Rect, xdraw.Src, nil)
	out := &CAM{W: w, H: h, V: make([]float64, w*h)}
	for i := range out.V {
		out.V[i] = float64(dst.Gray16At(i%w, i/w).Y) / 0xffff
	}
	return out, nil
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

// camColors is the heat-map colour scale: an HSV rainbow from blue (0)
// through cyan, green and yellow to red (1), the "jet" look Grad-CAM
// figures use (gonum has no jet; its Rainbow between these hues is the
// same sequence of hues).
var camColors = palette.Rainbow(256, palette.Blue, palette.Red, 1, 1, 1).Colors()

// camColor returns the colour of a CAM value v in [0,1].
func camColor(v float64) color.NRGBA {
	i := int(math.Round(clamp01(v) * float64(len(camColors)-1)))
	return color.NRGBAModel.Convert(camColors[i]).(color.NRGBA)
}

// DefaultCAMAlpha is the opacity of the heat map at CAM value 1.
const DefaultCAMAlpha = 0.55

// Overlay blends the heat map of m (resized bilinearly to the image) over
// img and returns the result. The heat map's opacity grows with the value,
// alpha·(0.35 + 0.65·v), so cold regions stay readable and the hot ones
// stand out. alpha <= 0 means DefaultCAMAlpha.
func Overlay(img image.Image, m *CAM, alpha float64) (*image.RGBA, error) {
	if img == nil {
		return nil, fmt.Errorf("overlay: no image")
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("overlay: empty image")
	}
	if alpha <= 0 {
		alpha = DefaultCAMAlpha
	}
	alpha = math.Min(alpha, 1)
	r, err := m.Resize(b.Dx(), b.Dy())
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			v := r.V[y*r.W+x]
			c := camColor(v)
			a := alpha * (0.35 + 0.65*clamp01(v))
			pr, pg, pb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			mix := func(p uint32, q uint8) uint8 {
				return uint8(math.Round((1-a)*float64(p>>8) + a*float64(q)))
			}
			out.SetRGBA(x, y, color.RGBA{mix(pr, c.R), mix(pg, c.G), mix(pb, c.B), 255})
		}
	}
	return out, nil
}

// CAMPanel is one tile of a Grad-CAM figure.
type CAMPanel struct {
	// Image is the input as shown (any size; all panels of a figure
	// should have the same aspect ratio).
	Image image.Image
	// CAM is drawn over Image; nil shows the image alone (e.g. the
	// input next to its overlay).
	CAM *CAM
	// Caption is printed above the tile.
	Caption string
}

// Layout of a Grad-CAM figure.
const (
	camMargin    = vg.Length(0.08 * vg.Inch)
	camCaptionH  = vg.Length(0.28 * vg.Inch)
	camTitleLine = vg.Length(0.26 * vg.Inch)
	camBarW      = vg.Length(0.95 * vg.Inch)
)

// camTileWidth is the width of one tile: large for a few panels, smaller
// for the frames of a clip.
func camTileWidth(cols int) vg.Length {
	if cols <= 3 {
		return 2.4 * vg.Inch
	}
	return 1.3 * vg.Inch
}

// camLayout returns the number of columns used for n panels (cols <= 0:
// all in one row up to 8 per row).
func camLayout(n, cols int) (c, rows int) {
	if cols <= 0 {
		cols = min(n, 8)
	}
	cols = max(1, min(cols, n))
	return cols, (n + cols - 1) / cols
}

// GradCAMSize is the size of a Grad-CAM figure of n panels in cols columns
// (cols <= 0: up to 8 per row) whose images have height/width ratio
// aspect, with a title of titleLines lines.
func GradCAMSize(n, cols int, aspect float64, titleLines int) (w, h vg.Length) {
	c, rows := camLayout(n, cols)
	tw := camTileWidth(c)
	th := vg.Length(aspect)*tw + camCaptionH
	w = 2*camMargin + vg.Length(c)*tw + vg.Length(c-1)*camMargin + camBarW
	h = 2*camMargin + vg.Length(titleLines)*camTitleLine + vg.Length(rows)*th + vg.Length(rows-1)*camMargin
	return w, h
}

// GradCAMFigure draws panels in a grid (cols per row; 0: up to 8) under
// title (may hold several lines), each panel its image with the heat map
// over it and its caption above, and a colour bar of the CAM scale on the
// right, and writes it to path (.png, .svg or .pdf). alpha is the heat-map
// opacity (Overlay).
func GradCAMFigure(path, title string, panels []CAMPanel, cols int, alpha float64) error {
	if len(panels) == 0 {
		return fmt.Errorf("plot %s: no Grad-CAM panels", path)
	}
	imgs := make([]image.Image, len(panels))
	c, _ := camLayout(len(panels), cols)
	tw := camTileWidth(c)
	var aspect float64
	for i, p := range panels {
		if p.Image == nil || p.Image.Bounds().Empty() {
			return fmt.Errorf("plot %s: panel %d has no image", path, i)
		}
		if i == 0 { // the tiles take the first image's aspect ratio
			b := p.Image.Bounds()
			aspect = float64(b.Dy()) / float64(b.Dx())
		}
	}
	tileW, tileH := PixelSize(tw, vg.Length(aspect)*tw)
	for i, p := range panels {
		imgs[i] = tileImage(p.Image, tileW, tileH)
		if p.CAM != nil {
			o, err := Overlay(imgs[i], p.CAM, alpha)
			if err != nil {
				return fmt.Errorf("plot %s: panel %d: %w", path, i, err)
			}
			imgs[i] = o
		}
	}
	var lines []string
	if title != "" {
		lines = strings.Split(title, "\n")
	}
	w, h := GradCAMSize(len(panels), cols, aspect, len(lines))
	ih := vg.Length(aspect) * tw

	sty := newPlot("", "", "")
	titleSty := sty.Title.TextStyle
	titleSty.XAlign, titleSty.YAlign = draw.XCenter, draw.YCenter
	capSty := sty.X.Label.TextStyle
	capSty.Font.Size = tickSize
	if c <= 3 {
		capSty.Font.Size = labelSize
	}
	capSty.XAlign, capSty.YAlign = draw.XCenter, draw.YCenter
	for _, p := range panels { // one size for all captions, the longest fitting
		capSty = fitText(capSty, p.Caption, tw)
	}

	return render(path, w, h, func(dc draw.Canvas) error {
		top := dc.Max.Y - camMargin
		body := dc.Min.X + camMargin + (vg.Length(c)*tw+vg.Length(c-1)*camMargin)/2
		for _, ln := range lines {
			ts := titleSty
			if ln != lines[0] {
				ts.Font.Size = labelSize
			}
			dc.FillText(ts, vg.Point{X: body, Y: top - camTitleLine/2}, ln)
			top -= camTitleLine
		}
		for i, img := range imgs {
			row, col := i/c, i%c
			x0 := dc.Min.X + camMargin + vg.Length(col)*(tw+camMargin)
			y1 := top - vg.Length(row)*(ih+camCaptionH+camMargin)
			dc.FillText(capSty, vg.Point{X: x0 + tw/2, Y: y1 - camCaptionH/2}, panels[i].Caption)
			dc.DrawImage(vg.Rectangle{Min: vg.Point{X: x0, Y: y1 - camCaptionH - ih}, Max: vg.Point{X: x0 + tw, Y: y1 - camCaptionH}}, img)
		}
		// Colour bar: its own small plot so the scale gets a proper axis.
		bar := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: dc.Max.X - camBarW, Y: top - vg.Length(min(2, (len(imgs)+c-1)/c))*ih - camCaptionH},
			Max: vg.Point{X: dc.Max.X - camMargin, Y: top - camCaptionH},
		}}
		colorBarPlot().Draw(bar)
		return nil
	})
}

// tileImage scales img to exactly the w×h pixels its tile covers in a
// PNG, so the image is drawn 1:1: enlarged with nearest-neighbour sampling
// (the input's pixels stay crisp, as the model sees them, and the heat
// map is blended at the finer resolution), reduced with x/image's
// antialiasing bilinear kernel. Without this the renderer would resample
// bilinearly, blurring the pixels and tripling the PNG size.
func tileImage(img image.Image, w, h int) image.Image {
	b := img.Bounds()
	if w < 1 || h < 1 || (b.Dx() == w && b.Dy() == h) {
		return img
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	var k xdraw.Interpolator = xdraw.NearestNeighbor
	if b.Dx() > w || b.Dy() > h {
		k = xdraw.BiLinear
	}
	k.Scale(dst, dst.Rect, img, b, xdraw.Src, nil)
	return dst
}

// fitText shrinks sty's font until s fits in width w (down to 6 pt).
func fitText(sty text.Style, s string, w vg.Length) text.Style {
	for sty.Font.Size > 6 && sty.Width(s) > w {
		sty.Font.Size -= 0.5
	}
	return sty
}

// colorBarPlot is a narrow plot showing the CAM colour scale 0…1.
func colorBarPlot() *plot.Plot {
	p := newPlot("", "", "Grad-CAM")
	p.Y.Label.TextStyle.Font.Size = tickSize
	img := image.NewNRGBA(image.Rect(0, 0, 1, len(camColors)))
	for i := range camColors {
		img.Set(0, len(camColors)-1-i, camColors[i])
	}
	p.Add(plotter.NewImage(img, 0, 0, 1, 1))
	p.HideX()
	p.Y.Min, p.Y.Max = 0, 1
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.5, Label: "0.5"}, {Value: 1, Label: "1"}}
	return p
}
