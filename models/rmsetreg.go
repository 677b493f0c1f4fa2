package models

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/rmset"
	"github.com/fer-research/fer/fer"
)

// The "rmset" data set: an RMset folder written by `fercli rmset build`
// (data/rmset: index.csv and the face crops) as RMFER's unlabelled
// stream, the config's aux section:
//
//	aux:
//	  data: {name: rmset, root: /data/rmset}   # `fercli train rmfer ... --rmset DIR`
//	  batch_size: 1
//	  start_epoch: 5
//
// Its training split is a fer.RMsetData: each sample is one draw of
// data.RMSampler (an anchor face with its candidate positives and
// negatives), each face crop through the RMset pipelines below, which
// are ordinary data.ParsePipeline lists (the static data sets' schema).
// It is registered here, beside the rmfer model, because reading the
// index needs data/rmset (which links the face pipeline); the fer
// package stays free of it.

// The public code's RMset transforms (datasets/contrastive/RMset.py,
// get_RMset_DataLoader): Resize((260, 260)), RandomChoice([
// RandomGrayscale(), RandomHorizontalFlip(), ColorJitter(0.25, 0.25,
// 0.25, 0.125)]), ToTensor, Normalize(RMset's mean/std). The code's
// choice is RandomGrayscale (p = 0.1), not Grayscale. For FERPlus runs
// the code inserts Grayscale(num_output_channels=3) after the resize:
// RMsetTrainTransformsGray. The test pipeline (fer's addition: the code
// only trains on RMset) is the resize and normalisation, for attention
// dumps.
const (
	RMsetTrainTransforms     = `[{resize: [260, 260]}, {random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}, to_tensor, {normalize: rmset}]`
	RMsetTestTransforms      = `[{resize: [260, 260]}, to_tensor, {normalize: rmset}]`
	RMsetTrainTransformsGray = `[{resize: [260, 260]}, {grayscale: 3}, {random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}, to_tensor, {normalize: rmset}]`
	RMsetTestTransformsGray  = `[{resize: [260, 260]}, {grayscale: 3}, to_tensor, {normalize: rmset}]`
)

// rmsetOptions are the "rmset" data set's options (data.options);
// defaults are data.DefaultRMSamplerConfig's and the code's transforms.
type rmsetOptions struct {
	// the candidate sampler (data.RMSamplerConfig)
	NPositive     int  `yaml:"n_positive"`
	NNegative     int  `yaml:"n_negative"`
	PosWindow     int  `yaml:"pos_window"`
	DynamicWindow bool `yaml:"dynamic_window"`
	NegGap        int  `yaml:"neg_gap"`
	AnchorMargin  int  `yaml:"anchor_margin"`
	FrameSkip     int  `yaml:"frame_skip"`
	// TrainTransforms and TestTransforms are data.ParsePipeline lists.
	TrainTransforms any `yaml:"train_transforms"`
	TestTransforms  any `yaml:"test_transforms"`
	// SamplesPerEpoch is the length of one pass over the stream (the
	// aux stream starts a new order after it); 0: the number of valid
	// anchor faces.
	SamplesPerEpoch int `yaml:"samples_per_epoch"`
	// Workers is the number of goroutines decoding a group (0: one per
	// core).
	Workers int `yaml:"workers"`
}

func init() {
	fer.RegisterDataset("rmset", "RMFER's unlabelled RMset (the aux stream: aux.data) from `fercli rmset build`; data.root = the RMset folder (or its index.csv). "+
		"Options: n_positive, n_negative (50, 50), pos_window (the paper's d = 5), dynamic_window (the code's window), neg_gap (30), anchor_margin (31), frame_skip (1); "+
		"train_transforms, test_transforms (default the code's: Resize 260, RandomChoice{RandomGrayscale, HFlip, ColorJitter(0.25, 0.25, 0.25, 0.125)}, RMset mean/std); samples_per_epoch; workers",
		openRMset)
}

func openRMset(cfg fer.DataConfig, _ int64) (*fer.Splits, error) {
	d := data.DefaultRMSamplerConfig()
	o := rmsetOptions{NPositive: d.NPositive, NNegative: d.NNegative, PosWindow: d.PosWindow, DynamicWindow: d.DynamicWindow,
		NegGap: d.NegGap, AnchorMargin: d.AnchorMargin, FrameSkip: d.FrameSkip}
	if err := fer.DecodeOptions(cfg.Options, &o, "dataset rmset"); err != nil {
		return nil, err
	}
	if cfg.Root == "" {
		return nil, fmt.Errorf("rmset: data.root is empty: give the RMset folder that `fercli rmset build --out DIR` wrote (fercli train rmfer ... --rmset DIR)")
	}
	if _, err := os.Stat(cfg.Root); err != nil {
		return nil, fmt.Errorf("rmset: %w (build one with fercli rmset build --out DIR VIDEOS)", err)
	}
	if o.SamplesPerEpoch < 0 || o.Workers < 0 {
		return nil, fmt.Errorf("rmset: samples_per_epoch = %d, workers = %d, want >= 0", o.SamplesPerEpoch, o.Workers)
	}
	parse := func(v any, def, what string) (*data.Pipeline, error) {
		if v == nil {
			return data.ParsePipelineYAML(def, what)
		}
		return data.ParsePipeline(v, what)
	}
	train, err := parse(o.TrainTransforms, RMsetTrainTransforms, "rmset train_transforms")
	if err != nil {
		return nil, err
	}
	test, err := parse(o.TestTransforms, RMsetTestTransforms, "rmset test_transforms")
	if err != nil {
		return nil, err
	}
	if test.Random() {
		return nil, fmt.Errorf("rmset: test_transforms has random steps (%v): the attention dumps must be deterministic", test.Steps())
	}
	tw, th, tok := train.FixedSize()
	w, h, ok := test.FixedSize()
	switch {
	case !tok || !ok:
		return nil, fmt.Errorf("rmset: train_transforms and test_transforms must give a fixed size (start them with {resize: [260, 260]}): the crops' sizes differ")
	case tw != w || th != h || train.Channels() != test.Channels():
		return nil, fmt.Errorf("rmset: train_transforms give %d×%dx%d, test_transforms %d×%dx%d: the model sees both", train.Channels(), th, tw, test.Channels(), h, w)
	}
	ix, err := rmset.ReadIndex(cfg.Root)
	if err != nil {
		return nil, err
	}
	faces := make([]data.RMFace, len(ix.Faces))
	for i, f := range ix.Faces {
		faces[i] = data.RMFace{Video: f.Video, Person: f.Person, Frame: f.Frame, File: ix.Path(f)}
	}
	sc := data.RMSamplerConfig{NPositive: o.NPositive, NNegative: o.NNegative, PosWindow: o.PosWindow, DynamicWindow: o.DynamicWindow,
		NegGap: o.NegGap, AnchorMargin: o.AnchorMargin, FrameSkip: o.FrameSkip}
	sampler, err := data.NewRMSampler(faces, sc)
	if err != nil {
		return nil, fmt.Errorf("rmset %s: %w", ix.Root, err)
	}
	shape := []int64{int64(train.Channels()), int64(h), int64(w)}
	load := func(f data.RMFace, isTrain bool, rng *rand.Rand) ([]float32, error) {
		p := test
		if isTrain {
			p = train
		}
		out, _, err := p.ApplyFile(f.File, rng)
		return out, err
	}
	workers := o.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	window := fmt.Sprintf("|t'-t| <= %d", sc.PosWindow)
	if sc.DynamicWindow {
		window = "the code's dynamic window"
	}
	note := fmt.Sprintf("RMset %s: %d videos, %d faces, %d valid anchors; per anchor %d positives (other people, %s) and %d negatives (same person, more than %d frames away)",
		ix.Root, len(ix.Videos()), len(faces), sampler.Anchors(), sc.NPositive, window, sc.NNegative, sc.NegGap)
	ds := &fer.RMsetData{Sampler: sampler, Load: load, Shape: shape, N: o.SamplesPerEpoch, Workers: workers, Note: note}
	return &fer.Splits{Train: ds, InputShape: shape}, nil
}
