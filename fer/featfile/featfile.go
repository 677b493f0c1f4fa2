// Package featfile saves and loads per-sample features, labels and
// predictions (written by `fercli eval --dump-features FILE`, read by the
// t-SNE / MDS plots) as a safetensors file.
//
// # Format
//
// The file follows the safetensors layout
// (https://huggingface.co/docs/safetensors):
//
//	[8 bytes]  N, little-endian uint64: length of the JSON header
//	[N bytes]  JSON header, padded with spaces to a multiple of 8 bytes
//	[rest]     raw little-endian tensor data, tensors back to back
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets"}
// (offsets are [begin, end) relative to the start of the data section) and
// carries a "__metadata__" map of string to string. A feature file holds:
//
//	features  F32 [N, D]  one feature vector per sample (required)
//	labels    I64 [N]     true class index; -1 = unlabelled (required)
//	preds     I64 [N]     predicted class index (optional)
//	probs     F32 [N, C]  class probabilities (optional)
//
// and the metadata keys
//
//	format   "fer-features"
//	version  "1"
//	classes  JSON list of the C class names, e.g. ["happy","sad",...]
//	model    model name
//	dataset  dataset name (and split / fold)
//
// plus any caller-supplied keys (Features.Meta). In Python:
//
//	from safetensors.numpy import load_file, safe_open
//	t = load_file("feats.safetensors")          # t["features"], t["labels"], ...
//	meta = safe_open("feats.safetensors", "np").metadata()
//
// Load also accepts F64 features/probs and I32 labels/preds written by other
// tools.
//
// Why hand-written: the format is a few dozen lines of exactly specified
// code; writing it here streams the rows straight to the file (no second,
// byte-slice copy of a possibly large feature matrix, which
// github.com/nlpodyssey/safetensors' View interface needs) and lets Load
// say precisely what is wrong with a damaged file (which tensor is
// truncated, where a gap is). The tests check the output against the spec
// byte by byte, against nlpodyssey/safetensors in both directions, and
// against a numpy reader. Like everything here it is pure Go, so features can
// be read and plotted without libtorch.
package featfile

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Format identifiers written to the metadata.
const (
	FormatName    = "fer-features"
	FormatVersion = "1"
)

// maxHeader bounds the JSON header size (the safetensors reference
// implementation refuses headers above 100 MB).
const maxHeader = 100 << 20

// reserved metadata keys, set from Features fields.
var reserved = []string{"format", "version", "classes", "model", "dataset"}

// Features is the content of a feature file. Rows of X (and Probs) may alias
// one flat buffer; Save only reads them.
type Features struct {
	X       [][]float32 // N rows of D features; all rows the same length
	Labels  []int       // N true labels (-1 = unlabelled)
	Preds   []int       // N predicted labels, or nil
	Probs   [][]float32 // N rows of C class probabilities, or nil
	Classes []string    // class names, index = class id (may be empty)
	Model   string      // model name (metadata "model")
	Dataset string      // dataset name, split, fold (metadata "dataset")
	Meta    map[string]string
}

// N is the number of samples.
func (f *Features) N() int { return len(f.X) }

// Dim is the feature dimension (0 when there are no samples).
func (f *Features) Dim() int {
	if len(f.X) == 0 {
		return 0
	}
	return len(f.X[0])
}

// X64 returns the features converted to float64 rows (for gonum / plots).
func (f *Features) X64() [][]float64 {
	out := make([][]float64, len(f.X))
	for i, r := range f.X {
		out[i] = make([]float64, len(r))
		for j, v := range r {
			out[i][j] = float64(v)
		}
	}
	return out
}

// Validate checks the shapes: rectangular X, labels (and preds, probs when
// present) for every sample, probs as wide as Classes when both are set,
// labels and preds in range of Classes when it is set, and no reserved key
// in Meta.
func (f *Features) Validate() error {
	n, d := f.N(), f.Dim()
	for i, r := range f.X {
		if len(r) != d {
			return fmt.Errorf("features row %d has %d values, want %d (as row 0)", i, len(r), d)
		}
	}
	if len(f.Labels) != n {
		return fmt.Errorf("%d labels for %d feature rows", len(f.Labels), n)
	}
	if f.Preds != nil && len(f.Preds) != n {
		return fmt.Errorf("%d predictions for %d feature rows", len(f.Preds), n)
	}
	nc := len(f.Classes)
	if nc > 0 {
		for i, l := range f.Labels {
			if l < -1 || l >= nc {
				return fmt.Errorf("label %d of sample %d out of range [-1,%d) for %d classes", l, i, nc, nc)
			}
		}
		for i, p := range f.Preds {
			if p < 0 || p >= nc {
				return fmt.Errorf("prediction %d of sample %d out of range [0,%d)", p, i, nc)
			}
		}
	}
	if f.Probs != nil {
		if len(f.Probs) != n {
			return fmt.Errorf("%d probability rows for %d feature rows", len(f.Probs), n)
		}
		c := nc
		if c == 0 && n > 0 {
			c = len(f.Probs[0])
		}
		for i, r := range f.Probs {
			if len(r) != c {
				return fmt.Errorf("probability row %d has %d values, want %d", i, len(r), c)
			}
		}
	}
	for _, k := range reserved {
		if _, ok := f.Meta[k]; ok {
			return fmt.Errorf("metadata key %q is reserved (set the Features field instead)", k)
		}
	}
	return nil
}

// tensorInfo is one entry of the safetensors header.
type tensorInfo struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

type tensorData struct {
	name  string
	info  tensorInfo
	write func(w *bufio.Writer) error
}

// Save writes f to path atomically: the file is written to a temporary file
// in the same directory, synced and renamed over path, so a reader never sees
// a half-written file.
func Save(path string, f *Features) error {
	if err := save(path, f); err != nil {
		return fmt.Errorf("featfile: save %s: %w", path, err)
	}
	return nil
}

func save(path string, f *Features) error {
	if f == nil {
		return errors.New("nil features")
	}
	if err := f.Validate(); err != nil {
		return err
	}
	n, d := int64(f.N()), int64(f.Dim())
	var tensors []tensorData
	var off int64
	add := func(name, dtype string, shape []int64, elemSize int64, write func(*bufio.Writer) error) {
		size := elemSize
		for _, s := range shape {
			size *= s
		}
		tensors = append(tensors, tensorData{name, tensorInfo{dtype, shape, [2]int64{off, off + size}}, write})
		off += size
	}
	add("features", "F32", []int64{n, d}, 4, func(w *bufio.Writer) error { return writeF32Rows(w, f.X) })
	add("labels", "I64", []int64{n}, 8, func(w *bufio.Writer) error { return writeI64(w, f.Labels) })
	if f.Preds != nil {
		add("preds", "I64", []int64{n}, 8, func(w *bufio.Writer) error { return writeI64(w, f.Preds) })
	}
	if f.Probs != nil {
		c := int64(len(f.Classes))
		if n > 0 {
			c = int64(len(f.Probs[0]))
		}
		add("probs", "F32", []int64{n, c}, 4, func(w *bufio.Writer) error { return writeF32Rows(w, f.Probs) })
	}

	meta := map[string]string{"format": FormatName, "version": FormatVersion, "model": f.Model, "dataset": f.Dataset}
	classes := f.Classes
	if classes == nil {
		classes = []string{}
	}
	cj, err := json.Marshal(classes)
	if err != nil {
		return err
	}
	meta["classes"] = string(cj)
	for k, v := range f.Meta {
		meta[k] = v
	}
	header := map[string]any{"__metadata__": meta}
	for _, t := range tensors {
		header[t.name] = t.info
	}
	hj, err := json.Marshal(header) // map keys are sorted: deterministic output
	if err != nil {
		return err
	}
	// Pad with spaces so the data section starts 8-byte aligned, as the
	// reference writer does.
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	for _, t := range tensors {
		if err := t.write(w); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return nil
}

func writeF32Rows(w *bufio.Writer, rows [][]float32) error {
	var b [4]byte
	for _, r := range rows {
		for _, v := range r {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			if _, err := w.Write(b[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeI64(w *bufio.Writer, xs []int) error {
	var b [8]byte
	for _, v := range xs {
		binary.LittleEndian.PutUint64(b[:], uint64(int64(v)))
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

// Load reads a feature file written by Save (or by any safetensors writer
// using the tensor names and dtypes above). Truncated or corrupt files give
// an error naming the path and what is wrong.
func Load(path string) (*Features, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("featfile: load %s: %w", path, err)
	}
	f, err := parse(buf)
	if err != nil {
		return nil, fmt.Errorf("featfile: load %s: %w (not a valid fer feature file; re-create it with `fercli eval --dump-features`)", path, err)
	}
	return f, nil
}

func parse(buf []byte) (*Features, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte safetensors header length", len(buf))
	}
	hlen := binary.LittleEndian.Uint64(buf[:8])
	if hlen > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds %d bytes (corrupt file?)", hlen, maxHeader)
	}
	if uint64(len(buf)-8) < hlen {
		return nil, fmt.Errorf("truncated: header claims %d bytes but only %d follow", hlen, len(buf)-8)
	}
	hdr := buf[8 : 8+hlen]
	data := buf[8+hlen:]
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, errors.New("header does not start with '{'")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	meta := map[string]string{}
	infos := map[string]tensorInfo{}
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a string map: %w", err)
			}
			continue
		}
		var ti tensorInfo
		if err := json.Unmarshal(v, &ti); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %w", k, err)
		}
		infos[k] = ti
	}
	if err := checkOffsets(infos, int64(len(data))); err != nil {
		return nil, err
	}
	if fm, ok := meta["format"]; ok && fm != FormatName {
		return nil, fmt.Errorf("metadata format is %q, want %q", fm, FormatName)
	}
	if v, ok := meta["version"]; ok && v != FormatVersion {
		return nil, fmt.Errorf("format version %q is not supported (this build reads version %s)", v, FormatVersion)
	}

	f := &Features{Model: meta["model"], Dataset: meta["dataset"]}
	if cs, ok := meta["classes"]; ok && cs != "" {
		if err := json.Unmarshal([]byte(cs), &f.Classes); err != nil {
			return nil, fmt.Errorf("metadata classes is not a JSON list of strings: %w", err)
		}
	}
	for k, v := range meta {
		if !slices.Contains(reserved, k) {
			if f.Meta == nil {
				f.Meta = map[string]string{}
			}
			f.Meta[k] = v
		}
	}

	fi, ok := infos["features"]
	if !ok {
		return nil, errors.New(`no "features" tensor`)
	}
	x, err := floatMatrix("features", fi, data)
	if err != nil {
		return nil, err
	}
	f.X = x
	n := int64(len(x))
	li, ok := infos["labels"]
	if !ok {
		return nil, errors.New(`no "labels" tensor`)
	}
	if f.Labels, err = intVector("labels", li, data, n); err != nil {
		return nil, err
	}
	if pi, ok := infos["preds"]; ok {
		if f.Preds, err = intVector("preds", pi, data, n); err != nil {
			return nil, err
		}
	}
	if pi, ok := infos["probs"]; ok {
		if f.Probs, err = floatMatrix("probs", pi, data); err != nil {
			return nil, err
		}
		if int64(len(f.Probs)) != n {
			return nil, fmt.Errorf("probs has %d rows for %d samples", len(f.Probs), n)
		}
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

var dtypeSize = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// checkOffsets validates every entry and that the tensors tile the data
// section exactly (no gaps, no overlaps, nothing past the end).
func checkOffsets(infos map[string]tensorInfo, dataLen int64) error {
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, ti := range infos {
		es, ok := dtypeSize[ti.DType]
		if !ok {
			return fmt.Errorf("tensor %q: unknown dtype %q", name, ti.DType)
		}
		size := es
		for _, s := range ti.Shape {
			if s < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", name, ti.Shape)
			}
			if s > 0 && size > math.MaxInt64/s {
				return fmt.Errorf("tensor %q: shape %v overflows", name, ti.Shape)
			}
			size *= s
		}
		b, e := ti.DataOffsets[0], ti.DataOffsets[1]
		if b < 0 || e < b {
			return fmt.Errorf("tensor %q: bad data_offsets [%d,%d]", name, b, e)
		}
		if e-b != size {
			return fmt.Errorf("tensor %q: data_offsets span %d bytes but %s%v needs %d", name, e-b, ti.DType, ti.Shape, size)
		}
		if e > dataLen {
			return fmt.Errorf("truncated: tensor %q ends at byte %d of a %d-byte data section", name, e, dataLen)
		}
		spans = append(spans, span{name, b, e})
	}
	slices.SortFunc(spans, func(a, b span) int {
		if c := cmp.Compare(a.begin, b.begin); c != 0 {
			return c
		}
		return cmp.Compare(a.end, b.end)
	})
	var pos int64
	for _, s := range spans {
		if s.begin != pos {
			return fmt.Errorf("tensor %q starts at byte %d, expected %d (gap or overlap in data section)", s.name, s.begin, pos)
		}
		pos = s.end
	}
	if pos != dataLen {
		return fmt.Errorf("data section is %d bytes but tensors cover %d (trailing garbage or truncated)", dataLen, pos)
	}
	return nil
}

func floatMatrix(name string, ti tensorInfo, data []byte) ([][]float32, error) {
	if len(ti.Shape) != 2 {
		return nil, fmt.Errorf("tensor %q: shape %v, want 2-D [N, D]", name, ti.Shape)
	}
	n, d := int(ti.Shape[0]), int(ti.Shape[1])
	b := data[ti.DataOffsets[0]:ti.DataOffsets[1]]
	flat := make([]float32, n*d)
	switch ti.DType {
	case "F32":
		for i := range flat {
			flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range flat {
			flat[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s, want F32 (or F64)", name, ti.DType)
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return rows, nil
}

func intVector(name string, ti tensorInfo, data []byte, n int64) ([]int, error) {
	if len(ti.Shape) != 1 || ti.Shape[0] != n {
		return nil, fmt.Errorf("tensor %q: shape %v, want [%d] (one per feature row)", name, ti.Shape, n)
	}
	b := data[ti.DataOffsets[0]:ti.DataOffsets[1]]
	out := make([]int, n)
	switch ti.DType {
	case "I64":
		for i := range out {
			out[i] = int(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "I32":
		for i := range out {
			out[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s, want I64 (or I32)", name, ti.DType)
	}
	return out, nil
}
