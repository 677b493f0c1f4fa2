package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fer-research/fer/fer"
)

// DefaultPython is Debian's interpreter with PyTorch 1.13 and torchvision
// 0.14 (the python3 on PATH may be another one without torch).
const DefaultPython = "/usr/bin/python3"

// TorchScript is the PyTorch side's path relative to the repository root.
const TorchScript = "bench/torch_bench.py"

// FindRepoRoot walks up from dir to the directory whose go.mod declares
// the fer module.
func FindRepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/fer-research/fer\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no fer repository (go.mod of github.com/fer-research/fer) above %s: run from the repository or pass the script path", dir)
		}
		d = parent
	}
}

// Torch is a running torch_bench.py in server mode: requests and replies
// are JSON objects, one per line, on its stdin and stdout. Keeping one
// process lets fer and PyTorch steps interleave in the same run, so
// background load hits both.
type Torch struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *tailBuffer
	// Info is the reply to the opening "hello": versions and threads.
	Info TorchInfo
}

// TorchInfo describes the PyTorch side.
type TorchInfo struct {
	Torch       string `json:"torch"`
	Torchvision string `json:"torchvision"`
	Python      string `json:"python"`
	Threads     int    `json:"threads"`
	MKLDNN      bool   `json:"mkldnn"`
	// Label names this side in reports ("" for a single, plain side).
	Label string `json:"label,omitempty"`
	// BLAS is the libblas the PyTorch process loaded and BLASParallel its
	// openblas_get_parallel() (0 sequential, 1 pthreads, 2 OpenMP, -1 not
	// OpenBLAS or unknown).
	BLAS         string `json:"blas,omitempty"`
	BLASParallel int    `json:"blas_parallel"`
}

// TorchOptions set up a PyTorch side's process.
type TorchOptions struct {
	// Label names the side in reports.
	Label string
	// BLASDir, when set, goes first on the process's LD_LIBRARY_PATH, so
	// that its libblas.so.3 replaces the machine's (Debian's PyTorch has
	// no rpath of its own). Start checks that it was loaded.
	BLASDir string
}

// StartTorch starts `python script serve` and says hello.
func StartTorch(python, script string) (*Torch, error) {
	return StartTorchWith(python, script, TorchOptions{})
}

// StartTorchWith is StartTorch with options.
func StartTorchWith(python, script string, opts TorchOptions) (*Torch, error) {
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("pytorch side: %w", err)
	}
	cmd := exec.Command(python, script, "serve")
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	if opts.BLASDir != "" {
		ld := opts.BLASDir
		if cur := os.Getenv("LD_LIBRARY_PATH"); cur != "" {
			ld += string(filepath.ListSeparator) + cur
		}
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH="+ld)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	tb := &tailBuffer{max: 8 << 10}
	cmd.Stderr = tb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (Debian's PyTorch is /usr/bin/python3 with python3-torch)", python, err)
	}
	t := &Torch{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 1<<20), stderr: tb}
	t.Info.BLASParallel = -1
	if err := t.Call(map[string]any{"op": "hello"}, &t.Info); err != nil {
		t.Close()
		return nil, err
	}
	t.Info.Label = opts.Label
	if dir := opts.BLASDir; dir != "" {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			dir = r
		}
		if !strings.HasPrefix(t.Info.BLAS, strings.TrimSuffix(dir, "/")+"/") {
			t.Close()
			return nil, fmt.Errorf("pytorch side %q: asked for the BLAS in %s, but it loaded %q", opts.Label, opts.BLASDir, t.Info.BLAS)
		}
	}
	return t, nil
}

// Label is the side's name in reports: its label, else "PyTorch".
func (t *Torch) Label() string {
	if t.Info.Label != "" {
		return t.Info.Label
	}
	return "PyTorch"
}

// Call sends req and decodes the reply into resp (may be nil). A reply
// with "ok": false becomes an error carrying PyTorch's message.
func (t *Torch) Call(req any, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := t.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("pytorch side: write request: %w%s", err, t.stderrTail())
	}
	line, err := t.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("pytorch side died: %w%s", err, t.stderrTail())
	}
	var head struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("pytorch side: bad reply %q: %w", strings.TrimSpace(string(line)), err)
	}
	if !head.OK {
		return fmt.Errorf("pytorch side: %s", head.Error)
	}
	if resp != nil {
		if err := json.Unmarshal(line, resp); err != nil {
			return fmt.Errorf("pytorch side: reply %q: %w", strings.TrimSpace(string(line)), err)
		}
	}
	return nil
}

// Close asks the process to quit and waits for it.
func (t *Torch) Close() error {
	if t == nil || t.cmd == nil {
		return nil
	}
	_ = json.NewEncoder(t.stdin).Encode(map[string]any{"op": "quit"})
	t.stdin.Close()
	err := t.cmd.Wait()
	t.cmd = nil
	return err
}

func (t *Torch) stderrTail() string {
	s := strings.TrimSpace(t.stderr.String())
	if s == "" {
		return ""
	}
	return "\n--- torch_bench.py stderr (tail) ---\n" + s
}

// TimesReply is the reply to a timing request.
type TimesReply struct {
	Times []float64 `json:"times"`
}

// MemReply is the reply to "mem": the PyTorch process's resident memory
// (its DataLoader worker processes not included).
type MemReply struct {
	RSS     int64 `json:"rss"`
	PeakRSS int64 `json:"peak_rss"`
	GPU     int64 `json:"gpu"` // torch.cuda.max_memory_allocated, -1 on CPU
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append([]byte(nil), w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// TorchBLAS resolves one entry of `fercli bench --torch-blas`: "system"
// (whatever libblas.so.3 the machine's alternative gives PyTorch: no
// change), "openmp" (the OpenMP OpenBLAS fer itself loads), "pthreads"
// (Debian's default pthreads build, as `apt install python3-torch`
// ships it; fer.PthreadsOpenBLASDir) or a directory holding a
// libblas.so.3. It returns the side's label and the directory to put on
// its LD_LIBRARY_PATH ("" for system).
func TorchBLAS(spec string) (label, dir string, err error) {
	switch s := strings.TrimSpace(spec); s {
	case "", "system":
		return "system", "", nil
	case "openmp":
		if fer.BLAS().Expected == "" {
			return "", "", fmt.Errorf("--torch-blas openmp: fer was not linked to an OpenMP OpenBLAS (install libopenblas0-openmp and re-run ./setup-gotch.sh)")
		}
		return "openmp", fer.BLAS().Expected, nil
	case "pthreads", "pthread":
		d := fer.PthreadsOpenBLASDir()
		if d == "" {
			return "", "", fmt.Errorf("--torch-blas pthreads: no pthreads OpenBLAS here: install libopenblas0-pthread, or extract it and set FER_OPENBLAS_PTHREAD_DIR (bench/compare.sh does that without touching the machine's BLAS)")
		}
		return "pthreads", d, nil
	default:
		if _, err := os.Stat(filepath.Join(s, "libblas.so.3")); err != nil {
			return "", "", fmt.Errorf("--torch-blas %q: want system, openmp, pthreads or a directory with a libblas.so.3 (%v)", s, err)
		}
		return filepath.Base(s), s, nil
	}
}
