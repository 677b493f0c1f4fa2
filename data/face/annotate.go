package face

import (
	"image"
	"image/color"
	"image/draw"

	"github.com/fer-research/fer/data/imaging"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Palette gives each track ID a colour (ID mod len).
var Palette = []color.RGBA{
	{230, 25, 75, 255}, {60, 180, 75, 255}, {255, 225, 25, 255}, {0, 130, 200, 255},
	{245, 130, 48, 255}, {145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255},
}

// ColorOf is the palette colour of an ID.
func ColorOf(id int) color.RGBA {
	if id < 0 {
		id = -id
	}
	return Palette[id%len(Palette)]
}

// rgbCanvas lets image/draw and x/image/font paint on a packed RGB image.
type rgbCanvas struct{ m *imaging.RGB }

func (c rgbCanvas) ColorModel() color.Model { return color.RGBAModel }
func (c rgbCanvas) Bounds() image.Rectangle { return c.m.Bounds() }
func (c rgbCanvas) At(x, y int) color.Color {
	if !(image.Point{x, y}).In(c.m.Bounds()) {
		return color.RGBA{}
	}
	p := c.m.Pix[3*(y*c.m.W+x):]
	return color.RGBA{p[0], p[1], p[2], 255}
}
func (c rgbCanvas) Set(x, y int, col color.Color) {
	if !(image.Point{x, y}).In(c.m.Bounds()) {
		return
	}
	r, g, b, _ := col.RGBA()
	p := c.m.Pix[3*(y*c.m.W+x):]
	p[0], p[1], p[2] = uint8(r>>8), uint8(g>>8), uint8(b>>8)
}

// fill paints r (clipped to the image) in col.
func fill(m *imaging.RGB, r image.Rectangle, col color.RGBA) {
	r = r.Intersect(m.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := m.Pix[3*(y*m.W+r.Min.X) : 3*(y*m.W+r.Max.X)]
		for i := 0; i < len(row); i += 3 {
			row[i], row[i+1], row[i+2] = col.R, col.G, col.B
		}
	}
}

// DrawBox outlines r with lines thick pixels wide (inside r).
func DrawBox(m *imaging.RGB, r image.Rectangle, col color.RGBA, thick int) {
	thick = max(thick, 1)
	fill(m, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+thick), col)
	fill(m, image.Rect(r.Min.X, r.Max.Y-thick, r.Max.X, r.Max.Y), col)
	fill(m, image.Rect(r.Min.X, r.Min.Y, r.Min.X+thick, r.Max.Y), col)
	fill(m, image.Rect(r.Max.X-thick, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// DrawPoints marks points with small squares.
func DrawPoints(m *imaging.RGB, pts []Point, col color.RGBA) {
	for _, p := range pts {
		x, y := int(p.X+0.5), int(p.Y+0.5)
		fill(m, image.Rect(x-1, y-1, x+2, y+2), col)
	}
}

// DrawLabel writes text (7×13 pixel font) on a filled background whose
// top-left corner is at (x, y), moved inside the image when needed.
func DrawLabel(m *imaging.RGB, x, y int, text string, fg, bg color.RGBA) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, text).Ceil() + 4
	h := face.Height + 2
	x = min(max(x, 0), max(m.W-w, 0))
	y = min(max(y, 0), max(m.H-h, 0))
	fill(m, image.Rect(x, y, x+w, y+h), bg)
	d := font.Drawer{Dst: rgbCanvas{m}, Src: image.NewUniform(fg), Face: face,
		Dot: fixed.P(x+2, y+1+face.Ascent)}
	d.DrawString(text)
}

var _ draw.Image = rgbCanvas{}
