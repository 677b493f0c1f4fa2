package fer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BusyCores is the CPU use of the rest of the machine, in cores, from
// which AdaptOMPWait calls it busy: another core's worth of work runs.
// Below 1 because /proc/stat counts in 10 ms ticks: over the 100 ms
// window one fully busy core reads 0.9 to 1.1.
const BusyCores = 0.75

// busyWindow is how long AdaptOMPWait watches the machine's CPU use.
const busyWindow = 100 * time.Millisecond

// ompAutoVar marks a process that AdaptOMPWait re-executed, with the CPU
// use it saw.
const ompAutoVar = "FER_OMP_AUTO_LOAD"

// AdaptOMPWait re-executes the program with OMP_WAIT_POLICY=PASSIVE when
// the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT and the machine
// is busy as it starts: over its first 100 ms (busyWindow), while this
// process sleeps, the other processes use at least BusyCores cores
// (/proc/stat). When no other task is runnable at the moment it starts
// (procs_running), the machine is idle and it does not wait the 100 ms. libgomp's default keeps idle worker threads spinning for
// 300000 rounds after every parallel op; beside other work on a 2-core box
// that made fer's steps 3 to 15 times slower than with PASSIVE
// (bench/RESULTS.md, 2026-11-30). On an idle machine the default stays: it
// is faster there for models of many small ops. The CPU use of the moment
// is measured, not the 1-minute load average, which still counts a job
// that has just ended (measured: an EfficientNet-B2 step run right after
// another benchmark took 0.43 s with PASSIVE chosen that way against
// 0.29 s spinning). libgomp reads the variable when libtorch is loaded,
// before any Go code runs, hence the re-exec (one more start-up, only on
// a busy machine). Child processes inherit the policy, so a PyTorch
// reference started by `fercli bench --compare` waits the same way.
//
// Call it first thing in main, before any goroutine starts. It returns
// when nothing is to change or the exec failed.
func AdaptOMPWait() {
	env := os.Environ()
	if waitChosen(env) {
		return
	}
	busy, err := busyCores(busyWindow)
	if err != nil {
		return
	}
	env, ok := passiveEnv(env, busy)
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}

// passiveEnv is AdaptOMPWait's decision for a machine whose other
// processes use busy cores: the environment to re-execute with, and
// whether to.
func passiveEnv(env []string, busy float64) ([]string, bool) {
	if waitChosen(env) || busy < BusyCores {
		return nil, false
	}
	return append(env[:len(env):len(env)], "OMP_WAIT_POLICY=PASSIVE", fmt.Sprintf("%s=%.2f", ompAutoVar, busy)), true
}

// waitChosen reports that env already sets libgomp's waiting: the user
// did, or an earlier AdaptOMPWait.
func waitChosen(env []string) bool {
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if (k == "OMP_WAIT_POLICY" || k == "GOMP_SPINCOUNT" || k == ompAutoVar) && v != "" {
			return true
		}
	}
	return false
}

// busyCores is the machine's CPU use over window, in cores: the time its
// CPUs spent outside idle and I/O wait, from /proc/stat before and after.
// The caller sleeps meanwhile, so it is the other processes' use. It is 0
// at once when the caller is the only runnable task (procs_running 1).
func busyCores(window time.Duration) (float64, error) {
	read := func() (cpuTimes, error) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return cpuTimes{}, err
		}
		return parseCPUTimes(string(b))
	}
	a, err := read()
	if err != nil {
		return 0, err
	}
	if a.running == 1 {
		return 0, nil
	}
	time.Sleep(window)
	b, err := read()
	if err != nil {
		return 0, err
	}
	return a.busyUntil(b), nil
}

// cpuTimes is /proc/stat's machine-wide CPU time (in clock ticks): all of
// it and the idle part (idle + iowait), the number of CPUs and of tasks
// runnable at the moment of reading (procs_running, the reader included;
// 0 when the file lacks the line).
type cpuTimes struct {
	total, idle   uint64
	cpus, running int
}

// busyUntil is the CPU use between t and the later reading u, in cores.
func (t cpuTimes) busyUntil(u cpuTimes) float64 {
	if u.total <= t.total || u.idle < t.idle {
		return 0
	}
	dt := u.total - t.total
	busy := dt - min(u.idle-t.idle, dt)
	return float64(busy) / float64(dt) * float64(t.cpus)
}

// parseCPUTimes reads the "cpu" line (user nice system idle iowait irq
// softirq steal; guest time is already in user), counts the "cpuN" lines
// and reads procs_running of /proc/stat.
func parseCPUTimes(stat string) (cpuTimes, error) {
	var t cpuTimes
	seen := false
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "cpu":
			if len(f) < 6 {
				return t, fmt.Errorf("/proc/stat: cpu line %q has %d fields, want at least 5 times", line, len(f)-1)
			}
			for i, v := range f[1:min(len(f), 9)] {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return t, fmt.Errorf("/proc/stat: cpu line %q: %w", line, err)
				}
				t.total += n
				if i == 3 || i == 4 {
					t.idle += n
				}
			}
			seen = true
		case strings.HasPrefix(f[0], "cpu"):
			t.cpus++
		case f[0] == "procs_running" && len(f) == 2:
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return t, fmt.Errorf("/proc/stat: %q: %w", line, err)
			}
			t.running = n
		}
	}
	if !seen || t.cpus == 0 {
		return t, fmt.Errorf("/proc/stat: no cpu lines")
	}
	return t, nil
}

// OMPWait is how libgomp's idle threads wait in this process.
type OMPWait struct {
	// Policy and SpinCount are OMP_WAIT_POLICY and GOMP_SPINCOUNT as the
	// process started ("" when unset: libgomp spins 300000 rounds).
	Policy, SpinCount string
	// Auto reports that AdaptOMPWait chose PASSIVE; AutoLoad is the CPU
	// use of the other processes it saw, in cores.
	Auto     bool
	AutoLoad float64 // cores busy
}

// OMPWaitPolicy reports the wait policy in force.
func OMPWaitPolicy() OMPWait {
	w := OMPWait{Policy: os.Getenv("OMP_WAIT_POLICY"), SpinCount: os.Getenv("GOMP_SPINCOUNT")}
	if v := os.Getenv(ompAutoVar); v != "" && strings.EqualFold(w.Policy, "PASSIVE") {
		w.Auto = true
		w.AutoLoad, _ = strconv.ParseFloat(v, 64)
	}
	return w
}

// String is one line for `fercli env` and bench reports.
func (w OMPWait) String() string {
	switch {
	case w.Auto:
		return fmt.Sprintf("PASSIVE (chosen by fer: other processes used %.2f cores at start >= %.2f; set OMP_WAIT_POLICY to choose)", w.AutoLoad, BusyCores)
	case w.Policy != "" || w.SpinCount != "":
		s := "OMP_WAIT_POLICY=" + w.Policy
		if w.SpinCount != "" {
			s += " GOMP_SPINCOUNT=" + w.SpinCount
		}
		return s + " (from the environment)"
	}
	return "libgomp's default: idle threads spin (the machine was idle at start)"
}
