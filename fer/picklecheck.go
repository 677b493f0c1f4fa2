package fer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sugarme/gotch/pickle"
)

// checkPickle walks the opcodes of a pickle (protocol 0–5) without
// executing it and rejects what made libtorch's unpickler allocate
// gigabytes or crash: a string, bytes or integer whose length runs past
// the end of the data (libtorch allocates the declared length before it
// reads), a memo index far beyond the entries stored so far (libtorch
// reserves memo room up to twice the index), and an opcode that pops
// more than the stack holds (libtorch does not check: BINPERSID on an
// empty stack was a SIGSEGV). It also requires a well-formed opcode
// stream ending in STOP. A damaged checkpoint that passes the archive's
// CRC check thus fails here, with an error.
func checkPickle(b []byte) error {
	puts := 0
	i := 0
	depth := 0      // values on the stack
	var marks []int // depth at each MARK
	base := func() int {
		if len(marks) == 0 {
			return 0
		}
		return marks[len(marks)-1]
	}
	// pop takes n values above the top mark and pushes push
	pop := func(op byte, n, push int) error {
		if depth-base() < n {
			return fmt.Errorf("pickle opcode 0x%02x at byte %d pops %d values, the stack holds %d", op, i-1, n, depth-base())
		}
		depth += push - n
		return nil
	}
	// toMark pops everything above the top mark (and the mark), then
	// needs below values under it and pushes push
	toMark := func(op byte, below, push int) error {
		if len(marks) == 0 {
			return fmt.Errorf("pickle opcode 0x%02x at byte %d without a MARK", op, i-1)
		}
		depth = marks[len(marks)-1]
		marks = marks[:len(marks)-1]
		if depth-base() < below {
			return fmt.Errorf("pickle opcode 0x%02x at byte %d needs %d values below its MARK", op, i-1, below)
		}
		depth += push
		return nil
	}
	need := func(n uint64) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("pickle opcode at byte %d needs %d bytes, %d left", i-1, n, len(b)-i)
		}
		return nil
	}
	fixed := func(n int) error {
		if err := need(uint64(n)); err != nil {
			return err
		}
		i += n
		return nil
	}
	// lenPrefixed reads an n-byte little-endian length and skips that
	// many bytes
	lenPrefixed := func(n int) error {
		if err := need(uint64(n)); err != nil {
			return err
		}
		var l uint64
		switch n {
		case 1:
			l = uint64(b[i])
		case 4:
			l = uint64(binary.LittleEndian.Uint32(b[i:]))
		case 8:
			l = binary.LittleEndian.Uint64(b[i:])
		}
		i += n
		if err := need(l); err != nil {
			return err
		}
		i += int(l)
		return nil
	}
	line := func() error {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return fmt.Errorf("pickle opcode at byte %d: unterminated text argument", i-1)
		}
		i += j + 1
		return nil
	}
	memo := func(id uint64) error {
		// ids are handed out in order; allow some slack for pickles
		// that number them otherwise
		if id > uint64(puts)+1024 {
			return fmt.Errorf("pickle memo index %d after %d stores", id, puts)
		}
		return nil
	}
	for i < len(b) {
		op := b[i]
		i++
		var err error
		switch op {
		case '.': // STOP
			if depth < 1 {
				return errors.New("pickle: STOP with an empty stack")
			}
			return nil
		case 0x80: // PROTO
			err = fixed(1)
		case 0x95: // FRAME
			err = fixed(8)
		case '(': // MARK
			marks = append(marks, depth)
		case 'N', 0x88, 0x89, '}', ']', ')', 0x8f: // NONE, TRUE, FALSE, empty dict, list, tuple, set
			depth++
		case 0x97: // NEXT_BUFFER
			depth++
		case 'K', 'h', 0x82: // BININT1, BINGET, EXT1
			err = fixed(1)
			depth++
		case 'M', 0x83: // BININT2, EXT2
			err = fixed(2)
			depth++
		case 'J', 0x84: // BININT, EXT4
			err = fixed(4)
			depth++
		case 'G': // BINFLOAT
			err = fixed(8)
			depth++
		case 'j': // LONG_BINGET
			if err = need(4); err == nil {
				err = memo(uint64(binary.LittleEndian.Uint32(b[i:])))
				i += 4
				depth++
			}
		case 'U', 'C', 0x8c, 0x8a: // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE, LONG1
			err = lenPrefixed(1)
			depth++
		case 'T', 'X', 'B', 0x8b: // BINSTRING, BINUNICODE, BINBYTES, LONG4
			err = lenPrefixed(4)
			depth++
		case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
			err = lenPrefixed(8)
			depth++
		case 'I', 'L', 'F', 'S', 'V', 'g', 'P': // INT, LONG, FLOAT, STRING, UNICODE, GET, PERSID
			err = line()
			depth++
		case 'c': // GLOBAL: module and name lines
			if err = line(); err == nil {
				err = line()
			}
			depth++
		case 'p': // PUT
			if err = line(); err == nil {
				err = pop(op, 1, 1)
				puts++
			}
		case 'q': // BINPUT
			if err = need(1); err == nil {
				err = memo(uint64(b[i]))
				i++
				puts++
			}
			if err == nil {
				err = pop(op, 1, 1)
			}
		case 'r': // LONG_BINPUT
			if err = need(4); err == nil {
				err = memo(uint64(binary.LittleEndian.Uint32(b[i:])))
				i += 4
				puts++
			}
			if err == nil {
				err = pop(op, 1, 1)
			}
		case 0x94: // MEMOIZE
			puts++
			err = pop(op, 1, 1)
		case '0': // POP
			err = pop(op, 1, 0)
		case '2', 'Q', 0x98, 0x85: // DUP (checked as peek), BINPERSID, READONLY_BUFFER, TUPLE1
			err = pop(op, 1, 1)
			if op == '2' && err == nil {
				depth++
			}
		case '1': // POP_MARK
			err = toMark(op, 0, 0)
		case 'R', 'b', 0x81, 0x93, 0x86, 'a': // REDUCE, BUILD, NEWOBJ, STACK_GLOBAL, TUPLE2, APPEND
			err = pop(op, 2, 1)
		case 0x92, 0x87: // NEWOBJ_EX, TUPLE3
			err = pop(op, 3, 1)
		case 's': // SETITEM
			err = pop(op, 3, 1)
		case 't', 'l', 'd', 0x91: // TUPLE, LIST, DICT, FROZENSET
			err = toMark(op, 0, 1)
		case 'i': // INST: module and name lines, then the arguments to the mark
			if err = line(); err == nil {
				if err = line(); err == nil {
					err = toMark(op, 0, 1)
				}
			}
		case 'o': // OBJ: class and arguments above the mark
			if len(marks) > 0 && depth-base() < 1 {
				err = fmt.Errorf("pickle opcode OBJ at byte %d without a class", i-1)
			} else {
				err = toMark(op, 0, 1)
			}
		case 'e', 'u', 0x90: // APPENDS, SETITEMS, ADDITEMS: the container is below the mark
			err = toMark(op, 1, 0)
		default:
			return fmt.Errorf("pickle: unknown opcode 0x%02x at byte %d", op, i-1)
		}
		if err != nil {
			return err
		}
	}
	return errors.New("pickle: no STOP opcode (cut short)")
}

// storageDecl is a storage a pickle declares: its record key, element
// size and element count.
type storageDecl struct {
	key         string
	elem, numel int64
}

// pickleStorages unpickles b (gotch's Go unpickler, after checkPickle has
// bounded every length in it) with every class a stand-in, and returns
// the storages its persistent ids declare, ('storage', torch.XStorage,
// key, location, numel) as torch.save and libtorch write them. libtorch
// sizes a storage from that numel, not from its record: a record shorter
// than declared made it read past the end of its buffer (SIGSEGV), so
// the caller compares the two.
func pickleStorages(b []byte) (decls []storageDecl, err error) {
	defer func() {
		if r := recover(); r != nil { // gotch's unpickler on malformed input
			decls, err = nil, fmt.Errorf("malformed pickle (%v)", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(b))
	u.FindClass = func(module, name string) (interface{}, error) {
		if module == "torch" {
			if n, ok := storageElemSize[name]; ok {
				return &pyStorageType{name: name, elem: n}, nil
			}
		}
		return &pyObject{}, nil
	}
	u.PersistentLoad = func(pid interface{}) (interface{}, error) {
		t, ok := pid.(*pickle.Tuple)
		if !ok || t.Len() < 5 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("persistent id %v is not a storage", pid)
		}
		st, ok1 := t.Get(1).(*pyStorageType)
		key, ok2 := t.Get(2).(string)
		n, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || n < 0 {
			return nil, fmt.Errorf("storage %v: want (storage, torch.XStorage, key, location, numel)", pid)
		}
		decls = append(decls, storageDecl{key: key, elem: st.elem, numel: int64(n)})
		return &pyObject{}, nil
	}
	if _, err := u.Load(); err != nil {
		return nil, fmt.Errorf("unpickle: %w", err)
	}
	return decls, nil
}

// storageElemSize is the element size of torch's storage classes.
var storageElemSize = map[string]int64{
	"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
	"LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
	"ByteStorage": 1, "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}

// pyObject stands for every Python object and class of a pickle:
// constructing, calling, reducing or building it gives another one.
type pyObject struct{}

func (*pyObject) Call(...interface{}) (interface{}, error)  { return &pyObject{}, nil }
func (*pyObject) PyNew(...interface{}) (interface{}, error) { return &pyObject{}, nil }
func (*pyObject) PySetState(interface{}) error              { return nil }

type pyStorageType struct {
	name string
	elem int64
}

func (*pyStorageType) Call(...interface{}) (interface{}, error) { return &pyObject{}, nil }
