package fer

import "testing"

// TestTuneMalloc: glibc accepts the thresholds, and a user's MALLOC_*
// setting is left alone.
func TestTuneMalloc(t *testing.T) {
	if !tuneMalloc() {
		t.Fatal("mallopt refused the thresholds (or a MALLOC_* variable is set in the test environment)")
	}
	t.Setenv("MALLOC_ARENA_MAX", "2")
	if tuneMalloc() {
		t.Fatal("tuned malloc although MALLOC_ARENA_MAX is set")
	}
}
