package losses

import (
	"math"
	"testing"
)

// ArcFace logits against a case computed by hand from the formula: a
// normal margin, the cos θ ≤ cos(π−m) fallback, an unlabelled row.
func TestArcFaceLogitsHandComputed(t *testing.T) {
	ccLockThread(t)
	a, err := NewArcFace(2, 0.5, false)
	if err != nil {
		t.Fatal(err)
	}
	cos := []float64{
		0.8, 0.1, -0.3, // label 0: cos 0.8 > cos(π−0.5) = −0.8776
		-0.95, 0.2, 0.0, // label 0: −0.95 ≤ −0.8776, fallback
		0.5, 0.5, 0.5, // unlabelled
		0.3, -0.2, 0.6, // label 2
	}
	labels := []int64{0, 0, -1, 2}
	z, err := a.Logits(ccF64(t, cos, 4, 3), ccLabels(t, labels...))
	if err != nil {
		t.Fatal(err)
	}
	got := z.Float64Values()
	c, s := math.Cos(0.5), math.Sin(0.5)
	phi0 := 0.8*c - math.Sqrt(1-0.64)*s // 0.414411...
	fall := -0.95 - 0.5*s               // cos θ − m·sin m
	phi3 := 0.6*c - math.Sqrt(1-0.36)*s // cos(θ + m) of row 3
	want := []float64{
		2 * phi0, 0.2, -0.6,
		2 * fall, 0.4, 0,
		1, 1, 1,
		0.6, -0.4, 2 * phi3,
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("logit %d: %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	if math.Abs(phi0-0.41441) > 1e-5 {
		t.Fatalf("hand value %v", phi0)
	}
	// easy margin: the margin only where cos θ > 0
	e, _ := NewArcFace(2, 0.5, true)
	z, err = e.Logits(ccF64(t, cos, 4, 3), ccLabels(t, labels...))
	if err != nil {
		t.Fatal(err)
	}
	if g := z.Float64Values(); math.Abs(g[3]-2*-0.95) > 1e-12 || math.Abs(g[0]-2*phi0) > 1e-12 {
		t.Fatalf("easy margin: %v", g)
	}
	for _, bad := range [][2]float64{{0, 0.5}, {64, -0.1}, {64, 2}} {
		if _, err := NewArcFace(bad[0], bad[1], false); err == nil {
			t.Errorf("NewArcFace(%v): want error", bad)
		}
	}
}

// The ArcFace loss through the normalised cosines: autograd gradients
// with respect to the features and the class centres match central
// differences.
func TestArcFaceGradient(t *testing.T) {
	ccLockThread(t)
	a, _ := NewArcFace(8, 0.5, false)
	x := []float64{0.3, -1.2, 0.8, 0.5, 0.1, 0.9, -0.4, 0.2, 1.1, -0.7, 0.6, 0.3}                // 3×4
	w := []float64{0.5, 0.2, -0.3, 0.9, -0.6, 0.8, 0.1, 0.4, 0.2, -0.1, 0.7, -0.5, 1, 0, 0, 0.3} // 4×4
	labels := []int64{1, 3, -1}
	loss := func(xx, ww []float64) float64 {
		c, err := Cosines(ccF64(t, xx, 3, 4), ccF64(t, ww, 4, 4))
		if err != nil {
			t.Fatal(err)
		}
		l, err := a.Loss(c, ccLabels(t, labels...))
		if err != nil {
			t.Fatal(err)
		}
		return ccScalar(t, l)
	}
	xt := ccF64(t, x, 3, 4).MustSetRequiresGrad(true, true)
	wt := ccF64(t, w, 4, 4).MustSetRequiresGrad(true, true)
	c, err := Cosines(xt, wt)
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Loss(c, ccLabels(t, labels...))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Backward(); err != nil {
		t.Fatal(err)
	}
	checkFD(t, "arcface d/dx", x, xt.MustGrad(false).Float64Values(), func(v []float64) float64 { return loss(v, w) })
	checkFD(t, "arcface d/dW", w, wt.MustGrad(false).Float64Values(), func(v []float64) float64 { return loss(x, v) })
	// cosines are in [-1, 1] and the loss is the CE of the margin logits
	cv := c.Float64Values()
	for _, v := range cv {
		if v < -1-1e-12 || v > 1+1e-12 {
			t.Fatalf("cosine %v", v)
		}
	}
}
