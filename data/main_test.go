package data

import (
	"github.com/fer-research/fer/internal/testenv"
	"os"
	"runtime"
	"testing"
)

// TestMain locks the OS thread: the tensor test runs libtorch, whose grad
// mode is per thread (GOTCH.md). Add no other TestMain to this package.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread()
	os.Exit(m.Run())
}
