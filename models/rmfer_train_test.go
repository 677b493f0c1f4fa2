package models

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/plots"
	"github.com/sugarme/gotch/ts"
)

// rmferRun builds a run of the registered rmfer model on 48×48 synthetic
// faces: SAM (rho 0.05) over Adam, as the public code trains.
func rmferRun(t *testing.T, epochs, trainN int, extra ...string) *fer.Run {
	t.Helper()
	cfg, err := fer.ParseConfig(nil, "rmfer test", append([]string{
		"model={name: rmfer, options: {lambda1: 1.0, tau: 1.0}}",
		fmt.Sprintf("data={name: synth, options: {train_n: %d, val_n: 0, test_n: 0, size: 48, crop: 0}}", trainN),
		"optimizer={name: adam, lr: 0.001, sam_rho: 0.05}",
		fmt.Sprintf("epochs=%d", epochs), fmt.Sprintf("batch_size=%d", min(trainN, 16)),
		"eval_every=0", "seed=3", "device=cpu",
		"run_dir=" + filepath.Join(t.TempDir(), "run"),
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fer.BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func trainRecords(t *testing.T, dir string) []fer.Record {
	t.Helper()
	recs, err := fer.ReadMetricsLog(filepath.Join(dir, fer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []fer.Record
	for _, r := range recs {
		if r.Split == "train" {
			out = append(out, r)
		}
	}
	return out
}

// snapshot copies every variable of m (freed when the test ends).
func snapshot(t *testing.T, m fer.Model) map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	for name, v := range m.VarStore().Variables() {
		out[name] = v.MustDetach(false).MustMulScalar(ts.FloatScalar(1), true)
	}
	t.Cleanup(func() {
		for _, x := range out {
			x.MustDrop()
		}
	})
	return out
}

// changed lists, by prefix, whether any variable under it differs from
// the snapshot.
func changed(t *testing.T, m fer.Model, before map[string]*ts.Tensor, prefixes ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for name, v := range m.VarStore().Variables() {
		if strings.Contains(name, "running_") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) && !v.MustEqual(before[name], false) {
				out[p] = true
			}
		}
	}
	return out
}

// TestRMFERTrainsLpre: the registered rmfer model trains through fer's
// trainer with L_pre = CE + λ1·CE_att, SAM over Adam (optimizer.sam_rho):
// on 16 synthetic faces (one batch per epoch, B2 from scratch) the loss
// falls over six steps, every part of the network moves, and the log
// carries the terms as loss/ce and loss/ce_att and fIAL's metrics.
func TestRMFERTrainsLpre(t *testing.T) {
	lockThread(t)
	const steps = 6
	r := rmferRun(t, steps, 16)
	if _, ok := r.Loss.(RMFERLoss); !ok {
		t.Fatalf("loss %T, want RMFERLoss", r.Loss)
	}
	before := snapshot(t, r.Model)
	tr := r.Trainer()
	tr.Out = io.Discard
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	recs := trainRecords(t, r.Cfg.RunDir)
	if len(recs) != steps {
		t.Fatalf("%d epoch records", len(recs))
	}
	first, last := recs[0].Values, recs[steps-1].Values
	for _, k := range []string{"loss", "loss/ce"} {
		if !(last[k] < 0.95*first[k]) {
			t.Errorf("%s: step 1 %.4f, step %d %.4f: did not fall by 5%%", k, first[k], steps, last[k])
		}
	}
	if _, ok := first["loss/acl"]; ok {
		t.Error("loss/acl logged without an RMset stream")
	}
	if math.Abs(first["loss"]-first["loss/ce"]-first["loss/ce_att"]) > 1e-4 {
		t.Errorf("loss %.6f != ce %.6f + 1.0·ce_att %.6f", first["loss"], first["loss/ce"], first["loss/ce_att"])
	}
	if _, ok := first["att_uar"]; !ok {
		t.Errorf("train metrics %v lack fIAL's att_uar", first)
	}
	parts := []string{"backbone.", "projection_head.", "classifier_main.", "classifier_att."}
	if got := changed(t, r.Model, before, parts...); len(got) != 4 {
		t.Errorf("parts that moved: %v, want all of %v", got, parts)
	}
}

// TestRMFERReleasedLambda1: with the released configs' weight_att = 0
// (the default lambda1), a step moves the backbone and classifier_main
// only: the projection head and classifier_att get exactly zero gradient.
func TestRMFERReleasedLambda1(t *testing.T) {
	lockThread(t)
	r := rmferRun(t, 1, 8, "model.options.lambda1=0")
	before := snapshot(t, r.Model)
	tr := r.Trainer()
	tr.Out = io.Discard
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	got := changed(t, r.Model, before, "backbone.", "projection_head.", "classifier_main.", "classifier_att.")
	if !got["backbone."] || !got["classifier_main."] || got["projection_head."] || got["classifier_att."] {
		t.Errorf("moved with lambda1 = 0: %v; want backbone and classifier_main only", got)
	}
}

// synthRMset is a synthetic RMset: one video of 6 people over 80 frames;
// person p's face at frame t is a synthetic face whose expression changes
// every 20 frames, plus pixel noise from the loader's rng.
func synthRMset(t *testing.T) (*data.RMSampler, func(data.RMFace, bool, *rand.Rand) ([]float32, error)) {
	t.Helper()
	faces := make([]data.RMFace, 0, 6*80)
	for p := 0; p < 6; p++ {
		for f := 0; f < 80; f++ {
			faces = append(faces, data.RMFace{Video: "mashup", Person: p, Frame: f, File: fmt.Sprintf("mashup/%d_%d.jpg", f, p)})
		}
	}
	s, err := data.NewRMSampler(faces, data.RMSamplerConfig{NPositive: 6, NNegative: 6, PosWindow: 1, NegGap: 30, AnchorMargin: 31, FrameSkip: 1})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := synth.Generate(synth.Config{N: 28, Size: 48, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	load := func(f data.RMFace, train bool, rng *rand.Rand) ([]float32, error) {
		img := imgs[(f.Person*4+f.Frame/20)%len(imgs)].Frames[0]
		out := make([]float32, 3*48*48)
		for y := 0; y < 48; y++ {
			for x := 0; x < 48; x++ {
				c := img.RGBAAt(x, y)
				for k, v := range []uint8{c.R, c.G, c.B} {
					out[k*48*48+y*48+x] = float32(v)/255 + 0.02*float32(rng.NormFloat64())
				}
			}
		}
		return out, nil
	}
	return s, load
}

// TestRMFERTwoPhaseWithRMset: one run, two phases — epoch 1 trains L_pre
// alone, epoch 2 adds λ2·L_ACL on an RMset aux stream (RMsetData over the
// candidate sampler); the ACL term is logged only in phase 2, and the run
// resumed from its phase-1 checkpoint ends with the same weights.
func TestRMFERTwoPhaseWithRMset(t *testing.T) {
	lockThread(t)
	sampler, load := synthRMset(t)
	aux := func() *fer.AuxStream {
		return &fer.AuxStream{Data: &fer.RMsetData{Sampler: sampler, Load: load, Shape: []int64{3, 48, 48}, Workers: 2},
			BatchSize: 1, StartEpoch: 1}
	}
	fit := func(r *fer.Run, resume bool, epochs int) {
		t.Helper()
		tr := r.Trainer()
		tr.Out = io.Discard
		tr.Aux = aux()
		r.Cfg.Epochs = epochs
		if _, err := tr.Fit(context.Background(), resume); err != nil {
			t.Fatal(err)
		}
	}
	ref := rmferRun(t, 2, 8)
	fit(ref, false, 2)
	recs := trainRecords(t, ref.Cfg.RunDir)
	if len(recs) != 2 {
		t.Fatalf("%d epoch records", len(recs))
	}
	if _, ok := recs[0].Values["loss/acl"]; ok {
		t.Error("phase 1 logged an ACL loss")
	}
	acl, ok := recs[1].Values["loss/acl"]
	if !ok || !(acl > 0) || math.IsInf(acl, 0) {
		t.Fatalf("phase 2 ACL loss %v (logged: %v)", acl, ok)
	}
	// L_ACL with one positive and one negative kept (γ = 0.1 of 6) is
	// log(1 + e^{s_n − s_p}) ≤ log(1 + e^{2/τ})
	if acl > math.Log(1+math.Exp(2)) {
		t.Errorf("ACL loss %v above its bound", acl)
	}
	if d := recs[1].Values["loss"] - recs[1].Values["loss/ce"] - recs[1].Values["loss/ce_att"] - acl; math.Abs(d) > 1e-4 {
		t.Errorf("loss ≠ ce + ce_att + λ2·acl (λ2 = 1) by %g", d)
	}

	// stop after phase 1, resume into phase 2
	run := rmferRun(t, 1, 8)
	fit(run, false, 1)
	resumed := rmferRun(t, 2, 8, "run_dir="+run.Cfg.RunDir)
	fit(resumed, true, 2)
	want, got := ref.Model.VarStore().Variables(), resumed.Model.VarStore().Variables()
	for name, w := range want {
		g := got[name]
		if !w.MustEqual(&g, false) {
			t.Fatalf("%s differs after resuming into phase 2", name)
		}
	}
}

// TestRMFERGroupAttentionDump: Fig. 4's data from the model: the attention
// over an RMset group [anchor, positives, negatives] drawn by the sampler
// is a row-softmax with a zero (self-masked) diagonal, and it round-trips
// through an attention dump into the figure, faces included.
func TestRMFERGroupAttentionDump(t *testing.T) {
	lockThread(t)
	sampler, load := synthRMset(t)
	fer.SeedTorch(5)
	vs := newCPUStore()
	m, err := NewRMFER(vs.Root(), DefaultRMFERConfig(7))
	if err != nil {
		t.Fatal(err)
	}
	ds := &fer.RMsetData{Sampler: sampler, Load: load, Shape: []int64{3, 48, 48}, Workers: 2}
	b, err := ds.Batch([]int{0}, false, rand.New(rand.NewPCG(1, 2)), vs.Device())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	pos := b.Inputs[fer.RMsetInputPositives].MustSelect(0, 0, false)
	neg := b.Inputs[fer.RMsetInputNegatives].MustSelect(0, 0, false)
	defer pos.MustDrop()
	defer neg.MustDrop()
	a, err := m.GroupAttention(b.Inputs[fer.RMsetInputAnchor], pos, neg)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 13 {
		t.Fatalf("%d rows, want 1 + 6 + 6", len(a))
	}
	for i, row := range a {
		sum := 0.0
		for _, v := range row {
			sum += v
		}
		if math.Abs(sum-1) > 1e-5 || row[i] != 0 {
			t.Fatalf("row %d sums to %v with diagonal %v", i, sum, row[i])
		}
	}
	// the faces the model saw, as the group's files
	dir := t.TempDir()
	if d := os.Getenv("FER_FIGURES_DIR"); d != "" { // to look at the figure
		dir = d
	}
	grp := plots.AttentionGroup{Anchor: "anchor.png", Attention: a}
	writeFace(t, b.Inputs[fer.RMsetInputAnchor].MustSelect(0, 0, false), filepath.Join(dir, grp.Anchor))
	for k := int64(0); k < 6; k++ {
		grp.Positives = append(grp.Positives, fmt.Sprintf("p%d.png", k+1))
		writeFace(t, pos.MustSelect(0, k, false), filepath.Join(dir, grp.Positives[k]))
		grp.Negatives = append(grp.Negatives, fmt.Sprintf("n%d.png", k+1))
		writeFace(t, neg.MustSelect(0, k, false), filepath.Join(dir, grp.Negatives[k]))
	}
	dump := filepath.Join(dir, "attention.json")
	if err := plots.WriteAttentionDump(dump, &plots.AttentionDump{Model: "rmfer", Tau: 1, SelfMasking: true, Groups: []plots.AttentionGroup{grp}}); err != nil {
		t.Fatal(err)
	}
	if err := plots.AttentionFromDump(filepath.Join(dir, "fig4.png"), dump, 0, true, "rmfer at initialisation, synthetic RMset"); err != nil {
		t.Fatal(err)
	}
}

// writeFace writes an image tensor [3,H,W] in [0,1] (consumed) as a PNG.
func writeFace(t *testing.T, x *ts.Tensor, path string) {
	t.Helper()
	shape := x.MustSize()
	v := x.Float64Values(true)
	h, w := int(shape[1]), int(shape[2])
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for c := 0; c < w; c++ {
			var px [3]uint8
			for k := range px {
				px[k] = uint8(math.Round(255 * math.Min(1, math.Max(0, v[k*h*w+y*w+c]))))
			}
			img.SetRGBA(c, y, color.RGBA{R: px[0], G: px[1], B: px[2], A: 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}
