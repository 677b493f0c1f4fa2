package data

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// fakeDS is an in-memory data set: sample i is [i, first draw of its rng,
// train]; sample failAt fails like a corrupt frame would.
type fakeDS struct {
	n, failAt int
	delay     time.Duration
}

func (f *fakeDS) Len() int        { return f.n }
func (f *fakeDS) Label(i int) int { return i % 7 }
func (f *fakeDS) Load(i int, rng *rand.Rand, train bool) (Sample, error) {
	time.Sleep(f.delay)
	if i == f.failAt {
		return Sample{}, fmt.Errorf("decode image /data/clip_%05d/00003.jpg: unexpected EOF", i)
	}
	tr := float32(0)
	if train {
		tr = 1
	}
	return Sample{ID: fmt.Sprint("s", i), Label: i % 7, Data: []float32{float32(i), float32(rng.Float64()), tr}, Shape: []int{3}}, nil
}

func collect(t *testing.T, l *Loader, epoch int) []*Batch {
	t.Helper()
	e := l.Epoch(epoch)
	defer e.Close()
	var out []*Batch
	for {
		b, err := e.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestLoaderDeterministicOrder(t *testing.T) {
	ds := &fakeDS{n: 23, failAt: -1}
	runs := map[string][]*Batch{}
	for _, c := range []LoaderConfig{
		{BatchSize: 4, Workers: 1, Prefetch: 1},
		{BatchSize: 4, Workers: 4},
		{BatchSize: 4, Workers: 3, Prefetch: 5},
	} {
		c.Shuffle, c.Train, c.Seed = true, true, 7
		l, err := NewLoader(ds, c)
		if err != nil {
			t.Fatal(err)
		}
		if l.Len() != 6 {
			t.Fatalf("%d batches, want 6", l.Len())
		}
		runs[fmt.Sprint(c.Workers, c.Prefetch)] = collect(t, l, 3)
	}
	ref := runs["1 1"]
	for k, r := range runs {
		if len(r) != len(ref) {
			t.Fatalf("run %s: %d batches", k, len(r))
		}
		for i := range r {
			if !slices.Equal(r[i].Data, ref[i].Data) || !slices.Equal(r[i].Labels, ref[i].Labels) || !slices.Equal(r[i].IDs, ref[i].IDs) {
				t.Fatalf("run %s batch %d differs from the 1-worker run", k, i)
			}
		}
	}
	// One epoch visits every sample once, in Order(epoch); each sample's
	// random draw is SampleRNG(seed, epoch, index)'s, whatever its batch.
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 4, Shuffle: true, Train: true, Seed: 7})
	order := l.Order(3)
	var seen []int
	for bi, b := range ref {
		if !slices.Equal(b.Shape, []int{b.Size(), 3}) || (bi < 5 && b.Size() != 4) || (bi == 5 && b.Size() != 3) {
			t.Fatalf("batch %d shape %v", bi, b.Shape)
		}
		for j := range b.Size() {
			i := int(b.Data[3*j])
			seen = append(seen, i)
			if b.Indices[j] != i || b.Labels[j] != int64(i%7) || b.IDs[j] != fmt.Sprint("s", i) || b.Data[3*j+2] != 1 {
				t.Fatalf("batch %d sample %d: index %d, label %d, id %s", bi, j, b.Indices[j], b.Labels[j], b.IDs[j])
			}
			if want := float32(SampleRNG(7, 3, i).Float64()); b.Data[3*j+1] != want {
				t.Fatalf("sample %d draw %v, want %v", i, b.Data[3*j+1], want)
			}
		}
	}
	if !slices.Equal(seen, order) {
		t.Fatalf("batches visit %v, Order(3) = %v", seen, order)
	}
	sorted := slices.Sorted(slices.Values(seen))
	for i, v := range sorted {
		if v != i {
			t.Fatalf("epoch visits %v, want a permutation of 0..22", sorted)
		}
	}
	if slices.Equal(order, l.Order(4)) || slices.Equal(order, sorted) {
		t.Error("epochs 3 and 4 have the same order, or the order is not shuffled")
	}
	// Without Shuffle the order is 0..n−1; DropLast drops the short batch.
	l, _ = NewLoader(ds, LoaderConfig{BatchSize: 5, DropLast: true, Workers: 2})
	bs := collect(t, l, 0)
	if len(bs) != 4 || l.Len() != 4 || bs[3].Indices[4] != 19 || bs[0].Indices[0] != 0 || bs[0].Data[2] != 0 {
		t.Fatalf("drop_last: %d batches, last indices %v", len(bs), bs[len(bs)-1].Indices)
	}
}

func TestLoaderWorkerError(t *testing.T) {
	l, err := NewLoader(&fakeDS{n: 20, failAt: 9}, LoaderConfig{BatchSize: 4, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	e := l.Epoch(0)
	defer e.Close()
	for range 2 {
		if _, err := e.Next(); err != nil {
			t.Fatalf("batch before the bad sample: %v", err)
		}
	}
	_, err = e.Next()
	wantErr(t, err, "load sample 9", "/data/clip_00009/00003.jpg")
	_, err2 := e.Next()
	if err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("after the error Next returned %v", err2)
	}
}

func TestLoaderCloseEarlyNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	l, _ := NewLoader(&fakeDS{n: 400, failAt: -1, delay: time.Millisecond}, LoaderConfig{BatchSize: 4, Workers: 4, Shuffle: true})
	for range 3 {
		e := l.Epoch(0)
		if _, err := e.Next(); err != nil {
			t.Fatal(err)
		}
		if runtime.NumGoroutine() < base+4 {
			t.Fatalf("%d goroutines while loading, want >= %d", runtime.NumGoroutine(), base+4)
		}
		e.Close()
		e.Close() // idempotent
		if _, err := e.Next(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	}
	// also after a complete epoch and after an error
	collect(t, l, 1)
	lf, _ := NewLoader(&fakeDS{n: 40, failAt: 2}, LoaderConfig{BatchSize: 4, Workers: 4})
	e := lf.Epoch(0)
	if _, err := e.Next(); err == nil {
		t.Fatal("no error")
	}
	e.Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func TestLoadBatch(t *testing.T) {
	ds := &fakeDS{n: 30, failAt: 17}
	idx := []int{3, 11, 5, 29, 0}
	a, err := LoadBatch(ds, idx, true, rand.New(rand.NewPCG(1, 2)), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadBatch(ds, idx, true, rand.New(rand.NewPCG(1, 2)), 4)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := LoadBatch(ds, idx, true, rand.New(rand.NewPCG(1, 3)), 4)
	if !slices.Equal(a.Data, b.Data) || !slices.Equal(a.Indices, idx) || slices.Equal(a.Data, c.Data) {
		t.Fatalf("LoadBatch not a function of the rng state: %v / %v / %v", a.Data, b.Data, c.Data)
	}
	if !slices.Equal(a.Labels, []int64{3, 4, 5, 1, 0}) || !slices.Equal(a.Shape, []int{5, 3}) {
		t.Fatalf("labels %v shape %v", a.Labels, a.Shape)
	}
	_, err = LoadBatch(ds, []int{1, 17}, false, nil, 2)
	wantErr(t, err, "load sample 17", "clip_00017")
}

// The loader on a real DFEW-layout tree: [B, 16, 3, H, W] batches.
func TestLoaderDFEW(t *testing.T) {
	f := newDFEWFixture(t)
	d, err := OpenDFEW(f.root, 1, "train", DFEWOptions{ClipOptions: ClipOptions{Transform: Transform{Size: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLoader(d, LoaderConfig{BatchSize: 3, Workers: 2, Shuffle: true, Train: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	bs := collect(t, l, 0)
	if len(bs) != 2 || !slices.Equal(bs[0].Shape, []int{3, 16, 3, 6, 6}) || len(bs[0].Data) != 3*16*3*36 || bs[1].Size() != 1 {
		t.Fatalf("%d batches, shape %v", len(bs), bs[0].Shape)
	}
	again := collect(t, l, 0)
	for i := range bs {
		if !slices.Equal(bs[i].Data, again[i].Data) || !slices.Equal(bs[i].IDs, again[i].IDs) {
			t.Fatalf("epoch 0 not repeatable (batch %d)", i)
		}
		for j, id := range bs[i].IDs {
			if k := slices.IndexFunc(d.Clips, func(c Clip) bool { return c.ID == id }); int64(d.Label(k)) != bs[i].Labels[j] {
				t.Errorf("clip %s label %d", id, bs[i].Labels[j])
			}
		}
	}
}
