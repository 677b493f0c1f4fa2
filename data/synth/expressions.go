package synth

import (
	"math"
	"math/rand/v2"
)

// Classes lists the seven basic expressions in label order (the order used by
// RAF-DB-style 7-class benchmarks and by AffectNet codes 0–6). Sample.Label
// indexes this slice.
var Classes = []string{"neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"}

// Class indices into Classes.
const (
	Neutral = iota
	Happy
	Sad
	Surprise
	Fear
	Disgust
	Anger
	NumClasses
)

// AUNames are the eight Aff-Wild2 action units carried by Sample.AU, in order.
var AUNames = []string{"AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"}

// NumAUs is len(AUNames).
const NumAUs = 8

// Action controls: the geometric "muscles" the renderer understands. Each is a
// non-negative activation, nominally in [0,1] (jitter can push it a little
// above 1). They are named after the FACS action unit they imitate.
const (
	ActInnerBrowRaise   = iota // AU1: inner brow ends move up (oblique "sad" brows)
	ActOuterBrowRaise          // AU2: outer brow ends move up, brows arch
	ActBrowLower               // AU4: brows down and together, glabella furrows
	ActUpperLidRaise           // AU5: eyes wide open, sclera shows above the iris
	ActCheekRaise              // AU6: cheeks lift, lower lids push up, cheek creases
	ActLidTighten              // AU7: both lids narrow the eye
	ActNoseWrinkle             // AU9: wrinkles across the nose bridge, nostrils lift
	ActUpperLipRaise           // AU10: upper lip lifts (asymmetric sneer), teeth show
	ActLipCornerPull           // AU12: mouth corners up and out (smile)
	ActLipCornerDepress        // AU15: mouth corners down (frown)
	ActLipStretch              // AU20: mouth stretched sideways, flattened
	ActLipPress                // AU23/24: lips pressed thin, mouth narrower
	ActLipsPart                // AU25: lips part (mouth opening)
	ActJawDrop                 // AU26: jaw drops, tall oval opening
	NumActions
)

// ActionNames names the action controls in order (for CSVs and plots).
var ActionNames = []string{
	"inner_brow_raise", "outer_brow_raise", "brow_lower", "upper_lid_raise",
	"cheek_raise", "lid_tighten", "nose_wrinkle", "upper_lip_raise",
	"lip_corner_pull", "lip_corner_depress", "lip_stretch", "lip_press",
	"lips_part", "jaw_drop",
}

// apexActions is each expression's prototype at full intensity (1.0). The
// drawn controls of a sample are  intensity × jitter × apex  plus occasional
// spurious activations (see sampleActions). The table follows the EMFACS
// prototypes loosely, simplified to what a 64×64 cartoon can show:
//
//	            AU1  AU2  AU4  AU5  AU6  AU7  AU9 AU10 AU12 AU15 AU20 AU23 AU25 AU26
//	            inBr outBr lowr wide chk  narr nose ulip smil frwn strt prss part jaw
//	neutral     .    .    .    .    .    .    .    .    .    .    .    .    .    .
//	happy       .    .    .    .   .80  .20   .    .  1.00  .    .    .   .50   .
//	sad        .90   .   .40   .    .   .20   .    .    .   .80   .    .    .    .
//	surprise  1.00 1.00   .  1.00   .    .    .    .    .    .    .    .  1.00  .90
//	fear       .90  .60  .60 1.00   .    .    .    .    .   .20  .90   .   .70  .30
//	disgust     .    .   .60   .   .40  .50 1.00  .90   .   .50   .    .   .40   .
//	anger       .    .  1.00   .    .   .90   .    .    .    .    .   .90  .15   .
//
// Deliberately close pairs: fear vs surprise share raised brows, wide eyes and
// an open mouth (fear adds brow lowering/knitting, lip stretch and visible
// teeth, surprise a taller jaw drop and arched brows); anger vs disgust share
// lowered brows and narrowed eyes (disgust adds nose wrinkles and a raised
// upper lip, anger pressed lips); sad vs neutral differ only by oblique brows
// and a mild frown, which at low intensity is within identity variation
// (every identity has a resting brow and mouth curvature).
var apexActions = [NumClasses][NumActions]float64{
	Neutral:  {},
	Happy:    {ActCheekRaise: .8, ActLidTighten: .2, ActLipCornerPull: 1, ActLipsPart: .5},
	Sad:      {ActInnerBrowRaise: .9, ActBrowLower: .4, ActLidTighten: .2, ActLipCornerDepress: .8},
	Surprise: {ActInnerBrowRaise: 1, ActOuterBrowRaise: 1, ActUpperLidRaise: 1, ActLipsPart: 1, ActJawDrop: .9},
	Fear: {ActInnerBrowRaise: .9, ActOuterBrowRaise: .6, ActBrowLower: .6, ActUpperLidRaise: 1,
		ActLipCornerDepress: .2, ActLipStretch: .9, ActLipsPart: .7, ActJawDrop: .3},
	Disgust: {ActBrowLower: .6, ActCheekRaise: .4, ActLidTighten: .5, ActNoseWrinkle: 1,
		ActUpperLipRaise: .9, ActLipCornerDepress: .5, ActLipsPart: .4},
	Anger: {ActBrowLower: 1, ActLidTighten: .9, ActLipPress: .9, ActLipsPart: .15},
}

// coreActions are the controls of each expression that are never dropped by
// the per-sample jitter (without them the expression would not be drawn).
var coreActions = [NumClasses][]int{
	Neutral:  nil,
	Happy:    {ActLipCornerPull},
	Sad:      {ActInnerBrowRaise, ActLipCornerDepress},
	Surprise: {ActUpperLidRaise, ActInnerBrowRaise, ActOuterBrowRaise},
	Fear:     {ActUpperLidRaise, ActLipStretch},
	Disgust:  {ActNoseWrinkle, ActUpperLipRaise},
	Anger:    {ActBrowLower, ActLipPress},
}

// vaAnchors are circumplex (valence, arousal) anchors at full intensity.
// A sample's labels are  anchor × intensity + N(0, 0.05²)  clipped to [-1,1]:
//
//	neutral ( 0.0,  0.0)   happy   (+0.8, +0.5)   sad     (-0.6, -0.4)
//	surprise(+0.2, +0.9)   fear    (-0.7, +0.8)   disgust (-0.7, +0.3)
//	anger   (-0.6, +0.7)
var vaAnchors = [NumClasses][2]float64{
	Neutral:  {0, 0},
	Happy:    {0.8, 0.5},
	Sad:      {-0.6, -0.4},
	Surprise: {0.2, 0.9},
	Fear:     {-0.7, 0.8},
	Disgust:  {-0.7, 0.3},
	Anger:    {-0.6, 0.7},
}

// AUThreshold is the drawn activation above which an action unit is labelled
// present (1). It is applied to the very controls the renderer drew. AU25
// (lips part) is instead read off the drawn mouth gap (see lipGap), which
// jaw drop and upper-lip raise open too: it is 1 when the gap exceeds
// lipGapThreshold, the gap that LipsPart = AUThreshold alone draws.
const AUThreshold = 0.3

// lipGapThreshold is the drawn lip gap (face units, face half-height 1)
// above which AU25 is labelled present.
var lipGapThreshold = lipGap(&[NumActions]float64{ActLipsPart: AUThreshold})

// lipGap is the vertical distance between the lip midlines, in face units,
// as drawn by drawMouth.
func lipGap(a *[NumActions]float64) float64 {
	open := 0.0
	if lp := a[ActLipsPart]; lp > 0.1 {
		open = 0.22*lp - 0.02
	}
	open += 0.2 * a[ActJawDrop]
	return open + 0.05*a[ActUpperLipRaise]
}

// auActions maps each Aff-Wild2 AU (AUNames order) to its action control.
var auActions = [NumAUs]int{
	ActInnerBrowRaise,   // AU1
	ActOuterBrowRaise,   // AU2
	ActBrowLower,        // AU4
	ActCheekRaise,       // AU6
	ActLipCornerPull,    // AU12
	ActLipCornerDepress, // AU15
	ActLipStretch,       // AU20
	ActLipsPart,         // AU25 (labelled from lipGap, see AUThreshold)
}

// expressionProfile is the per-sample, intensity-free description of how an
// expression is drawn: jittered apex controls plus spurious activations.
type expressionProfile struct {
	apex     [NumActions]float64 // controls at intensity 1
	spurious [NumActions]float64 // intensity-independent extra activations
	vaNoise  [2]float64          // label noise, fixed per sample/clip
}

// sampleProfile draws the per-sample expression profile of class c:
// each non-zero prototype control is scaled by U(0.7,1.2) and, unless it is a
// core control, dropped with probability 0.15; with probability 0.15 one random
// control gets a spurious activation U(0.1,0.5) (talking, squinting, ...).
func sampleProfile(c int, rng *rand.Rand) expressionProfile {
	var p expressionProfile
	proto := apexActions[c]
	for k, v := range proto {
		if v == 0 {
			continue
		}
		v *= 0.7 + 0.5*rng.Float64()
		if !isCore(c, k) && rng.Float64() < 0.15 {
			v = 0
		}
		p.apex[k] = v
	}
	if rng.Float64() < 0.15 {
		k := rng.IntN(NumActions)
		p.spurious[k] = 0.1 + 0.4*rng.Float64()
	}
	p.vaNoise[0] = 0.05 * rng.NormFloat64()
	p.vaNoise[1] = 0.05 * rng.NormFloat64()
	return p
}

func isCore(c, k int) bool {
	for _, x := range coreActions[c] {
		if x == k {
			return true
		}
	}
	return false
}

// actionsAt returns the drawn controls at expression intensity in [0,1].
func (p *expressionProfile) actionsAt(intensity float64) [NumActions]float64 {
	var a [NumActions]float64
	for k := range a {
		a[k] = intensity*p.apex[k] + p.spurious[k]
	}
	return a
}

// frameLabels derives the frame's labels from what is drawn.
func frameLabels(c int, intensity float64, p *expressionProfile, a *[NumActions]float64) FrameLabel {
	if c == Neutral {
		intensity = 0
	}
	var fl FrameLabel
	fl.Intensity = float32(intensity)
	fl.Valence = float32(clamp(vaAnchors[c][0]*intensity+p.vaNoise[0], -1, 1))
	fl.Arousal = float32(clamp(vaAnchors[c][1]*intensity+p.vaNoise[1], -1, 1))
	for i, k := range auActions {
		if k == ActLipsPart {
			if lipGap(a) > lipGapThreshold {
				fl.AU[i] = 1
			}
		} else if a[k] > AUThreshold {
			fl.AU[i] = 1
		}
	}
	return fl
}

func clamp(x, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, x))
}
