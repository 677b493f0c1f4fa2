package main

import (
	"strings"
	"testing"
)

func TestFixOutputSlots(t *testing.T) {
	src := `func(ts *Tensor) Relu(del bool)(retVal *Tensor, err error) {
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  
    lib.AtgRelu(ptr, ts.ctensor)
  retVal = newTensor(*ptr)
}
func (ts *Tensor) Lstm() {
	ctensorPtr1 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
	ctensorPtr2 := (*lib.Ctensor)(unsafe.Pointer(uintptr(unsafe.Pointer(ctensorPtr1)) + unsafe.Sizeof(ctensorPtr1)))
}
func grads() {
	for i := 0; i < n; i++ {
		outputPtr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
		defer C.free(unsafe.Pointer(outputPtr))
	}
}
// ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
`
	got, n := fixOutputSlots(src)
	if n != 3 {
		t.Fatalf("rewrote %d allocations, want 3:\n%s", n, got)
	}
	for _, want := range []string{
		"  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(128)))\n  defer C.free(unsafe.Pointer(ptr))\n  \n",
		"\tctensorPtr1 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(128)))\n\tdefer C.free(unsafe.Pointer(ctensorPtr1))\n\tctensorPtr2 :=",
		"\t\toutputPtr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(128)))\n\t\tdefer C.free(unsafe.Pointer(outputPtr))\n\t}",
		"// ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))\n", // comments stay
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Count(got, "defer C.free(unsafe.Pointer(outputPtr))") != 1 {
		t.Error("an existing free was doubled")
	}
}
