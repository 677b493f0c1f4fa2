package fer

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer/featfile"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// featNet is flatten → fc1 → ReLU (the features) → fc2 (the logits).
type featNet struct{ FC1, FC2 *nn.Linear }

func (n *featNet) Features(x *ts.Tensor, train bool) *ts.Tensor {
	f := x.MustFlatten(1, -1, false)
	h := n.FC1.Forward(f)
	f.MustDrop()
	return h.MustRelu(true)
}

func (n *featNet) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := n.Features(x, train)
	out := n.FC2.Forward(h)
	h.MustDrop()
	return out
}

// withFeatures is a Model that returns its features as an output.
type withFeatures struct{ *Classifier }

func (m withFeatures) Forward(b *Batch, train bool) (Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	net := m.Net.(*featNet)
	return Outputs{OutputLogits: net.ForwardT(x, train), featuresOutput: net.Features(x, train)}, nil
}

func synthSplit(t *testing.T, n int) (Dataset, []string) {
	t.Helper()
	s, err := OpenDataset(DataConfig{Name: "synth", Options: map[string]any{"train_n": n, "val_n": 0, "test_n": 0, "size": 32}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s.Train, s.Classes
}

func TestExtractFeatures(t *testing.T) {
	lockThread(t)
	ds, classes := synthSplit(t, 30)
	SeedTorch(4)
	vs := nn.NewVarStore(gotch.CPU)
	net := &featNet{
		FC1: nn.NewLinear(vs.Root().Sub("fc1"), 3*32*32, 6, nn.DefaultLinearConfig()),
		FC2: nn.NewLinear(vs.Root().Sub("fc2"), 6, int64(len(classes)), nn.DefaultLinearConfig()),
	}
	cls := NewClassifier(net, vs)

	// Reference: all 30 samples in one batch.
	all := make([]int, 30)
	for i := range all {
		all[i] = i
	}
	b, err := ds.Batch(all, false, NewRand(0, 0), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := b.Input(0)
	wantF := net.Features(x, false).Float64Values(true)
	wantL := net.ForwardT(x, false).Float64Values(true)
	b.Drop()

	for _, tc := range []struct {
		name string
		m    Model
	}{{"FeatureNet", cls}, {"features output", withFeatures{cls}}} {
		// Batches of 7: the last one is partial; order must be kept.
		f, err := ExtractFeatures(context.Background(), tc.m, ds, classes, 7, gotch.CPU)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if f.N() != 30 || f.Dim() != 6 || len(f.Probs) != 30 || len(f.Probs[0]) != 7 {
			t.Fatalf("%s: N=%d D=%d probs %d", tc.name, f.N(), f.Dim(), len(f.Probs))
		}
		for i := 0; i < 30; i++ {
			if f.Labels[i] != ds.(Labeled).Label(i) {
				t.Errorf("%s: label %d = %d, want %d", tc.name, i, f.Labels[i], ds.(Labeled).Label(i))
			}
			for j := 0; j < 6; j++ {
				if d := math.Abs(float64(f.X[i][j]) - wantF[i*6+j]); d > 1e-5 {
					t.Fatalf("%s: feature [%d][%d] = %v, want %v", tc.name, i, j, f.X[i][j], wantF[i*6+j])
				}
			}
			// probs = softmax(logits); pred = argmax.
			mx, top := math.Inf(-1), 0
			var den float64
			for k := 0; k < 7; k++ {
				l := wantL[i*7+k]
				den += math.Exp(l)
				if l > mx {
					mx, top = l, k
				}
			}
			var sum float64
			for k := 0; k < 7; k++ {
				want := math.Exp(wantL[i*7+k]) / den
				if d := math.Abs(float64(f.Probs[i][k]) - want); d > 1e-5 {
					t.Fatalf("%s: prob [%d][%d] = %v, want %v", tc.name, i, k, f.Probs[i][k], want)
				}
				sum += float64(f.Probs[i][k])
			}
			if f.Preds[i] != top || math.Abs(sum-1) > 1e-5 {
				t.Errorf("%s: sample %d pred %d (want %d), probs sum %v", tc.name, i, f.Preds[i], top, sum)
			}
		}
		// The result saves and loads as a feature file.
		f.Model, f.Dataset = "featNet", "synth/train"
		p := filepath.Join(t.TempDir(), "f.safetensors")
		if err := featfile.Save(p, f); err != nil {
			t.Fatal(err)
		}
		g, err := featfile.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if g.N() != 30 || g.Classes[1] != classes[1] || g.Preds[29] != f.Preds[29] || g.X[29][5] != f.X[29][5] {
			t.Errorf("%s: round trip differs", tc.name)
		}
	}

	// A network without features is an error naming the fix.
	plain, err := newTestMLP(nn.NewVarStore(gotch.CPU), ModelSpec{NumClasses: 7, InputShape: []int64{3, 32, 32}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ExtractFeatures(context.Background(), plain, ds, classes, 8, gotch.CPU); err == nil || !strings.Contains(err.Error(), "FeatureNet") {
		t.Errorf("model without features: %v", err)
	}
	// Wrong class count.
	if _, err := ExtractFeatures(context.Background(), cls, ds, classes[:5], 8, gotch.CPU); err == nil {
		t.Error("7 class scores accepted for 5 classes")
	}
}
