package optim

import (
	"encoding/json"
	"github.com/fer-research/fer/internal/testenv"
	"math"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread() // libtorch grad mode is per OS thread (GOTCH.md)
	os.Exit(m.Run())
}

type refCase struct {
	Name    string    `json:"name"`
	Problem string    `json:"problem"` // "linear" (the least-squares fit) or "wide"
	Losses  []float64 `json:"losses"`
	W       []float64 `json:"w"`
	B       []float64 `json:"b"`
}

// reference returns torch.optim's results and whether they were computed
// now (Debian's PyTorch installed, same libtorch and CPU as the test) or
// read from the recorded testdata/torch_ref.json (made by the same
// script, maybe on another CPU).
func reference(t *testing.T) ([]refCase, bool) {
	live := true
	out, err := exec.Command("/usr/bin/python3", "testdata/torch_ref.py").Output()
	if err != nil {
		t.Logf("PyTorch not runnable (%v): using testdata/torch_ref.json", err)
		live = false
		if out, err = os.ReadFile("testdata/torch_ref.json"); err != nil {
			t.Fatal(err)
		}
	}
	var ref struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Cases, live
}

func f32(v [][]float64) *ts.Tensor {
	var flat []float32
	for _, r := range v {
		for _, x := range r {
			flat = append(flat, float32(x))
		}
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(v)), int64(len(v[0]))}, true)
}

func grid(rows, cols int, f func(i, j int) float64) [][]float64 {
	out := make([][]float64, rows)
	for i := range out {
		out[i] = make([]float64, cols)
		for j := range out[i] {
			out[i][j] = f(i, j)
		}
	}
	return out
}

// problem builds the least-squares problem of torch_ref.py (linear).
func problem() (vs *nn.VarStore, w, b, x, y *ts.Tensor) {
	x = f32(grid(5, 4, func(i, j int) float64 { return float64((i*7+j*3)%11-5) / 4 }))
	y = f32(grid(5, 3, func(i, j int) float64 { return float64((i*2+j*5)%9-4) / 3 }))
	w0 := f32(grid(3, 4, func(i, j int) float64 { return float64((i*5+j*2)%7-3) / 10 }))
	b0 := f32(grid(1, 3, func(_, j int) float64 { return float64((j*3)%5-2) / 10 })).MustView([]int64{3}, true)
	vs = nn.NewVarStore(gotch.CPU)
	w = vs.Root().MustAdd("weight", w0, true)
	b = vs.Root().MustAdd("bias", b0, true)
	return vs, w, b, x, y
}

// wideProblem builds the wide problem of torch_ref.py: its parameters
// and its loss sum(S·(w − T)²) + sum((b − Tb)²).
func wideProblem() (vs *nn.VarStore, w, b *ts.Tensor, loss func() *ts.Tensor) {
	s := f32(grid(29, 37, func(i, j int) float64 { return float64((i+2*j)%5+1) / 4 }))
	tw := f32(grid(29, 37, func(i, j int) float64 { return float64((i*5+j*3)%13-6) / 8 }))
	w0 := f32(grid(29, 37, func(i, j int) float64 { return float64((i*3+j*7)%9-4) / 16 }))
	tb := f32(grid(1, 29, func(_, j int) float64 { return float64((j*5)%11-5) / 8 })).MustView([]int64{29}, true)
	b0 := f32(grid(1, 29, func(_, j int) float64 { return float64((j*3)%7-3) / 8 })).MustView([]int64{29}, true)
	vs = nn.NewVarStore(gotch.CPU)
	w = vs.Root().MustAdd("weight", w0, true)
	b = vs.Root().MustAdd("bias", b0, true)
	loss = func() *ts.Tensor {
		dw := w.MustSub(tw, false)
		sq := dw.MustSquare(true)
		lw := s.MustMul(sq, false)
		sq.MustDrop()
		sw := lw.MustSum(gotch.Float, true)
		db := b.MustSub(tb, false)
		sqb := db.MustSquare(true)
		sb := sqb.MustSum(gotch.Float, true)
		return sw.MustAdd(sb, true)
	}
	return vs, w, b, loss
}

func lossOf(w, b, x, y *ts.Tensor) *ts.Tensor {
	wt := w.MustT(false)
	p := x.MustMatmul(wt, false)
	wt.MustDrop()
	p2 := p.MustAdd(b, true)
	d := p2.MustSub(y, true)
	sq := d.MustSquare(true)
	return sq.MustMean(gotch.Float, true)
}

func closeTo(got, want []float64, rel float64) (int, bool) {
	for i := range want {
		if math.Abs(got[i]-want[i]) > rel*math.Max(1e-3, math.Abs(want[i])) {
			return i, false
		}
	}
	return -1, len(got) == len(want)
}

func maxAbsDiff(got, want []float64) float64 {
	d := 0.0
	for i := range want {
		d = math.Max(d, math.Abs(got[i]-want[i]))
	}
	return d
}

func TestMatchesTorchOptim(t *testing.T) {
	cfgs := map[string]Config{
		"sgd":                    {Kind: SGD, LR: 0.1},
		"sgd_momentum_wd":        {Kind: SGD, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-2},
		"sgd_nesterov_dampening": {Kind: SGD, LR: 0.05, Momentum: 0.8, Nesterov: true},
		"sgd_dampening":          {Kind: SGD, LR: 0.05, Momentum: 0.9, Dampening: 0.3},
		"adam":                   {Kind: Adam, LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		"adam_wd":                {Kind: Adam, LR: 0.01, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1},
		"adamw":                  {Kind: AdamW, LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.05},
		"sgd_clip":               {Kind: SGD, LR: 0.1, Momentum: 0.9},
		"adam_sam":               {Kind: Adam, LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		"wide_adam":              {Kind: Adam, LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01},
		"wide_adamw":             {Kind: AdamW, LR: 0.01, Beta1: 0.8, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.05},
		"wide_sgd":               {Kind: SGD, LR: 0.01, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-3},
		"wide_sgd_dampening":     {Kind: SGD, LR: 0.01, Momentum: 0.9, Dampening: 0.1},
	}
	cases, live := reference(t)
	// Same libtorch, same CPU, same op sequence and kernels: the live
	// reference must agree bit for bit. A recorded one (another CPU's
	// vector kernels) to float32 rounding.
	tol := 0.0
	if !live {
		tol = 2e-6
	}
	for _, rc := range cases {
		cfg, ok := cfgs[rc.Name]
		if !ok {
			t.Fatalf("no Go config for reference case %q", rc.Name)
		}
		t.Run(rc.Name, func(t *testing.T) {
			// a subtest is a new goroutine: pin it too (grad mode is per thread)
			runtime.LockOSThread()
			vs, w, b, x, y := problem()
			loss := func() *ts.Tensor { return lossOf(w, b, x, y) }
			if rc.Problem == "wide" {
				vs, w, b, loss = wideProblem()
			}
			opt, err := New(vs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()
			for step := 0; step < len(rc.Losses); step++ {
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				l := loss()
				lv := l.Float64Values()[0]
				// same kernels for the forward pass: the loss must agree
				// to float32 rounding of the (slightly different) weights
				if math.Abs(lv-rc.Losses[step]) > 1e-5*math.Abs(rc.Losses[step]) {
					t.Fatalf("step %d: loss %.9g, torch %.9g", step, lv, rc.Losses[step])
				}
				l.MustBackward()
				l.MustDrop()
				if rc.Name == "adam_sam" {
					sam := &SAM{Rho: 0.05}
					if err := sam.Perturb(opt); err != nil {
						t.Fatal(err)
					}
					if err := opt.ZeroGrad(); err != nil {
						t.Fatal(err)
					}
					l2 := loss()
					l2.MustBackward()
					l2.MustDrop()
					if err := sam.Restore(opt); err != nil {
						t.Fatal(err)
					}
				}
				if rc.Name == "sgd_clip" {
					if _, err := opt.ClipGradNorm(0.5); err != nil {
						t.Fatal(err)
					}
				}
				if err := opt.Step(); err != nil {
					t.Fatal(err)
				}
			}
			gw, gb := w.Float64Values(), b.Float64Values()
			t.Logf("max |fer - torch| after %d steps: %.3g", len(rc.Losses), maxAbsDiff(append(gw, gb...), append(rc.W, rc.B...)))
			if i, ok := closeTo(gw, rc.W, tol); !ok {
				t.Fatalf("weight[%d] = %.9g, torch %.9g", i, gw[max(i, 0)], rc.W[max(i, 0)])
			}
			if i, ok := closeTo(gb, rc.B, tol); !ok {
				t.Fatalf("bias[%d] = %.9g, torch %.9g", i, gb[max(i, 0)], rc.B[max(i, 0)])
			}
			runtime.KeepAlive(vs)
		})
	}
}
