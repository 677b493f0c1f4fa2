package losses

import (
	"math"
	"testing"

	"github.com/fer-research/fer/fer/metrics"
	"github.com/sugarme/gotch/ts"
)

// CCC against the direct formula on known vectors, the metric's two-pass
// value, and the degenerate constant cases.
func TestCCCKnownVectors(t *testing.T) {
	ccLockThread(t)
	for _, c := range []struct {
		name string
		p, y []float64
		want float64
	}{
		// μp 3, μy 6, σ²p 2, σ²y 8, cov 4: 2·4/(2+8+9) = 8/19
		{"scaled", []float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10}, 8.0 / 19},
		{"identical", []float64{0.1, -0.4, 0.7}, []float64{0.1, -0.4, 0.7}, 1},
		{"negated", []float64{0.5, -0.5}, []float64{-0.5, 0.5}, -1},
		// constant predictions against a varying target: cov = 0
		{"constant prediction", []float64{0.3, 0.3, 0.3}, []float64{-1, 0, 1}, 0},
		// both constant and different: (μp−μy)² > 0, cov = 0
		{"both constant", []float64{0.2, 0.2}, []float64{-0.5, -0.5}, 0},
	} {
		got := ccScalar(t, mustCCC(t, c.p, c.y))
		if math.Abs(got-c.want) > 1e-7 {
			t.Errorf("%s: CCC %v, want %v", c.name, got, c.want)
		}
		m, err := metrics.CCC(c.p, c.y)
		if err != nil || math.Abs(m-got) > 1e-7 {
			t.Errorf("%s: metrics.CCC %v (%v), loss CCC %v", c.name, m, err, got)
		}
	}
	// both constant and equal: 0/0; the loss's eps gives 0 (no NaN), the
	// metric defines 1
	if got := ccScalar(t, mustCCC(t, []float64{0.4, 0.4}, []float64{0.4, 0.4})); got != 0 {
		t.Errorf("equal constants: CCC %v, want 0 from the eps", got)
	}
}

func mustCCC(t *testing.T, p, y []float64) *ts.Tensor {
	t.Helper()
	c, err := CCC(ccF64(t, p, int64(len(p))), ccF64(t, y, int64(len(y))))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// L_VA = 1 − (CCC_v + CCC_a)/2, and its gradient against central
// differences.
func TestVALoss(t *testing.T) {
	ccLockThread(t)
	p := []float64{0.1, 0.5, -0.2, 0.3, 0.7, -0.6, 0.0, 0.2, -0.9, 0.4}
	y := []float64{0.2, 0.4, -0.1, 0.5, 0.6, -0.2, 0.1, 0.0, -0.8, 0.9}
	col := func(x []float64, j int) []float64 {
		var out []float64
		for i := j; i < len(x); i += 2 {
			out = append(out, x[i])
		}
		return out
	}
	cv, _ := metrics.CCC(col(p, 0), col(y, 0))
	ca, _ := metrics.CCC(col(p, 1), col(y, 1))
	eval := func(pp []float64) float64 {
		l, v, a, err := VALoss(ccF64(t, pp, 5, 2), ccF64(t, y, 5, 2))
		if err != nil {
			t.Fatal(err)
		}
		v.Drop()
		a.Drop()
		return ccScalar(t, l)
	}
	if got, want := eval(p), 1-(cv+ca)/2; math.Abs(got-want) > 1e-7 {
		t.Fatalf("VA loss %v, want %v", got, want)
	}
	x := ccF64(t, p, 5, 2).MustSetRequiresGrad(true, true)
	l, v, a, err := VALoss(x, ccF64(t, y, 5, 2))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ccScalar(t, v)-cv) > 1e-7 || math.Abs(ccScalar(t, a)-ca) > 1e-7 {
		t.Fatal("CCC parts")
	}
	if err := l.Backward(); err != nil {
		t.Fatal(err)
	}
	grad := x.MustGrad(false).Float64Values()
	checkFD(t, "va loss", p, grad, eval)
	if _, _, _, err := VALoss(ccF64(t, []float64{1, 2}, 1, 2), ccF64(t, []float64{1, 2}, 1, 2)); err == nil {
		t.Fatal("one row: want error")
	}
}

// checkFD compares an analytic gradient with central differences of f.
func checkFD(t *testing.T, what string, x, grad []float64, f func([]float64) float64) {
	t.Helper()
	const h = 1e-6
	var num, den float64
	for i := range x {
		xp := append([]float64(nil), x...)
		xm := append([]float64(nil), x...)
		xp[i] += h
		xm[i] -= h
		fd := (f(xp) - f(xm)) / (2 * h)
		num += (grad[i] - fd) * (grad[i] - fd)
		den = math.Max(den, math.Max(grad[i]*grad[i], fd*fd))
	}
	if den == 0 {
		t.Fatalf("%s: zero gradient", what)
	}
	rel := math.Sqrt(num) / math.Sqrt(den)
	if rel > 1e-5 {
		t.Errorf("%s: gradient vs central differences: relative error %.3g > 1e-5", what, rel)
	}
	t.Logf("%s: gradient relative error %.2g", what, rel)
}
