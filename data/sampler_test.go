package data

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Hand-computed with Former-DFER's _get_test_indices / get (8 segments ×
// 2 frames): tick = (n − 1)/8, offset = int(tick/2 + tick·x), then two
// consecutive frames clamped at n − 1.
func TestSegmentSamplerTest(t *testing.T) {
	cases := map[int][]int{
		// n = 5 <= 9: zero offsets; 0,1 clamped to 0..4
		5: {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
		// tick = 1.875: offsets 0,2,4,...,14
		16: {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		// tick = 4.875: int(2.4375 + 4.875x) = 2,7,12,17,21,26,31,36
		40: {2, 3, 7, 8, 12, 13, 17, 18, 21, 22, 26, 27, 31, 32, 36, 37},
		// n = 1: everything clamps to frame 0
		1: {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		// n = 10 > 9: tick = 1.125: int(0.5625 + 1.125x) = 0,1,2,3,5,6,7,8
		10: {0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 8, 8, 9},
	}
	for n, want := range cases {
		if got := DefaultSegmentSampler.Indices(n, false, nil); !slices.Equal(got, want) {
			t.Errorf("test n=%d: got %v, want %v", n, got, want)
		}
	}
}

func TestSegmentSamplerTrain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// n = 5: average_duration = 4//8 = 0 and n <= 8: zero offsets.
	if got, want := DefaultSegmentSampler.Indices(5, true, rng), []int{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("train n=5: got %v, want %v", got, want)
	}
	// n = 16: average_duration = 15//8 = 1, randint(1) = 0: offsets 0..7.
	if got, want := DefaultSegmentSampler.Indices(16, true, rng), []int{0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8}; !slices.Equal(got, want) {
		t.Errorf("train n=16: got %v, want %v", got, want)
	}
	// n = 40: average_duration = 39//8 = 4: offset k ∈ [4k, 4k+3], and
	// over many draws every one of the 4 values is taken.
	seen := [8][4]int{}
	for range 400 {
		idx := DefaultSegmentSampler.Indices(40, true, rng)
		for k := range 8 {
			a, b := idx[2*k], idx[2*k+1]
			if a < 4*k || a > 4*k+3 || b != a+1 {
				t.Fatalf("train n=40: segment %d frames %d,%d, want a ∈ [%d,%d] and a+1", k, a, b, 4*k, 4*k+3)
			}
			seen[k][a-4*k]++
		}
	}
	for k := range 8 {
		for v, c := range seen[k] {
			if c < 60 { // expected 100 each
				t.Errorf("train n=40: segment %d offset +%d drawn %d/400 times, want ~100", k, v, c)
			}
		}
	}
	// Same generator state → same indices.
	a := DefaultSegmentSampler.Indices(40, true, rand.New(rand.NewPCG(7, 7)))
	b := DefaultSegmentSampler.Indices(40, true, rand.New(rand.NewPCG(7, 7)))
	if !slices.Equal(a, b) {
		t.Errorf("same seed gave %v and %v", a, b)
	}
}

// With 3-frame segments the "sorted random" fallback of
// _get_train_indices is reachable: n = 9 gives average_duration =
// 7//8 = 0 and n > 8, so offsets are 8 sorted draws from [0, 6].
func TestSegmentSamplerSortedFallback(t *testing.T) {
	s := SegmentSampler{NumSegments: 8, Duration: 3}
	rng := rand.New(rand.NewPCG(3, 4))
	distinct := map[int]bool{}
	for range 50 {
		off := s.Offsets(9, true, rng)
		if !slices.IsSorted(off) {
			t.Fatalf("offsets %v not sorted", off)
		}
		for _, o := range off {
			if o < 0 || o > 6 {
				t.Fatalf("offset %d outside [0, 6]", o)
			}
			distinct[o] = true
		}
		idx := s.Indices(9, true, rng)
		if len(idx) != 24 || slices.Max(idx) > 8 {
			t.Fatalf("indices %v: want 24 values in [0, 8]", idx)
		}
	}
	if len(distinct) != 7 {
		t.Errorf("fallback offsets took %d distinct values, want all 7", len(distinct))
	}
}
