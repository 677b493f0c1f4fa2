package fer

import (
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestRecordJSON(t *testing.T) {
	r := Record{Epoch: 1, Step: 120, Split: "train", Values: map[string]float64{"loss": 1.23, "acc": 0.41, "lr": 0.01, "time_s": 3.2, "bad": math.NaN()}}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"epoch":1,"step":120,"split":"train","acc":0.41,"bad":null,"loss":1.23,"lr":0.01,"time_s":3.2}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Record
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back.Epoch != 1 || back.Step != 120 || back.Split != "train" || back.Values["loss"] != 1.23 || !math.IsNaN(back.Values["bad"]) {
		t.Fatalf("round trip %+v", back)
	}
}

func TestMetricsLogAppendTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), MetricsFile)
	l, err := OpenMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= 5; s++ {
		if err := l.Write(Record{Epoch: 1, Step: s * 10, Split: "train_step", Values: map[string]float64{"loss": float64(s)}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// a run killed mid-write leaves a torn last line: readers skip it
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"epoch":1,"step":60,"spl`)
	f.Close()
	recs, err := ReadMetricsLog(p)
	if err != nil || len(recs) != 5 || recs[4].Step != 50 {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	if err := TruncateMetricsLog(p, 30); err != nil {
		t.Fatal(err)
	}
	recs, err = ReadMetricsLog(p)
	if err != nil || len(recs) != 3 || recs[2].Step != 30 || recs[2].Values["loss"] != 3 {
		t.Fatalf("after truncate: %+v %v", recs, err)
	}
	// a bad line that is not the last is an error naming it
	os.WriteFile(p, []byte("{\"epoch\":1,\"step\":1,\"split\":\"x\"}\nnot json\n{\"epoch\":1,\"step\":2,\"split\":\"x\"}\n"), 0o644)
	if _, err := ReadMetricsLog(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("corrupt log: %v", err)
	}
}

func TestWriteFileAtomicKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := WriteFileAtomic(p, func(w io.Writer) error { _, err := io.WriteString(w, "v1"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := WriteFileAtomic(p, func(w io.Writer) error {
		io.WriteString(w, "half of v2")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "v1" {
		t.Fatalf("content %q after a failed write", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
}

// crashSaver is the child process of TestCheckpointSurvivesKill: it saves
// checkpoints of a model whose every weight equals the step number, as
// fast as it can, until killed.
func crashSaver(dir string) {
	runtime.LockOSThread()
	vs := nn.NewVarStore(gotch.CPU)
	w := vs.Root().MustZeros("w", []int64{512, 512}) // 1 MiB: saving takes a while
	m := NewClassifier(nil, vs)
	for step := 1; ; step++ {
		ts.NoGrad(func() { w.MustFill_(ts.IntScalar(int64(step))) })
		if err := SaveCheckpoint(filepath.Join(dir, LastCheckpoint), m, nil, CheckpointMeta{Model: "crash", Step: step}); err != nil {
			os.Exit(3)
		}
		os.WriteFile(filepath.Join(dir, "saved"), []byte(strconv.Itoa(step)), 0o644)
	}
}

func init() {
	if dir := os.Getenv("FER_TEST_CRASH_SAVER"); dir != "" {
		crashSaver(dir)
	}
}

// A process killed (SIGKILL) at a random moment while saving leaves a
// checkpoint that loads and is complete: the weights match its step.
func TestCheckpointSurvivesKill(t *testing.T) {
	lockThread(t)
	for round, wait := range []time.Duration{700 * time.Millisecond, 1100 * time.Millisecond, 1500 * time.Millisecond} {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FER_TEST_CRASH_SAVER="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// wait until a few checkpoints exist, then kill mid-stream
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(dir, "saved"))
			if n, _ := strconv.Atoi(string(b)); n >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(wait)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		lc, err := LoadCheckpoint(filepath.Join(dir, LastCheckpoint))
		if err != nil {
			t.Fatalf("round %d: checkpoint unreadable after kill: %v", round, err)
		}
		w := lc.Tensors["w"].Float64Values()
		step := lc.Meta.Step
		lc.Drop()
		if step < 2 {
			t.Fatalf("round %d: step %d", round, step)
		}
		for i, v := range w {
			if v != float64(step) {
				t.Fatalf("round %d: checkpoint of step %d holds %v at %d: torn write", round, step, v, i)
			}
		}
		t.Logf("round %d: killed after step %d, checkpoint intact", round, step)
	}
}

func TestLoadImageBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	f, _ := os.Create(good)
	png.Encode(f, img)
	f.Close()
	raw, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "trunc.png")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	text := filepath.Join(dir, "notes.jpg")
	os.WriteFile(text, []byte("this is not an image"), 0o644)
	empty := filepath.Join(dir, "empty.png")
	os.WriteFile(empty, nil, 0o644)

	if im, err := LoadImage(good); err != nil || im.Bounds().Dx() != 8 {
		t.Fatalf("good image: %v", err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.png"): "no such file",
		truncated:                         "corrupt png data",
		text:                              "not a PNG, JPEG",
		empty:                             "empty file",
		dir:                               "is a folder",
	} {
		_, err := LoadImage(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming the file and saying %q", path, err, want)
		}
	}
	files, err := ImageFiles([]string{dir, good})
	if err != nil || len(files) != 5 || files[0] != filepath.Join(dir, "empty.png") || files[4] != good {
		t.Fatalf("ImageFiles: %v %v", files, err)
	}
	if _, err := ImageFiles([]string{filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "no such file or folder") {
		t.Fatalf("missing path: %v", err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if _, err := ImageFiles([]string{sub}); err == nil || !strings.Contains(err.Error(), "no image files") {
		t.Fatalf("empty folder: %v", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	lockThread(t)
	_, err := NewModel(nn.NewVarStore(gotch.CPU), ModelSpec{Name: "resnet-9000"})
	if err == nil || !strings.Contains(err.Error(), `unknown model "resnet-9000"`) || !strings.Contains(err.Error(), "test-tiny") {
		t.Fatalf("unknown model: %v", err)
	}
	_, err = OpenDataset(DataConfig{Name: "synth", Options: map[string]any{"trainn": 5}}, 0)
	if err == nil || !strings.Contains(err.Error(), `unknown key "trainn"`) || !strings.Contains(err.Error(), "train_n") {
		t.Fatalf("dataset option typo: %v", err)
	}
	_, err = OpenDataset(DataConfig{Name: "dfew-typo"}, 0)
	if err == nil || !strings.Contains(err.Error(), "registered: ") || !strings.Contains(err.Error(), "synth") {
		t.Fatalf("unknown dataset: %v", err)
	}
	r := &registry[int]{kind: "thing"}
	r.register("a", "", 1)
	r.register("A", "", 2)
	if _, err := r.get("a"); err == nil || !strings.Contains(err.Error(), "registered twice") {
		t.Fatalf("duplicate: %v", err)
	}
}
