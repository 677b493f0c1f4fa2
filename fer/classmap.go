package fer

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Cross-database evaluation: a model trained on one data set scored on
// another (`fercli eval --ckpt RUN/best.ckpt --data rafdb`), the main
// claim of Kollias & Zafeiriou (BMVC 2019). The label sets differ in
// names and order, so they are matched BY NAME: each class name is
// reduced to a canonical expression (ExpressionSynonyms), and a data
// class takes the model class with the same canonical name. Action units
// match by name too (AU12 = au12).
//
// What does not match is reported, never silently dropped:
//   - a data-set class without counterpart among the model's classes
//     (FERPlus's contempt for an Aff-Wild2 model): its samples are left
//     out of the metrics (their label is masked to −1), and the count is
//     printed;
//   - a model class absent from the data set (contempt of an
//     AffectNet-8 model on RAF-DB): it is excluded from the prediction
//     (its score is set to −1e9 before the argmax);
//   - AUs: a data-set AU the model does not predict is masked, a model AU
//     the data set lacks is ignored.
//
// Built-in data sets and their class names (label order):
//
//	affwild2    Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise
//	rafdb       surprise, fear, disgust, happiness, sadness, anger, neutral
//	ferplus     neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
//	affectnet7  neutral, happy, sad, surprise, fear, disgust, anger
//	affectnet8  neutral, happy, sad, surprise, fear, disgust, anger, contempt
//	dfew, afew  happy, sad, neutral, angry, surprise, disgust, fear
//	synth       neutral, happy, sad, surprise, fear, disgust, anger
//
// All of them share the seven basic expressions; contempt (FERPlus,
// AffectNet-8) and ABAW-2022's Other have no counterpart elsewhere.

// ExpressionSynonyms maps the spellings of the built-in data sets (lower
// case) to one canonical expression name.
var ExpressionSynonyms = map[string]string{
	"neutral": "neutral", "neutrality": "neutral",
	"happy": "happy", "happiness": "happy", "joy": "happy",
	"sad": "sad", "sadness": "sad",
	"surprise": "surprise", "surprised": "surprise",
	"fear": "fear", "fearful": "fear", "afraid": "fear",
	"disgust": "disgust", "disgusted": "disgust",
	"anger": "anger", "angry": "anger",
	"contempt": "contempt",
	"other":    "other",
}

// CanonicalClass is the canonical expression of a class name (unknown
// names: lower case, trimmed).
func CanonicalClass(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if c, ok := ExpressionSynonyms[n]; ok {
		return c
	}
	return n
}

// NameMap matches the names of a model's outputs (classes or AUs) to a
// data set's.
type NameMap struct {
	Model, Data []string
	// DataToModel[j] is the model index of data name j, −1 when none.
	DataToModel []int
	// UnmatchedData / UnmatchedModel are the names without counterpart.
	UnmatchedData, UnmatchedModel []string
}

// NewNameMap matches by canon (CanonicalClass for classes, strings.ToLower
// for AUs). Two names of one side with the same canonical form, or no
// match at all, are errors.
func NewNameMap(model, data []string, canon func(string) string, what string) (*NameMap, error) {
	idx := map[string]int{}
	for i, n := range model {
		c := canon(n)
		if j, dup := idx[c]; dup {
			return nil, fmt.Errorf("the model's %s %q and %q mean the same (%s)", what, model[j], n, c)
		}
		idx[c] = i
	}
	m := &NameMap{Model: model, Data: data, DataToModel: make([]int, len(data))}
	used := map[int]bool{}
	seen := map[string]string{}
	for j, n := range data {
		c := canon(n)
		if prev, dup := seen[c]; dup {
			return nil, fmt.Errorf("the data set's %s %q and %q mean the same (%s)", what, prev, n, c)
		}
		seen[c] = n
		i, ok := idx[c]
		if !ok {
			m.DataToModel[j] = -1
			m.UnmatchedData = append(m.UnmatchedData, n)
			continue
		}
		m.DataToModel[j] = i
		used[i] = true
	}
	for i, n := range model {
		if !used[i] {
			m.UnmatchedModel = append(m.UnmatchedModel, n)
		}
	}
	if len(used) == 0 && len(data) > 0 {
		return nil, fmt.Errorf("no %s of the data set (%s) matches one of the model's (%s)", what, strings.Join(data, ", "), strings.Join(model, ", "))
	}
	return m, nil
}

// Identity reports whether the map changes nothing (same names, same
// order).
func (m *NameMap) Identity() bool {
	if m == nil {
		return true
	}
	if len(m.Model) != len(m.Data) {
		return false
	}
	for j, i := range m.DataToModel {
		if i != j || m.Model[j] != m.Data[j] {
			return false
		}
	}
	return true
}

// Table lists "data name ← model name" per data name.
func (m *NameMap) Table() string {
	var b strings.Builder
	for j, n := range m.Data {
		if i := m.DataToModel[j]; i >= 0 {
			fmt.Fprintf(&b, "  %-12s <- %s\n", n, m.Model[i])
		} else {
			fmt.Fprintf(&b, "  %-12s <- (no counterpart: left out)\n", n)
		}
	}
	for _, n := range m.UnmatchedModel {
		fmt.Fprintf(&b, "  %-12s    (model only: excluded from the prediction)\n", "-> "+n)
	}
	return b.String()
}

// CrossDataset is what LoadRun did to evaluate a checkpoint on a data set
// with other classes or AUs.
type CrossDataset struct {
	Classes *NameMap // nil when the classes are identical
	AUs     *NameMap // nil when identical or the data set has no AUs
	// LeftOut counts the samples per unmatched data class, when the data
	// set can tell a sample's class without loading it (Labeled); keyed
	// by split name.
	LeftOut map[string]map[string]int
}

// Report is the printed account of the mapping.
func (c *CrossDataset) Report() string {
	var b strings.Builder
	if c.Classes != nil {
		fmt.Fprintf(&b, "cross-database evaluation: classes matched by name (model -> data set):\n%s", c.Classes.Table())
		if len(c.Classes.UnmatchedData) > 0 {
			fmt.Fprintf(&b, "data classes without counterpart: %s (their samples are left out of the metrics", strings.Join(c.Classes.UnmatchedData, ", "))
			var splits []string
			for s := range c.LeftOut {
				splits = append(splits, s)
			}
			sort.Strings(splits)
			for _, s := range splits {
				var parts []string
				for _, n := range c.Classes.UnmatchedData {
					parts = append(parts, fmt.Sprintf("%d %s", c.LeftOut[s][n], n))
				}
				fmt.Fprintf(&b, "; %s: %s", s, strings.Join(parts, ", "))
			}
			b.WriteString(")\n")
		}
		if len(c.Classes.UnmatchedModel) > 0 {
			fmt.Fprintf(&b, "model classes the data set lacks: %s (never predicted)\n", strings.Join(c.Classes.UnmatchedModel, ", "))
		}
	}
	if c.AUs != nil {
		fmt.Fprintf(&b, "action units matched by name:\n%s", c.AUs.Table())
	}
	return b.String()
}

// Pad values for outputs without counterpart: never the argmax, and
// finite (a masked target multiplies them by 0).
const (
	padLogit  = -1e9
	padCosine = -1
	padAU     = -1e4
)

// MappedModel evaluates a model in a data set's label space: its
// "logits", "cos" and "au" outputs are re-ordered to the data set's
// classes and AUs (see the comment at the top of this file).
type MappedModel struct {
	Model
	Classes, AUs *NameMap
}

// Forward implements Model.
func (m *MappedModel) Forward(b *Batch, train bool) (Outputs, error) {
	out, err := m.Model.Forward(b, train)
	if err != nil {
		return nil, err
	}
	remap := func(name string, nm *NameMap, pad float64) error {
		t, ok := out[name]
		if !ok || t == nil || nm == nil {
			return nil
		}
		y, err := selectColumns(t, nm.DataToModel, pad)
		if err != nil {
			return fmt.Errorf("cross-database %s: %w", name, err)
		}
		t.Drop()
		out[name] = y
		return nil
	}
	for _, r := range []struct {
		name string
		nm   *NameMap
		pad  float64
	}{{OutputLogits, m.Classes, padLogit}, {OutputCosine, m.Classes, padCosine}, {OutputAU, m.AUs, padAU}} {
		if err := remap(r.name, r.nm, r.pad); err != nil {
			out.Drop()
			return nil, err
		}
	}
	return out, nil
}

// selectColumns returns t[..., idx] with idx −1 filled by pad.
func selectColumns(t *ts.Tensor, idx []int, pad float64) (*ts.Tensor, error) {
	shape, err := t.Size()
	if err != nil {
		return nil, err
	}
	last := len(shape) - 1
	C := shape[last]
	padShape := append(append([]int64(nil), shape[:last]...), 1)
	dev, err := t.Device()
	if err != nil {
		return nil, err
	}
	p, err := ts.Full(padShape, ts.FloatScalar(pad), t.DType(), dev)
	if err != nil {
		return nil, err
	}
	defer p.Drop()
	wide, err := ts.Cat([]*ts.Tensor{t, p}, int64(last))
	if err != nil {
		return nil, err
	}
	defer wide.Drop()
	ix := make([]int64, len(idx))
	for j, i := range idx {
		if i < 0 {
			ix[j] = C
		} else {
			ix[j] = int64(i)
		}
	}
	it, err := hostTensor(ix, []int64{int64(len(ix))}, dev)
	if err != nil {
		return nil, err
	}
	defer it.Drop()
	return wide.IndexSelect(int64(last), it, false)
}

// MappedDataset masks the targets of a data set that the model cannot
// predict: labels of data classes without counterpart become −1, AU
// columns without counterpart −1. It counts what it masked.
type MappedDataset struct {
	Dataset
	Classes, AUs *NameMap

	mu     sync.Mutex
	masked map[string]int // class name → masked labels so far
}

// Batch implements Dataset.
func (d *MappedDataset) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	b, err := d.Dataset.Batch(idx, train, rng, dev)
	if err != nil {
		return nil, err
	}
	if err := d.mask(b); err != nil {
		b.Drop()
		return nil, err
	}
	return b, nil
}

func (d *MappedDataset) mask(b *Batch) error {
	if y, ok := b.Targets[TargetLabel]; ok && y != nil && d.Classes != nil && len(d.Classes.UnmatchedData) > 0 {
		vals, err := int64Values(y)
		if err != nil {
			return err
		}
		shape, err := y.Size()
		if err != nil {
			return err
		}
		changed := false
		d.mu.Lock()
		for i, v := range vals {
			if v >= 0 && int(v) < len(d.Classes.DataToModel) && d.Classes.DataToModel[v] < 0 {
				if d.masked == nil {
					d.masked = map[string]int{}
				}
				d.masked[d.Classes.Data[v]]++
				vals[i], changed = -1, true
			}
		}
		d.mu.Unlock()
		if changed {
			dev, err := y.Device()
			if err != nil {
				return err
			}
			ny, err := hostTensor(vals, shape, dev)
			if err != nil {
				return err
			}
			y.Drop()
			b.Targets[TargetLabel] = ny
		}
	}
	if a, ok := b.Targets[TargetAU]; ok && a != nil && d.AUs != nil && len(d.AUs.UnmatchedData) > 0 {
		vals, err := float64Values(a)
		if err != nil {
			return err
		}
		shape, err := a.Size()
		if err != nil {
			return err
		}
		k := len(d.AUs.DataToModel)
		out := make([]float32, len(vals))
		for i, v := range vals {
			out[i] = float32(v)
			if d.AUs.DataToModel[i%k] < 0 {
				out[i] = -1
			}
		}
		dev, err := a.Device()
		if err != nil {
			return err
		}
		na, err := hostTensor(out, shape, dev)
		if err != nil {
			return err
		}
		a.Drop()
		b.Targets[TargetAU] = na
	}
	return nil
}

// Masked returns the labels masked so far, by data class.
func (d *MappedDataset) Masked() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for k, v := range d.masked {
		out[k] = v
	}
	return out
}

// ProtocolNote passes the wrapped split's note through.
func (d *MappedDataset) ProtocolNote() string {
	if n, ok := d.Dataset.(interface{ ProtocolNote() string }); ok {
		return n.ProtocolNote()
	}
	return ""
}

// mapRun switches r to the data set's label space when the model's
// classes or AUs differ from the data set's.
func mapRun(r *Run, modelClasses, modelAUs []string) error {
	cd := &CrossDataset{LeftOut: map[string]map[string]int{}}
	if len(modelClasses) > 0 && len(r.Data.Classes) > 0 {
		m, err := NewNameMap(modelClasses, r.Data.Classes, CanonicalClass, "class")
		if err != nil {
			return fmt.Errorf("cross-database evaluation: %w", err)
		}
		if !m.Identity() {
			cd.Classes = m
		}
	}
	if len(modelAUs) > 0 && len(r.Data.AUs) > 0 {
		m, err := NewNameMap(modelAUs, r.Data.AUs, strings.ToLower, "action unit")
		if err != nil {
			return fmt.Errorf("cross-database evaluation: %w", err)
		}
		if !m.Identity() {
			cd.AUs = m
		}
	}
	if cd.Classes == nil && cd.AUs == nil {
		return nil
	}
	r.Cross = cd
	r.Model = &MappedModel{Model: r.Model, Classes: cd.Classes, AUs: cd.AUs}
	wrap := func(name string, ds Dataset) Dataset {
		if ds == nil {
			return nil
		}
		if l, ok := ds.(Labeled); ok && cd.Classes != nil && len(cd.Classes.UnmatchedData) > 0 {
			counts := map[string]int{}
			for i := 0; i < ds.Len(); i++ {
				if v := l.Label(i); v >= 0 && v < len(cd.Classes.DataToModel) && cd.Classes.DataToModel[v] < 0 {
					counts[cd.Classes.Data[v]]++
				}
			}
			cd.LeftOut[name] = counts
		}
		return &MappedDataset{Dataset: ds, Classes: cd.Classes, AUs: cd.AUs}
	}
	val, test := r.Data.Val, r.Data.Test
	r.Data.Train = wrap("train", r.Data.Train)
	r.Data.Val = wrap("val", val)
	if test != nil && test == val {
		r.Data.Test = r.Data.Val
	} else {
		r.Data.Test = wrap("test", test)
	}
	// the evaluator scores in the data set's label space
	base := r.NewEvaluator
	if base != nil {
		aus := r.Data.AUs
		r.NewEvaluator = func() Evaluator {
			e := base()
			if mt, ok := e.(*MultiTaskEvaluator); ok && cd.AUs != nil {
				mt.AUs = aus
				mt.Reset()
			}
			return e
		}
	}
	return nil
}
