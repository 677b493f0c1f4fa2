package fer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ClipDataOptions are the options (data.options) of the clip data sets
// "dfew" and "afew"; the data folder is data.root. The zero values mean
// Former-DFER's protocol: 16 frames (8 segments × 2 consecutive frames)
// of 112×112, pixel/255, random-sized crop and flip when training.
//
// It is a flat struct on purpose: DecodeOptions does not descend into
// embedded structs.
type ClipDataOptions struct {
	// Fold is DFEW's cross-validation fold, 1..5 (dfew only; default 1).
	Fold int `yaml:"fold"`
	// Version is the DFEW clip version: clip_224x224 (default),
	// clip_224x224_16f or original (dfew only).
	Version string `yaml:"version"`
	// Frames is the clip length T the model gets (default 16) and
	// Duration the consecutive frames per segment (default 2): the
	// sampler cuts the clip into Frames/Duration segments.
	Frames   int `yaml:"frames"`
	Duration int `yaml:"duration"`
	// Size is the frame side in pixels (default 112).
	Size int `yaml:"size"`
	// MinFrames drops clips shorter than this when the data set is opened
	// (Former-DFER: 16); 0 keeps all.
	MinFrames int `yaml:"min_frames"`
	// Workers is the number of goroutines decoding a batch's clips
	// (default: one per core).
	Workers int `yaml:"workers"`
	// NoCrop and NoFlip turn the training augmentation off.
	NoCrop bool `yaml:"no_crop"`
	NoFlip bool `yaml:"no_flip"`
	// Normalize is "none" (default, pixel/255 as Former-DFER) or
	// "imagenet".
	Normalize string `yaml:"normalize"`
}

// DFEWValNote says how the dfew data set fills the validation split; the
// train command prints it once.
const DFEWValNote = "DFEW has no validation split: val = the test fold (Former-DFER protocol, the best epoch is selected on the test fold)"

func init() {
	RegisterDataset("dfew", "DFEW 5-fold clips (data.root = DFEW folder; options: fold 1-5, version clip_224x224|clip_224x224_16f|original, frames, size, min_frames, workers); val = test fold",
		openDFEW)
	RegisterDataset("afew", "AFEW 7.0 clips (data.root = folder with Train/ and Val/; options: frames, size, min_frames, workers); val = test = Val",
		openAFEW)
}

// clipOptions decodes and checks the options and turns them into the data
// package's.
func clipOptions(cfg DataConfig, what string) (ClipDataOptions, data.ClipOptions, error) {
	o := ClipDataOptions{Fold: 1, Frames: 16, Duration: 2, Size: 112, Workers: runtime.NumCPU(), Normalize: "none"}
	if err := DecodeOptions(cfg.Options, &o, what); err != nil {
		return o, data.ClipOptions{}, err
	}
	if cfg.Root == "" {
		return o, data.ClipOptions{}, fmt.Errorf("data.root is empty: give the data folder with --data-root PATH (or data.root in the config)")
	}
	switch {
	case o.Duration < 1 || o.Frames < o.Duration || o.Frames%o.Duration != 0:
		return o, data.ClipOptions{}, fmt.Errorf("frames = %d, duration = %d: want frames a positive multiple of duration", o.Frames, o.Duration)
	case o.Size < 1:
		return o, data.ClipOptions{}, fmt.Errorf("size = %d, want >= 1", o.Size)
	case o.Workers < 0:
		return o, data.ClipOptions{}, fmt.Errorf("workers = %d, want >= 0 (0: one per core)", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	co := data.ClipOptions{
		Sampler:   data.SegmentSampler{NumSegments: o.Frames / o.Duration, Duration: o.Duration},
		Transform: data.Transform{Size: o.Size, NoCrop: o.NoCrop, NoFlip: o.NoFlip},
		MinFrames: o.MinFrames,
	}
	switch strings.ToLower(o.Normalize) {
	case "none", "":
	case "imagenet":
		co.Transform.Normalize = data.ImageNetNormalize
	default:
		return o, data.ClipOptions{}, fmt.Errorf("normalize = %q, want none or imagenet", o.Normalize)
	}
	return o, co, nil
}

func clipSplits(o ClipDataOptions, train, test *data.ClipDataset, note string) *Splits {
	tr := &ClipSplit{DS: train, Workers: o.Workers}
	te := &ClipSplit{DS: test, Workers: o.Workers, Note: note}
	return &Splits{
		Train: tr, Val: te, Test: te,
		Classes:    append([]string(nil), train.Classes()...),
		InputShape: []int64{int64(o.Frames), 3, int64(o.Size), int64(o.Size)},
		FrameInput: test.PreprocessFrame,
	}
}

func openDFEW(cfg DataConfig, _ int64) (*Splits, error) {
	o, co, err := clipOptions(cfg, "dataset dfew")
	if err != nil {
		return nil, err
	}
	opts := data.DFEWOptions{Version: o.Version, ClipOptions: co}
	train, err := data.OpenDFEW(cfg.Root, o.Fold, "train", opts)
	if err != nil {
		return nil, err
	}
	test, err := data.OpenDFEW(cfg.Root, o.Fold, "test", opts)
	if err != nil {
		return nil, err
	}
	return clipSplits(o, train, test, fmt.Sprintf("%s; fold %d: %d train / %d test clips", DFEWValNote, o.Fold, train.Len(), test.Len())), nil
}

func openAFEW(cfg DataConfig, _ int64) (*Splits, error) {
	o, co, err := clipOptions(cfg, "dataset afew")
	if err != nil {
		return nil, err
	}
	if o.Fold != 1 || o.Version != "" {
		return nil, fmt.Errorf("fold and version are DFEW options; AFEW has one Train/Val split")
	}
	train, err := data.OpenAFEW(cfg.Root, "train", co)
	if err != nil {
		return nil, err
	}
	val, err := data.OpenAFEW(cfg.Root, "val", co)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("AFEW test labels were never released: val = test = Val (%d train / %d val clips)", train.Len(), val.Len())
	return clipSplits(o, train, val, note), nil
}

// ClipSplit adapts a data.ClipDataset to Dataset: batches are decoded by
// Workers goroutines (data.LoadBatch), inputs [B,T,3,H,W] and the label
// target.
type ClipSplit struct {
	DS      *data.ClipDataset
	Workers int
	// Note describes the split's protocol (e.g. DFEWValNote) for the log;
	// may be empty.
	Note string
}

// Len implements Dataset.
func (s *ClipSplit) Len() int { return s.DS.Len() }

// Label implements Labeled.
func (s *ClipSplit) Label(i int) int { return s.DS.Label(i) }

// Load implements data.Dataset (with Len and Label): one clip, no tensor
// (fercli check reads every sample this way).
func (s *ClipSplit) Load(i int, rng *rand.Rand, train bool) (data.Sample, error) {
	return s.DS.Load(i, rng, train)
}

// ID names clip i.
func (s *ClipSplit) ID(i int) string { return s.DS.ID(i) }

// Drops implements data.DropReporter.
func (s *ClipSplit) Drops() *data.Drops { return s.DS.Drops() }

// ProtocolNote returns Note.
func (s *ClipSplit) ProtocolNote() string { return s.Note }

// Batch implements Dataset.
func (s *ClipSplit) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	hb, err := data.LoadBatch(s.DS, idx, train, rng, s.Workers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.DS.Name, err)
	}
	x, y, err := hb.Tensors(dev)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.DS.Name, err)
	}
	return &Batch{Inputs: []*ts.Tensor{x}, Targets: map[string]*ts.Tensor{TargetLabel: y}, Size: hb.Size(), IDs: hb.IDs}, nil
}
