package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// libtorch describes the libtorch installation the wrapper is built for.
type libtorch struct {
	Root       string // the LIBTORCH directory, or "system"
	IncludeDir string // holds torch/torch.h's parent tree (…/include)
	LibDir     string // holds libtorch.so
	Version    string // e.g. "1.13.1" or "2.5.1+cu124"
	CUDA       bool   // libtorch_cuda.so present
	CXX11ABI   bool   // built with _GLIBCXX_USE_CXX11_ABI=1
	// BLASDir is the OpenMP build of OpenBLAS (Debian's
	// libopenblas0-openmp) when libtorch_cpu.so takes its BLAS from the
	// system's libblas.so.3; empty otherwise (official libtorch builds
	// link MKL or their own BLAS). See ldFlags.
	BLASDir string
}

// Variant is the short name of the build flavour used in the patched
// copy's directory name.
func (l libtorch) Variant() string {
	if l.CUDA {
		return "cuda"
	}
	return "cpu"
}

// systemLibDirs are where Debian (and most distributions) put libtorch.so.
var systemLibDirs = []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"}

// findLibtorch resolves root ("" or "system" for the distribution's
// libtorch, else a libtorch directory or a Python torch package directory).
func findLibtorch(root string) (libtorch, error) {
	var l libtorch
	if root == "" || root == "system" {
		l.Root = "system"
		for _, d := range systemLibDirs {
			if fileExists(filepath.Join(d, "libtorch.so")) {
				l.LibDir = d
				break
			}
		}
		if l.LibDir == "" {
			return l, errors.New("no libtorch.so in the system library directories: install Debian's libtorch-dev (apt-get install libtorch-dev) or set LIBTORCH=/path/to/libtorch")
		}
		l.IncludeDir = "/usr/include"
		if !fileExists(filepath.Join(l.IncludeDir, "torch/csrc/api/include/torch/torch.h")) {
			return l, errors.New("libtorch headers missing from /usr/include/torch: install libtorch-dev")
		}
		l.Version = debianVersion("libtorch-dev")
	} else {
		abs, err := filepath.Abs(root)
		if err != nil {
			return l, err
		}
		l.Root = abs
		l.IncludeDir = filepath.Join(abs, "include")
		l.LibDir = filepath.Join(abs, "lib")
		if !fileExists(filepath.Join(l.IncludeDir, "torch/csrc/api/include/torch/torch.h")) {
			return l, fmt.Errorf("LIBTORCH=%s: no include/torch/csrc/api/include/torch/torch.h under it; point LIBTORCH at a libtorch directory (with include/ and lib/) or at a Python torch package directory (python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')", root)
		}
		if !fileExists(filepath.Join(l.LibDir, "libtorch.so")) {
			return l, fmt.Errorf("LIBTORCH=%s: no lib/libtorch.so under it", root)
		}
		l.Version = pythonTorchVersion(filepath.Join(abs, "version.py"))
		if l.Version == "" {
			if b, err := os.ReadFile(filepath.Join(abs, "build-version")); err == nil {
				l.Version = strings.TrimSpace(string(b))
			}
		}
	}
	if l.Version == "" {
		l.Version = headerVersion(l.IncludeDir)
	}
	if l.Version == "" {
		return l, fmt.Errorf("cannot tell the libtorch version under %s", l.IncludeDir)
	}
	l.CUDA = fileExists(filepath.Join(l.LibDir, "libtorch_cuda.so"))
	abi, err := cxx11ABI(filepath.Join(l.LibDir, "libc10.so"))
	if err != nil {
		return l, err
	}
	l.CXX11ABI = abi
	if l.BLASDir, err = openMPBLAS(filepath.Join(l.LibDir, "libtorch_cpu.so"), systemLibDirs); err != nil {
		return l, err
	}
	return l, nil
}

// openMPBLASSubdir is where Debian's libopenblas0-openmp puts its
// libblas.so.3 and liblapack.so.3, under the multiarch library directory.
const openMPBLASSubdir = "openblas-openmp"

// openMPBLAS returns the directory of the OpenMP build of OpenBLAS when
// libtorchCPU needs the system's libblas.so.3 and that build is installed
// under one of libDirs, else "".
func openMPBLAS(libtorchCPU string, libDirs []string) (string, error) {
	f, err := elf.Open(libtorchCPU)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", libtorchCPU, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", fmt.Errorf("read the libraries %s needs: %w", libtorchCPU, err)
	}
	needsBLAS := false
	for _, l := range libs {
		if l == "libblas.so.3" {
			needsBLAS = true
		}
	}
	if !needsBLAS {
		return "", nil
	}
	for _, d := range libDirs {
		dir := filepath.Join(d, openMPBLASSubdir)
		if fileExists(filepath.Join(dir, "libblas.so.3")) {
			return dir, nil
		}
	}
	return "", nil
}

// debianVersion returns the upstream part of an installed Debian package's
// version ("1.13.1+dfsg-4" -> "1.13.1"), or "" when dpkg does not know it.
// Debian's 1.13.1 headers say 1.13.0, so the package version is preferred.
func debianVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.IndexAny(v, "+-~"); i >= 0 {
		v = v[:i]
	}
	return v
}

var pyVersion = regexp.MustCompile(`(?m)^__version__\s*=\s*['"]([^'"]+)['"]`)

func pythonTorchVersion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if m := pyVersion.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

var headerVer = regexp.MustCompile(`#define TORCH_VERSION\s*\\?\s*"([^"]+)"`)

func headerVersion(include string) string {
	b, err := os.ReadFile(filepath.Join(include, "torch/csrc/api/include/torch/version.h"))
	if err != nil {
		return ""
	}
	if m := headerVer.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// cxx11ABI tells from libc10.so's exported symbols whether libtorch was
// built with the C++11 std::string ABI (symbols mention std::__cxx11).
// Getting this wrong compiles fine and then fails to link with undefined
// c10::Error constructors.
func cxx11ABI(libc10 string) (bool, error) {
	f, err := elf.Open(libc10)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", libc10, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false, fmt.Errorf("read symbols of %s: %w", libc10, err)
	}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && strings.Contains(s.Name, "__cxx11") {
			return true, nil
		}
	}
	return false, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// cppFlags are the preprocessor flags for the wrapper (used for both the
// cgo build and the patcher's syntax checks).
func (l libtorch) cppFlags(srcdir string) []string {
	abi := "0"
	if l.CXX11ABI {
		abi = "1"
	}
	f := []string{"-I" + srcdir}
	if l.IncludeDir != "/usr/include" {
		f = append(f, "-I"+l.IncludeDir)
	}
	// NDEBUG as libtorch itself was built: some classes (RecordFunction)
	// have debug-only members and inline checks of them.
	f = append(f, "-I"+filepath.Join(l.IncludeDir, "torch/csrc/api/include"), "-D_GLIBCXX_USE_CXX11_ABI="+abi, "-DNDEBUG")
	return f
}

// ldFlags are the linker flags: CPU libraries always; the CUDA ones only
// when this libtorch has them, kept with --no-as-needed because nothing
// references libtorch_cuda directly and dropping it silently disables CUDA.
//
// With BLASDir, every binary that links gotch searches the OpenMP OpenBLAS
// first for libblas.so.3 and liblapack.so.3, whatever the machine's BLAS
// alternative says (Debian's default is the pthreads build, whose threads
// fight libtorch's OpenMP pool: GOTCH.md). libblas.so.3 is not the
// binary's own dependency but libtorch_cpu.so's, and a DT_RUNPATH (what
// -rpath writes by default) only applies to the object's own
// dependencies; a DT_RPATH applies to the whole dependency tree of the
// executable (for objects without a DT_RUNPATH of their own, which
// Debian's libtorch has not), hence --disable-new-dtags. It also takes
// precedence over LD_LIBRARY_PATH; LD_PRELOAD still overrides it.
func (l libtorch) ldFlags() []string {
	f := []string{}
	if l.BLASDir != "" {
		f = append(f, "-Wl,--disable-new-dtags")
	}
	if l.Root != "system" {
		f = append(f, "-L"+l.LibDir, "-Wl,-rpath,"+l.LibDir)
	}
	if l.BLASDir != "" {
		f = append(f, "-Wl,-rpath,"+l.BLASDir)
	}
	f = append(f, "-lstdc++", "-ltorch", "-ltorch_cpu", "-lc10")
	if l.CUDA {
		f = append(f, "-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed")
	}
	return f
}
