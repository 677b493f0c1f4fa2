package bench

import (
	"runtime/debug"
	"testing"
)

const statusSample = `Name:	fercli
Umask:	0022
State:	R (running)
VmPeak:	 4263100 kB
VmSize:	 4263068 kB
VmHWM:	  831744 kB
VmRSS:	  650112 kB
RssAnon:	  600000 kB
Threads:	7
`

func TestParseProcStatus(t *testing.T) {
	st, err := ParseProcStatus([]byte(statusSample))
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS != 831744*1024 || st.RSS != 650112*1024 {
		t.Errorf("got %+v, want peak %d, rss %d", st, 831744*1024, 650112*1024)
	}
	if _, err := ParseProcStatus([]byte("Name:\tx\nVmRSS:\t12 kB\n")); err == nil {
		t.Errorf("missing VmHWM accepted")
	}
	if _, err := ParseProcStatus([]byte("VmHWM:\t12 MB\nVmRSS:\t1 kB\n")); err == nil {
		t.Errorf("unit MB accepted")
	}
}

func TestReadProcStatusOfThisProcess(t *testing.T) {
	// hand freed heap back to the OS so the allocation below needs new pages
	debug.FreeOSMemory()
	st, err := ReadProcStatus()
	if err != nil {
		t.Skip(err) // not Linux
	}
	if st.RSS <= 0 || st.PeakRSS < st.RSS {
		t.Errorf("RSS %d, peak %d: want 0 < RSS <= peak", st.RSS, st.PeakRSS)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	after, err := ReadProcStatus()
	if err != nil {
		t.Fatal(err)
	}
	// The runtime may hand other pages back in between, so ask for half of
	// what was touched rather than all of it.
	if after.RSS < st.RSS+32<<20 || after.PeakRSS < after.RSS {
		t.Errorf("peak %d after touching 64 MiB, was RSS %d", after.PeakRSS, st.RSS)
	}
	_ = big[len(big)-1]
}

func TestParseNvidiaSMIAndLoadAvg(t *testing.T) {
	out := []byte("1234, 500\n99, 7\n1234, 12\nnot a line\n")
	if b, ok := parseNvidiaSMIApps(out, 1234); !ok || b != 512<<20 {
		t.Errorf("pid 1234: %d %v, want %d", b, ok, 512<<20)
	}
	if _, ok := parseNvidiaSMIApps(out, 5); ok {
		t.Errorf("pid 5 found")
	}
	la, err := parseLoadAvg([]byte("0.52 1.03 2.50 1/234 5678\n"))
	if err != nil || la != [3]float64{0.52, 1.03, 2.50} {
		t.Errorf("load average %v %v", la, err)
	}
	if _, err := parseLoadAvg([]byte("0.5")); err == nil {
		t.Errorf("short loadavg accepted")
	}
	if MiB(-1) != "n/a" || MiB(3<<20) != "3.0 MiB" {
		t.Errorf("MiB: %q %q", MiB(-1), MiB(3<<20))
	}
}
