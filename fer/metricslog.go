package fer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
)

// Record is one line of metrics.jsonl: where in training it was taken
// (epoch, 1-based; step, the number of optimisation steps done so far),
// which split ("train", "val", "test", "train_step") and named values
// (loss, acc, uar, war, lr, time_s, loss/<part>, ...). It is written as a
// flat JSON object with epoch, step and split first, e.g.
//
//	{"epoch":1,"step":120,"split":"train","acc":0.41,"loss":1.23,"lr":0.01,"time_s":3.2}
//
// NaN and ±Inf values are written as null (JSON has no such numbers).
type Record struct {
	Epoch  int
	Step   int
	Split  string
	Values map[string]float64
}

// MarshalJSON writes the flat object described on Record.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"epoch":`)
	b.WriteString(strconv.Itoa(r.Epoch))
	b.WriteString(`,"step":`)
	b.WriteString(strconv.Itoa(r.Step))
	b.WriteString(`,"split":`)
	s, _ := json.Marshal(r.Split)
	b.Write(s)
	keys := make([]string, 0, len(r.Values))
	for k := range r.Values {
		if k == "epoch" || k == "step" || k == "split" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		b.WriteByte(',')
		b.Write(kb)
		b.WriteByte(':')
		v := r.Values[k]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a line written by MarshalJSON (null becomes NaN;
// non-numeric extra fields are ignored).
func (r *Record) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*r = Record{Values: map[string]float64{}}
	for k, raw := range m {
		switch k {
		case "epoch":
			if err := json.Unmarshal(raw, &r.Epoch); err != nil {
				return fmt.Errorf("epoch: %w", err)
			}
		case "step":
			if err := json.Unmarshal(raw, &r.Step); err != nil {
				return fmt.Errorf("step: %w", err)
			}
		case "split":
			if err := json.Unmarshal(raw, &r.Split); err != nil {
				return fmt.Errorf("split: %w", err)
			}
		default:
			if string(raw) == "null" {
				r.Values[k] = math.NaN()
				continue
			}
			var v float64
			if json.Unmarshal(raw, &v) == nil {
				r.Values[k] = v
			}
		}
	}
	return nil
}

// MetricsLog appends Records to a JSON-lines file, one object per line,
// flushed to the OS after every record so a killed run loses nothing that
// was logged.
type MetricsLog struct {
	path string
	f    *os.File
}

// OpenMetricsLog opens (creating if needed) a metrics log for appending.
func OpenMetricsLog(path string) (*MetricsLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics log: %w", err)
	}
	return &MetricsLog{path: path, f: f}, nil
}

// Path is the file the log writes.
func (l *MetricsLog) Path() string { return l.path }

// Write appends one record.
func (l *MetricsLog) Write(r Record) error {
	if l == nil { // ranks other than 0 of a data-parallel run log nothing
		return nil
	}
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("metrics log %s: %w", l.path, err)
	}
	return nil
}

// Close closes the file.
func (l *MetricsLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadMetricsLog reads every record of a metrics.jsonl file. A torn last
// line (a run killed mid-write) is skipped; a bad line elsewhere is an
// error naming the line.
func ReadMetricsLog(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics log: %w", err)
	}
	defer f.Close()
	return readRecords(f, path)
}

func readRecords(r io.Reader, path string) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	var pendingErr error
	for sc.Scan() {
		line++
		if pendingErr != nil {
			return nil, pendingErr
		}
		txt := bytes.TrimSpace(sc.Bytes())
		if len(txt) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(txt, &rec); err != nil {
			pendingErr = fmt.Errorf("metrics log %s line %d: %w", path, line, err)
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics log %s: %w", path, err)
	}
	return out, nil
}

// TruncateMetricsLog rewrites a metrics log keeping only the records taken
// at or before step, so a run resumed from a checkpoint at that step does
// not log the steps it repeats twice. A missing file is not an error.
func TruncateMetricsLog(path string, step int) error {
	recs, err := ReadMetricsLog(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		for _, r := range recs {
			if r.Step > step {
				continue
			}
			b, err := r.MarshalJSON()
			if err != nil {
				return err
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}
