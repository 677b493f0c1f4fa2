package fer

/*
#include <malloc.h>

static int fer_tune_malloc(int mmap_threshold, long trim_threshold) {
	return mallopt(M_MMAP_THRESHOLD, mmap_threshold) && mallopt(M_TRIM_THRESHOLD, trim_threshold);
}
*/
import "C"

import (
	"os"
	"strings"
)

// tuneMalloc keeps glibc from handing libtorch's activation-sized blocks
// (MBs) back to the kernel after every op. libtorch allocates them with
// malloc; fer's torch work runs on a Go-locked OS thread, which glibc gives
// a secondary arena, and there a block above the (dynamic, initially
// 128 KB) mmap threshold is a fresh mmap per allocation: every op then
// page-faults and zero-fills its output. Python runs PyTorch on the main
// thread, whose arena grows by sbrk and reuses freed memory; with the
// thresholds raised, fer's thread reuses memory the same way. Measured on
// the demo CNN's single-threaded forward (bench/RESULTS.md): 59 ms → 49 ms,
// PyTorch 48–50 ms.
//
// The mmap threshold is glibc's maximum (32 MB on 64-bit: larger blocks,
// e.g. VGG's fc6 weights, are mmapped anyway); the trim threshold keeps up
// to 512 MB of freed memory in the arenas. A user who sets any MALLOC_*
// variable (glibc's tunables) keeps those settings.
func tuneMalloc() bool {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MALLOC_") || strings.HasPrefix(kv, "GLIBC_TUNABLES=") {
			return false
		}
	}
	return C.fer_tune_malloc(32<<20, 512<<20) == 1
}
