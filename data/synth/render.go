package synth

// Rendering uses git.sr.ht/~sbinet/gg, the maintained fork of
// github.com/fogleman/gg that gonum/plot already pins in our module graph
// (v0.7.0), so it adds no new dependency. It gives anti-aliased fills and
// strokes with round caps/joins, affine transforms (our in-plane head
// rotation, scale and offset) and clip masks (iris inside the eye, teeth
// inside the mouth) on top of the freetype rasteriser; golang.org/x/image/vector
// only fills paths, so strokes, transforms and clipping would have to be
// written by hand.

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"git.sr.ht/~sbinet/gg"
)

type rgb [3]float64

func (c rgb) scale(f float64) rgb { return rgb{c[0] * f, c[1] * f, c[2] * f} }

func (c rgb) mix(d rgb, t float64) rgb {
	return rgb{c[0] + t*(d[0]-c[0]), c[1] + t*(d[1]-c[1]), c[2] + t*(d[2]-c[2])}
}

func (c rgb) nrgba(alpha float64) color.NRGBA {
	q := func(v float64) uint8 { return uint8(math.Round(255 * clamp(v, 0, 1))) }
	return color.NRGBA{q(c[0]), q(c[1]), q(c[2]), q(alpha)}
}

// pose is the in-plane head placement: offset (fractions of the image side),
// scale factor and rotation (radians).
type pose struct{ dx, dy, scale, rot float64 }

// blob is one background clutter shape (image coordinates in [0,1]).
type blob struct {
	x, y, rx, ry, alpha float64
	col                 rgb
	rect                bool
}

// identity is everything about a sample that is not the expression: it is
// fixed within a clip.
type identity struct {
	aspect                       float64 // face width / height
	skin, hair, bg, clothes, lip rgb
	iris, glassCol               rgb
	hairStyle                    int // 0 bald/short crop, 1 fringe, 2 long, 3 side part
	hairline                     float64
	eyeSep, eyeY, eyeW           float64
	browY, browThick             float64
	noseLen                      float64
	mouthY, mouthW, lipThick     float64
	glasses                      bool
	restInner, restOuter         float64 // resting brow offsets (signed)
	restCurve                    float64 // resting mouth-corner offset (signed)
	sneerSide                    float64 // ±1: side of the asymmetric upper-lip raise
	teeth                        bool    // shows teeth whenever the mouth is open
	gazeX, gazeY                 float64
	clutter                      []blob
	lightGain, lightDir, bright  float64
	cast                         rgb
	base                         pose
	motionAmp                    pose
	motionPhase                  [4]float64
}

var (
	skinLight = rgb{0.98, 0.84, 0.72}
	skinDark  = rgb{0.36, 0.23, 0.15}
	hairTones = []rgb{
		{0.08, 0.06, 0.05}, {0.25, 0.15, 0.08}, {0.45, 0.30, 0.15},
		{0.85, 0.70, 0.40}, {0.60, 0.25, 0.10}, {0.65, 0.65, 0.65},
	}
	irisTones = []rgb{{0.30, 0.18, 0.08}, {0.15, 0.10, 0.06}, {0.25, 0.45, 0.70}, {0.30, 0.50, 0.30}}
)

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

func randomColor(rng *rand.Rand, lo, hi float64) rgb {
	return rgb{uniform(rng, lo, hi), uniform(rng, lo, hi), uniform(rng, lo, hi)}
}

func newIdentity(rng *rand.Rand) *identity {
	id := &identity{}
	id.aspect = uniform(rng, 0.72, 0.92)
	id.skin = skinLight.mix(skinDark, rng.Float64()).mix(randomColor(rng, 0.3, 0.9), 0.08)
	id.hair = hairTones[rng.IntN(len(hairTones))].mix(randomColor(rng, 0, 1), 0.1)
	id.bg = randomColor(rng, 0.1, 0.95)
	id.clothes = randomColor(rng, 0.05, 0.95)
	id.lip = id.skin.mix(rgb{0.70, 0.25, 0.25}, uniform(rng, 0.35, 0.6)).scale(0.85)
	id.iris = irisTones[rng.IntN(len(irisTones))]
	id.glassCol = randomColor(rng, 0, 0.4)
	id.hairStyle = rng.IntN(4)
	id.hairline = uniform(rng, 0.55, 0.72)
	id.eyeSep = uniform(rng, 0.29, 0.36)
	id.eyeY = uniform(rng, -0.16, -0.08)
	id.eyeW = uniform(rng, 0.13, 0.16)
	id.browY = id.eyeY - uniform(rng, 0.18, 0.22)
	id.browThick = uniform(rng, 0.05, 0.075)
	id.noseLen = rng.Float64()
	id.mouthY = uniform(rng, 0.44, 0.52)
	id.mouthW = uniform(rng, 0.19, 0.25)
	id.lipThick = uniform(rng, 0.03, 0.05)
	id.glasses = rng.Float64() < 0.15
	id.restInner = 0.025 * rng.NormFloat64()
	id.restOuter = 0.02 * rng.NormFloat64()
	id.restCurve = 0.02 * rng.NormFloat64()
	id.sneerSide = 1
	if rng.IntN(2) == 0 {
		id.sneerSide = -1
	}
	id.teeth = rng.Float64() < 0.2
	id.gazeX = 0.02 * rng.NormFloat64()
	id.gazeY = 0.01 * rng.NormFloat64()
	n := 2 + rng.IntN(5)
	id.clutter = make([]blob, n)
	for i := range id.clutter {
		id.clutter[i] = blob{
			x: rng.Float64(), y: rng.Float64(),
			rx: uniform(rng, 0.05, 0.3), ry: uniform(rng, 0.05, 0.3),
			alpha: uniform(rng, 0.2, 0.7), col: randomColor(rng, 0, 1),
			rect: rng.IntN(2) == 0,
		}
	}
	id.lightGain = uniform(rng, 0, 0.8)
	id.lightDir = uniform(rng, 0, 2*math.Pi)
	id.bright = uniform(rng, 0.75, 1.15)
	id.cast = rgb{1 + 0.04*rng.NormFloat64(), 1 + 0.04*rng.NormFloat64(), 1 + 0.04*rng.NormFloat64()}
	id.base = pose{
		dx:    uniform(rng, -0.04, 0.04),
		dy:    uniform(rng, -0.04, 0.04),
		scale: uniform(rng, 0.9, 1.08),
		rot:   clamp(0.07*rng.NormFloat64(), -0.18, 0.18),
	}
	id.motionAmp = pose{
		dx:    uniform(rng, 0, 0.02),
		dy:    uniform(rng, 0, 0.015),
		scale: uniform(rng, 0, 0.02),
		rot:   uniform(rng, 0, 0.05),
	}
	for i := range id.motionPhase {
		id.motionPhase[i] = uniform(rng, 0, 2*math.Pi)
	}
	return id
}

// poseAt is the head pose at frame t of T: the identity's base pose plus a
// slow sinusoidal drift and a little per-frame jitter.
func (id *identity) poseAt(t, T int, rng *rand.Rand) pose {
	if T <= 1 {
		return id.base
	}
	ph := 2 * math.Pi * float64(t) / float64(T)
	a := id.motionAmp
	return pose{
		dx:    id.base.dx + a.dx*math.Sin(ph+id.motionPhase[0]) + 0.003*rng.NormFloat64(),
		dy:    id.base.dy + a.dy*math.Sin(ph+id.motionPhase[1]) + 0.003*rng.NormFloat64(),
		scale: id.base.scale * (1 + a.scale*math.Sin(ph+id.motionPhase[2])),
		rot:   id.base.rot + a.rot*math.Sin(ph+id.motionPhase[3]) + 0.005*rng.NormFloat64(),
	}
}

// painter wraps a gg context with the face-space transform: the face is an
// ellipse centred at the origin with half-height 1 (y grows downwards).
type painter struct {
	dc   *gg.Context
	unit float64 // pixels per face unit
}

func (p *painter) fill(c rgb, alpha float64) {
	p.dc.SetColor(c.nrgba(alpha))
	p.dc.Fill()
}

// stroke strokes the current path; width is in face units.
func (p *painter) stroke(c rgb, alpha, width float64) {
	p.dc.SetColor(c.nrgba(alpha))
	p.dc.SetLineWidth(width * p.unit)
	p.dc.Stroke()
}

// quad draws a quadratic curve from a to b whose midpoint is mid.
func (p *painter) quad(ax, ay, mx, my, bx, by float64) {
	p.dc.MoveTo(ax, ay)
	p.dc.QuadraticTo(2*mx-(ax+bx)/2, 2*my-(ay+by)/2, bx, by)
}

// taper fills a tapered stroke along the quadratic a–mid–b: half-width wa at
// a, wb at b (face units). Used for eyebrows.
func (p *painter) taper(ax, ay, mx, my, bx, by, wa, wb float64) {
	cx, cy := 2*mx-(ax+bx)/2, 2*my-(ay+by)/2
	const n = 10
	var xs, ys, nx, ny [n + 1]float64
	for i := 0; i <= n; i++ {
		t := float64(i) / n
		u := 1 - t
		xs[i] = u*u*ax + 2*u*t*cx + t*t*bx
		ys[i] = u*u*ay + 2*u*t*cy + t*t*by
		tx := 2*u*(cx-ax) + 2*t*(bx-cx)
		ty := 2*u*(cy-ay) + 2*t*(by-cy)
		l := math.Hypot(tx, ty)
		if l == 0 {
			l = 1
		}
		w := wa + (wb-wa)*t
		nx[i], ny[i] = -ty/l*w, tx/l*w
	}
	p.dc.NewSubPath()
	p.dc.MoveTo(xs[0]+nx[0], ys[0]+ny[0])
	for i := 1; i <= n; i++ {
		p.dc.LineTo(xs[i]+nx[i], ys[i]+ny[i])
	}
	for i := n; i >= 0; i-- {
		p.dc.LineTo(xs[i]-nx[i], ys[i]-ny[i])
	}
	p.dc.ClosePath()
}

// mouthCurve appends a cubic lip curve from (x0,y0) to (x1,y1) whose
// midpoint lies at height ymid; k sets how boxy the curve is and lift raises
// the left/right control points (asymmetric sneer).
func (p *painter) mouthCurve(x0, y0, x1, y1, ymid, k, liftL, liftR float64, move bool) {
	yc := (8*ymid - y0 - y1) / 6
	if move {
		p.dc.MoveTo(x0, y0)
	}
	cxL, cxR := x0+(x1-x0)*(1-k)/2, x1-(x1-x0)*(1-k)/2
	p.dc.CubicTo(cxL, yc-liftL, cxR, yc-liftR, x1, y1)
}

// render draws one frame of identity id with action controls a at pose ps
// into a new size×size image, then applies lighting and Gaussian noise
// (noise std on the [0,1] scale).
func render(size int, id *identity, a *[NumActions]float64, ps pose, noise float64, rng *rand.Rand) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	dc := gg.NewContextForRGBA(img)
	S := float64(size)
	dc.SetLineCapRound()
	dc.SetLineJoinRound()

	// Background and clutter, in image coordinates.
	dc.SetColor(id.bg.nrgba(1))
	dc.Clear()
	for _, b := range id.clutter {
		if b.rect {
			dc.DrawRectangle((b.x-b.rx)*S, (b.y-b.ry)*S, 2*b.rx*S, 2*b.ry*S)
		} else {
			dc.DrawEllipse(b.x*S, b.y*S, b.rx*S, b.ry*S)
		}
		dc.SetColor(b.col.nrgba(b.alpha))
		dc.Fill()
	}

	p := &painter{dc: dc, unit: 0.37 * S * ps.scale}
	dc.Translate(S*(0.5+ps.dx), S*(0.47+ps.dy))
	dc.Rotate(ps.rot)
	dc.Scale(p.unit, p.unit)
	drawHead(p, id, a)
	dc.Identity()

	postProcess(img, id, noise, rng)
	return img
}

func drawHead(p *painter, id *identity, a *[NumActions]float64) {
	dc := p.dc
	rx := 0.8 * id.aspect
	skinShade := id.skin.scale(0.82)
	line := id.skin.scale(0.45)

	// Shoulders and neck.
	dc.DrawEllipse(0, 1.85, 1.4, 0.8)
	p.fill(id.clothes, 1)
	dc.DrawRectangle(-0.3*rx/0.8, 0.5, 0.6*rx/0.8, 0.9)
	p.fill(skinShade, 1)

	// Hair behind the head.
	hairBack := func() {
		if id.hairStyle == 2 {
			dc.DrawRoundedRectangle(-rx-0.17, -1.12, 2*rx+0.34, 2.0, 0.5)
		} else {
			dc.DrawEllipse(0, -0.1, rx+0.08, 1.02)
		}
	}
	if id.hairStyle != 0 {
		hairBack()
		p.fill(id.hair, 1)
	}

	// Ears and face.
	for _, s := range []float64{-1, 1} {
		dc.DrawEllipse(s*(rx-0.02), -0.02, 0.1, 0.17)
		p.fill(skinShade, 1)
	}
	dc.DrawEllipse(0, 0, rx, 1)
	p.fill(id.skin, 1)

	// Forehead wrinkles from raised brows (drawn before the fringe, which
	// may hide them).
	fw := clamp((a[ActInnerBrowRaise]+a[ActOuterBrowRaise])/2-0.25, 0, 1)
	if fw > 0 {
		for j := 0; j < 2; j++ {
			y := id.browY - 0.2 - 0.07*float64(j)
			p.quad(-0.25, y+0.01, 0, y-0.02, 0.25, y+0.01)
			p.stroke(line, 0.5*fw, 0.014)
		}
	}

	// Hair on the forehead, clipped to the hair mass behind the head so
	// the fringe follows the skull.
	if id.hairStyle == 0 {
		dc.DrawEllipticalArc(0, -0.15, rx+0.01, 0.88, math.Pi, 2*math.Pi)
		dc.ClosePath()
		p.stroke(id.hair, 0.5, 0.06)
	} else {
		hairBack()
		dc.Clip()
		h := id.hairline
		if id.hairStyle == 3 { // side part: a swept fringe
			dc.MoveTo(-rx-0.1, -0.15)
			dc.CubicTo(-rx+0.1, -h-0.05, -0.2, -h+0.02, 0.2, -h-0.1)
			dc.CubicTo(0.5, -h-0.03, rx-0.1, -h+0.05, rx+0.1, -0.25)
			dc.LineTo(rx+0.1, -1.3)
			dc.LineTo(-rx-0.1, -1.3)
			dc.ClosePath()
		} else { // straight or rounded fringe
			dc.MoveTo(-rx-0.1, -0.2)
			dc.CubicTo(-rx+0.1, -h+0.02, -0.3, -h, 0, -h)
			dc.CubicTo(0.3, -h, rx-0.1, -h+0.02, rx+0.1, -0.2)
			dc.LineTo(rx+0.1, -1.3)
			dc.LineTo(-rx-0.1, -1.3)
			dc.ClosePath()
		}
		p.fill(id.hair, 1)
		dc.ResetClip()
	}

	// Mouth geometry is needed by the cheeks and folds too.
	au := func(k int) float64 { return a[k] }
	mw := id.mouthW * (1 + 0.22*au(ActLipCornerPull) + 0.38*au(ActLipStretch) - 0.3*au(ActLipPress) - 0.08*au(ActJawDrop))
	mw = math.Max(mw, 0.1)
	cornerY := id.mouthY - 0.10*au(ActLipCornerPull) + 0.09*au(ActLipCornerDepress) + 0.015*au(ActLipStretch) + id.restCurve
	gap := lipGap(a)
	open := gap - 0.05*au(ActUpperLipRaise) // opening below the raised upper lip
	lowerY := id.mouthY + 0.65*open
	upperY := lowerY - gap

	// Cheeks: blush lifts with AU6.
	cheek := au(ActCheekRaise)
	for _, s := range []float64{-1, 1} {
		dc.DrawCircle(s*0.45*rx/0.72, 0.22-0.06*cheek, 0.14)
		p.fill(rgb{0.9, 0.35, 0.35}, 0.05+0.2*clamp(cheek, 0, 1))
	}

	// Nasolabial folds deepen with smiles, sneers, stretch and cheek raise.
	tipY := 0.17 + 0.1*id.noseLen
	fold := 0.05 + 0.55*clamp(math.Max(math.Max(au(ActLipCornerPull), au(ActUpperLipRaise)),
		math.Max(0.7*au(ActNoseWrinkle), math.Max(0.5*cheek, 0.5*au(ActLipStretch)))), 0, 1)
	for _, s := range []float64{-1, 1} {
		p.quad(s*0.1, tipY-0.02, s*(mw+0.06), (tipY+cornerY)/2, s*(mw+0.05), cornerY)
		p.stroke(line, fold, 0.016)
	}

	drawEyes(p, id, a, line)
	drawBrows(p, id, a, line)

	// Nose: bridge shading, wrinkles (AU9), tip and nostrils.
	nw := au(ActNoseWrinkle)
	p.quad(0.035, id.eyeY+0.05, 0.05, (id.eyeY+tipY)/2, 0.07, tipY-0.06)
	p.stroke(line, 0.25, 0.014)
	if nw > 0.05 {
		for j := 0; j < 3; j++ {
			y := id.eyeY + 0.04 + 0.035*float64(j)
			p.quad(-0.07, y+0.01, 0, y-0.012, 0.07, y+0.01)
			p.stroke(line, 0.85*clamp(nw, 0, 1), 0.014)
		}
		for _, s := range []float64{-1, 1} {
			p.quad(s*0.07, id.eyeY+0.07, s*0.1, id.eyeY+0.11, s*0.1, id.eyeY+0.16)
			p.stroke(line, 0.6*clamp(nw, 0, 1), 0.012)
		}
	}
	lift := 0.035*nw + 0.025*au(ActUpperLipRaise)
	p.quad(-0.085, tipY-0.02-lift, 0, tipY+0.035-lift, 0.085, tipY-0.02-lift)
	p.stroke(line, 0.55, 0.02)
	for _, s := range []float64{-1, 1} {
		dc.DrawEllipse(s*(0.05+0.015*nw), tipY-lift+0.005, 0.024+0.006*nw, 0.014)
		p.fill(line.scale(0.6), 0.7)
	}

	// Glabella furrows (AU4).
	if bl := au(ActBrowLower); bl > 0.05 {
		for _, s := range []float64{-1, 1} {
			p.quad(s*0.03, id.browY+0.03, s*0.022, id.browY+0.08, s*0.03, id.browY+0.13)
			p.stroke(line, 0.75*clamp(bl, 0, 1), 0.014)
		}
	}

	drawMouth(p, id, a, mw, cornerY, upperY, lowerY, open, line)

	if id.glasses {
		for _, s := range []float64{-1, 1} {
			dc.DrawRoundedRectangle(s*id.eyeSep-id.eyeW-0.05, id.eyeY-0.11, 2*id.eyeW+0.1, 0.21, 0.06)
			dc.SetColor(rgb{0.8, 0.9, 1}.nrgba(0.12))
			dc.FillPreserve()
			p.stroke(id.glassCol, 1, 0.028)
		}
		p.quad(-id.eyeSep+id.eyeW+0.05, id.eyeY-0.03, 0, id.eyeY-0.06, id.eyeSep-id.eyeW-0.05, id.eyeY-0.03)
		p.stroke(id.glassCol, 1, 0.025)
	}
}

func drawEyes(p *painter, id *identity, a *[NumActions]float64, line rgb) {
	dc := p.dc
	wide, narrow, cheek := a[ActUpperLidRaise], a[ActLidTighten], a[ActCheekRaise]
	up := math.Max(0.075*(1+1.0*wide-0.55*narrow-0.2*cheek), 0.012)
	lo := math.Max(0.05*(1+0.5*wide-0.5*narrow-0.6*cheek), 0.008)
	w := id.eyeW
	for _, s := range []float64{-1, 1} {
		cx, cy := s*id.eyeSep, id.eyeY
		// Upper-lid crease, hidden when the eye is wide open.
		p.quad(cx-0.8*w, cy-0.4*up, cx, cy-up-0.05, cx+0.8*w, cy-0.4*up)
		p.stroke(line, 0.35*clamp(1-wide, 0, 1), 0.014)
		almond := func() {
			dc.NewSubPath()
			dc.MoveTo(cx-w, cy)
			dc.QuadraticTo(cx, cy-2*up, cx+w, cy)
			dc.QuadraticTo(cx, cy+2*lo, cx-w, cy)
			dc.ClosePath()
		}
		almond()
		dc.SetColor(rgb{0.95, 0.95, 0.93}.nrgba(1))
		dc.ClipPreserve()
		dc.Fill()
		dc.DrawCircle(cx+id.gazeX, cy+id.gazeY, 0.062)
		p.fill(id.iris, 1)
		dc.DrawCircle(cx+id.gazeX, cy+id.gazeY, 0.028)
		p.fill(rgb{0.02, 0.02, 0.02}, 1)
		dc.ResetClip()
		// Lash line and lower lid.
		p.quad(cx-w, cy, cx, cy-up, cx+w, cy)
		p.stroke(rgb{0.08, 0.05, 0.04}, 0.95, 0.028)
		p.quad(cx-w, cy, cx, cy+lo, cx+w, cy)
		p.stroke(line, 0.6, 0.012)
		// Cheek-raise crease under the eye (AU6).
		if cheek > 0.05 {
			p.quad(cx-0.9*w, cy+lo+0.03, cx, cy+lo+0.07, cx+0.9*w, cy+lo+0.03)
			p.stroke(line, 0.6*clamp(cheek, 0, 1), 0.016)
		}
	}
}

func drawBrows(p *painter, id *identity, a *[NumActions]float64, line rgb) {
	in, out, low := a[ActInnerBrowRaise], a[ActOuterBrowRaise], a[ActBrowLower]
	col := id.hair.mix(rgb{0.1, 0.07, 0.05}, 0.55)
	for _, s := range []float64{-1, 1} {
		xi := s * (0.1 - 0.04*low)
		yi := id.browY - 0.13*in + 0.12*low + id.restInner
		xo := s * (id.eyeSep + id.eyeW + 0.04)
		yo := id.browY + 0.02 - 0.11*out + 0.03*low + id.restOuter
		arch := 0.035 + 0.03*out - 0.03*low
		mx, my := (xi+xo)/2, (yi+yo)/2-arch
		p.taper(xi, yi, mx, my, xo, yo, id.browThick/2, id.browThick/3.5)
		p.fill(col, 1)
	}
}

func drawMouth(p *painter, id *identity, a *[NumActions]float64, mw, cornerY, upperY, lowerY, open float64, line rgb) {
	dc := p.dc
	jaw, ulr := a[ActJawDrop], a[ActUpperLipRaise]
	k := clamp(0.55+0.45*jaw, 0, 1)
	liftL, liftR := 0.0, 0.0
	if id.sneerSide < 0 {
		liftL = 0.05 * ulr
	} else {
		liftR = 0.05 * ulr
	}
	outline := func() {
		dc.NewSubPath()
		p.mouthCurve(-mw, cornerY, mw, cornerY, upperY, k, liftL, liftR, true)
		p.mouthCurve(mw, cornerY, -mw, cornerY, lowerY, k, 0, 0, false)
		dc.ClosePath()
	}
	if lowerY-upperY > 0.012 {
		outline()
		dc.SetColor(rgb{0.28, 0.06, 0.07}.nrgba(1))
		dc.ClipPreserve()
		dc.Fill()
		teeth := id.teeth || a[ActLipCornerPull] > 0.3 || ulr > 0.25 || a[ActLipStretch] > 0.3 || a[ActLipPress] > 0.3
		if teeth {
			th := 0.045 + 0.03*a[ActLipStretch]
			dc.DrawRectangle(-mw, upperY-0.2, 2*mw, 0.2+th)
			p.fill(rgb{0.95, 0.94, 0.88}, 1)
		}
		if a[ActLipStretch] > 0.3 || a[ActLipPress] > 0.3 {
			dc.DrawRectangle(-mw, lowerY-0.035, 2*mw, 0.2)
			p.fill(rgb{0.93, 0.92, 0.86}, 1)
		} else if open > 0.12 {
			dc.DrawEllipse(0, lowerY, 0.6*mw, 0.35*open)
			p.fill(rgb{0.75, 0.3, 0.32}, 1)
		}
		dc.ResetClip()
	}
	thin := 1 - 0.5*clamp(a[ActLipPress], 0, 1)
	dc.NewSubPath()
	p.mouthCurve(-mw, cornerY, mw, cornerY, upperY, k, liftL, liftR, true)
	p.stroke(id.lip, 1, id.lipThick*thin)
	dc.NewSubPath()
	p.mouthCurve(-mw, cornerY, mw, cornerY, lowerY, k, 0, 0, true)
	p.stroke(id.lip, 1, 1.3*id.lipThick*thin)
	// Shadow under the lower lip.
	p.quad(-0.4*mw, lowerY+0.065, 0, lowerY+0.075, 0.4*mw, lowerY+0.065)
	p.stroke(line, 0.15, 0.018)
}

// postProcess applies the identity's lighting gradient, colour cast and
// brightness, then Gaussian pixel noise.
func postProcess(img *image.RGBA, id *identity, noise float64, rng *rand.Rand) {
	size := img.Rect.Dx()
	S := float64(size)
	cosd, sind := math.Cos(id.lightDir), math.Sin(id.lightDir)
	sigma := 255 * noise
	for y := 0; y < size; y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+4*size]
		fy := (float64(y)+0.5)/S - 0.5
		for x := 0; x < size; x++ {
			fx := (float64(x)+0.5)/S - 0.5
			l := id.bright * (1 + id.lightGain*(fx*cosd+fy*sind))
			px := row[4*x : 4*x+4]
			for c := 0; c < 3; c++ {
				v := float64(px[c]) * l * id.cast[c]
				if sigma > 0 {
					v += sigma * rng.NormFloat64()
				}
				px[c] = uint8(clamp(math.Round(v), 0, 255))
			}
			px[3] = 255
		}
	}
}
