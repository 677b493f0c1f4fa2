package models

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// GRU is torch.nn.GRU(input_size, hidden_size, num_layers, batch_first=
// True, dropout) with PyTorch's parameter names and shapes, so a
// PyTorch state_dict loads by name:
//
//	weight_ih_l{k} [3·H, in_k]   (r, z, n gates stacked, as PyTorch)
//	weight_hh_l{k} [3·H, H]
//	bias_ih_l{k}   [3·H]
//	bias_hh_l{k}   [3·H]
//
// (gotch's nn.GRU names them w_ih/b_ih... instead, GOTCH.md). The forward
// pass is libtorch's at::gru, the kernel nn.GRU calls, with the weights in
// nn.GRU's _flat_weights order.
type GRU struct {
	Layers []GRULayer
	cfg    GRUConfig
}

// GRULayer holds one layer's weights.
type GRULayer struct {
	WeightIH, WeightHH, BiasIH, BiasHH *ts.Tensor
}

// GRUConfig configures a GRU.
type GRUConfig struct {
	InputSize, HiddenSize int64
	NumLayers             int
	// Dropout between layers in training (PyTorch's dropout argument).
	Dropout float64
}

// NewGRU builds a GRU under p, initialised as nn.GRU.reset_parameters:
// every weight and bias U(−1/√H, 1/√H), drawn in parameter order (with
// the same libtorch seed the weights equal PyTorch's).
func NewGRU(p *nn.Path, cfg GRUConfig) (*GRU, error) {
	if p == nil {
		return nil, fmt.Errorf("gru: nil path")
	}
	return newGRU(newBuilder(p), cfg)
}

func newGRU(b *builder, cfg GRUConfig) (*GRU, error) {
	if cfg.InputSize < 1 || cfg.HiddenSize < 1 || cfg.NumLayers < 1 || !(cfg.Dropout >= 0 && cfg.Dropout < 1) {
		return nil, fmt.Errorf("gru: input %d, hidden %d, layers %d, dropout %v: want positive sizes and dropout in [0, 1)",
			cfg.InputSize, cfg.HiddenSize, cfg.NumLayers, cfg.Dropout)
	}
	H := cfg.HiddenSize
	bound := 1 / math.Sqrt(float64(H))
	g := &GRU{cfg: cfg}
	in := cfg.InputSize
	for k := 0; k < cfg.NumLayers; k++ {
		g.Layers = append(g.Layers, GRULayer{
			WeightIH: b.param(fmt.Sprintf("weight_ih_l%d", k), []int64{3 * H, in}, initUniform(bound)),
			WeightHH: b.param(fmt.Sprintf("weight_hh_l%d", k), []int64{3 * H, H}, initUniform(bound)),
			BiasIH:   b.param(fmt.Sprintf("bias_ih_l%d", k), []int64{3 * H}, initUniform(bound)),
			BiasHH:   b.param(fmt.Sprintf("bias_hh_l%d", k), []int64{3 * H}, initUniform(bound)),
		})
		in = H
	}
	if err := b.err(); err != nil {
		return nil, fmt.Errorf("gru: %w", err)
	}
	return g, nil
}

// Config returns the configuration.
func (g *GRU) Config() GRUConfig { return g.cfg }

// Forward runs the GRU over x [B, T, InputSize] from a zero initial state
// and returns the last layer's outputs [B, T, HiddenSize].
func (g *GRU) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	shape, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("gru: input: %w", err)
	}
	if len(shape) != 3 || shape[2] != g.cfg.InputSize {
		return nil, fmt.Errorf("gru: input shape %v, want [B, T, %d]", shape, g.cfg.InputSize)
	}
	dev, err := x.Device()
	if err != nil {
		return nil, err
	}
	h0, err := ts.Zeros([]int64{int64(g.cfg.NumLayers), shape[0], g.cfg.HiddenSize}, x.DType(), dev)
	if err != nil {
		return nil, fmt.Errorf("gru: initial state: %w", err)
	}
	defer h0.Drop()
	params := make([]*ts.Tensor, 0, 4*len(g.Layers))
	for _, l := range g.Layers {
		params = append(params, l.WeightIH, l.WeightHH, l.BiasIH, l.BiasHH)
	}
	out, hn, err := ts.Gru(x, h0, params, true, int64(g.cfg.NumLayers), g.cfg.Dropout, train, false, true)
	if err != nil {
		return nil, fmt.Errorf("gru: %w", err)
	}
	hn.Drop()
	return out, nil
}
