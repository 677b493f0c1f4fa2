package models

import (
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Every backbone is a registered fer model; a backbone with a classifier
// gets a num_classes head in place of its reference one (resnet18:
// fc [7, 512]), a feature extractor a linear "head" (ir50: [7, 256]);
// both train: one SGD-free forward/backward gives gradients on the head.
func TestBackboneClassifiers(t *testing.T) {
	lockThread(t)
	names := fer.ModelNames()
	for _, s := range backboneSpecs {
		if !slices.Contains(names, s.name) {
			t.Errorf("backbone %s is not a registered model", s.name)
		}
	}
	for _, c := range []struct {
		name, head string
		shape      []int64
	}{
		{"resnet18", "fc.weight", []int64{7, 512}},
		{"ir50", "head.weight", []int64{7, 256}},
	} {
		fer.SeedTorch(1)
		vs := newCPUStore()
		m, err := fer.NewModel(vs, fer.ModelSpec{Name: c.name, NumClasses: 7, InputShape: []int64{3, 32, 32}})
		if err != nil {
			t.Fatal(err)
		}
		w, err := vs.Root().Get(c.head)
		if err != nil {
			t.Fatalf("%s: no %s: %v", c.name, c.head, err)
		}
		if got := w.MustSize(); !slices.Equal(got, c.shape) {
			t.Fatalf("%s: %s has shape %v, want %v", c.name, c.head, got, c.shape)
		}
		x := ts.MustRandn([]int64{2, 3, 32, 32}, gotch.Float, gotch.CPU)
		y := ts.MustOfSlice([]int64{3, 5})
		b := &fer.Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{fer.TargetLabel: y}, Size: 2}
		out, err := m.Forward(b, true)
		if err != nil {
			t.Fatal(err)
		}
		logits, _ := out.Get(fer.OutputLogits)
		if got := logits.MustSize(); !slices.Equal(got, []int64{2, 7}) {
			t.Fatalf("%s: logits %v", c.name, got)
		}
		lv, err := fer.CrossEntropy{}.Loss(out, b)
		if err != nil {
			t.Fatal(err)
		}
		lv.Total.MustBackward()
		g := w.MustGrad(false)
		if g.MustAbs(false).MustSum(gotch.Float, true).Float64Values()[0] == 0 {
			t.Fatalf("%s: no gradient on the head", c.name)
		}
		lv.Drop()
		out.Drop()
		b.Drop()
	}
	// wrong inputs are errors naming the fix
	for _, c := range []struct {
		name  string
		shape []int64
		opts  map[string]any
		want  string
	}{
		{"resnet18", []int64{16, 3, 32, 32}, nil, "clips need a video model"},
		{"resnet18", []int64{1, 32, 32}, nil, "grayscale: 3"},
		{"ir50_face", []int64{3, 64, 64}, nil, "resize to [112, 112]"},
		{"vgg16", []int64{3, 8, 8}, nil, "at least 16x16"},
		{"effnet_b2", []int64{3, 32, 32}, map[string]any{"width": 2}, `unknown key "width"`},
	} {
		_, err := fer.NewModel(newCPUStore(), fer.ModelSpec{Name: c.name, NumClasses: 7, InputShape: c.shape, Options: c.opts})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.name, c.shape, err, c.want)
		}
	}
}
