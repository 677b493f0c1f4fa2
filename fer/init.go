package fer

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/fer-research/fer/fer/internal/torchx"
)

// Initialising a run from another run's checkpoint (config key init,
// `fercli train MODEL --init RUN/best.ckpt --data rafdb`): the paper's
// protocol of pre-training on Aff-Wild2, then re-training on an
// expression database. Every variable of the new model whose name and
// shape match the checkpoint's is copied; the others keep their fresh
// initialisation and are listed ("swapped"):
//
//   - a variable whose shape changed (an expression head of 7 classes
//     re-trained on AffectNet-8's 8);
//   - a class head (ClassHeads) whose shape is unchanged but whose
//     classes differ by name or order (Aff-Wild2's Neutral, Anger, ...
//     re-trained on RAF-DB's surprise, fear, ...): its rows would mean
//     other classes;
//   - a variable the checkpoint does not have.
//
// Only weights are taken: the optimiser, the epoch counters and the best
// metric start afresh. Checkpoint variables the model does not have are
// listed as unused. A checkpoint sharing no variable with the model is an
// error.

// ClassHeads is optionally implemented by a model whose parameters are
// indexed by the data set's classes (the classifier head); see above.
type ClassHeads interface {
	ClassHeadParams() []string
}

// InitReport says what InitFromCheckpoint did.
type InitReport struct {
	Path    string
	Loaded  []string
	Swapped []InitSwap
	Unused  []string
}

// InitSwap is one variable kept at its initial value, and why.
type InitSwap struct {
	Name   string
	Reason string
}

// String is the report printed when a run starts.
func (r *InitReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "init from %s: %d variables loaded", r.Path, len(r.Loaded))
	if len(r.Swapped) > 0 {
		fmt.Fprintf(&b, "; %d re-initialised (heads swapped):", len(r.Swapped))
		for _, s := range r.Swapped {
			fmt.Fprintf(&b, "\n  %s: %s", s.Name, s.Reason)
		}
	}
	if len(r.Unused) > 0 {
		fmt.Fprintf(&b, "\n  unused checkpoint variables: %s", listSome(r.Unused, 8))
	}
	return b.String()
}

func listSome(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(xs)-n)
}

// InitFromCheckpoint copies the matching weights of a fer checkpoint into
// m (see the comment above); classes are the new data set's classes.
func InitFromCheckpoint(m Model, path string, classes []string) (*InitReport, error) {
	lc, err := LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	defer lc.Drop()
	rep := &InitReport{Path: path}
	heads := map[string]bool{}
	if ch, ok := m.(ClassHeads); ok {
		for _, n := range ch.ClassHeadParams() {
			heads[n] = true
		}
	}
	sameClasses := len(lc.Meta.Classes) == 0 || slices.Equal(lc.Meta.Classes, classes)
	vs := m.VarStore()
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	err = torchx.NoGrad(func() error {
		for _, n := range names {
			src, ok := lc.Tensors[n]
			if !ok {
				rep.Swapped = append(rep.Swapped, InitSwap{n, "not in the checkpoint"})
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
			switch {
			case !slices.Equal(ds, ss):
				rep.Swapped = append(rep.Swapped, InitSwap{n, fmt.Sprintf("shape %v in the checkpoint, %v now", ss, ds)})
			case heads[n] && !sameClasses:
				rep.Swapped = append(rep.Swapped, InitSwap{n, fmt.Sprintf("class head: the checkpoint's classes (%s) differ from the data set's (%s)",
					strings.Join(lc.Meta.Classes, ", "), strings.Join(classes, ", "))})
			default:
				if err := torchx.Copy(torchx.Handle(&dst), torchx.Handle(src)); err != nil {
					return fmt.Errorf("init: %s: %w", n, err)
				}
				rep.Loaded = append(rep.Loaded, n)
			}
		}
		return nil
	})
	runtime.KeepAlive(vs)
	if err != nil {
		return nil, err
	}
	for n := range lc.Tensors {
		if _, ok := vars[n]; !ok && n != metaTensorName && !strings.HasPrefix(n, optimPrefix) {
			rep.Unused = append(rep.Unused, n)
		}
	}
	sort.Strings(rep.Unused)
	if len(rep.Loaded) == 0 {
		return nil, fmt.Errorf("init: %s (model %s) shares no variable with model %T: is it a checkpoint of this model family?", path, lc.Meta.Model, m)
	}
	return rep, nil
}

// initModelOptions fills cfg's model options from the init checkpoint's
// stored config when cfg has none and the model is the same.
func initModelOptions(cfg *Config) error {
	if cfg.Init == "" || len(cfg.Model.Options) > 0 {
		return nil
	}
	if ckpt, err := IsCheckpoint(cfg.Init); err != nil || !ckpt {
		return nil // published weights (WeightsLoader), or a missing file InitWeights reports
	}
	meta, err := ReadCheckpointMeta(cfg.Init)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if !strings.EqualFold(meta.Model, cfg.Model.Name) {
		return nil
	}
	stored, err := meta.ParsedConfig()
	if err != nil {
		return fmt.Errorf("init: %s: %w", cfg.Init, err)
	}
	cfg.Model.Options = stored.Model.Options
	return nil
}

// WeightsLoader is implemented by a model family (the Model, or the
// network inside a Classifier) that can start from
// weights published in its reference code's own format rather than a fer
// checkpoint: the QCS authors' checkpoints and face.evoLVe's ir50.pth,
// HSEmotion's enet_b2_*.pt for EfficientNet-B2 and RMFER. `--init FILE`
// uses it when FILE is not a fer checkpoint, and `fercli predict --model M
// --weights FILE` to classify with published weights.
type WeightsLoader interface {
	// LoadWeights loads what it recognises in path into the model. A
	// class-indexed head is mapped by name to classes (the data set's),
	// never silently reordered. The report says what was loaded, which
	// keys of the file were ignored and what kept its initial value; a
	// file of another model or class count is an error naming the keys.
	LoadWeights(path string, classes []string) (report string, err error)
}
