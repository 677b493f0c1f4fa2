// Package testenv holds process set-up shared by the test binaries that
// run libtorch code.
package testenv

import (
	"os"
	"syscall"
)

// PassiveOMP re-executes the current process with
// OMP_WAIT_POLICY=PASSIVE unless it is already set. libgomp's default
// policy keeps idle worker threads spinning; when several libtorch
// processes share two cores (`go test ./...` runs packages in parallel) the
// spinning threads starve the working ones, measured 6× slower (71 s vs 12 s
// for fer's leak test). libgomp reads the variable when libtorch is loaded,
// before any Go code runs, hence the re-exec. Call it first thing in the
// TestMain of packages that run torch code; it returns only if the
// variable is set or the exec failed (then the tests run unchanged).
func PassiveOMP() {
	if os.Getenv("OMP_WAIT_POLICY") != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	_ = syscall.Exec(exe, os.Args, env)
}
