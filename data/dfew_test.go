package data

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// pickedFrames reads back which frames a test-mode sample holds: the
// fixture's frame k is a uniform grey level frameLevel(k).
func pickedFrames(t *testing.T, s Sample) []int {
	t.Helper()
	T, per := s.Shape[0], len(s.Data)/s.Shape[0]
	out := make([]int, T)
	for j := range T {
		v := float64(s.Data[j*per]) * 255
		out[j] = int(math.Round(v / 5))
		for _, x := range s.Data[j*per : (j+1)*per] {
			if math.Abs(float64(x)*255-v) > 0.5 {
				t.Fatalf("frame %d of %s is not uniform: %v vs %v", j, s.ID, x*255, v)
			}
		}
	}
	return out
}

func TestOpenDFEW(t *testing.T) {
	f := newDFEWFixture(t)
	opts := DFEWOptions{ClipOptions: ClipOptions{Transform: Transform{Size: 4}}}
	train, err := OpenDFEW(f.root, 1, "train", opts)
	if err != nil {
		t.Fatal(err)
	}
	test, err := OpenDFEW(f.root, 1, "test", opts)
	if err != nil {
		t.Fatal(err)
	}
	// labels 1..7 = happy, sad, neutral, angry, surprise, disgust, fear
	checkLabels := func(d *ClipDataset, ids []string, labels []int) {
		t.Helper()
		if d.Len() != len(ids) {
			t.Fatalf("%s: %d clips, want %d", d.Name, d.Len(), len(ids))
		}
		for i := range ids {
			if d.ID(i) != ids[i] || d.Label(i) != labels[i] {
				t.Errorf("%s clip %d = %s label %d, want %s label %d", d.Name, i, d.ID(i), d.Label(i), ids[i], labels[i])
			}
		}
	}
	checkLabels(train, []string{"00001", "00002", "00003", "00004"}, []int{0, 1, 2, 3})
	checkLabels(test, []string{"00005", "00006"}, []int{4, 6})
	if DFEWClasses[test.Label(1)] != "fear" || DFEWClasses[train.Label(2)] != "neutral" {
		t.Errorf("class names: %q, %q", DFEWClasses[test.Label(1)], DFEWClasses[train.Label(2)])
	}
	if got := train.SampleShape(); !slices.Equal(got, []int{16, 3, 4, 4}) {
		t.Errorf("sample shape %v", got)
	}

	// Test-mode frames are the sampler's segment centres; clip 1 has 40
	// frames, clip 3 has 5.
	for i, n := range map[int]int{0: 40, 1: 16, 2: 5} {
		s, err := train.Load(i, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pickedFrames(t, s), DefaultSegmentSampler.Indices(n, false, nil); !slices.Equal(got, want) {
			t.Errorf("clip %s (%d frames): picked %v, want %v", s.ID, n, got, want)
		}
		if s.Label != train.Label(i) || !slices.Equal(s.Shape, []int{16, 3, 4, 4}) {
			t.Errorf("sample %+v", s.Shape)
		}
	}
	// Training mode: frames follow SegmentSampler with the same rng.
	s, err := train.Load(0, rand.New(rand.NewPCG(9, 9)), true)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSegmentSampler.Indices(40, true, rand.New(rand.NewPCG(9, 9)))
	if got := pickedFrames(t, s); !slices.Equal(got, want) {
		t.Errorf("train frames %v, want %v", got, want)
	}

	// The 16-frame version reads Clip/clip_224x224_16f: every clip has 16
	// frames there.
	v16, err := OpenDFEW(f.root, 1, "train", DFEWOptions{Version: DFEWClips16f, ClipOptions: opts.ClipOptions})
	if err != nil {
		t.Fatal(err)
	}
	s, err = v16.Load(0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := pickedFrames(t, s); !slices.Equal(got, DefaultSegmentSampler.Indices(16, false, nil)) {
		t.Errorf("16f clip frames %v", got)
	}

	// MinFrames = 16 drops clip 3 (5 frames), as Former-DFER's list filter.
	opts.MinFrames = 16
	filtered, err := OpenDFEW(f.root, 1, "train", opts)
	if err != nil {
		t.Fatal(err)
	}
	if filtered.Len() != 3 || len(filtered.Dropped) != 1 || filtered.Dropped[0].ID != "00003" {
		t.Errorf("min_frames 16: %d clips, dropped %+v", filtered.Len(), filtered.Dropped)
	}
}

// All frames of a clip get the same crop and flip: with identical frames
// the 16 output frames are identical, while different seeds give
// different outputs (so the augmentation is really random).
func TestClipSharedAugmentation(t *testing.T) {
	dir := t.TempDir()
	img := pattern(40, 30)
	for k := range 12 {
		writeJPEG(t, filepath.Join(dir, "c", string(rune('a'+k))+".jpg"), img)
	}
	d, err := NewClipDataset("same", []Clip{{ID: "c", Path: filepath.Join(dir, "c")}}, DFEWClasses, ClipOptions{Transform: Transform{Size: 16}})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]bool{}
	for seed := range uint64(8) {
		s, err := d.Load(0, rand.New(rand.NewPCG(seed, 1)), true)
		if err != nil {
			t.Fatal(err)
		}
		per := len(s.Data) / 16
		for j := 1; j < 16; j++ {
			if !slices.Equal(s.Data[:per], s.Data[j*per:(j+1)*per]) {
				t.Fatalf("seed %d: frame %d differs from frame 0: crop/flip not shared", seed, j)
			}
		}
		outputs[string(float32Bytes(s.Data[:per]))] = true
	}
	if len(outputs) < 6 {
		t.Errorf("8 seeds gave %d distinct augmentations", len(outputs))
	}
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		u := math.Float32bits(x)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

func TestDFEWErrors(t *testing.T) {
	opts := DFEWOptions{}
	_, err := OpenDFEW(filepath.Join(t.TempDir(), "nope"), 1, "train", opts)
	wantErr(t, err, "nope", "not found", "EmoLabel_DataSplit")
	_, err = OpenDFEW(t.TempDir(), 6, "train", opts)
	wantErr(t, err, "fold = 6")
	_, err = OpenDFEW(t.TempDir(), 1, "val", opts)
	wantErr(t, err, `split = "val"`)

	f := newDFEWFixture(t)
	_, err = OpenDFEW(f.root, 2, "train", opts)
	wantErr(t, err, "set_2.csv", "EmoLabel_DataSplit")

	f.split(t, "train", 3, "video_name,label\n1,1\n2;2\n")
	_, err = OpenDFEW(f.root, 3, "train", opts)
	wantErr(t, err, "set_3.csv line 3", "2;2")

	f.split(t, "train", 3, "video_name,label\n1,1\nx,2\n")
	_, err = OpenDFEW(f.root, 3, "train", opts)
	wantErr(t, err, "set_3.csv line 3", "integer")

	f.split(t, "train", 3, "video_name,label\n1,8\n")
	_, err = OpenDFEW(f.root, 3, "train", opts)
	wantErr(t, err, "line 2", "label 8 out of range", "1..7")
	f.split(t, "train", 3, "video_name,label\n1,0\n")
	_, err = OpenDFEW(f.root, 3, "train", opts)
	wantErr(t, err, "label 0 out of range")

	f.split(t, "train", 3, "video_name,label\n1,1\n1,2\n")
	_, err = OpenDFEW(f.root, 3, "train", opts)
	wantErr(t, err, "line 3", "already listed on line 2")

	f.split(t, "train", 4, "video_name,label\n1,1\n77,2\n")
	_, err = OpenDFEW(f.root, 4, "train", opts)
	wantErr(t, err, "00077", "not found")

	if err := os.MkdirAll(filepath.Join(f.root, "Clip", "clip_224x224", "00088"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.split(t, "train", 5, "video_name,label\n88,1\n1,2\n")
	_, err = OpenDFEW(f.root, 5, "train", opts)
	wantErr(t, err, "00088", "no .jpg", "min_frames")
	// with MinFrames the empty clip is dropped instead
	d, err := OpenDFEW(f.root, 5, "train", DFEWOptions{ClipOptions: ClipOptions{MinFrames: 1}})
	if err != nil || d.Len() != 1 || d.Dropped[0].ID != "00088" {
		t.Fatalf("min_frames 1: %v, %+v", err, d)
	}

	_, err = OpenDFEW(f.root, 1, "train", DFEWOptions{Version: "clip_112"})
	wantErr(t, err, "clip_112")

	// A corrupt frame fails at load time, naming the file.
	bad := filepath.Join(f.root, "Clip", "clip_224x224", "00002", "00001.jpg")
	if err := os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = OpenDFEW(f.root, 1, "train", opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Load(1, nil, false)
	wantErr(t, err, "00002", bad, "corrupt")
}
