package bench

/*
#include <malloc.h>

static long long fer_c_heap_in_use(void) {
	struct mallinfo2 mi = mallinfo2();
	return (long long)(mi.uordblks + mi.hblkhd);
}
*/
import "C"

// CHeapInUse is the C heap in use by this process (glibc's mallinfo2:
// bytes in allocated chunks of every arena plus mmapped blocks): libtorch's
// tensors and handles, libjpeg's buffers, gotch's allocations. Unlike the
// RSS it does not include the Go heap or freed pages glibc keeps, so a
// leak of a few bytes per op shows after a few hundred steps.
func CHeapInUse() int64 { return int64(C.fer_c_heap_in_use()) }
