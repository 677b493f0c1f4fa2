package main

import (
	"strings"
	"testing"
)

const sample = `#include "torch_api.h"
// a comment with a brace {
using namespace std;

char *get_err() {
  char *tmp = nullptr; /* } */
  return tmp;
}

void at_one(int x) { PROTECT(use(x, "}");) }

template <class T>
T at_value(tensor t, int64_t *indexes,
           int len) {
  PROTECT(return t->data_ptr<T>()[0];)
  return T();
}

tensor *atg_split(tensor self, int64_t n) {
  PROTECT(
    auto outputs__ = torch::split(*self, n);
    int sz = outputs__.size();
    return nullptr;
  )
  return nullptr;
}

void atg_new_op(tensor *out__, tensor self) {
  PROTECT(
    auto outputs__ = torch::new_op(*self, '{');
    out__[0] = new torch::Tensor(outputs__);
  )
}
`

func TestParseFunctions(t *testing.T) {
	fs := parseFunctions(sample)
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	want := "get_err at_one at_value atg_split atg_new_op"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("functions = %q, want %q", got, want)
	}
	lines := map[string][2]int{"get_err": {5, 8}, "at_one": {10, 10}, "at_value": {12, 17}, "atg_split": {19, 26}, "atg_new_op": {28, 33}}
	for _, f := range fs {
		if l := lines[f.Name]; f.StartLine != l[0] || f.EndLine != l[1] {
			t.Errorf("%s spans lines %d-%d, want %d-%d", f.Name, f.StartLine, f.EndLine, l[0], l[1])
		}
	}
	if f, ok := funcAtLine(fs, 30); !ok || f.Name != "atg_new_op" {
		t.Fatalf("line 30 -> %v %v", f.Name, ok)
	}
	if _, ok := funcAtLine(fs, 3); ok {
		t.Fatal("line 3 is outside every function")
	}
	if !fs[4].ReturnsVoid() || fs[3].ReturnsVoid() {
		t.Fatal("return types misread")
	}
}

func TestStubFunctions(t *testing.T) {
	out, done := stubFunctions(sample, map[string]bool{"atg_new_op": true, "atg_split": true, "absent": true}, "1.13.1")
	if strings.Join(done, ",") != "atg_split,atg_new_op" {
		t.Fatalf("stubbed %v", done)
	}
	if strings.Contains(out, "torch::new_op") || strings.Contains(out, "torch::split") {
		t.Fatal("original bodies still present")
	}
	if !strings.Contains(out, `torch_last_err = strdup("fer: atg_new_op is not available with libtorch 1.13.1`) {
		t.Fatalf("no error-setting stub:\n%s", out)
	}
	// non-void functions return a zero value; void ones do not return
	split := out[strings.Index(out, "tensor *atg_split"):]
	split = split[:strings.Index(split, "\n}")]
	if !strings.Contains(split, "return {};") {
		t.Fatalf("pointer-returning stub lacks a return:\n%s", split)
	}
	newop := out[strings.Index(out, "void atg_new_op"):]
	if strings.Contains(newop, "return") {
		t.Fatalf("void stub returns:\n%s", newop)
	}
	// untouched functions survive byte for byte, and the result re-parses
	if !strings.Contains(out, "void at_one(int x) { PROTECT(use(x, \"}\");) }") {
		t.Fatal("at_one changed")
	}
	if n := len(parseFunctions(out)); n != 5 {
		t.Fatalf("patched source has %d functions", n)
	}
}

func TestParseDiagnostics(t *testing.T) {
	out := `In file included from torch_api.cpp:1079:
/x/libtch/torch_api_generated.cpp.h: In function 'void atg_new_op(at::Tensor**, at::Tensor*)':
/x/libtch/torch_api_generated.cpp.h:30:27: error: 'new_op' is not a member of 'torch'
/usr/include/c10/util/Optional.h:100:5: error: no matching function for call to 'foo'
/x/libtch/torch_api.cpp:14:3:   required from here
/usr/include/ATen/Functions.h:12:3: note: candidate: 'bar'
/x/libtch/torch_api.h:60:1: warning: unused
`
	ds := parseDiagnostics(out, map[string]bool{"torch_api_generated.cpp.h": true, "torch_api.cpp": true})
	if len(ds) != 2 || ds[0].File != "torch_api_generated.cpp.h" || ds[0].Line != 30 || ds[1].File != "torch_api.cpp" || ds[1].Line != 14 {
		t.Fatalf("diagnostics = %+v", ds)
	}
	if !hasErrors(out) || hasErrors("a.cpp:1:1: warning: x") {
		t.Fatal("hasErrors")
	}
}

func TestLibGoFlags(t *testing.T) {
	cpu := libtorch{Root: "system", IncludeDir: "/usr/include", LibDir: "/usr/lib/x86_64-linux-gnu", Version: "1.13.1", CXX11ABI: true}
	g := libGo(cpu)
	for _, want := range []string{"-D_GLIBCXX_USE_CXX11_ABI=1", "#cgo CPPFLAGS", "-ltorch_cpu"} {
		if !strings.Contains(g, want) {
			t.Errorf("CPU lib.go lacks %q", want)
		}
	}
	if strings.Contains(g, "cuda") {
		t.Error("CPU lib.go links CUDA")
	}
	// the ABI define must reach the C++ compile: CPPFLAGS, not CFLAGS
	if strings.Contains(g, "CFLAGS: -D_GLIBCXX") {
		t.Error("ABI define in CFLAGS")
	}
	cu := libtorch{Root: "/opt/torch", IncludeDir: "/opt/torch/include", LibDir: "/opt/torch/lib", Version: "2.5.1+cu124", CUDA: true}
	g = libGo(cu)
	for _, want := range []string{"-D_GLIBCXX_USE_CXX11_ABI=0", "-I/opt/torch/include ", "-Wl,-rpath,/opt/torch/lib", "-Wl,--no-as-needed -ltorch_cuda -lc10_cuda"} {
		if !strings.Contains(g, want) {
			t.Errorf("CUDA lib.go lacks %q:\n%s", want, g)
		}
	}
	if dirName(cu) == dirName(libtorch{Root: "/other", Version: "2.5.1+cu124", CUDA: true}) {
		t.Error("two libtorch trees of one version share a patched copy")
	}
	if got := dirName(cpu); got != "libtorch-1.13.1-cpu" {
		t.Errorf("dirName = %s", got)
	}
}
