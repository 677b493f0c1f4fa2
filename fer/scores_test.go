package fer

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
)

// passModel outputs slices of its flattened input: logits = x[:, :c],
// va = x[:, c:c+2], au = x[:, c+2:c+2+a] (known values for Score).
type passModel struct {
	vs   *nn.VarStore
	c, a int64
}

func (m *passModel) VarStore() *nn.VarStore { return m.vs }

func (m *passModel) Forward(b *Batch, train bool) (Outputs, error) {
	x, err := b.Input(0)
	if err != nil {
		return nil, err
	}
	f, err := x.Flatten(1, -1, false)
	if err != nil {
		return nil, err
	}
	defer f.Drop()
	out := Outputs{}
	for _, p := range []struct {
		name       string
		start, len int64
	}{{OutputLogits, 0, m.c}, {OutputVA, m.c, 2}, {OutputAU, m.c + 2, m.a}} {
		t, err := f.Narrow(1, p.start, p.len, false)
		if err != nil {
			out.Drop()
			return nil, err
		}
		out[p.name] = t
	}
	return out, nil
}

// TestScoreMultiTask: Score gives softmax probabilities with their argmax,
// valence/arousal as output, and sigmoid AU probabilities, per input.
func TestScoreMultiTask(t *testing.T) {
	lockThread(t)
	classes := []string{"a", "b", "c"}
	r := &Run{Cfg: &Config{}, Device: gotch.CPU,
		Data:  &Splits{Classes: classes, InputShape: []int64{1, 1, 13}},
		Model: &passModel{vs: nn.NewVarStore(gotch.CPU), c: 3, a: 8}}
	x := []float32{
		1, 2, 0.5, -0.25, 0.75, 0, 1, -1, 2, -2, 3, -3, 0.5,
		3, 0, 0, 0.5, -0.5, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	s, err := r.Score(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		row := x[i*13 : (i+1)*13]
		var z float64
		for k := range 3 {
			z += math.Exp(float64(row[k]))
		}
		for k := range 3 {
			if d := s.Probs[i][k] - math.Exp(float64(row[k]))/z; math.Abs(d) > 1e-6 {
				t.Fatalf("input %d class %d: p %v", i, k, s.Probs[i][k])
			}
		}
		if s.VA[i][0] != float64(row[3]) || s.VA[i][1] != float64(row[4]) {
			t.Fatalf("input %d: va %v", i, s.VA[i])
		}
		for k := range 8 {
			if d := s.AU[i][k] - 1/(1+math.Exp(-float64(row[5+k]))); math.Abs(d) > 1e-6 {
				t.Fatalf("input %d AU %d: %v", i, k, s.AU[i][k])
			}
		}
	}
	if s.Top[0] != 1 || s.Top[1] != 0 {
		t.Fatalf("top %v", s.Top)
	}
	if _, err := r.Score(x[:20], 2); err == nil {
		t.Fatal("short input accepted")
	}
}
