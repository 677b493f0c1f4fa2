package fer

import (
	"fmt"
	"image"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// AffWild2Options are the options (data.options) of the "affwild2" data
// set; data.root is the Aff-Wild2 folder (see data.OpenAffWild2 for the
// layout). The defaults are our choices where the paper is silent
// (SPEC.md §1.2); the built-in configs set them per model.
type AffWild2Options struct {
	// FramesDir, AnnotationsDir, VideosDir: folders under the root
	// (cropped_aligned, annotations, videos).
	FramesDir      string `yaml:"frames_dir"`
	AnnotationsDir string `yaml:"annotations_dir"`
	VideosDir      string `yaml:"videos_dir"`
	// Tasks to read: any of va, expr, au (default all three).
	Tasks []string `yaml:"tasks"`
	// Size is the input side in pixels (default 112, the side of ABAW's
	// cropped_aligned frames).
	Size int `yaml:"size"`
	// SeqLen > 0 gives windows of consecutive frames [T,3,S,S] for the
	// CNN-RNN models (AffWildNet used 80); Stride is the step between
	// training windows (default SeqLen; evaluation always uses SeqLen).
	SeqLen int `yaml:"seq_len"`
	Stride int `yaml:"stride"`
	// Crop turns on the random-sized crop of training frames
	// (area 0.08–1, data.Transform); off by default, the frames are
	// already aligned faces. NoFlip turns off the horizontal flip.
	Crop   bool `yaml:"crop"`
	NoFlip bool `yaml:"no_flip"`
	// Normalize: "affwildnet" (default: (x − 128)/128, pixels in
	// [−1, 1] as AffWildNet's code), "vggface" (x·255 − VGG-Face's mean
	// RGB, the input the original vgg_face_dag weights expect),
	// "imagenet" or "none".
	Normalize string `yaml:"normalize"`
	// Workers decode a batch's samples in parallel (default: one per core).
	Workers int `yaml:"workers"`
	// Audio adds input 1, the log-mel windows of the video's sound, one
	// per frame ([1, n_mels, audio_window], or [T, 1, n_mels,
	// audio_window] with seq_len); the mel front end's parameters default
	// to data.DefaultMelConfig.
	Audio       bool    `yaml:"audio"`
	SampleRate  int     `yaml:"sample_rate"`
	NFFT        int     `yaml:"n_fft"`
	WinLength   int     `yaml:"win_length"`
	HopLength   int     `yaml:"hop_length"`
	FMin        float64 `yaml:"f_min"`
	FMax        float64 `yaml:"f_max"`
	NMels       int     `yaml:"n_mels"`
	AudioWindow int     `yaml:"audio_window"`
}

// AffWild2ValNote says how the affwild2 data set fills its splits; the
// train command prints it once.
const AffWild2ValNote = "Aff-Wild2's test labels are not public: val = test = Validation_Set (ABAW protocol)"

func init() {
	RegisterDataset("affwild2", "Aff-Wild2, ABAW layout (data.root = folder with cropped_aligned/ and annotations/{VA,EXPR,AU}_Set/; options: seq_len, stride, size, normalize vggface|affwildnet|imagenet|none, tasks, audio + mel options); targets va, label, au with invalid frames masked; val = test = Validation_Set",
		openAffWild2)
}

// VGGFaceMean is VGG-Face's mean RGB on the 0–255 scale (vgg_face_dag's
// meta), subtracted from x·255 by the "vggface" normalisation.
var VGGFaceMean = [3]float32{129.186279296875, 104.76238250732422, 93.59396362304688}

func affwildNormalize(name string) (*data.Normalize, error) {
	switch strings.ToLower(name) {
	case "vggface":
		n := &data.Normalize{Std: [3]float32{1.0 / 255, 1.0 / 255, 1.0 / 255}}
		for c, m := range VGGFaceMean {
			n.Mean[c] = m / 255
		}
		return n, nil
	case "affwildnet", "":
		return &data.Normalize{Mean: [3]float32{128.0 / 255, 128.0 / 255, 128.0 / 255}, Std: [3]float32{128.0 / 255, 128.0 / 255, 128.0 / 255}}, nil
	case "imagenet":
		return data.ImageNetNormalize, nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("normalize = %q, want vggface, affwildnet, imagenet or none", name)
}

func openAffWild2(cfg DataConfig, _ int64) (*Splits, error) {
	o := AffWild2Options{Size: 112, Normalize: "affwildnet", Workers: runtime.NumCPU()}
	if err := DecodeOptions(cfg.Options, &o, "dataset affwild2"); err != nil {
		return nil, err
	}
	if cfg.Root == "" {
		return nil, fmt.Errorf("data.root is empty: give the Aff-Wild2 folder with --data-root PATH (or data.root in the config)")
	}
	if o.Size < 1 || o.SeqLen < 0 || o.Stride < 0 || o.Workers < 0 {
		return nil, fmt.Errorf("size = %d, seq_len = %d, stride = %d, workers = %d: want size >= 1 and the others >= 0", o.Size, o.SeqLen, o.Stride, o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	norm, err := affwildNormalize(o.Normalize)
	if err != nil {
		return nil, err
	}
	do := data.AffWild2Options{FramesDir: o.FramesDir, AnnotationsDir: o.AnnotationsDir, VideosDir: o.VideosDir,
		Transform: data.Transform{Size: o.Size, NoCrop: !o.Crop, NoFlip: o.NoFlip, Normalize: norm},
		SeqLen:    o.SeqLen, Stride: o.Stride}
	for _, t := range o.Tasks {
		switch strings.ToLower(t) {
		case "va":
			do.Tasks = append(do.Tasks, data.TaskVA)
		case "expr":
			do.Tasks = append(do.Tasks, data.TaskEXPR)
		case "au":
			do.Tasks = append(do.Tasks, data.TaskAU)
		default:
			return nil, fmt.Errorf("tasks: %q, want va, expr or au", t)
		}
	}
	if o.Audio {
		do.Audio = &data.AudioOptions{Window: o.AudioWindow, Mel: data.MelConfig{SampleRate: o.SampleRate, NFFT: o.NFFT,
			WinLength: o.WinLength, HopLength: o.HopLength, FMin: o.FMin, FMax: o.FMax, NMels: o.NMels}}
	}
	trainOpts := do
	trainOpts.Train = true
	train, err := data.OpenAffWild2(cfg.Root, "train", trainOpts)
	if err != nil {
		return nil, err
	}
	val, err := data.OpenAffWild2(cfg.Root, "val", do)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(train.Classes(), val.Classes()) || !slices.Equal(train.AUs(), val.AUs()) {
		return nil, fmt.Errorf("affwild2: the Train_Set and Validation_Set headers differ: classes %v / %v, AUs %v / %v", train.Classes(), val.Classes(), train.AUs(), val.AUs())
	}
	unit := "frames"
	if o.SeqLen > 0 {
		unit = fmt.Sprintf("windows of %d frames", o.SeqLen)
	}
	note := fmt.Sprintf("%s; %d train / %d val %s", AffWild2ValNote, train.Len(), val.Len(), unit)
	for _, n := range append(train.Notes, val.Notes...) {
		note += "; " + n
	}
	for _, d := range []*data.AffWild2Dataset{train, val} {
		if s := d.Drops().String(); s != "" {
			note += fmt.Sprintf("\n%s left out (labels masked where kept): %s", d.Name, strings.ReplaceAll(s, "\n", "; "))
		}
	}
	tr := &AffWild2Split{DS: train, Workers: o.Workers}
	va := &AffWild2Split{DS: val, Workers: o.Workers, Note: note}
	shape := []int64{3, int64(o.Size), int64(o.Size)}
	if o.SeqLen > 0 {
		shape = append([]int64{int64(o.SeqLen)}, shape...)
	}
	s := &Splits{Train: tr, Val: va, Test: va, Classes: slices.Clone(train.Classes()), InputShape: shape,
		AUs: slices.Clone(train.AUs())}
	if o.SeqLen == 0 && !o.Audio {
		s.ImageInput = func(img image.Image) ([]float32, error) { return val.Preprocess(img) }
	}
	return s, nil
}

// AffWild2Split adapts a data.AffWild2Dataset to Dataset: input 0 the
// frames ([B,3,S,S] or [B,T,3,S,S]), input 1 the audio windows when the
// data set has them; targets label, va and au (invalid frames marked, see
// MultiTaskLoss).
type AffWild2Split struct {
	DS      *data.AffWild2Dataset
	Workers int
	Note    string
}

// Len implements Dataset.
func (s *AffWild2Split) Len() int { return s.DS.Len() }

// Label implements Labeled (frame samples; −1 for windows).
func (s *AffWild2Split) Label(i int) int { return s.DS.Label(i) }

// ProtocolNote returns Note.
func (s *AffWild2Split) ProtocolNote() string { return s.Note }

// Drops implements data.DropReporter.
func (s *AffWild2Split) Drops() *data.Drops { return s.DS.Drops() }

// Batch implements Dataset.
func (s *AffWild2Split) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	hb, err := data.LoadBatch(s.DS, idx, train, rng, s.Workers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.DS.Name, err)
	}
	return batchFromHost(hb, dev, map[string]string{"label": TargetLabel, "va": TargetVA, "au": TargetAU}, []string{"audio"})
}

// batchFromHost turns a host batch into a Batch: Data is input 0, the
// Extra arrays named in inputs are inputs 1, 2, ..., those in targets
// become the named targets.
func batchFromHost(hb *data.Batch, dev gotch.Device, targets map[string]string, inputs []string) (*Batch, error) {
	b := &Batch{Targets: map[string]*ts.Tensor{}, IDs: hb.IDs, Size: hb.Size()}
	fail := func(err error) (*Batch, error) {
		b.Drop()
		return nil, err
	}
	x, err := hostTensor(hb.Data, toInt64(hb.Shape), dev)
	if err != nil {
		return fail(err)
	}
	b.Inputs = append(b.Inputs, x)
	for _, name := range inputs {
		a, ok := hb.Extra[name]
		if !ok {
			continue
		}
		t, err := arrayTensor(a, dev)
		if err != nil {
			return fail(fmt.Errorf("input %s: %w", name, err))
		}
		b.Inputs = append(b.Inputs, t)
	}
	for from, to := range targets {
		a, ok := hb.Extra[from]
		if !ok {
			continue
		}
		t, err := arrayTensor(a, dev)
		if err != nil {
			return fail(fmt.Errorf("target %s: %w", to, err))
		}
		b.Targets[to] = t
	}
	return b, nil
}

func arrayTensor(a data.Array, dev gotch.Device) (*ts.Tensor, error) {
	if a.I64 != nil {
		return hostTensor(a.I64, toInt64(a.Shape), dev)
	}
	return hostTensor(a.F32, toInt64(a.Shape), dev)
}

func toInt64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}
