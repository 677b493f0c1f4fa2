package data

import (
	"fmt"
	"math/rand/v2"
)

// Dataset is one split of a labelled data set (clips or still images) as
// the Loader sees it. Implementations must be safe for concurrent Load
// calls (the loader calls Load from several goroutines) and must take all
// randomness from rng, so that a sample is a pure function of (dataset,
// index, rng seed, train).
type Dataset interface {
	// Len is the number of samples.
	Len() int
	// Label is the class index of sample i (0-based), without loading it.
	Label(i int) int
	// Load decodes sample i. train selects training-time frame sampling
	// and augmentation; rng drives every random choice.
	Load(i int, rng *rand.Rand, train bool) (Sample, error)
}

// Described is optionally implemented by a Dataset that can say what it
// holds without loading anything.
type Described interface {
	// Classes names the label classes (index = label).
	Classes() []string
	// SampleShape is the shape of one sample's Data, e.g. [16 3 112 112]
	// for a clip or [3 112 112] for an image.
	SampleShape() []int
	// ID names sample i (clip id, image file name) for messages.
	ID(i int) string
}

// Sample is one decoded sample.
type Sample struct {
	// ID names the sample: the clip id or the image file name.
	ID string
	// Label is the class index.
	Label int
	// Data holds the pixels as float32, row-major with shape Shape: a
	// clip is [T, C, H, W], an image [C, H, W].
	Data []float32
	// Shape is the shape of Data.
	Shape []int
	// Extra holds further named arrays of the sample (a second model
	// input, per-frame targets: Aff-Wild2's "va", "au", "label",
	// "audio"); every sample of a batch must have the same names and
	// shapes. Nil for single-input, single-label data sets.
	Extra map[string]Array
}

// Array is a float32 or int64 array with its shape (one of F32/I64 set).
type Array struct {
	F32   []float32
	I64   []int64
	Shape []int
}

// Len is the number of elements.
func (a Array) Len() int {
	if a.I64 != nil {
		return len(a.I64)
	}
	return len(a.F32)
}

// DFEWClasses are the 7 DFEW (and AFEW, in Former-DFER's order) classes:
// label file value v ∈ 1..7 is class v−1.
var DFEWClasses = []string{"happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"}

// Normalize is a per-channel (x − Mean)/Std applied after scaling pixels to
// [0, 1]. Former-DFER uses none (it only divides by 255); torchvision
// ImageNet statistics are ImageNetNormalize.
type Normalize struct {
	Mean, Std [3]float32
}

// ImageNetNormalize is torchvision's ImageNet mean and std.
var ImageNetNormalize = &Normalize{
	Mean: [3]float32{0.485, 0.456, 0.406},
	Std:  [3]float32{0.229, 0.224, 0.225},
}

func (n *Normalize) check() error {
	if n == nil {
		return nil
	}
	for c, s := range n.Std {
		if !(s > 0) {
			return fmt.Errorf("normalize: std[%d] = %v, want > 0", c, s)
		}
	}
	return nil
}

// splitmix64 is the SplitMix64 finaliser, used to turn (seed, epoch,
// index) into well-spread PCG state words.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// SampleRNG returns the random generator for sample index in epoch of a
// run seeded with seed. Each (seed, epoch, index) gets its own PCG stream,
// so what a sample looks like does not depend on which worker loads it,
// on the batch size or on the order of the epoch.
func SampleRNG(seed int64, epoch, index int) *rand.Rand {
	a := splitmix64(uint64(seed) ^ splitmix64(uint64(int64(epoch))))
	b := splitmix64(uint64(int64(index)) ^ 0x5851f42d4c957f2d)
	return rand.New(rand.NewPCG(a, b))
}

// shuffleIndex is the SampleRNG index used for the epoch's permutation
// (no sample has a negative index).
const shuffleIndex = -1

// Both data set kinds describe themselves.
var (
	_ Described = (*ClipDataset)(nil)
	_ Described = (*ImageDataset)(nil)
)
