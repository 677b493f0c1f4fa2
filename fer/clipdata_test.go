package fer

import (
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
)

// writeClipFrames writes n uniform 24×24 JPEG frames to dir; frame k has
// grey level base+k.
func writeClipFrames(t *testing.T, dir string, n int, base uint8) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k := range n {
		img := image.NewGray(image.Rect(0, 0, 24, 24))
		for i := range img.Pix {
			img.Pix[i] = base + uint8(k)
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%05d.jpg", k+1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 100}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// An AFEW tree (Train/<Emotion>/<clip>/, Val/...) opened through the
// registry: split sizes, labels in DFEWClasses order, val = test, and a
// batch of the right shape and labels.
func TestAFEWDataset(t *testing.T) {
	root := t.TempDir()
	emotions := []string{"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"}
	for i, e := range emotions {
		writeClipFrames(t, filepath.Join(root, "Train", e, "a"), 10, uint8(10*i))
		writeClipFrames(t, filepath.Join(root, "Train", e, "b"), 3, uint8(10*i))
		writeClipFrames(t, filepath.Join(root, "Val", e, "c"), 6, uint8(10*i))
	}
	s, err := OpenDataset(DataConfig{Name: "afew", Root: root, Options: map[string]any{"frames": 4, "size": 16, "workers": 2}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.Len() != 14 || s.Val.Len() != 7 || s.Val != s.Test {
		t.Fatalf("splits: train %d, val %d, test %d", s.Train.Len(), s.Val.Len(), s.Test.Len())
	}
	if !slices.Equal(s.Classes, data.DFEWClasses) || !slices.Equal(s.InputShape, []int64{4, 3, 16, 16}) {
		t.Fatalf("classes %v, input shape %v", s.Classes, s.InputShape)
	}
	if n, ok := s.Val.(interface{ ProtocolNote() string }); !ok || !strings.Contains(n.ProtocolNote(), "7 val clips") {
		t.Fatalf("val has no protocol note")
	}
	// val clips are sorted by id: Angry/c, Disgust/c, ... → labels 3, 5, 6, 0, 2, 1, 4
	b, err := s.Val.Batch([]int{0, 1, 3}, false, BatchRand(1, 0, 0), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	x, _ := b.Input(0)
	y, _ := b.Target(TargetLabel)
	if got := x.MustSize(); !slices.Equal(got, []int64{3, 4, 3, 16, 16}) {
		t.Fatalf("input shape %v", got)
	}
	if got := y.Int64Values(); !slices.Equal(got, []int64{3, 5, 0}) || b.Size != 3 || b.IDs[2] != "Happy/c" {
		t.Fatalf("labels %v, size %d, ids %v", got, b.Size, b.IDs)
	}
	// test-time sampling of a 6-frame clip with 2 segments × 2 frames:
	// segment centres at frames 1 and 3 → frames 1,2,3,4; Angry/c has
	// grey levels 0..5, so frame k of the input is (k+1)/255
	v := x.MustSelect(0, 0, false)
	defer v.MustDrop()
	for k, want := range []float64{1, 2, 3, 4} {
		got := v.MustSelect(0, int64(k), false).MustMean(gotch.Double, true).Float64Values()[0] * 255
		if got < want-0.5 || got > want+0.5 {
			t.Fatalf("frame %d has grey level %.2f, want %v", k, got, want)
		}
	}
	// min_frames drops the 3-frame training clips
	s, err = OpenDataset(DataConfig{Name: "afew", Root: root, Options: map[string]any{"frames": 4, "size": 16, "min_frames": 4}}, 1)
	if err != nil || s.Train.Len() != 7 {
		t.Fatalf("min_frames 4: %v", err)
	}
}

// Options and folders the clip data sets reject, with messages naming the
// fix.
func TestClipDatasetErrors(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		cfg  DataConfig
		want string
	}{
		{DataConfig{Name: "dfew", Options: map[string]any{}}, "--data-root"},
		{DataConfig{Name: "dfew", Root: root, Options: map[string]any{"fold": 6}}, "fold = 6"},
		{DataConfig{Name: "dfew", Root: root, Options: map[string]any{"frames": 5}}, "multiple of duration"},
		{DataConfig{Name: "dfew", Root: root, Options: map[string]any{"normalise": "none"}}, `unknown key "normalise"`},
		{DataConfig{Name: "dfew", Root: root, Options: map[string]any{"version": "clip_112"}}, "clip_224x224_16f"},
		{DataConfig{Name: "dfew", Root: root}, "EmoLabel_DataSplit"},
		{DataConfig{Name: "afew", Root: root, Options: map[string]any{"fold": 2}}, "DFEW options"},
		{DataConfig{Name: "afew", Root: root}, "Train"},
	} {
		_, err := OpenDataset(c.cfg, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one mentioning %q", c.cfg.Name, c.cfg.Options, err, c.want)
		}
	}
}
