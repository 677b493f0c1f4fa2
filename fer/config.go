package fer

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/fer-research/fer/fer/optim"
	"go.yaml.in/yaml/v3"
)

// Config describes one run: what to train, on what, how, and where to put
// the results. It is read from a YAML file (LoadConfig), can be changed
// from the command line with key=value overrides, and the effective
// config is saved as config.yaml in the run directory and inside every
// checkpoint, so eval, predict and --resume need nothing else.
//
// Example:
//
//	model:     {name: smallcnn, options: {width: 32}}
//	data:      {name: synth, options: {train_n: 2000}}
//	optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5e-4}
//	schedule:  {name: cosine}
//	epochs: 12
//	batch_size: 64
//	best_metric: val/uar
//	run_dir: runs/demo
type Config struct {
	Model     ModelConfig     `yaml:"model"`
	Data      DataConfig      `yaml:"data"`
	Optimizer OptimizerConfig `yaml:"optimizer"`
	Schedule  ScheduleConfig  `yaml:"schedule"`

	// Epochs is the number of passes over the training set.
	Epochs int `yaml:"epochs"`
	// BatchSize is the training mini-batch size; EvalBatchSize the one
	// used for evaluation (0 = BatchSize).
	BatchSize     int `yaml:"batch_size"`
	EvalBatchSize int `yaml:"eval_batch_size"`
	// DropLast drops the last, smaller training batch of each epoch.
	DropLast bool `yaml:"drop_last"`
	// EvalEvery evaluates on the validation split every N epochs (and
	// always after the last epoch). 0 disables evaluation.
	EvalEvery int `yaml:"eval_every"`
	// BestMetric names the validation metric that selects best.ckpt, e.g.
	// "val/uar", "val/war", "val/loss" ("val/" may be left out).
	BestMetric string `yaml:"best_metric"`
	// BestMode is "max" or "min"; empty means min for metrics whose name
	// starts with "loss", else max.
	BestMode string `yaml:"best_mode"`
	// Seed fixes weight initialisation, data order, augmentation and
	// dropout: two runs with the same config and seed are identical.
	Seed int64 `yaml:"seed"`
	// Device is auto, cpu, cuda or cuda:N.
	Device string `yaml:"device"`
	// RunDir receives config.yaml, metrics.jsonl, last.ckpt, best.ckpt.
	RunDir string `yaml:"run_dir"`
	// CheckpointEvery also writes last.ckpt every N optimisation steps
	// (0: only at the end of each epoch).
	CheckpointEvery int `yaml:"checkpoint_every_steps"`
	// LogEvery appends a "train_step" record to metrics.jsonl every N
	// steps (0: epoch records only).
	LogEvery int `yaml:"log_every_steps"`
	// Aux is an optional second, unlabelled data stream drawn beside
	// every training batch (aux.go).
	Aux AuxConfig `yaml:"aux,omitempty"`

	// Init starts a new run from the weights of another run's checkpoint
	// (re-training on another data set): matching variables are copied,
	// heads whose shape or classes changed are re-initialised and listed
	// (InitFromCheckpoint). A file that is not a fer checkpoint — weights
	// published in a paper's reference format (ir50.pth, a QCS
	// checkpoint) — goes to the model's WeightsLoader (InitWeights).
	// Ignored by --resume.
	Init string `yaml:"init,omitempty"`
}

// ModelConfig names a registered model and its options.
type ModelConfig struct {
	Name string `yaml:"name"`
	// Options are decoded by the model's constructor into its own
	// options struct (DecodeOptions); unknown keys are an error there.
	Options map[string]any `yaml:"options,omitempty"`
}

// DataConfig names a registered dataset, where it is on disk and its
// options (fold, frames per clip, image size, ...).
type DataConfig struct {
	Name    string         `yaml:"name"`
	Root    string         `yaml:"root,omitempty"`
	Options map[string]any `yaml:"options,omitempty"`
}

// OptimizerConfig selects the optimiser and its hyper-parameters. The
// names follow torch.optim.
type OptimizerConfig struct {
	// Name is sgd, adam or adamw.
	Name        string  `yaml:"name"`
	LR          float64 `yaml:"lr"`
	Momentum    float64 `yaml:"momentum"`
	Dampening   float64 `yaml:"dampening"`
	Nesterov    bool    `yaml:"nesterov"`
	WeightDecay float64 `yaml:"weight_decay"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	// LRMult scales the learning rate of the parameters whose name starts
	// with a key (longest prefix wins), e.g. {"backbone.": 0.1}.
	LRMult map[string]float64 `yaml:"lr_mult,omitempty"`
	// SAMRho > 0 wraps the optimiser in Sharpness-Aware Minimisation
	// (two forward/backward passes per step), as QCS and RMFER train.
	SAMRho float64 `yaml:"sam_rho"`
	// SAMAdaptive selects ASAM's element-wise scaling.
	SAMAdaptive bool `yaml:"sam_adaptive"`
	// ClipGradNorm > 0 clips the global L2 norm of the gradients
	// (torch.nn.utils.clip_grad_norm_) before each update.
	ClipGradNorm float64 `yaml:"clip_grad_norm"`
}

// ScheduleConfig is the learning-rate schedule, stepped once per epoch as
// torch.optim.lr_scheduler does in the five systems' training scripts.
type ScheduleConfig struct {
	// Name is constant, step, exponential or cosine.
	Name string `yaml:"name"`
	// StepSize (epochs) and Gamma for step: lr·gamma^⌊epoch/step_size⌋.
	StepSize int `yaml:"step_size"`
	// Gamma for step and exponential (lr·gamma^epoch).
	Gamma float64 `yaml:"gamma"`
	// TMax (epochs, 0 = Epochs) and MinLR for cosine annealing.
	TMax  int     `yaml:"t_max"`
	MinLR float64 `yaml:"min_lr"`
	// WarmupEpochs ramps the lr linearly from lr/WarmupEpochs to lr over
	// the first epochs before the schedule starts.
	WarmupEpochs int `yaml:"warmup_epochs"`
}

// DefaultConfig is what a run uses for every key its YAML file leaves
// out.
func DefaultConfig() Config {
	return Config{
		Data: DataConfig{Name: "synth"},
		Optimizer: OptimizerConfig{
			Name: "sgd", LR: 0.01, Momentum: 0.9,
			Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		},
		Schedule:   ScheduleConfig{Name: "constant", Gamma: 0.1},
		Epochs:     10,
		BatchSize:  32,
		EvalEvery:  1,
		BestMetric: "val/uar",
		Device:     "auto",
		RunDir:     "runs/run",
	}
}

// LoadConfig reads a run config: DefaultConfig, overlaid with the YAML file
// at path (none when path is ""), overlaid with the overrides, each
// "dotted.key=value" with a YAML value ("optimizer.lr=0.1",
// "model.options.width=64", "optimizer.lr_mult={backbone.: 0.1}").
// Unknown keys are an error naming the key and the file.
func LoadConfig(path string, overrides ...string) (*Config, error) {
	src, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(src, path, overrides...)
}

// readConfigFile reads a config file; no file ("") is an empty config.
func readConfigFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

// LoadDataConfig reads a config as LoadConfig does but checks only what
// opening its data set needs (data.name): `fercli check` opens data sets
// without a model.
func LoadDataConfig(path string, overrides ...string) (*Config, error) {
	src, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(src, path, false, overrides...)
	if err != nil {
		return nil, err
	}
	if cfg.Data.Name == "" {
		return nil, fmt.Errorf("config %s: data.name is empty (registered datasets: %s)", path, strings.Join(DatasetNames(), ", "))
	}
	return cfg, nil
}

// ParseConfig is LoadConfig on YAML bytes; name is used in messages.
func ParseConfig(src []byte, name string, overrides ...string) (*Config, error) {
	return parseConfig(src, name, true, overrides...)
}

func parseConfig(src []byte, name string, validate bool, overrides ...string) (*Config, error) {
	if name == "" {
		name = "<defaults>"
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if len(bytes.TrimSpace(src)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(src, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", name, err)
		}
		if len(doc.Content) > 0 {
			root = doc.Content[0]
		}
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("config %s: top level must be a mapping of keys (model:, data:, epochs:, ...)", name)
		}
	}
	// check the file, then each override on its own, so that an error
	// names where the bad value came from even when a later override
	// replaces it
	cfgType := reflect.TypeOf(Config{})
	if err := checkKeys(root, cfgType, ""); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	for _, o := range overrides {
		if err := setNode(root, o); err != nil {
			return nil, fmt.Errorf("config override %s: %w", o, err)
		}
		if err := checkKeys(root, cfgType, ""); err != nil {
			return nil, fmt.Errorf("config override %s: %w", o, err)
		}
	}
	cfg := DefaultConfig()
	if err := root.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if validate {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: %w", name, err)
		}
	}
	return &cfg, nil
}

// Validate checks the values a run cannot start with.
func (c *Config) Validate() error {
	switch {
	case c.Model.Name == "":
		return fmt.Errorf("model.name is empty (registered models: %s)", strings.Join(ModelNames(), ", "))
	case c.Data.Name == "":
		return fmt.Errorf("data.name is empty (registered datasets: %s)", strings.Join(DatasetNames(), ", "))
	case c.Epochs < 1:
		return fmt.Errorf("epochs = %d, want >= 1", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size = %d, want >= 1", c.BatchSize)
	case c.EvalBatchSize < 0:
		return fmt.Errorf("eval_batch_size = %d, want >= 0", c.EvalBatchSize)
	case c.EvalEvery < 0:
		return fmt.Errorf("eval_every = %d, want >= 0", c.EvalEvery)
	case c.CheckpointEvery < 0 || c.LogEvery < 0:
		return fmt.Errorf("checkpoint_every_steps and log_every_steps must be >= 0")
	case c.BestMode != "" && c.BestMode != "max" && c.BestMode != "min":
		return fmt.Errorf("best_mode = %q, want max or min", c.BestMode)
	case c.RunDir == "":
		return fmt.Errorf("run_dir is empty")
	}
	if err := c.Aux.validate(); err != nil {
		return err
	}
	o := c.Optimizer
	switch o.Name {
	case "sgd", "adam", "adamw":
	default:
		return fmt.Errorf("optimizer.name = %q, want sgd, adam or adamw", o.Name)
	}
	if err := o.validate(); err != nil {
		return err
	}
	s := c.Schedule
	switch s.Name {
	case "constant", "cosine":
	case "step":
		if s.StepSize < 1 {
			return fmt.Errorf("schedule.step_size = %d, want >= 1 for the step schedule", s.StepSize)
		}
	case "exponential":
	default:
		return fmt.Errorf("schedule.name = %q, want constant, step, exponential or cosine", s.Name)
	}
	if (s.Name == "step" || s.Name == "exponential") && !(s.Gamma > 0 && !math.IsInf(s.Gamma, 0)) {
		return fmt.Errorf("schedule.gamma = %v, want a finite number > 0", s.Gamma)
	}
	if s.TMax < 0 || s.WarmupEpochs < 0 {
		return fmt.Errorf("schedule: t_max = %d, warmup_epochs = %d, want both >= 0", s.TMax, s.WarmupEpochs)
	}
	if !(s.MinLR >= 0) || math.IsInf(s.MinLR, 0) {
		return fmt.Errorf("schedule.min_lr = %v, want a finite number >= 0", s.MinLR)
	}
	return nil
}

// validate checks the optimiser's hyper-parameters: the name, the SAM
// and clipping values, and the torch.optim ones (optim.Config.Validate),
// each error naming its key.
func (o OptimizerConfig) validate() error {
	for _, kv := range []struct {
		k string
		v float64
	}{{"sam_rho", o.SAMRho}, {"clip_grad_norm", o.ClipGradNorm}} {
		if !(kv.v >= 0) || math.IsInf(kv.v, 0) {
			return fmt.Errorf("optimizer.%s = %v, want a finite number >= 0 (0: off)", kv.k, kv.v)
		}
	}
	if err := o.optimConfig().Validate(); err != nil {
		return fmt.Errorf("optimizer.%w", err)
	}
	return nil
}

// optimConfig is the fer/optim configuration of o.
func (o OptimizerConfig) optimConfig() optim.Config {
	return optim.Config{
		Kind: optim.Kind(o.Name), LR: o.LR, Momentum: o.Momentum, Dampening: o.Dampening,
		Nesterov: o.Nesterov, WeightDecay: o.WeightDecay, Beta1: o.Beta1, Beta2: o.Beta2,
		Eps: o.Eps, LRMult: o.LRMult,
	}
}

// EvalBatch is the evaluation batch size.
func (c *Config) EvalBatch() int {
	if c.EvalBatchSize > 0 {
		return c.EvalBatchSize
	}
	return c.BatchSize
}

// BestKey is BestMetric with the split prefix ("val/uar") and whether
// larger is better.
func (c *Config) BestKey() (key string, maximize bool) {
	key = c.BestMetric
	if key == "" {
		key = "val/uar"
	}
	if !strings.Contains(key, "/") {
		key = "val/" + key
	}
	switch c.BestMode {
	case "max":
		return key, true
	case "min":
		return key, false
	}
	name := key[strings.LastIndex(key, "/")+1:]
	return key, !strings.HasPrefix(name, "loss")
}

// YAML returns the config as YAML.
func (c *Config) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Save writes the config as YAML, atomically.
func (c *Config) Save(path string) error {
	b, err := c.YAML()
	if err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// DecodeOptions decodes a model's or dataset's options map into dst (a
// pointer to the constructor's options struct, pre-filled with defaults).
// Keys dst does not have are an error that lists the keys it has; what is
// names the owner in messages ("model smallcnn").
func DecodeOptions(opts map[string]any, dst any, what string) error {
	if len(opts) == 0 {
		return nil
	}
	b, err := yaml.Marshal(opts)
	if err != nil {
		return fmt.Errorf("%s options: %w", what, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s options: %w", what, err)
	}
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer {
		return fmt.Errorf("%s options: DecodeOptions needs a pointer, got %v", what, t)
	}
	clearLines(doc.Content[0])
	if err := checkKeys(doc.Content[0], t.Elem(), ""); err != nil {
		return fmt.Errorf("%s options: %w", what, err)
	}
	if err := doc.Content[0].Decode(dst); err != nil {
		return fmt.Errorf("%s options: %w", what, err)
	}
	return nil
}

// checkKeys walks a YAML mapping against a struct type and reports the
// first key the struct has no field for, with its line and the keys that
// exist at that level, and the first value that does not fit its field's
// type, naming the key. Maps and interface fields accept any key. Lines
// are printed for nodes that have one (overrides and options have none).
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	sort.Strings(names)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("unknown key %q%s; known keys here: %s", prefix+k.Value, atLine(k), strings.Join(names, ", "))
		}
		if err := checkValue(v, ft, prefix+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// checkValue checks that the YAML value v decodes into type t.
func checkValue(v *yaml.Node, t reflect.Type, key string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil // the default stays
	}
	switch t.Kind() {
	case reflect.Interface:
		return nil
	case reflect.Struct:
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("%s%s: want a mapping (key: value, ...), got %s", key, atLine(v), describeNode(v))
		}
		return checkKeys(v, t, key+".")
	}
	if err := v.Decode(reflect.New(t).Interface()); err != nil {
		return fmt.Errorf("%s%s: want %s, got %s", key, atLine(v), describeType(t), describeNode(v))
	}
	return nil
}

func atLine(n *yaml.Node) string {
	if n.Line > 0 {
		return fmt.Sprintf(" (line %d)", n.Line)
	}
	return ""
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return fmt.Sprintf("a mapping of %s to %s", describeType(t.Key()), describeType(t.Elem()))
	case reflect.Slice:
		return "a list of " + describeType(t.Elem())
	}
	return t.String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

// clearLines zeroes the line numbers of a YAML tree whose lines mean
// nothing to the user (a re-marshalled options map).
func clearLines(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		clearLines(c)
	}
}

// setNode applies one "a.b.c=value" override to a YAML mapping, creating
// intermediate mappings as needed. The value is parsed as YAML.
func setNode(root *yaml.Node, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fmt.Errorf("want key=value")
	}
	var vdoc yaml.Node
	if err := yaml.Unmarshal([]byte(val), &vdoc); err != nil {
		return fmt.Errorf("%s: value %q is not valid YAML (%w)", key, val, err)
	}
	value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}
	if len(vdoc.Content) > 0 {
		value = vdoc.Content[0]
	}
	clearLines(value) // its lines are not the config file's
	parts := splitKey(key)
	n := root
	for i, p := range parts {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping", strings.Join(parts[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				next = n.Content[j+1]
				if i == len(parts)-1 {
					n.Content[j+1] = value
				}
				break
			}
		}
		if i == len(parts)-1 {
			if next == nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, value)
			}
			return nil
		}
		if next == nil || next.Kind != yaml.MappingNode {
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if next == nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, m)
			} else {
				*next = *m
				m = next
			}
			next = m
		}
		n = next
	}
	return nil
}

// splitKey splits a dotted key. The options maps may hold keys with dots
// (an lr_mult prefix "backbone."); write those in brackets:
// optimizer.lr_mult[backbone.]=0.1.
func splitKey(key string) []string {
	var parts []string
	for key != "" {
		if strings.HasPrefix(key, "[") {
			if end := strings.Index(key, "]"); end > 0 {
				parts = append(parts, key[1:end])
				key = strings.TrimPrefix(key[end+1:], ".")
				continue
			}
		}
		i := strings.IndexAny(key, ".[")
		if i < 0 {
			parts = append(parts, key)
			break
		}
		parts = append(parts, key[:i])
		if key[i] == '.' {
			key = key[i+1:]
		} else {
			key = key[i:]
		}
	}
	return parts
}
