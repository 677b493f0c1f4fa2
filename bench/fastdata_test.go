package bench

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
)

func TestFastPipelinesMatchDataPackage(t *testing.T) {
	lockThread(t)
	dir := t.TempDir()
	root, err := WriteFixture(dir, false, 8, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := OpenImageFolder(root, data.Transform{Size: 48})
	if err != nil {
		t.Fatal(err)
	}
	fast := &fastImages{items: ref.Items, size: 48}
	// Test mode (whole image resized): same pixels up to the decoders'
	// and resamplers' rounding.
	for i := 0; i < 8; i++ {
		a, err := ref.Load(i, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fast.Load(i, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, b.Shape) || a.Label != b.Label {
			t.Fatalf("sample %d: shape %v/%v label %d/%d", i, a.Shape, b.Shape, a.Label, b.Label)
		}
		var sum float64
		for k := range a.Data {
			sum += math.Abs(float64(a.Data[k] - b.Data[k]))
		}
		if mean := sum / float64(len(a.Data)); mean > 3.0/255 {
			t.Errorf("sample %d: mean |diff| %.4f vs the data package", i, mean)
		}
	}
	p, err := OpenDataPipe(DataConfig{Root: root, Size: 48, Batch: 4, Workers: 2, Device: gotch.CPU, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(1, 3); err != nil {
		t.Fatal(err)
	}
	ep := p.loader.Epoch(0)
	defer ep.Close()
	b, err := ep.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Shape, []int{4, 3, 48, 48}) {
		t.Errorf("fast batch shape %v", b.Shape)
	}
	for _, v := range b.Data {
		if v < 0 || v > 1 {
			t.Fatalf("fast pixel %v outside [0,1]", v)
		}
	}

	croot, err := WriteFixture(filepath.Join(dir, "c"), true, 2, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenDataPipe(DataConfig{Clips: true, Root: croot, Size: 32, Frames: 4, Batch: 2, Workers: 2, Device: gotch.CPU, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	cep := cp.loader.Epoch(0)
	defer cep.Close()
	cb, err := cep.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cb.Shape, []int{2, 4, 3, 32, 32}) {
		t.Errorf("fast clip batch shape %v", cb.Shape)
	}
}
