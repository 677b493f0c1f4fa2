package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// outSlotBytes is the size of the C buffer each gotch op gets for its
// output handles: room for 16 (the most any op returns is 7).
const outSlotBytes = 16 * 8

// slotAlloc matches gotch's allocation of an op's output slot(s):
//
//	ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
var slotAlloc = regexp.MustCompile(`(?m)^([ \t]*)(\w+) := \(\*lib\.Ctensor\)\(unsafe\.Pointer\(C\.malloc\(0\)\)\)[ \t]*$`)

// fixOutputSlots rewrites gotch's Go op wrappers (package ts), which
// allocate each op's output slot with C.malloc(0) and never free it:
//
//   - the buffer leaks (32 bytes of C heap per op call: 17 KB a training
//     step of a small CNN, 170 MB over a 10k-step run; `fercli bench
//     --soak` caught it);
//   - ops with several outputs (max/min with indices, batch norm's
//     internals, LSTM/GRU: up to 7) write their handles past the end of a
//     zero-byte allocation, corrupting the C heap.
//
// Each allocation becomes C.malloc(outSlotBytes) freed by a defer when the
// wrapper returns (the handles have been copied into Go tensors by then).
// It returns the number of allocations rewritten.
func fixOutputSlots(src string) (string, int) {
	n := 0
	lines := strings.SplitAfter(src, "\n")
	var b strings.Builder
	for i, line := range lines {
		m := slotAlloc.FindStringSubmatch(strings.TrimRight(line, "\n"))
		if m == nil {
			b.WriteString(line)
			continue
		}
		n++
		indent, name := m[1], m[2]
		fmt.Fprintf(&b, "%s%s := (*lib.Ctensor)(unsafe.Pointer(C.malloc(%d)))\n", indent, name, outSlotBytes)
		free := fmt.Sprintf("defer C.free(unsafe.Pointer(%s))", name)
		if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == free {
			continue // gotch already frees this one
		}
		fmt.Fprintf(&b, "%s%s\n", indent, free)
	}
	return b.String(), n
}

// patchOutputSlots applies fixOutputSlots to the non-test Go files of the
// patched copy's ts package.
func patchOutputSlots(tsDir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(tsDir, "*.go"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return total, err
		}
		out, n := fixOutputSlots(string(b))
		if n == 0 {
			continue
		}
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			return total, err
		}
		total += n
	}
	if total == 0 {
		return 0, fmt.Errorf("no output-slot allocations found in %s: gotch's generated code changed, update internal/gotchpatch/slots.go", tsDir)
	}
	return total, nil
}
