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
	Name   string    `json:"name"`
	Losses []float64 `json:"losses"`
	W      []float64 `json:"w"`
	B      []float64 `json:"b"`
}

// reference returns torch.optim's results: computed now when Debian's
// PyTorch is installed, else the recorded testdata/torch_ref.json (made
// by the same script).
func reference(t *testing.T) []refCase {
	out, err := exec.Command("/usr/bin/python3", "testdata/torch_ref.py").Output()
	if err != nil {
		t.Logf("PyTorch not runnable (%v): using testdata/torch_ref.json", err)
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
	return ref.Cases
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

// problem builds the least-squares problem of torch_ref.py.
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
	}
	for _, rc := range reference(t) {
		cfg, ok := cfgs[rc.Name]
		if !ok {
			t.Fatalf("no Go config for reference case %q", rc.Name)
		}
		t.Run(rc.Name, func(t *testing.T) {
			// a subtest is a new goroutine: pin it too (grad mode is per thread)
			runtime.LockOSThread()
			vs, w, b, x, y := problem()
			opt, err := New(vs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()
			for step := 0; step < len(rc.Losses); step++ {
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				loss := lossOf(w, b, x, y)
				lv := loss.Float64Values()[0]
				// same kernels for the forward pass: the loss must agree
				// to float32 rounding of the (slightly different) weights
				if math.Abs(lv-rc.Losses[step]) > 1e-5*math.Abs(rc.Losses[step]) {
					t.Fatalf("step %d: loss %.9g, torch %.9g", step, lv, rc.Losses[step])
				}
				loss.MustBackward()
				loss.MustDrop()
				if rc.Name == "adam_sam" {
					sam := &SAM{Rho: 0.05}
					if err := sam.Perturb(opt); err != nil {
						t.Fatal(err)
					}
					if err := opt.ZeroGrad(); err != nil {
						t.Fatal(err)
					}
					l2 := lossOf(w, b, x, y)
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
			if i, ok := closeTo(gw, rc.W, 2e-6); !ok {
				t.Fatalf("weight[%d] = %.9g, torch %.9g", i, gw[max(i, 0)], rc.W[max(i, 0)])
			}
			if i, ok := closeTo(gb, rc.B, 2e-6); !ok {
				t.Fatalf("bias[%d] = %.9g, torch %.9g", i, gb[max(i, 0)], rc.B[max(i, 0)])
			}
			runtime.KeepAlive(vs)
		})
	}
}
