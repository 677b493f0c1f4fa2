// Package synth is fer's embedded synthetic facial-expression benchmark: a
// procedural generator of cartoon-like faces showing the seven basic
// expressions, as still images or as onset→apex clips, with valence/arousal
// and Aff-Wild2 action-unit labels derived from the very drawing parameters.
// It needs no download, so `fercli demo` and the test suite run anywhere.
//
// Expressions are geometry, not colour: each class is a vector of FACS-like
// action controls (brow raise/lower, eye openness, cheek raise, nose wrinkle,
// lip-corner pull/depress, lip stretch/press, lips part, jaw drop; see
// apexActions for the table) scaled by a per-sample intensity and jittered.
// Every sample is a new random identity (face shape, skin, hair, background
// clutter, glasses, pose, lighting, resting face) so a classifier has to read
// the expression. Output is deterministic in (Config, Seed) and independent of
// scheduling.
package synth

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// DefaultSize is the image side used when Config.Size is 0.
const DefaultSize = 64

// DefaultNoise is the Gaussian pixel-noise standard deviation (on the [0,1]
// intensity scale) used when Config.Noise is 0.
const DefaultNoise = 0.03

// Limits checked by Generate.
const (
	MinSize   = 32
	MaxSize   = 512
	MaxFrames = 128
)

// Config describes a synthetic data set.
type Config struct {
	N      int   // number of samples, > 0
	Size   int   // image side in pixels; 0 means DefaultSize; otherwise MinSize..MaxSize
	Frames int   // 0: still images; 2..MaxFrames: clips of that many frames
	Seed   int64 // same Config and Seed give byte-identical samples
	// Noise is the Gaussian pixel-noise std on the [0,1] scale: 0 means
	// DefaultNoise, a negative value disables noise; at most 0.5.
	Noise float64
	// Classes optionally restricts the labels to a subset of class indices
	// (into Classes); nil means all seven. Sample.Label is always an index
	// into Classes, not into this subset.
	Classes []int
	// Balanced: every block of len(Classes) consecutive samples holds each
	// class exactly once (in shuffled order), so any prefix is balanced to
	// within one sample per class. Otherwise labels are drawn i.i.d. from
	// Weights.
	Balanced bool
	// Weights are optional i.i.d. class weights parallel to Classes (or to
	// the seven classes when Classes is nil); nil means uniform. Ignored when
	// Balanced.
	Weights []float64
	// Workers is the number of generating goroutines; 0 means GOMAXPROCS.
	// It never changes the output.
	Workers int
}

// FrameLabel holds the labels of one frame, derived from what was drawn.
type FrameLabel struct {
	Intensity float32       // expression intensity in [0,1] (0 for neutral)
	Valence   float32       // in [-1,1]
	Arousal   float32       // in [-1,1]
	AU        [NumAUs]uint8 // AUNames order, 1 = drawn activation > AUThreshold
}

// Sample is one generated image or clip.
type Sample struct {
	Label            int     // index into Classes
	Valence, Arousal float32 // labels of the apex (last) frame
	AU               [NumAUs]uint8
	Intensity        float32
	// Actions are the drawn action controls of the apex (last) frame, in
	// ActionNames order: an oracle feature vector for analyses.
	Actions [NumActions]float32
	// Frames holds the image (len 1) or the clip frames, all Size×Size.
	Frames []*image.RGBA
	// FrameLabels are per-frame labels, parallel to Frames.
	FrameLabels []FrameLabel
	// Onset and Apex are the clip frames where the intensity starts rising
	// and reaches its apex (held until the end); both 0 for still images.
	Onset, Apex int
}

// Image returns the apex (last) frame: the image of a still sample.
func (s *Sample) Image() *image.RGBA { return s.Frames[len(s.Frames)-1] }

// normalize validates cfg and fills defaults.
func (cfg Config) normalize() (Config, error) {
	if cfg.N <= 0 {
		return cfg, fmt.Errorf("synth: N = %d, want > 0", cfg.N)
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Size < MinSize || cfg.Size > MaxSize {
		return cfg, fmt.Errorf("synth: Size = %d, want %d..%d (or 0 for %d)", cfg.Size, MinSize, MaxSize, DefaultSize)
	}
	if cfg.Frames < 0 || cfg.Frames == 1 || cfg.Frames > MaxFrames {
		return cfg, fmt.Errorf("synth: Frames = %d, want 0 (still images) or 2..%d", cfg.Frames, MaxFrames)
	}
	switch {
	case math.IsNaN(cfg.Noise) || cfg.Noise > 0.5:
		return cfg, fmt.Errorf("synth: Noise = %v, want <= 0.5 (0 for default %v, negative for none)", cfg.Noise, DefaultNoise)
	case cfg.Noise == 0:
		cfg.Noise = DefaultNoise
	case cfg.Noise < 0:
		cfg.Noise = 0
	}
	if cfg.Classes == nil {
		cfg.Classes = make([]int, NumClasses)
		for i := range cfg.Classes {
			cfg.Classes[i] = i
		}
	} else {
		if len(cfg.Classes) == 0 {
			return cfg, errors.New("synth: Classes is empty (use nil for all classes)")
		}
		seen := make(map[int]bool)
		for _, c := range cfg.Classes {
			if c < 0 || c >= NumClasses {
				return cfg, fmt.Errorf("synth: class %d out of range 0..%d", c, NumClasses-1)
			}
			if seen[c] {
				return cfg, fmt.Errorf("synth: class %d (%s) listed twice in Classes", c, Classes[c])
			}
			seen[c] = true
		}
		cfg.Classes = append([]int(nil), cfg.Classes...)
	}
	if cfg.Weights != nil && !cfg.Balanced {
		if len(cfg.Weights) != len(cfg.Classes) {
			return cfg, fmt.Errorf("synth: %d Weights for %d classes", len(cfg.Weights), len(cfg.Classes))
		}
		sum := 0.0
		for i, w := range cfg.Weights {
			if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
				return cfg, fmt.Errorf("synth: Weights[%d] = %v, want finite and >= 0", i, w)
			}
			sum += w
		}
		if sum <= 0 {
			return cfg, errors.New("synth: Weights sum to 0")
		}
	}
	if cfg.Workers < 0 {
		return cfg, fmt.Errorf("synth: Workers = %d, want >= 0", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	return cfg, nil
}

// splitmix64 is a bijective 64-bit mixer used to derive independent RNG
// streams from (seed, index).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

const (
	streamSample = 0x5a17
	streamLabel  = 0x1abe1
)

func newRNG(seed int64, stream, index uint64) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(uint64(seed)^splitmix64(stream)), splitmix64(index)))
}

// labelOf returns the class of sample i.
func (cfg *Config) labelOf(i int) int {
	K := len(cfg.Classes)
	if cfg.Balanced {
		block := i / K
		perm := newRNG(cfg.Seed, streamLabel, uint64(block)).Perm(K)
		return cfg.Classes[perm[i%K]]
	}
	rng := newRNG(cfg.Seed, streamLabel, uint64(i))
	if cfg.Weights == nil {
		return cfg.Classes[rng.IntN(K)]
	}
	sum := 0.0
	for _, w := range cfg.Weights {
		sum += w
	}
	u := rng.Float64() * sum
	for j, w := range cfg.Weights {
		if u < w {
			return cfg.Classes[j]
		}
		u -= w
	}
	for j := K - 1; j >= 0; j-- { // rounding fallback: last class with weight
		if cfg.Weights[j] > 0 {
			return cfg.Classes[j]
		}
	}
	return cfg.Classes[K-1]
}

// Generate builds cfg.N samples. Sample i depends only on (cfg, i), so a
// prefix of a larger data set equals the smaller one (for i.i.d. labels and
// for Balanced alike) and the output does not depend on Workers.
func Generate(cfg Config) ([]Sample, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	out := make([]Sample, cfg.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(cfg.Workers, cfg.N)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.N {
					return
				}
				out[i] = generateOne(&cfg, i)
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// drawIntensity samples an apex intensity in [0.3, 1], skewed towards strong
// expressions (mean ≈ 0.77) but with a tail of subtle ones.
func drawIntensity(rng *rand.Rand) float64 {
	return 0.3 + 0.7*math.Sqrt(rng.Float64())
}

func smoothstep(x float64) float64 {
	x = clamp(x, 0, 1)
	return x * x * (3 - 2*x)
}

func generateOne(cfg *Config, i int) Sample {
	label := cfg.labelOf(i)
	rng := newRNG(cfg.Seed, streamSample, uint64(i))
	id := newIdentity(rng)
	prof := sampleProfile(label, rng)
	apex := drawIntensity(rng)

	T := cfg.Frames
	s := Sample{Label: label}
	var intens []float64
	if T == 0 {
		intens = []float64{apex}
	} else {
		// Onset in the first quarter, ramp over a quarter to three quarters
		// of the clip, then hold the apex.
		start := 0.1 * rng.Float64()
		s.Onset = rng.IntN(T/4 + 1)
		ramp := max(1, T/4+rng.IntN(T/2+1))
		s.Apex = min(T-1, s.Onset+ramp)
		intens = make([]float64, T)
		for t := range intens {
			switch {
			case t <= s.Onset:
				intens[t] = start
			case t >= s.Apex:
				intens[t] = apex
			default:
				f := smoothstep(float64(t-s.Onset) / float64(s.Apex-s.Onset))
				intens[t] = start + (apex-start)*f
			}
		}
	}
	s.Frames = make([]*image.RGBA, len(intens))
	s.FrameLabels = make([]FrameLabel, len(intens))
	var acts [NumActions]float64
	for t, it := range intens {
		acts = prof.actionsAt(it)
		s.Frames[t] = render(cfg.Size, id, &acts, id.poseAt(t, len(intens), rng), cfg.Noise, rng)
		s.FrameLabels[t] = frameLabels(label, it, &prof, &acts)
	}
	last := s.FrameLabels[len(intens)-1]
	s.Valence, s.Arousal, s.AU, s.Intensity = last.Valence, last.Arousal, last.AU, last.Intensity
	for k, v := range acts {
		s.Actions[k] = float32(v)
	}
	return s
}

// Split names the three disjoint data-set splits.
type Split int

// The splits; each draws from its own seed stream.
const (
	Train Split = iota
	Val
	Test
)

// SplitSeed derives the seed of split sp from a base seed. The three derived
// seeds differ from each other and from the base seed, so GenerateSplits'
// splits share no sample stream.
func SplitSeed(seed int64, sp Split) int64 {
	return int64(splitmix64(uint64(seed) ^ splitmix64(0x5b1170+uint64(sp))))
}

// GenerateSplits generates train/val/test sets of the given sizes from cfg
// (whose N is ignored) with seeds SplitSeed(cfg.Seed, Train/Val/Test).
// A size of 0 yields a nil split.
func GenerateSplits(cfg Config, nTrain, nVal, nTest int) (train, val, test []Sample, err error) {
	sizes := [3]int{nTrain, nVal, nTest}
	var outs [3][]Sample
	for sp, n := range sizes {
		if n < 0 {
			return nil, nil, nil, fmt.Errorf("synth: split %d size %d < 0", sp, n)
		}
		if n == 0 {
			continue
		}
		c := cfg
		c.N = n
		c.Seed = SplitSeed(cfg.Seed, Split(sp))
		outs[sp], err = Generate(c)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("synth: split %d: %w", sp, err)
		}
	}
	return outs[0], outs[1], outs[2], nil
}
