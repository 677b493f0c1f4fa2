package autocast

import (
	"github.com/fer-research/fer/internal/testenv"
	"math"
	"os"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread() // autocast and grad mode are per OS thread
	os.Exit(m.Run())
}

func randn(t *testing.T, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.Randn(shape, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestCPUAutocastCastsMatmulAndRestores(t *testing.T) {
	lockThread(t)
	before, err := Get(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if before.Enabled {
		t.Fatalf("CPU autocast on before the test")
	}
	a, b := randn(t, 4, 8), randn(t, 8, 3)
	want := a.MustMatmul(b, false)

	exit, err := Enter(gotch.CPU, gotch.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Get(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.DType != gotch.BFloat16 {
		t.Fatalf("inside the region: %+v, want enabled bfloat16", st)
	}
	got := a.MustMatmul(b, false)
	// element-wise ops are not on autocast's lists: they keep float32.
	sum := a.MustAdd(a, false)
	exit()

	if got.DType() != gotch.BFloat16 {
		t.Errorf("matmul under autocast gives %v, want BFloat16", got.DType())
	}
	if sum.DType() != gotch.Float {
		t.Errorf("add under autocast gives %v, want Float", sum.DType())
	}
	after := a.MustMatmul(b, false)
	if after.DType() != gotch.Float {
		t.Errorf("matmul after the region gives %v, want Float", after.DType())
	}
	if st, _ := Get(gotch.CPU); st.Enabled {
		t.Errorf("autocast still on after exit")
	}
	// bfloat16 keeps 8 significant bits: relative error about 2^-8 per
	// input rounding, summed over 8 products.
	g := got.MustTotype(gotch.Float, false).Float64Values()
	w := want.Float64Values()
	for i := range w {
		if d := math.Abs(g[i] - w[i]); d > 0.05*(1+math.Abs(w[i])) {
			t.Errorf("element %d: bf16 %v vs f32 %v", i, g[i], w[i])
		}
	}
}

func TestAutocastNestsAndGradientsStayFloat(t *testing.T) {
	lockThread(t)
	w := randn(t, 8, 3).MustSetRequiresGrad(true, false)
	x := randn(t, 5, 8)
	outer, err := Enter(gotch.CPU, gotch.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := Enter(gotch.CPU, gotch.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	inner()
	if st, _ := Get(gotch.CPU); !st.Enabled {
		t.Fatalf("leaving the inner region turned the outer one off")
	}
	y := x.MustMatmul(w, false)
	loss := y.MustSum(gotch.Float, false)
	outer()
	if st, _ := Get(gotch.CPU); st.Enabled {
		t.Fatalf("autocast on after the outer region")
	}
	loss.MustBackward()
	g := w.MustGrad(false)
	if g.DType() != gotch.Float {
		t.Fatalf("gradient of a float32 weight is %v, want Float", g.DType())
	}
	// d(sum(x·w))/dw[i][j] = sum over rows of x[:, i].
	col := x.MustSumDimIntlist([]int64{0}, false, gotch.Float, false).Float64Values()
	gv := g.Float64Values()
	for i := 0; i < 8; i++ {
		for j := 0; j < 3; j++ {
			if d := math.Abs(gv[i*3+j] - col[i]); d > 0.05*(1+math.Abs(col[i])) {
				t.Errorf("grad[%d][%d] = %v, want ≈ %v", i, j, gv[i*3+j], col[i])
			}
		}
	}
}

func TestEnterRejectsUnsupportedDType(t *testing.T) {
	lockThread(t)
	if _, err := Enter(gotch.CPU, gotch.Half); err == nil {
		t.Errorf("CPU float16 autocast accepted; libtorch 1.13 supports bfloat16 only")
	}
	if st, _ := Get(gotch.CPU); st.Enabled {
		t.Errorf("a refused Enter left autocast on")
	}
}

// lockThread pins the test's goroutine to its OS thread for the test:
// autocast and grad mode are per OS thread, and every test runs in its own
// goroutine, which TestMain's lock does not cover.
func lockThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}
