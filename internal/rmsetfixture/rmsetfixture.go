// Package rmsetfixture makes RMsets for tests: reaction-mashup-like
// videos cut from Debian's Megamind.avi with ffmpeg (for `fercli rmset
// build`), and synthetic RMset folders in the builder's layout (an
// index.csv and JPEG face crops) whose people change expression over
// time, for the RMFER tests that need an RMset but not the face pipeline.
package rmsetfixture

import (
	"encoding/csv"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/internal/staticfixtures"
)

// Megamind is the path of Debian's opencv-doc Megamind.avi (720×528,
// 24 frames/s, 270 frames); the test is skipped when it is not installed.
func Megamind(t testing.TB) string {
	t.Helper()
	p := "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
	if _, err := os.Stat(p); err != nil {
		out, _ := exec.Command("dpkg", "-L", "opencv-doc").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if filepath.Base(l) == "Megamind.avi" {
				return l
			}
		}
		t.Skipf("Megamind.avi not found: install Debian's opencv-doc (./setup-gotch.sh does)")
	}
	return p
}

// Tiles of Mashup's video (3×2 tiles of 360×264): the trigger film, four
// reactors, an empty tile.
var (
	TriggerTile  = image.Rect(0, 0, 360, 264)
	ReactorTiles = []image.Rectangle{
		image.Rect(360, 0, 720, 264), image.Rect(720, 0, 1080, 264),
		image.Rect(0, 264, 360, 528), image.Rect(360, 264, 720, 528),
	}
)

// Mashup writes a reaction-mashup-like video of secs seconds (24
// frames/s) into dir/name: the trigger film (Megamind.avi from 7 s,
// scaled to a tile: it shows faces too) and four reactors (Megamind.avi's
// close-up of Roxanne from 0.5, 1.0, 1.5 and 2.0 s, cut around her face,
// two of them mirrored), 3×2 tiles. secs up to 4 keeps every tile inside
// the source.
func Mashup(t testing.TB, dir, name string, secs float64) string {
	t.Helper()
	out := filepath.Join(dir, name)
	seg := func(in string, start float64, tail string) string {
		return fmt.Sprintf("[%s]trim=start=%g:duration=%g,setpts=PTS-STARTPTS,%s", in, start, secs, tail)
	}
	fc := strings.Join([]string{
		"[0:v]split=5[s0][s1][s2][s3][s4]",
		seg("s0", 7, "scale=360:264[trig]"),
		seg("s1", 0.5, "crop=360:264:100:130[a]"),
		seg("s2", 1.0, "crop=360:264:100:130,hflip[b]"),
		seg("s3", 1.5, "crop=360:264:100:130[c]"),
		seg("s4", 2.0, "crop=360:264:100:130,hflip[d]"),
		fmt.Sprintf("color=c=0x202020:s=360x264:d=%g:r=2997/125[e]", secs),
		"[trig][a][b][c][d][e]xstack=inputs=6:layout=0_0|360_0|720_0|0_264|360_264|720_264[out]",
	}, ";")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", Megamind(t),
		"-filter_complex", fc, "-map", "[out]", "-c:v", "mpeg4", "-q:v", "3", "-an", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// Synthetic describes a synthetic RMset.
type Synthetic struct {
	// Videos, People per video and Frames per video (every person in
	// every frame).
	Videos, People, Frames int
	// Size is the crops' side in pixels.
	Size int
	// Every is the frames per expression: person p shows class
	// (p + frame/Every) mod 7 (staticfixtures.Face's patterns), so
	// nearby frames of different people differ and the same person
	// changes over time. 0 means 20.
	Every int
}

// Write writes the RMset into root in `fercli rmset build`'s layout —
// root/index.csv (video, person, frame, time, x, y, w, h, file) and
// root/VIDEO/pP/FRAME.jpg — and returns the number of faces.
func (s Synthetic) Write(t testing.TB, root string) int {
	t.Helper()
	every := s.Every
	if every == 0 {
		every = 20
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"video", "person", "frame", "time", "x", "y", "w", "h", "file"})
	n := 0
	for v := range s.Videos {
		video := fmt.Sprintf("mashup%02d", v+1)
		for f := range s.Frames {
			for p := range s.People {
				file := fmt.Sprintf("%s/p%d/%06d.jpg", video, p, f)
				k := (p + v + f/every) % 7
				staticfixtures.WriteJPEG(t, filepath.Join(root, filepath.FromSlash(file)), staticfixtures.Face(s.Size, s.Size, k, uint64(1000*v+10*p+f)))
				w.Write([]string{video, fmt.Sprint(p), fmt.Sprint(f), fmt.Sprintf("%.4f", float64(f)/24),
					fmt.Sprint(100 * p), "50", "80", "80", file})
				n++
			}
		}
	}
	w.Flush()
	staticfixtures.WriteFile(t, filepath.Join(root, "index.csv"), b.String())
	return n
}
