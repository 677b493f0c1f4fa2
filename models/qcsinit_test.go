package models

import (
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// sameAsFile checks that every variable of vs under prefix equals the
// tensor the file gives it (key maps a variable name, prefix removed, to
// the file's key; "" skips it) and returns how many it compared.
func sameAsFile(t *testing.T, vs *nn.VarStore, prefix string, sd *StateDict, key func(string) string) int {
	t.Helper()
	n := 0
	for name, v := range vs.Variables() {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		if key(rest) == "" {
			continue
		}
		src, ok := sd.Tensors[key(rest)]
		if !ok {
			t.Fatalf("%s: the file has no %s", name, key(rest))
		}
		if d := maxAbsDiff(t, &v, src); d != 0 {
			t.Fatalf("%s differs from the file's %s by %g", name, key(rest), d)
		}
		n++
	}
	return n
}

// valuesOf copies a variable's values.
func valuesOf(vs *nn.VarStore, name string) []float64 {
	v := vs.Variables()[name]
	return v.Float64Values()
}

// --init FILE for QCS (fer.WeightsLoader): ir50.pth (face.evoLVe layout)
// and a published QCS checkpoint of another class count (the RAF-DB ‡
// recipe) both initialise ir_back only, with the file's tensors; the
// rest keeps its values; the report says what was loaded and ignored. A
// backbone of another shape is an error naming the keys.
func TestQCSLoadWeightsInit(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	// the models' modules own the tensors the VarStores list: keep every
	// model alive to the end
	var keep []*QCSModel
	defer func() { runtime.KeepAlive(keep) }()
	build := func(cfg QCSConfig) (*QCSModel, *nn.VarStore) {
		vs := newCPUStore()
		m, err := NewQCSModel(vs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, m)
		return m, vs
	}
	cfg := DefaultQCSConfig()
	cfg.Dim, cfg.ResizeTo = 16, 32

	// ir50.pth in face.evoLVe's layout into the full IR-50, through fer's
	// --init path (not a fer checkpoint → the model's loader)
	m, vs := build(cfg)
	headBefore := valuesOf(vs, "VIT_base.head.linear.weight")
	file := filepath.Join(dir, "ir50_evolve_layout.pth")
	rep, err := fer.InitWeights(m, file, data.RAFDBClasses)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"init from " + file + " (published weights): IR-50 backbone (face.evoLVe layout body.N)", "loaded into ir_back",
		"output_layer (", "body.21 (", "the rest of QCS keeps its initial values"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	evo := qcsFixture(t, "ir50_evolve_layout.pth")
	evoName := map[string]string{} // fer name -> face.evoLVe key
	for _, k := range evo.Names {
		if n := IR50QCSConfig().RenameKey(k); n != "" {
			evoName[n] = k
		}
	}
	backbone := 0
	for name := range vs.Variables() {
		if strings.HasPrefix(name, "ir_back.") {
			backbone++
		}
	}
	if n := sameAsFile(t, vs, "ir_back.", evo, func(n string) string { return evoName[n] }); n != backbone {
		t.Fatalf("compared %d of %d backbone tensors", n, backbone)
	}
	if got := valuesOf(vs, "VIT_base.head.linear.weight"); !slices.Equal(got, headBefore) {
		t.Fatal("the class head changed: --init loads the backbone only")
	}

	// QCS_affect-8.pth's role: a QCS checkpoint of 8 classes into a 7-class
	// model; its backbone (units 1, 2, 2) only
	small := cfg
	small.BackboneUnits = []int{1, 2, 2}
	m, vs = build(small)
	rep, err = m.LoadWeights(filepath.Join(dir, "qcs_small.pth"), data.RAFDBClasses)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep, "the IR-50 of a QCS checkpoint of 8 classes; its other modules ignored") || !strings.Contains(rep, "output_layer (") {
		t.Errorf("report: %s", rep)
	}
	sd := qcsFixture(t, "qcs_small.pth")
	sameAsFile(t, vs, "ir_back.", sd, func(n string) string { return "module.ir_back." + n })

	// a backbone of other units: an error naming keys, nothing loaded
	m, vs = build(cfg)
	before := valuesOf(vs, "ir_back.input_layer.0.weight")
	if _, err := m.LoadWeights(filepath.Join(dir, "dcs_rafdb.pth"), nil); err == nil ||
		!strings.Contains(err.Error(), "a DCS checkpoint of 7 classes): its IR-50 does not fit") || !strings.Contains(err.Error(), "missing key") {
		t.Fatalf("mismatched backbone: %v", err)
	}
	if !slices.Equal(valuesOf(vs, "ir_back.input_layer.0.weight"), before) {
		t.Fatal("a failed init changed the backbone")
	}
}

// predict --weights for QCS (fer.StrictWeightsLoader): a published
// checkpoint that fits loads whole, its head read in the order given;
// another variant or class count, or a backbone-only file, is an error
// naming the keys.
func TestQCSLoadWeightsStrict(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	cfg := qcsMeta(t, "dcs_rafdb").config()
	file := filepath.Join(dir, "dcs_rafdb.pth")
	vs := newCPUStore()
	m, err := NewQCSModel(vs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer runtime.KeepAlive(m)
	rep, err := m.LoadWeightsStrict(file, data.RAFDBClasses)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(rep, "class head rows read as: surprise, fear, disgust, happiness, sadness, anger, neutral") {
		t.Errorf("report %q", rep)
	}
	sd := qcsFixture(t, "dcs_rafdb.pth")
	if n := sameAsFile(t, vs, "", sd, func(n string) string { return n }); n != len(vs.Variables()) {
		t.Fatalf("compared %d of %d variables", n, len(vs.Variables()))
	}
	for _, c := range []struct {
		name string
		cfg  func() QCSConfig
		file string
		want []string
	}{
		{"QCS model", func() QCSConfig { c := cfg; c.Variant, c.CrossPreNorm = QCSVariant, false; return c }, "dcs_rafdb.pth",
			[]string{"cross_attention_1.theta", "a DCS checkpoint (use model dcs)", "--model qcs|dcs"}},
		{"8 classes", func() QCSConfig { c := cfg; c.NumClasses = 8; return c }, "dcs_rafdb.pth",
			[]string{"VIT_base.head.linear.weight", "the checkpoint has 7 classes"}},
		{"ir50.pth", func() QCSConfig { return cfg }, "ir50_evolve_layout.pth",
			[]string{"holds only an IR-50 backbone (ir50.pth): it initialises training (--init"}},
	} {
		vs := newCPUStore()
		m, err := NewQCSModel(vs, c.cfg())
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.LoadWeightsStrict(filepath.Join(dir, c.file), data.RAFDBClasses)
		runtime.KeepAlive(m)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to mention %q", c.name, err, w)
			}
		}
	}
}

// The ir50 baseline classifier reads ir50.pth into its backbone (--init);
// its head keeps its values, and it cannot predict from a backbone file.
func TestIR50ClassifierLoadWeights(t *testing.T) {
	lockThread(t)
	dir := qcsFixtures(t)
	vs := newCPUStore()
	m, err := fer.NewModel(vs, fer.ModelSpec{Name: "ir50", NumClasses: 7, InputShape: []int64{3, 112, 112}})
	if err != nil {
		t.Fatal(err)
	}
	defer runtime.KeepAlive(m)
	head := valuesOf(vs, "head.weight")
	file := filepath.Join(dir, "ir50_evolve_layout.pth")
	rep, err := fer.InitWeights(m, file, data.RAFDBClasses)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep, "IR-50 backbone (face.evoLVe layout body.N)") || !strings.Contains(rep, "the class head keeps its initial values") {
		t.Errorf("report %q", rep)
	}
	evo := qcsFixture(t, "ir50_evolve_layout.pth")
	evoName := map[string]string{}
	for _, k := range evo.Names {
		if n := IR50QCSConfig().RenameKey(k); n != "" {
			evoName[n] = k
		}
	}
	backbone := 0
	for name := range vs.Variables() {
		if !strings.HasPrefix(name, "head.") {
			backbone++
		}
	}
	tensors := map[string]*ts.Tensor{}
	for n, k := range evoName {
		tensors[n] = evo.Tensors[k]
	}
	if n := sameAsFile(t, vs, "", &StateDict{Tensors: tensors}, func(n string) string {
		if strings.HasPrefix(n, "head.") {
			return "" // compared below
		}
		return n
	}); n != backbone {
		t.Fatalf("compared %d of %d backbone tensors", n, backbone)
	}
	if !slices.Equal(valuesOf(vs, "head.weight"), head) {
		t.Fatal("the head changed")
	}
	if _, ok := m.(*fer.Classifier).Net.(fer.StrictWeightsLoader); ok {
		t.Fatal("a backbone-only loader claims whole models")
	}
}
