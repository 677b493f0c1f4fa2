package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fer-research/fer/data/face"
	"github.com/fer-research/fer/data/media"
	"github.com/fer-research/fer/data/rmset"
	"github.com/fer-research/fer/plots"
)

const opencvData = "/usr/share/doc/opencv-doc/examples/data"

func needFile(t *testing.T, p string) string {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not found: install Debian's opencv-doc (./setup-gotch.sh does)", p)
	}
	return p
}

var (
	ckptOnce sync.Map // name → *ckptResult
)

type ckptResult struct {
	once sync.Once
	path string
	err  string
}

// tinyCheckpoint trains a one-epoch model once per test binary: "cnn" is
// smallcnn on 32×32 synthetic faces, "stt" a one-block STT on 4-frame
// synthetic clips.
func tinyCheckpoint(t *testing.T, kind string) string {
	t.Helper()
	v, _ := ckptOnce.LoadOrStore(kind, &ckptResult{})
	r := v.(*ckptResult)
	r.once.Do(func() {
		dir, err := os.MkdirTemp("", "fer-face-"+kind)
		if err != nil {
			r.err = err.Error()
			return
		}
		args := []string{"--device", "cpu", "train", "--model", "smallcnn", "--data", "synth", "--epochs", "1",
			"--batch-size", "16", "--progress=false", "--set", "data.options={train_n: 64, val_n: 16, test_n: 0, size: 32}",
			"--set", "model.options.width=4", "--run-dir", dir}
		if kind == "stt" {
			args = []string{"--device", "cpu", "train", "--model", "stt", "--data", "synth", "--epochs", "1",
				"--batch-size", "4", "--progress=false", "--set", "data.options={train_n: 8, val_n: 4, test_n: 0, size: 32, frames: 4, normalize: none}",
				"--set", "model.options.dim=32", "--set", "model.options.depth=1", "--set", "model.options.heads=2", "--run-dir", dir}
		}
		cmd := fercli(args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			r.err = err.Error() + "\n" + string(out)
			return
		}
		r.path = filepath.Join(dir, "best.ckpt")
	})
	if r.err != "" {
		t.Fatalf("training the %s checkpoint: %s", kind, r.err)
	}
	return r.path
}

// shortMegamind is n frames of Megamind.avi from start seconds,
// re-encoded (its frame 0 is black: no face).
func shortMegamind(t *testing.T, start float64, n int) string {
	t.Helper()
	src := needFile(t, filepath.Join(opencvData, "Megamind.avi"))
	out := filepath.Join(t.TempDir(), "mm.avi")
	b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", strconv.FormatFloat(start, 'f', 3, 64),
		"-i", src, "-frames:v", strconv.Itoa(n),
		"-c:v", "mpeg4", "-q:v", "3", "-an", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// checkProbs: the class columns of a row (from col) sum to 1.
func checkProbs(t *testing.T, row []string, from, n int) {
	t.Helper()
	sum := 0.0
	for _, s := range row[from : from+n] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("row %v: %v", row, err)
		}
		sum += v
	}
	if math.Abs(sum-1) > 0.002 {
		t.Fatalf("row %v: probabilities sum to %v", row, sum)
	}
}

// TestPredictPhotos: one row per face of messi5.jpg (one face) and
// astronaut.png (her face and, at dlib's photo upsampling, a false
// positive on the mission patch), CSV and JSON; --annotate draws the
// boxes.
func TestPredictPhotos(t *testing.T) {
	ckpt := tinyCheckpoint(t, "cnn")
	messi := needFile(t, filepath.Join(opencvData, "messi5.jpg"))
	dir := t.TempDir()
	out, errs, code := run(t, "predict", "--ckpt", ckpt, "--annotate", filepath.Join(dir, "ann"), "-o", filepath.Join(dir, "rows.csv"), messi)
	if code != 0 {
		t.Fatalf("predict exit %d: %s %s", code, out, errs)
	}
	recs := readCSV(t, filepath.Join(dir, "rows.csv"))
	head := strings.Join(recs[0], ",")
	if head != "file,face,x,y,w,h,score,prediction,neutral,happy,sad,surprise,fear,disgust,anger" || len(recs) != 2 {
		t.Fatalf("rows:\n%v", recs)
	}
	x, _ := strconv.Atoi(recs[1][2])
	y, _ := strconv.Atoi(recs[1][3])
	w, _ := strconv.Atoi(recs[1][4])
	if box := image.Rect(x, y, x+w, y+w); face.IoU(box, image.Rect(224, 90, 264, 134)) < 0.6 {
		t.Fatalf("messi's face at %v", box)
	}
	checkProbs(t, recs[1], 8, 7)
	// the annotated photo has the first track colour on the box's edge
	f, err := os.Open(filepath.Join(dir, "ann", "messi5.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := img.At(x+w/2, y+w-1).RGBA()
	if c := face.ColorOf(0); uint8(r>>8) != c.R || uint8(g>>8) != c.G || uint8(b>>8) != c.B {
		t.Fatalf("box edge colour %d,%d,%d", r>>8, g>>8, b>>8)
	}
	// JSON lines; the astronaut if present
	args := []string{"predict", "--ckpt", ckpt, "--json", messi}
	astro := ""
	for _, d := range []string{os.Getenv("FER_CACHE"), filepath.Join(os.Getenv("HOME"), ".cache", "fer")} {
		if p := filepath.Join(d, "testdata", "astronaut.png"); d != "" && astro == "" {
			if _, err := os.Stat(p); err == nil {
				astro = p
				args = append(args, p)
			}
		}
	}
	out, errs, code = run(t, args...)
	if code != 0 {
		t.Fatalf("predict --json exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := 1
	if astro != "" {
		want = 3
	}
	if len(lines) != want {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), want, out)
	}
	var row struct {
		File  string
		Face  int
		Box   []int
		Probs map[string]float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil || row.File != messi || len(row.Box) != 4 || len(row.Probs) != 7 {
		t.Fatalf("JSON row %s: %v", lines[0], err)
	}
	// flags after the files are read as flags (cmd/fercli/args.go), a
	// photo without faces
	if out2, errs, code := run(t, "predict", "--ckpt", ckpt, messi, "--json"); code != 0 || strings.TrimSpace(out2) != lines[0] {
		t.Fatalf("flag after the files: exit %d, %s\n%s", code, out2, errs)
	}
	flat := filepath.Join(dir, "flat.png")
	fp, _ := os.Create(flat)
	png.Encode(fp, image.NewGray(image.Rect(0, 0, 120, 90)))
	fp.Close()
	out, errs, code = run(t, "predict", "--ckpt", ckpt, flat)
	if code != 0 || strings.TrimSpace(out) != "" || !strings.Contains(errs, "no face found") {
		t.Fatalf("no face: exit %d, %q, %q", code, out, errs)
	}
}

// TestPredictVideo: per-frame, per-face rows with exact frame numbers
// (--every 2), times, track IDs; an annotated video with one frame per
// analysed frame; a timeline figure from the rows; --faces whole gives
// one row per frame; a corrupt video is an error naming it.
func TestPredictVideo(t *testing.T) {
	ckpt := tinyCheckpoint(t, "cnn")
	video := shortMegamind(t, 0, 40)
	dir := t.TempDir()
	rows, annotated := filepath.Join(dir, "rows.csv"), filepath.Join(dir, "boxes.mp4")
	_, errs, code := run(t, "predict", "--ckpt", ckpt, "--every", "2", "-o", rows, "--annotate", annotated, video)
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, errs)
	}
	recs := readCSV(t, rows)
	if got := strings.Join(recs[0][:10], ","); got != "file,frame,time,track,x,y,w,h,score,prediction" {
		t.Fatalf("header %v", recs[0])
	}
	// the reference: the frames' numbers and times as the reader gives them
	rd, err := media.Open(video, media.Options{Every: 2})
	if err != nil {
		t.Fatal(err)
	}
	times := map[int]float64{}
	var fr media.Frame
	for rd.Next(&fr) == nil {
		times[fr.Index] = fr.Time
	}
	rd.Close()
	prev, tracks := -1, map[string]bool{}
	for _, r := range recs[1:] {
		n, _ := strconv.Atoi(r[1])
		tm, _ := strconv.ParseFloat(r[2], 64)
		want, ok := times[n]
		if !ok || n < prev || math.Abs(tm-want) > 1e-4 {
			t.Fatalf("row %v: frame %d at %.4f s (reader: %v %.4f), after frame %d", r, n, tm, ok, want, prev)
		}
		prev = n
		tracks[r[3]] = true
		checkProbs(t, r, 10, 7)
	}
	if len(recs) < 20 || !tracks["0"] {
		t.Fatalf("%d rows, tracks %v", len(recs)-1, tracks)
	}
	info, err := media.Probe(annotated)
	if err != nil || info.Frames != 20 || info.W != 720 || info.H != 528 {
		t.Fatalf("annotated video %+v %v", info, err)
	}
	// timeline
	fig := filepath.Join(dir, "timeline.png")
	if out, errs, code := run(t, "plot", "timeline", "-o", fig, rows); code != 0 || !strings.Contains(out, fig) {
		t.Fatalf("plot timeline exit %d: %s %s", code, out, errs)
	}
	vr, err := plots.ReadPredictions(rows)
	if err != nil || len(vr) != 1 {
		t.Fatal(err)
	}
	f, _ := os.Open(fig)
	cfg, err := png.DecodeConfig(f)
	f.Close()
	w, h := plots.PixelSize(plots.TimelineSize(min(len(vr[0].Tracks), 6)))
	if err != nil || cfg.Width != w || cfg.Height != h {
		t.Fatalf("timeline %dx%d, want %dx%d (%v)", cfg.Width, cfg.Height, w, h, err)
	}
	// whole frames, JSON
	out, errs, code := run(t, "predict", "--ckpt", ckpt, "--faces", "whole", "--every", "4", "--json", video)
	if code != 0 {
		t.Fatalf("--faces whole exit %d: %s", code, errs)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var r struct {
			Frame, Track int
			Box          []int
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Frame != 4*n || r.Track != 0 || !slices.Equal(r.Box, []int{0, 0, 720, 528}) {
			t.Fatalf("line %d: %s (%v)", n, sc.Text(), err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("%d rows for 10 frames", n)
	}
	junk := filepath.Join(dir, "junk.mp4")
	os.WriteFile(junk, []byte(strings.Repeat("junk", 999)), 0o644)
	if _, errs, code := run(t, "predict", "--ckpt", ckpt, junk); code != 1 || !strings.Contains(errs, junk) {
		t.Fatalf("corrupt video: exit %d, %s", code, errs)
	}
}

// TestPredictClipModel: a clip model (STT, T = 4) classifies each face
// from its track's last frames; photos are refused.
func TestPredictClipModel(t *testing.T) {
	ckpt := tinyCheckpoint(t, "stt")
	video := shortMegamind(t, 0, 24)
	out, errs, code := run(t, "predict", "--ckpt", ckpt, "--every", "3", "--json", video)
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 7 {
		t.Fatalf("%d rows:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var r struct {
			Frame int
			Probs map[string]float64
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Frame%3 != 0 || len(r.Probs) != 7 {
			t.Fatalf("row %s: %v", l, err)
		}
	}
	_, errs, code = run(t, "predict", "--ckpt", ckpt, needFile(t, filepath.Join(opencvData, "messi5.jpg")))
	if code != 1 || !strings.Contains(errs, "clips of 4 frames") {
		t.Fatalf("photo with a clip model: exit %d, %s", code, errs)
	}
}

// TestClipOf: a track's clip is its last T inputs, oldest first; a young
// track repeats its first frame.
func TestClipOf(t *testing.T) {
	v := &videoRun{m: &faceModel{frames: 3, per: 1}, clips: map[int]*clipBuf{}}
	for i, want := range [][]float32{{1, 1, 1}, {1, 1, 2}, {1, 2, 3}, {2, 3, 4}} {
		if got := v.clipOf(7, i, []float32{float32(i + 1)}); !slices.Equal(got, want) {
			t.Fatalf("step %d: %v, want %v", i, got, want)
		}
	}
	if got := v.clipOf(8, 4, []float32{9}); !slices.Equal(got, []float32{9, 9, 9}) {
		t.Fatalf("new track: %v", got)
	}
}

// TestRMsetBuildKilled: `fercli rmset build` killed with SIGKILL part-way
// and run again ends with the index and crops of an uninterrupted build;
// a video without faces is reported and skipped, and the summary counts.
func TestRMsetBuildKilled(t *testing.T) {
	video := shortMegamind(t, 0.5, 40)
	dir := t.TempDir()
	full, killed := filepath.Join(dir, "full"), filepath.Join(dir, "killed")
	// the right part of the frame is the "trigger film"
	out, errs, code := run(t, "rmset", "build", "--out", full, "--remove", "400,0,320,528", "--progress=false", video)
	if code != 0 || !strings.Contains(out, "1 videos built, 0 skipped") {
		t.Fatalf("build exit %d:\n%s\n%s", code, out, errs)
	}
	cmd := fercli("rmset", "build", "--out", killed, "--remove", "400,0,320,528", "--progress=false", "--workers", "1", video)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	faces := filepath.Join(killed, "mm", "faces.csv")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(faces); err == nil && strings.Count(string(b), "\n") >= 6 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed, "mm", "DONE")); err == nil {
		t.Skip("the build finished before the kill (machine too fast for this test's timing)")
	}
	empty := filepath.Join(dir, "black.avi")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=160x120:d=1",
		"-c:v", "mpeg4", empty).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	out, errs, code = run(t, "rmset", "build", "--out", killed, "--remove", "400,0,320,528", "--progress=false", video, empty)
	if code != 0 || !strings.Contains(out, "1 videos built, 1 skipped (black.avi)") || !strings.Contains(errs, "mm.avi: resumed") ||
		!strings.Contains(errs, "black.avi: skipped: no face found on the first frame") {
		t.Fatalf("resume exit %d:\n%s\n%s", code, out, errs)
	}
	a, err := rmset.ReadIndex(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rmset.ReadIndex(killed)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Faces) == 0 || !slices.Equal(a.Faces, b.Faces) {
		t.Fatalf("index after kill + resume: %d faces, uninterrupted %d", len(b.Faces), len(a.Faces))
	}
	for _, f := range a.Faces {
		x, _ := os.ReadFile(a.Path(f))
		y, _ := os.ReadFile(b.Path(f))
		if len(x) == 0 || string(x) != string(y) {
			t.Fatalf("%s differs", f.File)
		}
		if f.Box.Min.X+f.Box.Dx()/2 >= 400 {
			t.Fatalf("a face in the removal area: %+v", f)
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(killed, "mm", "p*", ".*tmp*"))
	if len(tmp) > 0 {
		t.Logf("temporary files left by the kill (harmless, never indexed): %v", tmp)
	}
	if out, _, code := run(t, "rmset", "info", killed); code != 0 || !strings.Contains(out, "1 videos") {
		t.Fatalf("info: %s", out)
	}
}

// TestRowWriter: rows of a multi-task model carry valence, arousal and
// the AU probabilities (Aff-Wild2's names for eight AUs), in CSV and JSON.
func TestRowWriter(t *testing.T) {
	var b strings.Builder
	w := &rowWriter{w: &b, video: true, classes: []string{"a", "b"}}
	r := &faceRow{File: "v.mp4", Video: true, Frame: 3, Time: 0.125, ID: 2, Box: image.Rect(1, 2, 11, 22), Score: 0.5,
		Probs: []float64{0.25, 0.75}, Top: 1, VA: []float64{-0.5, 0.25}, AU: []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}}
	if err := w.write(r); err != nil {
		t.Fatal(err)
	}
	w.flush()
	want := "file,frame,time,track,x,y,w,h,score,prediction,a,b,valence,arousal,AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25\n" +
		"v.mp4,3,0.1250,2,1,2,10,20,0.5000,b,0.2500,0.7500,-0.5000,0.2500,0.0000,0.1000,0.2000,0.3000,0.4000,0.5000,0.6000,0.7000\n"
	if b.String() != want {
		t.Fatalf("CSV:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	w = &rowWriter{w: &b, json: true, classes: []string{"a", "b"}}
	r.Video = false
	if err := w.write(r); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	if m["face"] != 2.0 || m["valence"] != -0.5 || m["au"].(map[string]any)["AU12"] != 0.4 || m["prediction"] != "b" || m["frame"] != nil {
		t.Fatalf("JSON %s", b.String())
	}
}
