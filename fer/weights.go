package fer

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// Published weights (weights released with a paper, in its reference
// code's own format) reach a fer model through the model family's
// WeightsLoader (init.go):
//
//   - `--init FILE` (config key init): a fer checkpoint initialises the
//     run as InitFromCheckpoint says; any other file goes to the model's
//     WeightsLoader (InitWeights), which loads what it recognises — a
//     backbone from a face-recognition checkpoint, a whole published
//     model — and reports what it loaded and ignored;
//   - `fercli predict --model M --weights FILE --data D`: the model is
//     built for the data set as DescribeDataset describes it (no data
//     files needed) and the file must set every variable of it
//     (StrictWeightsLoader), so a prediction never comes from a head
//     left at its random initial values.

// StrictWeightsLoader is optionally implemented by a WeightsLoader whose
// published files can hold the whole model. LoadWeightsStrict loads such
// a file only if it sets every variable of the model, the class head for
// classes included, and otherwise fails naming the keys (a backbone-only
// file, another class count, another model); nothing is loaded then.
// `fercli predict --weights` needs it: a model that only implements
// WeightsLoader can start training from published weights but not
// classify with them.
type StrictWeightsLoader interface {
	LoadWeightsStrict(path string, classes []string) (report string, err error)
}

// IsCheckpoint reports whether path is, by its structure, a checkpoint
// fer writes: a libtorch (TorchScript) archive, which has a
// constants.pkl record — torch.save files (zip or legacy) have none.
// A file that starts like a zip archive but cannot be read as one (a
// checkpoint cut short) counts as a checkpoint, so that LoadCheckpoint
// reports the damage. It reads only the archive's directory.
func IsCheckpoint(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte("PK\x03\x04")) {
		return false, nil // a legacy torch.save file, or not a checkpoint at all
	}
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return true, nil
	}
	for _, e := range zr.File {
		if e.Name == "constants.pkl" || strings.HasSuffix(e.Name, "/constants.pkl") {
			return true, nil
		}
	}
	return false, nil
}

// InitWeights initialises m from path before training (config key
// init): a fer checkpoint by InitFromCheckpoint, any other file through
// the model's WeightsLoader. It returns the report to print.
func InitWeights(m Model, path string, classes []string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	ckpt, err := IsCheckpoint(path)
	if err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if ckpt {
		rep, err := InitFromCheckpoint(m, path, classes)
		if err != nil {
			return "", err
		}
		return rep.String(), nil
	}
	wl, ok := weightsLoaderOf[WeightsLoader](m)
	if !ok {
		return "", fmt.Errorf("init: %s is not a fer checkpoint, and model %T reads no published weights (it does not implement fer.WeightsLoader): give a fer checkpoint (RUN/best.ckpt)", path, netOf(m))
	}
	rep, err := callWeightsLoader(func() (string, error) { return wl.LoadWeights(path, classes) })
	if err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	return fmt.Sprintf("init from %s (published weights): %s", path, rep), nil
}

// weightsLoaderOf returns the loader L of m: m itself, or for a
// Classifier its Weights function or the network inside it.
func weightsLoaderOf[L any](m Model) (L, bool) {
	var zero L
	c, ok := m.(*Classifier)
	if !ok {
		l, ok := m.(L)
		return l, ok
	}
	// a Classifier reads published weights through its Weights function
	// when one is set (effnet_b2: HSEmotion's files), else through its
	// network's own loader; it has none when neither is there
	if c.Weights != nil {
		if l, ok := any(c).(L); ok {
			return l, true
		}
	}
	if l, ok := c.Net.(L); ok {
		return l, true
	}
	return zero, false
}

// callWeightsLoader runs a model's loader, turning a libtorch failure
// inside it into an error.
func callWeightsLoader(f func() (string, error)) (rep string, err error) {
	defer CatchTorch(&err, "load weights")
	return f()
}

// datasetDescribers are the registered DatasetDescribers.
var datasetDescribers = &registry[DatasetDescriber]{kind: "dataset describer"}

// DatasetDescriber tells, from a data set's options alone (no files
// read), what a model of it needs: Classes, InputShape and ImageInput of
// the Splits it returns (Train, Val and Test stay nil). It is what lets
// `fercli predict --weights` classify pictures as the data set's test
// split would preprocess them without the data set on disk.
type DatasetDescriber func(cfg DataConfig) (*Splits, error)

// RegisterDatasetDescriber registers the describer of data set name
// (registered with RegisterDataset).
func RegisterDatasetDescriber(name string, f DatasetDescriber) {
	datasetDescribers.register(name, "", f)
}

// DescribeDataset returns cfg's data set's classes, input shape and
// single-image preprocessing: from its describer when it has one (no
// files needed), otherwise by opening it (most data sets need data.root
// for that; synth generates nothing until a batch is asked for).
func DescribeDataset(cfg DataConfig, seed int64) (*Splits, error) {
	if _, err := datasets.get(cfg.Name); err != nil {
		return nil, err
	}
	if f, ok := datasetDescribers.find(cfg.Name); ok {
		return f(cfg)
	}
	s, err := OpenDataset(cfg, seed)
	if err != nil && cfg.Root == "" {
		return nil, fmt.Errorf("%w (data set %s tells its classes and preprocessing from its files: give its folder, data.root or --data-root)", err, cfg.Name)
	}
	return s, err
}

// LoadWeightsRun builds cfg's model for cfg's data set (DescribeDataset:
// no data files needed) and loads the published weights file into it
// through the model's StrictWeightsLoader. classes name the rows of the
// file's class head, in order (nil: the data set's classes, the
// documented default); they become the run's classes, so predictions
// print them. It returns the run and the loader's report.
func LoadWeightsRun(cfg *Config, weights string, classes []string) (*Run, string, error) {
	if _, err := os.Stat(weights); err != nil {
		return nil, "", fmt.Errorf("weights: %w", err)
	}
	if ckpt, err := IsCheckpoint(weights); err == nil && ckpt {
		return nil, "", fmt.Errorf("weights %s is a fer checkpoint: use --ckpt %s (it knows its own model and data set)", weights, weights)
	}
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, "", err
	}
	desc, err := DescribeDataset(cfg.Data, cfg.Seed)
	if err != nil {
		return nil, "", err
	}
	if len(desc.Classes) == 0 {
		return nil, "", fmt.Errorf("dataset %s has no classes to predict", cfg.Data.Name)
	}
	if classes != nil {
		if len(classes) != len(desc.Classes) {
			return nil, "", fmt.Errorf("%d class names given for the weights' head, data set %s has %d classes (%s)",
				len(classes), cfg.Data.Name, len(desc.Classes), strings.Join(desc.Classes, ", "))
		}
		desc.Classes = append([]string(nil), classes...)
	}
	r, err := buildRun(cfg, dev, desc, desc.Classes, desc.AUs)
	if err != nil {
		return nil, "", err
	}
	sl, ok := weightsLoaderOf[StrictWeightsLoader](r.Model)
	if !ok {
		if _, init := weightsLoaderOf[WeightsLoader](r.Model); init {
			return nil, "", fmt.Errorf("model %s reads published weights only to start training from them (--init %s), not to classify with them", cfg.Model.Name, weights)
		}
		return nil, "", fmt.Errorf("model %s reads no published weights: classify with a fer checkpoint (--ckpt)", cfg.Model.Name)
	}
	rep, err := callWeightsLoader(func() (string, error) { return sl.LoadWeightsStrict(weights, desc.Classes) })
	if err != nil {
		return nil, "", err
	}
	return r, rep, nil
}
