package models

import (
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/losses"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// The GRU equals PyTorch's nn.GRU (2 layers, batch_first) with the same
// weights, loaded by PyTorch's parameter names, within 1e-6; and with the
// same seed it draws nn.GRU's initial weights.
func TestGRUMatchesPyTorch(t *testing.T) {
	lockThread(t)
	if out, err := exec.Command(systemPython, "-c", "import torch").CombinedOutput(); err != nil {
		t.Skipf("PyTorch reference unavailable: %s cannot import torch (%v: %s); install python3-torch (setup-gotch.sh does)", systemPython, err, out)
	}
	file := filepath.Join(t.TempDir(), "gru.pt")
	if out, err := exec.Command(systemPython, "testdata/gru_ref.py", file).CombinedOutput(); err != nil {
		t.Fatalf("gru_ref.py: %v\n%s", err, out)
	}
	sd, err := ReadStateDict(file)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Drop()
	cfg := GRUConfig{InputSize: 5, HiddenSize: 7, NumLayers: 2}

	// initialisation: the same random numbers in the same order
	fer.SeedTorch(7)
	ivs := newCPUStore()
	if _, err := NewGRU(ivs.Root(), cfg); err != nil {
		t.Fatal(err)
	}
	for name, v := range ivs.Variables() {
		want := sd.Tensors["init."+name]
		if want == nil {
			t.Fatalf("no PyTorch init for %s", name)
		}
		if d := maxDiff(t, &v, want); d != 0 {
			t.Errorf("initial %s differs from nn.GRU's by %g", name, d)
		}
	}
	runtime.KeepAlive(ivs) // Variables() copies do not keep the weights alive (GOTCH.md)

	vs := newCPUStore()
	g, err := NewGRU(vs.Root().Sub("gru"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := LoadStateDict(vs, sd, LoadOptions{AllowUnexpected: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != 8 {
		t.Fatalf("loaded %v", rep.Loaded)
	}
	for _, c := range []struct{ x, y string }{{"x", "y"}, {"", "y_seq1"}} {
		x := sd.Tensors["x"]
		if c.x == "" {
			x = x.MustNarrow(1, 0, 1, false)
		}
		var y *ts.Tensor
		ts.NoGrad(func() { y, err = g.Forward(x, false) })
		if err != nil {
			t.Fatal(err)
		}
		d := maxDiff(t, y, sd.Tensors[c.y])
		t.Logf("GRU vs nn.GRU (%s): max |diff| %.3g", c.y, d)
		if d > 1e-6 {
			t.Errorf("%s: max |diff| %g > 1e-6", c.y, d)
		}
	}
	runtime.KeepAlive(vs)
	if _, err := g.Forward(sd.Tensors["y"], false); err == nil || !strings.Contains(err.Error(), "want [B, T, 5]") {
		t.Fatalf("wrong width: %v", err)
	}
}

func maxDiff(t *testing.T, a, b *ts.Tensor) float64 {
	t.Helper()
	d := a.MustSub(b, false).MustAbs(true).MustMax(true)
	return d.Float64Values()[0]
}

// Parameter counts of the published sizes, checked by hand:
//
//	VGG-16 conv stack 14,714,688; fc6 25088·4096+4096 = 102,764,544;
//	fc7 16,781,312; MT head 4096·17+17 = 69,649            → MT-VGG 134,330,193
//	GRU l0 384·(4096+128)+768 = 1,622,784, l1 384·256+768 = 99,072;
//	head 128·17+17 = 2,193                                 → MT-VGG-RNN 119,203,281
//	A/V: audio bn0 2, blocks 288+64, 18432+128, 73728+256, fc 128·128+128;
//	GRU l0 input 4224: +384·128                            → 119,375,475
//	ResNet-50 trunk 23,508,032; head 2048·10+10; arc 7·2048 → MT-ArcRes 23,542,858
//	VGG-16 + fc6 + fc7 134,260,544; head 40,970; arc 28,672 → MT-ArcVGG 134,330,186
func TestMTParamCounts(t *testing.T) {
	av := DefaultMTVGGConfig(true)
	av.Audio = true
	for _, c := range []struct {
		name string
		n    func() (int64, error)
		want int64
	}{
		{"mt-vgg", func() (int64, error) { return MTVGGParamCount(DefaultMTVGGConfig(false)) }, 134330193},
		{"mt-vgg-rnn", func() (int64, error) { return MTVGGParamCount(DefaultMTVGGConfig(true)) }, 119203281},
		{"av-mt-vgg-rnn", func() (int64, error) { return MTVGGParamCount(av) }, 119203281 + 2 + 288 + 64 + 18432 + 128 + 73728 + 256 + 128*128 + 128 + 384*128},
		{"mt-arcres", func() (int64, error) { return MTArcParamCount(DefaultMTArcConfig("resnet50")) }, 23508032 + 20490 + 14336},
		{"mt-arcvgg", func() (int64, error) { return MTArcParamCount(DefaultMTArcConfig("vgg16")) }, 134260544 + 40970 + 28672},
	} {
		n, err := c.n()
		if err != nil {
			t.Fatal(err)
		}
		if n != c.want {
			t.Errorf("%s: %d parameters, want %d", c.name, n, c.want)
		}
	}
}

func randn(t *testing.T, r *rand.Rand, shape ...int64) *ts.Tensor {
	t.Helper()
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	x, err := ts.NewTensorFromData(d, shape)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// tinyMTVGG is MT-VGG with 16-wide fc layers (the conv stack is VGG-16's).
func tinyMTVGG(recurrent, audio bool) MTVGGConfig {
	c := DefaultMTVGGConfig(recurrent)
	c.Hidden, c.GRUHidden, c.Audio, c.AudioWidths, c.AudioDim = 16, 8, audio, []int64{4, 8}, 6
	return c
}

// Output shapes and ranges of the five models on frames and windows, and
// that a multi-task loss reaches every parameter.
func TestMTModelsForward(t *testing.T) {
	lockThread(t)
	r := rand.New(rand.NewPCG(3, 3))
	const B, T, S = 2, 3, 32
	type run struct {
		name  string
		build func(p *nn.Path) (func(x, a *ts.Tensor, train bool) (*MTOutputs, error), error)
		clip  bool
		audio bool
		arc   bool
	}
	vggRun := func(c MTVGGConfig) func(p *nn.Path) (func(x, a *ts.Tensor, train bool) (*MTOutputs, error), error) {
		return func(p *nn.Path) (func(x, a *ts.Tensor, train bool) (*MTOutputs, error), error) {
			m, err := NewMTVGG(p, c)
			if err != nil {
				return nil, err
			}
			return m.Forward, nil
		}
	}
	arcRun := func(c MTArcConfig) func(p *nn.Path) (func(x, a *ts.Tensor, train bool) (*MTOutputs, error), error) {
		return func(p *nn.Path) (func(x, a *ts.Tensor, train bool) (*MTOutputs, error), error) {
			m, err := NewMTArc(p, c)
			if err != nil {
				return nil, err
			}
			return func(x, _ *ts.Tensor, train bool) (*MTOutputs, error) { return m.Forward(x, train) }, nil
		}
	}
	arcVGG := DefaultMTArcConfig("vgg16")
	arcVGG.Hidden = 16
	for _, c := range []run{
		{"mt-vgg", vggRun(tinyMTVGG(false, false)), false, false, false},
		{"mt-vgg on windows", vggRun(tinyMTVGG(false, false)), true, false, false},
		{"mt-vgg-rnn", vggRun(tinyMTVGG(true, false)), true, false, false},
		{"av-mt-vgg-rnn", vggRun(tinyMTVGG(true, true)), true, true, false},
		{"mt-arcres", arcRun(DefaultMTArcConfig("resnet50")), false, false, true},
		{"mt-arcvgg", arcRun(arcVGG), false, false, true},
	} {
		fer.SeedTorch(1)
		vs := newCPUStore()
		fwd, err := c.build(vs.Root())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var x, a *ts.Tensor
		lead := []int64{B}
		if c.clip {
			x = randn(t, r, B, T, 3, S, S)
			lead = []int64{B, T}
			if c.audio {
				a = randn(t, r, B, T, 1, 16, 16)
			}
		} else {
			x = randn(t, r, B, 3, S, S)
		}
		o, err := fwd(x, a, true)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := map[string][]int64{"va": append(append([]int64{}, lead...), 2), "logits": append(append([]int64{}, lead...), 7), "au": append(append([]int64{}, lead...), 8)}
		for name, tt := range map[string]*ts.Tensor{"va": o.VA, "logits": o.Logits, "au": o.AU} {
			if s := tt.MustSize(); !slices.Equal(s, want[name]) {
				t.Errorf("%s: %s shape %v, want %v", c.name, name, s, want[name])
			}
		}
		for _, v := range o.VA.Float64Values() {
			if !(v > -1 && v < 1) {
				t.Fatalf("%s: va %v outside (-1, 1)", c.name, v)
			}
		}
		if c.arc {
			for i, v := range o.Cos.Float64Values() {
				if math.Abs(v) > 1+1e-6 || math.Abs(o.Logits.Float64Values()[i]-64*v) > 1e-3 {
					t.Fatalf("%s: cos %v logit %v", c.name, v, o.Logits.Float64Values()[i])
				}
			}
		}
		// one multi-task loss backward reaches every parameter
		nLead := int64(1)
		for _, l := range lead {
			nLead *= l
		}
		labels := make([]int64, nLead)
		va := make([]float32, 2*nLead)
		au := make([]float32, 8*nLead)
		for i := range labels {
			labels[i] = int64(i % 7)
			va[2*i], va[2*i+1] = float32(r.Float64()*2-1), float32(r.Float64()*2-1)
			for k := range 8 {
				au[8*i+k] = float32((i + k) % 2)
			}
		}
		b, err := fer.NewBatch(gotch.CPU, nil, nil, nil, map[string]any{
			fer.TargetLabel: fer.TensorData64{Data: labels, Shape: lead},
			fer.TargetVA:    fer.TensorData{Data: va, Shape: append(append([]int64{}, lead...), 2)},
			fer.TargetAU:    fer.TensorData{Data: au, Shape: append(append([]int64{}, lead...), 8)},
		})
		if err != nil {
			t.Fatal(err)
		}
		out := fer.Outputs{fer.OutputVA: o.VA, fer.OutputLogits: o.Logits, fer.OutputAU: o.AU}
		loss := fer.MultiTaskLoss{WVA: 1, WExpr: 1, WAU: 1}
		if c.arc {
			out[fer.OutputCosine] = o.Cos
			loss.ArcFace, _ = losslessArc()
		}
		lv, err := loss.Loss(out, b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := lv.Total.Backward(); err != nil {
			t.Fatal(err)
		}
		for name, v := range vs.Variables() {
			if !v.MustRequiresGrad() {
				continue
			}
			g := v.MustGrad(false)
			if ok, _ := g.Defined(); !ok {
				t.Errorf("%s: %s has no gradient", c.name, name)
				continue
			}
			if s := g.MustAbs(true).MustSum(gotch.Double, true).Float64Values()[0]; !(s > 0) {
				t.Errorf("%s: %s gradient is zero", c.name, name)
			}
		}
		b.Drop()
		lv.Drop()
		o.Drop()
		runtime.KeepAlive(vs)
	}
}

func losslessArc() (*losses.ArcFace, error) { return losses.NewArcFace(64, 0.5, false) }
