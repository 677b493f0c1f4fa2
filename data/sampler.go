package data

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// SegmentSampler picks which frames of an n-frame clip form a
// NumSegments·Duration-frame input, as Former-DFER's VideoDataset does
// (dataloader/dataset_DFEW.py, _get_train_indices / _get_test_indices /
// get), which STT's closest public code (the LOGO-Former port) copies:
// the clip is cut into NumSegments segments, one start offset is chosen
// per segment, and Duration consecutive frames are taken from each start.
// With the defaults (8 segments × 2 frames) that is the 16-frame protocol
// of DFEW/AFEW papers.
type SegmentSampler struct {
	NumSegments int // 8
	Duration    int // 2
}

// DefaultSegmentSampler is Former-DFER's 8 × 2 = 16-frame sampler.
var DefaultSegmentSampler = SegmentSampler{NumSegments: 8, Duration: 2}

// Frames is the number of frame indices Indices returns.
func (s SegmentSampler) Frames() int { return s.NumSegments * s.Duration }

func (s SegmentSampler) check() error {
	if s.NumSegments < 1 || s.Duration < 1 {
		return fmt.Errorf("segment sampler: num_segments = %d, duration = %d, want both >= 1", s.NumSegments, s.Duration)
	}
	return nil
}

// Offsets returns the start frame of each segment for an n-frame clip.
//
// Training (train = true), with avg = (n − Duration + 1) / NumSegments
// (integer division):
//   - avg > 0: offset[k] = k·avg + rng.IntN(avg) (a random frame inside
//     segment k);
//   - else, if n > NumSegments: NumSegments sorted random starts in
//     [0, n − Duration] (with Duration = 2 this branch cannot be reached:
//     n > 8 already makes avg ≥ 1; it matters for Duration > 2);
//   - else all zeros.
//
// Test: if n > NumSegments + Duration − 1, with tick = (n − Duration + 1) /
// NumSegments (real division), offset[k] = int(tick/2 + tick·k), the
// centre of segment k; else all zeros.
func (s SegmentSampler) Offsets(n int, train bool, rng *rand.Rand) []int {
	off := make([]int, s.NumSegments)
	if train {
		avg := (n - s.Duration + 1) / s.NumSegments
		switch {
		case avg > 0:
			for k := range off {
				off[k] = k*avg + rng.IntN(avg)
			}
		case n > s.NumSegments:
			for k := range off {
				off[k] = rng.IntN(n - s.Duration + 1)
			}
			sort.Ints(off)
		}
		return off
	}
	if n > s.NumSegments+s.Duration-1 {
		tick := float64(n-s.Duration+1) / float64(s.NumSegments)
		for k := range off {
			off[k] = int(tick/2 + tick*float64(k))
		}
	}
	return off
}

// Indices returns the Frames() frame indices (0-based, in [0, n−1]) for an
// n-frame clip: Duration consecutive frames from each segment's offset,
// where the index stops advancing at the last frame (Former-DFER's
// `if p < num_frames - 1: p += 1`), so a clip shorter than the input
// repeats frames instead of failing. n must be >= 1.
//
// Former-DFER and the LOGO-Former port never reach the short-clip
// branches on DFEW/AFEW: their list loaders drop clips with fewer than 16
// frames (`int(item[1]) >= 16`). ClipOptions.MinFrames = 16 reproduces
// that filter; the default 0 keeps every clip and relies on the zero
// offsets and the clamp above.
func (s SegmentSampler) Indices(n int, train bool, rng *rand.Rand) []int {
	idx := make([]int, 0, s.Frames())
	for _, p := range s.Offsets(n, train, rng) {
		for range s.Duration {
			idx = append(idx, p)
			if p < n-1 {
				p++
			}
		}
	}
	return idx
}
