package data

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/internal/abawfixture"
)

func writeABAW(t *testing.T, videos bool) *abawfixture.Fixture {
	t.Helper()
	fx, err := abawfixture.Write(t.TempDir(), abawfixture.Options{Size: 16, Frames: 10, Videos: videos})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// The frame sampler: every frame with an image and some valid label of a
// task listed in the split, labels masked per task exactly as the files
// say; what is left out is counted.
func TestAffWild2Frames(t *testing.T) {
	fx := writeABAW(t, false)
	d, err := OpenAffWild2(fx.Root, "train", AffWild2Options{Transform: Transform{Size: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Classes(), AffWild2Classes) || !slices.Equal(d.AUs(), AffWild2AUs) {
		t.Fatalf("classes %v AUs %v", d.Classes(), d.AUs())
	}
	// train videos: vidA (VA, EXPR, AU), vidB_left (VA, EXPR), vidB_right
	// (AU only; its VA is in val), vidD (all). 10 frames each; vidA's
	// frame 6 has no image; vidB_right's frame 5 has only an invalid AU
	// row in this split.
	if d.Len() != 4*10-2 {
		t.Fatalf("%d frame samples, want 38; drops:\n%s", d.Len(), d.Drops())
	}
	if c := d.Drops().Counts(); c["annotated frame without image (its labels are masked)"] != 1 ||
		c["frame with only invalid labels (-5 / -1)"] != 1 || d.Drops().Total() != 2 {
		t.Fatalf("drops %v", c)
	}
	found := map[string]bool{}
	for i := 0; i < d.Len(); i++ {
		s, err := d.Load(i, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Shape, []int{3, 8, 8}) || len(s.Data) != 3*8*8 {
			t.Fatalf("shape %v", s.Shape)
		}
		video, frame, _ := strings.Cut(s.ID, "/")
		k := atoi(t, frame) - 1
		va, au, lab := s.Extra["va"].F32, s.Extra["au"].F32, s.Extra["label"].I64
		if len(va) != 2 || len(au) != 8 || len(lab) != 1 || s.Label != int(lab[0]) || d.Label(i) != s.Label {
			t.Fatalf("%s: extras %v %v %v label %d", s.ID, va, au, lab, s.Label)
		}
		wantVA := [2]float64{-5, -5}
		if x, ok := fx.VA["train"][video]; ok {
			wantVA = x[k]
		}
		if float32(wantVA[0]) != va[0] || float32(wantVA[1]) != va[1] {
			t.Fatalf("%s: va %v, want %v", s.ID, va, wantVA)
		}
		wantEx := -1
		if x, ok := fx.EXPR["train"][video]; ok {
			wantEx = x[k]
		}
		if int64(wantEx) != lab[0] {
			t.Fatalf("%s: label %d, want %d", s.ID, lab[0], wantEx)
		}
		for a := range 8 {
			want := -1
			if x, ok := fx.AU["train"][video]; ok && k < len(x) {
				want = x[k][a]
			}
			if float32(want) != au[a] {
				t.Fatalf("%s: AU %d = %v, want %d", s.ID, a, au[a], want)
			}
		}
		found[video] = true
	}
	if len(found) != 4 || found["vidC"] {
		t.Fatalf("videos in train: %v", found)
	}
	// the red background (away from the square and the dots) carries the
	// valence: (127+120·v)/255
	s, _ := d.Load(0, nil, false) // vidA/00001, valence -0.9
	if got, want := s.Data[4*8+7], float32(127-108)/255; got < want-0.03 || got > want+0.03 {
		t.Fatalf("pixel %v, want about %v", got, want)
	}
}

// The sequence sampler: contiguous windows with stride, padded at the
// end, a missing image replaced by its neighbour with masked labels.
func TestAffWild2Sequences(t *testing.T) {
	fx := writeABAW(t, false)
	d, err := OpenAffWild2(fx.Root, "train", AffWild2Options{Transform: Transform{Size: 8}, SeqLen: 4, Stride: 3, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	// 10 frames, stride 3: starts 0, 3, 6, 9 per video
	if d.Len() != 4*4 {
		t.Fatalf("%d windows, want 16", d.Len())
	}
	s, err := d.Load(1, rand.New(rand.NewPCG(1, 2)), true) // vidA/00004-00007
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "vidA/00004-00007" || !slices.Equal(s.Shape, []int{4, 3, 8, 8}) || !slices.Equal(s.Extra["va"].Shape, []int{4, 2}) ||
		!slices.Equal(s.Extra["au"].Shape, []int{4, 8}) || !slices.Equal(s.Extra["label"].Shape, []int{4}) || s.Label != -1 {
		t.Fatalf("%s shapes %v %v", s.ID, s.Shape, s.Extra["va"].Shape)
	}
	// frame 6 (slot 2) is missing: labels masked, image = frame 5's
	lab, va := s.Extra["label"].I64, s.Extra["va"].F32
	if lab[2] != -1 || va[4] != -5 || va[5] != -5 || lab[0] != -1 /* frame 4: EXPR -1 */ || lab[1] != int64(fx.EXPR["train"]["vidA"][4]) {
		t.Fatalf("labels %v va %v", lab, va)
	}
	per := 3 * 8 * 8
	if !slices.Equal(s.Data[2*per:3*per], s.Data[1*per:2*per]) {
		t.Fatal("missing frame not replaced by the previous one")
	}
	// the last window of a video starts at frame 10 and is padded
	s, err = d.Load(3, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "vidA/00010-00013" || s.Extra["label"].I64[1] != -1 || s.Extra["au"].F32[0] != -1 /* AU file is 2 rows short */ {
		t.Fatalf("%s labels %v au %v", s.ID, s.Extra["label"].I64, s.Extra["au"].F32[:8])
	}
	// evaluation splits ignore the stride: every frame once
	v, err := OpenAffWild2(fx.Root, "val", AffWild2Options{Transform: Transform{Size: 8}, SeqLen: 4, Stride: 3})
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 2*3 || v.ID(1) != "vidB_right/00005-00008" {
		t.Fatalf("val windows %d, %s", v.Len(), v.ID(1))
	}
	// and batches stack the extras
	b, err := LoadBatch(v, []int{0, 1}, false, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Shape, []int{2, 4, 3, 8, 8}) || !slices.Equal(b.Extra["va"].Shape, []int{2, 4, 2}) || len(b.Extra["label"].I64) != 8 {
		t.Fatalf("batch %v %v", b.Shape, b.Extra["va"].Shape)
	}
}

func TestAffWild2Errors(t *testing.T) {
	fx := writeABAW(t, false)
	if _, err := OpenAffWild2(filepath.Join(fx.Root, "nope"), "train", AffWild2Options{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing root: %v", err)
	}
	if _, err := OpenAffWild2(fx.Root, "test", AffWild2Options{}); err == nil || !strings.Contains(err.Error(), "want train or val") {
		t.Fatalf("bad split: %v", err)
	}
	// a bad row names the file and line
	p := filepath.Join(fx.Root, "annotations", "VA_Set", "Train_Set", "vidA.txt")
	if err := os.WriteFile(p, []byte("valence,arousal\n0,0\n0,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenAffWild2(fx.Root, "train", AffWild2Options{})
	if err == nil || !strings.Contains(err.Error(), "vidA.txt line 3: arousal \"x\" is not a number") {
		t.Fatalf("bad row: %v", err)
	}
	// AU headers must agree by name (order may differ)
	if err := os.WriteFile(p, []byte("valence,arousal\n0,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	au := filepath.Join(fx.Root, "annotations", "AU_Set", "Train_Set", "vidD.txt")
	if err := os.WriteFile(au, []byte("AU2,AU1,AU4,AU6,AU12,AU15,AU20,AU25\n1,0,0,0,0,0,0,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenAffWild2(fx.Root, "train", AffWild2Options{Tasks: []ABAWTask{TaskAU}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < d.Len(); i++ {
		if d.ID(i) == "vidD/00001" {
			s, _ := d.Load(i, nil, false)
			if a := s.Extra["au"].F32; a[0] != 0 || a[1] != 1 {
				t.Fatalf("AU columns not mapped by name: %v", a)
			}
		}
	}
	if err := os.WriteFile(au, []byte("AU1,AU2\n1,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAffWild2(fx.Root, "train", AffWild2Options{}); err == nil || !strings.Contains(err.Error(), "differ from the first AU file") {
		t.Fatalf("AU header: %v", err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
