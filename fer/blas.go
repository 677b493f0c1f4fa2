package fer

/*
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

// fer_blas_object writes the path of the loaded object that defines
// sgemm_ (the one libtorch's BLAS calls bind to: the first in the global
// lookup order) into path, or "" when no loaded object exports it.
static void fer_blas_object(char *path, size_t n) {
	path[0] = 0;
	void *f = dlsym(RTLD_DEFAULT, "sgemm_");
	Dl_info info;
	if (f != NULL && dladdr(f, &info) != 0 && info.dli_fname != NULL) {
		strncpy(path, info.dli_fname, n - 1);
		path[n - 1] = 0;
	}
}

// fer_openblas queries the OpenBLAS behind the object at path (its own
// symbols or its dependencies'): parallel is openblas_get_parallel() (0
// sequential, 1 pthreads, 2 OpenMP), -1 when the object is not OpenBLAS.
static void fer_openblas(const char *path, int *parallel, int *threads, char *config, size_t n) {
	*parallel = -1;
	*threads = 0;
	config[0] = 0;
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (h == NULL) {
		return;
	}
	int (*get_parallel)(void) = (int (*)(void))dlsym(h, "openblas_get_parallel");
	int (*get_threads)(void) = (int (*)(void))dlsym(h, "openblas_get_num_threads");
	char *(*get_config)(void) = (char *(*)(void))dlsym(h, "openblas_get_config");
	if (get_parallel != NULL) {
		*parallel = get_parallel();
	}
	if (get_threads != NULL) {
		*threads = get_threads();
	}
	if (get_config != NULL) {
		char *c = get_config();
		if (c != NULL) {
			strncpy(config, c, n - 1);
			config[n - 1] = 0;
		}
	}
	dlclose(h);
}

// fer_loaded_objects calls back Go-free: it writes the names of all loaded
// objects, separated by '\n', into buf (truncated at n).
static int fer_collect(struct dl_phdr_info *info, size_t size, void *data) {
	char **cur = (char **)data;
	char *end = cur[1];
	size_t len = strlen(info->dlpi_name);
	if (len == 0 || cur[0] + len + 2 > end) {
		return 0;
	}
	memcpy(cur[0], info->dlpi_name, len);
	cur[0][len] = '\n';
	cur[0] += len + 1;
	*cur[0] = 0;
	return 0;
}

static void fer_loaded_objects(char *buf, size_t n) {
	char *cur[2] = {buf, buf + n};
	buf[0] = 0;
	dl_iterate_phdr(fer_collect, cur);
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
)

// OpenBLAS threading models, as openblas_get_parallel reports them.
const (
	BLASSequential = 0
	BLASPthreads   = 1
	BLASOpenMP     = 2
	// BLASNotOpenBLAS: the BLAS in use is not OpenBLAS (reference BLAS,
	// MKL, ...) or none is loaded dynamically.
	BLASNotOpenBLAS = -1
)

// BLASInfo is the BLAS that libtorch's matrix products run on in this
// process, as the dynamic loader resolved it.
type BLASInfo struct {
	// Library is the loaded object that defines sgemm_ (the path the
	// loader found it under), "" when none does (libtorch with a built-in
	// BLAS, e.g. MKL linked statically).
	Library string
	// Resolved is Library with symbolic links resolved.
	Resolved string
	// Parallel is openblas_get_parallel(): BLASSequential, BLASPthreads,
	// BLASOpenMP, or BLASNotOpenBLAS.
	Parallel int
	// Threads is openblas_get_num_threads() (0 when not OpenBLAS).
	Threads int
	// Config is openblas_get_config(): version, kernel, MAX_THREADS.
	Config string
	// Loaded lists every loaded object whose file name mentions blas or
	// lapack (two BLAS libraries in one process is a configuration error).
	Loaded []string
	// Expected is the OpenMP OpenBLAS directory fer's binaries were
	// linked to load first (setup-gotch.sh; "" when the libtorch does not
	// use the system's libblas.so.3 or the build was not installed).
	Expected string
}

// BLAS reports the BLAS in use.
func BLAS() BLASInfo {
	var path [4096]C.char
	C.fer_blas_object(&path[0], C.size_t(len(path)))
	info := BLASInfo{Library: C.GoString(&path[0]), Parallel: BLASNotOpenBLAS, Expected: lib.FerBLASDir}
	if info.Library != "" {
		if r, err := filepath.EvalSymlinks(info.Library); err == nil {
			info.Resolved = r
		}
		var parallel, threads C.int
		var config [512]C.char
		C.fer_openblas(&path[0], &parallel, &threads, &config[0], C.size_t(len(config)))
		info.Parallel, info.Threads, info.Config = int(parallel), int(threads), C.GoString(&config[0])
	}
	buf := make([]byte, 1<<16)
	C.fer_loaded_objects((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	for _, name := range strings.Split(C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), "\n") {
		base := strings.ToLower(filepath.Base(name))
		if name != "" && (strings.Contains(base, "blas") || strings.Contains(base, "lapack") || strings.Contains(base, "mkl")) {
			info.Loaded = append(info.Loaded, name)
		}
	}
	return info
}

// Threading names Parallel.
func (b BLASInfo) Threading() string {
	switch b.Parallel {
	case BLASSequential:
		return "sequential"
	case BLASPthreads:
		return "pthreads"
	case BLASOpenMP:
		return "OpenMP"
	}
	return "not OpenBLAS"
}

// String is one line for `fercli env`.
func (b BLASInfo) String() string {
	if b.Library == "" {
		return "no libblas loaded (this libtorch's BLAS is built in)"
	}
	s := b.Library
	if b.Resolved != "" && b.Resolved != b.Library {
		s += " -> " + b.Resolved
	}
	if b.Parallel == BLASNotOpenBLAS {
		return s + " (not OpenBLAS: reference BLAS or another vendor)"
	}
	return fmt.Sprintf("%s (%s, %s threading, %d threads)", s, b.Config, b.Threading(), b.Threads)
}

// Problem says what is wrong with the BLAS in use, "" when nothing is:
// the pthreads OpenBLAS (its threads fight libtorch's OpenMP pool; on 2
// cores matrix products ran 1.5× to 20× slower), or not the OpenMP build
// fer was linked to load.
func (b BLASInfo) Problem() string {
	if b.Parallel == BLASPthreads {
		return "BLAS is the pthreads build of OpenBLAS, whose threads compete with libtorch's OpenMP threads (matrix products 1.5x to 20x slower); fer's binaries load the OpenMP build (libopenblas0-openmp) when ./setup-gotch.sh installed it: re-run it, and do not LD_PRELOAD another BLAS"
	}
	if b.Expected != "" && b.Library != "" && !strings.HasPrefix(b.Library, b.Expected+"/") {
		return fmt.Sprintf("BLAS %s is loaded instead of the OpenMP OpenBLAS in %s that fer was linked against: re-run ./setup-gotch.sh", b.Library, b.Expected)
	}
	if n := openBLASCopies(b.Loaded); n > 1 {
		return fmt.Sprintf("%d different OpenBLAS libraries are loaded: %s", n, strings.Join(b.Loaded, ", "))
	}
	return ""
}

// openBLASCopies counts the distinct OpenBLAS libraries among the loaded
// objects (symbolic links resolved): Debian's libblas.so.3 and
// liblapack.so.3 of one build share one libopenblas.
func openBLASCopies(objs []string) int {
	files := map[string]bool{}
	for _, o := range objs {
		if !strings.HasPrefix(filepath.Base(o), "libopenblas") {
			continue
		}
		if r, err := filepath.EvalSymlinks(o); err == nil {
			o = r
		}
		files[o] = true
	}
	return len(files)
}

// PthreadsOpenBLASDir is a directory holding the pthreads build of
// OpenBLAS (libblas.so.3), for comparisons: $FER_OPENBLAS_PTHREAD_DIR, or
// Debian's libopenblas0-pthread next to the OpenMP build; "" if neither.
func PthreadsOpenBLASDir() string {
	cands := []string{os.Getenv("FER_OPENBLAS_PTHREAD_DIR")}
	if lib.FerBLASDir != "" {
		cands = append(cands, filepath.Join(filepath.Dir(lib.FerBLASDir), "openblas-pthread"))
	}
	for _, d := range cands {
		if d == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(d, "libblas.so.3")); err == nil && !st.IsDir() {
			return d
		}
	}
	return ""
}
