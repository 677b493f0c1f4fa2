package bench

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*(1+math.Abs(b)) }

func TestSummarize(t *testing.T) {
	s, err := Summarize([]float64{0.4, 0.1, 0.3, 0.2, 1.0})
	if err != nil {
		t.Fatal(err)
	}
	// sorted 0.1 0.2 0.3 0.4 1.0: median 0.3, mean 2.0/5; P10 at position
	// 0.4 → 0.1 + 0.4·0.1; P90 at 3.6 → 0.4 + 0.6·0.6.
	want := Stats{N: 5, Median: 0.3, Mean: 0.4, Min: 0.1, Max: 1.0, P10: 0.14, P90: 0.76}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"median", s.Median, want.Median}, {"mean", s.Mean, want.Mean}, {"min", s.Min, want.Min},
		{"max", s.Max, want.Max}, {"p10", s.P10, want.P10}, {"p90", s.P90, want.P90},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.N != 5 {
		t.Errorf("N = %d", s.N)
	}
	if e, err := Summarize(nil); err != nil || e.N != 0 || e.Median != 0 {
		t.Errorf("empty: %+v, %v", e, err)
	}
	if _, err := Summarize([]float64{1, math.NaN()}); err == nil {
		t.Errorf("NaN accepted")
	}
}

func TestMedianAndQuantile(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("odd median = %v", m)
	}
	if m := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("even median = %v", m)
	}
	xs := []float64{1, 2, 3, 4}
	// numpy.quantile([1,2,3,4], [0, .1, .25, 1]) = 1, 1.3, 1.75, 4
	for q, want := range map[float64]float64{0: 1, 0.1: 1.3, 0.25: 1.75, 1: 4} {
		if got := Quantile(xs, q); !near(got, want) {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Quantile(xs, 1.5)) {
		t.Errorf("empty input or q outside [0,1] should give NaN")
	}
	if !slices.Equal(xs, []float64{1, 2, 3, 4}) {
		t.Errorf("Quantile reordered its input")
	}
}

func TestRatioAndThroughput(t *testing.T) {
	a := Stats{N: 3, Median: 0.5}
	b := Stats{N: 3, Median: 0.25}
	if r := Ratio(a, b); r != 2 {
		t.Errorf("ratio = %v, want 2", r)
	}
	if r := Ratio(a, Stats{}); r != 0 {
		t.Errorf("ratio without PyTorch = %v, want 0", r)
	}
	if th := a.Throughput(16); th != 32 {
		t.Errorf("throughput = %v, want 32", th)
	}
	if th := (Stats{}).Throughput(16); th != 0 {
		t.Errorf("throughput of nothing = %v", th)
	}
	if fmtRatio(0) != "–" || fmtRatio(0.876) != "0.88" {
		t.Errorf("fmtRatio: %q %q", fmtRatio(0), fmtRatio(0.876))
	}
}

func TestChunks(t *testing.T) {
	for _, c := range []struct {
		n, r int
		want []int
	}{
		{10, 3, []int{4, 3, 3}}, {10, 5, []int{2, 2, 2, 2, 2}}, {3, 5, []int{1, 1, 1}},
		{7, 1, []int{7}}, {7, 0, []int{7}}, {0, 3, nil},
	} {
		if got := Chunks(c.n, c.r); !slices.Equal(got, c.want) {
			t.Errorf("Chunks(%d, %d) = %v, want %v", c.n, c.r, got, c.want)
		}
	}
}

func TestTimeCountsCallsAndStopsOnError(t *testing.T) {
	calls, syncs := 0, 0
	ts, err := Time(2, 3, func() error { calls++; return nil }, func() error { syncs++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 5 || syncs != 5 || len(ts) != 3 {
		t.Errorf("calls %d, syncs %d, times %d: want 5, 5, 3", calls, syncs, len(ts))
	}
	for _, v := range ts {
		if v < 0 {
			t.Errorf("negative duration %v", v)
		}
	}
	boom := errors.New("boom")
	calls = 0
	_, err = Time(1, 5, func() error {
		calls++
		if calls == 3 {
			return boom
		}
		return nil
	}, nil)
	if !errors.Is(err, boom) || calls != 3 {
		t.Errorf("error %v after %d calls, want boom after 3", err, calls)
	}
	if got := Seconds([]time.Duration{1500 * time.Millisecond}); got[0] != 1.5 {
		t.Errorf("Seconds = %v", got)
	}
}

func TestInterleaveAlternatesAndWarms(t *testing.T) {
	var log []string
	rec := func(name string, v float64) side {
		return func(warm, n int) ([]float64, error) {
			log = append(log, name+":"+string(rune('0'+warm))+"/"+string(rune('0'+n)))
			out := make([]float64, n)
			for i := range out {
				out[i] = v
			}
			return out, nil
		}
	}
	times, err := interleave(5, 3, 3, 1, rec("fer", 1), rec("pt", 2))
	if err != nil {
		t.Fatal(err)
	}
	f, p := times[0], times[1]
	want := []string{"fer:3/2", "pt:3/2", "pt:1/2", "fer:1/2", "fer:1/1", "pt:1/1"}
	if !slices.Equal(log, want) {
		t.Errorf("call order %v, want %v", log, want)
	}
	if len(f) != 5 || len(p) != 5 || f[0] != 1 || p[0] != 2 {
		t.Errorf("collected fer %v, pytorch %v", f, p)
	}
	log = nil
	times, err = interleave(2, 2, 0, 1, rec("fer", 1))
	if err != nil || len(times) != 1 || len(times[0]) != 2 || !slices.Equal(log, []string{"fer:0/1", "fer:1/1"}) {
		t.Errorf("fer only: %v %v %v", times, err, log)
	}
	// three sides: each round starts one further along
	log = nil
	times, err = interleave(3, 3, 2, 1, rec("fer", 1), rec("pt", 2), rec("omp", 3))
	want = []string{"fer:2/1", "pt:2/1", "omp:2/1", "pt:1/1", "omp:1/1", "fer:1/1", "omp:1/1", "fer:1/1", "pt:1/1"}
	if err != nil || !slices.Equal(log, want) || len(times[2]) != 3 || times[2][0] != 3 {
		t.Errorf("three sides: %v %v, order %v, want %v", times, err, log, want)
	}
}

func TestRateUsesMean(t *testing.T) {
	s := Stats{N: 4, Median: 0.001, Mean: 0.5}
	if r := s.Rate(10); r != 20 {
		t.Errorf("rate %v, want 10/0.5 = 20", r)
	}
	if r := RatioMean(Stats{N: 1, Mean: 1}, Stats{N: 1, Mean: 4}); r != 0.25 {
		t.Errorf("ratio of means %v", r)
	}
	p := PhaseResult{Phase: PhaseData, Items: 10, Fer: s, Torch: Stats{N: 4, Median: 1, Mean: 2}}
	if p.Throughput(false) != 20 || p.Throughput(true) != 5 {
		t.Errorf("data throughput %v / %v, want mean-based 20 / 5", p.Throughput(false), p.Throughput(true))
	}
	p.Phase = PhaseTrain
	if p.Throughput(false) != 10000 {
		t.Errorf("train throughput %v, want median-based", p.Throughput(false))
	}
}
