package media

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fer-research/fer/data/imaging"
)

// Writer encodes RGB frames into a video file through an ffmpeg pipe:
// H.264 (libx264, yuv420p, CRF 20) for .mp4/.mkv/.mov, MPEG-4 part 2 for
// .avi. Frames are shown at a constant rate.
type Writer struct {
	Path string
	w, h int
	cmd  *exec.Cmd
	in   io.WriteCloser
	errb bytes.Buffer
	n    int
}

// Create starts encoding w×h frames at fps frames per second into path.
// The file is replaced.
func Create(path string, w, h int, fps float64) (*Writer, error) {
	if w < 1 || h < 1 {
		return nil, fmt.Errorf("video %s: frame size %dx%d", path, w, h)
	}
	if !(fps > 0) {
		fps = 25
	}
	bin, err := tool("ffmpeg")
	if err != nil {
		return nil, err
	}
	codec := []string{"-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".mp4", ".mkv", ".mov", ".m4v":
	case ".avi":
		codec = []string{"-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p"}
	default:
		return nil, fmt.Errorf("video %s: unsupported extension (use .mp4, .mkv, .mov or .avi)", path)
	}
	// yuv420p needs even sides: pad by one pixel where needed.
	vf := "pad=ceil(iw/2)*2:ceil(ih/2)*2"
	args := append([]string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "rgb24", "-s", fmt.Sprintf("%dx%d", w, h),
		"-r", strconv.FormatFloat(fps, 'f', -1, 64), "-i", "pipe:0", "-vf", vf}, codec...)
	args = append(args, path)
	wr := &Writer{Path: path, w: w, h: h}
	wr.cmd = exec.Command(bin, args...)
	wr.cmd.Stderr = &wr.errb
	wr.in, err = wr.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	if err := wr.cmd.Start(); err != nil {
		return nil, fmt.Errorf("video %s: start ffmpeg: %w", path, err)
	}
	return wr, nil
}

// Write appends one frame (of the size given to Create).
func (w *Writer) Write(f *imaging.RGB) error {
	if f.W != w.w || f.H != w.h {
		return fmt.Errorf("video %s: frame is %dx%d, the video %dx%d", w.Path, f.W, f.H, w.w, w.h)
	}
	if _, err := w.in.Write(f.Pix[:3*f.W*f.H]); err != nil {
		w.in.Close()
		w.cmd.Wait()
		return fmt.Errorf("video %s: ffmpeg stopped after %d frames: %s", w.Path, w.n, firstLine(w.errb.String(), err))
	}
	w.n++
	return nil
}

// Close finishes the file.
func (w *Writer) Close() error {
	w.in.Close()
	if err := w.cmd.Wait(); err != nil {
		return fmt.Errorf("video %s: ffmpeg: %s", w.Path, firstLine(w.errb.String(), err))
	}
	if w.n == 0 {
		return fmt.Errorf("video %s: no frames written", w.Path)
	}
	return nil
}
