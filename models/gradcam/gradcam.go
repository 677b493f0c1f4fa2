// Package gradcam computes Grad-CAM class-activation maps (Selvaraju et
// al., "Grad-CAM: Visual Explanations from Deep Networks via
// Gradient-based Localization", ICCV 2017) for fer's networks: for a
// class score y^c and the activations A of a chosen conv stage (K channels
// of h×w),
//
//	α_k = (1/(h·w)) Σ_ij ∂y^c/∂A_k[i,j]     (spatially averaged gradients)
//	CAM = ReLU(Σ_k α_k A_k)                  (h×w)
//
// upsampled bilinearly to the input size (PyTorch's
// align_corners=False) and min-max normalised to [0,1]. For clips
// [B,T,3,H,W] the map is computed per frame and the T frames of a clip are
// normalised together, so frames can be compared. plots.GradCAMFigure
// draws the result over the input.
//
// A network takes part by satisfying StageForwarder (a forward pass that
// also hands out a stage's activations inside the autograd graph of the
// logits; gradients then come from torch::autograd::grad, so no parameter
// gradient is touched) or, more generally, Net. Adapters exist for the
// models package's SmallCNN, ResNet / VGG / EfficientNet backbones with a
// classifier (their ForwardFeatures stages) and STT (its SetGradCAM
// recording of the backbone's stage 3); For picks one for a fer.Model.
package gradcam

import (
	"fmt"
	"math"
	"slices"

	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// StageForwarder is a network whose forward pass can hand out the
// activations of a named stage.
type StageForwarder interface {
	// Stages lists the stage names ForwardWithStage accepts, input side
	// first; the last is the default.
	Stages() []string
	// ForwardWithStage runs x in evaluation mode and returns the class
	// scores [N, C] and the activations of stage, [N, K, h, w] (for clips
	// [N·T, K, h, w], frame-major), as a tensor of the autograd graph
	// of the scores. The caller owns (and drops) both.
	ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error)
}

// Net is what Compute needs: the logits of x and, for a chosen class per
// sample, the activations of a stage and the gradient of that class's
// score with respect to them.
type Net interface {
	// Stages lists the stage names, input side first; the last is the
	// default.
	Stages() []string
	// StageGradients runs x [B,3,H,W] or [B,T,3,H,W] in evaluation mode,
	// back-propagates the sum over the batch of logits[b, target(b)] and
	// returns the pass. targets[b] < 0 (or a nil targets) means the
	// predicted class of sample b.
	StageGradients(x *ts.Tensor, stage string, targets []int) (*Pass, error)
}

// Pass is the result of Net.StageGradients.
type Pass struct {
	// Logits are the class scores, one row per sample.
	Logits [][]float32
	// Targets are the classes whose scores were back-propagated.
	Targets []int
	// Act and Grad are the stage activations and d score / d Act,
	// [B, T, K, h, w] (T = 1 for images). Compute drops them.
	Act, Grad *ts.Tensor
}

// Drop frees the tensors of the pass.
func (p *Pass) Drop() {
	if p == nil {
		return
	}
	for _, t := range []*ts.Tensor{p.Act, p.Grad} {
		if t != nil {
			t.Drop()
		}
	}
	p.Act, p.Grad = nil, nil
}

// Result is the Grad-CAM of a batch.
type Result struct {
	Stage string
	// B samples of T frames (T = 1 for images); input H×W; stage h×w
	// with K channels.
	B, T, H, W, h, w, K int
	Logits              [][]float32
	Probs               [][]float64 // softmax of the logits
	Targets             []int       // the explained class of each sample
	// Weights[b][t] are the α_k of sample b, frame t.
	Weights [][][]float64
	// Coarse[b][t] is ReLU(Σ_k α_k A_k) at the stage's resolution (h×w,
	// row-major), before upsampling and normalisation.
	Coarse [][][]float64
	// Maps[b][t] is the upsampled map at the input resolution, normalised
	// to [0,1] over the T frames of sample b.
	Maps [][]*plots.CAM
	// Flat[b] is set when sample b's map is constant (e.g. all zero: no
	// location raises the score); its Maps are all zero.
	Flat []bool
}

// Compute runs Grad-CAM of net on x for the given stage ("" = the last
// stage net lists) and targets (nil or -1 entries: the predicted class).
// It switches libtorch's grad mode on for the call (and back).
func Compute(net Net, x *ts.Tensor, stage string, targets []int) (*Result, error) {
	stages := net.Stages()
	if len(stages) == 0 {
		return nil, fmt.Errorf("grad-cam: the network lists no stages")
	}
	if stage == "" {
		stage = stages[len(stages)-1]
	}
	if !slices.Contains(stages, stage) {
		return nil, fmt.Errorf("grad-cam: unknown stage %q (this network has: %v)", stage, stages)
	}
	shape, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("grad-cam: input: %w", err)
	}
	if len(shape) != 4 && len(shape) != 5 {
		return nil, fmt.Errorf("grad-cam: input shape %v, want [B,3,H,W] or [B,T,3,H,W]", shape)
	}
	H, W := shape[len(shape)-2], shape[len(shape)-1]

	restore, err := enableGrad()
	if err != nil {
		return nil, fmt.Errorf("grad-cam: %w", err)
	}
	defer restore()

	pass, err := net.StageGradients(x, stage, targets)
	if err != nil {
		return nil, fmt.Errorf("grad-cam: %w", err)
	}
	defer pass.Drop()
	r, err := camFromPass(pass, H, W)
	if err != nil {
		return nil, fmt.Errorf("grad-cam: %w", err)
	}
	r.Stage = stage
	return r, nil
}

// enableGrad turns libtorch's grad mode on for this thread and returns
// the function that restores the previous mode. It calls the wrapper
// directly: gotch's ts.GradSetEnabled reads the C int result as a Go int
// (garbage upper bits) and then reports "was disabled" when it was
// enabled, so restoring its answer would switch autograd off.
func enableGrad() (restore func(), err error) {
	prev := int(int32(lib.AtGradSetEnabled(1)))
	if err := ts.TorchErr(); err != nil {
		return nil, err
	}
	return func() { lib.AtGradSetEnabled(prev) }, nil
}

// camFromPass does the Grad-CAM arithmetic on the pass's tensors.
func camFromPass(p *Pass, H, W int64) (*Result, error) {
	sc := &scope{}
	defer sc.free()
	shape, err := p.Act.Size()
	if err != nil {
		return nil, err
	}
	if gs, err := p.Grad.Size(); err != nil || !slices.Equal(gs, shape) {
		return nil, fmt.Errorf("activations %v and gradients %v differ in shape (%v)", shape, gs, err)
	}
	if len(shape) != 5 {
		return nil, fmt.Errorf("activations %v, want [B,T,K,h,w]", shape)
	}
	B, T, K, h, w := shape[0], shape[1], shape[2], shape[3], shape[4]
	if int(B) != len(p.Logits) || int(B) != len(p.Targets) {
		return nil, fmt.Errorf("%d activation samples for %d logit rows and %d targets", B, len(p.Logits), len(p.Targets))
	}
	act, err := sc.t(p.Act.Detach(false))
	if err != nil {
		return nil, err
	}
	// α = spatial mean of the gradient: [B,T,K,1,1].
	alpha, err := sc.t(p.Grad.MeanDim([]int64{3, 4}, true, gotch.Invalid, false))
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	weighted, err := sc.t(act.Mul(alpha, false))
	if err != nil {
		return nil, err
	}
	sum, err := sc.t(weighted.SumDimIntlist([]int64{2}, false, gotch.Invalid, false))
	if err != nil {
		return nil, err
	}
	coarse, err := sc.t(sum.Relu(false)) // [B,T,h,w]
	if err != nil {
		return nil, err
	}
	flat4, err := sc.t(coarse.Reshape([]int64{B * T, 1, h, w}, false))
	if err != nil {
		return nil, err
	}
	up, err := sc.t(flat4.UpsampleBilinear2d([]int64{H, W}, false, nil, nil, false))
	if err != nil {
		return nil, fmt.Errorf("upsample %d×%d → %d×%d: %w", h, w, H, W, err)
	}
	alphaV, err := values(alpha)
	if err != nil {
		return nil, err
	}
	coarseV, err := values(coarse)
	if err != nil {
		return nil, err
	}
	upV, err := values(up)
	if err != nil {
		return nil, err
	}

	r := &Result{B: int(B), T: int(T), H: int(H), W: int(W), h: int(h), w: int(w), K: int(K),
		Logits: p.Logits, Targets: p.Targets}
	nb, nt, hw, HW := int(B), int(T), int(h*w), int(H*W)
	for b := 0; b < nb; b++ {
		r.Probs = append(r.Probs, softmax(p.Logits[b]))
		var ws, cs [][]float64
		var maps []*plots.CAM
		lo, hi := math.Inf(1), math.Inf(-1)
		for t := 0; t < nt; t++ {
			i := b*nt + t
			ws = append(ws, f64(alphaV[i*int(K):(i+1)*int(K)]))
			cs = append(cs, f64(coarseV[i*hw:(i+1)*hw]))
			m := &plots.CAM{W: int(W), H: int(H), V: f64(upV[i*HW : (i+1)*HW])}
			for _, v := range m.V {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			maps = append(maps, m)
		}
		flat := !(hi > lo)
		for _, m := range maps {
			for j, v := range m.V {
				if flat {
					m.V[j] = 0
				} else {
					m.V[j] = (v - lo) / (hi - lo)
				}
			}
		}
		r.Weights = append(r.Weights, ws)
		r.Coarse = append(r.Coarse, cs)
		r.Maps = append(r.Maps, maps)
		r.Flat = append(r.Flat, flat)
	}
	return r, nil
}

// StageSize is the h×w resolution of the stage the maps were computed
// at, and K its number of channels.
func (r *Result) StageSize() (h, w, k int) { return r.h, r.w, r.K }

func softmax(z []float32) []float64 {
	out := make([]float64, len(z))
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	var s float64
	for i, v := range z {
		out[i] = math.Exp(float64(v) - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func f64(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = float64(v)
	}
	return out
}

// values copies a tensor to a float32 slice on the host.
func values(t *ts.Tensor) ([]float32, error) {
	sc := &scope{}
	defer sc.free()
	d, err := sc.t(t.Detach(false))
	if err != nil {
		return nil, err
	}
	c, err := sc.t(d.To(gotch.CPU, false))
	if err != nil {
		return nil, err
	}
	f, err := sc.t(c.Totype(gotch.Float, false))
	if err != nil {
		return nil, err
	}
	f, err = sc.t(f.Contiguous(false))
	if err != nil {
		return nil, err
	}
	out := make([]float32, f.Numel())
	if len(out) == 0 {
		return out, nil
	}
	if err := f.CopyData(out, uint(len(out))); err != nil {
		return nil, err
	}
	return out, nil
}

// logitRows copies logits [B, C] to the host.
func logitRows(logits *ts.Tensor) ([][]float32, error) {
	shape, err := logits.Size()
	if err != nil {
		return nil, err
	}
	if len(shape) != 2 || shape[1] < 1 {
		return nil, fmt.Errorf("logits have shape %v, want [B, classes]", shape)
	}
	v, err := values(logits)
	if err != nil {
		return nil, err
	}
	rows := make([][]float32, shape[0])
	for i := range rows {
		rows[i] = v[i*int(shape[1]) : (i+1)*int(shape[1])]
	}
	return rows, nil
}

// resolveTargets fills in the predicted class where targets[b] < 0 and
// checks the range.
func resolveTargets(rows [][]float32, targets []int) ([]int, error) {
	if targets != nil && len(targets) != len(rows) {
		return nil, fmt.Errorf("%d targets for a batch of %d", len(targets), len(rows))
	}
	out := make([]int, len(rows))
	for b, row := range rows {
		t := -1
		if targets != nil {
			t = targets[b]
		}
		if t < 0 {
			t = 0
			for c, v := range row {
				if v > row[t] {
					t = c
				}
			}
		}
		if t >= len(row) {
			return nil, fmt.Errorf("target class %d of sample %d out of range (%d classes)", t, b, len(row))
		}
		out[b] = t
	}
	return out, nil
}

// targetScore returns Σ_b logits[b, targets[b]] as a scalar in logits'
// graph.
func targetScore(logits *ts.Tensor, targets []int) (*ts.Tensor, error) {
	sc := &scope{}
	defer sc.free()
	dev, err := logits.Device()
	if err != nil {
		return nil, err
	}
	idx := make([]int64, len(targets))
	for i, t := range targets {
		idx[i] = int64(t)
	}
	it, err := sc.t(ts.NewTensorFromData(idx, []int64{int64(len(idx)), 1}))
	if err != nil {
		return nil, err
	}
	if dev != gotch.CPU {
		if it, err = sc.t(it.To(dev, false)); err != nil {
			return nil, err
		}
	}
	g, err := sc.t(logits.Gather(1, it, false, false))
	if err != nil {
		return nil, err
	}
	return g.Sum(gotch.Invalid, false)
}

// scope frees the intermediate tensors of a function on every return
// path; its result is never added.
type scope struct{ ts []*ts.Tensor }

func (s *scope) t(x *ts.Tensor, err error) (*ts.Tensor, error) {
	if err == nil && x != nil {
		s.ts = append(s.ts, x)
	}
	return x, err
}

func (s *scope) add(x *ts.Tensor) *ts.Tensor {
	s.ts = append(s.ts, x)
	return x
}

func (s *scope) free() {
	for _, x := range s.ts {
		x.Drop()
	}
	s.ts = nil
}
