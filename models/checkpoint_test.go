package models

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func newResNet18(t *testing.T, seed int64, cfg ResNetConfig) (*ResNet, *nn.VarStore) {
	t.Helper()
	fer.SeedTorch(seed)
	vs := newCPUStore()
	m, err := NewResNet(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

// sameVars fails unless every variable of a equals the one of b.
func sameVars(t *testing.T, a, b *nn.VarStore) {
	t.Helper()
	av, bv := a.Variables(), b.Variables()
	if len(av) != len(bv) {
		t.Fatalf("%d vs %d variables", len(av), len(bv))
	}
	for name, x := range av {
		y, ok := bv[name]
		if !ok {
			t.Fatalf("variable %q missing", name)
		}
		if !x.MustEqual(&y, false) {
			t.Fatalf("variable %q differs by %g", name, maxAbsDiff(t, &x, &y))
		}
	}
}

// stage1 is the ResNet-18 stem plus stage 1, what the small checkpoint
// files of the fixtures hold.
var stage1 = ResNetConfig{Depth: 18, NumStages: 1}

// TestLoadReportsMismatchesByName: a state_dict with a missing key, an
// unexpected key and a wrong shape is refused with all three named, and
// nothing is copied.
func TestLoadReportsMismatchesByName(t *testing.T) {
	lockThread(t)
	fixtures(t)
	m, vs := newResNet18(t, 5, stage1)
	snapshot := m.Conv1.Weight.MustDetach(false).MustMulScalar(ts.FloatScalar(1), true) // a copy
	defer snapshot.MustDrop()

	_, err := LoadCheckpoint(vs, filepath.Join(fixtures(t), "stage1_broken.pth"), LoadOptions{})
	var mm *MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("want *MismatchError, got %v", err)
	}
	r := mm.Report
	if !slices.Equal(r.Missing, []string{"layer1.1.bn2.bias"}) {
		t.Errorf("missing = %v, want [layer1.1.bn2.bias]", r.Missing)
	}
	if !slices.Equal(r.Unexpected, []string{"extra.weight"}) {
		t.Errorf("unexpected = %v, want [extra.weight]", r.Unexpected)
	}
	if len(r.Mismatched) != 1 || r.Mismatched[0].Name != "conv1.weight" ||
		!slices.Equal(r.Mismatched[0].Model, []int64{64, 3, 7, 7}) || !slices.Equal(r.Mismatched[0].Checkpoint, []int64{64, 3, 3, 3}) {
		t.Errorf("mismatched = %+v, want conv1.weight model [64 3 7 7] checkpoint [64 3 3 3]", r.Mismatched)
	}
	if !slices.Contains(r.Ignored, "layer1.0.bn1.num_batches_tracked") {
		t.Errorf("num_batches_tracked not reported as ignored: %v", r.Ignored)
	}
	msg := err.Error()
	for _, want := range []string{"stage1_broken.pth", "layer1.1.bn2.bias", "extra.weight", "conv1.weight", "[64 3 7 7]", "[64 3 3 3]", "nothing was loaded"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q: %s", want, msg)
		}
	}
	if len(r.Loaded) != 0 || !m.Conv1.Weight.MustEqual(snapshot, false) {
		t.Error("a refused checkpoint changed the model")
	}

	// shape mismatches stay fatal even when missing/unexpected are allowed
	_, err = LoadCheckpoint(vs, filepath.Join(fixtures(t), "stage1_broken.pth"), LoadOptions{AllowMissing: true, AllowUnexpected: true})
	if !errors.As(err, &mm) {
		t.Fatalf("shape mismatch accepted: %v", err)
	}
}

// TestCheckpointFormats: the legacy (pre-1.6) torch.save format, a nested
// {"state_dict": {"module.<key>": ...}} checkpoint and a float16 copy all
// read to the same weights as the plain zip state_dict.
func TestCheckpointFormats(t *testing.T) {
	lockThread(t)
	ref := readFixture(t, "stage1.pth")
	for _, file := range []string{"stage1_legacy.pth", "stage1_nested.pth"} {
		sd := readFixture(t, file)
		if len(sd.Names) != len(ref.Names) {
			t.Fatalf("%s: %d tensors, want %d", file, len(sd.Names), len(ref.Names))
		}
		for i, name := range ref.Names {
			got := strings.TrimPrefix(sd.Names[i], "module.")
			if got != name {
				t.Fatalf("%s: entry %d is %q, want %q (file order)", file, i, got, name)
			}
			if !sd.Tensors[sd.Names[i]].MustEqual(ref.Tensors[name], false) {
				t.Fatalf("%s: %s differs", file, name)
			}
		}
	}
	nested := readFixture(t, "stage1_nested.pth")
	if !strings.HasSuffix(nested.Source, "stage1_nested.pth:state_dict") {
		t.Errorf("nested source = %q", nested.Source)
	}

	// loading the nested one strips "module." by default
	m, vs := newResNet18(t, 9, stage1)
	rep, err := LoadStateDict(vs, nested, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != len(vs.Variables()) || len(rep.Ignored) != 5 {
		t.Errorf("loaded %d of %d, ignored %d (want the 5 num_batches_tracked)", len(rep.Loaded), len(vs.Variables()), len(rep.Ignored))
	}
	if !m.Conv1.Weight.MustEqual(ref.Tensors["conv1.weight"], false) {
		t.Error("conv1 not loaded from the nested checkpoint")
	}

	// float16 checkpoint: converted on load, equal to the rounded weights
	half := readFixture(t, "stage1_half.pth")
	if dt := half.Tensors["conv1.weight"].DType(); dt != gotch.Half {
		t.Fatalf("half checkpoint read as %v", dt)
	}
	if _, err := LoadStateDict(vs, half, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	w := m.Layers[0][1].(*BasicBlock).Conv2.Weight
	want := ref.Tensors["layer1.1.conv2.weight"].MustTotype(gotch.Half, false).MustTotype(gotch.Float, true)
	defer want.MustDrop()
	if !w.MustEqual(want, false) || w.DType() != gotch.Float {
		t.Error("float16 weights not converted exactly into the float32 model")
	}
}

// TestReadViews: non-contiguous tensors, tensors sharing a storage at an
// offset, 0-dim scalars and int64 tensors read with the right values.
func TestReadViews(t *testing.T) {
	lockThread(t)
	sd := readFixture(t, "views.pth")
	vals := func(name string) []float64 {
		x := tensorOf(t, sd, name)
		return x.MustTotype(gotch.Double, false).MustContiguous(true).Float64Values(true)
	}
	// t = arange(24).view(4,6).t(): row i is i, i+6, i+12, i+18
	if got := vals("t"); len(got) != 24 || got[0] != 0 || got[1] != 6 || got[4] != 1 || got[23] != 23 {
		t.Errorf("transposed view read as %v", got)
	}
	if s := sd.Shape("t"); !slices.Equal(s, []int64{6, 4}) {
		t.Errorf("transposed shape %v", s)
	}
	if got := vals("a"); !slices.Equal(got, []float64{2, 3, 4, 5, 6, 7}) {
		t.Errorf("offset view read as %v", got)
	}
	if got := vals("b"); len(got) != 12 || got[0] != 10 || got[11] != 21 || !slices.Equal(sd.Shape("b"), []int64{3, 4}) {
		t.Errorf("offset 2-d view read as %v %v", got, sd.Shape("b"))
	}
	if s := sd.Shape("scalar"); len(s) != 0 || vals("scalar")[0] != 3.5 {
		t.Errorf("scalar read as shape %v value %v", s, vals("scalar"))
	}
	if dt := tensorOf(t, sd, "long").DType(); dt != gotch.Int64 || !slices.Equal(vals("long"), []float64{0, 1, 2, 3, 4}) {
		t.Errorf("int64 tensor read as %v %v", dt, vals("long"))
	}
}

// TestReadPickledModule: a whole nn.Module saved with torch.save(model)
// reads to the same names, order and values as its state_dict.
func TestReadPickledModule(t *testing.T) {
	lockThread(t)
	mod := readFixture(t, "whole_module.pth")
	ref := readFixture(t, "whole_module_sd.pth")
	if !slices.Equal(mod.Names, ref.Names) {
		t.Fatalf("names %v, state_dict has %v", mod.Names, ref.Names)
	}
	for _, n := range ref.Names {
		if !mod.Tensors[n].MustEqual(ref.Tensors[n], false) {
			t.Errorf("%s differs", n)
		}
	}
	if !slices.Contains(ref.Names, "3.1.weight") || !slices.Contains(ref.Names, "1.running_var") {
		t.Errorf("unexpected reference names %v", ref.Names)
	}
}

// TestReadErrors: files that are not state_dicts fail with a message that
// names the file and says what to do.
func TestReadErrors(t *testing.T) {
	lockThread(t)
	dir := fixtures(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pth")
	if err := os.WriteFile(garbage, []byte("this is not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ file, want string }{
		{filepath.Join(dir, "does-not-exist.pth"), "no such file"},
		{garbage, "not a file written by torch.save"},
		{filepath.Join(dir, "list.pth"), "save model.state_dict()"},
		{filepath.Join(dir, "torchscript.pt"), "TorchScript"},
		{filepath.Join(dir, "resnet18_io.pt"), ""}, // a plain dict of tensors is fine
	}
	for _, c := range cases {
		sd, err := ReadStateDict(c.file)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.file, err)
			} else {
				sd.Drop()
			}
			continue
		}
		if err == nil {
			sd.Drop()
			t.Errorf("%s: read without error", c.file)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.file)) {
			t.Errorf("%s: error %q should name the file and say %q", c.file, err, c.want)
		}
	}
}

// TestSafetensorsRoundTrip: a model saved as safetensors loads into a
// differently initialised model and gives identical weights and logits.
func TestSafetensorsRoundTrip(t *testing.T) {
	lockThread(t)
	a, avs := newResNet18(t, 21, ResNet18Config(7))
	b, bvs := newResNet18(t, 22, ResNet18Config(7))
	x := ts.MustRandn([]int64{2, 3, 32, 32}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	ts.NoGrad(func() {
		ya, yb := a.ForwardT(x, false), b.ForwardT(x, false)
		if d := maxAbsDiff(t, ya, yb); d == 0 {
			t.Fatal("differently seeded models agree before loading: the comparison is blind")
		}
		ya.MustDrop()
		yb.MustDrop()
	})
	file := filepath.Join(t.TempDir(), "resnet18.safetensors")
	if err := SaveSafetensors(avs, file, map[string]string{"model": "resnet18"}); err != nil {
		t.Fatal(err)
	}
	rep, err := LoadSafetensors(bvs, file, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != len(avs.Variables()) {
		t.Errorf("loaded %d of %d", len(rep.Loaded), len(avs.Variables()))
	}
	sameVars(t, avs, bvs)
	ts.NoGrad(func() {
		ya, yb := a.ForwardT(x, false), b.ForwardT(x, false)
		if d := maxAbsDiff(t, ya, yb); d != 0 {
			t.Errorf("logits differ by %g after the round trip", d)
		}
		ya.MustDrop()
		yb.MustDrop()
	})
	// the file is plain safetensors: header names every variable
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	header := string(raw[8 : 8+n])
	for _, key := range []string{`"conv1.weight"`, `"layer4.1.bn2.running_var"`, `"fc.bias"`, `"F32"`, `"model":"resnet18"`} {
		if !strings.Contains(header, key) {
			t.Errorf("safetensors header lacks %s", key)
		}
	}
}

// TestLoadOptions: Into, Rename (DropPrefix) with AllowMissing for a new
// head, and AllowUnexpected for a truncated model (STT's ResNet-18 up to
// stage 3) whose stage-3 output then equals torchvision's.
func TestLoadOptions(t *testing.T) {
	lockThread(t)
	sd := readFixture(t, "resnet18.pth")
	io := readFixture(t, "resnet18_io.pt")

	// Into: the backbone lives under "backbone" next to other variables
	fer.SeedTorch(3)
	vs := newCPUStore()
	m, err := NewResNet(vs.Root().Sub("backbone"), ResNet18Config(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vs.Root().Sub("head").NewVar("w", []int64{3}, nn.NewConstInit(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStateDict(vs, sd, LoadOptions{}); err == nil {
		t.Error("loading at the root should not fit a model under backbone")
	}
	rep, err := LoadStateDict(vs, sd, LoadOptions{Into: "backbone"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != len(vs.Variables())-1 || !m.Conv1.Weight.MustEqual(sd.Tensors["conv1.weight"], false) {
		t.Errorf("Into: loaded %d of %d", len(rep.Loaded), len(vs.Variables())-1)
	}

	// a 7-class head: drop the checkpoint's fc and keep the fresh one
	m7, vs7 := newResNet18(t, 4, ResNet18Config(7))
	if _, err := LoadStateDict(vs7, sd, LoadOptions{AllowMissing: true}); err == nil {
		t.Error("fc shape mismatch accepted")
	}
	rep, err = LoadStateDict(vs7, sd, LoadOptions{Rename: DropPrefix("fc."), AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Missing, []string{"fc.bias", "fc.weight"}) || !m7.Layers[3][1].(*BasicBlock).BN2.RunningVar.MustEqual(sd.Tensors["layer4.1.bn2.running_var"], false) {
		t.Errorf("head swap: missing %v", rep.Missing)
	}

	// STT's truncated ResNet-18
	m3, vs3 := newResNet18(t, 5, ResNetConfig{Depth: 18, NumStages: 3})
	if m3.FeatureDim() != 256 || m3.NumClasses() != 0 {
		t.Fatalf("truncated: FeatureDim %d NumClasses %d", m3.FeatureDim(), m3.NumClasses())
	}
	if _, err := LoadStateDict(vs3, sd, LoadOptions{}); err == nil {
		t.Error("layer4/fc keys accepted without AllowUnexpected")
	}
	rep, err = LoadStateDict(vs3, sd, LoadOptions{AllowUnexpected: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rep.Unexpected {
		if !strings.HasPrefix(k, "layer4.") && !strings.HasPrefix(k, "fc.") {
			t.Errorf("unexpected %q", k)
		}
	}
	ts.NoGrad(func() {
		f := m3.ForwardFeatures(tensorOf(t, io, "input"), false)
		defer f.Drop()
		if len(f.Stages) != 3 || !slices.Equal(f.Pooled.MustSize(), []int64{2, 256}) {
			t.Fatalf("truncated features: %d stages, pooled %v", len(f.Stages), f.Pooled.MustSize())
		}
		if d := maxAbsDiff(t, f.Stages[2], tensorOf(t, io, "eval.stage3")); d != 0 {
			t.Errorf("stage 3 differs from torchvision's by %g", d)
		}
		y := m3.ForwardT(tensorOf(t, io, "input"), false)
		if d := maxAbsDiff(t, y, f.Pooled); d != 0 {
			t.Errorf("ForwardT without classifier is not the pooled features (%g)", d)
		}
		y.MustDrop()
	})
}

// TestRenames: VGG-Face's conv1_1…fc8 names and face.evoLVe's single
// "body.<k>" sequence map to this package's names.
func TestRenames(t *testing.T) {
	vgg := map[string]string{
		"conv1_1.weight": "features.0.weight", "conv1_2.bias": "features.2.bias",
		"conv2_1.weight": "features.5.weight", "conv3_3.weight": "features.14.weight",
		"conv4_1.bias": "features.17.bias", "conv5_3.weight": "features.28.weight",
		"fc6.weight": "classifier.0.weight", "fc7.bias": "classifier.3.bias",
		"fc8.weight": "classifier.6.weight", "features.0.weight": "features.0.weight",
	}
	for in, want := range vgg {
		if got := VGGFaceDagRename(in); got != want {
			t.Errorf("VGGFaceDagRename(%q) = %q, want %q", in, got, want)
		}
	}
	qcs := IR50QCSConfig()
	face := IR50FaceConfig()
	ir := []struct {
		cfg      IR50Config
		in, want string
	}{
		{qcs, "body.0.res_layer.1.weight", "body1.0.res_layer.1.weight"},
		{qcs, "body.2.shortcut_layer.0.weight", "body1.2.shortcut_layer.0.weight"},
		{qcs, "body.3.res_layer.0.bias", "body2.0.res_layer.0.bias"},
		{qcs, "body.20.res_layer.4.running_var", "body3.13.res_layer.4.running_var"},
		{qcs, "body.21.res_layer.1.weight", ""}, // stage 4 not built
		{qcs, "body4.0.res_layer.1.weight", ""},
		{qcs, "output_layer.3.weight", ""},
		{qcs, "input_layer.0.weight", "input_layer.0.weight"},
		{face, "body.23.res_layer.3.weight", "body4.2.res_layer.3.weight"},
		{face, "output_layer.4.running_mean", "output_layer.4.running_mean"},
	}
	for _, c := range ir {
		if got := c.cfg.RenameKey(c.in); got != c.want {
			t.Errorf("RenameKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestGotchSaveLoad: gotch's own VarStore format round-trips these models
// too (buffers included).
func TestGotchSaveLoad(t *testing.T) {
	lockThread(t)
	_, avs := newResNet18(t, 31, ResNetConfig{Depth: 18, NumStages: 2})
	_, bvs := newResNet18(t, 32, ResNetConfig{Depth: 18, NumStages: 2})
	file := filepath.Join(t.TempDir(), "r18.ot")
	if err := avs.Save(file); err != nil {
		t.Fatal(err)
	}
	if err := bvs.Load(file); err != nil {
		t.Fatal(err)
	}
	sameVars(t, avs, bvs)
}
