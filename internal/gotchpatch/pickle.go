package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// gotch's Go unpickler (package pickle, which fer's torch.save reader
// uses) allocates every length a pickle declares before reading it:
// Unpickler.read(n) starts with make([]byte, n) and loadFrame with
// make([]byte, frameSize). A damaged checkpoint whose string length field
// says 4 GB made it allocate 4 GB (fuzzing found it; the process was
// killed for memory), and a negative length panicked. patchPickle
// replaces both with reads that grow their buffer as data arrives, so a
// lying length fails at the end of the data having allocated no more than
// the data holds.

// pickleReadGo replaces (*Unpickler).read and (*Unpickler).loadFrame.
const pickleReadGo = `// read reads n bytes from reader. (Patched by fer's internal/gotchpatch:
// the buffer grows with the data instead of being allocated at the
// declared length.)
func (up *Unpickler) read(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("Unpickler.read() failed: negative length %d", n)
	}
	if up.currentFrame != nil {
		data, err := ferReadUpTo(up.currentFrame, n)
		nbytes := len(data)
		switch {
		case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
			return nil, err
		case nbytes == 0 && n != 0: // remaining data
			up.currentFrame = nil
			return ferReadUpTo(up.reader, n)
		case nbytes < n:
			return nil, fmt.Errorf("Unpickler.read() failed: pickle exhausted before end of frame")
		default:
			return data, nil
		}
	}
	return ferReadUpTo(up.reader, n)
}

// ferReadUpTo reads n bytes like io.ReadFull, reading at most 1 MiB at a
// time into a buffer that at most doubles, and returns what it got with io.ErrUnexpectedEOF
// (io.EOF when nothing) if the data ends first.
func ferReadUpTo(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 20
	first := n
	if first > chunk {
		first = chunk
	}
	data := make([]byte, 0, first)
	for len(data) < n {
		k := n - len(data)
		if k > chunk {
			k = chunk
		}
		if cap(data)-len(data) < k {
			more := len(data) // double, or grow by k when that is more
			if k > more {
				more = k
			}
			grown := make([]byte, len(data), len(data)+more)
			copy(grown, data)
			data = grown
		}
		got, err := io.ReadFull(r, data[len(data):len(data)+k])
		data = data[:len(data)+got]
		if err != nil {
			if err == io.EOF && len(data) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return data, err
		}
	}
	return data, nil
}

// loadFrame loads new data to currentFrame. It throws error if currentFrame is not empty.
// (Patched by fer's internal/gotchpatch: the frame is read as it arrives.)
func (up *Unpickler) loadFrame(frameSize int) error {
	// Throw error if current frame is not empty
	if up.currentFrame != nil && up.currentFrame.Len() > 0 {
		return unpicklingError("beginning of a new frame before end of a current frame")
	}
	buf, err := ferReadUpTo(up.reader, frameSize)
	if err != nil {
		return err
	}
	up.currentFrame = bytes.NewReader(buf)
	return nil
}
`

// patchPickle applies the change to the copy at root.
func patchPickle(root string) error {
	path := filepath.Join(root, "pickle", "pickle.go")
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceMethods(string(src), "Unpickler", []string{"read", "loadFrame"}, pickleReadGo)
	if err != nil {
		return fmt.Errorf("%s: %w (gotch changed: update internal/gotchpatch/pickle.go)", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// replaceMethods removes the named methods of type recv (pointer
// receivers) from a Go source and puts repl where the first was. Each
// must be defined exactly once.
func replaceMethods(src, recv string, names []string, repl string) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	type span struct{ start, end int }
	var spans []span
	found := map[string]int{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || len(fd.Recv.List) != 1 || !want[fd.Name.Name] {
			continue
		}
		star, ok := fd.Recv.List[0].Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		if id, ok := star.X.(*ast.Ident); !ok || id.Name != recv {
			continue
		}
		found[fd.Name.Name]++
		start := fd.Pos()
		if fd.Doc != nil {
			start = fd.Doc.Pos()
		}
		spans = append(spans, span{fset.Position(start).Offset, fset.Position(fd.End()).Offset})
	}
	for _, n := range names {
		if found[n] != 1 {
			return "", fmt.Errorf("method (*%s).%s defined %d times, want once", recv, n, found[n])
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var b strings.Builder
	last := 0
	for i, s := range spans {
		b.WriteString(src[last:s.start])
		if i == 0 {
			b.WriteString(repl)
		}
		last = s.end
	}
	b.WriteString(src[last:])
	return b.String(), nil
}
