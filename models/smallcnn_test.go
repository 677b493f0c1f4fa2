package models

import (
	"math"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestSmallCNN(t *testing.T) {
	runtime.LockOSThread() // each test is its own goroutine; grad mode is per thread
	defer runtime.UnlockOSThread()
	fer.SeedTorch(1)
	vs := nn.NewVarStore(gotch.CPU)
	m, err := fer.NewModel(vs, fer.ModelSpec{Name: "smallcnn", NumClasses: 7, InputShape: []int64{3, 48, 48},
		Options: map[string]any{"width": 8}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var n int64
	for name, v := range vs.Variables() {
		names = append(names, name)
		vv := v
		if !strings.Contains(name, "running_") {
			n += int64(vv.Numel())
		}
	}
	sort.Strings(names)
	// 7 conv-bn units (conv weight + bn weight, bias, running mean, var) + fc weight, bias
	if len(names) != 7*5+2 || names[0] != "fc.bias" || names[len(names)-1] != "stem.conv.weight" {
		t.Fatalf("variables %v", names)
	}
	// width 8: convs 3·8·9 + 8·16·9 + 16·16·9 + 16·32·9 + 32·32·9 + 32·64·9 + 64·64·9,
	// bn 2·(8+16+16+32+32+64+64), fc 64·7+7
	if want := int64(216 + 1152 + 2304 + 4608 + 9216 + 18432 + 36864 + 464 + 455); n != want {
		t.Fatalf("%d parameters, want %d", n, want)
	}
	// conv weights start in torch's default range U(±1/√fan_in)
	wt := vs.Variables()["stage2.conv1.conv.weight"]
	w := wt.Float64Values()
	bound := 1 / math.Sqrt(16*9)
	for _, v := range w {
		if math.Abs(v) > bound {
			t.Fatalf("stage2 conv1 weight %v outside ±%v", v, bound)
		}
	}
	x := ts.MustRandn([]int64{2, 3, 48, 48}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	out, err := m.Forward(&fer.Batch{Inputs: []*ts.Tensor{x}, Size: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	if s := out[fer.OutputLogits].MustSize(); len(s) != 2 || s[0] != 2 || s[1] != 7 {
		t.Fatalf("logits shape %v", s)
	}
	if _, err := fer.NewModel(nn.NewVarStore(gotch.CPU), fer.ModelSpec{Name: "smallcnn", NumClasses: 7, InputShape: []int64{16, 3, 48, 48}}); err == nil {
		t.Fatal("smallcnn accepted clips")
	}
	if _, err := fer.NewModel(nn.NewVarStore(gotch.CPU), fer.ModelSpec{Name: "smallcnn", NumClasses: 7, InputShape: []int64{3, 48, 48}, Options: map[string]any{"depth": 3}}); err == nil {
		t.Fatal("smallcnn accepted an unknown option")
	}
}
