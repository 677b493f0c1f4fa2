package data

import (
	"bufio"
	"bytes"
	"fmt"
)

// checkUTF8Start rejects a label file in UTF-16 (Windows editors save
// "Unicode" text so), which would otherwise parse as garbage: every other
// byte zero. A UTF-8 byte-order mark is fine (the readers strip it).
func checkUTF8Start(r *bufio.Reader, path string) error {
	head, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}), bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		return fmt.Errorf("%s is UTF-16 text: save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)", path)
	case len(head) >= 2 && (head[0] == 0 || head[1] == 0):
		return fmt.Errorf("%s starts with NUL bytes: not a text file (UTF-16 without a byte-order mark?)", path)
	}
	return nil
}
