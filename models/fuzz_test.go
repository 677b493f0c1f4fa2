package models

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzReadStateDict feeds ReadStateDict (torch.save zip and legacy
// formats, nested checkpoints, pickled modules, safetensors) damaged
// files: it must return an error or a state dict, never panic or hang.
// The seed corpus, testdata/fuzz/FuzzReadStateDict/, is written by
// testdata/fuzz_seeds.py (torch.save of small state dicts and modules);
// the fuzzing pattern is described in data/fuzz_test.go.
//
//	go test ./models -run '^$' -fuzz '^FuzzReadStateDict$' -fuzztime 5m -parallel 1
func FuzzReadStateDict(f *testing.F) {
	// every seed is a valid file: check that it still reads, or the
	// target would only test rejections
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReadStateDict", "*"))
	for _, s := range seeds {
		if fuzzerName.MatchString(filepath.Base(s)) { // found by the fuzzer: not a valid file
			continue
		}
		b, err := readCorpusBytes(s)
		if err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		p := filepath.Join(f.TempDir(), filepath.Base(s)+".pth")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			f.Fatal(err)
		}
		sd, err := ReadStateDict(p)
		if err != nil {
			f.Fatalf("seed %s does not read: %v", s, err)
		}
		sd.Drop()
	}
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte("\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19."))
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		lockThread(t)
		p := filepath.Join(dir, "fuzz.pth")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sd, err := ReadStateDict(p)
		if err != nil {
			if sd != nil {
				t.Fatal("error with a state dict")
			}
			return
		}
		for _, name := range sd.Names {
			if sd.Tensors[name] == nil {
				t.Fatalf("tensor %q is nil", name)
			}
		}
		sd.Drop()
	})
}

// fuzzerName is how the fuzzer names the inputs it saves.
var fuzzerName = regexp.MustCompile(`^[0-9a-f]{16}$`)

// readCorpusBytes reads a `go test fuzz v1` file holding one []byte.
func readCorpusBytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		return nil, os.ErrInvalid
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
