package data

import (
	"bytes"
	"fmt"
	"github.com/fer-research/fer/data/imaging"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Video files are decoded by the ffmpeg command-line tool (Debian package
// ffmpeg, installed by setup-gotch.sh) rather than by a cgo binding: one
// process per clip, frames piped as raw RGB24. This is the slow path,
// meant for data sets distributed as videos (DFEW Clip/original, AFEW
// .avi); for training, frame folders are much faster.

// videoExts are the file extensions treated as videos.
var videoExts = map[string]bool{".mp4": true, ".avi": true, ".mkv": true, ".mov": true, ".webm": true, ".mpg": true, ".mpeg": true, ".m4v": true}

func isVideoFile(name string) bool { return videoExts[strings.ToLower(filepath.Ext(name))] }

// ffmpegTool finds ffmpeg or ffprobe on PATH.
func ffmpegTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install it (Debian: apt-get install ffmpeg) or extract the videos to frame folders", name)
	}
	return p, nil
}

// runTool runs a command and returns its stdout; a failure's message
// carries the tool's stderr.
func runTool(bin string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%s: %s", filepath.Base(bin), msg)
	}
	return out.Bytes(), nil
}

// probeVideo returns the width and height of the first video stream.
func probeVideo(path string) (w, h int, err error) {
	bin, err := ffmpegTool("ffprobe")
	if err != nil {
		return 0, 0, err
	}
	out, err := runTool(bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height", "-of", "csv=p=0", path)
	if err != nil {
		return 0, 0, fmt.Errorf("probe video %s: %w (is it a readable video file?)", path, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("probe video %s: no video stream", path)
	}
	w, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || w < 1 || h < 1 {
		return 0, 0, fmt.Errorf("probe video %s: bad frame size %q", path, out)
	}
	return w, h, nil
}

// countVideoFrames counts the packets of the first video stream (one per
// frame for the usual codecs) without decoding.
func countVideoFrames(path string) (int, error) {
	bin, err := ffmpegTool("ffprobe")
	if err != nil {
		return 0, err
	}
	out, err := runTool(bin, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path)
	if err != nil {
		return 0, fmt.Errorf("count frames of %s: %w", path, err)
	}
	n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(string(out)), ","))
	if err != nil {
		return 0, fmt.Errorf("count frames of %s: unexpected ffprobe output %q", path, out)
	}
	return n, nil
}

// videoFrames is a decoded video: n frames of w×h packed RGB24.
type videoFrames struct {
	path string
	w, h int
	rgb  []byte
}

func (v *videoFrames) len() int { return len(v.rgb) / (3 * v.w * v.h) }

// frame returns frame i (a view of the decoded bytes, not a copy).
func (v *videoFrames) frame(i int) *imaging.RGB {
	return &imaging.RGB{Pix: v.rgb[i*3*v.w*v.h : (i+1)*3*v.w*v.h], W: v.w, H: v.h}
}

// decodeVideo decodes every frame of the first video stream of path.
// When shortSide > 0 and smaller than the video's shorter side, frames are
// downscaled by ffmpeg (bilinear) so that the shorter side is shortSide,
// keeping the aspect ratio; this bounds memory for full-resolution
// originals. Frames are passed through as decoded (-fps_mode passthrough:
// no duplication or dropping to a constant frame rate).
func decodeVideo(path string, shortSide int) (*videoFrames, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	bin, err := ffmpegTool("ffmpeg")
	if err != nil {
		return nil, err
	}
	w, h, err := probeVideo(path)
	if err != nil {
		return nil, err
	}
	if short := min(w, h); shortSide > 0 && shortSide < short {
		f := float64(shortSide) / float64(short)
		w = max(1, int(math.Round(float64(w)*f)))
		h = max(1, int(math.Round(float64(h)*f)))
	}
	out, err := runTool(bin, "-v", "error", "-nostdin", "-i", path,
		"-map", "0:v:0", "-an", "-sn", "-dn",
		"-vf", fmt.Sprintf("scale=%d:%d:flags=bilinear", w, h),
		"-fps_mode", "passthrough",
		"-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
	if err != nil {
		return nil, fmt.Errorf("decode video %s: %w", path, err)
	}
	fs := 3 * w * h
	if len(out) == 0 {
		return nil, fmt.Errorf("decode video %s: no frames decoded (empty or corrupt video)", path)
	}
	if len(out)%fs != 0 {
		return nil, fmt.Errorf("decode video %s: ffmpeg wrote %d bytes, not a whole number of %dx%d RGB frames", path, len(out), w, h)
	}
	return &videoFrames{path: path, w: w, h: h, rgb: out}, nil
}
