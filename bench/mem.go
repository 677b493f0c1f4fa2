package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ProcStatus holds the memory lines of /proc/<pid>/status, in bytes.
type ProcStatus struct {
	// RSS is VmRSS, the resident set now; PeakRSS is VmHWM, its high-water
	// mark since the process started or since ResetPeakRSS.
	RSS, PeakRSS int64
}

// ParseProcStatus reads VmRSS and VmHWM ("VmHWM:\t  123456 kB") from the
// text of a /proc/<pid>/status file.
func ParseProcStatus(text []byte) (ProcStatus, error) {
	var st ProcStatus
	var haveRSS, havePeak bool
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("proc status: %s line %q: want \"<n> kB\"", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return st, fmt.Errorf("proc status: %s value %q is not a size in kB", key, f[0])
		}
		if key == "VmRSS" {
			st.RSS, haveRSS = n*1024, true
		} else {
			st.PeakRSS, havePeak = n*1024, true
		}
	}
	if !haveRSS || !havePeak {
		return st, fmt.Errorf("proc status: no VmRSS/VmHWM lines (not Linux, or a kernel thread?)")
	}
	return st, nil
}

// ReadProcStatus reads this process's resident memory from
// /proc/self/status.
func ReadProcStatus() (ProcStatus, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ProcStatus{}, fmt.Errorf("read /proc/self/status: %w (memory figures need Linux)", err)
	}
	return ParseProcStatus(b)
}

// ResetPeakRSS resets VmHWM to the current RSS (writes 5 to
// /proc/self/clear_refs, Linux >= 4.0), so the next ReadProcStatus gives
// the peak of what ran in between. Some sandboxes refuse it; then the
// peak stays the process-lifetime peak and the error says so.
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w (peak figures are process-lifetime peaks)", err)
	}
	return nil
}

// GPUMemory is the device memory nvidia-smi reports for this process, in
// bytes, summed over devices; ok is false when nvidia-smi is missing or
// does not list the process (gotch exposes no CUDA memory statistics).
func GPUMemory() (bytes int64, ok bool) {
	out, err := exec.Command("nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return 0, false
	}
	return parseNvidiaSMIApps(out, os.Getpid())
}

// parseNvidiaSMIApps sums the used_memory (MiB) of pid's lines of
// `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`.
func parseNvidiaSMIApps(out []byte, pid int) (int64, bool) {
	var total int64
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		p, m, ok := strings.Cut(line, ",")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err != nil || n != pid {
			continue
		}
		mib, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err != nil {
			continue
		}
		total += mib << 20
		found = true
	}
	return total, found
}

// MiB formats bytes as mebibytes ("812.4 MiB"); a negative value is
// "n/a".
func MiB(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// LoadAverage returns the 1-, 5- and 15-minute load averages from
// /proc/loadavg.
func LoadAverage() ([3]float64, error) {
	var la [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return la, fmt.Errorf("load average: %w", err)
	}
	return parseLoadAvg(b)
}

func parseLoadAvg(b []byte) ([3]float64, error) {
	var la [3]float64
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return la, fmt.Errorf("load average: %q: want three numbers", strings.TrimSpace(string(b)))
	}
	for i := range la {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return la, fmt.Errorf("load average: %q: %w", f[i], err)
		}
		la[i] = v
	}
	return la, nil
}
