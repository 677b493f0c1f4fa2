package models

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The `pretrained` option: a VGG-Face checkpoint in vgg_face_dag's names
// (conv1_1 … fc7, with an fc8 the model has no use for) loads into the
// MT-VGG's "vgg" trunk; a torchvision ResNet-50 state dict (with its fc)
// into MT-ArcRes's "backbone". The heads keep their initialisation.
func TestMTPretrainedBackbones(t *testing.T) {
	lockThread(t)
	spec := fer.ModelSpec{Name: "mt-vgg", NumClasses: 7, InputShape: []int64{3, 32, 32}, Options: map[string]any{"hidden": 16}}
	fer.SeedTorch(1)
	src, err := fer.NewModel(newCPUStore(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// the trunk under vgg_face_dag's names, plus fc8 and a BN counter
	sd := &StateDict{Tensors: map[string]*ts.Tensor{}, Source: "vgg_face_dag (test)"}
	for name, v := range src.VarStore().Variables() {
		rest, ok := strings.CutPrefix(name, "vgg.")
		if !ok {
			continue
		}
		dag := ""
		for k, tv := range vggFaceDag {
			if strings.HasPrefix(rest, tv+".") {
				dag = k + "." + strings.TrimPrefix(rest, tv+".")
			}
		}
		if dag == "" {
			t.Fatalf("no vgg_face_dag name for %s", rest)
		}
		sd.Names = append(sd.Names, dag)
		sd.Tensors[dag] = v.MustShallowClone()
	}
	sd.Names = append(sd.Names, "fc8.weight")
	sd.Tensors["fc8.weight"] = ts.MustZeros([]int64{2622, 16}, gotch.Float, gotch.CPU)
	fer.SeedTorch(2)
	dst, err := fer.NewModel(newCPUStore(), spec)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := loadBackbone(dst.VarStore(), sd, "vgg", VGGFaceDagRename)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != 30 || !slices.Contains(rep.Ignored, "fc8.weight") {
		t.Fatalf("loaded %d, ignored %v", len(rep.Loaded), rep.Ignored)
	}
	a, b := src.VarStore().Variables(), dst.VarStore().Variables()
	for name := range a {
		va, vb := a[name], b[name]
		d := maxDiff(t, &va, &vb)
		if strings.HasPrefix(name, "vgg.") != (d == 0) {
			t.Errorf("%s: max |diff| %g after loading the trunk", name, d)
		}
	}
	runtime.KeepAlive(src)
	runtime.KeepAlive(dst)
	sd.Drop()

	// torchvision ResNet-50 (with its 1000-way fc) into MT-ArcRes
	rvs := newCPUStore()
	if _, err := NewResNet(rvs.Root(), ResNet50Config(1000)); err != nil {
		t.Fatal(err)
	}
	sd = &StateDict{Tensors: map[string]*ts.Tensor{}, Source: "resnet50 (test)"}
	for name, v := range rvs.Variables() {
		sd.Names = append(sd.Names, name)
		sd.Tensors[name] = v.MustShallowClone()
	}
	arc, err := fer.NewModel(newCPUStore(), fer.ModelSpec{Name: "mt-arcres", NumClasses: 7, InputShape: []int64{3, 32, 32}})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err = loadBackbone(arc.VarStore(), sd, "backbone", DropPrefix("fc.")); err != nil {
		t.Fatal(err)
	}
	if len(rep.Ignored) != 2 || len(rep.Loaded) != len(sd.Names)-2 {
		t.Fatalf("loaded %d of %d, ignored %v", len(rep.Loaded), len(sd.Names), rep.Ignored)
	}
	w := arc.VarStore().Variables()
	for name, v := range rvs.Variables() {
		if strings.HasPrefix(name, "fc.") {
			continue
		}
		got := w["backbone."+name]
		if d := maxDiff(t, &v, &got); d != 0 {
			t.Fatalf("%s: max |diff| %g", name, d)
		}
	}
	runtime.KeepAlive(rvs)
	runtime.KeepAlive(arc)
	sd.Drop()
}
