// Package abawfixture writes a small Aff-Wild2 tree in the ABAW layout for
// tests (data, fer and fercli): frames of solid-colour faces whose colour
// encodes the labels, annotation files with partial labels, invalid
// markers, a missing frame, a short annotation file, a two-person video
// (_left/_right) whose tracks sit in different splits, and optionally the
// videos with a sound track (ffmpeg).
package abawfixture

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options size the fixture.
type Options struct {
	// Size is the frame side (default 32); Frames the frames per video
	// (default 12, at least 8).
	Size, Frames int
	// Videos writes videos/<name>.avi with a 25 fps picture and a 16 kHz
	// sound track (a tone of a different pitch per video), for the A/V
	// model; needs ffmpeg.
	Videos bool
}

// Fixture describes what was written.
type Fixture struct {
	Root   string
	Frames int
	// Labels per annotated video: VA[k], EXPR[k], AU[k] as written (with
	// the invalid markers), nil when the video has no file of that task
	// in that split. Keyed by split ("train", "val") then video.
	VA   map[string]map[string][][2]float64
	EXPR map[string]map[string][]int
	AU   map[string]map[string][][8]int
	// Missing are frames (video, 1-based frame) without an image.
	Missing map[string][]int
}

// The annotated videos: name → (split of VA, EXPR, AU; "" = none).
var layout = []struct {
	name          string
	va, expr, au  string
	auRowsShorter bool
}{
	{"vidA", "train", "train", "train", true},
	{"vidB_left", "train", "train", "", false},
	{"vidB_right", "val", "", "train", false},
	{"vidC", "val", "val", "val", false},
	{"vidD", "train", "train", "train", false},
}

var (
	exprHeader = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
	auHeader   = "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
)

// Write creates the tree under root.
func Write(root string, o Options) (*Fixture, error) {
	if o.Size == 0 {
		o.Size = 32
	}
	if o.Frames == 0 {
		o.Frames = 12
	}
	if o.Frames < 8 {
		return nil, fmt.Errorf("abawfixture: Frames = %d, want >= 8", o.Frames)
	}
	f := &Fixture{Root: root, Frames: o.Frames,
		VA:      map[string]map[string][][2]float64{"train": {}, "val": {}},
		EXPR:    map[string]map[string][]int{"train": {}, "val": {}},
		AU:      map[string]map[string][][8]int{"train": {}, "val": {}},
		Missing: map[string][]int{}}
	for vi, v := range layout {
		n := o.Frames
		va := make([][2]float64, n)
		ex := make([]int, n)
		au := make([][8]int, n)
		for k := range n {
			t := float64(k)/float64(n-1)*2 - 1
			va[k] = [2]float64{round3(t * 0.9), round3(math.Sin(float64(k+vi)) * 0.8)}
			ex[k] = (k + vi) % 7
			for a := range 8 {
				au[k][a] = ((k + a + vi) / 2) % 2
			}
		}
		// invalid markers
		va[2] = [2]float64{-5, -5}
		ex[3] = -1
		au[4] = [8]int{-1, -1, -1, -1, -1, -1, -1, -1}
		dir := filepath.Join(root, "cropped_aligned", v.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for k := range n {
			if k == 5 && vi == 0 {
				f.Missing[v.name] = append(f.Missing[v.name], k+1)
				continue // frame 00006 of vidA is missing
			}
			if err := writeFrame(filepath.Join(dir, fmt.Sprintf("%05d.jpg", k+1)), o.Size, va[k], ex[k], au[k]); err != nil {
				return nil, err
			}
		}
		// a stray non-frame file and a sub-folder are ignored
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
			return nil, err
		}
		if v.va != "" {
			var b strings.Builder
			b.WriteString("valence,arousal\n")
			for _, x := range va {
				fmt.Fprintf(&b, "%g,%g\n", x[0], x[1])
			}
			if err := writeAnn(root, "VA_Set", v.va, v.name, b.String()); err != nil {
				return nil, err
			}
			f.VA[v.va][v.name] = va
		}
		if v.expr != "" {
			var b strings.Builder
			b.WriteString(exprHeader + "\r\n") // CRLF is accepted
			for _, x := range ex {
				fmt.Fprintf(&b, "%d\r\n", x)
			}
			if err := writeAnn(root, "EXPR_Set", v.expr, v.name, b.String()); err != nil {
				return nil, err
			}
			f.EXPR[v.expr][v.name] = ex
		}
		if v.au != "" {
			rows := au
			if v.auRowsShorter {
				rows = au[:n-2] // the last two frames have no AU label
			}
			var b strings.Builder
			b.WriteString(auHeader + "\n")
			for _, r := range rows {
				s := make([]string, 8)
				for a, x := range r {
					s[a] = fmt.Sprint(x)
				}
				b.WriteString(strings.Join(s, ",") + "\n")
			}
			if err := writeAnn(root, "AU_Set", v.au, v.name, b.String()); err != nil {
				return nil, err
			}
			f.AU[v.au][v.name] = rows
		}
	}
	if o.Videos {
		if err := writeVideos(root, o.Frames); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

var splitDir = map[string]string{"train": "Train_Set", "val": "Validation_Set"}

func writeAnn(root, task, split, name, content string) error {
	dir := filepath.Join(root, "annotations", task, splitDir[split])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".txt"), []byte(content), 0o644)
}

// writeFrame draws a face-sized picture whose colours carry the labels:
// red = valence, green = arousal, a bright square whose position is the
// expression, and one dark dot per active AU.
func writeFrame(path string, size int, va [2]float64, ex int, au [8]int) error {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	r := uint8(127 + 120*clamp(va[0]))
	g := uint8(127 + 120*clamp(va[1]))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			img.Set(x, y, color.RGBA{r, g, 90, 255})
		}
	}
	q := size / 4
	if ex >= 0 {
		x0, y0 := (ex%3)*q, (ex/3)*q
		for y := y0; y < y0+q; y++ {
			for x := x0; x < x0+q; x++ {
				img.Set(x, y, color.RGBA{250, 250, 250, 255})
			}
		}
	}
	for a, on := range au {
		if on == 1 {
			x, y := (a%4)*q+q/2, size-q+(a/4)*q/2
			for dy := 0; dy < max(1, q/4); dy++ {
				for dx := 0; dx < max(1, q/4); dx++ {
					img.Set(x+dx, y+dy, color.RGBA{0, 0, 0, 255})
				}
			}
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(fh, img, &jpeg.Options{Quality: 95}); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func clamp(x float64) float64 { return math.Max(-1, math.Min(1, x)) }

// writeVideos writes videos/<video>.avi (vidB's two people share
// vidB.avi) at 25 fps with a 16 kHz PCM sound track.
func writeVideos(root string, frames int) error {
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return fmt.Errorf("abawfixture: videos need ffmpeg: %w", err)
	}
	dir := filepath.Join(root, "videos", "batch1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dur := fmt.Sprintf("%.3f", float64(frames)/25)
	for i, name := range []string{"vidA", "vidB", "vidC", "vidD"} {
		out := filepath.Join(dir, name+".avi")
		cmd := exec.Command(bin, "-v", "error", "-nostdin", "-y",
			"-f", "lavfi", "-i", "testsrc=size=32x32:rate=25:duration="+dur,
			"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=16000:duration=%s", 300+200*i, dur),
			"-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("abawfixture: ffmpeg %s: %v: %s", out, err, b)
		}
	}
	return nil
}
