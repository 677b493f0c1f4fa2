package models

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"
)

// Reader for files written by torch.save: the zip format (PyTorch ≥ 1.6)
// and the legacy format (magic number, protocol, sys info, pickle, storage
// keys, raw storages) that older face-recognition checkpoints such as
// face.evoLVe's IR-50 use. The pickle machine is gotch's
// (pickle.Unpickler); what this file adds over gotch's pickle.Decode:
//
//   - storages are read as raw bytes (gotch decodes element by element and
//     copies each tensor three times);
//   - nested checkpoints ({"epoch": 7, "state_dict": {...}}), non-tensor
//     values (numbers, strings, numpy scalars) and 0-dim tensors are
//     handled instead of failing or being reshaped;
//   - _rebuild_tensor_v2 with the metadata argument of newer PyTorch, and
//     _rebuild_parameter_with_state;
//   - errors instead of log.Fatal/panic, and the legacy format, which
//     gotch's reader only half implements.

// storageClass is a torch.<Type>Storage class named in the pickle.
type storageClass struct {
	name  string
	dtype gotch.DType
}

var storageClasses = map[string]gotch.DType{
	"FloatStorage":    gotch.Float,
	"DoubleStorage":   gotch.Double,
	"HalfStorage":     gotch.Half,
	"BFloat16Storage": gotch.BFloat16,
	"LongStorage":     gotch.Int64,
	"IntStorage":      gotch.Int,
	"ShortStorage":    gotch.Int16,
	"CharStorage":     gotch.Int8,
	"ByteStorage":     gotch.Uint8,
	"BoolStorage":     gotch.Bool,
}

// storageRef is one storage: its key in the file and element type; data
// is filled lazily (zip) or after the pickle (legacy).
type storageRef struct {
	key   string
	dtype gotch.DType
	numel int64
	data  []byte
	read  bool
}

// tensorRef is a tensor as _rebuild_tensor describes it: a view (offset,
// size, stride, in elements) into a storage.
type tensorRef struct {
	storage *storageRef
	offset  int64
	size    []int64
	stride  []int64
}

// opaque stands for any other Python object in a checkpoint (numpy
// scalars, argparse namespaces, ...): kept, never interpreted.
type opaque struct {
	class string
	args  []interface{}
	state interface{}
}

func (o *opaque) PySetState(state interface{}) error { o.state = state; return nil }

type opaqueClass struct{ name string }

func (c opaqueClass) Call(args ...interface{}) (interface{}, error) {
	return &opaque{class: c.name, args: args}, nil
}

func (c opaqueClass) PyNew(args ...interface{}) (interface{}, error) { return c.Call(args...) }

// rebuildTensor is torch._utils._rebuild_tensor(_v2).
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...interface{}) (interface{}, error) {
	// (storage, offset, size, stride[, requires_grad, hooks[, metadata]])
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor: %d arguments, want at least 4", len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: storage is %T", args[0])
	}
	off, ok := args[1].(int)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: offset is %T", args[1])
	}
	size, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor size: %w", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor stride: %w", err)
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor: size %v and stride %v differ in rank", size, stride)
	}
	return &tensorRef{storage: st, offset: int64(off), size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(_with_state): the
// Parameter is its data tensor.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter: no arguments")
	}
	if _, ok := args[0].(*tensorRef); !ok {
		return nil, fmt.Errorf("_rebuild_parameter: data is %T", args[0])
	}
	return args[0], nil
}

func intTuple(v interface{}) ([]int64, error) {
	t, ok := v.(*pickle.Tuple)
	if !ok {
		return nil, fmt.Errorf("want a tuple, got %T", v)
	}
	out := make([]int64, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok {
			return nil, fmt.Errorf("element %d is %T", i, t.Get(i))
		}
		out[i] = int64(n)
	}
	return out, nil
}

func findClass(module, name string) (interface{}, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return rebuildParameter{}, nil
	}
	if module == "torch" {
		if dt, ok := storageClasses[name]; ok {
			return &storageClass{name: name, dtype: dt}, nil
		}
	}
	if strings.HasPrefix(module, "torch") && strings.Contains(name, "rebuild") {
		return nil, fmt.Errorf("unsupported tensor kind %s.%s (sparse, quantized or device tensors cannot be read)", module, name)
	}
	return opaqueClass{name: module + "." + name}, nil
}

// pickleObject is a decoded torch.save file: the unpickled object graph
// and a way to fetch storage bytes.
type pickleObject struct {
	root  interface{}
	fetch func(*storageRef) error
	close func() error
}

// readTorchFile unpickles a torch.save file without reading tensor data.
func readTorchFile(file string) (*pickleObject, error) {
	if zr, err := zip.OpenReader(file); err == nil {
		obj, err := readZipPickle(zr)
		if err != nil {
			zr.Close()
			return nil, err
		}
		return obj, nil
	}
	return readLegacyPickle(file)
}

func readZipPickle(zr *zip.ReadCloser) (*pickleObject, error) {
	records := map[string]*zip.File{}
	var dataPkl string
	for _, f := range zr.File {
		records[f.Name] = f
		switch path.Base(f.Name) {
		case "data.pkl":
			dataPkl = f.Name
		case "constants.pkl":
			return nil, errors.New("this is a TorchScript archive (torch.jit.save); save the weights with torch.save(model.state_dict(), path) instead")
		}
	}
	if dataPkl == "" {
		return nil, errors.New("zip file without data.pkl: not written by torch.save")
	}
	prefix := strings.TrimSuffix(dataPkl, "data.pkl")
	if bo, ok := records[prefix+"byteorder"]; ok {
		rc, err := bo.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("byte order %q not supported (only little-endian)", s)
		}
	}
	storages := map[string]*storageRef{}
	rc, err := records[dataPkl].Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	u := pickle.NewUnpickler(bufio.NewReader(rc))
	u.FindClass = findClass
	u.PersistentLoad = func(pid interface{}) (interface{}, error) {
		// ('storage', storage_type, key, location, numel)
		t, ok := pid.(*pickle.Tuple)
		if !ok || t.Len() < 5 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("unexpected persistent id %#v", pid)
		}
		return storageFor(storages, t)
	}
	root, err := unpickle(&u)
	if err != nil {
		return nil, fmt.Errorf("unpickle data.pkl: %w", err)
	}
	fetch := func(s *storageRef) error {
		if s.read {
			return nil
		}
		f, ok := records[prefix+"data/"+s.key]
		if !ok {
			return fmt.Errorf("storage %q missing from the archive", s.key)
		}
		// torch.save stores records uncompressed; a compressed one could
		// inflate to any size
		if f.Method != zip.Store || f.UncompressedSize64 != f.CompressedSize64 {
			return fmt.Errorf("storage %q: compressed record (method %d, %d bytes for %d): torch.save does not write those", s.key, f.Method, f.CompressedSize64, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			return fmt.Errorf("storage %q: %w", s.key, err)
		}
		s.data, s.read = data, true
		return nil
	}
	return &pickleObject{root: root, fetch: fetch, close: zr.Close}, nil
}

func storageFor(storages map[string]*storageRef, t *pickle.Tuple) (*storageRef, error) {
	cls, ok := t.Get(1).(*storageClass)
	if !ok {
		return nil, fmt.Errorf("storage type %#v not supported", t.Get(1))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, fmt.Errorf("storage key %#v", t.Get(2))
	}
	n, ok := t.Get(4).(int)
	if !ok {
		return nil, fmt.Errorf("storage size %#v", t.Get(4))
	}
	if s, ok := storages[key]; ok {
		return s, nil
	}
	s := &storageRef{key: key, dtype: cls.dtype, numel: int64(n)}
	storages[key] = s
	return s, nil
}

// legacy format magic number and protocol version (torch/serialization.py)
const (
	legacyMagic    = "1950a86a20f9469cfc6c"
	legacyProtocol = 1001
)

func readLegacyPickle(file string) (*pickleObject, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	head, err := r.Peek(2)
	if err != nil || head[0] != 0x80 {
		return nil, errors.New("neither a zip archive nor a pickle: not a file written by torch.save (or corrupt)")
	}
	next := func() (interface{}, error) {
		u := pickle.NewUnpickler(r)
		u.FindClass = findClass
		return unpickle(&u)
	}
	magic, err := next()
	if err != nil {
		return nil, fmt.Errorf("read magic number: %w", err)
	}
	if n, ok := magic.(*big.Int); !ok || n.Text(16) != legacyMagic {
		return nil, errors.New("a pickle, but not one written by torch.save (wrong magic number)")
	}
	proto, err := next()
	if err != nil {
		return nil, fmt.Errorf("read protocol version: %w", err)
	}
	if n, ok := proto.(int); !ok || n != legacyProtocol {
		return nil, fmt.Errorf("legacy torch.save protocol %v not supported", proto)
	}
	if _, err := next(); err != nil { // sys info
		return nil, fmt.Errorf("read sys info: %w", err)
	}
	storages := map[string]*storageRef{}
	u := pickle.NewUnpickler(r)
	u.FindClass = findClass
	u.PersistentLoad = func(pid interface{}) (interface{}, error) {
		// ('storage', storage_type, root_key, location, numel, view_metadata)
		t, ok := pid.(*pickle.Tuple)
		if !ok || t.Len() < 6 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("unexpected persistent id %#v", pid)
		}
		if t.Get(5) != nil {
			return nil, errors.New("storage views (pre-0.4 torch.save) not supported")
		}
		return storageFor(storages, t)
	}
	root, err := unpickle(&u)
	if err != nil {
		return nil, fmt.Errorf("unpickle: %w", err)
	}
	keysObj, err := next()
	if err != nil {
		return nil, fmt.Errorf("read storage keys: %w", err)
	}
	keys, ok := keysObj.(*pickle.List)
	if !ok {
		return nil, fmt.Errorf("storage keys are %T", keysObj)
	}
	var sizeBuf [8]byte
	for _, k := range *keys {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("storage key %#v", k)
		}
		s, ok := storages[key]
		if !ok {
			return nil, fmt.Errorf("storage %q listed but never used", key)
		}
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		n := binary.LittleEndian.Uint64(sizeBuf[:])
		// the element count comes from the file: never allocate more than
		// the file can hold
		if n > uint64(size)/uint64(s.dtype.Size()) {
			return nil, fmt.Errorf("storage %q: %d elements declared, the %d-byte file cannot hold them (cut short or damaged)", key, n, size)
		}
		s.data = make([]byte, n*uint64(s.dtype.Size()))
		if _, err := io.ReadFull(r, s.data); err != nil {
			return nil, fmt.Errorf("storage %q (%d elements): %w", key, n, err)
		}
		s.read = true
	}
	fetch := func(s *storageRef) error {
		if !s.read {
			return fmt.Errorf("storage %q has no data in the file", s.key)
		}
		return nil
	}
	return &pickleObject{root: root, fetch: fetch, close: func() error { return nil }}, nil
}

// unpickle runs gotch's unpickler. On a damaged pickle it can panic (a
// type assertion on the wrong stack value, a gotch fatal path): that is a
// malformed file, returned as an error, not a crash.
func unpickle(u *pickle.Unpickler) (v interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed pickle (%v)", r)
		}
	}()
	return u.Load()
}

// entry is one key/value of a pickled dict, in file order.
type entry struct {
	key   string
	value interface{}
}

// dictEntries lists a pickled dict or OrderedDict in order; ok is false
// for other values. Non-string keys are skipped.
func dictEntries(v interface{}) ([]entry, bool) {
	var out []entry
	switch d := v.(type) {
	case *pickle.Dict:
		for _, e := range *d {
			if k, ok := e.Key.(string); ok {
				out = append(out, entry{k, e.Value})
			}
		}
	case *pickle.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*pickle.OrderedDictEntry)
			if k, ok := e.Key.(string); ok {
				out = append(out, entry{k, e.Value})
			}
		}
	default:
		return nil, false
	}
	return out, true
}

// materialise turns a tensorRef into a CPU tensor holding a copy of the
// referenced elements.
func materialise(ref *tensorRef, fetch func(*storageRef) error) (*ts.Tensor, error) {
	if err := fetch(ref.storage); err != nil {
		return nil, err
	}
	st := ref.storage
	elem := int64(st.dtype.Size())
	n := int64(len(st.data)) / elem
	outside := fmt.Errorf("view (offset %d, size %v, stride %v) outside storage %q of %d elements",
		ref.offset, ref.size, ref.stride, st.key, n)
	// sizes and strides from a damaged file: no negative values, and no
	// products that overflow (checked against the storage as they grow)
	count := int64(1)
	for i, d := range ref.size {
		if d < 0 || ref.stride[i] < 0 {
			return nil, outside
		}
		if d > 0 && count > math.MaxInt64/d {
			return nil, outside
		}
		count *= d
	}
	if count == 0 {
		return tensorFromBytes(nil, ref.size, st.dtype)
	}
	// last element the view touches must lie inside the storage
	last := ref.offset
	if last < 0 || last >= n {
		return nil, outside
	}
	for i, d := range ref.size {
		if d > 1 && ref.stride[i] > (n-1-last)/(d-1) {
			return nil, outside
		}
		last += (d - 1) * ref.stride[i]
	}
	if isContiguous(ref.size, ref.stride) {
		lo, hi := ref.offset*elem, (ref.offset+count)*elem
		return tensorFromBytes(st.data[lo:hi], ref.size, st.dtype)
	}
	base, err := tensorFromBytes(st.data[:n*elem], []int64{n}, st.dtype)
	if err != nil {
		return nil, err
	}
	defer base.Drop()
	view, err := base.AsStrided(ref.size, ref.stride, []int64{ref.offset}, false)
	if err != nil {
		return nil, err
	}
	defer view.Drop()
	return view.Contiguous(false) // a compact copy, not a view of the storage
}

func isContiguous(size, stride []int64) bool {
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
