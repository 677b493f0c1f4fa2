package fer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// BusyLoad is the 1-minute load average from which AdaptOMPWait calls the
// machine busy: another core's worth of work already runs.
const BusyLoad = 1.0

// ompAutoVar marks a process that AdaptOMPWait re-executed, with the load
// it saw.
const ompAutoVar = "FER_OMP_AUTO_LOAD"

// AdaptOMPWait re-executes the program with OMP_WAIT_POLICY=PASSIVE when
// the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT and the machine
// is busy as it starts (1-minute load average >= BusyLoad). libgomp's
// default keeps idle worker threads spinning for 300000 rounds after every
// parallel op; beside other work on a 2-core box that made fer's steps 3 to
// 15 times slower than with PASSIVE (bench/RESULTS.md, 2026-11-30). On an
// idle machine the default stays: it is faster there for models of many
// small ops. libgomp reads the variable when libtorch is loaded, before
// any Go code runs, hence the re-exec (it costs one more start-up, only on
// a busy machine). Child processes inherit the policy, so a PyTorch
// reference started by `fercli bench --compare` waits the same way.
//
// Call it first thing in main, before any goroutine starts. It returns
// when nothing is to change or the exec failed.
func AdaptOMPWait() {
	load, err := loadAverage1()
	if err != nil {
		return
	}
	env, ok := passiveEnv(os.Environ(), load)
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}

// passiveEnv is AdaptOMPWait's decision: the environment to re-execute
// with, and whether to.
func passiveEnv(env []string, load float64) ([]string, bool) {
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if (k == "OMP_WAIT_POLICY" || k == "GOMP_SPINCOUNT" || k == ompAutoVar) && v != "" {
			return nil, false
		}
	}
	if load < BusyLoad {
		return nil, false
	}
	return append(env[:len(env):len(env)], "OMP_WAIT_POLICY=PASSIVE", fmt.Sprintf("%s=%.2f", ompAutoVar, load)), true
}

func loadAverage1() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/loadavg: empty")
	}
	return strconv.ParseFloat(f[0], 64)
}

// OMPWait is how libgomp's idle threads wait in this process.
type OMPWait struct {
	// Policy and SpinCount are OMP_WAIT_POLICY and GOMP_SPINCOUNT as the
	// process started ("" when unset: libgomp spins 300000 rounds).
	Policy, SpinCount string
	// Auto reports that AdaptOMPWait chose PASSIVE; AutoLoad is the load
	// average it saw.
	Auto     bool
	AutoLoad float64
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
		return fmt.Sprintf("PASSIVE (chosen by fer: load average %.2f at start >= %.0f; set OMP_WAIT_POLICY to choose)", w.AutoLoad, BusyLoad)
	case w.Policy != "" || w.SpinCount != "":
		s := "OMP_WAIT_POLICY=" + w.Policy
		if w.SpinCount != "" {
			s += " GOMP_SPINCOUNT=" + w.SpinCount
		}
		return s + " (from the environment)"
	}
	return "libgomp's default: idle threads spin (the machine was idle at start)"
}
