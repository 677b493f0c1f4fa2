package models

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/optim"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// The PyTorch side: testdata/rmfer_ref.py (the public code's RMFER model
// and ACL sketch written out with its parameter names), run once per test
// binary with /usr/bin/python3 into a temp dir (~5 s, 240 MB).
// FER_RMFER_FIXTURES names a directory it already filled.
var (
	rmferOnce sync.Once
	rmferDir  string
	rmferErr  error
	rmferSkip string
)

func rmferFixtures(t *testing.T) string {
	t.Helper()
	rmferOnce.Do(func() {
		if dir := os.Getenv("FER_RMFER_FIXTURES"); dir != "" {
			rmferDir = dir
			return
		}
		if out, err := exec.Command(systemPython, "-c", "import torch").CombinedOutput(); err != nil {
			rmferSkip = fmt.Sprintf("PyTorch reference unavailable: %s cannot import torch (%v: %s); install python3-torch (setup-gotch.sh does)", systemPython, err, out)
			return
		}
		dir, err := os.MkdirTemp("", "fer-models-fixtures-rmfer-")
		if err != nil {
			rmferErr = err
			return
		}
		rmferDir = dir
		start := time.Now()
		if out, err := exec.Command(systemPython, filepath.Join("testdata", "rmfer_ref.py"), dir).CombinedOutput(); err != nil {
			rmferErr = fmt.Errorf("testdata/rmfer_ref.py: %v\n%s", err, out)
			return
		}
		fmt.Printf("models: RMFER PyTorch fixtures written in %.1fs\n", time.Since(start).Seconds())
	})
	if rmferSkip != "" {
		t.Skip(rmferSkip)
	}
	if rmferErr != nil {
		t.Fatal(rmferErr)
	}
	return rmferDir
}

// rmferRead reads one fixture file.
func rmferRead(t *testing.T, file string) *StateDict {
	t.Helper()
	sd, err := ReadStateDict(filepath.Join(rmferFixtures(t), file))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Drop)
	return sd
}

// newRMFERFromRef builds RMFER(7) with cfg's choices and loads the
// reference weights; every name of the public model must match.
func newRMFERFromRef(t *testing.T, cfg RMFERConfig) (*RMFER, *nn.VarStore) {
	t.Helper()
	vs := newCPUStore()
	m, err := NewRMFER(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := LoadCheckpoint(vs, filepath.Join(rmferFixtures(t), "rmfer.pth"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Loaded) != len(vs.Variables()) {
		t.Fatalf("loaded %d of %d variables", len(r.Loaded), len(vs.Variables()))
	}
	return m, vs
}

func zeroGrads(t *testing.T, vs *nn.VarStore) {
	t.Helper()
	o, err := optim.New(vs, optim.Config{Kind: optim.SGD, LR: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
}

func paramGrad(t *testing.T, vs *nn.VarStore, name string) *ts.Tensor {
	t.Helper()
	v, err := vs.Root().Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return v.MustGrad(false)
}

// near fails when max|got−want| > tol.
func near(t *testing.T, what string, got, want *ts.Tensor, tol float64) {
	t.Helper()
	if d := maxAbsDiff(t, got, want); !(d <= tol) {
		t.Errorf("%s: max |diff| = %.3g > %.1g", what, d, tol)
	}
}

// TestRMFERParamNames: the model's state_dict names and shapes are the
// public code's (its checkpoints load with nothing missing or left over),
// and the count-only constructor agrees.
func TestRMFERParamNames(t *testing.T) {
	lockThread(t)
	_, vs := newRMFERFromRef(t, DefaultRMFERConfig(7))
	for _, name := range []string{"backbone.0.weight", "backbone.1.running_var", "backbone.3.0.0.conv_dw.weight",
		"backbone.3.6.1.conv_pwl.weight", "backbone.4.weight", "backbone.5.bias",
		"projection_head.0.weight", "projection_head.2.bias", "classifier_main.weight", "classifier_att.bias"} {
		if _, err := vs.Root().Get(name); err != nil {
			t.Errorf("no variable %s", name)
		}
	}
	n, err := CountRMFERParams(DefaultRMFERConfig(7))
	if err != nil {
		t.Fatal(err)
	}
	if got := trainableCount(vs); got != n {
		t.Errorf("count-only %d, built %d", n, got)
	}
	// tf_efficientnet_b2 without classifier: timm's 9,109,994 less its
	// 1408×1000+1000 head = 7,700,994; + H 2·(1408²+1408) + 2 heads 7·1409
	if want := int64(7700994 + 2*(1408*1408+1408) + 2*7*1409); n != want {
		t.Errorf("%d parameters, want %d", n, want)
	}
}

// TestRMFERIALMatchesPyTorch: the IAL head (projection, cosine matrix,
// self-masking, softmax, attention feature, both classifiers) and
// L_pre = CE + 0.7·CE_att on given features equal the public code's
// formulation to 1e-6, forward and backward, for the code's masking
// (−1e7), no masking (the ablation) and the paper's s_ii = 1e−6.
func TestRMFERIALMatchesPyTorch(t *testing.T) {
	lockThread(t)
	ref := rmferRead(t, "rmfer_ial.pt")
	m, vs := newRMFERFromRef(t, DefaultRMFERConfig(7))
	labels := tensorOf(t, ref, "labels")
	for _, v := range []struct {
		name  string
		mask  bool
		value float64
		tau   float64
	}{{"code", true, -1e7, 0.25}, {"nomask", false, -1e7, 0.25}, {"paper", true, 1e-6, 0.5}} {
		m.cfg.SelfMasking, m.cfg.MaskValue, m.cfg.Tau = v.mask, v.value, v.tau
		zeroGrads(t, vs)
		f := tensorOf(t, ref, "f").MustDetach(false).MustSetRequiresGrad(true, true)
		out, err := m.IAL(f, true)
		if err != nil {
			t.Fatal(err)
		}
		b := &fer.Batch{Targets: map[string]*ts.Tensor{fer.TargetLabel: labels}, Size: 8}
		lv, err := RMFERLoss{Lambda1: 0.7}.Loss(fer.Outputs{fer.OutputLogits: out.Logits, RMFEROutputAtt: out.AttLogits}, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := lv.Total.Backward(); err != nil {
			t.Fatal(err)
		}
		p := v.name + "."
		near(t, p+"logits", out.Logits, tensorOf(t, ref, p+"logits"), 1e-6)
		near(t, p+"att_logits", out.AttLogits, tensorOf(t, ref, p+"att_logits"), 1e-6)
		near(t, p+"attention", out.Attention, tensorOf(t, ref, p+"attention"), 1e-6)
		near(t, p+"z", out.Z, tensorOf(t, ref, p+"z"), 1e-6)
		near(t, p+"loss", lv.Total, tensorOf(t, ref, p+"loss"), 1e-6)
		near(t, p+"grad f", f.MustGrad(false), tensorOf(t, ref, p+"grad.f"), 1e-6)
		for _, name := range ref.Names {
			if g, ok := strings.CutPrefix(name, p+"grad."); ok && g != "f" {
				near(t, p+"grad "+g, paramGrad(t, vs, g), tensorOf(t, ref, name), 1e-6)
			}
		}
		if v.mask && v.value < 0 {
			diag := out.Attention.MustDiagonal(0, 0, 1, false).MustAbs(true).MustMax(true).Float64Values(true)[0]
			if diag != 0 {
				t.Errorf("self-masked attention has diagonal weight %g", diag)
			}
		}
		lv.Drop()
		out.Drop()
		f.MustDrop()
	}
}

// TestRMFERForwardMatchesPyTorch: the whole model (EfficientNet-B2 with
// the public names, 64×64 images, τ = 0.5) in eval mode (both heads, A,
// f, and the inference path forward_only_origin) and in training mode
// (outputs, loss, gradients through the backbone, BatchNorm running
// statistics) agrees with the reference.
func TestRMFERForwardMatchesPyTorch(t *testing.T) {
	lockThread(t)
	ref := rmferRead(t, "rmfer_io.pt")
	cfg := DefaultRMFERConfig(7)
	cfg.Tau = 0.5
	m, vs := newRMFERFromRef(t, cfg)
	x := tensorOf(t, ref, "input")
	labels := tensorOf(t, ref, "labels")
	err := noGrad(func() error {
		out, err := m.Forward(x, false)
		if err != nil {
			return err
		}
		defer out.Drop()
		near(t, "eval logits", out.Logits, tensorOf(t, ref, "eval.logits"), 1e-5)
		near(t, "eval att_logits", out.AttLogits, tensorOf(t, ref, "eval.att_logits"), 1e-5)
		near(t, "eval attention", out.Attention, tensorOf(t, ref, "eval.attention"), 1e-6)
		near(t, "eval features", out.Features, tensorOf(t, ref, "eval.features"), 1e-5)
		y := m.ForwardT(x, false)
		defer y.MustDrop()
		near(t, "inference path", y, tensorOf(t, ref, "eval.origin_only"), 1e-5)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	zeroGrads(t, vs)
	out, err := m.Forward(x, true)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	b := &fer.Batch{Targets: map[string]*ts.Tensor{fer.TargetLabel: labels}, Size: 6}
	lv, err := RMFERLoss{Lambda1: 0.7}.Loss(fer.Outputs{fer.OutputLogits: out.Logits, RMFEROutputAtt: out.AttLogits}, b)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Drop()
	if err := lv.Total.Backward(); err != nil {
		t.Fatal(err)
	}
	near(t, "train logits", out.Logits, tensorOf(t, ref, "train.logits"), 1e-4)
	near(t, "train att_logits", out.AttLogits, tensorOf(t, ref, "train.att_logits"), 1e-4)
	near(t, "train attention", out.Attention, tensorOf(t, ref, "train.attention"), 1e-6)
	// the loss is a mean of cross-entropies of logits that agree to 1e-4
	// (float32 through 23 blocks with batch statistics): 1e-5 absolute
	near(t, "train loss", lv.Total, tensorOf(t, ref, "train.loss"), 1e-5)
	near(t, "bn1 running_mean", m.Backbone.BN1.RunningMean, tensorOf(t, ref, "train.running_mean"), 1e-5)
	near(t, "bn2 running_var", m.Backbone.BN2.RunningVar, tensorOf(t, ref, "train.running_var"), 1e-5)
	for _, name := range ref.Names {
		if g, ok := strings.CutPrefix(name, "train.grad."); ok {
			want := tensorOf(t, ref, name)
			// relative to the gradient's scale, as the backbone tests:
			// 23 blocks of float32 with batch statistics of 6 images
			near(t, "grad "+g, paramGrad(t, vs, g), want, 1e-4*math.Max(1, maxAbs(want)))
		}
	}
}

// TestACLKeep: how many candidates the code's torch.quantile thresholds
// keep (S > q(1−γ), S < q(γ)) for distinct similarities.
func TestACLKeep(t *testing.T) {
	for _, c := range []struct {
		n           int
		gamma       float64
		top, bottom int
	}{{50, 0.1, 5, 5}, {10, 0.2, 2, 2}, {11, 0.1, 1, 1}, {6, 0.34, 2, 2}, {3, 0.1, 1, 1}, {100, 0.25, 25, 25}} {
		top, bottom := ACLKeep(c.n, c.gamma)
		if top != c.top || bottom != c.bottom {
			t.Errorf("ACLKeep(%d, %g) = %d, %d; want %d, %d", c.n, c.gamma, top, bottom, c.top, c.bottom)
		}
	}
	if got := topK([]float64{0.3, 0.9, -0.2, 0.9, 0.1}, 2, true); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("top 2: %v", got)
	}
	if got := topK([]float64{0.3, 0.9, -0.2, 0.9, 0.1}, 2, false); !slices.Equal(got, []int64{2, 4}) {
		t.Errorf("bottom 2: %v", got)
	}
}

// aclDirect is L_ACL computed directly in float64 from embeddings:
// s_j = cos(z_a, z_j)/τ, L = −log(Σ_{j<p} e^{s_j} / Σ_j e^{s_j}).
func aclDirect(za []float64, zs [][]float64, p int, tau float64) float64 {
	norm := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s)
	}
	var up, low float64
	for j, z := range zs {
		dot := 0.0
		for k := range z {
			dot += za[k] * z[k]
		}
		e := math.Exp(dot / (norm(za) * norm(z)) / tau)
		low += e
		if j < p {
			up += e
		}
	}
	return -math.Log(up / low)
}

// TestACLLossDirectAndFiniteDifference: on a small case with known P_imp
// (3) and N_imp (4), the loss of CosineSimilarityMatrix →
// ACLLossFromSimilarities equals the direct float64 computation, and its
// gradient with respect to every embedding coordinate equals central
// finite differences of that computation.
func TestACLLossDirectAndFiniteDifference(t *testing.T) {
	lockThread(t)
	const d, p, n, tau = 5, 3, 4, 0.3
	rows := make([][]float64, 1+p+n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for k := range rows[i] {
			rows[i][k] = math.Sin(float64(7*i+3*k+1)) + 0.1*float64(k)
		}
	}
	flat := slices.Concat(rows...)
	z := ts.MustOfSlice(flat).MustView([]int64{1 + p + n, d}, true).MustSetRequiresGrad(true, true)
	defer z.MustDrop()
	s, err := CosineSimilarityMatrix(z, tau)
	if err != nil {
		t.Fatal(err)
	}
	row := s.MustSelect(0, 0, true).MustNarrow(0, 1, p+n, true)
	loss, err := ACLLossFromSimilarities(row, p)
	if err != nil {
		t.Fatal(err)
	}
	got := loss.Float64Values()[0]
	want := aclDirect(rows[0], rows[1:], p, tau)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("loss %.15g, direct %.15g", got, want)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	grad := z.MustGrad(false).Float64Values(true)
	const h = 1e-6
	worst := 0.0
	for i := range rows {
		for k := 0; k < d; k++ {
			orig := rows[i][k]
			rows[i][k] = orig + h
			up := aclDirect(rows[0], rows[1:], p, tau)
			rows[i][k] = orig - h
			down := aclDirect(rows[0], rows[1:], p, tau)
			rows[i][k] = orig
			fd := (up - down) / (2 * h)
			worst = math.Max(worst, math.Abs(fd-grad[i*d+k]))
		}
	}
	if worst > 1e-8 {
		t.Errorf("gradient vs finite differences: max |diff| %.3g", worst)
	}
	row.MustDrop()
	loss.MustDrop()
}

// TestRMFERACLMatchesSketch: on one anchor with 10 candidate positives
// and 10 negatives (γ = 0.2, τ = 0.5, training mode), fer selects exactly
// the candidates the code's torch.quantile masks select (get_positive,
// get_negative), and the loss, the gradients and the BatchNorm running
// statistics after the three passes equal contrastive_loss's.
func TestRMFERACLMatchesSketch(t *testing.T) {
	lockThread(t)
	ref := rmferRead(t, "rmfer_acl.pt")
	cfg := DefaultRMFERConfig(7)
	cfg.Tau, cfg.Gamma = 0.5, 0.2
	m, vs := newRMFERFromRef(t, cfg)
	zeroGrads(t, vs)
	anchor := tensorOf(t, ref, "anchor")
	pos := tensorOf(t, ref, "positives").MustUnsqueeze(0, false)
	neg := tensorOf(t, ref, "negatives").MustUnsqueeze(0, false)
	defer pos.MustDrop()
	defer neg.MustDrop()
	loss, sel, err := m.ACL(anchor, pos, neg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer loss.MustDrop()
	mask := func(name string) []int64 {
		var out []int64
		for i, v := range tensorOf(t, ref, name).Int64Values() {
			if v != 0 {
				out = append(out, int64(i))
			}
		}
		return out
	}
	if want := mask("pos_mask"); !slices.Equal(sel.Pos[0], want) {
		t.Errorf("P_imp %v, the sketch's mask selects %v", sel.Pos[0], want)
	}
	if want := mask("neg_mask"); !slices.Equal(sel.Neg[0], want) {
		t.Errorf("N_imp %v, the sketch's mask selects %v", sel.Neg[0], want)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	near(t, "ACL loss", loss, tensorOf(t, ref, "loss"), 1e-6)
	near(t, "bn1 running_mean", m.Backbone.BN1.RunningMean, tensorOf(t, ref, "running_mean"), 1e-5)
	near(t, "bn2 running_var", m.Backbone.BN2.RunningVar, tensorOf(t, ref, "running_var"), 1e-5)
	for _, name := range ref.Names {
		if g, ok := strings.CutPrefix(name, "grad."); ok {
			want := tensorOf(t, ref, name)
			near(t, "grad "+g, paramGrad(t, vs, g), want, 1e-4*math.Max(1, maxAbs(want)))
		}
	}
	// a given selection is reused as is (SAM's second pass)
	loss2, sel2, err := m.ACL(anchor, pos, neg, true, sel)
	if err != nil {
		t.Fatal(err)
	}
	loss2.MustDrop()
	if !slices.Equal(sel2.Pos[0], sel.Pos[0]) || !slices.Equal(sel2.Neg[0], sel.Neg[0]) {
		t.Error("selection not reused")
	}
	if _, _, err := m.ACL(anchor, pos.MustNarrow(2, 0, 2, false), neg, true, nil); err == nil {
		t.Error("a malformed RMset batch was accepted")
	}
}

// hseIO reads the HSEmotion fixture's inputs and reference logits (in
// HSEmotion's alphabetical order; input i scores class i highest).
func hseIO(t *testing.T) (x, logits *ts.Tensor) {
	io := rmferRead(t, "enet_b2_8_io.pt")
	return tensorOf(t, io, "input"), tensorOf(t, io, "logits")
}

// hseMappedIO is hseIO with the logits' columns in AffectNet's code order
// (HSEmotion's alphabetical head mapped by name); the caller drops mapped.
func hseMappedIO(t *testing.T) (x, logits, mapped *ts.Tensor) {
	x, logits = hseIO(t)
	idx := ts.MustOfSlice([]int64{5, 4, 6, 7, 3, 2, 0, 1})
	defer idx.MustDrop()
	return x, logits, logits.MustIndexSelect(1, idx, false)
}

func argmaxRows(t *testing.T, y *ts.Tensor) []int64 {
	t.Helper()
	return y.MustArgmax([]int64{1}, false, false).Int64Values(true)
}

// TestHSEmotionClassMapping: an HSEmotion enet_b2_8.pt (a whole pickled
// timm model) loads into fer's effnet_b2 without Python. Mapped to
// AffectNet-8's classes by name, its logits are the reference's columns
// reordered and every prediction names the class HSEmotion predicts;
// kept as-is (the public RMFER code's behaviour with AffectNet codes),
// the same rows predict wrongly named classes.
func TestHSEmotionClassMapping(t *testing.T) {
	lockThread(t)
	dir := rmferFixtures(t)
	x, want := hseIO(t)
	classes := data.AffectNetClasses // neutral, happy, sad, surprise, fear, disgust, anger, contempt
	predict := func(order ClassOrder) ([]int64, *ts.Tensor, *ClassMap) {
		vs := newCPUStore()
		cfg := EfficientNetB2Config(int64(len(classes)))
		m, err := NewEfficientNet(vs.Root(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, cm, err := LoadHSEmotionEffNet(vs, filepath.Join(dir, "enet_b2_8.pt"), classes, order, "")
		if err != nil {
			t.Fatal(err)
		}
		var y *ts.Tensor
		if err := noGrad(func() error { y = m.ForwardT(x, false); return nil }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { y.MustDrop() })
		return argmaxRows(t, y), y, cm
	}
	byName, y, cm := predict(ClassOrderByName)
	if want := []int{5, 4, 6, 7, 3, 2, 0, 1}; !slices.Equal(cm.Index, want) {
		t.Fatalf("class map %v, want %v (%s)", cm.Index, want, cm)
	}
	// our column j is HSEmotion's column Index[j]
	wantMapped := want.MustIndexSelect(1, ts.MustOfSlice([]int64{5, 4, 6, 7, 3, 2, 0, 1}), false)
	defer wantMapped.MustDrop()
	// the head's weights are large (solved for logits 8·I): relative 1e-4
	tol := 1e-4 * maxAbs(want)
	near(t, "mapped logits", y, wantMapped, tol)
	asIs, yAsIs, cmAsIs := predict(ClassOrderAsIs)
	near(t, "as-is logits", yAsIs, want, tol)
	if !cmAsIs.AsIs || !strings.Contains(cmAsIs.String(), "as-is") {
		t.Errorf("as-is map not stated: %s", cmAsIs)
	}
	wrong := 0
	for i := range 8 { // input i: HSEmotion predicts its class i
		hse := HSEmotionClasses8[i]
		if got := classes[byName[i]]; canonicalExpression(got) != canonicalExpression(hse) {
			t.Errorf("input %d: mapped head predicts %q, HSEmotion %q", i, got, hse)
		}
		if canonicalExpression(classes[asIs[i]]) != canonicalExpression(hse) {
			wrong++
		}
	}
	if wrong != 8 {
		t.Errorf("the as-is head names %d of 8 predictions wrongly, want all 8 (the orders differ at every index)", 8-wrong)
	}
	// a 7-class data set: Contempt is dropped, and said so
	cm7, err := MapClasses(HSEmotionClasses8, data.RAFDBClasses)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cm7.Dropped, []string{"Contempt"}) || !strings.Contains(cm7.String(), "dropped: Contempt") {
		t.Errorf("RAF-DB map: %s", cm7)
	}
	if _, err := MapClasses(HSEmotionClasses7, data.AffectNetClasses); err == nil || !strings.Contains(err.Error(), "contempt") {
		t.Errorf("mapping a 7-class head to 8 classes: err = %v", err)
	}
}

// TestRMFERInitFromHSEmotion: --init with enet_b2_8.pt, or with the RMFER
// repository's split pair, puts the backbone and the (reordered) head into
// classifier_main and classifier_att, so the inference path reproduces
// the HSEmotion model's mapped logits; only the projection head keeps its
// initialisation.
func TestRMFERInitFromHSEmotion(t *testing.T) {
	lockThread(t)
	dir := rmferFixtures(t)
	x, want, wantMapped := hseMappedIO(t)
	defer wantMapped.MustDrop()
	for _, files := range [][]string{
		{"enet_b2_8.pt"},
		{"enet_b2_classifier_8emo.pth", "enet_b2_backbone_8emo.pth"},
	} {
		var paths []string
		for _, f := range files {
			paths = append(paths, filepath.Join(dir, f))
		}
		vs := newCPUStore()
		m, err := NewRMFER(vs.Root(), DefaultRMFERConfig(8))
		if err != nil {
			t.Fatal(err)
		}
		r, cm, err := LoadRMFERInit(vs, paths, data.AffectNetClasses, ClassOrderByName)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Missing, []string{"projection_head.0.bias", "projection_head.0.weight", "projection_head.2.bias", "projection_head.2.weight"}) {
			t.Errorf("%v: missing %v", files, r.Missing)
		}
		if !slices.Equal(cm.Index, []int{5, 4, 6, 7, 3, 2, 0, 1}) {
			t.Errorf("%v: class map %s", files, cm)
		}
		if !m.ClassifierMain.Weight.MustEqual(m.ClassifierAtt.Weight, false) {
			t.Errorf("%v: classifier_main and classifier_att differ", files)
		}
		var y *ts.Tensor
		if err := noGrad(func() error { y = m.ForwardT(x, false); return nil }); err != nil {
			t.Fatal(err)
		}
		near(t, fmt.Sprint(files, " logits"), y, wantMapped, 1e-4*maxAbs(want))
		y.MustDrop()
	}
}

// TestRMFERPublicCheckpoints: models trained by the public code load:
// its Lightning checkpoint (model.* under state_dict) and save_model's
// four whole pickled modules, each giving exactly the reference weights.
func TestRMFERPublicCheckpoints(t *testing.T) {
	lockThread(t)
	dir := rmferFixtures(t)
	_, refVS := newRMFERFromRef(t, DefaultRMFERConfig(7))
	for _, c := range []struct{ path, tag string }{
		{filepath.Join(dir, "rmfer_lightning.ckpt"), ""},
		{filepath.Join(dir, "enet_Best_overall"), "Best_overall"},
	} {
		vs := newCPUStore()
		if _, err := NewRMFER(vs.Root(), DefaultRMFERConfig(7)); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadRMFERCheckpoint(vs, c.path, c.tag); err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		sameVars(t, vs, refVS)
	}
	if _, err := LoadRMFERCheckpoint(newCPUStore(), dir, ""); err == nil {
		t.Error("a directory without a tag was accepted")
	}
}

// TestEffNetRenamer: backbone keys in timm names, in the authors' timm
// nn.Sequential numbering (0,1,3,4,5) and in timm ≥ 0.9's (0,1,2,3,4)
// all map to the same names.
func TestEffNetRenamer(t *testing.T) {
	cases := map[string][]string{
		"timm":     {"conv_stem.weight", "bn1.weight", "blocks.0.0.conv_dw.weight", "conv_head.weight", "bn2.running_var", "classifier.0.weight"},
		"authors":  {"0.weight", "1.weight", "3.0.0.conv_dw.weight", "4.weight", "5.running_var", "classifier.weight"},
		"timm 0.9": {"0.weight", "1.weight", "2.0.0.conv_dw.weight", "3.weight", "4.running_var", "classifier.weight"},
	}
	for names, want := range map[string][]string{
		"rmfer": {"0.weight", "1.weight", "3.0.0.conv_dw.weight", "4.weight", "5.running_var", "classifier.weight"},
		"timm":  {"conv_stem.weight", "bn1.weight", "blocks.0.0.conv_dw.weight", "conv_head.weight", "bn2.running_var", "classifier.weight"},
	} {
		for c, keys := range cases {
			rename, err := effnetRenamer(keys, names)
			if err != nil {
				t.Fatalf("%s → %s: %v", c, names, err)
			}
			for i, k := range keys {
				if got := rename(k); got != want[i] {
					t.Errorf("%s → %s: %s became %s, want %s", c, names, k, got, want[i])
				}
			}
		}
	}
	if _, err := effnetRenamer([]string{"0.weight", "1.weight", "2.weight"}, "rmfer"); err == nil {
		t.Error("a 3-child Sequential accepted as an EfficientNet")
	}
}
