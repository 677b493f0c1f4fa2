package data

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ABAW annotation files (Aff-Wild2 in the layout of the ABAW competitions,
// SPEC.md §1.1, as written by kuhnkeF/ABAW2020TNT write_labelfile.py): one
// text file per video (suffix _left/_right for videos with two annotated
// people), a header line naming the columns, then one comma-separated row
// per video frame, row k (1-based, after the header) for frame file
// k (00001.jpg, ...):
//
//	VA_Set    valence,arousal                                  0.602,0.389
//	EXPR_Set  Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise   4
//	AU_Set    AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25              0,0,0,0,1,0,0,0
//
// Invalid frames carry a marker instead of a label: −5 for valence and
// arousal, −1 for the expression and for action units. They are kept
// (the frame numbering must not shift) and masked: ABAWLabels marks them
// unlabelled. Headers are read by name: the VA columns may come in either
// order, the EXPR header lists the class names in label order (so
// ABAW-2022's eight classes with "Other" read as well), and the AU header
// names the AU of each column (any set of AUs; a data set maps every
// file's columns to the first file's AU order by name).

// ABAWTask is one of the three annotation tracks.
type ABAWTask int

// The ABAW tracks.
const (
	TaskVA ABAWTask = iota
	TaskEXPR
	TaskAU
)

// ABAW invalid-label markers.
const (
	ABAWInvalidVA   = -5
	ABAWInvalidEXPR = -1
	ABAWInvalidAU   = -1
)

// Folder is the annotation folder of the task: VA_Set, EXPR_Set, AU_Set.
func (t ABAWTask) Folder() string {
	switch t {
	case TaskVA:
		return "VA_Set"
	case TaskEXPR:
		return "EXPR_Set"
	case TaskAU:
		return "AU_Set"
	}
	return fmt.Sprintf("task%d", int(t))
}

func (t ABAWTask) String() string {
	switch t {
	case TaskVA:
		return "VA"
	case TaskEXPR:
		return "EXPR"
	case TaskAU:
		return "AU"
	}
	return fmt.Sprintf("task%d", int(t))
}

// AffWild2Classes are the seven expressions of ABAW's EXPR_Set, in label
// order (SPEC.md §1.1).
var AffWild2Classes = []string{"Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"}

// AffWild2AUs are the eight action units of ABAW 2020's AU_Set, in column
// order.
var AffWild2AUs = []string{"AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"}

// ABAWLabels are the labels of one annotation file, one entry per frame
// (index 0 = frame 00001).
type ABAWLabels struct {
	Task ABAWTask
	// Columns are the header's names: "valence","arousal" (in VA the
	// values below are always valence first), the EXPR class names, or the
	// AU names.
	Columns []string
	// VA[k] = (valence, arousal) of frame k, or (−5, −5) when invalid.
	VA [][2]float32
	// EXPR[k] is the class of frame k, −1 when invalid.
	EXPR []int8
	// AU[k][j] is AU Columns[j] of frame k (0/1), −1 when invalid.
	AU [][]int8
}

// Len is the number of frames (rows).
func (l *ABAWLabels) Len() int {
	switch l.Task {
	case TaskVA:
		return len(l.VA)
	case TaskEXPR:
		return len(l.EXPR)
	}
	return len(l.AU)
}

// Valid reports whether frame k has a label.
func (l *ABAWLabels) Valid(k int) bool {
	if k < 0 || k >= l.Len() {
		return false
	}
	switch l.Task {
	case TaskVA:
		return l.VA[k][0] != ABAWInvalidVA
	case TaskEXPR:
		return l.EXPR[k] >= 0
	}
	for _, v := range l.AU[k] {
		if v >= 0 {
			return true
		}
	}
	return false
}

// NumValid counts the frames with a label.
func (l *ABAWLabels) NumValid() int {
	n := 0
	for k := 0; k < l.Len(); k++ {
		if l.Valid(k) {
			n++
		}
	}
	return n
}

// maxABAWLine bounds a line (the longest legitimate one is an AU row).
const maxABAWLine = 64 << 10

// ParseABAW reads one annotation file of task; name (the file's path) is
// used in errors, which name the line: "VA_Set/Train_Set/1-30.txt line 7:
// valence 1.7 is outside [-1, 1] (-5 marks an invalid frame)". Blank
// lines are allowed only at the end; CRLF line ends and a UTF-8 byte
// order mark are accepted.
func ParseABAW(r io.Reader, name string, task ABAWTask) (*ABAWLabels, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxABAWLine)
	l := &ABAWLabels{Task: task}
	fail := func(line int, format string, a ...any) (*ABAWLabels, error) {
		return nil, fmt.Errorf("%s line %d: %s", name, line, fmt.Sprintf(format, a...))
	}
	line := 0
	var vaIdx [2]int // column of valence, arousal
	blankAt := 0     // first blank line seen (0: none)
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		text = strings.TrimSpace(text)
		if line == 1 {
			cols, err := abawHeader(text, task)
			if err != nil {
				return fail(1, "%v", err)
			}
			l.Columns = cols
			if task == TaskVA {
				vaIdx = [2]int{indexFold(cols, "valence"), indexFold(cols, "arousal")}
				l.Columns = []string{"valence", "arousal"}
			}
			continue
		}
		if text == "" {
			if blankAt == 0 {
				blankAt = line
			}
			continue
		}
		if blankAt > 0 {
			return fail(blankAt, "blank line before the last row (the frame numbering would shift; remove it)")
		}
		fields := strings.Split(text, ",")
		want := len(l.Columns)
		if task == TaskEXPR {
			want = 1
		}
		if len(fields) != want {
			return fail(line, "%d value(s) %q, want %d (%s)", len(fields), text, want, strings.Join(l.Columns, ","))
		}
		switch task {
		case TaskVA:
			var va [2]float32
			invalid := false
			for j, c := range vaIdx {
				s := strings.TrimSpace(fields[c])
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					return fail(line, "%s %q is not a number", l.Columns[j], s)
				}
				if v == ABAWInvalidVA {
					invalid = true
					continue
				}
				if v < -1 || v > 1 {
					return fail(line, "%s %v is outside [-1, 1] (%d marks an invalid frame)", l.Columns[j], v, ABAWInvalidVA)
				}
				va[j] = float32(v)
			}
			if invalid {
				// one invalid value invalidates the frame's VA
				va = [2]float32{ABAWInvalidVA, ABAWInvalidVA}
			}
			l.VA = append(l.VA, va)
		case TaskEXPR:
			s := strings.TrimSpace(fields[0])
			v, err := strconv.Atoi(s)
			if err != nil {
				return fail(line, "expression %q is not an integer", s)
			}
			if v != ABAWInvalidEXPR && (v < 0 || v >= len(l.Columns)) {
				return fail(line, "expression %d is outside 0..%d (%s; %d marks an invalid frame)", v, len(l.Columns)-1, strings.Join(l.Columns, ","), ABAWInvalidEXPR)
			}
			l.EXPR = append(l.EXPR, int8(v))
		case TaskAU:
			row := make([]int8, len(fields))
			for j, f := range fields {
				s := strings.TrimSpace(f)
				v, err := strconv.Atoi(s)
				if err != nil {
					return fail(line, "%s %q is not an integer", l.Columns[j], s)
				}
				if v != 0 && v != 1 && v != ABAWInvalidAU {
					return fail(line, "%s = %d, want 0, 1 or %d (invalid)", l.Columns[j], v, ABAWInvalidAU)
				}
				row[j] = int8(v)
			}
			l.AU = append(l.AU, row)
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return fail(line+1, "line longer than %d bytes: not an ABAW annotation file", maxABAWLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%s: empty file (want a header line, then one row per frame)", name)
	}
	return l, nil
}

// abawHeader checks the header of task and returns its column names.
func abawHeader(text string, task ABAWTask) ([]string, error) {
	var cols []string
	for _, f := range strings.Split(text, ",") {
		cols = append(cols, strings.TrimSpace(f))
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if c == "" {
			return nil, fmt.Errorf("header %q has an empty column name", text)
		}
		if seen[strings.ToLower(c)] {
			return nil, fmt.Errorf("header %q names column %s twice", text, c)
		}
		seen[strings.ToLower(c)] = true
	}
	switch task {
	case TaskVA:
		if len(cols) != 2 || indexFold(cols, "valence") < 0 || indexFold(cols, "arousal") < 0 {
			return nil, fmt.Errorf("header %q, want \"valence,arousal\" (a VA_Set file)", text)
		}
	case TaskEXPR:
		if len(cols) < 2 || len(cols) > 127 || looksNumeric(cols[0]) {
			return nil, fmt.Errorf("header %q, want the class names, e.g. %q (an EXPR_Set file)", text, strings.Join(AffWild2Classes, ","))
		}
	case TaskAU:
		for _, c := range cols {
			if !strings.HasPrefix(strings.ToUpper(c), "AU") {
				return nil, fmt.Errorf("header %q, want AU names, e.g. %q (an AU_Set file)", text, strings.Join(AffWild2AUs, ","))
			}
		}
	default:
		return nil, fmt.Errorf("unknown task %d", int(task))
	}
	return cols, nil
}

func looksNumeric(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// indexFold is the index of the first element equal to s ignoring case,
// −1 if none.
func indexFold(xs []string, s string) int {
	for i, x := range xs {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

// ParseABAWBytes is ParseABAW on an in-memory file.
func ParseABAWBytes(b []byte, name string, task ABAWTask) (*ABAWLabels, error) {
	return ParseABAW(bytes.NewReader(b), name, task)
}
