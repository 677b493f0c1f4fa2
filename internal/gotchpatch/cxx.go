package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// cxxFunc is one top-level function definition found in a C++ source file.
type cxxFunc struct {
	Name      string
	Header    string // everything from the start of the definition to just before the body's '{'
	Start     int    // byte offset of the first character of Header
	BodyOpen  int    // byte offset of the body's '{'
	End       int    // byte offset just past the body's closing '}'
	StartLine int    // 1-based line of Start
	EndLine   int    // 1-based line of the closing '}'
}

// ReturnsVoid reports whether the function's declared return type is void.
func (f cxxFunc) ReturnsVoid() bool {
	i := strings.Index(f.Header, f.Name+"(")
	if i < 0 {
		i = strings.Index(f.Header, f.Name)
	}
	ret := strings.TrimSpace(f.Header[:i])
	return ret == "void"
}

var identBeforeParen = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// parseFunctions finds the top-level function definitions of a C++ file.
// It is a small brace matcher, not a C++ parser: it skips comments, string
// and character literals and preprocessor lines, treats `extern "C" {` and
// `namespace x {` blocks as transparent, and reports every other top-level
// `header { body }` whose header contains a parenthesised parameter list.
// That is all the gotch wrapper files (torch_api.cpp and
// torch_api_generated.cpp.h) contain at top level.
func parseFunctions(src string) []cxxFunc {
	var funcs []cxxFunc
	lineAt := lineIndex(src)
	depth := 0
	transparent := 0 // number of open extern "C"/namespace blocks at depth 0
	headerStart := -1
	cur := cxxFunc{}
	n := len(src)
	atLineStart := true
	for i := 0; i < n; i++ {
		c := src[i]
		if atLineStart && depth == 0 {
			// skip leading blanks to find preprocessor lines
			j := i
			for j < n && (src[j] == ' ' || src[j] == '\t') {
				j++
			}
			if j < n && src[j] == '#' {
				// preprocessor directive: skip to end of line, honouring continuations
				for j < n && !(src[j] == '\n' && src[j-1] != '\\') {
					j++
				}
				i = j
				atLineStart = true
				headerStart = -1
				continue
			}
		}
		atLineStart = c == '\n'
		switch {
		case c == '/' && i+1 < n && src[i+1] == '/':
			for i < n && src[i] != '\n' {
				i++
			}
			atLineStart = true
			continue
		case c == '/' && i+1 < n && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return funcs
			}
			i += end + 3
			continue
		case c == '"' || c == '\'':
			i = skipLiteral(src, i)
			continue
		}
		if depth == 0 && headerStart < 0 && !isSpace(c) && c != ';' && c != '}' {
			headerStart = i
		}
		switch c {
		case '{':
			if depth == 0 {
				h := ""
				if headerStart >= 0 {
					h = strings.TrimSpace(src[headerStart:i])
				}
				if strings.HasPrefix(h, "extern") || strings.HasPrefix(h, "namespace") {
					transparent++
					headerStart = -1
					continue
				}
				cur = cxxFunc{Header: h, Start: headerStart, BodyOpen: i}
			}
			depth++
		case '}':
			if depth == 0 {
				if transparent > 0 {
					transparent--
				}
				headerStart = -1
				continue
			}
			depth--
			if depth == 0 {
				cur.End = i + 1
				if m := identBeforeParen.FindStringSubmatch(cur.Header); m != nil && cur.Start >= 0 {
					cur.Name = m[1]
					cur.StartLine = lineAt(cur.Start)
					cur.EndLine = lineAt(i)
					funcs = append(funcs, cur)
				}
				headerStart = -1
			}
		case ';':
			if depth == 0 {
				headerStart = -1
			}
		}
	}
	return funcs
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipLiteral returns the index of the closing quote of the string or
// character literal that starts at i.
func skipLiteral(src string, i int) int {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q:
			return j
		case '\n':
			return j // unterminated: stop at end of line
		}
	}
	return len(src) - 1
}

// lineIndex returns a function mapping a byte offset to its 1-based line.
func lineIndex(src string) func(int) int {
	var starts []int
	starts = append(starts, 0)
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return func(off int) int {
		return sort.Search(len(starts), func(k int) bool { return starts[k] > off })
	}
}

// funcAtLine returns the function whose definition spans line, if any.
func funcAtLine(funcs []cxxFunc, line int) (cxxFunc, bool) {
	k := sort.Search(len(funcs), func(i int) bool { return funcs[i].EndLine >= line })
	if k < len(funcs) && funcs[k].StartLine <= line {
		return funcs[k], true
	}
	return cxxFunc{}, false
}

// stubBody is the body that replaces a function that does not compile: it
// records an error in the wrapper's thread-local last-error slot, which
// gotch's Go side turns into a returned error (ts.TorchErr), and returns a
// zero value. The Go caller therefore gets an error, never a crash.
func stubBody(f cxxFunc, libtorchVersion string) string {
	msg := fmt.Sprintf("fer: %s is not available with libtorch %s: it does not compile against this libtorch and was stubbed by fer's gotch patcher (internal/gotchpatch)", f.Name, libtorchVersion)
	var b strings.Builder
	b.WriteString("{\n  // Stubbed by fer's internal/gotchpatch: the original body does not\n  // compile against this libtorch.\n")
	fmt.Fprintf(&b, "  torch_last_err = strdup(%s);\n", strconv.Quote(msg))
	if !f.ReturnsVoid() {
		b.WriteString("  return {};\n")
	}
	b.WriteString("}")
	return b.String()
}

// stubFunctions returns src with the bodies of the named functions replaced
// by stubBody. Names not defined in src are ignored.
func stubFunctions(src string, names map[string]bool, libtorchVersion string) (string, []string) {
	funcs := parseFunctions(src)
	var b strings.Builder
	last := 0
	var done []string
	for _, f := range funcs {
		if !names[f.Name] {
			continue
		}
		b.WriteString(src[last:f.BodyOpen])
		b.WriteString(stubBody(f, libtorchVersion))
		last = f.End
		done = append(done, f.Name)
	}
	b.WriteString(src[last:])
	return b.String(), done
}

// diagnostic is one compiler message location inside the wrapper sources.
type diagnostic struct {
	File string
	Line int
	Text string
}

var diagLine = regexp.MustCompile(`^(.+?):(\d+):(\d+): (?:(?:fatal )?error|\s*required from here|\s*required from .*)`)

// parseDiagnostics extracts the locations of errors (and of the
// "required from here" lines of template errors that point back at the
// wrapper) from g++/clang output. Only locations whose file base name is
// in files are returned.
func parseDiagnostics(out string, files map[string]bool) []diagnostic {
	var ds []diagnostic
	for _, line := range strings.Split(out, "\n") {
		m := diagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		base := m[1]
		if i := strings.LastIndexByte(base, '/'); i >= 0 {
			base = base[i+1:]
		}
		if !files[base] {
			continue
		}
		ln, _ := strconv.Atoi(m[2])
		ds = append(ds, diagnostic{File: base, Line: ln, Text: line})
	}
	return ds
}

// hasErrors reports whether compiler output contains any error at all.
func hasErrors(out string) bool {
	return strings.Contains(out, ": error:") || strings.Contains(out, ": fatal error:")
}

// firstErrors returns up to n error lines of compiler output, for messages.
func firstErrors(out string, n int) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "error:") {
			keep = append(keep, l)
			if len(keep) == n {
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}
