package data

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Drops counts the samples a reader leaves out when it opens a data set,
// by reason, keeping the first few names of each reason. Every reader
// that skips a listed sample (a label outside the class set, a FERPlus
// majority of unknown, a clip below min_frames, ...) records it here, so
// that nothing is dropped silently: the run prints Drops.String() once
// when it opens the data set, and `fercli check` lists it.
//
// The zero value is ready to use and safe for concurrent Add.
type Drops struct {
	mu      sync.Mutex
	count   map[string]int
	first   map[string][]string
	reasons []string // in first-seen order
}

// dropExamples is how many names Drops keeps per reason.
const dropExamples = 3

// Add records one dropped sample: reason is a short phrase ("expression
// code 8 (None) not in the 7 classes"), id names the sample (file, row).
func (d *Drops) Add(reason, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.count == nil {
		d.count, d.first = map[string]int{}, map[string][]string{}
	}
	if _, ok := d.count[reason]; !ok {
		d.reasons = append(d.reasons, reason)
	}
	d.count[reason]++
	if len(d.first[reason]) < dropExamples {
		d.first[reason] = append(d.first[reason], id)
	}
}

// Merge adds every drop recorded in o (its counts and example names).
func (d *Drops) Merge(o *Drops) {
	if o == nil || o == d {
		return
	}
	o.mu.Lock()
	type rec struct {
		reason string
		n      int
		ex     []string
	}
	var rs []rec
	for _, r := range o.reasons {
		rs = append(rs, rec{r, o.count[r], append([]string(nil), o.first[r]...)})
	}
	o.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.count == nil {
		d.count, d.first = map[string]int{}, map[string][]string{}
	}
	for _, r := range rs {
		if _, ok := d.count[r.reason]; !ok {
			d.reasons = append(d.reasons, r.reason)
		}
		d.count[r.reason] += r.n
		for _, id := range r.ex {
			if len(d.first[r.reason]) < dropExamples {
				d.first[r.reason] = append(d.first[r.reason], id)
			}
		}
	}
}

// Total is the number of dropped samples.
func (d *Drops) Total() int {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.count {
		n += c
	}
	return n
}

// Counts returns the number dropped per reason.
func (d *Drops) Counts() map[string]int {
	out := map[string]int{}
	if d == nil {
		return out
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.count {
		out[k] = v
	}
	return out
}

// String is one line per reason, most frequent first:
//
//	412 dropped: expression code 8 (None) not in the 7 classes (a/1.jpg, b/2.jpg, ...)
//
// and "" when nothing was dropped.
func (d *Drops) String() string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rs := append([]string(nil), d.reasons...)
	sort.SliceStable(rs, func(i, j int) bool { return d.count[rs[i]] > d.count[rs[j]] })
	var b strings.Builder
	for _, r := range rs {
		ex := strings.Join(d.first[r], ", ")
		if d.count[r] > len(d.first[r]) {
			ex += ", ..."
		}
		fmt.Fprintf(&b, "%d dropped: %s (%s)\n", d.count[r], r, ex)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// DropReporter is implemented by a data set (split) that dropped samples
// when it was opened.
type DropReporter interface {
	Drops() *Drops
}
