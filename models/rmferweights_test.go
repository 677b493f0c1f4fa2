package models

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/ts"
)

// registered builds a registered model for classes through fer's
// registry, as `fercli train` does (seeded: the same initial weights).
func registered(t *testing.T, name string, classes []string, size int64) fer.Model {
	t.Helper()
	fer.SeedTorch(1)
	m, err := fer.NewModel(newCPUStore(), fer.ModelSpec{Name: name, NumClasses: len(classes), InputShape: []int64{3, size, size}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadWeights(t *testing.T, m fer.Model, path string, classes []string) string {
	t.Helper()
	wl, ok := m.(fer.WeightsLoader)
	if !ok {
		t.Fatalf("%T does not implement fer.WeightsLoader", m)
	}
	rep, err := wl.LoadWeights(path, classes)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return rep
}

// TestRMFERWeightsLoader: the registered rmfer model reads every
// published format through fer.WeightsLoader. HSEmotion's enet_b2_8.pt
// and either file of the RMFER repository's split pair give the same
// weights, the HSEmotion model's logits with columns mapped by name, and
// a report stating the map; a model the public code trained (Lightning
// checkpoint, save_model's files) loads with both heads' rows mapped from
// the code's AffectNet-code order to RAF-DB's classes.
func TestRMFERWeightsLoader(t *testing.T) {
	lockThread(t)
	dir := rmferFixtures(t)
	x, want, wantMapped := hseMappedIO(t)
	defer wantMapped.MustDrop()
	var first *RMFERModel
	for _, f := range []string{"enet_b2_8.pt", "enet_b2_backbone_8emo.pth", "enet_b2_classifier_8emo.pth"} {
		m := registered(t, "rmfer", data.AffectNetClasses, 64).(*RMFERModel)
		rep := loadWeights(t, m, filepath.Join(dir, f), data.AffectNetClasses)
		for _, s := range []string{"kept their initialisation: projection_head.0.bias", "HSEmotion's alphabetical head", "5 Neutral → 0 neutral, 4 Happiness → 1 happy"} {
			if !strings.Contains(rep, s) {
				t.Errorf("%s: report lacks %q:\n%s", f, s, rep)
			}
		}
		var y *ts.Tensor
		if err := noGrad(func() error { y = m.Net.ForwardT(x, false); return nil }); err != nil {
			t.Fatal(err)
		}
		near(t, f+" logits", y, wantMapped, 1e-4*maxAbs(want))
		y.MustDrop()
		if first == nil {
			first = m
			continue
		}
		sameVars(t, m.VS, first.VS)
	}

	// the public code's trained model, on RAF-DB: row j of each head is
	// the code's row of RAF-DB's class j (surprise 3, fear 4, disgust 5,
	// happiness 1, sadness 2, anger 6, neutral 0)
	_, ref := newRMFERFromRef(t, DefaultRMFERConfig(7))
	refVars := ref.Variables()
	rows := []int64{3, 4, 5, 1, 2, 6, 0}
	for _, f := range []string{"rmfer_lightning.ckpt", filepath.Join("enet_Best_overall", "enet_classifier_att_Best_overall.pth")} {
		m := registered(t, "rmfer", data.RAFDBClasses, 64).(*RMFERModel)
		rep := loadWeights(t, m, filepath.Join(dir, f), data.RAFDBClasses)
		if !strings.Contains(rep, "the RMFER code's labels") || !strings.Contains(rep, "3 Surprise → 0 surprise, 4 Fear → 1 fear") {
			t.Errorf("%s: report:\n%s", f, rep)
		}
		got := m.VS.Variables()
		for name, w := range refVars {
			g, ok := got[name]
			if !ok {
				t.Fatalf("%s: the model has no %s", f, name)
			}
			if strings.HasPrefix(name, "classifier_") {
				ri := ts.MustOfSlice(rows)
				w = *w.MustIndexSelect(0, ri, false)
				ri.MustDrop()
			}
			if !g.MustEqual(&w, false) {
				t.Fatalf("%s: %s differs from the reference (rows mapped)", f, name)
			}
		}
		runtime.KeepAlive(m) // Variables() does not keep the VarStores alive
		runtime.KeepAlive(ref)
	}
	m := registered(t, "rmfer", data.AffectNetClasses, 64).(*RMFERModel)
	for _, c := range []struct{ path, want string }{
		{dir, "is a folder"},
		{filepath.Join(dir, "nothing.pt"), "no such file"},
	} {
		if _, err := m.LoadWeights(c.path, data.AffectNetClasses); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.path, err, c.want)
		}
	}
	// half of a pair without its other half
	lone := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(dir, "enet_b2_backbone_8emo.pth"))
	os.WriteFile(filepath.Join(lone, "enet_b2_backbone_8emo.pth"), b, 0o644)
	if _, err := m.LoadWeights(filepath.Join(lone, "enet_b2_backbone_8emo.pth"), data.AffectNetClasses); err == nil ||
		!strings.Contains(err.Error(), "enet_b2_classifier_8emo.pth") {
		t.Errorf("lone backbone file: err = %v", err)
	}
	// a 7-class trained model cannot serve 8 classes
	if _, err := m.LoadWeights(filepath.Join(dir, "rmfer_lightning.ckpt"), data.AffectNetClasses); err == nil || !strings.Contains(err.Error(), "contempt") {
		t.Errorf("7-class model into 8 classes: err = %v", err)
	}
}

// TestEffNetClassifierWeights: the effnet_b2 baseline classifier reads
// HSEmotion's enet_b2_8.pt through fer.WeightsLoader: on RAF-DB's 7
// classes the head is mapped by name (Contempt dropped, and said so) and
// every input whose HSEmotion class RAF-DB has is predicted as that class
// by name; a permuted (as-is) head would name them wrongly
// (TestHSEmotionClassMapping). A backbone without a published format
// says so.
func TestEffNetClassifierWeights(t *testing.T) {
	lockThread(t)
	dir := rmferFixtures(t)
	x, _ := hseIO(t)
	m := registered(t, "effnet_b2", data.RAFDBClasses, 64).(*fer.Classifier)
	rep := loadWeights(t, m, filepath.Join(dir, "enet_b2_8.pt"), data.RAFDBClasses)
	if !strings.Contains(rep, "7 Surprise → 0 surprise") || !strings.Contains(rep, "dropped: Contempt") {
		t.Errorf("report:\n%s", rep)
	}
	var y *ts.Tensor
	if err := noGrad(func() error { y = m.Net.ForwardT(x, false); return nil }); err != nil {
		t.Fatal(err)
	}
	defer y.MustDrop()
	// the dropped class's input may land anywhere; the others are named
	pred := argmaxRows(t, y)
	for i, hse := range HSEmotionClasses8 {
		if hse == "Contempt" {
			continue
		}
		if got := data.RAFDBClasses[pred[i]]; canonicalExpression(got) != canonicalExpression(hse) {
			t.Errorf("input %d (HSEmotion %s) predicted %s", i, hse, got)
		}
	}
	r18 := registered(t, "resnet18", data.RAFDBClasses, 32).(*fer.Classifier)
	if _, err := r18.LoadWeights(filepath.Join(dir, "enet_b2_8.pt"), data.RAFDBClasses); err == nil || !strings.Contains(err.Error(), "reads no published-weights format") {
		t.Errorf("resnet18: err = %v", err)
	}
	if _, err := m.LoadWeights(filepath.Join(dir, "rmfer_lightning.ckpt"), data.RAFDBClasses); err == nil {
		t.Error("an RMFER checkpoint loaded into effnet_b2")
	} else {
		t.Logf("RMFER checkpoint into effnet_b2: %v", err)
	}
}
