package models

import (
	"encoding/json"
	"fmt"
	"github.com/fer-research/fer/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestMain locks the OS thread (libtorch's grad mode is per thread;
// GOTCH.md) and sets up the runtime once. Add no other TestMain to this
// package.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread()
	if _, err := fer.Setup(fer.RuntimeOptions{Device: "cpu", Seed: 1}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	removeStaleFixtures()
	code := m.Run()
	if fixtureDir != "" && os.Getenv("FER_MODELS_FIXTURES") == "" {
		os.RemoveAll(fixtureDir)
	}
	if rmferDir != "" && os.Getenv("FER_RMFER_FIXTURES") == "" {
		os.RemoveAll(rmferDir)
	}
	os.Exit(code)
}

// The PyTorch side of the tests: testdata/make_fixtures.py, run once per
// test binary with Debian's /usr/bin/python3 (the python3 on PATH may have
// no torch), writing weights, inputs and reference outputs to a temp dir.
const systemPython = "/usr/bin/python3"

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureMeta map[string]json.RawMessage
	fixtureErr  error
	fixtureSkip string
)

// modelMeta is one model's entry of meta.json.
type modelMeta struct {
	Seed      int64     `json:"seed"`
	TrainSeed int64     `json:"train_seed"`
	Params    int64     `json:"params"`
	Input     []int64   `json:"input"`
	Stages    [][]int64 `json:"stages"`
	FirstConv string    `json:"first_conv"`
	FirstBN   string    `json:"first_bn"`
}

// removeStaleFixtures deletes fixture directories (about 1 GB each) that
// test binaries killed mid-run left behind more than two hours ago.
func removeStaleFixtures() {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "fer-models-fixtures-*"))
	for _, dir := range old {
		if st, err := os.Stat(dir); err == nil && time.Since(st.ModTime()) > 2*time.Hour {
			os.RemoveAll(dir)
		}
	}
}

// fixtures returns the fixture directory, generating it on first use. It
// skips the test only when /usr/bin/python3 cannot import torch and
// torchvision; any other failure of the script fails the test.
func fixtures(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() {
		// FER_MODELS_FIXTURES names a directory already filled by
		// make_fixtures.py (saves ~20 s per run while developing).
		if dir := os.Getenv("FER_MODELS_FIXTURES"); dir != "" {
			raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
			if err == nil {
				err = json.Unmarshal(raw, &fixtureMeta)
			}
			fixtureDir, fixtureErr = dir, err
			return
		}
		probe := exec.Command(systemPython, "-c", "import torch, torchvision")
		if out, err := probe.CombinedOutput(); err != nil {
			fixtureSkip = fmt.Sprintf("PyTorch reference unavailable: %s cannot import torch, torchvision (%v: %s); install python3-torch and python3-torchvision (setup-gotch.sh does)", systemPython, err, out)
			return
		}
		dir, err := os.MkdirTemp("", "fer-models-fixtures-")
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureDir = dir
		start := time.Now()
		cmd := exec.Command(systemPython, filepath.Join("testdata", "make_fixtures.py"), dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			fixtureErr = fmt.Errorf("testdata/make_fixtures.py: %v\n%s", err, out)
			return
		}
		fmt.Printf("models: PyTorch fixtures written in %.1fs\n", time.Since(start).Seconds())
		raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		if err == nil {
			err = json.Unmarshal(raw, &fixtureMeta)
		}
		fixtureErr = err
	})
	if fixtureSkip != "" {
		t.Skip(fixtureSkip)
	}
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureDir
}

func metaFor(t *testing.T, name string) modelMeta {
	t.Helper()
	fixtures(t)
	raw, ok := fixtureMeta[name]
	if !ok {
		t.Fatalf("meta.json has no entry %q", name)
	}
	var m modelMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func readFixture(t *testing.T, file string) *StateDict {
	t.Helper()
	sd, err := ReadStateDict(filepath.Join(fixtures(t), file))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Drop)
	return sd
}

func tensorOf(t *testing.T, sd *StateDict, name string) *ts.Tensor {
	t.Helper()
	x, ok := sd.Tensors[name]
	if !ok {
		t.Fatalf("%s has no tensor %q", sd.Source, name)
	}
	return x
}

// maxAbsDiff is max|a−b| (shapes must match).
func maxAbsDiff(t *testing.T, a, b *ts.Tensor) float64 {
	t.Helper()
	as, bs := a.MustSize(), b.MustSize()
	if fmt.Sprint(as) != fmt.Sprint(bs) {
		t.Fatalf("shape %v vs %v", as, bs)
	}
	d := a.MustSub(b, false)
	m := d.MustAbs(true).MustMax(true)
	v := m.Float64Values(true)[0]
	return v
}

// maxAbs is max|a|.
func maxAbs(a *ts.Tensor) float64 {
	return a.MustAbs(false).MustMax(true).Float64Values(true)[0]
}

// trainableCount sums the elements of the VarStore's trainable variables.
func trainableCount(vs *nn.VarStore) int64 {
	var n int64
	for _, v := range vs.TrainableVariables() {
		n += numel(v.MustSize())
	}
	return n
}

// lockThread pins the test's goroutine to its OS thread until the test
// ends: libtorch's grad mode is per thread, and each test runs on its own
// goroutine (TestMain's lock does not cover it).
func lockThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func newCPUStore() *nn.VarStore { return nn.NewVarStore(gotch.CPU) }
