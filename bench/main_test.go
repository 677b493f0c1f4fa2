package bench

import (
	"runtime"
	"testing"
)

// lockThread pins the test's goroutine to its OS thread for the test:
// libtorch's grad mode is per OS thread (GOTCH.md), and every test runs
// on a goroutine of its own, so TestMain's thread does not help.
func lockThread(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}
