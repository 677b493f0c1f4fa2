package face

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/data/media"
)

// countSource yields n tiny frames; frame i's first byte is i mod 256.
type countSource struct {
	n, i int
	err  error // returned instead of io.EOF at the end
}

func (s *countSource) Next(f *media.Frame) error {
	if s.i == s.n {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	if cap(f.RGB.Pix) < 3 {
		f.RGB.Pix = make([]byte, 3)
	}
	f.RGB.Pix, f.RGB.W, f.RGB.H = f.RGB.Pix[:3], 1, 1
	f.RGB.Pix[0] = byte(s.i)
	f.Index, f.Time = s.i, float64(s.i)/10
	s.i++
	return nil
}

// TestStreamOrder: with workers that take random times the consumer still
// sees every frame once, in order, with the worker's result; the number of
// distinct job buffers is bounded by Depth.
func TestStreamOrder(t *testing.T) {
	const n = 300
	seen := 0
	bufs := map[*Job]bool{}
	err := Stream(&countSource{n: n}, StreamOptions{Workers: 4, Depth: 6, NewWorker: func() (Worker, error) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		return func(j *Job) error {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			j.Data = int(j.Frame.RGB.Pix[0]) * 2
			return nil
		}, nil
	}}, func(j *Job) error {
		if j.Seq != seen || j.Frame.Index != seen || j.Data.(int) != (seen%256)*2 {
			return fmt.Errorf("got frame %d (seq %d, data %v), want %d", j.Frame.Index, j.Seq, j.Data, seen)
		}
		bufs[j] = true
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != n || len(bufs) > 6 {
		t.Fatalf("%d frames, %d buffers", seen, len(bufs))
	}
}

// TestStreamErrors: a worker's error names the frame and stops the
// stream; a consumer's error is returned; a source error comes after the
// frames before it were consumed.
func TestStreamErrors(t *testing.T) {
	boom := errors.New("boom")
	w := func(fail int) func() (Worker, error) {
		return func() (Worker, error) {
			return func(j *Job) error {
				if j.Frame.Index == fail {
					return boom
				}
				return nil
			}, nil
		}
	}
	seen := 0
	err := Stream(&countSource{n: 100}, StreamOptions{Workers: 3, NewWorker: w(40)}, func(j *Job) error { seen++; return nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "frame 40") || seen != 40 {
		t.Fatalf("worker error: %v after %d frames", err, seen)
	}
	err = Stream(&countSource{n: 100}, StreamOptions{Workers: 2, NewWorker: w(-1)}, func(j *Job) error {
		if j.Seq == 7 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("consumer error: %v", err)
	}
	seen = 0
	err = Stream(&countSource{n: 25, err: boom}, StreamOptions{Workers: 2, NewWorker: w(-1)}, func(j *Job) error { seen++; return nil })
	if !errors.Is(err, boom) || seen != 25 {
		t.Fatalf("source error: %v after %d frames", err, seen)
	}
	err = Stream(&countSource{n: 5}, StreamOptions{Workers: 2, NewWorker: func() (Worker, error) { return nil, boom }}, func(j *Job) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("worker construction error: %v", err)
	}
}
