// Command gotchpatch makes gotch's C++ wrapper build against the libtorch
// at hand.
//
// gotch releases target one exact libtorch (v0.9.1: 2.1.0) and its
// libtch/lib.go hard-links CUDA. gotchpatch copies gotch from the Go module
// cache into a fixed directory per gotch version and libtorch (outside the
// module cache, which stays untouched), writes a lib.go with the cgo flags
// of that libtorch (CPU or CUDA, C++11 ABI or not), then compiles the
// wrapper and replaces the body of every exported generated function the
// compiler rejects with a stub that sets the wrapper's last error, so the Go
// side returns an error instead of failing to build or crashing. It loops
// until the wrapper compiles, prints the stubbed functions, records them in
// a Go file of the patched libtch package (fer reports them in `fercli
// env`) and writes the go.work that points the build at the patched copy.
//
// It also fixes gotch's Go op wrappers, which allocate every op's output
// slot with C.malloc(0) and never free it (a leak per op, and a heap
// overflow for ops with several outputs): see slots.go; turns gotch's
// log.Fatal and panic calls into panics fer can recover (fatal.go); and
// makes libtorch's savers unable to std::terminate on a failed write, with
// a saver into a Go io.Writer (save.go); and makes the Go unpickler read a
// declared length as the data arrives instead of allocating it (pickle.go).
//
// Re-running it with the same inputs only checks a stamp file.
//
// Usage (setup-gotch.sh runs it):
//
//	go run ./internal/gotchpatch -libtorch system -gotch $(go env GOMODCACHE)/github.com/sugarme/gotch@v0.9.1 -work go.work
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// revision changes whenever the patching logic changes, invalidating the
// stamps of earlier patched copies.
const revision = "fer-gotchpatch-9"

const gotchModule = "github.com/sugarme/gotch"

// The two wrapper files whose function bodies may be stubbed.
var wrapperFiles = []string{"torch_api_generated.cpp.h", "torch_api.cpp", ferAPISource}

type stamp struct {
	Revision string   `json:"revision"`
	Gotch    string   `json:"gotch"`
	Libtorch libtorch `json:"libtorch"`
	CXX      string   `json:"cxx"`
	Stubbed  []string `json:"stubbed"`
}

func main() {
	var (
		libRoot  = flag.String("libtorch", "system", `libtorch to build against: "system" (Debian's libtorch-dev) or a libtorch / Python torch package directory`)
		gotchDir = flag.String("gotch", "", "gotch module directory in the module cache (go mod download -json github.com/sugarme/gotch@v0.9.1 prints it)")
		gotchVer = flag.String("gotch-version", "v0.9.1", "gotch version being patched")
		outBase  = flag.String("out", defaultOutBase(), "directory under which patched copies live, one per gotch version and libtorch")
		workFile = flag.String("work", "", "write a go.work at this path that replaces gotch with the patched copy")
		cxx      = flag.String("cxx", envOr("CXX", "g++"), "C++ compiler used for the syntax checks (the one cgo uses)")
		maxRound = flag.Int("max-rounds", 8, "give up after this many compile-and-stub rounds")
	)
	flag.Parse()
	if err := run(*libRoot, *gotchDir, *gotchVer, *outBase, *workFile, *cxx, *maxRound); err != nil {
		fmt.Fprintln(os.Stderr, "gotchpatch:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func defaultOutBase() string {
	if v := os.Getenv("FER_CACHE"); v != "" {
		return v
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "fer")
	}
	return filepath.Join(os.TempDir(), "fer-cache")
}

func run(libRoot, gotchDir, gotchVer, outBase, workFile, cxx string, maxRounds int) error {
	if gotchDir == "" {
		return fmt.Errorf("-gotch is required: the gotch %s directory in the module cache", gotchVer)
	}
	if !fileExists(filepath.Join(gotchDir, "libtch", "torch_api.cpp")) {
		return fmt.Errorf("%s does not look like gotch (no libtch/torch_api.cpp): run `go mod download %s@%s`", gotchDir, gotchModule, gotchVer)
	}
	lt, err := findLibtorch(libRoot)
	if err != nil {
		return err
	}
	dst := filepath.Join(outBase, fmt.Sprintf("gotch-%s", gotchVer), dirName(lt))
	fmt.Printf("gotchpatch: libtorch %s (%s, %s ABI) at %s\n", lt.Version, lt.Variant(), map[bool]string{true: "C++11", false: "pre-C++11"}[lt.CXX11ABI], lt.LibDir)
	fmt.Printf("gotchpatch: patched gotch %s -> %s\n", gotchVer, dst)

	want := stamp{Revision: revision, Gotch: gotchVer, Libtorch: lt, CXX: cxx}
	if got, ok := readStamp(dst); ok && sameInputs(got, want) {
		fmt.Printf("gotchpatch: up to date (%d functions stubbed)\n", len(got.Stubbed))
		return writeWork(workFile, dst)
	}

	if err := copyTree(gotchDir, dst); err != nil {
		return fmt.Errorf("copy gotch to %s: %w", dst, err)
	}
	slots, err := patchOutputSlots(filepath.Join(dst, "ts"))
	if err != nil {
		return err
	}
	fmt.Printf("gotchpatch: %d op wrappers get a freed output buffer instead of a leaked malloc(0)\n", slots)
	fatals, err := patchFatal(dst)
	if err != nil {
		return err
	}
	fmt.Printf("gotchpatch: %d log.Fatal/panic calls panic with *gotch.FerFatalError, which fer recovers as an error\n", fatals)
	if err := patchSave(dst); err != nil {
		return err
	}
	fmt.Println("gotchpatch: at_save/at_save_multi cannot std::terminate on a failed write; ts.SaveMultiTo writes to an io.Writer")
	if err := patchPickle(dst); err != nil {
		return err
	}
	fmt.Println("gotchpatch: the Go unpickler reads declared lengths as the data arrives")
	libtch := filepath.Join(dst, "libtch")
	if err := os.WriteFile(filepath.Join(libtch, "lib.go"), []byte(libGo(lt)), 0o644); err != nil {
		return err
	}
	if err := addFerAPI(libtch); err != nil {
		return err
	}
	stubbed, err := patchUntilItCompiles(libtch, lt, cxx, maxRounds)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(libtch, "fer_patch.go"), []byte(ferPatchGo(gotchVer, lt, stubbed)), 0o644); err != nil {
		return err
	}
	fmt.Printf("gotchpatch: stubbed %d generated functions that do not compile against libtorch %s:\n", len(stubbed), lt.Version)
	for _, s := range stubbed {
		fmt.Println("  ", s)
	}
	want.Stubbed = stubbed
	if err := writeStamp(dst, want); err != nil {
		return err
	}
	return writeWork(workFile, dst)
}

// dirName is the per-libtorch directory of the patched copy: version and
// flavour, plus a short hash of the location for non-system installs so two
// different libtorch trees of one version never share a copy.
func dirName(l libtorch) string {
	name := "libtorch-" + strings.NewReplacer("+", "_", "/", "_").Replace(l.Version) + "-" + l.Variant()
	if l.Root != "system" {
		h := sha256.Sum256([]byte(l.Root))
		name += "-" + hex.EncodeToString(h[:4])
	}
	return name
}

func sameInputs(a, b stamp) bool {
	return a.Revision == b.Revision && a.Gotch == b.Gotch && a.Libtorch == b.Libtorch && a.CXX == b.CXX
}

func readStamp(dir string) (stamp, bool) {
	var s stamp
	b, err := os.ReadFile(filepath.Join(dir, "fer-patch.json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	// the stamp is written last; also require the generated files.
	if !fileExists(filepath.Join(dir, "libtch", "fer_patch.go")) {
		return s, false
	}
	return s, true
}

func writeStamp(dir string, s stamp) error {
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := filepath.Join(dir, "fer-patch.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "fer-patch.json"))
}

// writeWork writes a go.work next to the fer module that uses it and
// replaces gotch with the patched copy. It is generated and git-ignored.
func writeWork(path, dst string) error {
	if path == "" {
		return nil
	}
	goVer := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.Index(goVer, " "); i >= 0 {
		goVer = goVer[:i]
	}
	if f := strings.Split(goVer, "."); len(f) >= 2 {
		goVer = f[0] + "." + f[1]
	}
	content := fmt.Sprintf("// Generated by setup-gotch.sh (internal/gotchpatch); do not edit or commit.\n// It points the build at gotch patched for this machine's libtorch.\ngo %s\n\nuse .\n\nreplace %s => %s\n", goVer, gotchModule, dst)
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	fmt.Printf("gotchpatch: wrote %s\n", path)
	return os.WriteFile(path, []byte(content), 0o644)
}

// copyTree copies src to dst as a fresh, writable tree (module cache files
// are read-only). dst is replaced atomically via a sibling temp directory.
func copyTree(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(tmp, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// patchUntilItCompiles syntax-checks the wrapper and stubs the functions
// the compiler points at, until it compiles. Each round is one compiler
// run; with libtorch 1.13.1 one round finds all of them.
func patchUntilItCompiles(libtch string, lt libtorch, cxx string, maxRounds int) ([]string, error) {
	exported, err := exportedNames(libtch)
	if err != nil {
		return nil, err
	}
	files := map[string]bool{}
	for _, f := range wrapperFiles {
		files[f] = true
	}
	all := map[string]bool{}
	for round := 1; round <= maxRounds; round++ {
		start := time.Now()
		args := append([]string{"-std=c++17", "-fsyntax-only", "-w", "-fmax-errors=0", "-fno-diagnostics-show-caret"}, lt.cppFlags(libtch)...)
		args = append(args, "torch_api.cpp")
		cmd := exec.Command(cxx, args...)
		cmd.Dir = libtch
		out, runErr := cmd.CombinedOutput()
		text := string(out)
		if runErr == nil && !hasErrors(text) {
			fmt.Printf("gotchpatch: round %d: wrapper compiles (%.0fs)\n", round, time.Since(start).Seconds())
			return sortedKeys(all), nil
		}
		if _, ok := runErr.(*exec.ExitError); runErr != nil && !ok {
			return nil, fmt.Errorf("run %s: %w (set CXX or install g++)", cxx, runErr)
		}
		// map diagnostics to the functions that contain them
		bad := map[string]map[string]bool{} // file -> names
		var orphan []string
		for _, d := range parseDiagnostics(text, files) {
			src, err := os.ReadFile(filepath.Join(libtch, d.File))
			if err != nil {
				return nil, err
			}
			f, ok := funcAtLine(parseFunctions(string(src)), d.Line)
			if !ok || !exported[f.Name] {
				orphan = append(orphan, d.Text)
				continue
			}
			if bad[d.File] == nil {
				bad[d.File] = map[string]bool{}
			}
			bad[d.File][f.Name] = true
		}
		if len(bad) == 0 {
			msg := firstErrors(text, 20)
			if len(orphan) > 0 {
				msg = strings.Join(orphan[:min(20, len(orphan))], "\n")
			}
			return nil, fmt.Errorf("the gotch wrapper does not compile against libtorch %s and the errors are not inside exported wrapper functions, so they cannot be stubbed:\n%s", lt.Version, msg)
		}
		n := 0
		for file, names := range bad {
			p := filepath.Join(libtch, file)
			src, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			patched, done := stubFunctions(string(src), names, lt.Version)
			if err := os.WriteFile(p, []byte(patched), 0o644); err != nil {
				return nil, err
			}
			for _, name := range done {
				all[name] = true
				n++
			}
		}
		fmt.Printf("gotchpatch: round %d: stubbed %d functions (%.0fs)\n", round, n, time.Since(start).Seconds())
		if n == 0 {
			return nil, fmt.Errorf("round %d made no progress; first errors:\n%s", round, firstErrors(text, 20))
		}
	}
	return nil, fmt.Errorf("the wrapper still does not compile after %d rounds", maxRounds)
}

// exportedNames are the C functions declared in the wrapper's headers:
// only those are stubbed (a helper that fails is a real incompatibility).
func exportedNames(libtch string) (map[string]bool, error) {
	names := map[string]bool{}
	for _, h := range []string{"torch_api.h", "torch_api_generated.h", ferAPIHeader} {
		b, err := os.ReadFile(filepath.Join(libtch, h))
		if err != nil {
			return nil, err
		}
		for _, m := range identBeforeParen.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
	}
	return names, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// libGo is the replacement for gotch's libtch/lib.go.
func libGo(l libtorch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package libtch\n\n// Generated by fer's internal/gotchpatch for libtorch %s (%s); do not edit.\n// Upstream's lib.go hard-links CUDA and puts the ABI define in CFLAGS,\n// which the C++ compile never sees; these flags come from the libtorch found.\n\n", l.Version, l.Variant())
	fmt.Fprintf(&b, "// #cgo CPPFLAGS: %s\n", strings.Join(l.cppFlags("${SRCDIR}"), " "))
	b.WriteString("// #cgo CXXFLAGS: -std=c++17 -O1 -g0 -w\n")
	b.WriteString("// #cgo CFLAGS: -O2 -w\n")
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s\n", strings.Join(l.ldFlags(), " "))
	b.WriteString("import \"C\"\n")
	return b.String()
}

// ferPatchGo is an extra file of the patched libtch package: what was
// patched, and bindings gotch v0.9.1 lacks on the Go side (thread count,
// global seed).
func ferPatchGo(gotchVer string, l libtorch, stubbed []string) string {
	var b strings.Builder
	b.WriteString("package libtch\n\n// Generated by fer's internal/gotchpatch; do not edit.\n\n")
	b.WriteString("// #include <stdbool.h>\n// #include <stdlib.h>\n// #include \"torch_api.h\"\nimport \"C\"\n\nimport (\n\t\"errors\"\n\t\"fmt\"\n\t\"strconv\"\n\t\"strings\"\n\t\"unsafe\"\n)\n\n")
	fmt.Fprintf(&b, "// FerGotchVersion is the gotch release this copy was patched from.\nconst FerGotchVersion = %q\n\n", gotchVer)
	fmt.Fprintf(&b, "// FerLibtorchVersion is the libtorch this copy was built for.\nconst FerLibtorchVersion = %q\n\n", l.Version)
	fmt.Fprintf(&b, "// FerLibtorchCUDA reports whether that libtorch has CUDA.\nconst FerLibtorchCUDA = %v\n\n", l.CUDA)
	fmt.Fprintf(&b, "// FerLibtorchDir is where that libtorch's libraries are.\nconst FerLibtorchDir = %q\n\n", l.LibDir)
	fmt.Fprintf(&b, "// FerBLASDir is the OpenMP OpenBLAS that every binary linking this copy\n// loads first for libtorch's libblas.so.3 (DT_RPATH); empty when this\n// libtorch does not take its BLAS from libblas.so.3 or the OpenMP build\n// was not installed when setup-gotch.sh ran.\nconst FerBLASDir = %q\n\n", l.BLASDir)
	b.WriteString("// FerStubbed lists the wrapper functions that do not compile against that\n// libtorch; calling them sets an error instead of running.\nvar FerStubbed = []string{\n")
	for _, s := range stubbed {
		fmt.Fprintf(&b, "\t%q,\n", s)
	}
	b.WriteString("}\n\n")
	b.WriteString(`// FerSetNumThreads sets libtorch's intra-op thread count.
func FerSetNumThreads(n int) { C.at_set_num_threads(C.int(n)) }

// FerGetNumThreads returns libtorch's intra-op thread count.
func FerGetNumThreads() int { return int(C.at_get_num_threads()) }

// FerManualSeed seeds libtorch's global generators (CPU and CUDA).
func FerManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// FerFlopsStart starts counting the FLOPs of the GEMM-like ops every
// thread dispatches (fer_api.h).
func FerFlopsStart() error {
	C.fer_flops_start()
	return ferLastErr()
}

// FerFlopsStop ends the count: FLOPs (2 x multiply-accumulates), GEMM-like
// ops counted, and outermost dispatched ops of any kind.
func FerFlopsStop() (flops, gemms, ops int64, err error) {
	var out [3]C.int64_t
	C.fer_flops_stop(&out[0])
	if err := ferLastErr(); err != nil {
		return 0, 0, 0, err
	}
	return int64(out[0]), int64(out[1]), int64(out[2]), nil
}

// FerFlopsOpCounts is the outermost ops of the last count by name.
func FerFlopsOpCounts() (map[string]int64, error) {
	n := C.fer_flops_op_counts(nil, 0)
	if err := ferLastErr(); err != nil {
		return nil, err
	}
	buf := make([]byte, int(n)+1)
	C.fer_flops_op_counts((*C.char)(unsafe.Pointer(&buf[0])), C.int64_t(len(buf)))
	if err := ferLastErr(); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, count := line[:i], line[i+1:]
		c, err := strconv.ParseInt(count, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fer_flops_op_counts: line %q", line)
		}
		out[name] = c
	}
	return out, nil
}

// FerSDPA runs torch::scaled_dot_product_attention(q, k, v) without a
// mask (libtorch >= 2.0; an error where it is stubbed).
func FerSDPA(q, k, v Ctensor, dropoutP float64, causal bool) (Ctensor, error) {
	var out [1]Ctensor
	c := 0
	if causal {
		c = 1
	}
	C.fer_sdpa(&out[0], q, k, v, C.double(dropoutP), C.int(c))
	if err := ferLastErr(); err != nil {
		return nil, err
	}
	return out[0], nil
}

// FerAddcmul_ does self += value·t1·t2 in place (Tensor::addcmul_ with
// its value argument, which gotch's generated wrapper lacks).
func FerAddcmul_(self, t1, t2 Ctensor, value float64) error {
	C.fer_addcmul_(self, t1, t2, C.double(value))
	return ferLastErr()
}

// FerAddcdiv_ does self += value·t1/t2 in place (Tensor::addcdiv_ with
// its value argument).
func FerAddcdiv_(self, t1, t2 Ctensor, value float64) error {
	C.fer_addcdiv_(self, t1, t2, C.double(value))
	return ferLastErr()
}

// FerAddAlpha_ does self += alpha·other in place (Tensor::add_ with its
// alpha argument).
func FerAddAlpha_(self, other Ctensor, alpha float64) error {
	C.fer_add_alpha_(self, other, C.double(alpha))
	return ferLastErr()
}

// FerAddAlpha returns self + alpha·other as a new tensor (torch.add with
// alpha).
func FerAddAlpha(self, other Ctensor, alpha float64) (Ctensor, error) {
	var out [1]Ctensor
	C.fer_add_alpha(&out[0], self, other, C.double(alpha))
	if err := ferLastErr(); err != nil {
		return nil, err
	}
	return out[0], nil
}

// ferLastErr takes this thread's last wrapper error.
func ferLastErr() error {
	p := C.get_and_reset_last_err()
	if p == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(p))
	return errors.New(C.GoString(p))
}
`)
	return b.String()
}
