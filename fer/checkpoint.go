package fer

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/fer-research/fer/fer/optim"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Checkpoint file layout: one libtorch archive (the format gotch's
// VarStore.Save writes, so VarStore.Load and torch.jit.load read the
// weights) holding
//
//	<variable name>          every VarStore variable (parameters and buffers)
//	__optim__/<buf>/<param>  optimiser buffers (momentum_buffer, exp_avg, exp_avg_sq)
//	__meta__                 uint8 tensor: CheckpointMeta as JSON
//
// One file, written atomically (temp file, fsync, rename, fsync dir), so a
// run killed while saving keeps its previous checkpoint.
const (
	metaTensorName = "__meta__"
	optimPrefix    = "__optim__/"
	// CheckpointFormat is the version written into CheckpointMeta.
	CheckpointFormat = 1
)

// CheckpointMeta is everything in a checkpoint besides tensors.
type CheckpointMeta struct {
	Format int    `json:"format"`
	Model  string `json:"model"`
	// Epoch is the number of completed epochs; Batch the number of
	// batches done in epoch Epoch (0 at an epoch boundary); Step the
	// number of optimisation steps done.
	Epoch int   `json:"epoch"`
	Batch int   `json:"batch"`
	Step  int   `json:"step"`
	Seed  int64 `json:"seed"`
	// Best is the best value of BestKey so far and the epoch it came from
	// (BestEpoch 0: none yet).
	BestKey   string  `json:"best_key,omitempty"`
	Best      float64 `json:"best"`
	BestEpoch int     `json:"best_epoch"`
	// Metrics are the last evaluation's metrics ("val/uar", ...).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Optimizer is the optimiser's step counts and lr (buffers are
	// tensors).
	Optimizer *optim.State `json:"optimizer,omitempty"`
	// Train holds the running sums of the epoch in progress.
	Train *TrainAccum `json:"train,omitempty"`
	// Config is the run's effective config as YAML.
	Config     string   `json:"config"`
	Classes    []string `json:"classes,omitempty"`
	InputShape []int64  `json:"input_shape,omitempty"`
	ElapsedS   float64  `json:"elapsed_s"`
	SavedAt    string   `json:"saved_at"`

	// AUs name the action units of the "au" target the model was
	// trained on (multi-task models).
	AUs []string `json:"aus,omitempty"`
}

// TrainAccum is the running training statistics of an epoch.
type TrainAccum struct {
	N        int                `json:"n"`
	Batches  int                `json:"batches"`
	LossSum  float64            `json:"loss_sum"`
	PartSums map[string]float64 `json:"part_sums,omitempty"`
	Eval     json.RawMessage    `json:"eval,omitempty"`
	TimeS    float64            `json:"time_s"`
}

// ParsedConfig decodes the config stored in the checkpoint.
func (m *CheckpointMeta) ParsedConfig() (*Config, error) {
	return ParseConfig([]byte(m.Config), "checkpoint config")
}

// SaveCheckpoint writes model weights, optimiser state (opt may be nil)
// and meta to path atomically.
func SaveCheckpoint(path string, m Model, opt *optim.Optimizer, meta CheckpointMeta) error {
	vs := m.VarStore()
	meta.Format = CheckpointFormat
	meta.SavedAt = time.Now().UTC().Format(time.RFC3339)
	var named []ts.NamedTensor
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := vars[n]
		named = append(named, ts.NamedTensor{Name: n, Tensor: &t})
	}
	if opt != nil {
		st := opt.State()
		meta.Optimizer = st
		for _, nt := range st.Tensors {
			named = append(named, ts.NamedTensor{Name: optimPrefix + nt.Name, Tensor: nt.Tensor})
		}
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	mt, err := ts.OfSlice(js)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer mt.Drop()
	named = append(named, ts.NamedTensor{Name: metaTensorName, Tensor: mt})
	err = ReplaceFileAtomic(path, func(tmp string) error {
		if err := ts.SaveMultiNew(named, tmp); err != nil {
			return fmt.Errorf("save tensors: %s", torchx.Clean(err.Error()))
		}
		return nil
	})
	runtime.KeepAlive(vs)
	runtime.KeepAlive(opt)
	return err
}

// LoadedCheckpoint is a checkpoint read into memory (tensors on the CPU).
type LoadedCheckpoint struct {
	Path    string
	Meta    CheckpointMeta
	Tensors map[string]*ts.Tensor
}

// LoadCheckpoint reads a checkpoint file. Drop it when done.
func LoadCheckpoint(path string) (*LoadedCheckpoint, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	named, err := ts.LoadMultiWithDevice(path, gotch.CPU)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: not a readable checkpoint (%s)", path, torchx.Clean(err.Error()))
	}
	lc := &LoadedCheckpoint{Path: path, Tensors: map[string]*ts.Tensor{}}
	for _, nt := range named {
		lc.Tensors[nt.Name] = nt.Tensor
	}
	mt, ok := lc.Tensors[metaTensorName]
	if !ok {
		lc.Drop()
		return nil, fmt.Errorf("checkpoint %s: no %s entry; it was not written by fer (for bare weights use VarStore.Load)", path, metaTensorName)
	}
	buf := make([]uint8, mt.Numel())
	if len(buf) > 0 {
		if err := mt.CopyData(buf, uint(len(buf))); err != nil {
			lc.Drop()
			return nil, fmt.Errorf("checkpoint %s: meta: %w", path, err)
		}
	}
	if err := json.Unmarshal(buf, &lc.Meta); err != nil {
		lc.Drop()
		return nil, fmt.Errorf("checkpoint %s: meta: %w", path, err)
	}
	if lc.Meta.Format != CheckpointFormat {
		lc.Drop()
		return nil, fmt.Errorf("checkpoint %s: format %d, this fer reads format %d", path, lc.Meta.Format, CheckpointFormat)
	}
	return lc, nil
}

// Drop frees the loaded tensors.
func (lc *LoadedCheckpoint) Drop() {
	for k, t := range lc.Tensors {
		t.Drop()
		delete(lc.Tensors, k)
	}
}

// LoadWeights copies the checkpoint's values into every variable of vs.
// A variable missing from the checkpoint or with another shape is an
// error naming it.
func (lc *LoadedCheckpoint) LoadWeights(vs *nn.VarStore) error {
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	var missing []string
	err := torchx.NoGrad(func() error {
		for _, n := range names {
			src, ok := lc.Tensors[n]
			if !ok {
				missing = append(missing, n)
				continue
			}
			dst := vars[n]
			ds, err := dst.Size()
			if err != nil {
				return err
			}
			ss, err := src.Size()
			if err != nil {
				return err
			}
			if fmt.Sprint(ds) != fmt.Sprint(ss) {
				return fmt.Errorf("checkpoint %s: %s has shape %v, the model has %v (different model options?)", lc.Path, n, ss, ds)
			}
			if err := torchx.Copy(torchx.Handle(&dst), torchx.Handle(src)); err != nil {
				return fmt.Errorf("checkpoint %s: %s: %w", lc.Path, n, err)
			}
		}
		return nil
	})
	runtime.KeepAlive(vs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" and %d more", len(missing)-5)
			missing = missing[:5]
		}
		return fmt.Errorf("checkpoint %s (model %s) lacks %s%s: it is for another model or model options", lc.Path, lc.Meta.Model, strings.Join(missing, ", "), more)
	}
	return nil
}

// LoadOptimizer restores the optimiser state saved with the weights.
func (lc *LoadedCheckpoint) LoadOptimizer(opt *optim.Optimizer) error {
	if lc.Meta.Optimizer == nil {
		return fmt.Errorf("checkpoint %s has no optimizer state", lc.Path)
	}
	bufs := map[string]*ts.Tensor{}
	for k, t := range lc.Tensors {
		if rest, ok := strings.CutPrefix(k, optimPrefix); ok {
			bufs[rest] = t
		}
	}
	if err := opt.LoadState(lc.Meta.Optimizer, bufs); err != nil {
		return fmt.Errorf("checkpoint %s: %w", lc.Path, err)
	}
	return nil
}

// ReadCheckpointMeta reads only what a checkpoint says about itself.
func ReadCheckpointMeta(path string) (*CheckpointMeta, error) {
	lc, err := LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	defer lc.Drop()
	m := lc.Meta
	return &m, nil
}
