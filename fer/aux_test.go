package fer

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// auxData is a test stream of 10 samples: sample i is the 4-vector
// i + u, u ~ U(0,1) from the batch's rng, so a batch depends on both its
// indices and its rng.
type auxData struct{}

func (auxData) Len() int { return 10 }

func (auxData) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	v := make([]float32, 0, 4*len(idx))
	for _, i := range idx {
		for range 4 {
			v = append(v, float32(i)+float32(rng.Float64()))
		}
	}
	x, err := ts.NewTensorFromData(v, []int64{int64(len(idx)), 4})
	if err != nil {
		return nil, err
	}
	return &Batch{Inputs: []*ts.Tensor{x}, Size: len(idx)}, nil
}

// auxModel is the tiny MLP whose logits are shifted by w·mean(aux), so
// the weights after training depend on every aux batch it saw; it counts
// the steps that carried one.
type auxModel struct {
	*Classifier
	W   *ts.Tensor
	mu  sync.Mutex
	got []bool // per Forward call in training: had an aux batch
}

func newAuxModel(vs *nn.VarStore, spec ModelSpec) (Model, error) {
	m, err := newTestMLP(vs, spec)
	if err != nil {
		return nil, err
	}
	w := vs.Root().MustZeros("aux_w", []int64{1})
	return &auxModel{Classifier: m.(*Classifier), W: w}, nil
}

func (m *auxModel) Forward(b *Batch, train bool) (Outputs, error) {
	out, err := m.Classifier.Forward(b, train)
	if err != nil || !train {
		return out, err
	}
	m.mu.Lock()
	m.got = append(m.got, b.Aux != nil)
	m.mu.Unlock()
	if b.Aux == nil {
		return out, nil
	}
	x, err := b.Aux.Input(0)
	if err != nil {
		return nil, err
	}
	mean := x.MustMean(gotch.Float, false)
	shift := mean.MustMul(m.W, true)
	out[OutputLogits] = out[OutputLogits].MustAdd(shift, true)
	shift.MustDrop()
	return out, nil
}

func init() {
	RegisterModel("test-aux", "test model using an aux stream", newAuxModel)
	RegisterDataset("test-aux", "test aux stream", func(cfg DataConfig, seed int64) (*Splits, error) {
		return &Splits{Train: auxData{}}, nil
	})
}

// TestAuxIndices: the stream's indices are a function of (seed, epoch,
// batch): a fresh stream, or one asked in another order (a resumed run),
// gives the same; each pass over the 10 samples is a permutation; another
// epoch or seed gives another order.
func TestAuxIndices(t *testing.T) {
	a := &AuxStream{Data: auxData{}, BatchSize: 4}
	var seq []int
	for bi := 0; bi < 5; bi++ { // 20 positions = 2 passes
		seq = append(seq, a.Indices(3, 1, bi)...)
	}
	for p := 0; p < 2; p++ {
		pass := slices.Clone(seq[10*p : 10*p+10])
		slices.Sort(pass)
		if !slices.Equal(pass, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("pass %d is not a permutation: %v", p, seq[10*p:10*p+10])
		}
	}
	if slices.Equal(seq[:10], seq[10:]) {
		t.Error("second pass repeats the first pass's order")
	}
	b := &AuxStream{Data: auxData{}, BatchSize: 4}
	for _, bi := range []int{3, 0, 4, 1, 2} {
		if got := b.Indices(3, 1, bi); !slices.Equal(got, seq[4*bi:4*bi+4]) {
			t.Fatalf("batch %d asked out of order: %v, want %v", bi, got, seq[4*bi:4*bi+4])
		}
	}
	if slices.Equal(b.Indices(3, 2, 0), seq[:4]) && slices.Equal(b.Indices(4, 1, 0), seq[:4]) {
		t.Error("another epoch and another seed give the same indices")
	}
}

// TestAuxStreamPhasesAndResume: with aux.start_epoch = 1 the first epoch
// trains without the stream and the next ones with it, in one run; a run
// interrupted in the second phase and resumed ends with exactly the
// weights and log of an uninterrupted one (SAM, so both passes of a step
// use the same aux batch).
func TestAuxStreamPhasesAndResume(t *testing.T) {
	over := []string{"model.name=test-aux", "aux={data: {name: test-aux}, batch_size: 3, start_epoch: 1}",
		"optimizer={name: adam, lr: 0.003, sam_rho: 0.05}", "log_every_steps=2"}
	ref := tinyConfig(t, over...)
	rRef, res, err := train(t, ref, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := rRef.Model.(*auxModel).got
	// 8 steps per epoch, 2 forward passes per SAM step
	if len(got) != 48 || slices.Contains(got[:16], true) || slices.Contains(got[16:], false) {
		t.Fatalf("aux batches per training forward pass: %v; want none in epoch 1, one in every pass after", got)
	}
	if res.Steps != 24 {
		t.Fatalf("%d steps", res.Steps)
	}
	wantW := weights(rRef.Model)
	wantRecs := records(t, ref.RunDir)
	if w := wantW["aux_w"]; w[0] == 0 {
		t.Fatal("the aux weight never moved: the stream did not reach the loss")
	}

	cfg := tinyConfig(t, over...)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	tr.OnStep = func(s int) {
		if s == 13 { // epoch 2, batch 5
			cancel()
		}
	}
	var ie *InterruptedError
	if _, err := tr.Fit(ctx, false); !errors.As(err, &ie) {
		t.Fatalf("want an interrupt, got %v", err)
	}
	r2, _, err := train(t, cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameWeights(wantW, weights(r2.Model)); err != nil {
		t.Fatalf("resumed in phase 2: %v", err)
	}
	sameRecords(t, wantRecs, records(t, cfg.RunDir))

	// a config without the stream must not accept its keys
	if _, err := ParseConfig(nil, "test", "model.name=test-tiny", "aux.start_epoch=2"); err == nil {
		t.Error("aux.start_epoch without aux.data accepted")
	}
}
