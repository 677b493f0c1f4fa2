package fer

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// testMLP is the test model: flatten → linear → batch norm → ReLU →
// dropout → linear. Small enough for hundreds of steps per second, and it
// has what resume must carry: buffers (BN running stats) and randomness
// (dropout).
type testMLP struct {
	FC1  *nn.Linear
	BN   *nn.BatchNorm
	FC2  *nn.Linear
	Drop float64
}

func newTestMLP(vs *nn.VarStore, spec ModelSpec) (Model, error) {
	in := int64(1)
	for _, d := range spec.InputShape {
		in *= d
	}
	p := vs.Root()
	// torch's default U(±1/√fan_in); gotch's default KaimingUniform is N(0,1)
	lin := func(fanIn int64) *nn.LinearConfig {
		c := nn.DefaultLinearConfig()
		b := 1 / math.Sqrt(float64(fanIn))
		c.WsInit = nn.NewUniformInit(-b, b)
		return c
	}
	net := &testMLP{
		FC1:  nn.NewLinear(p.Sub("fc1"), in, 24, lin(in)),
		BN:   nn.BatchNorm1D(p.Sub("bn"), 24, nn.DefaultBatchNormConfig()),
		FC2:  nn.NewLinear(p.Sub("fc2"), 24, int64(spec.NumClasses), lin(24)),
		Drop: 0.3,
	}
	return NewClassifier(net, vs), nil
}

func (m *testMLP) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	f := x.MustFlatten(1, -1, false)
	h := m.FC1.Forward(f)
	f.MustDrop()
	b := m.BN.ForwardT(h, train)
	h.MustDrop()
	r := b.MustRelu(true)
	d := ts.MustDropout(r, m.Drop, train)
	r.MustDrop()
	out := m.FC2.Forward(d)
	d.MustDrop()
	return out
}

func init() {
	RegisterModel("test-tiny", "test model", newTestMLP)
}

// lockThread pins the test's goroutine to its OS thread: every test runs
// in its own goroutine, and libtorch's grad mode is per thread (TestMain's
// lock covers only the main goroutine).
func lockThread(t testing.TB) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

// tinyConfig is a run of the tiny model on a small synth set (32×32).
func tinyConfig(t *testing.T, overrides ...string) *Config {
	t.Helper()
	lockThread(t)
	base := []string{
		"model.name=test-tiny",
		"data.name=synth",
		"data.options={train_n: 120, val_n: 42, test_n: 0, size: 32, crop: 0, shift: 2}",
		"optimizer={name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.0005}",
		"schedule={name: cosine}",
		"epochs=3",
		"batch_size=16",
		"seed=7",
		"device=cpu",
		"run_dir=" + filepath.Join(t.TempDir(), "run"),
	}
	cfg, err := ParseConfig(nil, "test", append(base, overrides...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// weights returns every VarStore variable's values by name.
func weights(m Model) map[string][]float64 {
	out := map[string][]float64{}
	for name, t := range m.VarStore().Variables() {
		tt := t
		out[name] = tt.Float64Values()
	}
	runtime.KeepAlive(m)
	return out
}

// params is weights restricted to trainable parameters.
func params(m Model) map[string][]float64 {
	out := map[string][]float64{}
	for name, v := range weights(m) {
		if !strings.Contains(name, "running_") {
			out[name] = v
		}
	}
	return out
}

func sameWeights(a, b map[string][]float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d vs %d variables", len(a), len(b))
	}
	for name, va := range a {
		vb, ok := b[name]
		if !ok {
			return fmt.Errorf("%s missing", name)
		}
		for i := range va {
			if va[i] != vb[i] && !(math.IsNaN(va[i]) && math.IsNaN(vb[i])) {
				return fmt.Errorf("%s[%d]: %v vs %v", name, i, va[i], vb[i])
			}
		}
	}
	return nil
}

var cpu = gotch.CPU
