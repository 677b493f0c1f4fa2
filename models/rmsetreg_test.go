package models

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/internal/rmsetfixture"
	"github.com/sugarme/gotch"
	"go.yaml.in/yaml/v3"
)

// smallRMsetTransforms are 24×24 pipelines for the rmset tests.
var smallRMsetTransforms = map[string]any{
	"train_transforms": []any{map[string]any{"resize": []any{24, 24}}, map[string]any{"random_choice": []any{"random_grayscale", "hflip"}}, "to_tensor", map[string]any{"normalize": "rmset"}},
	"test_transforms":  []any{map[string]any{"resize": []any{24, 24}}, "to_tensor", map[string]any{"normalize": "rmset"}},
}

// TestRMsetDataset: the registered "rmset" data set opens an RMset
// folder in the builder's layout (index.csv + crops) into fer.RMsetData:
// its batches have the RMset layout, every positive of an evaluation
// batch is the test pipeline's tensor of one of the anchor's positive
// candidates (other people, nearby frames) and every negative one of its
// negatives (the same person, far away); bad options are errors naming
// the fix.
func TestRMsetDataset(t *testing.T) {
	lockThread(t)
	root := t.TempDir()
	rmsetfixture.Synthetic{Videos: 1, People: 4, Frames: 70, Size: 32}.Write(t, root)
	opts := map[string]any{"n_positive": 4, "n_negative": 3, "pos_window": 1}
	for k, v := range smallRMsetTransforms {
		opts[k] = v
	}
	s, err := fer.OpenDataset(fer.DataConfig{Name: "rmset", Root: root, Options: opts}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ds, ok := s.Train.(*fer.RMsetData)
	if !ok || !slices.Equal(s.InputShape, []int64{3, 24, 24}) || s.Val != nil || s.Classes != nil {
		t.Fatalf("splits %T, input %v, val %v, classes %v", s.Train, s.InputShape, s.Val, s.Classes)
	}
	// anchors: frames [31, 70−31] of 4 people
	if ds.Len() != 4*9 || !strings.Contains(ds.ProtocolNote(), "1 videos, 280 faces, 36 valid anchors") {
		t.Fatalf("len %d, note %q", ds.Len(), ds.ProtocolNote())
	}
	b, err := ds.Batch([]int{0, 5}, false, rand.New(rand.NewPCG(3, 4)), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	for k, want := range [][]int64{{2, 3, 24, 24}, {2, 4, 3, 24, 24}, {2, 3, 3, 24, 24}} {
		if got := b.Inputs[k].MustSize(); !slices.Equal(got, want) {
			t.Fatalf("input %d: %v, want %v", k, got, want)
		}
	}
	test, err := data.ParsePipeline(smallRMsetTransforms["test_transforms"], "test")
	if err != nil {
		t.Fatal(err)
	}
	img := func(file string) []float32 {
		v, _, err := test.ApplyFile(file, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	faces := ds.Sampler.Faces()
	for a, id := range b.IDs {
		i := slices.IndexFunc(faces, func(f data.RMFace) bool { return f.File == id })
		pos, neg, err := ds.Sampler.Candidates(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Inputs[0].MustSelect(0, int64(a), false).Float64Values(true); !close32(got, img(id)) {
			t.Fatalf("anchor %d is not %s through the test pipeline", a, id)
		}
		for k, c := range []struct {
			in    int
			cands []int
			n     int64
		}{{1, pos, 4}, {2, neg, 3}} {
			all := b.Inputs[c.in].MustSelect(0, int64(a), false)
			for j := int64(0); j < c.n; j++ {
				got := all.MustSelect(0, j, false).Float64Values(true)
				if !slices.ContainsFunc(c.cands, func(f int) bool { return close32(got, img(faces[f].File)) }) {
					t.Fatalf("anchor %s: %s %d is none of its candidates %v", id, []string{"positive", "negative"}[k], j, c.cands)
				}
			}
			all.MustDrop()
		}
	}
	// the code's transforms by default: 260×260 RGB, or 3-channel grey
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"n_positive": 4}, ""},
		{map[string]any{"n_positive": 4, "train_transforms": RMsetTrainTransformsGray, "test_transforms": RMsetTestTransformsGray}, ""},
		{map[string]any{"test_transforms": []any{"hflip", map[string]any{"resize": []any{8, 8}}}}, "random steps"},
		{map[string]any{"train_transforms": []any{map[string]any{"resize": 30}}}, "fixed size"},
		{map[string]any{"n_positive": 50}, "no face of the 280 in the index can be an anchor"},
		{map[string]any{"n_postive": 5}, "n_postive"},
	} {
		o := map[string]any{}
		for k, v := range c.opts {
			if s, ok := v.(string); ok { // a built-in pipeline's YAML text
				var p any
				if err := yaml.Unmarshal([]byte(s), &p); err != nil {
					t.Fatal(err)
				}
				v = p
			}
			o[k] = v
		}
		s, err := fer.OpenDataset(fer.DataConfig{Name: "rmset", Root: root, Options: o}, 1)
		if c.want == "" {
			if err != nil || !slices.Equal(s.InputShape, []int64{3, 260, 260}) {
				t.Fatalf("%v: shape %v, err %v", c.opts, s, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.opts, err, c.want)
		}
	}
	for _, c := range []struct{ root, want string }{
		{"", "--rmset DIR"},
		{filepath.Join(root, "nothing"), "fercli rmset build"},
		{filepath.Join(root, "mashup01"), "index.csv"},
	} {
		if _, err := fer.OpenDataset(fer.DataConfig{Name: "rmset", Root: c.root}, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("root %q: err = %v, want %q", c.root, err, c.want)
		}
	}
}

func close32(a []float64, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if float32(a[i]) != b[i] {
			return false
		}
	}
	return true
}
