package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// The PyTorch side of the QCS tests is testdata/qcs_reference.py, our own
// module written from the public code with its parameter names
// (qcsFixtureSet in main_test.go; FER_QCS_FIXTURES names a directory it
// already filled).
func qcsFixtures(t *testing.T) string { return qcsFixtureSet.get(t) }

// qcsCaseMeta is one case of qcs_meta.json.
type qcsCaseMeta struct {
	Cfg struct {
		Variant   string  `json:"variant"`
		Classes   int     `json:"classes"`
		CSA       string  `json:"csa"`
		Dim       int     `json:"dim"`
		Heads     int     `json:"heads"`
		Resize    int     `json:"resize"`
		BaseDrop  float64 `json:"base_drop"`
		CrossDrop float64 `json:"cross_drop"`
		ProjDrop  bool    `json:"proj_drop"`
		PreNorm   bool    `json:"pre_norm"`
		Fusion    string  `json:"fusion"`
		Units     []int   `json:"units"`
	} `json:"cfg"`
	Seed         int64   `json:"seed"`
	Form         string  `json:"form"`
	FullBackward bool    `json:"full_backward"`
	ParamsUsed   int64   `json:"params_used"`
	ParamsTotal  int64   `json:"params_total"`
	Loss         float64 `json:"loss"`
}

func (m qcsCaseMeta) config() QCSConfig {
	c := m.Cfg
	cfg := QCSConfig{Variant: c.Variant, NumClasses: c.Classes, CSA: c.CSA, Dim: c.Dim, Heads: c.Heads,
		BaseDepth: 2, CrossDepth: 1, MLPRatio: 4, BaseDrop: c.BaseDrop, CrossDrop: c.CrossDrop,
		AttnProjDrop: c.ProjDrop, CrossPreNorm: c.PreNorm, Fusion: c.Fusion, ResizeTo: c.Resize}
	if !slices.Equal(c.Units, []int{3, 4, 14}) {
		cfg.BackboneUnits = c.Units
	}
	return cfg
}

func qcsMeta(t *testing.T, name string) qcsCaseMeta {
	t.Helper()
	qcsFixtures(t)
	raw, ok := qcsFixtureSet.meta[name]
	if !ok {
		t.Fatalf("qcs_meta.json has no case %q", name)
	}
	var m qcsCaseMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func qcsFixture(t *testing.T, file string) *StateDict {
	t.Helper()
	sd, err := ReadStateDict(filepath.Join(qcsFixtures(t), file))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Drop)
	return sd
}

// autogradGrad is torch.autograd.grad(sum of outputs, inputs): the
// gradients of the inputs only, leaving every .grad untouched. (gotch's
// ts.RunBackward reads past its first input: it hands C the address of a
// single local handle.)
func autogradGrad(t *testing.T, outputs, inputs []*ts.Tensor) []*ts.Tensor {
	t.Helper()
	outs := make([]lib.Ctensor, len(outputs))
	for i, o := range outputs {
		outs[i] = handle(o)
	}
	ins := make([]lib.Ctensor, len(inputs))
	for i, x := range inputs {
		ins[i] = handle(x)
	}
	res := make([]lib.Ctensor, len(inputs))
	lib.AtRunBackward(&outs[0], len(outs), &ins[0], len(ins), &res[0], 0, 0)
	if err := torchErr("autograd.grad"); err != nil {
		t.Fatal(err)
	}
	grads := make([]*ts.Tensor, len(res))
	for i, r := range res {
		grads[i] = ts.New(r)
	}
	return grads
}

var qcsCases = []string{"qcs_rafdb", "qcs_small", "dcs_affectnet8", "dcs_rafdb"}

// TestQCSMatchesPyTorch checks QCS and DCS against the PyTorch reference,
// case by case (qcs_rafdb is QCS_7cls_raf_db.py at full size, the others
// reduced width and backbone depth):
//   - with the same seed, Go's initialisation draws the reference's
//     weights (the public constructor's order, unused modules included);
//   - the parameter count equals the reference's without the never-called
//     modules, and with them equals the reference's total;
//   - the saved state_dict (each case in another of the public code's
//     forms) loads by name with no missing key, the never-called modules
//     reported;
//   - eval-mode base logits, and a training-mode forward (same dropout
//     masks) — base and cross logits, CSA weights, tanh θ, the loss, the
//     gradients of every CrossAttention parameter (θ included) and of a
//     few others, BatchNorm running statistics — agree within 1e-5.
func TestQCSMatchesPyTorch(t *testing.T) {
	for _, name := range qcsCases {
		t.Run(name, func(t *testing.T) { checkQCSCase(t, name) })
	}
}

func checkQCSCase(t *testing.T, name string) {
	lockThread(t)
	meta := qcsMeta(t, name)
	cfg := meta.config()
	sd := qcsFixture(t, name+".pth")
	io := qcsFixture(t, name+"_io.pt")

	fer.SeedTorch(meta.Seed)
	vs := newCPUStore()
	m, err := NewQCSModel(vs, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// same seed, same initial weights
	ref := map[string]*ts.Tensor{}
	var unusedParams int64
	for _, k := range sd.Names {
		n, unused := qcsCanonicalKey(strings.TrimPrefix(k, "module."), cfg.Fusion == FusionHead)
		if unused {
			if !strings.HasSuffix(k, "running_mean") && !strings.HasSuffix(k, "running_var") && !strings.HasSuffix(k, "num_batches_tracked") {
				unusedParams += numel(sd.Shape(k))
			}
			continue
		}
		ref[n] = sd.Tensors[k]
	}
	vars := vs.Variables()
	var differ []string
	for _, n := range sortedKeys(vars) {
		v := vars[n]
		r, ok := ref[n]
		if !ok {
			t.Fatalf("Go variable %q not in the reference state_dict", n)
		}
		if !v.MustEqual(r, false) {
			differ = append(differ, fmt.Sprintf("%s (max |diff| %.3g)", n, maxAbsDiff(t, &v, r)))
		}
	}
	if len(differ) > 0 {
		t.Errorf("with the same seed %d of %d initial tensors differ from the reference: %s", len(differ), len(vars), listSome(differ))
	} else {
		t.Logf("%s: all %d initial tensors equal the reference's for seed %d", name, len(vars), meta.Seed)
	}

	// parameter counts
	counted, err := QCSParamCount(cfg)
	if err != nil {
		t.Fatal(err)
	}
	built := trainableCount(vs)
	t.Logf("%s: parameters Go built %d, counted %d; reference %d used, %d with the never-called modules", name, built, counted, meta.ParamsUsed, meta.ParamsTotal)
	if built != meta.ParamsUsed || counted != meta.ParamsUsed {
		t.Errorf("parameter count: built %d, counted %d, reference %d", built, counted, meta.ParamsUsed)
	}
	if built+unusedParams != meta.ParamsTotal {
		t.Errorf("built %d + never-called %d != reference total %d", built, unusedParams, meta.ParamsTotal)
	}

	// load by name
	rep, err := LoadQCSStateDict(vs, sd, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", name, rep.Summary())
	if len(rep.Missing) != 0 || len(rep.Loaded) != len(vars) {
		t.Errorf("loaded %d of %d variables, missing %v", len(rep.Loaded), len(vars), rep.Missing)
	}
	if wantOld := strings.Contains(meta.Form, "old"); rep.OldNames != wantOld {
		t.Errorf("OldNames = %v for a %s checkpoint", rep.OldNames, meta.Form)
	}
	if rep.NumClasses != cfg.NumClasses || len(rep.Unused) == 0 {
		t.Errorf("report: %d classes, %d unused keys", rep.NumClasses, len(rep.Unused))
	}

	// eval mode: base path only
	nb := cfg.Branches()
	xs := make([]*ts.Tensor, nb)
	for i := range xs {
		xs[i] = tensorOf(t, io, fmt.Sprintf("input%d", i))
	}
	worst := map[string]float64{}
	ts.NoGrad(func() {
		y, err := m.Net.Forward(xs[0], false)
		if err != nil {
			t.Fatal(err)
		}
		worst["eval logits"] = maxAbsDiff(t, y, tensorOf(t, io, "eval.logits"))
		y.MustDrop()
	})

	// training mode
	fer.SeedTorch(meta.Seed + 2) // the reference's dropout masks
	o, err := m.Net.ForwardTrain(xs, true)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Drop()
	for i := 0; i < nb; i++ {
		worst["train base logits"] = max(worst["train base logits"], maxAbsDiff(t, o.Branches[i].Logits, tensorOf(t, io, fmt.Sprintf("train.base%d", i))))
		worst["train cross logits"] = max(worst["train cross logits"], maxAbsDiff(t, o.CrossLogits[i], tensorOf(t, io, fmt.Sprintf("train.cross%d", i))))
		for s := 0; s < 3; s++ {
			worst["CSA weights"] = max(worst["CSA weights"], maxAbsDiff(t, o.CrossMaps[s][i], tensorOf(t, io, fmt.Sprintf("train.map%d.%d", s, i))))
		}
	}
	for s := 0; s < 3; s++ {
		if o.K[s] != nil {
			worst["tanh theta"] = max(worst["tanh theta"], maxAbsDiff(t, o.K[s], tensorOf(t, io, fmt.Sprintf("train.k%d", s))))
		}
	}
	out := fer.Outputs{}
	for i := 0; i < nb; i++ {
		out[QCSBaseOutputs[i]] = o.Branches[i].Logits.MustShallowClone()
		out[QCSCrossOutputs[i]] = o.CrossLogits[i].MustShallowClone()
	}
	defer out.Drop()
	b := &fer.Batch{Inputs: xs, Size: len(xs), Targets: map[string]*ts.Tensor{
		fer.TargetLabel: tensorOf(t, io, "label"), fer.TargetLabelNeg: tensorOf(t, io, "label_neg")}}
	lv, err := QCSLoss{}.Loss(out, b)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Drop()
	worst["loss"] = maxAbsDiff(t, lv.Total, tensorOf(t, io, "train.loss"))

	// gradients
	var gradNames []string
	for _, k := range io.Names {
		if n, ok := strings.CutPrefix(k, "grad."); ok {
			gradNames = append(gradNames, n)
		}
	}
	params := make([]*ts.Tensor, len(gradNames))
	for i, n := range gradNames {
		v, ok := vars[n]
		if !ok {
			t.Fatalf("no Go parameter %q", n)
		}
		params[i] = &v
	}
	var grads []*ts.Tensor
	if meta.FullBackward {
		if err := lv.Total.Backward(); err != nil {
			t.Fatal(err)
		}
		for _, p := range params {
			grads = append(grads, p.MustGrad(false))
		}
	} else { // torch.autograd.grad: only the cross branch and VIT_base
		grads = autogradGrad(t, []*ts.Tensor{lv.Total}, params)
	}
	thetas := 0
	for i, n := range gradNames {
		d := maxAbsDiff(t, grads[i], tensorOf(t, io, "grad."+n))
		key := "gradients (other)"
		if strings.HasPrefix(n, "cross_attention_") {
			key = "gradients (CrossAttention)"
			if strings.HasSuffix(n, ".theta") {
				thetas++
			}
		}
		worst[key] = max(worst[key], d)
		grads[i].MustDrop()
	}
	if cfg.Variant == QCSVariant && cfg.CSA == CSASimDist && thetas != 3 {
		t.Errorf("the reference has %d theta gradients, want 3", thetas)
	}
	bn := m.Net.Backbone.InputBN
	worst["BN running stats"] = max(maxAbsDiff(t, bn.RunningMean, tensorOf(t, io, "train.running_mean")),
		maxAbsDiff(t, bn.RunningVar, tensorOf(t, io, "train.running_var")))
	keys := sortedKeys(worst)
	for _, k := range keys {
		t.Logf("%s: %s max |diff| = %.3g", name, k, worst[k])
		if worst[k] > 1e-5 {
			t.Errorf("%s differ from PyTorch by %g (> 1e-5)", k, worst[k])
		}
	}
	if _, ok := worst["gradients (CrossAttention)"]; !ok {
		t.Error("no CrossAttention gradient compared")
	}
}

// TestQCSCrossSimilarityFunctions checks utils.py's four attention
// functions alone at the real size (B 3, 49 tokens of 768): weights and
// the gradients of a weighted sum with respect to every input and θ.
func TestQCSCrossSimilarityFunctions(t *testing.T) {
	lockThread(t)
	io := qcsFixture(t, "csa_io.pt")
	leaf := func(name string) *ts.Tensor {
		x := tensorOf(t, io, name).MustDetach(false).MustSetRequiresGrad(true, true)
		t.Cleanup(x.MustDrop)
		return x
	}
	var qk [4]*ts.Tensor
	var w [4]*ts.Tensor
	for i := range qk {
		qk[i] = leaf(fmt.Sprintf("qk%d", i))
		w[i] = tensorOf(t, io, fmt.Sprintf("w%d", i))
	}
	theta := leaf("theta")
	check := func(name string, maps []*ts.Tensor, inputs []*ts.Tensor) {
		t.Helper()
		var total *ts.Tensor
		worstMap := 0.0
		for i, mp := range maps {
			worstMap = max(worstMap, maxAbsDiff(t, mp, tensorOf(t, io, fmt.Sprintf("%s.map%d", name, i))))
			s := mp.MustMul(w[i], false).MustSum(gotch.Float, true)
			if total == nil {
				total = s
			} else {
				total = total.MustAdd(s, true)
				s.MustDrop()
			}
		}
		grads := autogradGrad(t, []*ts.Tensor{total}, inputs)
		worstGrad := 0.0
		for i := range maps {
			worstGrad = max(worstGrad, maxAbsDiff(t, grads[i], tensorOf(t, io, fmt.Sprintf("%s.grad%d", name, i))))
		}
		if len(inputs) > len(maps) {
			worstGrad = max(worstGrad, maxAbsDiff(t, grads[len(maps)], tensorOf(t, io, name+".grad_theta")))
		}
		t.Logf("%s: weights max |diff| %.3g, gradients max |diff| %.3g", name, worstMap, worstGrad)
		if worstMap > 1e-6 || worstGrad > 1e-5 {
			t.Errorf("%s differs from utils.py: weights %g, gradients %g", name, worstMap, worstGrad)
		}
		for _, m := range maps {
			// each row is a softmax over the tokens
			sums := m.MustSum(gotch.Float, false).Float64Values(true)[0]
			if rows := float64(m.MustSize()[0]); math.Abs(sums-rows) > 1e-4 {
				t.Errorf("%s: weights sum to %g over %g rows", name, sums, rows)
			}
		}
		total.MustDrop()
		for _, g := range grads {
			g.MustDrop()
		}
		for _, m := range maps {
			m.MustDrop()
		}
	}
	k := theta.MustTanh(false)
	maps, err := AttnQCSSD(qk, k)
	if err != nil {
		t.Fatal(err)
	}
	check("SD", maps[:], append(qk[:], theta))
	k.MustDrop()
	if maps, err = AttnQCSS(qk); err != nil {
		t.Fatal(err)
	}
	check("S", maps[:], qk[:])
	if maps, err = AttnQCSD(qk); err != nil {
		t.Fatal(err)
	}
	check("D", maps[:], qk[:])
	m1, m2, err := AttnDCSS(qk[0], qk[1])
	if err != nil {
		t.Fatal(err)
	}
	check("DCS", []*ts.Tensor{m1, m2}, qk[:2])
}

// TestQCSWeightsAreBatchDependent pins down a quirk of the code: the
// distance shift and the similarity's maximum are taken over the whole
// batch tensor, so changing one sample changes another sample's weights.
func TestQCSWeightsAreBatchDependent(t *testing.T) {
	lockThread(t)
	fer.SeedTorch(3)
	var qk, qk2 [4]*ts.Tensor
	for i := range qk {
		qk[i] = ts.MustRandn([]int64{2, 5, 8}, gotch.Float, gotch.CPU)
		// sample 1 scaled up: sample 0 is unchanged
		scale := ts.MustOfSlice([]float32{1, 3}).MustView([]int64{2, 1, 1}, true)
		qk2[i] = qk[i].MustMul(scale, false)
		scale.MustDrop()
	}
	k := ts.MustOfSlice([]float32{0}).MustSqueeze(true)
	a, err := AttnQCSSD(qk, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AttnQCSSD(qk2, k)
	if err != nil {
		t.Fatal(err)
	}
	s0a := a[0].MustSelect(0, 0, false)
	s0b := b[0].MustSelect(0, 0, false)
	if d := maxAbsDiff(t, s0a, s0b); d < 1e-6 {
		t.Errorf("sample 0's weights did not change when sample 1 did (max |diff| %g): the min/max should span the batch", d)
	}
}

// TestQCSCheckpointErrors: a checkpoint of another class count or of the
// other variant is an error naming the keys, with a hint; an IR-50
// checkpoint is pointed to LoadQCSBackboneInit; nothing is loaded.
func TestQCSCheckpointErrors(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	small := qcsMeta(t, "qcs_small").config()
	dcs := qcsMeta(t, "dcs_affectnet8").config()
	cases := []struct {
		name string
		cfg  func() QCSConfig
		file string
		want []string
	}{
		{"class count", func() QCSConfig { c := small; c.NumClasses = 7; return c }, "qcs_small.pth",
			[]string{"VIT_base.head.linear.weight", "checkpoint has 8 classes", "the model 7"}},
		{"DCS checkpoint into QCS", func() QCSConfig { c := dcs; c.Variant, c.CrossPreNorm = QCSVariant, false; return c }, "dcs_affectnet8.pth",
			[]string{"cross_attention_1.theta", "a DCS checkpoint"}},
		{"QCS checkpoint into DCS", func() QCSConfig { c := small; c.Variant, c.CSA = DCSVariant, ""; return c }, "qcs_small.pth",
			[]string{"cross_attention_1.theta", "a QCS checkpoint"}},
		{"backbone only", func() QCSConfig { return small }, "ir50_evolve_layout.pth",
			[]string{"missing key", "LoadQCSBackboneInit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			vs := newCPUStore()
			cfg := c.cfg()
			if _, err := NewQCSModel(vs, cfg); err != nil {
				t.Fatal(err)
			}
			before := vs.Variables()["VIT_base.norm.weight"]
			snap := before.MustDetach(false).MustContiguous(true).MustMulScalar(ts.FloatScalar(1), true)
			_, err := LoadQCSWeights(vs, filepath.Join(dir, c.file), cfg)
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a *MismatchError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if len(me.Report.Loaded) != 0 || !before.MustEqual(snap, false) {
				t.Error("a failed load changed the model")
			}
			snap.MustDrop()
		})
	}
}

// TestQCSInspectAndReadForms: the reader picks the weights out of the
// public training checkpoint (best_acc tensor, optimizer state, pickled
// recorder objects beside them), and InspectQCSCheckpoint tells the model.
func TestQCSInspectAndReadForms(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	sd := qcsFixture(t, "dcs_affectnet8.pth")
	if !strings.HasSuffix(sd.Source, ":state_dict") || !strings.HasPrefix(sd.Names[0], "module.") {
		t.Errorf("training checkpoint read from %s, first key %q; want its state_dict", sd.Source, sd.Names[0])
	}
	want := map[string]QCSCheckpointInfo{
		"qcs_rafdb.pth":      {Variant: QCSVariant, NumClasses: 7, OldNames: true},
		"qcs_small.pth":      {Variant: QCSVariant, NumClasses: 8, FusionKeys: true},
		"dcs_affectnet8.pth": {Variant: DCSVariant, NumClasses: 8, OldNames: true, FusionKeys: true},
		"dcs_rafdb.pth":      {Variant: DCSVariant, NumClasses: 7},
	}
	for file, w := range want {
		info, err := InspectQCSCheckpoint(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if *info != w {
			t.Errorf("%s: %+v, want %+v", file, *info, w)
		}
	}
	if _, err := InspectQCSCheckpoint(filepath.Join(dir, "ir50_evolve_layout.pth")); err == nil || !strings.Contains(err.Error(), "not a QCS/DCS checkpoint") {
		t.Errorf("ir50.pth inspected as QCS: %v", err)
	}
}

// TestQCSBackboneInit: ir50.pth in face.evoLVe's layout (legacy format,
// body.0..23, stage 4 and output_layer) and a QCS checkpoint's ir_back
// initialise the backbone with the same tensors; everything else is
// reported as ignored.
func TestQCSBackboneInit(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	load := func(file string) (*nn.VarStore, *LoadReport) {
		vs := newCPUStore()
		if _, err := NewIR50(vs.Root().Sub("ir_back"), IR50QCSConfig()); err != nil {
			t.Fatal(err)
		}
		rep, err := LoadQCSBackboneInit(vs, filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return vs, rep
	}
	evo, repE := load("ir50_evolve_layout.pth")
	qcs, repQ := load("qcs_rafdb.pth")
	ve, vq := evo.Variables(), qcs.Variables()
	for _, n := range sortedKeys(ve) {
		a, b := ve[n], vq[n]
		if !a.MustEqual(&b, false) {
			t.Errorf("%s differs between the ir50.pth and the QCS-checkpoint initialisation", n)
		}
	}
	if len(repE.Loaded) != len(ve) || len(repQ.Loaded) != len(vq) {
		t.Errorf("loaded %d and %d of %d tensors", len(repE.Loaded), len(repQ.Loaded), len(ve))
	}
	hasIgnored := func(r *LoadReport, sub string) bool {
		return slices.ContainsFunc(r.Ignored, func(s string) bool { return strings.Contains(s, sub) })
	}
	if !hasIgnored(repE, "body.21.") || !hasIgnored(repE, "output_layer.3.weight") {
		t.Errorf("ir50.pth: stage 4 / output layer not reported as ignored: %v", listSome(repE.Ignored))
	}
	if !hasIgnored(repQ, "VIT_base.") || !hasIgnored(repQ, "ir_back.output_layer.") {
		t.Errorf("QCS checkpoint: non-backbone keys not reported as ignored: %v", listSome(repQ.Ignored))
	}
	t.Logf("ir50.pth (face.evoLVe layout): %d loaded, %d ignored; QCS checkpoint: %d loaded, %d ignored",
		len(repE.Loaded), len(repE.Ignored), len(repQ.Loaded), len(repQ.Ignored))
}

// TestQCSClassOrders: the public checkpoints' class orders are fer's data
// sets' orders.
func TestQCSClassOrders(t *testing.T) {
	for ds, want := range map[string][]string{
		"rafdb": data.RAFDBClasses, "ferplus": data.FERPlusClasses,
		"affectnet7": data.AffectNetClasses[:7], "affectnet8": data.AffectNetClasses,
	} {
		got, err := QCSClassNames(ds)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", ds, got, err, want)
		}
	}
	if _, err := QCSClassNames("dfew"); err == nil {
		t.Error("dfew has a QCS class order")
	}
	if got, err := ParseClassOrder("a, b ,c", 3); err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("ParseClassOrder: %v %v", got, err)
	}
	for _, bad := range []string{"a,b", "a,,b", "a,a,b"} {
		if _, err := ParseClassOrder(bad, 3); err == nil {
			t.Errorf("ParseClassOrder(%q) accepted", bad)
		}
	}
}

// qcsTinyConfig is the smallest configuration of the real code path: one
// IR unit per stage, 32-pixel backbone input (2×2 tokens per scale), width
// 32.
func qcsTinyConfig(variant string) QCSConfig {
	c, _ := QCSPreset(variant, "ferplus")
	c.Dim, c.ResizeTo, c.BackboneUnits = 32, 32, []int{1, 1, 1}
	return c
}

// TestQCSPresetsAndOptions: the per-file settings, options decoding and
// configuration errors.
func TestQCSPresetsAndOptions(t *testing.T) {
	type row struct {
		classes     int
		base, cross float64
		proj, pre   bool
		fusion      string
	}
	want := map[string]row{
		"qcs/rafdb": {7, 0, 0, false, false, ""}, "qcs/ferplus": {8, 0, 0.2, true, false, ""},
		"qcs/affectnet7": {7, 0, 0.4, false, false, ""}, "qcs/affectnet8": {8, 0, 0, true, false, ""},
		"dcs/rafdb": {7, 0, 0.2, false, false, ""}, "dcs/ferplus": {8, 0, 0.2, true, true, ""},
		"dcs/affectnet7": {7, 0, 0.4, false, false, ""}, "dcs/affectnet8": {8, 0.2, 0.5, true, true, FusionUnused},
	}
	for key, w := range want {
		v, ds, _ := strings.Cut(key, "/")
		c, err := QCSPreset(v, ds)
		if err != nil {
			t.Fatal(err)
		}
		got := row{c.NumClasses, c.BaseDrop, c.CrossDrop, c.AttnProjDrop, c.CrossPreNorm, c.Fusion}
		if got != w || c.Variant != v || c.Dim != 768 || c.Heads != 8 || c.BaseDepth != 2 || c.CrossDepth != 1 || c.ResizeTo != 112 || c.TokenGrid() != 7 {
			t.Errorf("%s: %+v (%+v), want %+v", key, got, c, w)
		}
	}
	cfg, err := QCSConfigFromOptions(QCSVariant, map[string]any{"preset": "affectnet7", "cross_drop": 0.1, "csa": "s", "fusion": "none"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CrossDrop != 0.1 || cfg.CSA != CSASim || cfg.NumClasses != 7 || cfg.Fusion != FusionNone {
		t.Errorf("options: %+v", cfg)
	}
	if cfg, err = QCSConfigFromOptions(DCSVariant, nil, 8); err != nil || cfg.NumClasses != 8 || cfg.Variant != DCSVariant {
		t.Errorf("no options: %+v %v", cfg, err)
	}
	for _, bad := range []struct {
		variant string
		opts    map[string]any
		classes int
		want    string
	}{
		{QCSVariant, map[string]any{"preset": "ferplus"}, 7, "preset ferplus builds 8 classes"},
		{QCSVariant, map[string]any{"preset": "dfew"}, 7, "no preset"},
		{QCSVariant, map[string]any{"csa": "X"}, 7, "csa"},
		{DCSVariant, map[string]any{"csa": "D"}, 7, "DCS always"},
		{QCSVariant, map[string]any{"heads": 5}, 7, "do not divide"},
		{QCSVariant, map[string]any{"fusion": "yes"}, 7, "fusion"},
		{QCSVariant, map[string]any{"drop": 0.1}, 7, "drop"},
	} {
		if _, err := QCSConfigFromOptions(bad.variant, bad.opts, bad.classes); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want an error mentioning %q", bad.opts, err, bad.want)
		}
	}
	full, err := QCSParamCount(DefaultQCSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QCS (RAF-DB, 7 classes): %d trainable parameters", full)
}

// TestQCSModelContract: quadruplet training batches give the 8 named
// outputs and the 8-term loss, evaluation batches only the base logits and
// plain cross-entropy; a training batch with one input is a clear error;
// DCS reads the first two inputs; Grad-CAM stages are in the graph.
func TestQCSModelContract(t *testing.T) {
	lockThread(t)
	for _, variant := range []string{QCSVariant, DCSVariant} {
		fer.SeedTorch(1)
		vs := newCPUStore()
		m, err := NewQCSModel(vs, qcsTinyConfig(variant))
		if err != nil {
			t.Fatal(err)
		}
		const B = 3
		var xs []*ts.Tensor
		for i := 0; i < 4; i++ {
			xs = append(xs, ts.MustRandn([]int64{B, 3, 40, 40}, gotch.Float, gotch.CPU))
		}
		b := &fer.Batch{Inputs: xs, Size: B, Targets: map[string]*ts.Tensor{
			fer.TargetLabel: ts.MustOfSlice([]int64{0, 1, 2}), fer.TargetLabelNeg: ts.MustOfSlice([]int64{3, 4, 5})}}
		out, err := m.Forward(b, true)
		if err != nil {
			t.Fatal(err)
		}
		nb := m.Net.Config().Branches()
		var names []string
		for k, v := range out {
			names = append(names, k)
			if s := v.MustSize(); s[0] != B || s[1] != 8 {
				t.Errorf("%s: output %s %v", variant, k, s)
			}
		}
		sort.Strings(names)
		if len(names) != 2*nb {
			t.Errorf("%s: outputs %v", variant, names)
		}
		loss, err := m.DefaultLoss()
		if err != nil {
			t.Fatal(err)
		}
		lv, err := loss.Loss(out, b)
		if err != nil {
			t.Fatal(err)
		}
		total := lv.Total.Float64Values()[0]
		base, cross := lv.Parts["base"].Float64Values()[0], lv.Parts["cross"].Float64Values()[0]
		if math.Abs(total-(base+cross)/2) > 1e-6 {
			t.Errorf("%s: loss %g, base %g, cross %g", variant, total, base, cross)
		}
		lv.Drop()
		out.Drop()

		eval := &fer.Batch{Inputs: xs[:1], Size: B, Targets: b.Targets}
		ts.NoGrad(func() {
			out, err = m.Forward(eval, false)
		})
		if err != nil || len(out) != 1 || out[fer.OutputLogits] == nil {
			t.Fatalf("%s eval: %v %v", variant, out, err)
		}
		lv, err = loss.Loss(out, eval)
		if err != nil {
			t.Fatal(err)
		}
		ce, _ := fer.CrossEntropy{}.Loss(out, eval)
		if d := maxAbsDiff(t, lv.Total, ce.Total); d != 0 {
			t.Errorf("%s: eval loss differs from plain cross-entropy by %g", variant, d)
		}
		lv.Drop()
		ce.Drop()
		out.Drop()
		if _, err := m.Forward(eval, true); err == nil || !strings.Contains(err.Error(), "batches") {
			t.Errorf("%s: training on a one-input batch: %v", variant, err)
		}

		for i, stage := range m.Stages() {
			logits, act, err := m.ForwardWithStage(xs[0], stage)
			if err != nil {
				t.Fatal(err)
			}
			if s := act.MustSize(); len(s) != 4 || s[1] != []int64{64, 128, 256}[i] {
				t.Errorf("%s: stage %s activations %v", variant, stage, s)
			}
			score := logits.MustSum(gotch.Float, false)
			g, err := ts.RunBackward([]*ts.Tensor{score}, []*ts.Tensor{act}, false, false)
			if err != nil {
				t.Fatalf("stage %s not in the logits' graph: %v", stage, err)
			}
			g[0].MustDrop()
			score.MustDrop()
			logits.MustDrop()
			act.MustDrop()
		}
		b.Drop()
		runtime.KeepAlive(vs)
	}
}
