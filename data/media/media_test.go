package media

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

const (
	blk   = 16 // side of one bit's block
	nbits = 10 // frame counter bits
)

// counterFrame draws frame i with its number burned in: bit b of i is
// the block at column b of the first block row (white = 1), the second
// row holds the complement (a check), the rest is a moving gradient so
// that the encoder has real motion to code.
func counterFrame(i, w, h int) *imaging.RGB {
	f := &imaging.RGB{W: w, H: h, Pix: make([]byte, 3*w*h)}
	for y := range h {
		for x := range w {
			v := byte((x + 3*i + y/2) % 200)
			if y < 2*blk && x < nbits*blk {
				bit := (i >> (x / blk)) & 1
				if y >= blk {
					bit ^= 1
				}
				v = byte(16 + 223*bit)
			}
			p := 3 * (y*w + x)
			f.Pix[p], f.Pix[p+1], f.Pix[p+2] = v, v, v
		}
	}
	return f
}

// readCounter reads the number back; ok is false when a block is
// ambiguous or the check row disagrees.
func readCounter(f *imaging.RGB) (int, bool) {
	mean := func(bx, by int) float64 {
		s := 0.0
		for y := by*blk + 4; y < (by+1)*blk-4; y++ {
			for x := bx*blk + 4; x < (bx+1)*blk-4; x++ {
				s += float64(f.Pix[3*(y*f.W+x)])
			}
		}
		return s / float64((blk-8)*(blk-8))
	}
	n := 0
	for b := range nbits {
		v, c := mean(b, 0) > 128, mean(b, 1) > 128
		if v == c {
			return 0, false
		}
		if v {
			n |= 1 << b
		}
	}
	return n, true
}

// writeCounterVideo encodes n counter frames at 30000/1001 fps (H.264
// with B-frames: decode order differs from presentation order).
func writeCounterVideo(t *testing.T, path string, n int) {
	t.Helper()
	const w, h = 176, 64
	wr, err := Create(path, w, h, 30000.0/1001)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := wr.Write(counterFrame(i, w, h)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderExactFrames: every decoded frame carries the number burned
// into its pixels and the time number·1001/30000, with and without
// Every, and MaxFrames stops early.
func TestReaderExactFrames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter.mp4")
	const n = 150
	writeCounterVideo(t, path, n)
	info, err := Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.W != 176 || info.H != 64 || math.Abs(info.FPS-30000.0/1001) > 1e-9 || info.Frames != n {
		t.Fatalf("probe: %+v", info)
	}
	for _, o := range []Options{{}, {Every: 3}, {Every: 7, MaxFrames: 5}} {
		r, err := Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		k := 0
		for {
			err := r.Next(&f)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			every := max(o.Every, 1)
			if f.Index != k*every {
				t.Fatalf("%+v: frame %d has index %d", o, k, f.Index)
			}
			got, ok := readCounter(&f.RGB)
			if !ok || got != f.Index {
				t.Fatalf("%+v: frame index %d shows counter %d (readable %v)", o, f.Index, got, ok)
			}
			if want := float64(f.Index) * 1001 / 30000; math.Abs(f.Time-want) > 1e-4 {
				t.Fatalf("%+v: frame %d at %.6f s, want %.6f", o, f.Index, f.Time, want)
			}
			k++
		}
		r.Close()
		want := (n + max(o.Every, 1) - 1) / max(o.Every, 1)
		if o.MaxFrames > 0 {
			want = min(want, o.MaxFrames)
		}
		if k != want {
			t.Fatalf("%+v: %d frames, want %d", o, k, want)
		}
	}
}

// TestReaderErrors: missing, empty, non-video and truncated files are
// errors naming the file; closing a reader half-way ends ffmpeg.
func TestReaderErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.mp4")
	os.WriteFile(junk, []byte(strings.Repeat("not a video ", 1000)), 0o644)
	empty := filepath.Join(dir, "empty.avi")
	os.WriteFile(empty, nil, 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.mp4"), junk, empty, dir} {
		_, err := Open(p, Options{})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %v", p, err)
		}
	}
	// a video cut in the middle: the frames before the cut, then an
	// error or EOF, never a hang or a torn frame
	good := filepath.Join(dir, "good.avi")
	wr, err := Create(good, 64, 48, 25)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := wr.Write(counterFrame(i, 64, 48)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	cut := filepath.Join(dir, "cut.avi")
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	r, err := Open(cut, Options{})
	if err != nil {
		if !strings.Contains(err.Error(), cut) {
			t.Fatalf("cut: %v", err)
		}
		return
	}
	defer r.Close()
	var f Frame
	n := 0
	for {
		err := r.Next(&f)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !strings.Contains(err.Error(), cut) {
				t.Fatalf("cut: %v", err)
			}
			break
		}
		n++
	}
	if n == 0 || n >= 60 {
		t.Fatalf("cut video gave %d frames", n)
	}
	// Close after a partial read
	r2, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Next(&f); err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Next(&f); err == nil {
		t.Fatal("Next after Close")
	}
}
