package models

import (
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// builder creates the named parameters and buffers of a network under a
// gotch nn.Path, initialised the way PyTorch's layer constructors do, or,
// with a nil path, only counts them. Counting allocates no tensor, so
// `fercli models` reports VGG-16's 138 M parameters without touching
// 553 MB; and since it runs the same constructor code, the count cannot
// drift from the model.
//
// Errors are sticky: after the first failure every call is a no-op that
// returns nil, and the constructor reports the error once (builder.err).
type builder struct {
	root  *nn.Path // where the model lives; nil: count only
	parts []string // path of this sub-tree below root
	state *buildState
}

type buildState struct {
	params  int64 // elements of trainable parameters
	buffers int64 // elements of buffers (BatchNorm running statistics)
	err     error
}

// newBuilder builds under p, or only counts when p is nil.
func newBuilder(p *nn.Path) *builder { return &builder{root: p, state: &buildState{}} }

func (b *builder) counting() bool { return b.root == nil }

// sub descends into a dotted sub-name ("layer1.0.conv1").
func (b *builder) sub(name string) *builder {
	parts := append(append([]string(nil), b.parts...), strings.Split(name, ".")...)
	return &builder{root: b.root, parts: parts, state: b.state}
}

func (b *builder) name() string { return strings.Join(b.parts, ".") }

func (b *builder) fail(err error) {
	if b.state.err == nil {
		b.state.err = err
	}
}

func (b *builder) err() error { return b.state.err }

func (b *builder) device() gotch.Device {
	if b.root == nil {
		return gotch.CPU
	}
	return b.root.Device()
}

// path returns the gotch path of this sub-tree, built afresh from the root
// at each use: gotch's Path.Sub appends to its parent's slice, so two
// sibling paths kept alive at once can overwrite each other's last name.
func (b *builder) path() (*nn.Path, error) {
	p := b.root
	for _, part := range b.parts {
		if part == "" {
			return nil, fmt.Errorf("empty component in parameter path %q", b.name())
		}
		p = p.Sub(part)
	}
	return p, nil
}

// param creates a trainable float32 tensor filled by init (which runs on
// the fresh tensor, as PyTorch's reset_parameters does).
func (b *builder) param(name string, shape []int64, init initFn) *ts.Tensor {
	b.state.params += numel(shape)
	return b.add(name, shape, init, true)
}

// buffer creates a non-trainable float32 tensor filled with v (BatchNorm
// running statistics); it is saved and loaded like a parameter.
func (b *builder) buffer(name string, shape []int64, v float64) *ts.Tensor {
	b.state.buffers += numel(shape)
	return b.add(name, shape, initConst(v), false)
}

func (b *builder) add(name string, shape []int64, init initFn, trainable bool) *ts.Tensor {
	if b.counting() || b.state.err != nil {
		return nil
	}
	p, err := b.path()
	if err != nil {
		b.fail(err)
		return nil
	}
	// the name in the VarStore (Path.Get looks its argument up in the
	// whole store); gotch itself would store a duplicate as "<name>__N"
	full := strings.Join(append(append([]string(nil), p.Paths()...), name), ".")
	if _, err := p.Get(full); err == nil {
		b.fail(fmt.Errorf("parameter %q defined twice", full))
		return nil
	}
	x, err := emptyTensor(shape, gotch.Float, b.device())
	if err != nil {
		b.fail(fmt.Errorf("create %s: %w", full, err))
		return nil
	}
	defer x.Drop()
	if err := init(x); err != nil {
		b.fail(fmt.Errorf("initialise %s: %w", full, err))
		return nil
	}
	var opts []nn.AddOpt
	if !trainable {
		opts = append(opts, nn.WithVarType("buffer"))
	}
	v, err := p.Add(name, x, trainable, opts...)
	if err != nil {
		b.fail(fmt.Errorf("add %s: %w", full, err))
		return nil
	}
	return v
}

// reinit re-initialises existing parameters in place, with autograd off,
// the way torchvision/timm model constructors overwrite the layer defaults
// after building. Nil tensors (count-only builds) are skipped.
func (b *builder) reinit(t *ts.Tensor, init initFn) {
	if t == nil || b.state.err != nil {
		return
	}
	if err := noGrad(func() error { return init(t) }); err != nil {
		b.fail(fmt.Errorf("re-initialise %s: %w", b.name(), err))
	}
}

// discard draws the initial values of a parameter that the reference
// network builds but never uses, and throws them away. The random numbers
// it consumes keep libtorch's generator in step with PyTorch's, so the
// parameters built after it get the reference's values for the same seed
// (QCS's public classes build several such modules; timm's
// EfficientNetBuilder builds a squeeze-excite probe and drops it).
// Count-only and failed builds skip it.
func (b *builder) discard(shape []int64, init initFn) {
	if b.counting() || b.state.err != nil {
		return
	}
	x, err := emptyTensor(shape, gotch.Float, b.device())
	if err != nil {
		b.fail(fmt.Errorf("draw unused %s %v: %w", b.name(), shape, err))
		return
	}
	defer x.Drop()
	if err := noGrad(func() error { return init(x) }); err != nil {
		b.fail(fmt.Errorf("draw unused %s %v: %w", b.name(), shape, err))
	}
}

// initFn fills a tensor in place.
type initFn func(*ts.Tensor) error

func initUniform(bound float64) initFn {
	return func(t *ts.Tensor) error { return uniform_(t, -bound, bound) }
}

func initNormal(std float64) initFn {
	return func(t *ts.Tensor) error { return normal_(t, 0, std) }
}

// initTruncNormal is nn.init.trunc_normal_(t, 0, std, a=-2, b=2) (timm's
// and torch's default bounds, absolute: ±2, not ±2σ).
func initTruncNormal(std float64) initFn {
	return func(t *ts.Tensor) error { return truncNormal_(t, 0, std, -2, 2) }
}

func initConst(v float64) initFn {
	return func(t *ts.Tensor) error { return fill_(t, v) }
}

// kaimingUniformA5Bound is the bound of nn.init.kaiming_uniform_(w,
// a=√5), PyTorch's default for Conv and Linear weights. It equals
// 1/√fan_in, but is computed with the same float operations as
// torch.nn.init so the drawn numbers match PyTorch bit for bit.
func kaimingUniformA5Bound(fanIn int64) float64 {
	a := math.Sqrt(5)
	gain := math.Sqrt(2.0 / (1 + a*a))
	std := gain / math.Sqrt(float64(fanIn))
	return math.Sqrt(3.0) * std
}

// kaimingNormalReLUStd is the std of nn.init.kaiming_normal_(w, mode=...,
// nonlinearity="relu") for the given fan.
func kaimingNormalReLUStd(fan int64) float64 {
	return math.Sqrt(2.0) / math.Sqrt(float64(fan))
}
