package fer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// failAfter is a writer that accepts n bytes, then fails every write.
type failAfter struct {
	w     io.Writer
	n     int
	sizes *[]int // records the size of each write when not nil
}

var errInjected = errors.New("injected write failure")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.sizes != nil {
		*f.sizes = append(*f.sizes, len(p))
	}
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	k, _ := f.w.Write(p[:f.n])
	f.n = 0
	return k, errInjected
}

// A checkpoint write that fails at any byte offset (a full disk, an I/O
// error) returns an error, removes its temporary file and leaves the
// previous checkpoint intact. libtorch's writer calls the Go writer once
// per chunk, so failing inside a chunk is the same failure as failing at
// its start; the test fails at every byte offset all the same.
func TestCheckpointWriteFailsCleanlyAtEveryOffset(t *testing.T) {
	lockThread(t)
	vs := nn.NewVarStore(cpu)
	m, err := NewModel(vs, ModelSpec{Name: "test-tiny", NumClasses: 3, InputShape: []int64{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "last.ckpt")
	meta := CheckpointMeta{Model: "test-tiny", Epoch: 1, Step: 7, Config: "model: {name: test-tiny}\n"}
	if err := SaveCheckpoint(path, m, nil, meta); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	// the write sizes of a complete save
	var sizes []int
	checkpointWriter = func(w io.Writer) io.Writer { return &failAfter{w: w, n: 1 << 40, sizes: &sizes} }
	defer func() { checkpointWriter = func(w io.Writer) io.Writer { return w } }()
	meta.Step = 8
	if err := SaveCheckpoint(filepath.Join(dir, "probe.ckpt"), m, nil, meta); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "probe.ckpt"))
	total := 0
	for _, n := range sizes {
		total += n
	}
	if total != len(good) {
		t.Fatalf("the save wrote %d bytes in %d writes, the file has %d", total, len(sizes), len(good))
	}
	for k := 0; k < total; k++ {
		checkpointWriter = func(w io.Writer) io.Writer { return &failAfter{w: w, n: k} }
		err := SaveCheckpoint(path, m, nil, meta)
		if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), path) {
			t.Fatalf("failure at byte %d: %v", k, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("failure at byte %d: multi-line error %q", k, err)
		}
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
		t.Fatal("the previous checkpoint changed")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("files left behind: %v", ents)
	}
	if m2, err := ReadCheckpointMeta(path); err != nil || m2.Step != 7 {
		t.Fatalf("previous checkpoint: %+v %v", m2, err)
	}
}

// A checkpoint cut short at any point, or with a flipped byte, is an
// error that says it is damaged, never a crash.
func TestDamagedCheckpointIsAnError(t *testing.T) {
	lockThread(t)
	vs := nn.NewVarStore(cpu)
	m, err := NewModel(vs, ModelSpec{Name: "test-tiny", NumClasses: 3, InputShape: []int64{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := SaveCheckpoint(path, m, nil, CheckpointMeta{Model: "test-tiny", Config: "model: {name: test-tiny}\n"}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	for _, n := range []int{0, 100, len(good) / 2, len(good) - 1} {
		os.WriteFile(path, good[:n], 0o644)
		if _, err := LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	b := bytes.Clone(good)
	b[len(b)/2] ^= 1 // inside a tensor record: only the CRC notices
	os.WriteFile(path, b, 0o644)
	if _, err := LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("flipped bit: %v", err)
	}
}

// Pickles that made libtorch's unpickler allocate gigabytes or crash.
func TestCheckPickle(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"huge unicode", []byte("\x80\x02X\x07\xd8\xd8\xd8abc."), "needs"},
		{"huge bytes8", []byte("\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x7f."), "needs"},
		{"empty stack", []byte("\x80\x02QQQ)."), "pops 1 values"},
		{"memo far ahead", []byte("\x80\x02)r\xff\xff\xff\x7f."), "memo index"},
		{"no stop", []byte("\x80\x02)"), "no STOP"},
		{"append without mark", []byte("\x80\x02]e."), "without a MARK"},
		{"unknown opcode", []byte("\x80\x02\xff."), "unknown opcode"},
	} {
		if err := checkPickle(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// a valid pickle: {'a': [1, (2, 3)]} at protocol 2, as Python writes it
	ok := []byte("\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02K\x03\x86q\x03es.")
	if err := checkPickle(ok); err != nil {
		t.Fatalf("valid pickle: %v", err)
	}
}

// A failure in a Must* op (gotch's log.Fatal upstream) is a *TorchError;
// other panics are not swallowed.
func TestCatchTorch(t *testing.T) {
	lockThread(t)
	f := func() (err error) {
		defer CatchTorch(&err, "forward")
		x := ts.MustZeros([]int64{2, 3, 4, 4}, gotch.Float, cpu)
		w := ts.MustZeros([]int64{1, 5, 1, 1}, gotch.Float, cpu)
		ts.MustConv2d(x, w, ts.NewTensor(), []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1)
		return nil
	}
	err := f()
	var te *TorchError
	if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), "forward: ") || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "channels") || strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("got %v", err)
	}
	oom := NewTorchError("build", "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 720000000000 bytes. Error code 12 (Cannot allocate memory)\nframe #0: c10::ThrowEnforceNotMet")
	if !oom.OutOfMemory || oom.Bytes != 720000000000 || oom.Error() != "build: out of memory: libtorch could not allocate a tensor (670.6 GiB)" {
		t.Fatalf("oom: %+v %q", oom, oom.Error())
	}
	err = func() (err error) {
		defer CatchTorch(&err, "forward")
		FailForward(errors.New("clip of the wrong shape"))
		return nil
	}()
	if err == nil || err.Error() != "forward: clip of the wrong shape" {
		t.Fatalf("FailForward: %v", err)
	}
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "a bug" {
			t.Fatalf("recovered %v", r)
		}
	}()
	func() (err error) {
		defer CatchTorch(&err, "x")
		panic("a bug")
	}()
}

func TestConfigValuesAndKeysInErrors(t *testing.T) {
	for _, c := range []struct {
		src       string
		overrides []string
		want      []string
	}{
		{"model: {name: m}\nepochs: ten\n", nil, []string{"epochs (line 2)", "want an integer", `"ten"`}},
		{"model: {name: m}\noptimizer:\n  lr: [1]\n", nil, []string{"optimizer.lr (line 3)", "want a number", "a list"}},
		{"model: {name: m}\n", []string{"optimizer.momentum=x"}, []string{"override optimizer.momentum=x", "optimizer.momentum: want a number"}},
		{"model: {name: m}\n", []string{"optimizer=3"}, []string{"optimizer: want a mapping"}},
		{"model: {name: m}\n", []string{"optimizer.momentum=1.0"}, []string{"optimizer.momentum = 1"}},
		{"model: {name: m}\n", []string{"optimizer.weight_decay=-1e-4"}, []string{"optimizer.weight_decay = -0.0001"}},
		{"model: {name: m}\n", []string{"optimizer.lr=.nan"}, []string{"optimizer.lr = NaN"}},
		{"model: {name: m}\n", []string{"optimizer.lr_mult={backbone.: -1}"}, []string{"lr_mult[backbone.]"}},
		{"model: {name: m}\n", []string{"optimizer.dampening=2"}, []string{"optimizer.dampening = 2"}},
		{"model: {name: m}\n", []string{"schedule.min_lr=.inf"}, []string{"schedule.min_lr"}},
	} {
		_, err := ParseConfig([]byte(c.src), "run.yaml", c.overrides...)
		if err == nil {
			t.Errorf("%q %v: accepted", c.src, c.overrides)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q %v: %v lacks %q", c.src, c.overrides, err, w)
			}
		}
	}
}

// The config a resumed run continues with: the checkpoint's, edits of
// config.yaml and --set applied and listed.
func TestPlanResume(t *testing.T) {
	cfg := tinyConfig(t, "epochs=1")
	r, err := BuildRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Trainer()
	tr.Out = io.Discard
	if _, err := tr.Fit(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	p, err := PlanResume(cfg.RunDir)
	if err != nil || len(p.Changes) != 0 || p.Checkpoint != filepath.Join(cfg.RunDir, LastCheckpoint) {
		t.Fatalf("unchanged: %+v %v", p, err)
	}
	y, _ := os.ReadFile(filepath.Join(cfg.RunDir, ConfigFile))
	os.WriteFile(filepath.Join(cfg.RunDir, ConfigFile), bytes.Replace(y, []byte("epochs: 1\n"), []byte("epochs: 4\n"), 1), 0o644)
	p, err = PlanResume(filepath.Join(cfg.RunDir, BestCheckpoint), "batch_size=8")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"epochs: 1 -> 4 (config.yaml)", "batch_size: 16 -> 8 (--set)"}
	if strings.Join(p.Changes, "|") != strings.Join(want, "|") || p.Config.Epochs != 4 || p.Config.BatchSize != 8 ||
		p.Checkpoint != filepath.Join(cfg.RunDir, BestCheckpoint) {
		t.Fatalf("changes %q, config epochs %d batch %d", p.Changes, p.Config.Epochs, p.Config.BatchSize)
	}
	os.WriteFile(filepath.Join(cfg.RunDir, ConfigFile), []byte("epochs: [\n"), 0o644)
	if _, err := PlanResume(cfg.RunDir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Fatalf("broken config.yaml: %v", err)
	}
}

// CheckDataset reads every sample, counts classes, lists the drops and
// the samples that do not load.
func TestCheckDataset(t *testing.T) {
	lockThread(t)
	root := t.TempDir()
	for i, n := range []int{4, 4, 2, 4} {
		writeClipFrames(t, filepath.Join(root, "Clip", "clip_224x224", fmt.Sprintf("%05d", i+1)), n, uint8(10*i))
	}
	// a frame of clip 4 is not an image
	frames, _ := filepath.Glob(filepath.Join(root, "Clip", "clip_224x224", "00004", "*"))
	os.WriteFile(frames[1], []byte("not an image"), 0o644)
	for split, rows := range map[string]string{"train": "video_name,label\n1,1\n2,2\n3,2\n", "test": "video_name,label\n4,7\n"} {
		p := filepath.Join(root, "EmoLabel_DataSplit", split+"(single-labeled)", "set_1.csv")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(rows), 0o644)
	}
	s, err := OpenDataset(DataConfig{Name: "dfew", Root: root, Options: map[string]any{"frames": 2, "size": 8, "min_frames": 3, "workers": 2}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	res, err := CheckDataset(context.Background(), s, 2, &off)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Splits) != 2 || res.Splits[0].Name != "train" || res.Splits[1].Name != "val/test" {
		t.Fatalf("splits %+v", res.Splits)
	}
	tr, te := res.Splits[0], res.Splits[1]
	if tr.Samples != 2 || tr.PerClass[0] != 1 || tr.PerClass[1] != 1 || tr.Drops.Total() != 1 || len(tr.Failed) != 0 {
		t.Fatalf("train: %+v", tr)
	}
	if te.Samples != 1 || te.PerClass[6] != 1 || len(te.Failed) != 1 || te.Failed[0].ID != "00004" || !strings.Contains(te.Failed[0].Err.Error(), filepath.Base(frames[1])) {
		t.Fatalf("test: %+v", te)
	}
	if res.Problems() != 1 || !strings.Contains(s.DropReport(), "train: 1 dropped: fewer than min_frames = 3 frames (00003 (2))") {
		t.Fatalf("problems %d, drop report %q", res.Problems(), s.DropReport())
	}
}
