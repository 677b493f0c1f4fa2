package testenv

import (
	"slices"
	"testing"
)

func TestTestEnv(t *testing.T) {
	const dir = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
	for _, c := range []struct {
		name    string
		env     []string
		blas    string
		want    []string
		changed bool
	}{
		{"fresh", []string{"HOME=/root"}, dir, []string{"HOME=/root", "OMP_WAIT_POLICY=PASSIVE", "LD_LIBRARY_PATH=" + dir}, true},
		{"prepends", []string{"LD_LIBRARY_PATH=/opt/lib", "OMP_WAIT_POLICY=ACTIVE"}, dir, []string{"OMP_WAIT_POLICY=ACTIVE", "LD_LIBRARY_PATH=" + dir + ":/opt/lib"}, true},
		{"done", []string{"OMP_WAIT_POLICY=PASSIVE", "LD_LIBRARY_PATH=/opt/lib:" + dir}, dir, []string{"OMP_WAIT_POLICY=PASSIVE", "LD_LIBRARY_PATH=/opt/lib:" + dir}, false},
		{"no OpenMP BLAS", []string{"OMP_WAIT_POLICY=PASSIVE"}, "", []string{"OMP_WAIT_POLICY=PASSIVE"}, false},
		{"empty policy is unset", []string{"OMP_WAIT_POLICY=", "A=1"}, "", []string{"A=1", "OMP_WAIT_POLICY=PASSIVE"}, true},
	} {
		got, changed := testEnv(c.env, c.blas)
		if changed != c.changed || !slices.Equal(got, c.want) {
			t.Errorf("%s: testEnv(%q, %q) = %q, %v; want %q, %v", c.name, c.env, c.blas, got, changed, c.want, c.changed)
		}
		// a second pass (the re-executed process) changes nothing
		if again, ch := testEnv(got, c.blas); ch || !slices.Equal(again, got) {
			t.Errorf("%s: not idempotent: %q -> %q", c.name, got, again)
		}
	}
}
