package fer

import (
	"errors"
	"fmt"

	lib "github.com/sugarme/gotch/libtch"
)

// FLOPCount is what CountFLOPs counted while its function ran.
//
// Convention (that of torch.utils.flop_counter and of most papers): one
// multiply-accumulate is 2 FLOPs, and only the GEMM-like ops are counted,
// from the shapes of their inputs as libtorch dispatches them: mm, addmm,
// bmm, baddbmm (linear layers, matmul, attention on libtorch 1.13),
// convolution (2·N·|W|·output positions; grouped and depthwise
// convolutions through W's shape), convolution_backward (one such
// convolution for the input gradient, one for the weight gradient, each
// only when requested) and the fused attention kernels of libtorch >= 2.0
// (4·B·H·Nq·Nk·D forward, twice that backward). Elementwise ops,
// normalisation, pooling, softmax and the optimizer update are not
// counted: they are memory-bound and small in FLOPs. A training step
// therefore counts about 3× its forward pass (forward, input gradient,
// weight gradient), a little less because the first layer needs no input
// gradient.
type FLOPCount struct {
	FLOPs int64 // 2 × multiply-accumulates of the GEMM-like ops
	GEMMs int64 // GEMM-like ops counted
	// Ops is the number of outermost ops libtorch dispatched (all kinds,
	// including the autograd engine's backward ops): the calls whose fixed
	// cost (fer → cgo → gotch's wrapper → dispatcher) small models pay.
	Ops int64
	// OpNames counts the outermost ops by libtorch name ("aten::conv2d"):
	// what a step dispatches, to compare with PyTorch's profiler.
	OpNames map[string]int64
}

// CountFLOPs runs fn with libtorch's op observer counting (FLOPCount). The
// count covers every thread, so run nothing else on libtorch meanwhile.
// Counting makes each op slower (its inputs are boxed for the observer):
// do not time fn.
func CountFLOPs(fn func() error) (FLOPCount, error) {
	if err := lib.FerFlopsStart(); err != nil {
		return FLOPCount{}, fmt.Errorf("count FLOPs: %w", err)
	}
	ferr := fn()
	flops, gemms, ops, err := lib.FerFlopsStop()
	if err != nil {
		return FLOPCount{}, errors.Join(ferr, fmt.Errorf("count FLOPs: %w", err))
	}
	if ferr != nil {
		return FLOPCount{}, ferr
	}
	names, err := lib.FerFlopsOpCounts()
	if err != nil {
		return FLOPCount{}, fmt.Errorf("count FLOPs: %w", err)
	}
	return FLOPCount{FLOPs: flops, GEMMs: gemms, Ops: ops, OpNames: names}, nil
}
