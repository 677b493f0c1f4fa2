package fer

import (
	"errors"
	"testing"

	"github.com/fer-research/fer/fer/autocast"
	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The FLOP counter against hand-computed counts of a small model:
// a 3×3 convolution, a strided padded one, a depthwise one, a linear
// layer and a batched matmul, forward and backward.
func TestCountFLOPsByHand(t *testing.T) {
	lockThread(t)
	randn := func(grad bool, shape ...int64) *ts.Tensor {
		x := ts.MustRandn(shape, gotch.Float, gotch.CPU)
		if grad {
			x.MustRequiresGrad_(true)
		}
		t.Cleanup(x.MustDrop)
		return x
	}
	const N = 4
	x := randn(false, N, 3, 16, 16)
	w1 := randn(true, 8, 3, 3, 3) // 3×3, pad 1: 16×16 out
	w2 := randn(true, 8, 8, 3, 3) // 3×3, stride 2, pad 1: 8×8 out
	w3 := randn(true, 8, 1, 5, 5) // depthwise 5×5, pad 2: 8×8 out
	fcW := randn(true, 10, 8*8*8) // linear 512 → 10
	fcB := randn(true, 10)        //
	a := randn(true, N, 6, 7)     // bmm [4,6,7]·[4,7,5]
	b := randn(false, N, 7, 5)    //
	conv1 := int64(2 * N * 8 * 3 * 9 * 16 * 16)
	conv2 := int64(2 * N * 8 * 8 * 9 * 8 * 8)
	conv3 := int64(2 * N * 8 * 1 * 25 * 8 * 8)
	fc := int64(2 * N * 512 * 10)
	bmm := int64(2 * N * 6 * 7 * 5)
	forward := func() (*ts.Tensor, error) {
		h1 := ts.MustConv2d(x, w1, ts.None, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1)
		h2 := ts.MustConv2d(h1, w2, ts.None, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, 1)
		h3 := ts.MustConv2d(h2, w3, ts.None, []int64{1, 1}, []int64{2, 2}, []int64{1, 1}, 8)
		f := h3.MustFlatten(1, -1, false)
		y := ts.MustLinear(f, fcW, fcB)
		m := a.MustMatmul(b, false)
		s := y.MustSum(gotch.Float, false)
		out := s.MustAdd(m.MustSum(gotch.Float, true), true)
		for _, u := range []*ts.Tensor{h1, h2, h3, f, y, m} {
			u.MustDrop()
		}
		return out, nil
	}
	inference := func() error { // forward without autograd, as in eval
		return torchx.NoGrad(func() error {
			out, err := forward()
			out.MustDrop()
			return err
		})
	}
	wantFwd := conv1 + conv2 + conv3 + fc + bmm
	c, err := CountFLOPs(inference)
	if err != nil {
		t.Fatal(err)
	}
	if c.FLOPs != wantFwd || c.GEMMs != 5 {
		t.Errorf("forward: %d FLOPs in %d GEMM-like ops, want %d in 5", c.FLOPs, c.GEMMs, wantFwd)
	}
	// backward: x needs no gradient, so conv1 computes only its weight
	// gradient; conv2, conv3 both; the linear layer's input and weight
	// gradients are two mm of its size; bmm: only a's gradient.
	wantBwd := conv1 + 2*conv2 + 2*conv3 + 2*fc + bmm
	c, err = CountFLOPs(func() error {
		out, err := forward()
		if err != nil {
			return err
		}
		defer out.MustDrop()
		return out.Backward()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forward+backward: %+v", c)
	if c.FLOPs != wantFwd+wantBwd {
		t.Errorf("forward+backward: %d FLOPs, want %d (forward %d + backward %d)", c.FLOPs, wantFwd+wantBwd, wantFwd, wantBwd)
	}
	if c.Ops < 20 {
		t.Errorf("%d dispatched ops, want the whole graph's", c.Ops)
	}
	var named int64
	for _, n := range c.OpNames {
		named += n
	}
	if named != c.Ops || c.OpNames["aten::conv2d"] != 3 || c.OpNames["aten::linear"] != 1 || c.OpNames["aten::matmul"] != 1 {
		t.Errorf("ops by name %v (total %d, want %d)", c.OpNames, named, c.Ops)
	}

	// autocast re-dispatches each op in bfloat16: counted once
	c, err = CountFLOPs(func() error {
		exit, err := autocast.Enter(gotch.CPU, gotch.Invalid)
		if err != nil {
			return err
		}
		defer exit()
		return inference()
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.FLOPs != wantFwd {
		t.Errorf("forward under autocast: %d FLOPs, want %d", c.FLOPs, wantFwd)
	}

	// errors: the function's, and a count inside a count
	errTest := errors.New("test")
	if _, err := CountFLOPs(func() error { return errTest }); err != errTest {
		t.Errorf("fn error: %v", err)
	}
	_, err = CountFLOPs(func() error {
		_, err := CountFLOPs(func() error { return nil })
		return err
	})
	if err == nil {
		t.Error("nested count accepted")
	}
	// and the counter is usable again afterwards
	if c, err := CountFLOPs(func() error { return nil }); err != nil || c.FLOPs != 0 {
		t.Errorf("count after errors: %+v %v", c, err)
	}
}
