package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
)

func TestImageFolderFixture(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteImageFolder(dir, 14, 64, 1); err != nil {
		t.Fatal(err)
	}
	ds, err := OpenImageFolder(dir, data.Transform{Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 14 {
		t.Fatalf("%d images, want 14", ds.Len())
	}
	// torchvision ImageFolder order: classes sorted, then file names.
	cls := ds.Classes()
	if !slices.IsSorted(cls) || len(cls) != 7 {
		t.Errorf("classes %v: want the 7 synth classes, sorted", cls)
	}
	for i := 1; i < ds.Len(); i++ {
		if ds.Label(i) < ds.Label(i-1) || (ds.Label(i) == ds.Label(i-1) && ds.ID(i) < ds.ID(i-1)) {
			t.Errorf("item %d (%s) out of ImageFolder order", i, ds.ID(i))
		}
	}
	s, err := ds.Load(0, data.SampleRNG(1, 0, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Shape, []int{3, 32, 32}) {
		t.Errorf("sample shape %v", s.Shape)
	}
	if _, err := OpenImageFolder(t.TempDir(), data.Transform{}); err == nil {
		t.Errorf("empty folder accepted")
	}
}

func TestDFEWFixtureOpensAsDFEW(t *testing.T) {
	root := filepath.Join(t.TempDir(), "dfew")
	if err := WriteDFEWTree(root, 3, 6, 64, 2); err != nil {
		t.Fatal(err)
	}
	ds, err := data.OpenDFEW(root, 1, "train", data.DFEWOptions{ClipOptions: data.ClipOptions{
		Sampler: SegmentsFor(4), Transform: data.Transform{Size: 32}}})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 3 {
		t.Fatalf("%d clips, want 3", ds.Len())
	}
	for i, c := range ds.Clips {
		if c.Frames != 6 {
			t.Errorf("clip %d: %d frames, want 6", i, c.Frames)
		}
	}
	s, err := ds.Load(1, data.SampleRNG(1, 0, 1), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Shape, []int{4, 3, 32, 32}) {
		t.Errorf("clip sample shape %v, want [4 3 32 32]", s.Shape)
	}
	if SegmentsFor(16) != (data.SegmentSampler{NumSegments: 8, Duration: 2}) || SegmentsFor(5).Frames() != 5 {
		t.Errorf("SegmentsFor: %v %v", SegmentsFor(16), SegmentsFor(5))
	}
}

func TestDataPipeBatches(t *testing.T) {
	lockThread(t)
	dir := t.TempDir()
	root, err := WriteFixture(dir, false, 12, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenDataPipe(DataConfig{Root: root, Size: 32, Batch: 4, Workers: 2, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	// 12 images, batch 4: 3 batches per epoch; 2 + 5 batches cross into a
	// second and third epoch.
	times, err := p.Run(2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 5 || p.ItemsPerStep() != 4 {
		t.Errorf("%d times, %d items per step", len(times), p.ItemsPerStep())
	}
	ep := p.loader.Epoch(0)
	defer ep.Close()
	b, err := ep.Next()
	if err != nil {
		t.Fatal(err)
	}
	x, y, err := b.Tensors(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if got := x.MustSize(); !slices.Equal(got, []int64{4, 3, 32, 32}) {
		t.Errorf("batch %v", got)
	}
	for _, v := range x.Float64Values() {
		if v < 0 || v > 1 {
			t.Fatalf("pixel %v outside [0,1]", v)
		}
	}
	x.MustDrop()
	y.MustDrop()

	cdir := t.TempDir()
	croot, err := WriteFixture(cdir, true, 4, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := os.ReadDir(filepath.Join(croot, "Clip", data.DFEWClips, "00001")); len(fs) != 6 {
		t.Errorf("clip fixture with frames 4 has %d frames per clip, want 6", len(fs))
	}
	cp, err := OpenDataPipe(DataConfig{Clips: true, Root: croot, Size: 32, Frames: 4, Batch: 2, Workers: 2, Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Run(1, 2); err != nil {
		t.Fatal(err)
	}
	if cp.ItemsPerStep() != 8 {
		t.Errorf("clip items per step %d, want 2 clips × 4 frames", cp.ItemsPerStep())
	}
}
