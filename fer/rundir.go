package fer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
)

// A run directory belongs to one process at a time. LockRunDir takes an
// exclusive flock(2) on RunDir/.fer.lock; the kernel releases it when the
// process dies (kill -9 included), so there is never a stale lock to
// remove by hand. The lock file keeps the holder's pid and command for
// the message a second process gets.

// LockFile is the lock file in a run directory.
const LockFile = ".fer.lock"

// RunLock is a held run-directory lock. Locks are per process and
// reentrant: LockRunDir on a directory this process already holds returns
// another reference, and the flock is released with the last Unlock.
type RunLock struct {
	dir  string
	once sync.Once
	// created is set when LockRunDir made the directory (see Abandon).
	created bool
}

type heldLock struct {
	f    *os.File
	refs int
}

var (
	locksMu sync.Mutex
	locks   = map[string]*heldLock{}
)

// RunDirBusyError is returned when another process holds a run directory.
type RunDirBusyError struct {
	Dir    string
	Holder string // "pid 1234 (fercli train ...)", or "" when unknown
}

func (e *RunDirBusyError) Error() string {
	who := "another process"
	if e.Holder != "" {
		who += " (" + e.Holder + ")"
	}
	return fmt.Sprintf("run dir %s is in use by %s: wait for it to finish, or choose another run_dir", e.Dir, who)
}

// LockRunDir creates dir if needed and locks it for this process.
func LockRunDir(dir string) (*RunLock, error) {
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	if h, ok := locks[abs]; ok {
		h.refs++
		return &RunLock{dir: abs}, nil
	}
	path := filepath.Join(abs, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run dir %s: lock: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ := os.ReadFile(path)
			return nil, &RunDirBusyError{Dir: dir, Holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("run dir %s: lock %s: %w", dir, path, err)
	}
	// who holds it, for the message another process gets
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d: %s\n", os.Getpid(), strings.Join(os.Args, " "))
	}
	locks[abs] = &heldLock{f: f, refs: 1}
	return &RunLock{dir: abs, created: created}, nil
}

// flock retries on EINTR (a signal while waiting for the kernel).
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Unlock releases this reference; the flock goes with the last one. It
// is safe to call more than once.
func (l *RunLock) Unlock() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		locksMu.Lock()
		defer locksMu.Unlock()
		h, ok := locks[l.dir]
		if !ok {
			return
		}
		if h.refs--; h.refs > 0 {
			return
		}
		delete(locks, l.dir)
		h.f.Truncate(0)
		flock(h.f, syscall.LOCK_UN)
		h.f.Close()
	})
}

// Abandon unlocks a run dir that a run failed to start in: when
// LockRunDir created the directory and nothing but the lock file was
// written there, the directory is removed again, so a mistyped data root
// leaves no empty run behind.
func (l *RunLock) Abandon() {
	if l == nil {
		return
	}
	l.Unlock()
	if !l.created {
		return
	}
	ents, err := os.ReadDir(l.dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != LockFile {
		return
	}
	os.Remove(filepath.Join(l.dir, LockFile))
	os.Remove(l.dir)
}

// staleTemp matches the temporary files of ReplaceFileAtomic
// (".last.ckpt.tmp-123456").
var staleTemp = regexp.MustCompile(`^\..+\.tmp-[0-9]+$`)

// RemoveStaleTemps deletes the temporary files that a killed process or a
// failed write left in dir (".last.ckpt.tmp-*" and the like). Call it only
// while holding dir's lock: then no one is writing them. It returns the
// names removed.
func RemoveStaleTemps(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if e.IsDir() || !staleTemp.MatchString(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("remove stale temporary file: %w", err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// RunResults lists the files in dir that hold an earlier run's results:
// last.ckpt, best.ckpt and a non-empty metrics.jsonl. (A config.yaml on
// its own is what a run that stopped before its first checkpoint leaves;
// it holds no result.)
func RunResults(dir string) []string {
	var out []string
	for _, name := range []string{LastCheckpoint, BestCheckpoint, MetricsFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.IsDir() {
			continue
		}
		if name == MetricsFile && st.Size() == 0 {
			continue
		}
		out = append(out, name)
	}
	return out
}

// runDirFiles are the files a training run writes; --overwrite removes
// them before a new run starts.
var runDirFiles = []string{LastCheckpoint, BestCheckpoint, MetricsFile, ConfigFile}

// RunDirUsedError is returned when a new run would replace an earlier
// run's results.
type RunDirUsedError struct {
	Dir     string
	Files   []string
	HasLast bool
}

func (e *RunDirUsedError) Error() string {
	if e.HasLast {
		return fmt.Sprintf("run dir %s already holds a run (%s): continue it with fercli train --resume %s, start it over with --overwrite, or choose another run_dir",
			e.Dir, strings.Join(e.Files, ", "), e.Dir)
	}
	return fmt.Sprintf("run dir %s holds the results of an earlier run (%s): choose another run_dir, or pass --overwrite to replace them",
		e.Dir, strings.Join(e.Files, ", "))
}
