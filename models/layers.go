package models

import (
	"math"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// The layers below mirror torch.nn's Conv2d, BatchNorm2d/1d, Linear and
// PReLU: same parameter names and shapes, same default initialisation
// (drawing the same random numbers in the same order as PyTorch), and the
// same libtorch op in the forward pass. fer does not use gotch's nn.Conv2D,
// nn.BatchNorm and nn.Linear because (1) their constructors call Must* and
// end the process on error, (2) they cannot count parameters without
// allocating them, and (3) their defaults differ from PyTorch's: gotch's
// "KaimingUniform" init draws N(0, 1) and its BatchNorm weight is
// U(0, 1), where PyTorch uses kaiming_uniform(a=√5) and 1.
//
// ForwardT has gotch's nn.ModuleT signature, which has no error result:
// a libtorch failure inside a forward pass (say, an input with the wrong
// number of channels) ends the process, as it does in gotch's own layers.
// Constructors, checkpoint loading and saving return errors.

// Conv2d is torch.nn.Conv2d with square kernels: "weight" [out, in/groups,
// k, k] and an optional "bias" [out].
type Conv2d struct {
	Weight *ts.Tensor
	Bias   *ts.Tensor // nil when built without bias

	In, Out, Kernel, Stride, Padding, Groups int64
}

// convOpts are Conv2d's optional arguments; zero values mean stride 1, no
// padding, one group, no bias.
type convOpts struct {
	stride, padding, groups int64
	bias                    bool
}

// newConv2d builds a Conv2d under b, initialised like nn.Conv2d's
// reset_parameters: kaiming_uniform(a=√5) weight, U(±1/√fan_in) bias.
func newConv2d(b *builder, in, out, k int64, o convOpts) *Conv2d {
	c := &Conv2d{In: in, Out: out, Kernel: k, Stride: max(o.stride, 1), Padding: o.padding, Groups: max(o.groups, 1)}
	fanIn := in / c.Groups * k * k
	c.Weight = b.param("weight", []int64{out, in / c.Groups, k, k}, initUniform(kaimingUniformA5Bound(fanIn)))
	if o.bias {
		c.Bias = b.param("bias", []int64{out}, initUniform(1/math.Sqrt(float64(fanIn))))
	}
	return c
}

// ForwardT applies the convolution.
func (c *Conv2d) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return c.forward(x, c.Padding)
}

func (c *Conv2d) forward(x *ts.Tensor, padding int64) *ts.Tensor {
	bias := c.Bias
	if bias == nil {
		bias = ts.NewTensor() // undefined tensor: no bias
		defer bias.MustDrop()
	}
	return ts.MustConv2d(x, c.Weight, bias, []int64{c.Stride, c.Stride},
		[]int64{padding, padding}, []int64{1, 1}, c.Groups)
}

// fanOut is PyTorch's fan_out of the weight (out·k·k, groups ignored).
func (c *Conv2d) fanOut() int64 { return c.Out * c.Kernel * c.Kernel }

// BatchNorm is torch.nn.BatchNorm2d (or BatchNorm1d on [N, C] input):
// "weight", "bias" and the buffers "running_mean", "running_var". PyTorch's
// third buffer, num_batches_tracked, only matters when momentum is None
// (cumulative averaging), which none of these models uses; it is skipped
// when loading and not saved.
type BatchNorm struct {
	Weight, Bias            *ts.Tensor
	RunningMean, RunningVar *ts.Tensor
	Eps, Momentum           float64
}

// newBatchNorm builds a BatchNorm with weight 1, bias 0, running mean 0
// and variance 1 (PyTorch's defaults; gotch's draws the weight from
// U(0, 1)). eps 0 means PyTorch's 1e-5.
func newBatchNorm(b *builder, c int64, eps float64) *BatchNorm {
	if eps == 0 {
		eps = 1e-5
	}
	return &BatchNorm{
		Weight:      b.param("weight", []int64{c}, initConst(1)),
		Bias:        b.param("bias", []int64{c}, initConst(0)),
		RunningMean: b.buffer("running_mean", []int64{c}, 0),
		RunningVar:  b.buffer("running_var", []int64{c}, 1),
		Eps:         eps,
		Momentum:    0.1,
	}
}

// ForwardT normalises with batch statistics (and updates the running ones)
// when train is true, with the running statistics otherwise.
func (bn *BatchNorm) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return ts.MustBatchNorm(x, bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar, train, bn.Momentum, bn.Eps, true)
}

// reset sets weight 1 and bias 0 (the re-initialisation loops of
// torchvision and timm; no random numbers).
func (bn *BatchNorm) reset(b *builder) {
	b.reinit(bn.Weight, initConst(1))
	b.reinit(bn.Bias, initConst(0))
}

// Linear is torch.nn.Linear: "weight" [out, in] and "bias" [out]; the
// forward pass is at::linear, as F.linear's.
type Linear struct {
	Weight, Bias *ts.Tensor
	In, Out      int64
}

// newLinear builds a Linear initialised like nn.Linear: kaiming_uniform
// (a=√5) weight, U(±1/√in) bias.
func newLinear(b *builder, in, out int64) *Linear {
	return &Linear{
		Weight: b.param("weight", []int64{out, in}, initUniform(kaimingUniformA5Bound(in))),
		Bias:   b.param("bias", []int64{out}, initUniform(1/math.Sqrt(float64(in)))),
		In:     in,
		Out:    out,
	}
}

// ForwardT maps [N, In] to [N, Out].
func (l *Linear) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return ts.MustLinear(x, l.Weight, l.Bias)
}

// PReLU is torch.nn.PReLU(num_parameters=C): one slope per channel,
// "weight" [C], initialised to 0.25.
type PReLU struct{ Weight *ts.Tensor }

func newPReLU(b *builder, c int64) *PReLU {
	return &PReLU{Weight: b.param("weight", []int64{c}, initConst(0.25))}
}

// ForwardT applies max(0,x) + weight·min(0,x) per channel.
func (p *PReLU) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return x.MustPrelu(p.Weight, false)
}

// Shared functional pieces of the forward passes. Each takes ownership of
// x when del is true (gotch's convention), so intermediate tensors are
// freed as soon as they are used.

// relu is F.relu. With del (the caller hands x over) it runs in place, as
// torchvision's and timm's ReLU(inplace=True) do: no new activation tensor
// per layer (an allocation and a full write of the activation saved; on
// the demo CNN about a tenth of the forward pass). Autograd allows it
// wherever those models do it (after batch norm, a convolution, a linear
// layer or a residual sum).
func relu(x *ts.Tensor, del bool) *ts.Tensor {
	if !del {
		return x.MustRelu(false)
	}
	if err := inPlace("relu_", func(out *lib.Ctensor) { lib.AtgRelu_(out, handle(x)) }); err != nil {
		panic(err)
	}
	return x
}

// silu is F.silu, in place with del as timm's SiLU(inplace=True).
func silu(x *ts.Tensor, del bool) *ts.Tensor {
	if !del {
		return x.MustSilu(false)
	}
	if err := inPlace("silu_", func(out *lib.Ctensor) { lib.AtgSilu_(out, handle(x)) }); err != nil {
		panic(err)
	}
	return x
}

func add(x, y *ts.Tensor, delX bool) *ts.Tensor { return x.MustAdd(y, delX) }

// globalAvgPool is nn.AdaptiveAvgPool2d(1) followed by torch.flatten(x, 1).
func globalAvgPool(x *ts.Tensor, del bool) *ts.Tensor {
	p := x.MustAdaptiveAvgPool2d([]int64{1, 1}, del)
	return p.MustFlatten(1, -1, true)
}

// dropout is F.dropout (a no-op when p is 0 or not training).
func dropout(x *ts.Tensor, p float64, train bool, del bool) *ts.Tensor {
	if p == 0 || !train {
		if del {
			return x
		}
		return x.MustShallowClone()
	}
	y := ts.MustDropout(x, p, train)
	if del {
		x.MustDrop()
	}
	return y
}

// dropPath is timm's DropPath (stochastic depth): in training, each sample
// of the batch keeps the residual branch with probability 1−p, scaled by
// 1/(1−p).
func dropPath(x *ts.Tensor, p float64, train bool) *ts.Tensor {
	if p == 0 || !train {
		return x
	}
	keep := 1 - p
	shape := x.MustSize()
	maskShape := make([]int64, len(shape))
	for i := range maskShape {
		maskShape[i] = 1
	}
	maskShape[0] = shape[0]
	// x.new_empty(shape).bernoulli_(keep), as timm; at::bernoulli(t, p)
	// fills a tensor shaped like t the same way.
	empty := ts.MustEmpty(maskShape, x.DType(), x.MustDevice())
	mask := empty.MustBernoulliP(keep, true)
	scaled := mask.MustDivScalar(ts.FloatScalar(keep), true)
	y := x.MustMul(scaled, true)
	scaled.MustDrop()
	return y
}
