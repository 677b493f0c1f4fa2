package featfile

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

func sample() *Features {
	return &Features{
		X: [][]float32{
			{1, -2.5, 3.25},
			{0, float32(math.Pi), -1e-7},
			{4, 5, 6},
			{-0.5, 1e30, 7},
		},
		Labels:  []int{0, 2, 1, -1},
		Preds:   []int{0, 1, 1, 2},
		Probs:   [][]float32{{0.7, 0.2, 0.1}, {0.1, 0.5, 0.4}, {0.2, 0.6, 0.2}, {0.3, 0.3, 0.4}},
		Classes: []string{"happy", "sad", "neutral"},
		Model:   "rmfer-enet-b2",
		Dataset: "rafdb/test",
		Meta:    map[string]string{"checkpoint": "runs/x/best.ckpt", "fold": "1"},
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "feats.safetensors")
	want := sample()
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	// Saving again replaces the file atomically and leaves no temp file.
	want.Preds, want.Probs = nil, nil
	want.Meta = nil
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip without optional tensors differs:\n got %+v\nwant %+v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries after Save, want 1 (temp file left?)", len(ents))
	}
}

func TestEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.safetensors")
	if err := Save(path, &Features{Labels: []int{}, Classes: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.N() != 0 || got.Dim() != 0 || len(got.Labels) != 0 || !reflect.DeepEqual(got.Classes, []string{"a"}) {
		t.Errorf("empty round trip: %+v", got)
	}
}

// TestLayout checks the bytes against the safetensors spec by hand.
func TestLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.safetensors")
	f := &Features{X: [][]float32{{1.5, -2}}, Labels: []int{3}, Classes: []string{"a", "b", "c", "d"}}
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	var feat, lab tensorInfo
	_ = json.Unmarshal(hdr["features"], &feat)
	_ = json.Unmarshal(hdr["labels"], &lab)
	// features: F32 [1,2] = 8 bytes at [0,8); labels: I64 [1] at [8,16).
	if feat.DType != "F32" || !reflect.DeepEqual(feat.Shape, []int64{1, 2}) || feat.DataOffsets != [2]int64{0, 8} {
		t.Errorf("features entry %+v", feat)
	}
	if lab.DType != "I64" || !reflect.DeepEqual(lab.Shape, []int64{1}) || lab.DataOffsets != [2]int64{8, 16} {
		t.Errorf("labels entry %+v", lab)
	}
	data := buf[8+n:]
	if len(data) != 16 {
		t.Fatalf("data section %d bytes, want 16", len(data))
	}
	// 1.5f = 0x3FC00000, -2f = 0xC0000000, little endian; then int64 3.
	wantData := []byte{0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0, 3, 0, 0, 0, 0, 0, 0, 0}
	if !reflect.DeepEqual(data, wantData) {
		t.Errorf("data bytes % x, want % x", data, wantData)
	}
	var meta map[string]string
	_ = json.Unmarshal(hdr["__metadata__"], &meta)
	if meta["classes"] != `["a","b","c","d"]` || meta["format"] != FormatName || meta["version"] != FormatVersion {
		t.Errorf("metadata %v", meta)
	}
}

func TestCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := Save(good, sample()); err != nil {
		t.Fatal(err)
	}
	buf, _ := os.ReadFile(good)
	hlen := int(binary.LittleEndian.Uint64(buf[:8]))

	mut := func(fn func(b []byte) []byte) []byte { return fn(append([]byte(nil), buf...)) }
	cases := map[string]struct {
		data []byte
		want string
	}{
		"tiny":          {buf[:5], "shorter than"},
		"cut header":    {buf[:8+hlen/2], "truncated"},
		"cut data":      {buf[:len(buf)-3], "truncated"},
		"trailing":      {append(append([]byte(nil), buf...), 1, 2, 3), "trailing garbage"},
		"huge length":   {mut(func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<40); return b }), "exceeds"},
		"not json":      {mut(func(b []byte) []byte { b[8+1] = '#'; return b }), "not valid JSON"},
		"not an object": {mut(func(b []byte) []byte { b[8] = '['; return b }), "does not start"},
		"bad dtype": {mut(func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"dtype":"I64"`, `"dtype":"Q64"`, 1))
		}), "unknown dtype"},
		"wrong dtype": {mut(func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"dtype":"I64"`, `"dtype":"F64"`, 1))
		}), "want I64"},
	}
	for name, tc := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".safetensors")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: Load accepted a corrupt file", name)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q should name the path and contain %q", name, err, tc.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file error = %v", err)
	}
}

func TestSaveValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	bad := []*Features{
		{X: [][]float32{{1, 2}, {3}}, Labels: []int{0, 0}},                                            // ragged
		{X: [][]float32{{1}}, Labels: []int{0, 1}},                                                    // labels count
		{X: [][]float32{{1}}, Labels: []int{0}, Preds: []int{}},                                       // preds count
		{X: [][]float32{{1}}, Labels: []int{5}, Classes: []string{"a", "b"}},                          // label range
		{X: [][]float32{{1}}, Labels: []int{0}, Probs: [][]float32{{1}}, Classes: []string{"a", "b"}}, // probs width
		{X: [][]float32{{1}}, Labels: []int{0}, Meta: map[string]string{"model": "x"}},                // reserved key
		nil,
	}
	for i, f := range bad {
		if err := Save(path, f); err == nil {
			t.Errorf("case %d: Save accepted invalid features", i)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("case %d: error %q does not name the path", i, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed Save left a file behind")
	}
}

// TestPythonReads parses the file with an independent reader written from
// the spec in Python (json + numpy), and with the safetensors package when it
// is installed. Skipped when /usr/bin/python3 or numpy is missing.
func TestPythonReads(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("numpy not importable")
	}
	path := filepath.Join(t.TempDir(), "f.safetensors")
	if err := Save(path, sample()); err != nil {
		t.Fatal(err)
	}
	script := `
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", b[:8])
h = json.loads(b[8:8+n])
data = b[8+n:]
dt = {"F32": "<f4", "I64": "<i8"}
out = {}
for k, v in h.items():
    if k == "__metadata__":
        continue
    s, e = v["data_offsets"]
    out[k] = np.frombuffer(data[s:e], dtype=dt[v["dtype"]]).reshape(v["shape"]).tolist()
out["classes"] = json.loads(h["__metadata__"]["classes"])
out["model"] = h["__metadata__"]["model"]
try:
    from safetensors.numpy import load_file
    t = load_file(sys.argv[1])
    assert np.array_equal(t["features"], np.array(out["features"], dtype=np.float32))
    out["safetensors"] = True
except ImportError:
    out["safetensors"] = False
print(json.dumps(out))
`
	o, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python reader failed: %v\n%s", err, o)
	}
	var got struct {
		Features    [][]float64
		Labels      []int
		Preds       []int
		Probs       [][]float64
		Classes     []string
		Model       string
		Safetensors bool
	}
	if err := json.Unmarshal(o, &got); err != nil {
		t.Fatalf("python output %q: %v", o, err)
	}
	want := sample()
	for i, r := range want.X {
		for j, v := range r {
			if float32(got.Features[i][j]) != v {
				t.Errorf("python features[%d][%d] = %v, want %v", i, j, got.Features[i][j], v)
			}
		}
	}
	for i, r := range want.Probs {
		for j, v := range r {
			if float32(got.Probs[i][j]) != v {
				t.Errorf("python probs[%d][%d] = %v, want %v", i, j, got.Probs[i][j], v)
			}
		}
	}
	if !reflect.DeepEqual(got.Labels, want.Labels) || !reflect.DeepEqual(got.Preds, want.Preds) ||
		!reflect.DeepEqual(got.Classes, want.Classes) || got.Model != want.Model {
		t.Errorf("python read labels %v preds %v classes %v model %q", got.Labels, got.Preds, got.Classes, got.Model)
	}
	t.Logf("checked with numpy; safetensors package used: %v", got.Safetensors)
}

// TestInteropSafetensorsGo checks the format both ways against an
// independent Go implementation of the spec (github.com/nlpodyssey/safetensors,
// a port of the reference Rust crate, also used by models/checkpoint.go).
func TestInteropSafetensorsGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.safetensors")
	want := sample()
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		t.Fatalf("nlpodyssey/safetensors rejects our file: %v", err)
	}
	feat, ok := st.Tensor("features")
	if !ok || feat.DType() != safetensors.F32 || !reflect.DeepEqual(feat.Shape(), []uint64{4, 3}) {
		t.Fatalf("features view: ok=%v dtype=%v shape=%v", ok, feat.DType(), feat.Shape())
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(feat.Data()[4*4:])); got != want.X[1][1] {
		t.Errorf("features[1][1] read by the library = %v, want %v", got, want.X[1][1])
	}
	lab, _ := st.Tensor("labels")
	if got := int64(binary.LittleEndian.Uint64(lab.Data()[3*8:])); got != -1 {
		t.Errorf("labels[3] read by the library = %d, want -1", got)
	}
	_, meta, err := safetensors.ReadMetadata(buf)
	if err != nil {
		t.Fatal(err)
	}
	if m := meta.Metadata(); m["classes"] != `["happy","sad","neutral"]` || m["model"] != want.Model || m["fold"] != "1" {
		t.Errorf("metadata read by the library: %v", m)
	}

	// The other way: a file the library writes (its own tensor order and
	// an I32 label tensor) loads here.
	f32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	fv, _ := safetensors.NewTensorView(safetensors.F32, []uint64{2, 2}, f32(1, 2, 3, 4))
	lv, _ := safetensors.NewTensorView(safetensors.I32, []uint64{2}, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	out, err := safetensors.Serialize(map[string]safetensors.TensorView{"features": fv, "labels": lv},
		map[string]string{"classes": `["a","b"]`, "dataset": "d"})
	if err != nil {
		t.Fatal(err)
	}
	p2 := filepath.Join(t.TempDir(), "lib.safetensors")
	_ = os.WriteFile(p2, out, 0o644)
	got, err := Load(p2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.X, [][]float32{{1, 2}, {3, 4}}) || !reflect.DeepEqual(got.Labels, []int{1, 0}) ||
		!reflect.DeepEqual(got.Classes, []string{"a", "b"}) || got.Dataset != "d" {
		t.Errorf("library-written file loaded as %+v", got)
	}
}
