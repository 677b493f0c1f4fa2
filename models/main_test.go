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
	backboneFixtures.remove()
	qcsFixtureSet.remove()
	if rmferDir != "" && os.Getenv("FER_RMFER_FIXTURES") == "" {
		os.RemoveAll(rmferDir)
	}
	os.Exit(code)
}

// The PyTorch side of the tests: scripts in testdata/ (make_fixtures.py
// for the backbones, qcs_reference.py for QCS), each run once per test
// binary with Debian's /usr/bin/python3 (the python3 on PATH may have no
// torch), writing weights, inputs and reference outputs to a temp dir.
const systemPython = "/usr/bin/python3"

// pyFixtures is one reference script's output directory, generated on
// first use (once per test binary) unless Env names a directory the script
// already filled (saves its run time while developing).
type pyFixtures struct {
	Script   string // in testdata/
	Env      string // e.g. FER_MODELS_FIXTURES
	MetaFile string // JSON written by the script
	Probe    string // Python imports the script needs

	once sync.Once
	dir  string
	meta map[string]json.RawMessage
	err  error
	skip string
	kept bool // dir came from Env: never removed
}

var (
	backboneFixtures = &pyFixtures{Script: "make_fixtures.py", Env: "FER_MODELS_FIXTURES", MetaFile: "meta.json", Probe: "torch, torchvision"}
	// qcsFixtureSet is testdata/qcs_reference.py's (qcs_test.go).
	qcsFixtureSet = &pyFixtures{Script: "qcs_reference.py", Env: "FER_QCS_FIXTURES", MetaFile: "qcs_meta.json", Probe: "torch, numpy"}
)

// get returns the fixture directory, generating it on first use. It skips
// the test only when /usr/bin/python3 cannot import the script's modules;
// any other failure of the script fails the test.
func (f *pyFixtures) get(t *testing.T) string {
	t.Helper()
	f.once.Do(f.generate)
	if f.skip != "" {
		t.Skip(f.skip)
	}
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.dir
}

func (f *pyFixtures) generate() {
	readMeta := func() {
		raw, err := os.ReadFile(filepath.Join(f.dir, f.MetaFile))
		if err == nil {
			err = json.Unmarshal(raw, &f.meta)
		}
		f.err = err
	}
	if dir := os.Getenv(f.Env); dir != "" {
		f.dir, f.kept = dir, true
		readMeta()
		return
	}
	probe := exec.Command(systemPython, "-c", "import "+f.Probe)
	if out, err := probe.CombinedOutput(); err != nil {
		f.skip = fmt.Sprintf("PyTorch reference unavailable: %s cannot import %s (%v: %s); install python3-torch and python3-torchvision (setup-gotch.sh does)", systemPython, f.Probe, err, out)
		return
	}
	dir, err := os.MkdirTemp("", "fer-models-fixtures-")
	if err != nil {
		f.err = err
		return
	}
	f.dir = dir
	start := time.Now()
	cmd := exec.Command(systemPython, filepath.Join("testdata", f.Script), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.err = fmt.Errorf("testdata/%s: %v\n%s", f.Script, err, out)
		return
	}
	fmt.Printf("models: PyTorch fixtures of %s written in %.1fs\n", f.Script, time.Since(start).Seconds())
	readMeta()
}

// remove deletes a generated directory.
func (f *pyFixtures) remove() {
	if f.dir != "" && !f.kept {
		os.RemoveAll(f.dir)
	}
}

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

// fixtures returns make_fixtures.py's directory (backbone references).
func fixtures(t *testing.T) string { return backboneFixtures.get(t) }

func metaFor(t *testing.T, name string) modelMeta {
	t.Helper()
	fixtures(t)
	raw, ok := backboneFixtures.meta[name]
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
