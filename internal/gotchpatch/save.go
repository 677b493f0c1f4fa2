package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// libtorch's archive writer (caffe2::serialize::PyTorchStreamWriter)
// finishes the zip in its destructor, and that throws when a write has
// failed. A full disk while gotch's at_save_multi wrote a checkpoint thus
// threw from a destructor during unwinding: std::terminate, "terminate
// called after throwing an instance of 'c10::Error'", SIGABRT and a
// 200-line trace, with nothing for the Go side to catch.
//
// patchSave replaces at_save and at_save_multi with versions that hand
// libtorch a writer function that never reports a failure: it remembers
// the first one (errno), swallows the remaining bytes, and the error is
// raised after libtorch has finished, inside the wrapper's try/catch, so
// Go gets it from ts.TorchErr as any other error. It also adds
// fer_save_multi_to, which streams the archive into a Go io.Writer
// (ts.SaveMultiTo): fer writes checkpoints through Go's os.File, so a
// failing write is an ordinary Go error, and a test can inject a failure
// at every byte offset.

// saveCpp replaces the definitions of at_save and at_save_multi in
// torch_api.cpp.
const saveCpp = `// --- fer (internal/gotchpatch): savers that cannot std::terminate ---
// libtorch's archive writer throws from its destructor after a failed
// write (a full disk), which ends the process. The writer functions given
// to libtorch below never fail: they keep the first error and drop the
// rest of the bytes, and the error is thrown once libtorch has finished.
extern "C" int ferSaveWrite(uintptr_t sink, void *buf, size_t n);

static void fer_write_tensors(torch::serialize::OutputArchive &archive, tensor *tensors, char **names, int n) {
  for (int i = 0; i < n; ++i)
    archive.write(std::string(names[i]), *(tensors[i]), /*buffer=*/false);
}

static void fer_save_to_file(torch::serialize::OutputArchive &archive, const char *filename) {
  FILE *f = fopen(filename, "wb");
  if (f == nullptr)
    throw std::runtime_error(std::string("open ") + filename + ": " + strerror(errno));
  int err = 0;
  std::function<size_t(const void *, size_t)> sink = [&](const void *buf, size_t n) -> size_t {
    if (err == 0 && n > 0 && fwrite(buf, 1, n, f) != n)
      err = errno != 0 ? errno : EIO;
    return n;
  };
  try {
    archive.save_to(sink);
  } catch (...) {
    fclose(f);
    throw;
  }
  if (fflush(f) != 0 && err == 0)
    err = errno != 0 ? errno : EIO;
  if (fclose(f) != 0 && err == 0)
    err = errno != 0 ? errno : EIO;
  if (err != 0)
    throw std::runtime_error(std::string("write ") + filename + ": " + strerror(err));
}

void at_save(tensor t, char *filename) {
  try {
    torch::serialize::OutputArchive archive;
    archive.write("0", *t, /*buffer=*/false);
    fer_save_to_file(archive, filename);
  } catch (const exception &e) {
    torch_last_err = strdup(e.what());
  }
}

void at_save_multi(tensor *tensors, char **tensor_names, int ntensors, char *filename) {
  try {
    torch::serialize::OutputArchive archive;
    fer_write_tensors(archive, tensors, tensor_names, ntensors);
    fer_save_to_file(archive, filename);
  } catch (const exception &e) {
    torch_last_err = strdup(e.what());
  }
}

// fer_save_multi_to writes the archive at_save_multi writes through the Go
// writer registered as sink (libtch.FerSaveMultiTo). A failed Go write is
// reported by the Go side; this only stops passing bytes on.
extern "C" void fer_save_multi_to(tensor *tensors, char **tensor_names, int ntensors, uintptr_t sink) {
  try {
    torch::serialize::OutputArchive archive;
    fer_write_tensors(archive, tensors, tensor_names, ntensors);
    bool failed = false;
    std::function<size_t(const void *, size_t)> write = [&](const void *buf, size_t n) -> size_t {
      if (!failed && n > 0 && ferSaveWrite(sink, const_cast<void *>(buf), n) != 0)
        failed = true;
      return n;
    };
    archive.save_to(write);
    if (failed)
      throw std::runtime_error("the Go writer failed");
  } catch (const exception &e) {
    torch_last_err = strdup(e.what());
  }
}
// --- end fer ---
`

// saveLibtchGo is added to the libtch package: the Go side of
// fer_save_multi_to.
const saveLibtchGo = `package libtch

// Added by fer's internal/gotchpatch; do not edit.

/*
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include "torch_api.h"
void fer_save_multi_to(tensor *tensors, char **tensor_names, int ntensors, uintptr_t sink);
*/
import "C"

import (
	"fmt"
	"io"
	"runtime/cgo"
	"unsafe"
)

type ferSaveSink struct {
	w   io.Writer
	err error
}

//export ferSaveWrite
func ferSaveWrite(sink C.uintptr_t, buf unsafe.Pointer, n C.size_t) (failed C.int) {
	s := cgo.Handle(sink).Value().(*ferSaveSink)
	if s.err != nil {
		return 1
	}
	// a panic must not unwind through libtorch's frames
	defer func() {
		if r := recover(); r != nil {
			s.err = fmt.Errorf("writer panicked: %v", r)
			failed = 1
		}
	}()
	if _, err := s.w.Write(unsafe.Slice((*byte)(buf), int(n))); err != nil {
		s.err = err
		return 1
	}
	return 0
}

// FerSaveMultiTo writes tensors under names as one libtorch archive (the
// format at_save_multi writes to a file) to w. It returns w's first error;
// libtorch's own errors are left in the last-error slot (ts.TorchErr).
func FerSaveMultiTo(tensors []Ctensor, names []string, w io.Writer) error {
	n := len(tensors)
	if n == 0 || len(names) != n {
		return fmt.Errorf("save: %d tensors, %d names", n, len(names))
	}
	s := &ferSaveSink{w: w}
	h := cgo.NewHandle(s)
	defer h.Delete()
	ctensors := (*[1 << 30]C.tensor)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(ctensors))
	cnames := (*[1 << 30]*C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(cnames))
	for i := 0; i < n; i++ {
		ctensors[i] = (C.tensor)(tensors[i])
		cnames[i] = C.CString(names[i])
		defer C.free(unsafe.Pointer(cnames[i]))
	}
	C.fer_save_multi_to(&ctensors[0], &cnames[0], C.int(n), C.uintptr_t(h))
	return s.err
}
`

// saveTsGo is added to the ts package.
const saveTsGo = `package ts

// Added by fer's internal/gotchpatch; do not edit.

import (
	"io"

	lib "github.com/sugarme/gotch/libtch"
)

// SaveMultiTo writes named tensors as one libtorch archive, the format
// SaveMultiNew writes to a file, to w. A failed write returns w's error
// and never ends the process.
func SaveMultiTo(namedTensors []NamedTensor, w io.Writer) error {
	tensors := make([]lib.Ctensor, len(namedTensors))
	names := make([]string, len(namedTensors))
	for i, nt := range namedTensors {
		tensors[i] = nt.Tensor.ctensor
		names[i] = nt.Name
	}
	werr := lib.FerSaveMultiTo(tensors, names, w)
	terr := TorchErr()
	if werr != nil {
		return werr
	}
	return terr
}
`

// patchSave applies the saver changes to the copy at root.
func patchSave(root string) error {
	cpp := filepath.Join(root, "libtch", "torch_api.cpp")
	b, err := os.ReadFile(cpp)
	if err != nil {
		return err
	}
	out, err := replaceFunctions(string(b), []string{"at_save", "at_save_multi"}, saveCpp)
	if err != nil {
		return fmt.Errorf("%s: %w (gotch changed: update internal/gotchpatch/save.go)", cpp, err)
	}
	if !strings.Contains(out, "#include <cerrno>") {
		out = "#include <cerrno>\n#include <cstdio>\n#include <cstring>\n#include <functional>\n" + out
	}
	if err := os.WriteFile(cpp, []byte(out), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "libtch", "fer_save.go"), []byte(saveLibtchGo), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "ts", "fer_save.go"), []byte(saveTsGo), 0o644)
}

// replaceFunctions removes the definitions of the named functions from a
// C++ source and puts repl where the first of them was. Every name must
// be defined exactly once.
func replaceFunctions(src string, names []string, repl string) (string, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := map[string]int{}
	var b strings.Builder
	last, placed := 0, false
	for _, f := range parseFunctions(src) {
		if !want[f.Name] {
			continue
		}
		found[f.Name]++
		b.WriteString(src[last:f.Start])
		if !placed {
			b.WriteString(repl)
			placed = true
		}
		last = f.End
	}
	b.WriteString(src[last:])
	for _, n := range names {
		if found[n] != 1 {
			return "", fmt.Errorf("%s is defined %d times, want once", n, found[n])
		}
	}
	return b.String(), nil
}
