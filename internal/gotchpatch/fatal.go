package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// gotch ends the process on many error paths: every Must* function (the
// models' forward passes are written with them, as gotch's own layers
// are), and "non-Must" constructors such as nn.NewConv2D that call Must*
// inside, call log.Fatal, which exits with a Go and C++ stack dump that
// nothing can catch; other paths panic with a bare value. A libtorch
// allocation failure (`--set model.options.width=100000`, a batch too
// large for memory) or a shape error therefore killed fercli instead of
// coming back as an error.
//
// patchFatal rewrites the patched copy's Go code so that every such path
// panics with a *gotch.FerFatalError (fatalGo): log.Fatal(f|ln)(…)
// becomes gotch.FerFatal(f|ln)(…) and panic(v) becomes
// panic(gotch.FerPanicValue(v)) (still a terminating statement for the
// compiler). fer recovers that value at its API boundaries (fer.CatchTorch)
// and returns it as an error; any other panic is a bug and is not
// recovered.

// fatalPackages are the gotch packages (relative to the module root)
// whose fatal paths are rewritten: the ones fer calls.
var fatalPackages = []string{".", "ts", "nn", "pickle"}

// fatalGo is the file added to the root gotch package.
const fatalGo = `package gotch

// Added by fer's internal/gotchpatch; do not edit.

import (
	"fmt"
	"strings"
)

// FerFatalError is the panic value of every fatal error path of this
// patched copy of gotch: upstream calls log.Fatal there (the process exits
// and nothing can catch it) or panics with a bare value. fer recovers it
// at its API boundaries and returns it as an error.
type FerFatalError struct {
	Msg string
	// Err is the original error, when the path panicked with one.
	Err error
}

func (e *FerFatalError) Error() string { return e.Msg }

func (e *FerFatalError) Unwrap() error { return e.Err }

// FerTorchFatal marks the value. fer recognises fatal gotch panics by
// this method rather than by the type.
func (e *FerFatalError) FerTorchFatal() {}

func ferFatal(msg string, err error) *FerFatalError {
	return &FerFatalError{Msg: strings.TrimRight(msg, "\n"), Err: err}
}

func firstError(v []any) error {
	for _, x := range v {
		if e, ok := x.(error); ok {
			return e
		}
	}
	return nil
}

// FerFatal replaces log.Fatal.
func FerFatal(v ...any) { panic(ferFatal(fmt.Sprint(v...), firstError(v))) }

// FerFatalf replaces log.Fatalf.
func FerFatalf(format string, v ...any) { panic(ferFatal(fmt.Sprintf(format, v...), firstError(v))) }

// FerFatalln replaces log.Fatalln.
func FerFatalln(v ...any) { panic(ferFatal(fmt.Sprintln(v...), firstError(v))) }

// FerPanicValue wraps the value of one of gotch's own panic calls.
func FerPanicValue(v any) any {
	if e, ok := v.(*FerFatalError); ok {
		return e
	}
	if e, ok := v.(error); ok {
		return ferFatal(e.Error(), e)
	}
	return ferFatal(fmt.Sprint(v), nil)
}
`

// patchFatal rewrites the fatal paths of the gotch copy at root and adds
// fatalGo; it returns the number of call sites rewritten.
func patchFatal(root string) (int, error) {
	total := 0
	for _, pkg := range fatalPackages {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			return total, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				return total, err
			}
			out, n, err := rewriteFatal(src, pkg == ".")
			if err != nil {
				return total, fmt.Errorf("%s: %w", f, err)
			}
			if n == 0 {
				continue
			}
			if err := os.WriteFile(f, out, 0o644); err != nil {
				return total, err
			}
			total += n
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("no log.Fatal or panic call found in %s: gotch changed, update internal/gotchpatch/fatal.go", root)
	}
	if err := os.WriteFile(filepath.Join(root, "fer_fatal.go"), []byte(fatalGo), 0o644); err != nil {
		return total, err
	}
	return total, nil
}

const gotchImport = "github.com/sugarme/gotch"

// rewriteFatal rewrites one Go file (see patchFatal). inRoot is true for
// the root gotch package, where the helpers are called unqualified.
func rewriteFatal(src []byte, inRoot bool) ([]byte, int, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return nil, 0, err
	}
	logName, gotchName := "", ""
	for _, im := range file.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := ""
		if im.Name != nil {
			name = im.Name.Name
		}
		switch p {
		case "log":
			logName = "log"
			if name != "" {
				logName = name
			}
		case gotchImport:
			gotchName = "gotch"
			if name != "" {
				gotchName = name
			}
		}
	}
	if gotchName == "" {
		gotchName = "gotch"
	}
	helper := func(name string) ast.Expr {
		if inRoot {
			return ast.NewIdent(name)
		}
		return &ast.SelectorExpr{X: ast.NewIdent(gotchName), Sel: ast.NewIdent(name)}
	}
	n := 0
	ast.Inspect(file, func(node ast.Node) bool {
		call, ok := node.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch fun := call.Fun.(type) {
		case *ast.SelectorExpr:
			x, ok := fun.X.(*ast.Ident)
			if !ok || logName == "" || x.Name != logName {
				return true
			}
			switch fun.Sel.Name {
			case "Fatal", "Fatalf", "Fatalln":
				call.Fun = helper("Fer" + fun.Sel.Name)
				n++
			}
		case *ast.Ident:
			if fun.Name == "panic" && len(call.Args) == 1 {
				call.Args[0] = &ast.CallExpr{Fun: helper("FerPanicValue"), Args: []ast.Expr{call.Args[0]}}
				n++
			}
		}
		return true
	})
	if n == 0 {
		return src, 0, nil
	}
	// imports: drop log if nothing else uses it, add gotch if needed
	usesLog := false
	ast.Inspect(file, func(node ast.Node) bool {
		if sel, ok := node.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && logName != "" && x.Name == logName {
				usesLog = true
			}
		}
		return !usesLog
	})
	for _, d := range file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		var specs []ast.Spec
		for _, s := range gd.Specs {
			is := s.(*ast.ImportSpec)
			if p, _ := strconv.Unquote(is.Path.Value); p == "log" && !usesLog {
				continue
			}
			specs = append(specs, s)
		}
		gd.Specs = specs
	}
	if !usesLog {
		var imports []*ast.ImportSpec
		for _, is := range file.Imports {
			if p, _ := strconv.Unquote(is.Path.Value); p != "log" {
				imports = append(imports, is)
			}
		}
		file.Imports = imports
	}
	if !inRoot && !hasImport(file, gotchImport) {
		spec := &ast.ImportSpec{Path: &ast.BasicLit{Kind: token.STRING, Value: strconv.Quote(gotchImport)}}
		added := false
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.IMPORT || isCgoImport(gd) {
				continue
			}
			gd.Specs = append(gd.Specs, spec)
			if !gd.Lparen.IsValid() {
				gd.Lparen, gd.Rparen = gd.Pos(), gd.End()
			}
			added = true
			break
		}
		if !added {
			gd := &ast.GenDecl{Tok: token.IMPORT, Specs: []ast.Spec{spec}}
			file.Decls = append([]ast.Decl{gd}, file.Decls...)
		}
		file.Imports = append(file.Imports, spec)
	}
	// a GenDecl whose specs all went away would print as "import ()"
	decls := file.Decls[:0]
	for _, d := range file.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT && len(gd.Specs) == 0 {
			continue
		}
		decls = append(decls, d)
	}
	file.Decls = decls
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, file); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), n, nil
}

func hasImport(f *ast.File, path string) bool {
	for _, is := range f.Imports {
		if p, _ := strconv.Unquote(is.Path.Value); p == path {
			return true
		}
	}
	return false
}

// isCgoImport reports whether gd is the `import "C"` declaration (its
// comment is the cgo preamble: nothing may be added to it).
func isCgoImport(gd *ast.GenDecl) bool {
	for _, s := range gd.Specs {
		if p, _ := strconv.Unquote(s.(*ast.ImportSpec).Path.Value); p == "C" {
			return true
		}
	}
	return false
}
