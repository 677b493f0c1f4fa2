package main

import (
	"regexp"
	"strings"
	"testing"

	lib "github.com/sugarme/gotch/libtch"
)

// fercli must not run on the pthreads OpenBLAS (its threads fight
// libtorch's OpenMP pool); `fercli env` says which BLAS it loaded.
func TestEnvReportsOpenMPBLAS(t *testing.T) {
	out, errs, code := run(t, "--device", "cpu", "env")
	if code != 0 {
		t.Fatalf("env exit %d\n%s%s", code, out, errs)
	}
	m := regexp.MustCompile(`(?m)^  blas: +(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("env prints no blas line:\n%s", out)
	}
	t.Logf("blas: %s", m[1])
	if strings.Contains(m[1], "pthreads threading") || strings.Contains(out, "warning:") {
		t.Fatalf("fercli runs on the wrong BLAS:\n%s", out)
	}
	if lib.FerBLASDir != "" && (!strings.Contains(m[1], "OpenMP threading") || !strings.HasPrefix(m[1], lib.FerBLASDir+"/")) {
		t.Fatalf("blas %q, want the OpenMP OpenBLAS in %s", m[1], lib.FerBLASDir)
	}
}
