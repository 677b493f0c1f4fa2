package fer

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch/nn"
)

// Fuzz targets of package fer. The pattern every parser's target follows
// (see also data/fuzz_test.go):
//
//   - one Fuzz<Format> per reader, calling the reader on the fuzzed bytes
//     exactly as it reads a file;
//   - seeds added with f.Add: a valid input written the way the real tool
//     writes it, plus its truncations and small edits, so the corpus
//     reaches the parser's deep states; `go test ./...` runs every seed
//     (and any crasher saved under testdata/fuzz/<FuzzName>/);
//   - the property: no panic, no hang; the reader either returns an error
//     or a result that is consistent with its contract.
//
// Fuzz one target at a time, e.g.
//
//	go test ./fer -run '^$' -fuzz '^FuzzLoadCheckpoint$' -fuzztime 5m -parallel 1

// checkpointSeed is a checkpoint of the tiny test model with optimiser
// state, as SaveCheckpoint writes it.
func checkpointSeed(f *testing.F) []byte {
	f.Helper()
	vs := nn.NewVarStore(cpu)
	m, err := NewModel(vs, ModelSpec{Name: "test-tiny", NumClasses: 3, InputShape: []int64{2, 2}})
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "seed.ckpt")
	if err := SaveCheckpoint(path, m, nil, CheckpointMeta{Model: "test-tiny", Epoch: 1, Step: 3, Config: "model: {name: test-tiny}\n"}); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzLoadCheckpoint feeds LoadCheckpoint (libtorch's archive reader
// behind it) damaged checkpoints: it must return an error or a checkpoint,
// never crash.
func FuzzLoadCheckpoint(f *testing.F) {
	lockThread(f)
	good := checkpointSeed(f)
	// the seed itself must load, or the target tests nothing
	seedPath := filepath.Join(f.TempDir(), "good.ckpt")
	if err := os.WriteFile(seedPath, good, 0o644); err != nil {
		f.Fatal(err)
	}
	if lc, err := LoadCheckpoint(seedPath); err != nil {
		f.Fatalf("the seed checkpoint does not load: %v", err)
	} else {
		lc.Drop()
	}
	f.Add(good)
	for _, n := range []int{0, 1, 4, 30, 100, len(good) / 2, len(good) - 22, len(good) - 1} {
		f.Add(good[:n])
	}
	for _, at := range []int{10, 64, len(good) / 3, len(good) - 30} {
		b := bytes.Clone(good)
		b[at] ^= 0xff
		f.Add(b)
	}
	f.Add([]byte("PK\x03\x04 not really a zip"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		lockThread(t)
		path := filepath.Join(dir, "fuzz.ckpt")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		lc, err := LoadCheckpoint(path)
		if err != nil {
			if lc != nil {
				t.Fatal("error with a checkpoint")
			}
			return
		}
		if lc.Meta.Format != CheckpointFormat {
			t.Fatalf("accepted format %d", lc.Meta.Format)
		}
		lc.Drop()
	})
}

// FuzzCheckpointRecord rewrites one record of a valid checkpoint (the
// pickled module data.pkl, constants.pkl, the __meta__ tensor's bytes, a
// tensor record, the version) with fuzzed bytes and a correct CRC, so that
// the archive check passes and checkPickle, libtorch's unpickler and fer's
// meta decoding see the damage.
//
// The TorchScript code records (code/__torch__.py) are left alone: libtorch
// compiles that Python source when it loads the archive, and its compiler
// crashed (SIGSEGV) on fuzzed source. Random damage never reaches it (the
// CRC check rejects it first); a file crafted to pass the CRC can, which
// makes a checkpoint trusted input, as a torch.load file is in PyTorch.
func FuzzCheckpointRecord(f *testing.F) {
	lockThread(f)
	good := checkpointSeed(f)
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		f.Fatal(err)
	}
	type record struct {
		hdr  zip.FileHeader
		data []byte
	}
	var recs []record
	for _, e := range zr.File {
		rc, err := e.Open()
		if err != nil {
			f.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			f.Fatal(err)
		}
		recs = append(recs, record{e.FileHeader, b})
	}
	var targets []int // the records fuzzed
	for i, r := range recs {
		if strings.Contains(r.hdr.Name, "/code/") {
			continue
		}
		targets = append(targets, i)
		f.Add(uint8(len(targets)-1), r.data)
		if len(r.data) > 2 {
			f.Add(uint8(len(targets)-1), r.data[:len(r.data)/2])
			b := bytes.Clone(r.data)
			b[len(b)/3] ^= 0x5a
			f.Add(uint8(len(targets)-1), b)
		}
	}
	dir := f.TempDir()
	// rebuild writes the archive with record which (-1: none) replaced
	rebuild := func(t testing.TB, which int, content []byte) string {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, r := range recs {
			data := r.data
			if i == which {
				data = content
			}
			w, err := zw.CreateHeader(&zip.FileHeader{Name: r.hdr.Name, Method: r.hdr.Method})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "record.ckpt")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// the rebuilt archive without changes must load (libtorch does not
	// need the 64-byte record alignment it writes)
	if lc, err := LoadCheckpoint(rebuild(f, -1, nil)); err != nil {
		f.Fatalf("the rebuilt seed checkpoint does not load: %v", err)
	} else {
		lc.Drop()
	}
	f.Fuzz(func(t *testing.T, which uint8, content []byte) {
		lockThread(t)
		lc, err := LoadCheckpoint(rebuild(t, targets[int(which)%len(targets)], content))
		if err == nil {
			lc.Drop()
		}
	})
}
