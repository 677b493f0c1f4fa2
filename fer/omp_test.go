package fer

import (
	"slices"
	"strings"
	"testing"
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
	w := OMPWait{Policy: "PASSIVE", Auto: true, AutoLoad: 3.2}
	if !strings.Contains(w.String(), "chosen by fer: load average 3.20") {
		t.Errorf("%s", w)
	}
	if l, err := loadAverage1(); err != nil || l < 0 {
		t.Errorf("load average %v %v", l, err)
	}
}
