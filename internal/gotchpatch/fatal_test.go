package main

import (
	"strings"
	"testing"
)

func TestRewriteFatal(t *testing.T) {
	src := `package nn

import (
	"fmt"
	"log"
)

func f(err error) int {
	if err != nil {
		log.Fatalf("bad: %v", err)
	}
	if err == nil {
		panic("unreachable")
	}
	fmt.Println()
	return 1
}
`
	out, n, err := rewriteFatal([]byte(src), false)
	if err != nil || n != 2 {
		t.Fatalf("n = %d, err = %v", n, err)
	}
	got := string(out)
	for _, want := range []string{`gotch.FerFatalf("bad: %v", err)`, `panic(gotch.FerPanicValue("unreachable"))`, `"github.com/sugarme/gotch"`} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"log"`) {
		t.Errorf("unused log import kept:\n%s", got)
	}
	// the root package calls the helpers unqualified and keeps a log
	// import that is still used
	root := "package gotch\n\nimport \"log\"\n\nfunc g() { log.Println(); log.Fatal(\"x\") }\n"
	out, n, err = rewriteFatal([]byte(root), true)
	if err != nil || n != 1 || !strings.Contains(string(out), "FerFatal(\"x\")") || !strings.Contains(string(out), `import "log"`) {
		t.Fatalf("root: n=%d err=%v\n%s", n, err, out)
	}
}

func TestReplaceFunctions(t *testing.T) {
	src := "#include <x>\nvoid a(int x) { one(); }\nint b() { return 2; }\nvoid c() { three(); }\n"
	out, err := replaceFunctions(src, []string{"a", "c"}, "/* new a and c */")
	if err != nil {
		t.Fatal(err)
	}
	if out != "#include <x>\n/* new a and c */\nint b() { return 2; }\n\n" {
		t.Fatalf("got %q", out)
	}
	if _, err := replaceFunctions(src, []string{"missing"}, ""); err == nil {
		t.Fatal("a missing function was not an error")
	}
}

func TestReplaceMethods(t *testing.T) {
	src := "package p\n\ntype U struct{}\n\n// read doc\nfunc (u *U) read() {}\n\nfunc (u U) read2() {}\n\nfunc (u *U) frame() {}\n"
	out, err := replaceMethods(src, "U", []string{"read", "frame"}, "func (u *U) read() {} // new\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "read doc") || strings.Count(out, "func (u *U)") != 1 || !strings.Contains(out, "read2") {
		t.Fatalf("got:\n%s", out)
	}
}
