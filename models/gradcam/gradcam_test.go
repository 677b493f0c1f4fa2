package gradcam

import (
	"fmt"
	"github.com/fer-research/fer/internal/testenv"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/models"
	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestMain locks the OS thread (libtorch's grad mode is per thread;
// GOTCH.md) and sets up the runtime once.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread()
	if _, err := fer.Setup(fer.RuntimeOptions{Device: "cpu", Seed: 1}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func lockThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func tensor(t *testing.T, data []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.NewTensorFromData(data, shape)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// oneConv is the hand-built known-answer network: a 1×1 convolution of a
// one-channel image into K channels, A_k = c_k·x, global average pooling
// and a linear layer y = V·GAP(A). Then ∂y_c/∂A_k[i,j] = V[c,k]/(h·w)
// exactly, so α_k = V[c,k]/(h·w) and
// CAM_c = ReLU(Σ_k V[c,k]·c_k/(h·w) · x): the input itself, scaled.
type oneConv struct {
	conv *ts.Tensor // [K,1,1,1]
	v    *ts.Tensor // [C,K]
}

func (oneConv) Stages() []string { return []string{"conv"} }

func (m oneConv) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	act, err = ts.Conv2d(x, m.conv, zeroBias(m.conv), []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1)
	if err != nil {
		return nil, nil, err
	}
	g := act.MustMeanDim([]int64{2, 3}, false, gotch.Invalid, false)
	logits = g.MustMatmul(m.v.MustT(false), true)
	return logits, act, nil
}

// zeroBias is a zero bias for conv weights w (gotch's Conv2d needs one).
func zeroBias(w *ts.Tensor) *ts.Tensor {
	return ts.MustZeros([]int64{w.MustSize()[0]}, gotch.Float, gotch.CPU)
}

func TestKnownAnswerOneConv(t *testing.T) {
	lockThread(t)
	const H, W = 6, 8
	// Two images: a bright 2×2 patch at rows 1-2, cols 5-6 (image 0) and
	// at rows 3-4, cols 0-1 (image 1), on a dim ramp background.
	x := make([]float32, 2*H*W)
	for b := 0; b < 2; b++ {
		for i := 0; i < H; i++ {
			for j := 0; j < W; j++ {
				v := 0.05 * float32(j)
				if (b == 0 && i >= 1 && i <= 2 && j >= 5 && j <= 6) || (b == 1 && i >= 3 && i <= 4 && j <= 1) {
					v = 3
				}
				x[(b*H+i)*W+j] = v
			}
		}
	}
	c := []float64{1, 0.5}
	V := [][]float64{{2, -1}, {-1, 6}, {-1, 0}}
	net := oneConv{
		conv: tensor(t, []float32{float32(c[0]), float32(c[1])}, 2, 1, 1, 1),
		v:    tensor(t, []float32{2, -1, -1, 6, -1, 0}, 3, 2),
	}
	xt := tensor(t, x, 2, 1, H, W)
	// Image 0 explains class 0, image 1 the predicted class (class 1:
	// its score is 2·mean(x) vs 1.5·mean(x) for class 0).
	r, err := Compute(FromForwarder(net), xt, "", []int{0, -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Targets[0] != 0 || r.Targets[1] != 1 {
		t.Fatalf("targets %v, want [0 1]", r.Targets)
	}
	if r.B != 2 || r.T != 1 || r.H != H || r.W != W || r.K != 2 {
		t.Fatalf("result B=%d T=%d H=%d W=%d K=%d", r.B, r.T, r.H, r.W, r.K)
	}
	for b, cls := range r.Targets {
		var s float64
		for k := range c {
			want := V[cls][k] / (H * W)
			if got := r.Weights[b][0][k]; math.Abs(got-want) > 1e-7 {
				t.Errorf("α[%d][%d] = %v, want V[%d][%d]/(h·w) = %v", b, k, got, cls, k, want)
			}
			s += V[cls][k] * c[k] / (H * W)
		}
		// Coarse = ReLU(s·x); Maps = min-max normalised (stage = input
		// resolution, so the upsampling is the identity).
		lo, hi := math.Inf(1), math.Inf(-1)
		for p := 0; p < H*W; p++ {
			xv := float64(x[b*H*W+p])
			want := math.Max(0, s*xv)
			if got := r.Coarse[b][0][p]; math.Abs(got-want) > 1e-6 {
				t.Fatalf("coarse[%d][%d] = %v, want %v", b, p, got, want)
			}
			lo, hi = math.Min(lo, want), math.Max(hi, want)
		}
		peak := 0
		for p, v := range r.Maps[b][0].V {
			want := (math.Max(0, s*float64(x[b*H*W+p])) - lo) / (hi - lo)
			if math.Abs(v-want) > 1e-6 {
				t.Fatalf("map[%d][%d] = %v, want %v", b, p, v, want)
			}
			if v > r.Maps[b][0].V[peak] {
				peak = p
			}
		}
		i, j := peak/W, peak%W
		inPatch := (b == 0 && i >= 1 && i <= 2 && j >= 5 && j <= 6) || (b == 1 && i >= 3 && i <= 4 && j <= 1)
		if !inPatch || r.Maps[b][0].V[peak] != 1 {
			t.Errorf("image %d: CAM peaks at (%d,%d) = %v, want 1 inside the bright patch", b, i, j, r.Maps[b][0].V[peak])
		}
		if r.Flat[b] {
			t.Errorf("image %d flagged flat", b)
		}
	}
	// Probabilities are the softmax of the logits 1.5·m, 2·m, −m of
	// m = mean(x) (image 1).
	var m float64
	for p := 0; p < H*W; p++ {
		m += float64(x[H*W+p])
	}
	m /= H * W
	z := []float64{1.5 * m, 2 * m, -m}
	den := math.Exp(z[0]) + math.Exp(z[1]) + math.Exp(z[2])
	for k := range z {
		if got, want := r.Probs[1][k], math.Exp(z[k])/den; math.Abs(got-want) > 1e-5 {
			t.Errorf("prob[1][%d] = %v, want %v", k, got, want)
		}
	}

	// Class 2 has only negative evidence (Σ = −1/(h·w)·x < 0): the CAM is
	// all zero and flagged flat.
	r2, err := Compute(FromForwarder(net), xt, "conv", []int{2, 2})
	if err != nil {
		t.Fatal(err)
	}
	for b := range r2.Maps {
		if !r2.Flat[b] {
			t.Errorf("class 2, image %d: not flagged flat", b)
		}
		for _, v := range r2.Maps[b][0].V {
			if v != 0 {
				t.Fatalf("class 2, image %d: map value %v, want 0", b, v)
			}
		}
	}

	// Bad requests are errors.
	if _, err := Compute(FromForwarder(net), xt, "layer9", nil); err == nil || !strings.Contains(err.Error(), "unknown stage") {
		t.Errorf("unknown stage: %v", err)
	}
	if _, err := Compute(FromForwarder(net), xt, "", []int{0, 7}); err == nil {
		t.Error("target class 7 of 3 accepted")
	}
	if _, err := Compute(FromForwarder(net), xt, "", []int{0}); err == nil {
		t.Error("1 target for a batch of 2 accepted")
	}
}

// strided is oneConv with a 2×2 stride-2 convolution (all weights ¼:
// average pooling), so the map is computed at half resolution and
// upsampled.
type strided struct{ oneConv }

func (m strided) ForwardWithStage(x *ts.Tensor, stage string) (logits, act *ts.Tensor, err error) {
	act, err = ts.Conv2d(x, m.conv, zeroBias(m.conv), []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, 1)
	if err != nil {
		return nil, nil, err
	}
	g := act.MustMeanDim([]int64{2, 3}, false, gotch.Invalid, false)
	logits = g.MustMatmul(m.v.MustT(false), true)
	return logits, act, nil
}

func TestUpsamplingIsBilinear(t *testing.T) {
	lockThread(t)
	const H, W = 8, 12
	x := make([]float32, H*W)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7) + 1.2)
	}
	net := strided{oneConv{
		conv: tensor(t, []float32{0.25, 0.25, 0.25, 0.25}, 1, 1, 2, 2),
		v:    tensor(t, []float32{1, -1}, 2, 1),
	}}
	r, err := Compute(FromForwarder(net), tensor(t, x, 1, 1, H, W), "", []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if h, w, _ := r.StageSize(); h != H/2 || w != W/2 {
		t.Fatalf("stage %d×%d, want %d×%d", h, w, H/2, W/2)
	}
	// The reference: the coarse map (= 2×2 means of x / 24, all > 0)
	// upsampled by golang.org/x/image/draw's bilinear kernel (the same
	// half-pixel convention as PyTorch's align_corners=False) and
	// min-max normalised.
	coarse := r.Coarse[0][0]
	mx := 0.0
	for i := 0; i < H/2; i++ {
		for j := 0; j < W/2; j++ {
			var s float64
			for di := 0; di < 2; di++ {
				for dj := 0; dj < 2; dj++ {
					s += float64(x[(2*i+di)*W+2*j+dj])
				}
			}
			want := s / 4 / float64(H/2*W/2)
			if got := coarse[i*W/2+j]; math.Abs(got-want) > 1e-6 {
				t.Fatalf("coarse (%d,%d) = %v, want %v", i, j, got, want)
			}
			mx = math.Max(mx, want)
		}
	}
	scaled := &plots.CAM{W: W / 2, H: H / 2, V: make([]float64, len(coarse))}
	for i, v := range coarse {
		scaled.V[i] = v / mx
	}
	up, err := scaled.Resize(W, H)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range up.V {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	for i, v := range r.Maps[0][0].V {
		if want := (up.V[i] - lo) / (hi - lo); math.Abs(v-want) > 2e-4 {
			t.Fatalf("map[%d] = %v, want %v (bilinear reference)", i, v, want)
		}
	}
}

func newSmallCNN(t *testing.T, classes int64) (*models.SmallCNN, *nn.VarStore) {
	t.Helper()
	fer.SeedTorch(3)
	vs := nn.NewVarStore(gotch.CPU)
	cfg := models.DefaultSmallCNNConfig(classes)
	cfg.Width = 4
	m, err := models.NewSmallCNN(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

func randInput(t *testing.T, seed int64, shape ...int64) *ts.Tensor {
	t.Helper()
	fer.SeedTorch(seed)
	x, err := ts.Randn(shape, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func maxAbsDiff(t *testing.T, a, b *ts.Tensor) float64 {
	t.Helper()
	va, err := values(a)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := values(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(va) != len(vb) {
		t.Fatalf("%d vs %d values", len(va), len(vb))
	}
	var d float64
	for i := range va {
		d = math.Max(d, math.Abs(float64(va[i]-vb[i])))
	}
	return d
}

// lastStageWeights checks the CAM identity of a last conv stage followed
// by global average pooling and a linear classifier: α_k = W[c,k]/(h·w).
func lastStageWeights(t *testing.T, r *Result, fc *ts.Tensor) {
	t.Helper()
	wv, err := values(fc)
	if err != nil {
		t.Fatal(err)
	}
	h, w, k := r.StageSize()
	for b, c := range r.Targets {
		for j := 0; j < k; j++ {
			want := float64(wv[c*k+j]) / float64(h*w)
			if got := r.Weights[b][0][j]; math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("sample %d α_%d = %v, want W[%d,%d]/(h·w) = %v", b, j, got, c, j, want)
			}
		}
	}
}

func TestSmallCNN(t *testing.T) {
	lockThread(t)
	m, vs := newSmallCNN(t, 5)
	x := randInput(t, 11, 3, 3, 16, 16)
	f := SmallCNN(m)
	want := m.ForwardT(x, false)
	for _, st := range f.Stages() {
		logits, act, err := f.ForwardWithStage(x, st)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(t, logits, want); d != 0 {
			t.Errorf("stage %s: logits differ from ForwardT by %g", st, d)
		}
		logits.MustDrop()
		act.MustDrop()
	}
	r, err := Compute(FromForwarder(f), x, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stage != "stage3" {
		t.Errorf("default stage %q, want stage3", r.Stage)
	}
	if h, w, k := r.StageSize(); h != 2 || w != 2 || k != 32 {
		t.Errorf("stage3 is %d×%d×%d, want 32×2×2 at 16 px", k, h, w)
	}
	lastStageWeights(t, r, m.FC.Ws.MustT(false))
	rows, _ := logitRows(want)
	for b, row := range rows {
		tg, _ := resolveTargets([][]float32{row}, nil)
		if r.Targets[b] != tg[0] {
			t.Errorf("sample %d explained class %d, predicted %d", b, r.Targets[b], tg[0])
		}
	}
	// An earlier stage: maps at the input size, normalised to [0,1].
	r, err = Compute(FromForwarder(f), x, "stage1", []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if h, w, _ := r.StageSize(); h != 4 || w != 4 {
		t.Errorf("stage1 is %d×%d, want 4×4", h, w)
	}
	checkMaps(t, r, 16, 16)
	// No parameter received a gradient (autograd.grad, not backward).
	for name, v := range vs.Variables() {
		g := v.MustGrad(false)
		if g.MustDefined() {
			t.Errorf("parameter %s has a gradient after Grad-CAM", name)
		}
	}
	// Inside a no-grad section (evaluation code) Compute still works and
	// leaves grad mode off, as it found it.
	lib.AtGradSetEnabled(0)
	_, err = Compute(FromForwarder(f), x, "stage2", nil)
	if on := int32(lib.AtGradSetEnabled(1)); on != 0 {
		t.Errorf("grad mode after Compute in a no-grad section: %d, want 0 (restored)", on)
	}
	if err != nil {
		t.Fatalf("Compute with grad mode off: %v", err)
	}
	// The model through fer: a Classifier around the SmallCNN.
	n, err := For(fer.NewClassifier(m, vs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compute(n, x, "stem", nil); err != nil {
		t.Error(err)
	}
	runtime.KeepAlive(vs)
}

// checkMaps checks shapes and the [0,1] range with a maximum of 1 per
// sample (over its frames).
func checkMaps(t *testing.T, r *Result, H, W int) {
	t.Helper()
	for b := range r.Maps {
		mx := 0.0
		for _, m := range r.Maps[b] {
			if m.W != W || m.H != H || len(m.V) != W*H {
				t.Fatalf("map %d×%d (%d values), want %d×%d", m.W, m.H, len(m.V), W, H)
			}
			for _, v := range m.V {
				if v < 0 || v > 1 || math.IsNaN(v) {
					t.Fatalf("map value %v outside [0,1]", v)
				}
				mx = math.Max(mx, v)
			}
		}
		if !r.Flat[b] && mx != 1 {
			t.Errorf("sample %d: maximum %v, want 1", b, mx)
		}
	}
}

func TestResNetBackbone(t *testing.T) {
	lockThread(t)
	fer.SeedTorch(5)
	vs := nn.NewVarStore(gotch.CPU)
	m, err := models.NewResNet(vs.Root(), models.ResNet18Config(4))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Backbone(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Stages(), ","); got != "layer1,layer2,layer3,layer4" {
		t.Errorf("stages %s", got)
	}
	x := randInput(t, 12, 2, 3, 64, 64)
	want := m.ForwardT(x, false)
	logits, act, err := f.ForwardWithStage(x, "layer3")
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, logits, want); d != 0 {
		t.Errorf("logits differ from ForwardT by %g", d)
	}
	if s := act.MustSize(); fmt.Sprint(s) != "[2 256 4 4]" {
		t.Errorf("layer3 activations %v, want [2 256 4 4]", s)
	}
	r, err := Compute(FromForwarder(f), x, "layer4", nil)
	if err != nil {
		t.Fatal(err)
	}
	lastStageWeights(t, r, m.FC.Weight)
	checkMaps(t, r, 64, 64)

	// Without classifier there is nothing to explain.
	vs2 := nn.NewVarStore(gotch.CPU)
	nofc, err := models.NewResNet(vs2.Root(), models.ResNetConfig{Depth: 18, NumStages: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Backbone(nofc); err == nil || !strings.Contains(err.Error(), "no classifier") {
		t.Errorf("ResNet without classifier: %v", err)
	}
	runtime.KeepAlive(vs)
	runtime.KeepAlive(vs2)
}

func TestSTT(t *testing.T) {
	lockThread(t)
	fer.SeedTorch(9)
	vs := nn.NewVarStore(gotch.CPU)
	cfg := models.DefaultSTTConfig()
	cfg.NumClasses, cfg.Frames, cfg.ImageSize, cfg.Dim, cfg.Depth, cfg.Heads = 3, 3, 32, 16, 1, 2
	cfg.DropPath = 0
	m, err := models.NewSTT(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := randInput(t, 13, 2, 3, 3, 32, 32)
	n, err := For(fer.NewClassifier(m, vs))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compute(n, x, "", []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.B != 2 || r.T != 3 || r.Stage != "layer3" {
		t.Fatalf("B=%d T=%d stage %s, want 2, 3, layer3", r.B, r.T, r.Stage)
	}
	if h, w, k := r.StageSize(); h != 2 || w != 2 || k != 256 {
		t.Errorf("stage %d×%d×%d, want 256×2×2 at 32 px", k, h, w)
	}
	checkMaps(t, r, 32, 32)

	// The coarse maps agree with STT's own Grad-CAM of the same scores.
	// Compute restored the thread's grad mode (on): this forward pass
	// records the graph.
	m.SetGradCAM(true)
	logits, err := m.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	score, err := targetScore(logits, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	score.MustBackward()
	ref, err := m.GradCAM()
	if err != nil {
		t.Fatal(err)
	}
	m.SetGradCAM(false)
	rv, err := values(ref)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 2; b++ {
		for f := 0; f < 3; f++ {
			for p := 0; p < 4; p++ {
				want := float64(rv[(b*3+f)*4+p])
				if got := r.Coarse[b][f][p]; math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Fatalf("coarse[%d][%d][%d] = %v, STT.GradCAM %v", b, f, p, got, want)
				}
			}
		}
	}
	runtime.KeepAlive(vs)
}

type opaque struct{ vs *nn.VarStore }

func (opaque) Forward(b *fer.Batch, train bool) (fer.Outputs, error) { return nil, nil }
func (o opaque) VarStore() *nn.VarStore                              { return o.vs }

type plainNet struct{}

func (plainNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor { return x }

func TestForUnsupported(t *testing.T) {
	if _, err := For(opaque{}); err == nil || !strings.Contains(err.Error(), "StageForwarder") {
		t.Errorf("opaque model: %v", err)
	}
	if _, err := For(fer.NewClassifier(plainNet{}, nil)); err == nil || !strings.Contains(err.Error(), "plainNet") {
		t.Errorf("classifier around an unsupported network: %v", err)
	}
}
