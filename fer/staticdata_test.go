package fer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	fx "github.com/fer-research/fer/internal/staticfixtures"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// smallTransforms are 16×16 pipelines for fast tests.
var smallTransforms = map[string]any{
	"train_transforms": []any{map[string]any{"resize": []any{18, 18}}, "hflip", map[string]any{"random_crop": 16}, "to_tensor"},
	"test_transforms":  []any{map[string]any{"resize": []any{18, 18}}, map[string]any{"center_crop": 16}, "to_tensor"},
}

func withOptions(base map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// staticFixture is one data set layout on disk with its expected sizes.
type staticFixture struct {
	name, data, layout string
	root               string
	train, val, test   int
	classes            int
}

func staticFixtures(t *testing.T) []staticFixture {
	t.Helper()
	var out []staticFixture
	n := fx.Counts{Train: 3, Test: 2}
	root := t.TempDir()
	tr, te := fx.RAFDB(t, root, n)
	out = append(out, staticFixture{"rafdb native", "rafdb", "native", root, tr, te, te, 7})
	root = t.TempDir()
	tr, te = fx.QCSList(t, root, "raf_db_basic_train.txt", "raf_db_basic_test.txt", "basic", 7, n, ".jpg")
	out = append(out, staticFixture{"rafdb list", "rafdb", "list", root, tr, te, te, 7})
	root = t.TempDir()
	tr, va, te := fx.FERPlus(t, root, n)
	out = append(out, staticFixture{"ferplus native", "ferplus", "native", root, tr, va, te, 8})
	root = t.TempDir()
	tr, te = fx.QCSList(t, root, "ferplus_training.txt", "ferplus_test.txt", "img", 8, n, ".png")
	out = append(out, staticFixture{"ferplus list", "ferplus", "list", root, tr, te, te, 8})
	for _, nc := range []int{7, 8} {
		root = t.TempDir()
		tr, va := fx.AffectNet(t, root, n, nc)
		out = append(out, staticFixture{fmt.Sprintf("affectnet%d native", nc), fmt.Sprintf("affectnet%d", nc), "native", root, tr, va, va, nc})
		root = t.TempDir()
		tr, te = fx.QCSList(t, root, fmt.Sprintf("affectnet_training-cls%d-v7.txt", nc), fmt.Sprintf("affectnet_validation-cls%d.txt", nc), "Manually_trainval_croped", nc, n, ".jpg")
		out = append(out, staticFixture{fmt.Sprintf("affectnet%d list", nc), fmt.Sprintf("affectnet%d", nc), "list", root, tr, te, te, nc})
	}
	return out
}

// Every layout of every still-image data set opens with the documented
// splits, classes and shapes, gives single-image and quadruplet batches,
// and its ImageInput (what predict feeds the model) equals the
// evaluation batch of the same image.
func TestStaticDatasets(t *testing.T) {
	lockThread(t)
	for _, f := range staticFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			s, err := OpenDataset(DataConfig{Name: f.data, Root: f.root, Options: withOptions(smallTransforms, "quadruplet", true)}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if s.Train.Len() != f.train || s.Val.Len() != f.val || s.Test.Len() != f.test || len(s.Classes) != f.classes {
				t.Fatalf("train %d val %d test %d classes %d; want %d %d %d %d", s.Train.Len(), s.Val.Len(), s.Test.Len(), len(s.Classes), f.train, f.val, f.test, f.classes)
			}
			if !slices.Equal(s.InputShape, []int64{3, 16, 16}) {
				t.Fatalf("input shape %v", s.InputShape)
			}
			note := s.Val.(*StaticSplit).ProtocolNote()
			if (f.layout == "list") != strings.Contains(note, "QCS lists") || !strings.Contains(note, "val") {
				t.Fatalf("protocol note %q", note)
			}
			tr := s.Train.(*StaticSplit)
			if tr.Quadruplet != true || (f.data[:3] == "aff") != tr.Balanced || (f.data[:3] == "aff") != (tr.Negative == data.NegativeUniform) {
				t.Fatalf("sampler defaults: balanced %v, negative %v", tr.Balanced, tr.Negative)
			}
			b, err := s.Train.Batch([]int{0, 1, 2, f.train - 1}, true, NewRand(1, 2), cpu)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Drop()
			if len(b.Inputs) != 4 || b.Size != 4 {
				t.Fatalf("quadruplet batch: %d inputs, size %d", len(b.Inputs), b.Size)
			}
			y, _ := b.Target(TargetLabel)
			yn, _ := b.Target(TargetLabelNeg)
			for j, l := range y.Int64Values() {
				if l == yn.Int64Values()[j] {
					t.Fatalf("negative class %d equals the anchor's", l)
				}
			}
			e, err := s.Test.Batch([]int{0, 1}, false, NewRand(0, 0), cpu)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Drop()
			if len(e.Inputs) != 1 {
				t.Fatalf("eval batch has %d inputs", len(e.Inputs))
			}
			// ImageInput of the first test image, read as predict reads a
			// file (JPEGs through libjpeg-turbo), = its eval input
			it := s.Test.(*StaticSplit).Set.Items[0]
			if !it.Box.Empty() {
				return // the box is the data set's; a picture is taken whole
			}
			var pic image.Image
			if it.Pixels != nil {
				pic = it.Pixels
			} else if pic, err = LoadImage(it.Path); err != nil {
				t.Fatal(err)
			}
			x, err := s.ImageInput(pic)
			if err != nil {
				t.Fatal(err)
			}
			ev := e.Inputs[0].Float64Values()
			for i, v := range x {
				if float64(v) != ev[i] {
					t.Fatalf("ImageInput differs from the evaluation input at %d: %v vs %v", i, v, ev[i])
				}
			}
		})
	}
}

// The defaults are the public QCS scripts' transforms (224×224 input),
// and bad options are errors naming the option and what is allowed.
func TestStaticDatasetOptions(t *testing.T) {
	root := t.TempDir()
	fx.RAFDB(t, root, fx.Counts{Train: 1, Test: 1})
	s, err := OpenDataset(DataConfig{Name: "rafdb", Root: root}, 1)
	if err != nil {
		t.Fatal(err)
	}
	set := s.Train.(*StaticSplit).Set
	if !slices.Equal(s.InputShape, []int64{3, 224, 224}) ||
		!slices.Equal(set.Train.Steps(), []string{"resize", "hflip", "color_jitter", "to_tensor", "normalize", "random_erasing"}) ||
		!slices.Equal(set.Test.Steps(), []string{"resize", "to_tensor", "normalize"}) {
		t.Fatalf("rafdb defaults: %v, %v, %v", s.InputShape, set.Train.Steps(), set.Test.Steps())
	}
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"quadruplet": true}, `class 0 "surprise" (1 image: no other image of the class for the positive)`},
		{map[string]any{"pairs": true}, `pair sampling needs at least 2 images in every class that has one (the positive is another image of the anchor's class): class 0 "surprise" (1 image)`},
		{map[string]any{"pairs": true, "quadruplet": true}, "quadruplet (QCS) and pairs (DCS) exclude each other"},
		{map[string]any{"sampler": "weighted"}, "sampler = \"weighted\", want random"},
		{map[string]any{"samples_per_epoch": 10}, "set sampler: balanced"},
		{map[string]any{"negative_class": "any"}, "want data"},
		{map[string]any{"layout": "csv"}, `layout = "csv", want auto, native`},
		{map[string]any{"layout": "list"}, "raf_db_basic_train.txt"},
		{map[string]any{"list_classes": []any{"a"}}, "options of the list layout"},
		{map[string]any{"train_transforms": []any{"flip"}}, `train_transforms[0]: unknown transform "flip"`},
		{map[string]any{"test_transforms": []any{"hflip", "to_tensor"}}, "test_transforms has random steps"},
		{map[string]any{"train_transforms": []any{map[string]any{"resize": 100}}}, "train_transforms give 100x100 images, test_transforms 224x224"},
		{map[string]any{"colour": 1}, `unknown key "colour"`},
	} {
		_, err := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: c.opts}, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.opts, err, c.want)
		}
	}
	if _, err := OpenDataset(DataConfig{Name: "affectnet7", Root: t.TempDir()}, 1); err == nil ||
		!strings.Contains(err.Error(), "affectnet_training-cls7-v7.txt") || !strings.Contains(err.Error(), "Manually_Annotated_Images") {
		t.Fatalf("empty root: %v", err)
	}
	// balanced epochs: len/divisor anchors, or samples_per_epoch
	root = t.TempDir()
	fx.AffectNet(t, root, fx.Counts{Train: 3, Test: 1}, 7)
	s, err = OpenDataset(DataConfig{Name: "affectnet7", Root: root, Options: withOptions(smallTransforms, "epoch_divisor", 3)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(EpochOrder(s.Train, 1, 0)); got != 21/3 {
		t.Fatalf("epoch of %d anchors, want 7", got)
	}
	s, _ = OpenDataset(DataConfig{Name: "affectnet7", Root: root, Options: withOptions(smallTransforms, "samples_per_epoch", 50)}, 1)
	if got := len(EpochOrder(s.Train, 1, 0)); got != 50 {
		t.Fatalf("epoch of %d anchors, want 50", got)
	}
}

// TestStaticLabelledSubset: labelled: N keeps a class-stratified subset
// of the training images (any static data set), drawn from the run seed
// or labelled_seed, says so in the protocol note and lists the images
// for the run dir; test and validation are untouched.
func TestStaticLabelledSubset(t *testing.T) {
	root := t.TempDir()
	fx.RAFDB(t, root, fx.Counts{Train: 4, Test: 1}) // 28 train, 7 test
	open := func(seed int64, kv ...any) *StaticSplit {
		t.Helper()
		s, err := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: withOptions(smallTransforms, kv...)}, seed)
		if err != nil {
			t.Fatal(err)
		}
		if s.Val.Len() != 7 {
			t.Fatalf("val has %d images", s.Val.Len())
		}
		return s.Train.(*StaticSplit)
	}
	a := open(1, "labelled", 14)
	if a.Len() != 14 || !slices.Equal(a.Set.Index.Counts(), []int{2, 2, 2, 2, 2, 2, 2}) {
		t.Fatalf("subset of %d, per class %v", a.Len(), a.Set.Index.Counts())
	}
	list := string(a.RunRecords()[LabelledFile])
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 15 || lines[0] != "# 14 of 28 training images, class-stratified, labelled_seed 1" {
		t.Fatalf("%s:\n%s", LabelledFile, list)
	}
	for i, it := range a.Set.Items {
		if lines[i+1] != it.ID {
			t.Fatalf("line %d is %q, item %q", i+1, lines[i+1], it.ID)
		}
	}
	if string(open(1, "labelled", 14).RunRecords()[LabelledFile]) != list {
		t.Fatal("the same seed draws another subset")
	}
	if string(open(2, "labelled", 14).RunRecords()[LabelledFile]) == list {
		t.Fatal("another run seed draws the same subset")
	}
	if string(open(2, "labelled", 14, "labelled_seed", 1).RunRecords()[LabelledFile]) != list {
		t.Fatal("labelled_seed 1 under run seed 2 differs from run seed 1")
	}
	if open(1).RunRecords() != nil {
		t.Fatal("a full training set records a subset")
	}
	s, _ := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: withOptions(smallTransforms, "labelled", 14)}, 1)
	if n := s.Val.(*StaticSplit).Note; !strings.Contains(n, "labelled subset: 14 of 28 training images, class-stratified, seed 1 (surprise 2, fear 2") {
		t.Fatalf("note %q", n)
	}
	if _, err := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: withOptions(smallTransforms, "labelled", 29)}, 1); err == nil ||
		!strings.Contains(err.Error(), "29 of 28") {
		t.Fatalf("29 of 28: %v", err)
	}
}

// quadModel is a test model that reads all four images of a quadruplet
// batch (their mean goes through the tiny MLP), so its weights depend on
// which positives and negatives were drawn and how they were augmented.
type quadModel struct{ *Classifier }

func (m quadModel) Forward(b *Batch, train bool) (Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	if len(b.Inputs) == 4 {
		s := x.MustAdd(b.Inputs[1], false)
		s.MustAdd_(b.Inputs[2])
		s.MustAdd_(b.Inputs[3])
		x = s.MustDivScalar(ts.FloatScalar(4), true)
		defer x.MustDrop()
	}
	return Outputs{OutputLogits: m.Net.ForwardT(x, train)}, nil
}

func init() {
	RegisterModel("test-quad", "test model reading quadruplets", func(vs *nn.VarStore, spec ModelSpec) (Model, error) {
		m, err := newTestMLP(vs, spec)
		if err != nil {
			return nil, err
		}
		return quadModel{m.(*Classifier)}, nil
	})
}

// A quadruplet run (random and class-balanced anchors) interrupted
// mid-epoch and resumed ends with the weights of an uninterrupted run:
// every draw (anchor order, positives, negatives, augmentation) comes
// from the (seed, epoch, batch) generators.
func TestStaticQuadrupletResumeIsExact(t *testing.T) {
	root := t.TempDir()
	fx.AffectNet(t, root, fx.Counts{Train: 3, Test: 1}, 7)
	for _, sampler := range []string{"random", "balanced"} {
		opts := fmt.Sprintf(`data={name: affectnet7, root: %q, options: {quadruplet: true, sampler: %s, negative_class: data, workers: 2,
			train_transforms: [{resize: [12, 12]}, hflip, {random_rotation: 20}, {color_jitter: [0.3, 0.3, 0.3, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {p: 0.5}}],
			test_transforms: [{resize: [12, 12]}, to_tensor, {normalize: imagenet}]}}`, root, sampler)
		mk := func() *Config {
			return tinyConfig(t, "model.name=test-quad", opts, "batch_size=4", "epochs=2", "optimizer={name: adam, lr: 0.01}")
		}
		ref := mk()
		rRef, resRef, err := train(t, ref, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resRef.Steps != 12 { // 21 anchors / 4 = 6 batches per epoch
			t.Fatalf("%s: %d steps, want 12", sampler, resRef.Steps)
		}
		want := weights(rRef.Model)
		cfg := mk()
		ctx, cancel := context.WithCancel(context.Background())
		r, err := BuildRun(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr := r.Trainer()
		tr.OnStep = func(s int) {
			if s == 8 {
				cancel()
			}
		}
		tr.Out = io.Discard
		_, err = tr.Fit(ctx, false)
		var ie *InterruptedError
		if !errors.As(err, &ie) || ie.Step != 8 {
			t.Fatalf("%s: want an interrupt at step 8, got %v", sampler, err)
		}
		r2, _, err := train(t, cfg, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameWeights(want, weights(r2.Model)); err != nil {
			t.Fatalf("%s: resumed run differs: %v", sampler, err)
		}
		// and the negatives matter: uniform negative classes (same seed,
		// same anchors) give other weights
		other := tinyConfig(t, "model.name=test-quad", strings.Replace(opts, "negative_class: data", "negative_class: uniform", 1),
			"batch_size=4", "epochs=2", "optimizer={name: adam, lr: 0.01}")
		r3, _, err := train(t, other, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sameWeights(want, weights(r3.Model)) == nil {
			t.Fatalf("%s: the negatives do not change the run", sampler)
		}
	}
}

// DCS pairs (data option pairs): an anchor and another image of its
// class, each augmented on its own, label only; evaluation batches stay
// single images. The synthetic faces give quadruplets and pairs the same
// way.
func TestTuplesPairsAndSynth(t *testing.T) {
	lockThread(t)
	root := t.TempDir()
	fx.QCSList(t, root, "raf_db_basic_train.txt", "raf_db_basic_test.txt", "basic", 7, fx.Counts{Train: 3, Test: 1}, ".png")
	s, err := OpenDataset(DataConfig{Name: "rafdb", Root: root, Options: withOptions(smallTransforms, "pairs", true)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if note := s.Val.(*StaticSplit).ProtocolNote(); !strings.Contains(note, "pair batches (anchor, positive)") {
		t.Fatalf("note %q", note)
	}
	idx := []int{0, 4, 8, 20}
	b, err := s.Train.Batch(idx, true, NewRand(1, 2), cpu)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	if _, neg := b.Targets[TargetLabelNeg]; len(b.Inputs) != 2 || b.Size != 4 || neg {
		t.Fatalf("pair batch: %d inputs, size %d, targets %v", len(b.Inputs), b.Size, b.Targets)
	}
	// the positive is another image of the anchor's class: not the anchor
	// itself (the fixture's images of a class differ in their noise)
	a, p := b.Inputs[0].Float64Values(), b.Inputs[1].Float64Values()
	y := b.Targets[TargetLabel].Int64Values()
	set := s.Train.(*StaticSplit).Set
	per := len(a) / 4
	for j, i := range idx {
		if int64(set.Label(i)) != y[j] {
			t.Fatalf("label %d of anchor %d, want %d", y[j], i, set.Label(i))
		}
		if slices.Equal(a[j*per:(j+1)*per], p[j*per:(j+1)*per]) {
			t.Fatalf("anchor %d is its own positive", i)
		}
	}
	e, err := s.Test.Batch([]int{0}, false, NewRand(0, 0), cpu)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Drop()
	if len(e.Inputs) != 1 {
		t.Fatalf("eval batch: %d inputs", len(e.Inputs))
	}

	for _, c := range []struct {
		opt    string
		inputs int
		neg    bool
	}{{"quadruplet", 4, true}, {"pairs", 2, false}} {
		s, err := OpenDataset(DataConfig{Name: "synth", Options: map[string]any{"train_n": 28, "val_n": 7, "test_n": 0, "size": 32, c.opt: true}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Train.Batch([]int{0, 1, 2, 3, 4, 5}, true, NewRand(3, 1), cpu)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Drop()
		_, neg := b.Targets[TargetLabelNeg]
		if len(b.Inputs) != c.inputs || neg != c.neg {
			t.Fatalf("synth %s: %d inputs, label_neg %v", c.opt, len(b.Inputs), neg)
		}
		if c.neg {
			y, yn := b.Targets[TargetLabel].Int64Values(), b.Targets[TargetLabelNeg].Int64Values()
			for j := range y {
				if y[j] == yn[j] {
					t.Fatalf("synth quadruplet %d: negative class = anchor class %d", j, y[j])
				}
			}
		}
		v, err := s.Val.Batch([]int{0, 1}, true, NewRand(3, 1), cpu)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Drop()
		if len(v.Inputs) != 1 {
			t.Fatalf("synth val batch: %d inputs", len(v.Inputs))
		}
	}
	if _, err := OpenDataset(DataConfig{Name: "synth", Options: map[string]any{"pairs": true, "frames": 4}}, 1); err == nil || !strings.Contains(err.Error(), "still images") {
		t.Fatalf("synth pairs of clips: %v", err)
	}
}
