package fer

import (
	"fmt"
	"image"
	"sort"
	"strings"
	"sync"

	"github.com/sugarme/gotch/nn"
)

// ModelSpec is what a model constructor gets besides the VarStore.
type ModelSpec struct {
	Name string
	// NumClasses is the number of classes of the data set's label target
	// (0 when it has none).
	NumClasses int
	// InputShape is one sample's input shape from the data set, e.g.
	// {3,112,112} or {16,3,112,112}.
	InputShape []int64
	// AUs name the action units of the data set's "au" target (nil when
	// it has none); multi-task models size their AU output by it.
	AUs []string
	// Options are the model's options from the config; decode them with
	// DecodeOptions into the constructor's options struct.
	Options map[string]any
}

// ModelFactory builds a model whose variables live under vs.Root().
type ModelFactory func(vs *nn.VarStore, spec ModelSpec) (Model, error)

// Splits is an opened data set.
type Splits struct {
	Train, Val, Test Dataset // Val and Test may be nil
	// Classes names the label classes (index = label); nil if none.
	Classes []string
	// InputShape is one sample's model input shape.
	InputShape []int64
	// AUs name the columns of the "au" target, nil if the data set has
	// none.
	AUs []string
	// ImageInput turns one image into one sample's model input (C×H×W
	// float32, shape InputShape) exactly as the test split does, for
	// `fercli predict`. Nil when the data set cannot take single images.
	ImageInput func(img image.Image) ([]float32, error)
	// FrameInput turns one video frame (a face crop) into one frame of a
	// clip model's input (shape InputShape[1:]) as the test split
	// transforms each frame of a clip, for `fercli predict` on videos
	// with clip models. Nil for still-image data sets.
	FrameInput func(img image.Image) ([]float32, error)
}

// DatasetFactory opens a data set from its config; seed is the run seed
// (for data sets that generate or subsample).
type DatasetFactory func(cfg DataConfig, seed int64) (*Splits, error)

// LossProvider is implemented by models that train with their own
// objective (multi-task, ArcFace, contrastive). Others get
// CrossEntropy{}.
type LossProvider interface {
	DefaultLoss() (Loss, error)
}

// EvaluatorProvider is implemented by models whose outputs need their own
// metrics (CCC, AU F1). Others get a ClassificationEvaluator.
type EvaluatorProvider interface {
	NewEvaluator(classes []string) Evaluator
}

type entry[F any] struct {
	f    F
	help string
}

type registry[F any] struct {
	mu   sync.Mutex
	kind string
	m    map[string]entry[F]
	dup  map[string]bool
}

func (r *registry[F]) register(name, help string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]entry[F]{}
	}
	key := strings.ToLower(name)
	if _, dup := r.m[key]; dup {
		// Registration runs in init functions, where there is no one to
		// return an error to: remember it and fail every lookup of the
		// name instead of silently using one of the two.
		if r.dup == nil {
			r.dup = map[string]bool{}
		}
		r.dup[key] = true
	}
	r.m[key] = entry[F]{f: f, help: help}
}

func (r *registry[F]) get(name string) (F, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strings.ToLower(name)
	if r.dup[key] {
		var zero F
		return zero, fmt.Errorf("%s %q is registered twice (two packages use the same name)", r.kind, name)
	}
	e, ok := r.m[key]
	if !ok {
		var zero F
		return zero, fmt.Errorf("unknown %s %q (registered: %s)", r.kind, name, strings.Join(r.namesLocked(), ", "))
	}
	return e.f, nil
}

// find returns the entry called name, if there is exactly one.
func (r *registry[F]) find(name string) (F, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strings.ToLower(name)
	e, ok := r.m[key]
	return e.f, ok && !r.dup[key]
}

func (r *registry[F]) namesLocked() []string {
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *registry[F]) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.namesLocked()
}

func (r *registry[F]) helpOf(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[strings.ToLower(name)].help
}

var (
	models   = &registry[ModelFactory]{kind: "model"}
	datasets = &registry[DatasetFactory]{kind: "dataset"}
)

// RegisterModel makes a model constructible by name (case-insensitive).
// Call it from an init function of the model family's file; help is a
// one-line description for `fercli train --help`.
func RegisterModel(name, help string, f ModelFactory) { models.register(name, help, f) }

// RegisterDataset makes a data set openable by name.
func RegisterDataset(name, help string, f DatasetFactory) { datasets.register(name, help, f) }

// ModelNames lists the registered models.
func ModelNames() []string { return models.names() }

// DatasetNames lists the registered data sets.
func DatasetNames() []string { return datasets.names() }

// ModelHelp and DatasetHelp return a registered entry's description.
func ModelHelp(name string) string   { return models.helpOf(name) }
func DatasetHelp(name string) string { return datasets.helpOf(name) }

// NewModel builds the named model in vs. A libtorch failure in the
// constructor (parameters that do not fit in memory) is an error.
func NewModel(vs *nn.VarStore, spec ModelSpec) (Model, error) {
	f, err := models.get(spec.Name)
	if err != nil {
		return nil, err
	}
	m, err := callFactory(f, vs, spec)
	if err != nil {
		if IsOutOfMemory(err) {
			return nil, fmt.Errorf("model %s: %w: its parameters do not fit in memory; make it smaller (model.options: %s)", spec.Name, err, formatOptions(spec.Options))
		}
		return nil, fmt.Errorf("model %s: %w", spec.Name, err)
	}
	return m, nil
}

// callFactory runs a model constructor, turning a libtorch failure
// inside it into an error.
func callFactory(f ModelFactory, vs *nn.VarStore, spec ModelSpec) (m Model, err error) {
	defer CatchTorch(&err, "build")
	return f(vs, spec)
}

// formatOptions prints an options map as "k=v, ..." in key order, or
// "defaults" when empty.
func formatOptions(o map[string]any) string {
	if len(o) == 0 {
		return "defaults"
	}
	var parts []string
	for _, k := range sortedKeys(o) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, o[k]))
	}
	return strings.Join(parts, ", ")
}

// OpenDataset opens the named data set.
func OpenDataset(cfg DataConfig, seed int64) (*Splits, error) {
	f, err := datasets.get(cfg.Name)
	if err != nil {
		return nil, err
	}
	s, err := f(cfg, seed)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", cfg.Name, err)
	}
	if s.Train == nil {
		return nil, fmt.Errorf("dataset %s: no training split", cfg.Name)
	}
	return s, nil
}
