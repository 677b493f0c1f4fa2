package fer

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/synth"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// "test-relabel" is the synth benchmark under other class names, in
// RAF-DB's order, with disgust renamed contempt (a class no synth-trained
// model knows) and, with option extra, an eighth class "other" without
// samples: the same images, other labels.
var relabelClasses = []string{"surprise", "fear", "contempt", "happiness", "sadness", "anger", "neutral"}

// synthToRelabel maps synth's label (neutral, happy, sad, surprise, fear,
// disgust, anger) to relabelClasses.
var synthToRelabel = []int64{6, 3, 4, 0, 1, 2, 5}

type relabeled struct{ Dataset }

func (d relabeled) Label(i int) int { return int(synthToRelabel[d.Dataset.(Labeled).Label(i)]) }

func (d relabeled) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	b, err := d.Dataset.Batch(idx, train, rng, dev)
	if err != nil {
		return nil, err
	}
	y := b.Targets[TargetLabel]
	v, err := int64Values(y)
	if err != nil {
		return nil, err
	}
	for i := range v {
		v[i] = synthToRelabel[v[i]]
	}
	y.Drop()
	b.Targets[TargetLabel], err = hostTensor(v, []int64{int64(len(v))}, dev)
	return b, err
}

func init() {
	RegisterDataset("test-relabel", "synth relabelled (tests)", func(cfg DataConfig, seed int64) (*Splits, error) {
		extra := cfg.Options["extra"] == true
		delete(cfg.Options, "extra")
		s, err := openSynth(cfg, seed)
		if err != nil {
			return nil, err
		}
		s.Classes = slices.Clone(relabelClasses)
		if extra {
			s.Classes = append(s.Classes, "other")
		}
		s.Train, s.Val = relabeled{s.Train}, relabeled{s.Val}
		s.Test = nil
		return s, nil
	})
}

// Evaluating a synth-trained checkpoint on relabelled data: classes are
// matched by name, the data class without counterpart (contempt) is left
// out and counted, the model class the data set lacks (disgust) is never
// predicted; accuracy equals the one computed by hand from the original
// model's logits.
func TestCrossDatasetEval(t *testing.T) {
	_, ckpt := fitTiny(t, "data.options={train_n: 70, val_n: 42, test_n: 0, size: 32, crop: 0}")

	// by hand: the model's logits on the val images
	r0, _, err := LoadRun(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if r0.Cross != nil {
		t.Fatal("same data set: no mapping")
	}
	idx := make([]int, r0.Data.Val.Len())
	for i := range idx {
		idx[i] = i
	}
	b, err := r0.Data.Val.Batch(idx, false, nil, cpu)
	if err != nil {
		t.Fatal(err)
	}
	var out Outputs
	ts.NoGrad(func() { out, err = r0.Model.Forward(b, false) })
	if err != nil {
		t.Fatal(err)
	}
	logits := out[OutputLogits].Float64Values()
	labels, _ := int64Values(b.Targets[TargetLabel])
	right, n, contempt := 0, 0, 0
	for i, y := range labels {
		if y == 5 { // synth disgust = data contempt: left out
			contempt++
			continue
		}
		best := -1
		for c := 0; c < 7; c++ {
			if c == 5 { // the model's disgust: not a data class
				continue
			}
			if best < 0 || logits[7*i+c] > logits[7*i+best] {
				best = c
			}
		}
		n++
		if int64(best) == y {
			right++
		}
	}
	if contempt == 0 || n == 0 {
		t.Fatalf("fixture: %d contempt, %d others", contempt, n)
	}

	r1, _, err := LoadRun(ckpt, `data.name="test-relabel"`)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Cross == nil || r1.Cross.Classes == nil {
		t.Fatal("no class mapping")
	}
	cm := r1.Cross.Classes
	if !slices.Equal(cm.UnmatchedData, []string{"contempt"}) || !slices.Equal(cm.UnmatchedModel, []string{"disgust"}) ||
		cm.DataToModel[3] != 1 /* happiness <- happy */ || cm.DataToModel[6] != 0 /* neutral */ {
		t.Fatalf("map %+v", cm)
	}
	rep := r1.Cross.Report()
	for _, want := range []string{"happiness    <- happy", "contempt     <- (no counterpart: left out)", "-> disgust", "val: " + strconv.Itoa(contempt) + " contempt"} {
		if !strings.Contains(rep, want) {
			t.Fatalf("report lacks %q:\n%s", want, rep)
		}
	}
	vals, err := Evaluate(context.Background(), r1.Model, r1.Loss, r1.Data.Val, r1.NewEvaluator(), 16, cpu, "val", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(right) / float64(n); vals["acc"] != want {
		t.Fatalf("cross-database accuracy %v, want %v (%d/%d)", vals["acc"], want, right, n)
	}
	if m := r1.Data.Val.(*MappedDataset).Masked(); m["contempt"] != contempt {
		t.Fatalf("masked %v, want %d contempt", m, contempt)
	}
	out.Drop()
	b.Drop()
}

// fitTiny trains the tiny test model for one epoch on synth and returns
// the run and its last checkpoint.
func fitTiny(t *testing.T, overrides ...string) (*Run, string) {
	t.Helper()
	cfg := tinyConfig(t, append([]string{"epochs=1"}, overrides...)...)
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = &strings.Builder{}
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return r, filepath.Join(cfg.RunDir, LastCheckpoint)
}

// headed marks the test model's classifier as its class head.
type headed struct{ Model }

func (headed) ClassHeadParams() []string { return []string{"fc2.weight", "fc2.bias"} }

// --init: matching weights are copied, a head whose shape changed or
// whose classes differ is swapped, and the report says which.
func TestInitFromCheckpoint(t *testing.T) {
	r, ckpt := fitTiny(t, "data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0}")
	old := weights(r.Model)

	// 8 classes: the classifier's shape changes
	c8 := tinyConfig(t, `data.name="test-relabel"`, "data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0, extra: true}", "init="+ckpt)
	r8, err := BuildRun(c8)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := InitFromCheckpoint(r8.Model, ckpt, r8.Data.Classes)
	if err != nil {
		t.Fatal(err)
	}
	swapped := map[string]string{}
	for _, s := range rep.Swapped {
		swapped[s.Name] = s.Reason
	}
	if len(swapped) != 2 || !strings.Contains(swapped["fc2.weight"], "shape [7 24] in the checkpoint, [8 24] now") || len(rep.Loaded) != 6 {
		t.Fatalf("report %s", rep)
	}
	now := weights(r8.Model)
	if !slices.Equal(now["fc1.weight"], old["fc1.weight"]) || !slices.Equal(now["bn.running_mean"], old["bn.running_mean"]) {
		t.Fatal("fc1/bn not loaded")
	}
	// 7 classes, other names: same shape, but a declared class head is
	// swapped; an undeclared one would be loaded as it is
	c7 := tinyConfig(t, `data.name="test-relabel"`, "data.options={train_n: 40, val_n: 14, test_n: 0, size: 32, crop: 0}")
	r7, err := BuildRun(c7)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = InitFromCheckpoint(headed{r7.Model}, ckpt, r7.Data.Classes)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Swapped) != 2 || !strings.Contains(rep.String(), "fc2.bias: class head: the checkpoint's classes (neutral, happy") {
		t.Fatalf("report %s", rep)
	}
	// the trainer applies init and prints the report
	var log strings.Builder
	tr8 := r8.Trainer()
	tr8.Out = &log
	if _, err := tr8.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "init from "+ckpt+": 6 variables loaded; 2 re-initialised") {
		t.Fatalf("train log:\n%s", log.String())
	}
	// a checkpoint of another model is refused
	if _, err := InitFromCheckpoint(headed{r7.Model}, filepath.Join(t.TempDir(), "none.ckpt"), nil); err == nil {
		t.Fatal("missing checkpoint: want error")
	}
}

// The class-name table of the built-in data sets (README, classmap.go):
// the seven basic expressions match across all of them; contempt has no
// counterpart in Aff-Wild2, DFEW, RAF-DB or synth.
func TestClassNameTable(t *testing.T) {
	sets := map[string][]string{
		"affwild2": data.AffWild2Classes, "rafdb": data.RAFDBClasses, "ferplus": data.FERPlusClasses,
		"affectnet7": data.AffectNetClasses[:7], "affectnet8": data.AffectNetClasses, "dfew": data.DFEWClasses,
		"synth": synth.Classes,
	}
	for mname, model := range sets {
		for dname, ds := range sets {
			m, err := NewNameMap(model, ds, CanonicalClass, "class")
			if err != nil {
				t.Fatalf("%s -> %s: %v", mname, dname, err)
			}
			matched := 0
			for j, i := range m.DataToModel {
				if i >= 0 {
					matched++
					if CanonicalClass(model[i]) != CanonicalClass(ds[j]) {
						t.Fatalf("%s -> %s: %s matched to %s", mname, dname, ds[j], model[i])
					}
				}
			}
			want := 7 // the basic expressions, plus contempt when both have it
			if len(ds) == 8 && len(model) == 8 {
				want = 8
			}
			if matched != want {
				t.Errorf("%s -> %s: %d classes matched, want %d (%v)", mname, dname, matched, want, m.UnmatchedData)
			}
			wantData := len(ds) == 8 && len(model) == 7  // contempt left out
			wantModel := len(model) == 8 && len(ds) == 7 // contempt never predicted
			if (len(m.UnmatchedData) == 1) != wantData || (len(m.UnmatchedModel) == 1) != wantModel {
				t.Errorf("%s -> %s: unmatched data %v, model %v", mname, dname, m.UnmatchedData, m.UnmatchedModel)
			}
			if slices.Equal(model, ds) != m.Identity() {
				t.Errorf("%s -> %s: identity %v", mname, dname, m.Identity())
			}
		}
	}
	if _, err := NewNameMap([]string{"happy", "happiness"}, data.RAFDBClasses, CanonicalClass, "class"); err == nil {
		t.Fatal("two model classes with one meaning: want error")
	}
	if _, err := NewNameMap([]string{"cat", "dog"}, data.RAFDBClasses, CanonicalClass, "class"); err == nil {
		t.Fatal("nothing in common: want error")
	}
}
