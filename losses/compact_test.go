package losses

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ccLockThread pins the test goroutine to its OS thread for the test's
// lifetime: libtorch's grad mode is per OS thread (GOTCH.md).
func ccLockThread(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func ccF64(t *testing.T, data []float64, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.NewTensorFromData(data, shape, ts.WithDType(gotch.Double))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func ccLabels(t *testing.T, labels ...int64) *ts.Tensor {
	t.Helper()
	y, err := ts.NewTensorFromData(labels, []int64{int64(len(labels))}, ts.WithDType(gotch.Int64))
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func ccScalar(t *testing.T, x *ts.Tensor) float64 {
	t.Helper()
	v, err := x.Float64Value([]int64{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ccRefTerms computes CE and the non-target symmetric KL of one row in plain
// Go, straight from the definitions in compact.go.
func ccRefTerms(z []float64, y int) (ce, skl float64) {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, v)
	}
	s := 0.0
	for _, v := range z {
		s += math.Exp(v - m)
	}
	ce = m + math.Log(s) - z[y]
	var p []float64
	tot := 0.0
	for j, v := range z {
		if j != y {
			e := math.Exp(v - m)
			p = append(p, e)
			tot += e
		}
	}
	u := 1 / float64(len(p))
	for _, e := range p {
		q := e / tot
		skl += (q - u) * (math.Log(q) - math.Log(u))
	}
	return ce, skl
}

func TestCompactKnownValues(t *testing.T) {
	ccLockThread(t)
	loss, err := NewCompactCE(1)
	if err != nil {
		t.Fatal(err)
	}

	// Uniform non-target predictions: compact term is exactly 0.
	z := ccF64(t, []float64{3, 1, 1, 1, -2, 0.5, -2, -2}, 2, 4)
	total, parts, err := loss.Loss(z, ccLabels(t, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if c := ccScalar(t, parts["compact"]); math.Abs(c) > 1e-15 {
		t.Errorf("uniform non-target: compact = %g, want 0", c)
	}
	wantCE := ((math.Log(math.Exp(3)+3*math.E) - 3) + (math.Log(3*math.Exp(-2)+math.Exp(0.5)) - 0.5)) / 2
	if ce := ccScalar(t, parts["ce"]); math.Abs(ce-wantCE) > 1e-12 {
		t.Errorf("ce = %.15g, want %.15g", ce, wantCE)
	}
	if tot := ccScalar(t, total); math.Abs(tot-wantCE) > 1e-12 {
		t.Errorf("total = %.15g, want ce %.15g (compact is 0)", tot, wantCE)
	}

	// Hand-computed 3-class case: z = (1, 2, 0.5), y = 0. The non-target
	// logits (2, 0.5) give q = (σ(1.5), σ(−1.5)), u = 1/2, and
	// SKL = Σ (q_j − u)(log q_j − log u) = (q1 − q2)/2 · log(q1/q2)
	//     = (2σ(1.5) − 1)/2 · 1.5 = tanh(0.75) · 0.75.
	z3 := ccF64(t, []float64{1, 2, 0.5}, 1, 3)
	loss2, _ := NewCompactCE(2.5)
	total, parts, err = loss2.Loss(z3, ccLabels(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantSKL := math.Tanh(0.75) * 0.75 // 0.476361...
	if c := ccScalar(t, parts["compact"]); math.Abs(c-wantSKL) > 1e-14 {
		t.Errorf("3-class compact = %.15g, want %.15g", c, wantSKL)
	}
	wantCE = math.Log(math.Exp(1)+math.Exp(2)+math.Exp(0.5)) - 1
	if ce := ccScalar(t, parts["ce"]); math.Abs(ce-wantCE) > 1e-14 {
		t.Errorf("3-class ce = %.15g, want %.15g", ce, wantCE)
	}
	if tot := ccScalar(t, total); math.Abs(tot-(wantCE+2.5*wantSKL)) > 1e-13 {
		t.Errorf("3-class total = %.15g, want ce + 2.5·compact = %.15g", tot, wantCE+2.5*wantSKL)
	}
}

func TestCompactMatchesReferenceAndIsNonNegative(t *testing.T) {
	ccLockThread(t)
	r := rand.New(rand.NewPCG(7, 1))
	const B, K = 9, 7
	z := make([]float64, B*K)
	for i := range z {
		z[i] = 3 * r.NormFloat64()
	}
	y := make([]int64, B)
	wantCE, wantSKL := 0.0, 0.0
	for b := range y {
		y[b] = int64(r.IntN(K))
		ce, skl := ccRefTerms(z[b*K:(b+1)*K], int(y[b]))
		if skl < 0 {
			t.Fatalf("reference SKL %g < 0", skl)
		}
		wantCE += ce / B
		wantSKL += skl / B
	}
	loss, _ := NewCompactCE(0.7)
	total, parts, err := loss.Loss(ccF64(t, z, B, K), ccLabels(t, y...))
	if err != nil {
		t.Fatal(err)
	}
	if got := ccScalar(t, parts["ce"]); math.Abs(got-wantCE) > 1e-12 {
		t.Errorf("ce = %.15g, want %.15g", got, wantCE)
	}
	if got := ccScalar(t, parts["compact"]); math.Abs(got-wantSKL) > 1e-12 || got <= 0 {
		t.Errorf("compact = %.15g, want %.15g (> 0)", got, wantSKL)
	}
	if got := ccScalar(t, total); math.Abs(got-(wantCE+0.7*wantSKL)) > 1e-12 {
		t.Errorf("total = %.15g, want %.15g", got, wantCE+0.7*wantSKL)
	}

	// λ = 0 is plain cross-entropy, same as libtorch's.
	plain, _ := NewCompactCE(0)
	total0, _, err := plain.Loss(ccF64(t, z, B, K), ccLabels(t, y...))
	if err != nil {
		t.Fatal(err)
	}
	if got := ccScalar(t, total0); math.Abs(got-wantCE) > 1e-12 {
		t.Errorf("λ=0 total = %.15g, want CE %.15g", got, wantCE)
	}
}

// TestCompactGradient checks the analytic gradient of the total and of the
// compact term alone against central finite differences in float64.
func TestCompactGradient(t *testing.T) {
	ccLockThread(t)
	r := rand.New(rand.NewPCG(3, 9))
	const B, K = 5, 7
	z := make([]float64, B*K)
	for i := range z {
		z[i] = 2 * r.NormFloat64()
	}
	labels := []int64{0, 3, 6, 3, 1}
	loss, _ := NewCompactCE(1.3)

	eval := func(zz []float64, part string) float64 {
		total, parts, err := loss.Loss(ccF64(t, zz, B, K), ccLabels(t, labels...))
		if err != nil {
			t.Fatal(err)
		}
		if part == "total" {
			return ccScalar(t, total)
		}
		return ccScalar(t, parts[part])
	}
	for _, part := range []string{"total", "compact", "ce"} {
		x := ccF64(t, z, B, K).MustSetRequiresGrad(true, true)
		total, parts, err := loss.Loss(x, ccLabels(t, labels...))
		if err != nil {
			t.Fatal(err)
		}
		out := total
		if part != "total" {
			out = parts[part]
		}
		if err := out.Backward(); err != nil {
			t.Fatal(err)
		}
		grad := x.MustGrad(false).Float64Values()
		checkFD(t, part, z, grad, func(zz []float64) float64 { return eval(zz, part) })
	}
}

func TestCompactErrors(t *testing.T) {
	ccLockThread(t)
	for _, lam := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := NewCompactCE(lam); err == nil {
			t.Errorf("NewCompactCE(%v): want error", lam)
		}
	}
	loss, _ := NewCompactCE(1)
	cases := []struct {
		name   string
		logits *ts.Tensor
		labels *ts.Tensor
		want   string
	}{
		{"two classes", ccF64(t, []float64{1, 2}, 1, 2), ccLabels(t, 0), "K >= 3"},
		{"1-D logits", ccF64(t, []float64{1, 2, 3}, 3), ccLabels(t, 0), "want [B,K]"},
		{"label count", ccF64(t, []float64{1, 2, 3}, 1, 3), ccLabels(t, 0, 1), "want [1]"},
		{"label range", ccF64(t, []float64{1, 2, 3}, 1, 3), ccLabels(t, 5), "0..2"},
		{"float labels", ccF64(t, []float64{1, 2, 3}, 1, 3), ccF64(t, []float64{0}, 1), "int64"},
	}
	for _, c := range cases {
		_, _, err := loss.Loss(c.logits, c.labels)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}
