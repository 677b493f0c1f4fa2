package fer

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
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
	// libtorch serialises into a Go writer (the patched gotch's
	// SaveMultiTo): a failed write (a full disk) is an ordinary error here,
	// the temporary file is removed and path keeps its previous content
	err = WriteFileAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := ts.SaveMultiTo(named, checkpointWriter(bw)); err != nil {
			if strings.HasPrefix(err.Error(), "Libtorch API Error") {
				return fmt.Errorf("serialise tensors: %s", torchx.Clean(err.Error()))
			}
			return err // the writer's own error (a full disk), unwrappable
		}
		return bw.Flush()
	})
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		err = fmt.Errorf("%w: free space on that disk or choose another run_dir (%s keeps its previous content)", err, path)
	}
	runtime.KeepAlive(vs)
	runtime.KeepAlive(opt)
	return err
}

// checkpointWriter wraps the writer SaveCheckpoint hands libtorch; tests
// replace it to inject write failures at every byte offset.
var checkpointWriter = func(w io.Writer) io.Writer { return w }

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
	if err := checkArchive(path); err != nil {
		return nil, fmt.Errorf("checkpoint %s is damaged (cut short?) or not a fer checkpoint: %w", path, err)
	}
	named, err := ts.LoadMultiWithDevice(path, gotch.CPU)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s is damaged (cut short?) or not a fer checkpoint: %s", path, torchx.Clean(err.Error()))
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

// checkArchive checks the zip structure of a checkpoint before libtorch
// reads it: libtorch trusts the sizes in the archive (a damaged header
// made it allocate gigabytes) and does not verify the checksums of
// stored records. libtorch writes tensor records uncompressed ("stored")
// and only its small TorchScript code records deflated, so every record
// must lie inside the file, a stored one's size equal its stored size, a
// deflated one inflate to at most maxDeflated bytes, and every record
// match its CRC-32. The check reads the file once.
func checkArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return fmt.Errorf("not a readable zip archive (%v)", err)
	}
	if len(zr.File) == 0 {
		return errors.New("empty archive")
	}
	records := map[string]*zip.File{}
	for _, e := range zr.File {
		records[e.Name] = e
	}
	for _, e := range zr.File {
		switch {
		case e.Method == zip.Store && e.CompressedSize64 == e.UncompressedSize64:
		case e.Method == zip.Deflate && e.UncompressedSize64 <= maxDeflated:
		default:
			return fmt.Errorf("record %s: method %d, %d bytes stored for %d: not what libtorch writes", e.Name, e.Method, e.CompressedSize64, e.UncompressedSize64)
		}
		off, err := e.DataOffset()
		if err != nil {
			return fmt.Errorf("record %s: %v", e.Name, err)
		}
		if off < 0 || e.CompressedSize64 > uint64(st.Size()) || uint64(off)+e.CompressedSize64 > uint64(st.Size()) {
			return fmt.Errorf("record %s (%d bytes at %d) runs past the end of the %d-byte file", e.Name, e.CompressedSize64, off, st.Size())
		}
		rc, err := e.Open()
		if err != nil {
			return fmt.Errorf("record %s: %v", e.Name, err)
		}
		if isPickle(e.Name) {
			var b []byte
			if b, err = io.ReadAll(io.LimitReader(rc, maxDeflated+1)); err == nil {
				if len(b) > maxDeflated {
					err = fmt.Errorf("%d bytes or more, a checkpoint's pickles are small", maxDeflated)
				} else if err = checkPickle(b); err == nil && (e.Name == "data.pkl" || strings.HasSuffix(e.Name, "/data.pkl")) {
					err = checkStorages(b, strings.TrimSuffix(e.Name, "data.pkl"), records)
				}
			}
		} else {
			_, err = io.Copy(io.Discard, rc)
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("record %s: %v", e.Name, err)
		}
	}
	return nil
}

// checkStorages checks that every storage data.pkl declares has a record
// (prefix + "data/" + key) of exactly its size.
func checkStorages(pkl []byte, prefix string, records map[string]*zip.File) error {
	decls, err := pickleStorages(pkl)
	if err != nil {
		return err
	}
	for _, d := range decls {
		r, ok := records[prefix+"data/"+d.key]
		if !ok {
			return fmt.Errorf("storage %s has no record %sdata/%s", d.key, prefix, d.key)
		}
		if d.numel > math.MaxInt64/d.elem || uint64(d.numel*d.elem) != r.UncompressedSize64 {
			return fmt.Errorf("storage %s: %d elements of %d bytes declared, its record has %d bytes", d.key, d.numel, d.elem, r.UncompressedSize64)
		}
	}
	return nil
}

// isPickle reports whether an archive record is a pickle libtorch
// unpickles (data.pkl, constants.pkl, code/*.debug_pkl).
func isPickle(name string) bool {
	return strings.HasSuffix(name, ".pkl") || strings.HasSuffix(name, "_pkl")
}

// maxDeflated bounds a deflated record of a checkpoint (libtorch
// compresses only its generated TorchScript code, a few KB).
const maxDeflated = 16 << 20

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
