// Package testenv holds process set-up shared by the test binaries that
// run libtorch code.
package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	lib "github.com/sugarme/gotch/libtch"
)

// PassiveOMP re-executes the current process, once, with
// OMP_WAIT_POLICY=PASSIVE and the OpenMP OpenBLAS first on LD_LIBRARY_PATH,
// unless both are already in place. Call it first thing in the TestMain of
// packages that run torch code; it returns only if nothing is to change or
// the exec failed (then the tests run unchanged).
//
// PASSIVE: libgomp's default policy keeps idle worker threads spinning.
// `go test ./...` runs two test binaries at a time on a 2-core machine,
// each with its own OpenMP pool, and the spinning threads of one starve
// the working threads of the other: measured 6× slower (71 s vs 12 s for
// fer's leak test). libgomp reads the variable when libtorch is loaded,
// before any Go code runs, hence the re-exec. (This is about processes
// sharing cores; the BLAS-vs-OpenMP fight inside one process is gone with
// the OpenMP OpenBLAS. Single-process convolution timings belong in
// `fercli bench`, which does not use PASSIVE.)
//
// LD_LIBRARY_PATH: the test binary itself already loads the OpenMP
// OpenBLAS (DT_RPATH, see internal/gotchpatch); the variable passes it on
// to the child processes the tests start, above all the PyTorch reference
// scripts, so that reference and fer run their matrix products on the
// same BLAS build, whatever the machine's libblas.so.3 alternative is.
func PassiveOMP() {
	env, changed := testEnv(os.Environ(), lib.FerBLASDir)
	if !changed {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}

// testEnv returns env with the variables PassiveOMP sets, and whether it
// changed anything. A user's OMP_WAIT_POLICY is kept; blasDir ("" for
// none) goes first on LD_LIBRARY_PATH unless it is already on it.
func testEnv(env []string, blasDir string) ([]string, bool) {
	out := slices.Clone(env)
	changed := false
	if !has(out, "OMP_WAIT_POLICY") {
		out = set(out, "OMP_WAIT_POLICY", "PASSIVE")
		changed = true
	}
	if blasDir != "" {
		cur, ok := get(out, "LD_LIBRARY_PATH")
		if !slices.Contains(filepath.SplitList(cur), blasDir) {
			v := blasDir
			if ok && cur != "" {
				v += string(filepath.ListSeparator) + cur
			}
			out = set(out, "LD_LIBRARY_PATH", v)
			changed = true
		}
	}
	return out, changed
}

func get(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func has(env []string, key string) bool {
	v, ok := get(env, key)
	return ok && v != ""
}

func set(env []string, key, value string) []string {
	out := env[:0:0]
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k != key {
			out = append(out, e)
		}
	}
	return append(out, key+"="+value)
}
