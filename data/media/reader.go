package media

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/fer-research/fer/data/imaging"
)

// Exts are the file name extensions treated as videos.
var Exts = map[string]bool{".mp4": true, ".avi": true, ".mkv": true, ".mov": true, ".webm": true,
	".mpg": true, ".mpeg": true, ".m4v": true, ".wmv": true, ".flv": true, ".ts": true, ".3gp": true}

// IsVideo reports whether path has a video extension.
func IsVideo(path string) bool { return Exts[strings.ToLower(filepath.Ext(path))] }

// Info describes the first video stream of a file.
type Info struct {
	W, H int
	// FPS is the stream's frame rate (r_frame_rate); 0 if unknown.
	FPS float64
	// Frames is the number of frames the container declares (nb_frames),
	// or -1 when it does not say.
	Frames int
	// Duration is in seconds; 0 if unknown.
	Duration float64
}

// tool finds ffmpeg or ffprobe on PATH.
func tool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install it (Debian: apt-get install ffmpeg; ./setup-gotch.sh does)", name)
	}
	return p, nil
}

// Probe reads a video's stream information with ffprobe. A missing,
// unreadable or corrupt file, or one without a video stream, is an error
// naming the file.
func Probe(path string) (Info, error) {
	if st, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, fmt.Errorf("video %s: no such file", path)
		}
		return Info{}, fmt.Errorf("video %s: %w", path, err)
	} else if st.IsDir() {
		return Info{}, fmt.Errorf("video %s: is a folder", path)
	} else if st.Size() == 0 {
		return Info{}, fmt.Errorf("video %s: empty file", path)
	}
	bin, err := tool("ffprobe")
	if err != nil {
		return Info{}, err
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,r_frame_rate,nb_frames,duration:format=duration",
		"-of", "default=noprint_wrappers=1", path)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return Info{}, fmt.Errorf("video %s: not a readable video (ffprobe: %s)", path, firstLine(errb.String(), err))
	}
	info := Info{Frames: -1}
	kv := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			if _, dup := kv[k]; !dup || kv[k] == "N/A" {
				kv[k] = v
			}
		}
	}
	info.W, _ = strconv.Atoi(kv["width"])
	info.H, _ = strconv.Atoi(kv["height"])
	if info.W < 1 || info.H < 1 {
		return Info{}, fmt.Errorf("video %s: no video stream (ffprobe found no frame size)", path)
	}
	if n, d, ok := strings.Cut(kv["r_frame_rate"], "/"); ok {
		a, err1 := strconv.ParseFloat(n, 64)
		b, err2 := strconv.ParseFloat(d, 64)
		if err1 == nil && err2 == nil && b > 0 {
			info.FPS = a / b
		}
	}
	if n, err := strconv.Atoi(kv["nb_frames"]); err == nil && n >= 0 {
		info.Frames = n
	}
	if d, err := strconv.ParseFloat(kv["duration"], 64); err == nil && d > 0 {
		info.Duration = d
	}
	return info, nil
}

// firstLine is the first non-empty line of a tool's stderr, or err's text.
func firstLine(s string, err error) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return err.Error()
}

// Frame is one decoded frame.
type Frame struct {
	// Index is the frame number in the video (0-based, counting every
	// decoded frame, also those skipped with Every).
	Index int
	// Time is the presentation time in seconds.
	Time float64
	// RGB holds the pixels; Reader.Next reuses its buffer.
	RGB imaging.RGB
}

// Options select frames.
type Options struct {
	// Every > 1 keeps frames 0, Every, 2·Every, ... (the others are
	// decoded but not converted or piped).
	Every int
	// MaxFrames > 0 stops after that many kept frames.
	MaxFrames int
}

// Reader decodes a video frame by frame from an ffmpeg pipe. It is not
// safe for concurrent use; Close it (also after an error) to end ffmpeg.
type Reader struct {
	Path string
	Info Info
	opts Options
	cmd  *exec.Cmd
	out  *bufio.Reader
	n    int // frames returned

	mu     sync.Mutex
	cond   *sync.Cond
	times  []float64 // pts of frames not yet returned, in order
	logEOF bool
	tail   []string // last lines of ffmpeg's log that are not showinfo
	done   chan struct{}
	closed bool
}

// Open starts decoding path. Errors name the file.
func Open(path string, o Options) (*Reader, error) {
	info, err := Probe(path)
	if err != nil {
		return nil, err
	}
	bin, err := tool("ffmpeg")
	if err != nil {
		return nil, err
	}
	if o.Every < 1 {
		o.Every = 1
	}
	// showinfo logs each frame's pts after the selection; its n counts
	// the kept frames, so frame k's number is k·Every.
	vf := "showinfo=checksum=0"
	if o.Every > 1 {
		vf = fmt.Sprintf("select='not(mod(n\\,%d))',%s", o.Every, vf)
	}
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", path,
		"-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-fps_mode", "passthrough"}
	if o.MaxFrames > 0 {
		args = append(args, "-frames:v", strconv.Itoa(o.MaxFrames))
	}
	args = append(args, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("video %s: start ffmpeg: %w", path, err)
	}
	r := &Reader{Path: path, Info: info, opts: o, cmd: cmd, out: bufio.NewReaderSize(stdout, 1<<20), done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	go r.readLog(stderr)
	return r, nil
}

// readLog collects the frame times from showinfo's lines and keeps the
// last other lines for error messages.
func (r *Reader) readLog(stderr io.Reader) {
	defer close(r.done)
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Parsed_showinfo") {
			if t, ok := showinfoTime(line); ok {
				r.mu.Lock()
				r.times = append(r.times, t)
				r.cond.Broadcast()
				r.mu.Unlock()
			}
			continue
		}
		r.mu.Lock()
		if l := strings.TrimSpace(line); l != "" {
			r.tail = append(r.tail, l)
			if len(r.tail) > 8 {
				r.tail = r.tail[1:]
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.logEOF = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// showinfoTime parses "... n: 12 pts: 13 pts_time:0.54 ..." into the
// time; NaN when the frame has no timestamp (NOPTS). ok is false for
// showinfo's other lines.
func showinfoTime(line string) (float64, bool) {
	if !strings.Contains(line, " n:") {
		return 0, false
	}
	i := strings.Index(line, "pts_time:")
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(line[i+len("pts_time:"):])
	if len(f) == 0 {
		return 0, false
	}
	t, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN(), true
	}
	return t, true
}

// Next decodes the next kept frame into f (reusing f.RGB's buffer). It
// returns io.EOF after the last frame, and an error naming the file when
// ffmpeg fails (a corrupt video) or its output is cut short.
func (r *Reader) Next(f *Frame) error {
	w, h := r.Info.W, r.Info.H
	n := 3 * w * h
	if cap(f.RGB.Pix) < n {
		f.RGB.Pix = make([]byte, n)
	}
	f.RGB.Pix, f.RGB.W, f.RGB.H = f.RGB.Pix[:n], w, h
	got, err := io.ReadFull(r.out, f.RGB.Pix)
	if err == io.EOF {
		return r.finish()
	}
	if err != nil {
		if werr := r.finish(); werr != nil && werr != io.EOF {
			return werr
		}
		return fmt.Errorf("video %s: frame %d cut short after %d of %d bytes (is the frame size %dx%d right?)", r.Path, r.n*r.opts.Every, got, n, w, h)
	}
	// the frame's showinfo line precedes its data, but the log is read
	// by another goroutine: wait for it.
	r.mu.Lock()
	for len(r.times) == 0 && !r.logEOF {
		r.cond.Wait()
	}
	t := math.NaN()
	if len(r.times) > 0 {
		t = r.times[0]
		r.times = r.times[1:]
	}
	r.mu.Unlock()
	f.Index = r.n * r.opts.Every
	if math.IsNaN(t) && r.Info.FPS > 0 {
		t = float64(f.Index) / r.Info.FPS
	}
	f.Time = t
	r.n++
	return nil
}

// finish waits for ffmpeg after its output ended: io.EOF if it exited
// cleanly, else its error.
func (r *Reader) finish() error {
	if r.closed {
		return io.EOF
	}
	r.closed = true
	<-r.done
	err := r.cmd.Wait()
	if err != nil {
		r.mu.Lock()
		msg := strings.Join(r.tail, "; ")
		r.mu.Unlock()
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("video %s: ffmpeg failed after %d frames: %s (corrupt or unsupported video?)", r.Path, r.n, msg)
	}
	if r.n == 0 {
		return fmt.Errorf("video %s: no frames decoded (empty or corrupt video)", r.Path)
	}
	return io.EOF
}

// Close stops ffmpeg (if still running) and releases the pipe.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
	}
	<-r.done
	r.cmd.Wait()
	return nil
}
