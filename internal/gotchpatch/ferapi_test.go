package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fer's entry points are exported wrapper functions the stubber can
// replace: the parser finds both in fer_api.cpp.h and the names are
// declared in fer_api.h.
func TestFerAPIIsStubbable(t *testing.T) {
	funcs := parseFunctions(ferAPICpp)
	var names []string
	for _, f := range funcs {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "fer_flops_start fer_flops_stop fer_flops_op_counts fer_sdpa fer_addcmul_ fer_addcdiv_ fer_add_alpha_ fer_add_alpha" {
		t.Fatalf("functions in fer_api.cpp.h: %q", got)
	}
	for _, n := range names {
		if !strings.Contains(ferAPIH, n+"(") {
			t.Errorf("%s not declared in fer_api.h", n)
		}
	}
	out, done := stubFunctions(ferAPICpp, map[string]bool{"fer_flops_start": true}, "9.9")
	if len(done) != 1 || !strings.Contains(out, "fer_flops_start is not available with libtorch 9.9") || !strings.Contains(out, "at::removeCallback") {
		t.Fatalf("stubbing fer_flops_start: %v\n%s", done, out)
	}
}

func TestAddFerAPI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("torch_api.h", "extern \"C\" {\n#include \"torch_api_generated.h\"\n}\n")
	write("torch_api.cpp", "#include \"torch_api.h\"\n#include \"torch_api_generated.cpp.h\"\n")
	if err := addFerAPI(dir); err != nil {
		t.Fatal(err)
	}
	h, _ := os.ReadFile(filepath.Join(dir, "torch_api.h"))
	c, _ := os.ReadFile(filepath.Join(dir, "torch_api.cpp"))
	if !strings.Contains(string(h), "#include \"torch_api_generated.h\"\n#include \"fer_api.h\"\n}") {
		t.Errorf("torch_api.h:\n%s", h)
	}
	if !strings.HasSuffix(string(c), "#include \"torch_api_generated.cpp.h\"\n#include \"fer_api.cpp.h\"\n") {
		t.Errorf("torch_api.cpp:\n%s", c)
	}
	for _, f := range []string{ferAPIHeader, ferAPISource} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	write("torch_api.cpp", "no anchor\n")
	if err := addFerAPI(dir); err == nil || !strings.Contains(err.Error(), "torch_api_generated.cpp.h") {
		t.Errorf("missing anchor: %v", err)
	}
}

// The OpenMP OpenBLAS goes into a DT_RPATH (not a DT_RUNPATH, which would
// not reach libtorch_cpu.so's own libblas.so.3).
func TestBLASRpath(t *testing.T) {
	l := libtorch{Root: "system", IncludeDir: "/usr/include", LibDir: "/usr/lib/x86_64-linux-gnu", Version: "1.13.1", CXX11ABI: true,
		BLASDir: "/usr/lib/x86_64-linux-gnu/openblas-openmp"}
	g := libGo(l)
	if !strings.Contains(g, "LDFLAGS: -Wl,--disable-new-dtags -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lstdc++") {
		t.Errorf("lib.go:\n%s", g)
	}
	if !strings.Contains(g, "-DNDEBUG") {
		t.Errorf("lib.go lacks -DNDEBUG:\n%s", g)
	}
	l.BLASDir = ""
	if g := libGo(l); strings.Contains(g, "rpath") || strings.Contains(g, "new-dtags") {
		t.Errorf("no BLAS dir, yet:\n%s", g)
	}
	if g := ferPatchGo("v0.9.1", libtorch{BLASDir: "/x/openblas-openmp"}, nil); !strings.Contains(g, `const FerBLASDir = "/x/openblas-openmp"`) || !strings.Contains(g, "func FerFlopsStart() error") {
		t.Errorf("fer_patch.go:\n%s", g)
	}
}

func TestOpenMPBLASDir(t *testing.T) {
	torchCPU := "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so"
	if !fileExists(torchCPU) {
		t.Skip("no Debian libtorch_cpu.so here")
	}
	dir := t.TempDir()
	if got, err := openMPBLAS(torchCPU, []string{dir}); err != nil || got != "" {
		t.Fatalf("no OpenMP build: %q %v", got, err)
	}
	blas := filepath.Join(dir, openMPBLASSubdir)
	if err := os.MkdirAll(blas, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blas, "libblas.so.3"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := openMPBLAS(torchCPU, []string{"/nonexistent", dir}); err != nil || got != blas {
		t.Fatalf("openMPBLAS = %q, %v; want %s", got, err, blas)
	}
	// a library that does not need libblas.so.3 gets no BLAS directory
	if got, err := openMPBLAS("/usr/lib/x86_64-linux-gnu/libc10.so", []string{dir}); err != nil || got != "" {
		t.Fatalf("libc10: %q %v", got, err)
	}
}
