package fer

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPassiveEnvDecision(t *testing.T) {
	base := []string{"HOME=/root", "PATH=/bin"}
	env, ok := passiveEnv(base, 2.5)
	if !ok || !slices.Contains(env, "OMP_WAIT_POLICY=PASSIVE") || !slices.Contains(env, ompAutoVar+"=2.50") || !slices.Contains(env, "HOME=/root") {
		t.Errorf("busy machine: %v %v", env, ok)
	}
	if len(base) != 2 {
		t.Error("passiveEnv changed its input")
	}
	for _, c := range []struct {
		env  []string
		load float64
	}{
		{base, 0.4}, // idle: libgomp's default
		{append(base, "OMP_WAIT_POLICY=ACTIVE"), 5}, // the user's choice
		{append(base, "GOMP_SPINCOUNT=1000"), 5},    // likewise
		{append(base, ompAutoVar+"=3.00"), 5},       // already re-executed
	} {
		if env, ok := passiveEnv(c.env, c.load); ok {
			t.Errorf("passiveEnv(%v, %v) re-executes with %v", c.env, c.load, env)
		}
	}
	w := OMPWait{Policy: "PASSIVE", Auto: true, AutoLoad: 1.37}
	if !strings.Contains(w.String(), "chosen by fer: other processes used 1.37 cores") {
		t.Errorf("%s", w)
	}
}

// /proc/stat's times: busy = everything but idle and iowait, in cores.
func TestCPUTimes(t *testing.T) {
	const before = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\nctxt 9\nprocs_running 3\nprocs_blocked 0\n"
	// 100 ticks later on 2 CPUs: 60 user, 10 system, 120 idle, 10 iowait
	const after = "cpu  160 0 60 920 60 0 0 0 0 0\ncpu0 80 0 30 460 30 0 0 0 0 0\ncpu1 80 0 30 460 30 0 0 0 0 0\n"
	a, err := parseCPUTimes(before)
	if err != nil || a.total != 1000 || a.idle != 850 || a.cpus != 2 || a.running != 3 {
		t.Fatalf("parse: %+v %v", a, err)
	}
	b, err := parseCPUTimes(after)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.busyUntil(b); math.Abs(got-0.7) > 1e-12 { // 70 of 200 ticks busy on 2 CPUs
		t.Errorf("busy %v cores, want 0.7", got)
	}
	if got := b.busyUntil(a); got != 0 {
		t.Errorf("clock going back: %v", got)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu  1 2\ncpu0 1 2\n", "cpu  1 x 3 4 5\ncpu0 1 2 3 4 5\n", "cpu  1 2 3 4 5\ncpu0 1 2 3 4 5\nprocs_running x\n"} {
		if _, err := parseCPUTimes(bad); err == nil {
			t.Errorf("parseCPUTimes(%q) accepted", bad)
		}
	}
}

// A goroutine spinning through the window shows as (about) a core busy.
func TestBusyCoresSeesASpinner(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(done)
		close(started) // runnable (procs_running >= 2) from here on
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	<-started
	busy, err := busyCores(300 * time.Millisecond)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if busy < 0.8 {
		t.Errorf("%.2f cores busy with a goroutine spinning, want >= 0.8", busy)
	}
}
