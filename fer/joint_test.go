package fer

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Tests that prove the Go <-> libtorch joint built by setup-gotch.sh works.

// tinyNet is a conv -> batch-norm -> relu -> pool -> linear classifier.
type tinyNet struct {
	conv *nn.Conv2D
	bn   *nn.BatchNorm
	fc   *nn.Linear
}

func newTinyNet(p *nn.Path) *tinyNet {
	return &tinyNet{
		conv: nn.NewConv2D(p.Sub("conv"), 1, 8, 3, nn.DefaultConv2DConfig()),
		bn:   nn.BatchNorm2D(p.Sub("bn"), 8, nn.DefaultBatchNormConfig()),
		fc:   nn.NewLinear(p.Sub("fc"), 8, 2, nn.DefaultLinearConfig()),
	}
}

func (m *tinyNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := m.conv.Forward(x)
	b := m.bn.ForwardT(h, train)
	h.MustDrop()
	r := b.MustRelu(true)
	p := r.MustAdaptiveAvgPool2d([]int64{1, 1}, true)
	f := p.MustFlatten(1, -1, true)
	out := m.fc.Forward(f)
	f.MustDrop()
	return out
}

// A small conv net learns to tell bright-centre images from dark-centre
// ones on the CPU: its loss must fall by more than half in 40 Adam steps.
func TestSmallConvNetTrains(t *testing.T) {
	lockThread(t)
	SeedTorch(7)
	vs := nn.NewVarStore(gotch.CPU)
	net := newTinyNet(vs.Root())
	opt, err := nn.DefaultAdamConfig().Build(vs, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	// batch of 16 8x8 images; class 1 has a bright centre
	x := ts.MustRandn([]int64{16, 1, 8, 8}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	labels := make([]int64, 16)
	for i := range labels {
		labels[i] = int64(i % 2)
	}
	y := ts.MustOfSlice(labels)
	defer y.MustDrop()
	mask := ts.MustZeros([]int64{16, 1, 8, 8}, gotch.Float, gotch.CPU)
	for i := 0; i < 16; i += 2 {
		mask.MustNarrow(0, int64(i+1), 1, false).MustNarrow(2, 2, 4, true).MustNarrow(3, 2, 4, true).MustFill_(ts.FloatScalar(3))
	}
	xs := x.MustAdd(mask, false)
	mask.MustDrop()
	defer xs.MustDrop()

	var first, last float64
	for step := 0; step < 40; step++ {
		logits := net.ForwardT(xs, true)
		loss := logits.CrossEntropyForLogits(y)
		opt.BackwardStep(loss)
		v := loss.Float64Values()[0]
		if step == 0 {
			first = v
		}
		last = v
		logits.MustDrop()
		loss.MustDrop()
	}
	if !(last < first/2) {
		t.Fatalf("loss did not fall by half: %.4f -> %.4f", first, last)
	}
	t.Logf("loss %.4f -> %.4f", first, last)
}

// Calling a function the patcher stubbed returns an error naming it; the
// process does not crash.
func TestStubbedFunctionReturnsError(t *testing.T) {
	lockThread(t)
	if !contains(StubbedFunctions(), "atg_scaled_dot_product_attention") {
		t.Skipf("libtorch %s compiles scaled_dot_product_attention, nothing stubbed to call", LibtorchVersion())
	}
	q := ts.MustOnes([]int64{1, 2, 4}, gotch.Float, gotch.CPU)
	defer q.MustDrop()
	mask := ts.MustOnes([]int64{2, 2}, gotch.Bool, gotch.CPU)
	defer mask.MustDrop()
	out, err := ts.ScaledDotProductAttention(q, q, q, mask, 0, false, nil)
	if err == nil {
		out.MustDrop()
		t.Fatal("stubbed scaled_dot_product_attention returned no error")
	}
	if !strings.Contains(err.Error(), "atg_scaled_dot_product_attention is not available") {
		t.Fatalf("error does not name the stubbed function: %v", err)
	}
	// the next call on this thread starts clean
	s, err := q.Sum(gotch.Float, false)
	if err != nil {
		t.Fatalf("error leaked into the next call: %v", err)
	}
	if v := s.Float64Values()[0]; v != 8 {
		t.Fatalf("sum = %v", v)
	}
	s.MustDrop()
}

// None of the ops the five systems need is stubbed on Debian's 1.13.1.
func TestCoreOpsNotStubbed(t *testing.T) {
	lockThread(t)
	stubbed := StubbedFunctions()
	if LibtorchVersion() == "1.13.1" && len(stubbed) == 0 {
		t.Fatal("gotch v0.9.1 targets libtorch 2.1: against 1.13.1 some 2.x ops must have been stubbed; the stub list is empty, so it was not recorded")
	}
	core := []string{"conv2d", "batch_norm", "layer_norm", "linear", "matmul", "softmax",
		"cross_entropy_loss", "gru", "lstm", "cat", "stack", "adaptive_avg_pool2d",
		"dropout", "embedding", "gelu", "max_pool2d", "relu", "log_softmax", "nll_loss", "cdist"}
	for _, op := range core {
		if contains(stubbed, "atg_"+op) {
			t.Errorf("atg_%s is stubbed for libtorch %s", op, LibtorchVersion())
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
