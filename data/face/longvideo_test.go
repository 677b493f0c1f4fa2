package face

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
)

// rssMB is the process's resident set size.
func rssMB(t *testing.T) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// loopedMegamind writes Megamind.avi repeated to at least n frames
// (stream copy: no re-encoding).
func loopedMegamind(t *testing.T, n int) string {
	t.Helper()
	src := opencvData(t, "Megamind.avi")
	out := filepath.Join(t.TempDir(), "long.avi")
	loops := (n+269)/270 - 1
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", strconv.Itoa(loops),
		"-i", src, "-map", "0:v", "-c", "copy", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// TestStreamLongVideo: detection, landmarks and ArcFace crops over
// Megamind.avi looped (300 frames; FER_LONG_VIDEO=1: 3000) on worker
// goroutines: every frame arrives once, in order, with increasing
// times; memory stays flat (RSS at the end within 40 MB of RSS after the
// first quarter) and the time per frame does not grow with the position
// (median of the last quarter within 3× the first quarter's: loose,
// because the box is shared with other jobs; the numbers are logged).
func TestStreamLongVideo(t *testing.T) {
	n := 300
	if os.Getenv("FER_LONG_VIDEO") != "" {
		n = 3000
	}
	path := loopedMegamind(t, n)
	r, err := media.Open(path, media.Options{MaxFrames: n})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rssQ1 float64
	var gaps []time.Duration
	last := time.Now()
	faces, next := 0, 0
	prevT := -1.0
	err = Stream(r, StreamOptions{NewWorker: func() (Worker, error) {
		d, err := NewDetector(Options{MaxSide: 360})
		if err != nil {
			return nil, err
		}
		c := &Cropper{Style: StyleArcFace}
		return func(j *Job) error {
			fs, err := d.Detect(&j.Frame.RGB)
			if err != nil {
				return err
			}
			j.Faces = fs
			for len(j.Crops) < len(fs) {
				j.Crops = append(j.Crops, imaging.RGB{})
			}
			for i := range fs {
				if err := c.Crop(&j.Frame.RGB, &fs[i], &j.Crops[i]); err != nil {
					return err
				}
			}
			return nil
		}, nil
	}}, func(j *Job) error {
		if j.Frame.Index != next || !(j.Frame.Time > prevT) {
			return fmt.Errorf("frame %d at %.3f s after frame %d at %.3f s", j.Frame.Index, j.Frame.Time, next-1, prevT)
		}
		next++
		prevT = j.Frame.Time
		faces += len(j.Faces)
		now := time.Now()
		gaps = append(gaps, now.Sub(last))
		last = now
		if next == n/4 {
			runtime.GC()
			rssQ1 = rssMB(t)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	rssEnd := rssMB(t)
	if next != n {
		t.Fatalf("%d frames, want %d", next, n)
	}
	q := n / 4
	first := slices.Clone(gaps[1:q])
	lastQ := slices.Clone(gaps[n-q:])
	slices.Sort(first)
	slices.Sort(lastQ)
	m1, m4 := first[len(first)/2], lastQ[len(lastQ)/2]
	t.Logf("%d frames, %d faces; RSS %.1f MB after %d frames, %.1f MB at the end; median %.1f ms/frame in the first quarter, %.1f ms in the last",
		n, faces, rssQ1, q, rssEnd, float64(m1.Microseconds())/1000, float64(m4.Microseconds())/1000)
	if rssEnd > rssQ1+40 {
		t.Fatalf("RSS grew from %.1f MB to %.1f MB", rssQ1, rssEnd)
	}
	if m4 > 3*m1 {
		t.Fatalf("time per frame grew from %v to %v", m1, m4)
	}
	if faces < n*3/4 { // MaxSide 360 halves the faces: some fall below the 80-px window
		t.Fatalf("%d faces in %d frames", faces, n)
	}
}
