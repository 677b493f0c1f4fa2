package models

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// LayerNorm is torch.nn.LayerNorm over the last dimension: "weight" [D]
// (initialised to 1) and "bias" [D] (0), the forward pass at::layer_norm.
// Built through the package's builder rather than gotch's nn.LayerNorm so
// it can be counted without allocating and its constructor cannot end the
// process (see layers.go).
type LayerNorm struct {
	Weight, Bias *ts.Tensor
	Dim          int64
	Eps          float64
}

// newLayerNorm builds a LayerNorm of width d; eps 0 means PyTorch's 1e-5
// (timm's ViT/TimeSformer use 1e-6: pass it explicitly).
func newLayerNorm(b *builder, d int64, eps float64) *LayerNorm {
	if eps == 0 {
		eps = 1e-5
	}
	return &LayerNorm{
		Weight: b.param("weight", []int64{d}, initConst(1)),
		Bias:   b.param("bias", []int64{d}, initConst(0)),
		Dim:    d,
		Eps:    eps,
	}
}

// Forward normalises x [..., D] over its last dimension.
func (ln *LayerNorm) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	y, err := ts.LayerNorm(x, []int64{ln.Dim}, ln.Weight, ln.Bias, ln.Eps, true)
	if err != nil {
		return nil, fmt.Errorf("layer_norm(%d): %w", ln.Dim, err)
	}
	return y, nil
}

// ForwardT is Forward with gotch's nn.ModuleT signature; like the other
// layers' ForwardT (layers.go) a libtorch failure ends the process.
func (ln *LayerNorm) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	return ts.MustLayerNorm(x, []int64{ln.Dim}, ln.Weight, ln.Bias, ln.Eps, true)
}
