package models

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// sttLockThread pins the test goroutine to its OS thread for the test:
// libtorch's grad mode is per OS thread (GOTCH.md).
func sttLockThread(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

// sttTinyConfig is small enough to run every variant in well under a
// second: 4 frames of 32×32 → a 2×2 token grid, 16 patch tokens + CLS.
func sttTinyConfig(attention string) STTConfig {
	return STTConfig{
		NumClasses: 7, Frames: 4, ImageSize: 32, Dim: 32, Depth: 2, Heads: 4,
		MLPRatio: 2, Dropout: 0, DropPath: 0, Attention: attention, Backbone: "resnet18",
	}
}

func sttNew(t *testing.T, cfg STTConfig, seed int64) (*STT, *nn.VarStore) {
	t.Helper()
	lib.FerManualSeed(seed)
	vs := nn.NewVarStore(gotch.CPU)
	m, err := NewSTT(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

// sttFloats builds a float32 tensor from Go values.
func sttFloats(t *testing.T, v []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.NewTensorFromData(v, shape)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func sttRandn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

var sttVariants = []string{STTAttentionJoint, STTAttentionDivided, STTAttentionFull}

func TestSTTShapes(t *testing.T) {
	sttLockThread(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, variant := range sttVariants {
		cfg := sttTinyConfig(variant)
		m, vs := sttNew(t, cfg, 1)
		const B = 3
		x := sttFloats(t, sttRandn(r, B*4*3*32*32), B, 4, 3, 32, 32)
		for _, train := range []bool{false, true} {
			y, err := m.Forward(x, train)
			if err != nil {
				t.Fatalf("%s: %v", variant, err)
			}
			if got := y.MustSize(); len(got) != 2 || got[0] != B || got[1] != 7 {
				t.Errorf("%s train=%v: logits %v, want [%d 7]", variant, train, got, B)
			}
			for _, v := range y.Float64Values() {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: non-finite logit %v", variant, v)
				}
			}
			y.MustDrop()
		}
		// Block level: [B, 1+T·N, D] in and out.
		h := sttFloats(t, sttRandn(r, B*17*32), B, 17, 32)
		out, err := m.Blocks[0].Forward(h, 4, 4, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.MustSize(); got[0] != B || got[1] != 17 || got[2] != 32 {
			t.Errorf("%s: block output %v, want [%d 17 32]", variant, got, B)
		}
		// ForwardT is Forward.
		y1, _ := m.Forward(x, false)
		y2 := m.ForwardT(x, false)
		if d := sttMaxDiff(y1.Float64Values(), y2.Float64Values()); d != 0 {
			t.Errorf("%s: ForwardT differs from Forward by %g", variant, d)
		}
		runtime.KeepAlive(vs)
	}
}

func sttMaxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// tokenDiffs runs f on h and on h with token `tok` perturbed, and returns
// the max |change| of every output token [1+T·N].
func sttTokenDiffs(t *testing.T, f func(*ts.Tensor) (*ts.Tensor, error), h []float32, L, D int, tok int) []float64 {
	t.Helper()
	run := func(v []float32) []float64 {
		x := sttFloats(t, v, 1, int64(L), int64(D))
		y, err := f(x)
		if err != nil {
			t.Fatal(err)
		}
		return y.Float64Values()
	}
	base := run(h)
	p := append([]float32(nil), h...)
	for d := 0; d < D; d++ {
		p[tok*D+d] += 3
	}
	pert := run(p)
	diffs := make([]float64, L)
	for l := 0; l < L; l++ {
		diffs[l] = sttMaxDiff(base[l*D:(l+1)*D], pert[l*D:(l+1)*D])
	}
	return diffs
}

// TestSTTAttentionLocality perturbs one patch token and checks which
// outputs move: spatial attention must stay within the token's frame (plus
// the CLS token, which attends within every frame), temporal attention
// within the token's spatial position.
func TestSTTAttentionLocality(t *testing.T) {
	sttLockThread(t)
	m, vs := sttNew(t, sttTinyConfig(STTAttentionJoint), 2)
	defer runtime.KeepAlive(vs)
	const T, N, D = 4, 4, 32
	L := 1 + T*N
	r := rand.New(rand.NewPCG(5, 6))
	h := sttRandn(r, L*D)
	blk := m.Blocks[0]
	t0, n0 := 2, 1
	tok := 1 + t0*N + n0
	const moved = 1e-3 // a real change is O(0.1); an unmixed token is exact to float32 rounding
	const still = 1e-6

	spatial := sttTokenDiffs(t, func(x *ts.Tensor) (*ts.Tensor, error) { return blk.spatial(x, T, N, false) }, h, L, D, tok)
	if spatial[0] < moved {
		t.Errorf("spatial: CLS output did not change (%g) although it attends within frame %d", spatial[0], t0)
	}
	for tt := 0; tt < T; tt++ {
		for n := 0; n < N; n++ {
			d := spatial[1+tt*N+n]
			if tt == t0 && d < moved {
				t.Errorf("spatial: token (t=%d,n=%d) in the perturbed frame did not change (%g)", tt, n, d)
			}
			if tt != t0 && d > still {
				t.Errorf("spatial attention mixes frames: token (t=%d,n=%d) changed by %g", tt, n, d)
			}
		}
	}

	// Temporal attention, without (divided) and with (joint) the CLS token.
	for _, withCLS := range []bool{false, true} {
		temporal := sttTokenDiffs(t, func(x *ts.Tensor) (*ts.Tensor, error) { return blk.temporal(x, T, N, withCLS, false) }, h, L, D, tok)
		if !withCLS && temporal[0] != 0 {
			t.Errorf("temporal without CLS: CLS output changed by %g, want untouched", temporal[0])
		}
		if withCLS && temporal[0] < moved {
			t.Errorf("temporal with CLS: CLS output did not change (%g) although it attends along position %d", temporal[0], n0)
		}
		for tt := 0; tt < T; tt++ {
			for n := 0; n < N; n++ {
				d := temporal[1+tt*N+n]
				if n == n0 && d < moved {
					t.Errorf("temporal (cls=%v): token (t=%d,n=%d) at the perturbed position did not change (%g)", withCLS, tt, n, d)
				}
				if n != n0 && d > still {
					t.Errorf("temporal attention (cls=%v) mixes positions: token (t=%d,n=%d) changed by %g", withCLS, tt, n, d)
				}
			}
		}
	}

	// Without CLS, the CLS output of temporal attention is exactly zero.
	x := sttFloats(t, h, 1, int64(L), D)
	out, err := blk.temporal(x, T, N, false, false)
	if err != nil {
		t.Fatal(err)
	}
	for d, v := range out.Float64Values()[:D] {
		if v != 0 {
			t.Fatalf("temporal CLS output[%d] = %g, want 0", d, v)
		}
	}

	// "full" attention mixes everything: a token in another frame and at
	// another position moves.
	mf, vsf := sttNew(t, sttTinyConfig(STTAttentionFull), 2)
	defer runtime.KeepAlive(vsf)
	full := sttTokenDiffs(t, func(x *ts.Tensor) (*ts.Tensor, error) { return mf.Blocks[0].Attn.Forward(x, false) }, h, L, D, tok)
	other := 1 + 0*N + 3 // t=0, n=3
	if full[other] < moved || full[0] < moved {
		t.Errorf("full attention: other-frame token moved %g, CLS %g; want both > %g", full[other], full[0], moved)
	}
}

// TestSTTAttentionMatchesReference checks multi-head attention against a
// plain-Go computation (softmax(q·kᵀ/√d_h)·v per head, heads
// concatenated, then proj) and that the probability rows sum to 1.
func TestSTTAttentionMatchesReference(t *testing.T) {
	sttLockThread(t)
	lib.FerManualSeed(3)
	vs := nn.NewVarStore(gotch.CPU)
	defer runtime.KeepAlive(vs)
	b := newBuilder(vs.Root())
	const S, L, D, H = 2, 5, 8, 2
	a := newSTTAttention(b.sub("attn"), D, H, 0)
	if err := b.err(); err != nil {
		t.Fatal(err)
	}
	// non-zero biases so their placement is checked too
	for _, p := range []*ts.Tensor{a.QKV.Bias, a.Proj.Bias} {
		if err := noGrad(func() error { return normal_(p, 0, 0.5) }); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(8, 9))
	xv := sttRandn(r, S*L*D)
	out, probs, err := a.forward(sttFloats(t, xv, S, L, D), false, true)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Float64Values()
	pv := probs.Float64Values()
	if ps := probs.MustSize(); ps[0] != S || ps[1] != H || ps[2] != L || ps[3] != L {
		t.Fatalf("probs shape %v, want [%d %d %d %d]", ps, S, H, L, L)
	}
	for row := 0; row < S*H*L; row++ {
		sum := 0.0
		for j := 0; j < L; j++ {
			v := pv[row*L+j]
			if v < 0 {
				t.Fatalf("negative attention probability %g", v)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("attention row %d sums to %.9f, want 1", row, sum)
		}
	}

	Wqkv, bqkv := a.QKV.Weight.Float64Values(), a.QKV.Bias.Float64Values()
	Wp, bp := a.Proj.Weight.Float64Values(), a.Proj.Bias.Float64Values()
	lin := func(W, bias []float64, x []float64, out int) []float64 {
		y := make([]float64, out)
		for o := 0; o < out; o++ {
			y[o] = bias[o]
			for i := range x {
				y[o] += W[o*len(x)+i] * x[i]
			}
		}
		return y
	}
	dh := D / H
	maxDiff := 0.0
	for s := 0; s < S; s++ {
		qkv := make([][]float64, L)
		for l := 0; l < L; l++ {
			x := make([]float64, D)
			for d := range x {
				x[d] = float64(xv[(s*L+l)*D+d])
			}
			qkv[l] = lin(Wqkv, bqkv, x, 3*D) // [q(D) | k(D) | v(D)], heads contiguous
		}
		for l := 0; l < L; l++ {
			ctx := make([]float64, D)
			for h := 0; h < H; h++ {
				sc := make([]float64, L)
				m := math.Inf(-1)
				for j := 0; j < L; j++ {
					for d := 0; d < dh; d++ {
						sc[j] += qkv[l][h*dh+d] * qkv[j][D+h*dh+d]
					}
					sc[j] /= math.Sqrt(float64(dh))
					m = math.Max(m, sc[j])
				}
				z := 0.0
				for j := range sc {
					sc[j] = math.Exp(sc[j] - m)
					z += sc[j]
				}
				for j := range sc {
					for d := 0; d < dh; d++ {
						ctx[h*dh+d] += sc[j] / z * qkv[j][2*D+h*dh+d]
					}
				}
			}
			want := lin(Wp, bp, ctx, D)
			for d := 0; d < D; d++ {
				maxDiff = math.Max(maxDiff, math.Abs(want[d]-got[(s*L+l)*D+d]))
			}
		}
	}
	if maxDiff > 1e-5 {
		t.Errorf("attention differs from the reference by %g", maxDiff)
	}
}

// TestSTTGradientsReachAllParameters: after one backward pass every
// trainable parameter of every variant has a non-zero gradient.
func TestSTTGradientsReachAllParameters(t *testing.T) {
	sttLockThread(t)
	r := rand.New(rand.NewPCG(10, 11))
	for _, variant := range sttVariants {
		m, vs := sttNew(t, sttTinyConfig(variant), 4)
		const B = 2
		x := sttFloats(t, sttRandn(r, B*4*3*32*32), B, 4, 3, 32, 32)
		y, err := m.Forward(x, true)
		if err != nil {
			t.Fatal(err)
		}
		labels := ts.MustOfSlice([]int64{1, 5})
		loss := y.CrossEntropyForLogits(labels)
		if err := loss.Backward(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for name, v := range vs.Variables() {
			if !v.MustRequiresGrad() {
				continue
			}
			n++
			g := v.MustGrad(false)
			if ok, _ := g.Defined(); !ok {
				t.Errorf("%s: %s has no gradient", variant, name)
				continue
			}
			if s := g.MustAbs(true).MustSum(gotch.Double, true).Float64Values()[0]; !(s > 0) {
				t.Errorf("%s: %s gradient is zero", variant, name)
			}
		}
		wantNames := map[string]bool{
			STTAttentionJoint:   true, // blocks.*.temporal_attn present
			STTAttentionDivided: true,
			STTAttentionFull:    false,
		}
		if _, err := vs.Root().Get("blocks.1.temporal_attn.qkv.weight"); (err == nil) != wantNames[variant] {
			t.Errorf("%s: temporal_attn present = %v, want %v", variant, err == nil, wantNames[variant])
		}
		if _, err := vs.Root().Get("blocks.0.temporal_norm1.weight"); (err == nil) != (variant == STTAttentionDivided) {
			t.Errorf("%s: temporal_norm1 present = %v", variant, err == nil)
		}
		if n < 20 {
			t.Errorf("%s: only %d trainable tensors", variant, n)
		}
		runtime.KeepAlive(vs)
	}
}

// sttAnalyticParams counts STT's parameters by hand: ResNet-18 conv1 …
// layer3 (no BN buffers), the 1×1 patch conv, CLS and position
// embeddings, the blocks and the head.
func sttAnalyticParams(cfg STTConfig) int64 {
	conv := func(in, out, k int64) int64 { return in * out * k * k }
	bn := func(c int64) int64 { return 2 * c }
	basic := func(in, out int64, down bool) int64 {
		n := conv(in, out, 3) + bn(out) + conv(out, out, 3) + bn(out)
		if down {
			n += conv(in, out, 1) + bn(out)
		}
		return n
	}
	trunk := conv(3, 64, 7) + bn(64) +
		basic(64, 64, false) + basic(64, 64, false) +
		basic(64, 128, true) + basic(128, 128, false) +
		basic(128, 256, true) + basic(256, 256, false)
	D := int64(cfg.Dim)
	g := int64(cfg.TokenGrid())
	linear := func(in, out int64) int64 { return in*out + out }
	ln := 2 * D
	attn := linear(D, 3*D) + linear(D, D)
	hidden := int64(cfg.MLPRatio * float64(cfg.Dim))
	block := ln + attn + ln + linear(D, hidden) + linear(hidden, D)
	switch cfg.Attention {
	case STTAttentionJoint:
		block += attn
	case STTAttentionDivided:
		block += attn + ln
	}
	embed := (256*D + D) + D + (g*g+1)*D + int64(cfg.Frames)*D
	return trunk + embed + int64(cfg.Depth)*block + ln + linear(D, int64(cfg.NumClasses))
}

func TestSTTParamCount(t *testing.T) {
	sttLockThread(t)
	def := DefaultSTTConfig()
	// Hand totals for the default configuration: ResNet-18 trunk
	// 2,782,784; embedding 165,888; joint block 4,203,008 (× 4); final
	// norm 1,024; head 3,591.
	want := map[string]int64{
		STTAttentionJoint:   19_765_319,
		STTAttentionDivided: 19_769_415,
		STTAttentionFull:    15_562_823,
	}
	for _, variant := range sttVariants {
		cfg := def
		cfg.Attention = variant
		n, err := STTParamCount(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a := sttAnalyticParams(cfg); n != a || n != want[variant] {
			t.Errorf("%s: STTParamCount = %d, analytic %d, hand total %d", variant, n, a, want[variant])
		}
		t.Logf("STT default config, %s attention: %d parameters", variant, n)
	}
	// The built model agrees with the count, element by element of the
	// VarStore (BatchNorm running statistics excluded).
	m, vs := sttNew(t, def, 1)
	defer runtime.KeepAlive(vs)
	var inStore int64
	for _, v := range vs.Variables() {
		if v.MustRequiresGrad() {
			inStore += int64(v.Numel())
		}
	}
	if inStore != m.NumParameters() || inStore != want[STTAttentionJoint] {
		t.Errorf("VarStore holds %d trainable elements, NumParameters %d, want %d", inStore, m.NumParameters(), want[STTAttentionJoint])
	}
	for _, name := range []string{"backbone.layer3.1.bn2.running_var", "patch_embed.proj.weight", "pos_embed", "time_embed", "cls_token", "blocks.3.attn.qkv.weight", "blocks.3.temporal_attn.proj.bias", "blocks.0.mlp.fc2.weight", "norm.weight", "head.bias"} {
		if _, err := vs.Root().Get(name); err != nil {
			t.Errorf("parameter %q missing: %v", name, err)
		}
	}
	if _, err := vs.Root().Get("backbone.layer4.0.conv1.weight"); err == nil {
		t.Error("backbone has a layer4; STT cuts ResNet-18 after stage 3")
	}
	if got := vs.Root().MustGet("pos_embed").MustSize(); got[1] != 50 || got[2] != 512 {
		t.Errorf("pos_embed %v, want [1 50 512]", got)
	}
}

// TestSTTGradCAM: with Grad-CAM on, the logits do not change, the backbone
// still gets gradients, and the recorded stage-3 gradient equals the one
// obtained by feeding detached stage-3 maps through the rest of the model.
func TestSTTGradCAM(t *testing.T) {
	sttLockThread(t)
	m, vs := sttNew(t, sttTinyConfig(STTAttentionJoint), 6)
	defer runtime.KeepAlive(vs)
	r := rand.New(rand.NewPCG(12, 13))
	const B, T = 2, 4
	x := sttFloats(t, sttRandn(r, B*T*3*32*32), B, T, 3, 32, 32)

	if _, _, err := m.GradCAMFeatures(); err == nil || !strings.Contains(err.Error(), "SetGradCAM") {
		t.Errorf("GradCAMFeatures before any forward: err = %v", err)
	}
	plain, err := m.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	m.SetGradCAM(true)
	logits, err := m.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := sttMaxDiff(plain.Float64Values(), logits.Float64Values()); d != 0 {
		t.Errorf("Grad-CAM recording changed the logits by %g", d)
	}
	if _, _, err := m.GradCAMFeatures(); err == nil || !strings.Contains(err.Error(), "Backward") {
		t.Errorf("GradCAMFeatures before backward: err = %v", err)
	}
	const class = 3
	score := logits.MustSelect(1, class, false).MustSum(gotch.Float, false)
	if err := score.Backward(); err != nil {
		t.Fatal(err)
	}
	feats, grads, err := m.GradCAMFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if fs, gs := feats.MustSize(), grads.MustSize(); len(fs) != 5 || fs[0] != B || fs[1] != T || fs[2] != 256 || fs[3] != 2 || fs[4] != 2 || len(gs) != 5 {
		t.Fatalf("features %v, grads %v, want [%d %d 256 2 2]", fs, gs, B, T)
	}
	if g := vs.Root().MustGet("backbone.conv1.weight").MustGrad(false); g.MustAbs(true).MustSum(gotch.Double, true).Float64Values()[0] == 0 {
		t.Error("backbone got no gradient with Grad-CAM on")
	}

	// Reference: stage-3 maps as a leaf, the rest of the model on top.
	frames := x.MustReshape([]int64{B * T, 3, 32, 32}, false)
	f, err := m.encode(frames, false)
	if err != nil {
		t.Fatal(err)
	}
	leaf := f.MustDetach(false).MustSetRequiresGrad(true, false)
	if d := sttMaxDiff(leaf.Float64Values(), feats.Float64Values()); d != 0 {
		t.Errorf("recorded features differ from the backbone output by %g", d)
	}
	ref, err := m.fromFeatures(leaf, B, T, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.MustSelect(1, class, false).MustSum(gotch.Float, false).Backward(); err != nil {
		t.Fatal(err)
	}
	want := leaf.MustGrad(false).Float64Values()
	got := grads.Float64Values()
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	if scale == 0 {
		t.Fatal("reference gradient is zero")
	}
	if d := sttMaxDiff(got, want); d > 1e-6*scale {
		t.Errorf("Grad-CAM gradient differs from the reference by %g (scale %g)", d, scale)
	}

	cam, err := m.GradCAM()
	if err != nil {
		t.Fatal(err)
	}
	if cs := cam.MustSize(); len(cs) != 4 || cs[0] != B || cs[1] != T || cs[2] != 2 || cs[3] != 2 {
		t.Errorf("GradCAM shape %v, want [%d %d 2 2]", cs, B, T)
	}
	// Check one map entry by hand: relu(Σ_c mean_hw(grad_c)·A_c).
	fv, camv := feats.Float64Values(), cam.Float64Values()
	const C, HW = 256, 4
	for _, idx := range []int{0, 5, 13} { // (b·T+t)·HW + pixel
		frame, px := idx/HW, idx%HW
		s := 0.0
		for c := 0; c < C; c++ {
			alpha := 0.0
			for q := 0; q < HW; q++ {
				alpha += got[(frame*C+c)*HW+q] / HW
			}
			s += alpha * fv[(frame*C+c)*HW+px]
		}
		if want := math.Max(s, 0); math.Abs(camv[idx]-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("cam[%d] = %g, want %g", idx, camv[idx], want)
		}
	}
	m.SetGradCAM(false)
	if _, _, err := m.GradCAMFeatures(); err == nil {
		t.Error("GradCAMFeatures after SetGradCAM(false): want error")
	}
}

func TestSTTConfigAndInputErrors(t *testing.T) {
	sttLockThread(t)
	bad := []struct {
		mod  func(*STTConfig)
		want string
	}{
		{func(c *STTConfig) { c.Heads = 5 }, "multiple of Heads"},
		{func(c *STTConfig) { c.Attention = "sideways" }, "joint"},
		{func(c *STTConfig) { c.Backbone = "vgg16" }, "resnet18"},
		{func(c *STTConfig) { c.DropPath = 1 }, "DropPath"},
		{func(c *STTConfig) { c.Dropout = -0.1 }, "Dropout"},
		{func(c *STTConfig) { c.ImageSize = 8 }, "ImageSize"},
		{func(c *STTConfig) { c.Frames = -1 }, "Frames"},
	}
	for _, b := range bad {
		cfg := DefaultSTTConfig()
		b.mod(&cfg)
		if _, err := STTParamCount(cfg); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("config %+v: err = %v, want it to mention %q", cfg, err, b.want)
		}
	}
	// Zero structural fields take the defaults.
	if n, err := STTParamCount(STTConfig{DropPath: 0.1}); err != nil || n != 19_765_319 {
		t.Errorf("zero config: %d parameters, err %v; want the default 19765319", n, err)
	}
	if g := (STTConfig{ImageSize: 56}).TokenGrid(); g != 4 {
		t.Errorf("TokenGrid(56) = %d, want 4", g)
	}

	m, vs := sttNew(t, sttTinyConfig(STTAttentionJoint), 1)
	defer runtime.KeepAlive(vs)
	for _, shape := range [][]int64{{2, 3, 3, 32, 32}, {2, 4, 3, 28, 28}, {2, 4, 1, 32, 32}, {8, 3, 32, 32}} {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		x := ts.MustZeros(shape, gotch.Float, gotch.CPU)
		_, err := m.Forward(x, false)
		if err == nil || !strings.Contains(err.Error(), "want [B,4,3,32,32]") {
			t.Errorf("input %v: err = %v", shape, err)
		}
	}
}

// sttLearnRun is one training run of a reduced STT on synthetic clips.
type sttLearnRun struct {
	size, frames, batch, steps int
	nTrain, nTest              int
	lr                         float64
	seed                       int64
	classes                    []int // nil: all seven
}

// TestSTTLearnsSyntheticClips trains a reduced STT from scratch (random
// ResNet-18 trunk, 2 joint blocks of width 64) on synthetic clips of 2
// frames (neutral onset → apex) at 64×64 px and checks held-out accuracy.
// The default run uses three visually distinct expressions (happy,
// surprise, anger; chance 33%) so it finishes in about a minute on two
// cores: on all seven classes a randomly initialised trunk sits on the
// ln 7 plateau for 150–350 steps before it starts to learn, which is too
// slow and too seed-dependent for the default suite. FER_STT_LEARN=full
// runs the seven-class version (several minutes).
func TestSTTLearnsSyntheticClips(t *testing.T) {
	sttLockThread(t)
	if os.Getenv("FER_STT_LEARN") == "full" {
		acc := sttTrainSynthetic(t, sttLearnRun{size: 64, frames: 2, batch: 32, steps: 500, nTrain: 2800, nTest: 280, lr: 5e-4, seed: 11})
		// chance 1/7; 25% is > 4 standard errors above it on 280 clips
		if acc < 0.25 {
			t.Errorf("seven-class held-out accuracy %.3f, want >= 0.25 (chance 0.143)", acc)
		}
		return
	}
	acc := sttTrainSynthetic(t, sttLearnRun{size: 64, frames: 2, batch: 16, steps: 160, nTrain: 900, nTest: 150, lr: 5e-4, seed: 5,
		classes: []int{synth.Happy, synth.Surprise, synth.Anger}})
	// chance 1/3; 48% is ~4 standard errors above it on 150 clips
	if acc < 0.48 {
		t.Errorf("three-class held-out accuracy %.3f, want >= 0.48 (chance 0.333)", acc)
	}
}

// sttTrainSynthetic trains a reduced STT (ResNet-18 trunk, 2 joint
// blocks of width 64) with AdamW and a cosine learning rate on balanced
// synthetic clips and returns its accuracy on disjoint test clips.
func sttTrainSynthetic(t *testing.T, run sttLearnRun) float64 {
	t.Helper()
	train, _, test, err := synth.GenerateSplits(synth.Config{Size: run.size, Frames: run.frames, Seed: run.seed, Balanced: true, Classes: run.classes}, run.nTrain, 0, run.nTest)
	if err != nil {
		t.Fatal(err)
	}
	lib.FerManualSeed(run.seed)
	vs := nn.NewVarStore(gotch.CPU)
	defer runtime.KeepAlive(vs)
	m, err := NewSTT(vs.Root(), STTConfig{
		NumClasses: synth.NumClasses, Frames: run.frames, ImageSize: run.size,
		Dim: 64, Depth: 2, Heads: 4, MLPRatio: 2, DropPath: 0, Attention: STTAttentionJoint,
	})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nn.NewAdamWConfig(0.9, 0.999, 0.01).Build(vs, run.lr)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(samples []synth.Sample, idx []int) (*ts.Tensor, []int64) {
		data, labels, shape, err := synth.BatchClips(samples, idx, synth.ImageNetMean, synth.ImageNetStd)
		if err != nil {
			t.Fatal(err)
		}
		x, err := ts.NewTensorFromData(data, shape)
		if err != nil {
			t.Fatal(err)
		}
		return x, labels
	}
	r := rand.New(rand.NewPCG(uint64(run.seed), 77))
	perm := r.Perm(len(train))
	pos := 0
	start := time.Now()
	var first, last float64
	for step := 0; step < run.steps; step++ {
		opt.SetLR(run.lr * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(run.steps))))
		if pos+run.batch > len(perm) {
			perm, pos = r.Perm(len(train)), 0
		}
		x, labels := batch(train, perm[pos:pos+run.batch])
		pos += run.batch
		y := ts.MustOfSlice(labels)
		logits, err := m.Forward(x, true)
		if err != nil {
			t.Fatal(err)
		}
		loss := logits.CrossEntropyForLogits(y)
		if err := opt.BackwardStep(loss); err != nil {
			t.Fatal(err)
		}
		lv := loss.Float64Values()[0]
		if step < 20 {
			first += lv / 20
		}
		if step >= run.steps-20 {
			last += lv / 20
		}
		for _, z := range []*ts.Tensor{loss, logits, x, y} {
			z.MustDrop()
		}
	}
	trainTime := time.Since(start)
	correct := 0
	for i := 0; i < len(test); i += 32 {
		var idx []int
		for j := i; j < min(i+32, len(test)); j++ {
			idx = append(idx, j)
		}
		x, labels := batch(test, idx)
		var pred []int64
		ts.NoGrad(func() {
			logits, err := m.Forward(x, false)
			if err != nil {
				t.Fatal(err)
			}
			pred = logits.MustArgmax([]int64{1}, false, true).Int64Values()
		})
		x.MustDrop()
		for k := range pred {
			if pred[k] == labels[k] {
				correct++
			}
		}
	}
	acc := float64(correct) / float64(len(test))
	nc := synth.NumClasses
	if run.classes != nil {
		nc = len(run.classes)
	}
	t.Logf("reduced STT, %d classes, %d clips × %d frames of %d px, batch %d, %d steps: train loss %.3f → %.3f, held-out accuracy %.1f%% on %d clips (chance %.1f%%), training %.1fs",
		nc, run.nTrain, run.frames, run.size, run.batch, run.steps, first, last, 100*acc, len(test), 100.0/float64(nc), trainTime.Seconds())
	return acc
}

// TestSTTDropPathAndDropout: stochastic depth keeps each sample's branch
// with probability 1−p, scaled by 1/(1−p); dropout and drop-path act only
// in training.
func TestSTTDropPathAndDropout(t *testing.T) {
	sttLockThread(t)
	lib.FerManualSeed(21)
	const B = 4000
	x := ts.MustZeros([]int64{B, 2, 3}, gotch.Float, gotch.CPU)
	branch := ts.MustOnes([]int64{B, 2, 3}, gotch.Float, gotch.CPU)
	y, err := sttResidual(x, branch, 0.25, true)
	if err != nil {
		t.Fatal(err)
	}
	v := y.Float64Values()
	kept := 0
	for b := 0; b < B; b++ {
		row := v[b*6 : (b+1)*6]
		for _, e := range row {
			if e != row[0] {
				t.Fatalf("sample %d: drop-path mask is not per sample: %v", b, row)
			}
		}
		switch {
		case math.Abs(row[0]-1/0.75) < 1e-6:
			kept++
		case row[0] != 0:
			t.Fatalf("sample %d: value %g, want 0 or 1/(1-p)", b, row[0])
		}
	}
	if frac := float64(kept) / B; math.Abs(frac-0.75) > 0.03 {
		t.Errorf("drop-path kept %.3f of the samples, want 0.75", frac)
	}
	y, _ = sttResidual(x, branch, 0.25, false)
	for _, e := range y.Float64Values() {
		if e != 1 {
			t.Fatalf("eval drop-path: %g, want x + branch = 1", e)
		}
	}

	cfg := sttTinyConfig(STTAttentionJoint)
	cfg.Dropout, cfg.DropPath = 0.2, 0.3
	m, vs := sttNew(t, cfg, 22)
	defer runtime.KeepAlive(vs)
	r := rand.New(rand.NewPCG(1, 1))
	in := sttFloats(t, sttRandn(r, 2*4*3*32*32), 2, 4, 3, 32, 32)
	e1, _ := m.Forward(in, false)
	e2, _ := m.Forward(in, false)
	if d := sttMaxDiff(e1.Float64Values(), e2.Float64Values()); d != 0 {
		t.Errorf("eval forward is not deterministic (max diff %g)", d)
	}
	// BatchNorm also differs between modes, so compare two training passes.
	t1, _ := m.Forward(in, true)
	t2, _ := m.Forward(in, true)
	if d := sttMaxDiff(t1.Float64Values(), t2.Float64Values()); d == 0 {
		t.Error("two training passes with dropout 0.2 / drop-path 0.3 gave identical logits")
	}
}
