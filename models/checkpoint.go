package models

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// StateDict is a set of named tensors read from a checkpoint (CPU
// tensors, in file order). Free it with Drop once loaded.
type StateDict struct {
	// Names lists the tensors in file order.
	Names []string
	// Tensors maps each name to its tensor.
	Tensors map[string]*ts.Tensor
	// Source is the file the tensors came from and, for nested
	// checkpoints, the key they were found under ("ckpt.pth:state_dict").
	Source string
	// Skipped are the non-tensor entries next to the tensors (epoch
	// counters, config strings), by name.
	Skipped []string
}

// Drop frees the tensors.
func (sd *StateDict) Drop() {
	for _, t := range sd.Tensors {
		t.Drop()
	}
	sd.Tensors, sd.Names = nil, nil
}

// Shape returns the shape of tensor name, or nil when absent.
func (sd *StateDict) Shape(name string) []int64 {
	t, ok := sd.Tensors[name]
	if !ok {
		return nil
	}
	s, err := tensorShape(t)
	if err != nil {
		return nil
	}
	return s
}

// stateDictKeys are the keys under which training scripts commonly nest
// the weights; ReadStateDict looks there when the top level holds no
// tensors.
var stateDictKeys = []string{"state_dict", "model_state_dict", "model", "net", "state_dict_ema", "model_ema", "module", "backbone"}

// ReadStateDict reads the tensors of a checkpoint: a torch.save file
// (.pth/.pt/.bin, zip or legacy format) or a safetensors file. A
// torch.save file may hold the state_dict itself, a dict with it under
// one of the usual keys (state_dict, model_state_dict, model, net, ...;
// other entries there, such as the optimizer state, are not read), or a
// whole pickled nn.Module (torch.save(model)), whose parameters and
// buffers are read under their state_dict names without running any of
// its Python code.
func ReadStateDict(file string) (*StateDict, error) {
	isST, err := isSafetensors(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if isST {
		sd, err := readSafetensors(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		return sd, nil
	}
	obj, err := readTorchFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer obj.close()
	sd, err := stateDictFrom(obj, file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return sd, nil
}

func stateDictFrom(obj *pickleObject, file string) (*StateDict, error) {
	entries, ok := dictEntries(obj.root)
	if !ok {
		// a whole nn.Module pickled by torch.save(model) (HSEmotion's
		// enet_b2_*.pt are): collect its parameters and buffers
		if mod, isMod := moduleState(obj.root); isMod {
			entries = moduleEntries("", mod, nil)
			ok = len(entries) > 0
		}
	}
	if !ok {
		return nil, fmt.Errorf("top level is %s, neither a dict of tensors nor a pickled nn.Module; save model.state_dict() instead", pyType(obj.root))
	}
	source := file
	// A training checkpoint nests the weights under one of the usual keys
	// and may hold tensors of its own next to them (QCS's scripts save
	// {'epoch', 'state_dict', 'best_acc': tensor, 'optimizer', ...}): a
	// nested dict of tensors wins over the top level. A plain state_dict
	// never maps a key to a dict.
	var top []string
	found := false
	for _, e := range entries {
		top = append(top, e.key)
	}
	for _, key := range stateDictKeys {
		for _, e := range entries {
			if e.key != key {
				continue
			}
			if sub, ok := dictEntries(e.value); ok && hasTensor(sub) {
				entries, source, found = sub, file+":"+key, true
			}
		}
		if found {
			break
		}
	}
	if !found && !hasTensor(entries) {
		return nil, fmt.Errorf("no tensors at the top level nor under %s; top-level keys: %s",
			strings.Join(stateDictKeys, "/"), strings.Join(top, ", "))
	}
	sd := &StateDict{Tensors: map[string]*ts.Tensor{}, Source: source}
	uses := map[*storageRef]int{} // free each storage's bytes after its last tensor
	for _, e := range entries {
		if ref, ok := e.value.(*tensorRef); ok {
			uses[ref.storage]++
		}
	}
	for _, e := range entries {
		ref, ok := e.value.(*tensorRef)
		if !ok {
			sd.Skipped = append(sd.Skipped, e.key)
			continue
		}
		t, err := materialise(ref, obj.fetch)
		if err != nil {
			sd.Drop()
			return nil, fmt.Errorf("tensor %q: %w", e.key, err)
		}
		if uses[ref.storage]--; uses[ref.storage] == 0 {
			ref.storage.data = nil
		}
		if _, dup := sd.Tensors[e.key]; !dup {
			sd.Names = append(sd.Names, e.key)
		} else {
			sd.Tensors[e.key].Drop()
		}
		sd.Tensors[e.key] = t
	}
	return sd, nil
}

// moduleState returns the __dict__ of a pickled nn.Module (an object
// whose state has _parameters and _modules).
func moduleState(v interface{}) ([]entry, bool) {
	o, ok := v.(*opaque)
	if !ok {
		return nil, false
	}
	state, ok := dictEntries(o.state)
	if !ok {
		return nil, false
	}
	var hasParams, hasModules bool
	for _, e := range state {
		hasParams = hasParams || e.key == "_parameters"
		hasModules = hasModules || e.key == "_modules"
	}
	return state, hasParams && hasModules
}

// moduleEntries flattens a module's parameters, buffers and sub-modules
// into state_dict order and names (parameters, then buffers, then
// children, as nn.Module.state_dict does).
func moduleEntries(prefix string, state []entry, out []entry) []entry {
	get := func(key string) []entry {
		for _, e := range state {
			if e.key == key {
				d, _ := dictEntries(e.value)
				return d
			}
		}
		return nil
	}
	for _, group := range []string{"_parameters", "_buffers"} {
		for _, e := range get(group) {
			if _, ok := e.value.(*tensorRef); ok { // None for absent bias
				out = append(out, entry{prefix + e.key, e.value})
			}
		}
	}
	for _, e := range get("_modules") {
		if sub, ok := moduleState(e.value); ok {
			out = moduleEntries(prefix+e.key+".", sub, out)
		}
	}
	return out
}

func hasTensor(entries []entry) bool {
	for _, e := range entries {
		if _, ok := e.value.(*tensorRef); ok {
			return true
		}
	}
	return false
}

func pyType(v interface{}) string {
	switch o := v.(type) {
	case *opaque:
		return o.class
	case nil:
		return "None"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// LoadOptions adjust how a checkpoint's names are matched to a model's.
type LoadOptions struct {
	// Into loads into the sub-tree of the VarStore under this dotted
	// prefix ("backbone" for a model built at vs.Root().Sub("backbone"));
	// variables elsewhere in the VarStore are ignored. Empty: the root.
	Into string
	// StripPrefixes are removed from the start of checkpoint keys; nil
	// means {"module."} (what nn.DataParallel adds). Use an empty
	// non-nil slice to strip nothing.
	StripPrefixes []string
	// Rename maps a checkpoint key (after prefix stripping) to the model's
	// name for it; returning "" drops the key (reported as ignored).
	Rename func(key string) string
	// AllowMissing lets model variables without a checkpoint entry keep
	// their current values (fine-tuning a new classifier head).
	AllowMissing bool
	// AllowUnexpected ignores checkpoint entries the model has no use for.
	AllowUnexpected bool
	// Exclude leaves the model variables it accepts (names after Into)
	// out of the load: they keep their values and are not reported
	// missing (a new classifier head on a pretrained backbone).
	Exclude func(name string) bool
}

// LoadReport says how a checkpoint's names matched the model's.
type LoadReport struct {
	Source string
	// Loaded are the model variables that received values.
	Loaded []string
	// Missing are model variables the checkpoint lacks.
	Missing []string
	// Unexpected are checkpoint entries the model lacks.
	Unexpected []string
	// Mismatched are names present in both with different shapes.
	Mismatched []ShapeMismatch
	// Ignored are checkpoint entries skipped on purpose: BatchNorm's
	// num_batches_tracked and keys Rename dropped.
	Ignored []string
}

// ShapeMismatch is one name whose shapes differ.
type ShapeMismatch struct {
	Name              string
	Model, Checkpoint []int64
}

// MismatchError is returned when a checkpoint does not fit a model; it
// carries the full report.
type MismatchError struct{ Report *LoadReport }

func (e *MismatchError) Error() string {
	r := e.Report
	var parts []string
	if n := len(r.Mismatched); n > 0 {
		var items []string
		for _, m := range r.Mismatched {
			items = append(items, fmt.Sprintf("%s: model %v, checkpoint %v", m.Name, m.Model, m.Checkpoint))
		}
		parts = append(parts, fmt.Sprintf("%d shape mismatch(es) [%s]", n, listSome(items)))
	}
	if n := len(r.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing key(s) [%s]", n, listSome(r.Missing)))
	}
	if n := len(r.Unexpected); n > 0 {
		parts = append(parts, fmt.Sprintf("%d unexpected key(s) [%s]", n, listSome(r.Unexpected)))
	}
	return fmt.Sprintf("checkpoint %s does not fit the model: %s (nothing was loaded; LoadOptions.Rename/StripPrefixes map names, AllowMissing/AllowUnexpected accept partial checkpoints)",
		r.Source, strings.Join(parts, "; "))
}

func listSome(items []string) string {
	const max = 12
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(", ... and %d more", len(items)-max)
}

// LoadCheckpoint reads a checkpoint (see ReadStateDict) and copies it into
// the VarStore by name (see LoadStateDict).
func LoadCheckpoint(vs *nn.VarStore, file string, opts LoadOptions) (*LoadReport, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	return LoadStateDict(vs, sd, opts)
}

// LoadStateDict copies the tensors of sd into the variables of vs with the
// same names (after opts' prefix stripping and renaming), converting dtype
// and device. It checks everything first and copies nothing unless the
// names and shapes fit: a shape mismatch is always an error, missing and
// unexpected names are errors unless allowed. The report lists every name
// in each category; on error it is also in the *MismatchError.
func LoadStateDict(vs *nn.VarStore, sd *StateDict, opts LoadOptions) (*LoadReport, error) {
	if vs == nil || sd == nil {
		return nil, errors.New("load state dict: nil VarStore or StateDict")
	}
	strip := opts.StripPrefixes
	if strip == nil {
		strip = []string{"module."}
	}
	into := strings.TrimSuffix(opts.Into, ".")
	vars := vs.Variables()
	model := map[string]ts.Tensor{}
	for name, t := range vars {
		switch {
		case into == "":
		case strings.HasPrefix(name, into+"."):
			name = strings.TrimPrefix(name, into+".")
		default:
			continue
		}
		if opts.Exclude == nil || !opts.Exclude(name) {
			model[name] = t
		}
	}
	r := &LoadReport{Source: sd.Source}
	src := map[string]*ts.Tensor{} // model name -> checkpoint tensor
	for _, key := range sd.Names {
		name := key
		for _, p := range strip {
			if strings.HasPrefix(name, p) {
				name = strings.TrimPrefix(name, p)
				break
			}
		}
		if opts.Rename != nil {
			name = opts.Rename(name)
		}
		if name == "" || strings.HasSuffix(name, ".num_batches_tracked") || name == "num_batches_tracked" {
			r.Ignored = append(r.Ignored, key)
			continue
		}
		if _, ok := model[name]; !ok {
			r.Unexpected = append(r.Unexpected, key)
			continue
		}
		if _, dup := src[name]; dup {
			return nil, fmt.Errorf("load %s: two checkpoint keys map to %q", sd.Source, name)
		}
		src[name] = sd.Tensors[key]
	}
	for _, name := range sortedKeys(model) {
		cp, ok := src[name]
		if !ok {
			r.Missing = append(r.Missing, name)
			continue
		}
		mt := model[name]
		ms, err := tensorShape(&mt)
		if err != nil {
			return nil, fmt.Errorf("load %s: %s: %w", sd.Source, name, err)
		}
		cs, err := tensorShape(cp)
		if err != nil {
			return nil, fmt.Errorf("load %s: %s: %w", sd.Source, name, err)
		}
		if !slices.Equal(ms, cs) {
			r.Mismatched = append(r.Mismatched, ShapeMismatch{Name: name, Model: ms, Checkpoint: cs})
		}
	}
	if len(r.Mismatched) > 0 || (len(r.Missing) > 0 && !opts.AllowMissing) || (len(r.Unexpected) > 0 && !opts.AllowUnexpected) {
		return r, &MismatchError{Report: r}
	}
	for _, name := range sortedKeys(src) {
		mt := model[name]
		if err := copyInto(&mt, src[name]); err != nil {
			return r, fmt.Errorf("load %s: copy %s: %w", sd.Source, name, err)
		}
		r.Loaded = append(r.Loaded, name)
	}
	return r, nil
}

// DropPrefix returns a Rename function that drops keys starting with any
// of the prefixes and keeps the others (QCS checkpoints carry IR-50's
// unused "output_layer.*").
func DropPrefix(prefixes ...string) func(string) string {
	return func(key string) string {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				return ""
			}
		}
		return key
	}
}

// ---------------------------------------------------------------------
// safetensors: a plain format (JSON header + raw little-endian data) that
// Go (github.com/nlpodyssey/safetensors) and Python (safetensors) read
// without libtorch or pickle.

var stDTypes = map[gotch.DType]safetensors.DType{
	gotch.Float:    safetensors.F32,
	gotch.Double:   safetensors.F64,
	gotch.Half:     safetensors.F16,
	gotch.BFloat16: safetensors.BF16,
	gotch.Int64:    safetensors.I64,
	gotch.Int:      safetensors.I32,
	gotch.Int16:    safetensors.I16,
	gotch.Int8:     safetensors.I8,
	gotch.Uint8:    safetensors.U8,
	gotch.Bool:     safetensors.BOOL,
}

// lazyView hands safetensors one tensor's bytes only when it writes it,
// so saving holds one tensor at a time in Go memory.
type lazyView struct {
	t     *ts.Tensor
	dtype safetensors.DType
	shape []uint64
	n     uint64
	err   *error
}

func (v lazyView) DType() safetensors.DType { return v.dtype }
func (v lazyView) Shape() []uint64          { return v.shape }
func (v lazyView) DataLen() uint64          { return v.n }
func (v lazyView) Data() []byte {
	b, err := tensorBytes(v.t)
	if err != nil {
		if *v.err == nil {
			*v.err = err
		}
		return make([]byte, v.n)
	}
	return b
}

// SaveSafetensors writes every variable of vs (parameters and BatchNorm
// buffers, by their PyTorch names) to a safetensors file, with optional
// string metadata. The file is written to a temporary name and renamed,
// so a crash never leaves a truncated checkpoint. PyTorch reads it back
// with model.load_state_dict(safetensors.torch.load_file(path),
// strict=False) (only num_batches_tracked is absent). gotch's own
// vs.Save/vs.Load also work with these models (same names), in libtorch's
// archive format.
func SaveSafetensors(vs *nn.VarStore, file string, metadata map[string]string) error {
	vars := vs.Variables()
	views := map[string]lazyView{}
	var viewErr error
	for name, t := range vars {
		t := t
		st, ok := stDTypes[t.DType()]
		if !ok {
			return fmt.Errorf("save %s: %s has dtype %v, which safetensors cannot hold", file, name, t.DType())
		}
		shape, err := tensorShape(&t)
		if err != nil {
			return fmt.Errorf("save %s: %s: %w", file, name, err)
		}
		us := make([]uint64, len(shape))
		for i, d := range shape {
			us[i] = uint64(d)
		}
		views[name] = lazyView{t: &t, dtype: st, shape: us, n: uint64(numel(shape)) * uint64(t.DType().Size()), err: &viewErr}
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if err := safetensors.SerializeToWriter(views, metadata, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", file, err)
	}
	if viewErr != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", file, viewErr)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	return nil
}

// LoadSafetensors reads a safetensors file into vs by name (see
// LoadStateDict for opts and the report).
func LoadSafetensors(vs *nn.VarStore, file string, opts LoadOptions) (*LoadReport, error) {
	return LoadCheckpoint(vs, file, opts)
}

// isSafetensors reports whether file starts like a safetensors file: an
// 8-byte little-endian header length followed by a JSON object.
func isSafetensors(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var head [9]byte
	n, _ := f.Read(head[:])
	if n < 9 {
		return false, nil
	}
	hl := binary.LittleEndian.Uint64(head[:8])
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	return head[8] == '{' && hl > 1 && hl+8 <= uint64(st.Size()), nil
}

func readSafetensors(file string) (*StateDict, error) {
	buf, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	fromST := map[safetensors.DType]gotch.DType{}
	for g, s := range stDTypes {
		fromST[s] = g
	}
	sd := &StateDict{Tensors: map[string]*ts.Tensor{}, Source: file}
	for _, nv := range st.Tensors() {
		v := nv.TensorView
		dt, ok := fromST[v.DType()]
		if !ok {
			sd.Drop()
			return nil, fmt.Errorf("tensor %q: dtype %v not supported", nv.Name, v.DType())
		}
		shape := make([]int64, len(v.Shape()))
		for i, d := range v.Shape() {
			shape[i] = int64(d)
		}
		t, err := tensorFromBytes(v.Data(), shape, dt)
		if err != nil {
			sd.Drop()
			return nil, fmt.Errorf("tensor %q: %w", nv.Name, err)
		}
		sd.Names = append(sd.Names, nv.Name)
		sd.Tensors[nv.Name] = t
	}
	return sd, nil
}
