package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Stats summarises per-step times in seconds.
type Stats struct {
	N      int     `json:"n"`
	Median float64 `json:"median_s"`
	Mean   float64 `json:"mean_s"`
	Min    float64 `json:"min_s"`
	Max    float64 `json:"max_s"`
	// P10 and P90 are the 10th and 90th percentiles (linear
	// interpolation between order statistics, numpy's default).
	P10 float64 `json:"p10_s"`
	P90 float64 `json:"p90_s"`
}

// Summarize computes the statistics of xs (seconds). NaN values are an
// error: they mean a timer was misused. An empty slice gives N = 0 and
// zeros.
func Summarize(xs []float64) (Stats, error) {
	if len(xs) == 0 {
		return Stats{}, nil
	}
	s := slices.Clone(xs)
	for i, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Stats{}, fmt.Errorf("stats: value %d is %v", i, v)
		}
	}
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return Stats{
		N:      len(s),
		Median: quantileSorted(s, 0.5),
		Mean:   sum / float64(len(s)),
		Min:    s[0],
		Max:    s[len(s)-1],
		P10:    quantileSorted(s, 0.1),
		P90:    quantileSorted(s, 0.9),
	}, nil
}

// Median is the middle value of xs (the mean of the two middle values
// for an even count); NaN for an empty slice.
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Quantile is the q-quantile of xs (0 <= q <= 1) with linear
// interpolation between the order statistics at positions q·(n−1)
// (numpy.quantile's default "linear" method); NaN for an empty slice or q
// outside [0, 1].
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantileSorted(s, q)
}

func quantileSorted(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	if lo == hi {
		return s[lo]
	}
	return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
}

// Throughput is items per second at the median step time (0 when the
// median is not positive).
func (s Stats) Throughput(itemsPerStep int) float64 {
	if !(s.Median > 0) {
		return 0
	}
	return float64(itemsPerStep) / s.Median
}

// Rate is items per second at the mean step time: the sustained rate of
// a pipeline whose buffers hand out some batches at once (0 when the mean
// is not positive).
func (s Stats) Rate(itemsPerStep int) float64 {
	if !(s.Mean > 0) {
		return 0
	}
	return float64(itemsPerStep) / s.Mean
}

// RatioMean is a/b of two means; 0 when either is missing.
func RatioMean(a, b Stats) float64 {
	if a.N == 0 || b.N == 0 || !(b.Mean > 0) {
		return 0
	}
	return a.Mean / b.Mean
}

// Ratio is a/b of two medians (fer time / PyTorch time: below 1 means
// fer is faster); 0 when either is missing (JSON has no NaN).
func Ratio(a, b Stats) float64 {
	if a.N == 0 || b.N == 0 || !(b.Median > 0) {
		return 0
	}
	return a.Median / b.Median
}

// Seconds converts durations to seconds.
func Seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// Time runs f warmup times untimed, then steps times, and returns the
// duration of each timed call in seconds. sync, when not nil, runs after
// each call inside the timed region (a CUDA synchronisation: kernels are
// asynchronous, so without it a step would be timed at launch). The first
// error stops the run.
func Time(warmup, steps int, f func() error, sync func() error) ([]float64, error) {
	for i := 0; i < warmup; i++ {
		if err := f(); err != nil {
			return nil, fmt.Errorf("warm-up step %d: %w", i+1, err)
		}
		if sync != nil {
			if err := sync(); err != nil {
				return nil, err
			}
		}
	}
	out := make([]float64, 0, steps)
	for i := 0; i < steps; i++ {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		if sync != nil {
			if err := sync(); err != nil {
				return nil, err
			}
		}
		out = append(out, time.Since(t0).Seconds())
	}
	return out, nil
}

// Chunks splits n steps into rounds nearly equal parts (the first ones
// one larger), for interleaving two frameworks: [10, 3] → [4 3 3].
// rounds is clamped to [1, n]; n = 0 gives nil.
func Chunks(n, rounds int) []int {
	if n <= 0 {
		return nil
	}
	rounds = max(1, min(rounds, n))
	out := make([]int, rounds)
	for i := range out {
		out[i] = n / rounds
		if i < n%rounds {
			out[i]++
		}
	}
	return out
}
