package fer

import (
	"github.com/fer-research/fer/internal/testenv"
	"os"
	"runtime"
	"testing"
)

// TestMain is shared by every test file of package fer: it locks the OS
// thread (libtorch's grad mode is per thread; GOTCH.md) and sets up the
// runtime once. Add no other TestMain to this package.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	// all torch work on one OS thread (GOTCH.md)
	runtime.LockOSThread()
	if _, err := Setup(RuntimeOptions{Device: "cpu", Seed: 1}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
