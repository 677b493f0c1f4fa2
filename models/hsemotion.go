package models

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Published EfficientNet-B2 FER weights in the HSEmotion convention
// (A. Savchenko's enet_b2_7.pt / enet_b2_8.pt: timm tf_efficientnet_b2_ns
// pre-trained on VGGFace2, fine-tuned on AffectNet, saved whole with
// torch.save(model)), which RMFER starts from, and the public RMFER
// code's own files: its notebook splits enet_b2_N.pt into
// weights/enet_b2_backbone_Nemo.pth (torch.save of
// nn.Sequential(*list(model.children())[:-1])) and
// weights/enet_b2_classifier_Nemo.pth (torch.save of the Linear), and
// its save_model writes the four modules of a trained model the same
// way. All are read without Python (ReadStateDict reads pickled modules).
//
// Class order. HSEmotion's heads are alphabetical (hsemotion's
// facial_emotions.py, idx_to_class):
//
//	enet_b2_8: Anger, Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise
//	enet_b2_7: Anger, Disgust, Fear, Happiness, Neutral, Sadness, Surprise
//
// which is neither AffectNet's code order (Neutral, Happy, Sad, Surprise,
// Fear, Disgust, Anger, Contempt) nor RAF-DB's or FERPlus's. fer reorders
// the classifier's rows to the data set's classes by name (MapClasses,
// with the synonyms of expressionSynonyms), and says how (ClassMap). The
// public RMFER code loads the head unchanged beside AffectNet's codes
// (SPEC.md §8 item 3(d)); ClassOrderAsIs reproduces that.

// HSEmotionClasses8 and HSEmotionClasses7 are the HSEmotion heads' class
// orders.
var (
	HSEmotionClasses8 = []string{"Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"}
	HSEmotionClasses7 = []string{"Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"}
)

// HSEmotionClasses returns the class order of an HSEmotion head of n
// outputs (7 or 8).
func HSEmotionClasses(n int) ([]string, error) {
	switch n {
	case 7:
		return HSEmotionClasses7, nil
	case 8:
		return HSEmotionClasses8, nil
	}
	return nil, fmt.Errorf("an HSEmotion expression head has 7 or 8 classes, this one has %d", n)
}

// expressionSynonyms is the table MapClasses matches class names with
// (case-insensitive): each line is one expression.
var expressionSynonyms = [][]string{
	{"anger", "angry"},
	{"contempt", "contemptuous"},
	{"disgust", "disgusted"},
	{"fear", "fearful", "afraid", "scared"},
	{"happiness", "happy", "joy"},
	{"neutral"},
	{"sadness", "sad"},
	{"surprise", "surprised"},
}

// canonicalExpression maps a class name to the first name of its line in
// expressionSynonyms ("" when it is none of them).
func canonicalExpression(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, line := range expressionSynonyms {
		if slices.Contains(line, n) {
			return line[0]
		}
	}
	return ""
}

// ClassMap says how a checkpoint's class order was mapped to a data
// set's: row Index[j] of the checkpoint's head became class j.
type ClassMap struct {
	From, To []string
	Index    []int
	// Dropped are checkpoint classes no data-set class maps to (Contempt
	// for a 7-class data set).
	Dropped []string
	// AsIs is set when the rows were kept in checkpoint order on request.
	AsIs bool
}

// Identity reports whether the mapping keeps every row in place.
func (c *ClassMap) Identity() bool {
	for j, i := range c.Index {
		if i != j {
			return false
		}
	}
	return len(c.Index) == len(c.From)
}

// String is one line, e.g. "checkpoint rows → classes: 5 Neutral → 0
// neutral, 4 Happiness → 1 happy, ... (dropped: Contempt)".
func (c *ClassMap) String() string {
	var parts []string
	for j, i := range c.Index {
		parts = append(parts, fmt.Sprintf("%d %s → %d %s", i, c.From[i], j, c.To[j]))
	}
	s := "checkpoint rows → classes: " + strings.Join(parts, ", ")
	if c.AsIs {
		s = "checkpoint rows kept in checkpoint order (as-is): " + strings.Join(parts, ", ")
	}
	if len(c.Dropped) > 0 {
		s += " (dropped: " + strings.Join(c.Dropped, ", ") + ")"
	}
	return s
}

// MapClasses matches the data set's classes to a checkpoint's by
// expression name (expressionSynonyms). Every data-set class must be
// found; checkpoint classes left over are listed as Dropped.
func MapClasses(from, to []string) (*ClassMap, error) {
	at := map[string]int{}
	for i, f := range from {
		c := canonicalExpression(f)
		if c == "" {
			return nil, fmt.Errorf("checkpoint class %q is not an expression name fer knows (%s)", f, synonymList())
		}
		if _, dup := at[c]; dup {
			return nil, fmt.Errorf("checkpoint classes name %q twice", c)
		}
		at[c] = i
	}
	cm := &ClassMap{From: from, To: to, Index: make([]int, len(to))}
	used := map[int]bool{}
	for j, t := range to {
		c := canonicalExpression(t)
		i, ok := at[c]
		if c == "" || !ok {
			return nil, fmt.Errorf("data-set class %q has no row in the checkpoint's head (%s)", t, strings.Join(from, ", "))
		}
		if used[i] {
			return nil, fmt.Errorf("data-set classes map to checkpoint class %q twice", from[i])
		}
		used[i] = true
		cm.Index[j] = i
	}
	for i, f := range from {
		if !used[i] {
			cm.Dropped = append(cm.Dropped, f)
		}
	}
	return cm, nil
}

func synonymList() string {
	var lines []string
	for _, l := range expressionSynonyms {
		lines = append(lines, strings.Join(l, "/"))
	}
	return strings.Join(lines, ", ")
}

// ClassOrder says how a checkpoint's head is matched to the data set's
// classes.
type ClassOrder int

const (
	// ClassOrderByName reorders the head's rows by class name (default).
	ClassOrderByName ClassOrder = iota
	// ClassOrderAsIs keeps the rows in checkpoint order: row j predicts
	// data-set class j, whatever its name (what the public RMFER code
	// does with AffectNet codes; only right when the labels were re-coded
	// to the checkpoint's order).
	ClassOrderAsIs
)

// permuteRows returns x[index] along dim 0.
func permuteRows(x *ts.Tensor, index []int) (*ts.Tensor, error) {
	idx := make([]int64, len(index))
	for i, v := range index {
		idx[i] = int64(v)
	}
	return indexRows(x, idx)
}

// effnetRole is the part of an EfficientNet a top-level module name
// stands for.
var effnetRoles = []string{"stem", "bn1", "blocks", "head", "bn2"}

// effnetRenamer maps the keys of an EfficientNet-B2 checkpoint, in timm
// names (conv_stem, bn1, blocks, conv_head, bn2, classifier[.0]) or as
// an nn.Sequential of the model's children (RMFER's backbone files:
// 0,1,3,4,5 with the authors' timm, whose act1/act2 were children;
// 0,1,2,3,4 with timm ≥ 0.9, whose BatchNormAct2d holds the activation),
// to fer's names for names ("timm" or "rmfer"). The Sequential indices
// are told apart by structure: the index whose keys go three levels deep
// (S.s.i.*) holds the blocks; two parameterised children come before it
// and two after. Classifier keys map to "classifier.weight/bias" under
// either naming. Keys that fit neither are returned unchanged.
func effnetRenamer(keys []string, names string) (func(string) string, error) {
	nm, err := EfficientNetConfig{Names: names}.names()
	if err != nil {
		return nil, err
	}
	target := map[string]string{"stem": nm.stem, "bn1": nm.bn1, "blocks": nm.blocks, "head": nm.head, "bn2": nm.bn2}
	timm := map[string]string{"conv_stem": "stem", "bn1": "bn1", "blocks": "blocks", "conv_head": "head", "bn2": "bn2"}
	role := map[string]string{} // top-level name in the file → role
	var numeric []int
	deep := map[int]bool{}
	for _, k := range keys {
		top, rest, _ := strings.Cut(k, ".")
		if r, ok := timm[top]; ok {
			role[top] = r
			continue
		}
		if n, err := strconv.Atoi(top); err == nil {
			if !slices.Contains(numeric, n) {
				numeric = append(numeric, n)
			}
			if strings.Count(rest, ".") >= 2 {
				deep[n] = true
			}
		}
	}
	if len(numeric) > 0 {
		if len(role) > 0 {
			return nil, fmt.Errorf("checkpoint mixes timm names (%s) and nn.Sequential indices", strings.Join(sortedKeys(role), ", "))
		}
		sort.Ints(numeric)
		if len(numeric) != 5 || !deep[numeric[2]] {
			return nil, fmt.Errorf("checkpoint is an nn.Sequential with parameterised children %v; an EfficientNet backbone has five (stem conv, BN, blocks, head conv, BN) with the blocks in the middle", numeric)
		}
		for i, n := range numeric {
			role[strconv.Itoa(n)] = effnetRoles[i]
		}
	}
	return func(k string) string {
		top, rest, _ := strings.Cut(k, ".")
		if top == "classifier" {
			// timm's Linear, or hsemotion's nn.Sequential(nn.Linear)
			return "classifier." + strings.TrimPrefix(rest, "0.")
		}
		if r, ok := role[top]; ok {
			return target[r] + "." + rest
		}
		return k
	}, nil
}

// ReadHSEmotion reads an HSEmotion-convention EfficientNet-B2 checkpoint
// (enet_b2_8.pt: a whole pickled timm model, or its state_dict) and
// returns it with fer's names for names ("timm": conv_stem…, "rmfer":
// 0, 1, 3…), the classifier as "classifier.weight" / "classifier.bias",
// and the head's class order (HSEmotionClasses).
func ReadHSEmotion(file, names string) (*StateDict, []string, error) {
	sd, err := ReadStateDict(file)
	if err != nil {
		return nil, nil, err
	}
	out, err := renameEffNet(sd, names)
	sd.Drop()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	w := out.Shape("classifier.weight")
	if len(w) != 2 || out.Shape("classifier.bias") == nil {
		out.Drop()
		return nil, nil, fmt.Errorf("read %s: no classifier (classifier.weight / classifier.0.weight): not an HSEmotion expression model", file)
	}
	classes, err := HSEmotionClasses(int(w[0]))
	if err != nil {
		out.Drop()
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, classes, nil
}

// renameEffNet returns a copy of sd (sharing storage) with effnetRenamer's
// names.
func renameEffNet(sd *StateDict, names string) (*StateDict, error) {
	rename, err := effnetRenamer(sd.Names, names)
	if err != nil {
		return nil, err
	}
	out := &StateDict{Tensors: map[string]*ts.Tensor{}, Source: sd.Source, Skipped: sd.Skipped}
	for _, k := range sd.Names {
		nk := rename(k)
		if _, dup := out.Tensors[nk]; dup {
			out.Drop()
			return nil, fmt.Errorf("two keys map to %q", nk)
		}
		t, err := sd.Tensors[k].ShallowClone()
		if err != nil {
			out.Drop()
			return nil, err
		}
		out.Names = append(out.Names, nk)
		out.Tensors[nk] = t
	}
	return out, nil
}

// setHead puts the classifier rows for classes (mapped from the
// checkpoint's order by order) into sd under prefix ("classifier",
// "classifier_main", ...), removing the checkpoint's own classifier when
// prefix differs.
func setHead(sd *StateDict, from, classes []string, order ClassOrder, prefixes ...string) (*ClassMap, error) {
	var cm *ClassMap
	var err error
	if order == ClassOrderAsIs {
		if len(from) != len(classes) {
			return nil, fmt.Errorf("the head has %d classes (%s), the data set %d: a head can only be kept as-is with the same number of classes", len(from), strings.Join(from, ", "), len(classes))
		}
		cm = &ClassMap{From: from, To: classes, Index: make([]int, len(classes)), AsIs: true}
		for i := range cm.Index {
			cm.Index[i] = i
		}
	} else if cm, err = MapClasses(from, classes); err != nil {
		return nil, err
	}
	w, b := sd.Tensors["classifier.weight"], sd.Tensors["classifier.bias"]
	pw, err := permuteRows(w, cm.Index)
	if err != nil {
		return nil, err
	}
	defer pw.MustDrop()
	pb, err := permuteRows(b, cm.Index)
	if err != nil {
		return nil, err
	}
	defer pb.MustDrop()
	delete(sd.Tensors, "classifier.weight")
	delete(sd.Tensors, "classifier.bias")
	w.MustDrop()
	b.MustDrop()
	sd.Names = slices.DeleteFunc(sd.Names, func(k string) bool { return k == "classifier.weight" || k == "classifier.bias" })
	for _, p := range prefixes {
		for name, t := range map[string]*ts.Tensor{p + ".weight": pw, p + ".bias": pb} {
			c, err := t.ShallowClone()
			if err != nil {
				return nil, err
			}
			sd.Names = append(sd.Names, name)
			sd.Tensors[name] = c
		}
	}
	return cm, nil
}

// LoadHSEmotionEffNet loads an HSEmotion enet_b2_7.pt / enet_b2_8.pt into
// fer's effnet_b2 classifier (timm names; built with len(classes)
// outputs) under the VarStore prefix into (a model built at
// vs.Root().Sub(into); "" for the root), its head rows reordered to
// classes as order says. The returned ClassMap states the mapping.
func LoadHSEmotionEffNet(vs *nn.VarStore, file string, classes []string, order ClassOrder, into string) (*LoadReport, *ClassMap, error) {
	sd, from, err := ReadHSEmotion(file, "timm")
	if err != nil {
		return nil, nil, err
	}
	defer sd.Drop()
	cm, err := setHead(sd, from, classes, order, "classifier")
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", file, err)
	}
	r, err := LoadStateDict(vs, sd, LoadOptions{Into: into})
	return r, cm, err
}

// LoadRMFERInit initialises an RMFER model the way the public code does:
// the backbone from an HSEmotion EfficientNet-B2 and both classifier_main
// and classifier_att from its classifier (rows reordered to classes as
// order says); the projection head keeps its fresh initialisation. files
// is either the HSEmotion model (enet_b2_8.pt) or the RMFER repository's
// split pair (enet_b2_backbone_8emo.pth, enet_b2_classifier_8emo.pth, in
// either order).
func LoadRMFERInit(vs *nn.VarStore, files []string, classes []string, order ClassOrder) (*LoadReport, *ClassMap, error) {
	var sd *StateDict
	var from []string
	var err error
	switch len(files) {
	case 1:
		sd, from, err = ReadHSEmotion(files[0], "rmfer")
	case 2:
		sd, from, err = readSplitInit(files)
	default:
		return nil, nil, fmt.Errorf("rmfer init: want an HSEmotion model (enet_b2_8.pt) or a backbone/classifier pair, got %d files", len(files))
	}
	if err != nil {
		return nil, nil, err
	}
	defer sd.Drop()
	cm, err := setHead(sd, from, classes, order, "classifier_main", "classifier_att")
	if err != nil {
		return nil, nil, fmt.Errorf("rmfer init %s: %w", strings.Join(files, " + "), err)
	}
	// the backbone's keys go under "backbone."
	rename := func(k string) string {
		if strings.HasPrefix(k, "classifier_") {
			return k
		}
		return "backbone." + k
	}
	r, err := LoadStateDict(vs, sd, LoadOptions{AllowMissing: true, Rename: rename})
	if err != nil {
		return r, nil, err
	}
	for _, m := range r.Missing {
		if !strings.HasPrefix(m, "projection_head.") {
			return r, nil, fmt.Errorf("rmfer init %s: %s is missing from the checkpoint", strings.Join(files, " + "), m)
		}
	}
	return r, cm, nil
}

// readSplitInit reads the RMFER repository's backbone + classifier pair:
// the file whose tensors are a single Linear is the classifier.
func readSplitInit(files []string) (*StateDict, []string, error) {
	var parts [2]*StateDict
	drop := func() {
		for _, p := range parts {
			if p != nil {
				p.Drop()
			}
		}
	}
	for i, f := range files {
		sd, err := ReadStateDict(f)
		if err != nil {
			drop()
			return nil, nil, err
		}
		parts[i] = sd
	}
	isHead := func(sd *StateDict) bool {
		return len(sd.Names) == 2 && sd.Shape("weight") != nil && sd.Shape("bias") != nil
	}
	if isHead(parts[0]) {
		parts[0], parts[1] = parts[1], parts[0]
		files = []string{files[1], files[0]}
	}
	if !isHead(parts[1]) {
		drop()
		return nil, nil, fmt.Errorf("rmfer init: neither %s nor %s is a classifier (a Linear with weight and bias)", files[0], files[1])
	}
	out, err := renameEffNet(parts[0], "rmfer")
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("read %s: %w", files[0], err)
	}
	for _, k := range []string{"weight", "bias"} {
		c, err := parts[1].Tensors[k].ShallowClone()
		if err != nil {
			drop()
			out.Drop()
			return nil, nil, err
		}
		out.Names = append(out.Names, "classifier."+k)
		out.Tensors["classifier."+k] = c
	}
	w := parts[1].Shape("weight")
	drop()
	classes, err := HSEmotionClasses(int(w[0]))
	if err != nil {
		out.Drop()
		return nil, nil, fmt.Errorf("read %s: %w", files[1], err)
	}
	return out, classes, nil
}

// RMFERSplitFiles are the names the public code's save_model gives the
// four modules of a model saved at tag (an epoch number or
// "Best_overall" / "Best_average"), in dir.
func RMFERSplitFiles(dir, tag string) map[string]string {
	if n, err := strconv.Atoi(tag); err == nil {
		tag = fmt.Sprintf("%04d", n) // f"{epoch:04}"
	}
	out := map[string]string{}
	for prefix, part := range map[string]string{"backbone": "backbone", "projection_head": "projection", "classifier_main": "classifier_main", "classifier_att": "classifier_att"} {
		out[prefix] = filepath.Join(dir, fmt.Sprintf("enet_%s_%s.pth", part, tag))
	}
	return out
}

// LoadRMFERCheckpoint loads a model trained by the public RMFER code:
// a Lightning checkpoint (last.ckpt: "model.backbone.0.weight", ... under
// state_dict), a plain state_dict of its EfficientNet module, or a
// directory with save_model's four files for tag (see RMFERSplitFiles;
// whole pickled modules). Backbones saved under another timm version's
// nn.Sequential numbering are renamed by structure (effnetRenamer).
func LoadRMFERCheckpoint(vs *nn.VarStore, path, tag string) (*LoadReport, error) {
	sd, err := readRMFERCheckpoint(path, tag)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	return LoadStateDict(vs, sd, LoadOptions{})
}

// readRMFERCheckpoint reads what LoadRMFERCheckpoint loads, in fer's
// names.
func readRMFERCheckpoint(path, tag string) (*StateDict, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rmfer checkpoint: %w", err)
	}
	if st.IsDir() {
		if tag == "" {
			return nil, fmt.Errorf("rmfer checkpoint %s is a directory: name the save_model tag (an epoch or Best_overall)", path)
		}
		return readRMFERSplit(RMFERSplitFiles(path, tag))
	}
	return readRMFERFile(path)
}

// readRMFERFile reads one checkpoint of the whole model, renaming its
// backbone to the rmfer names.
func readRMFERFile(path string) (*StateDict, error) {
	sd, err := ReadStateDict(path)
	if err != nil {
		return nil, err
	}
	defer sd.Drop()
	out := &StateDict{Tensors: map[string]*ts.Tensor{}, Source: sd.Source}
	var bbKeys []string
	strip := func(k string) string {
		for _, p := range []string{"model.", "module."} { // Lightning, DataParallel
			k = strings.TrimPrefix(k, p)
		}
		return k
	}
	for _, k := range sd.Names {
		if b, ok := strings.CutPrefix(strip(k), "backbone."); ok {
			bbKeys = append(bbKeys, b)
		}
	}
	rename, err := effnetRenamer(bbKeys, "rmfer")
	if err != nil {
		return nil, fmt.Errorf("read %s: backbone: %w", path, err)
	}
	for _, k := range sd.Names {
		nk := strip(k)
		if b, ok := strings.CutPrefix(nk, "backbone."); ok {
			nk = "backbone." + rename(b)
		}
		t, err := sd.Tensors[k].ShallowClone()
		if err != nil {
			out.Drop()
			return nil, err
		}
		if _, dup := out.Tensors[nk]; dup {
			t.MustDrop()
			out.Drop()
			return nil, fmt.Errorf("read %s: two keys map to %q", path, nk)
		}
		out.Names = append(out.Names, nk)
		out.Tensors[nk] = t
	}
	return out, nil
}

func readRMFERSplit(files map[string]string) (*StateDict, error) {
	out := &StateDict{Tensors: map[string]*ts.Tensor{}}
	for _, prefix := range []string{"backbone", "projection_head", "classifier_main", "classifier_att"} {
		sd, err := ReadStateDict(files[prefix])
		if err != nil {
			out.Drop()
			return nil, err
		}
		rename := func(k string) string { return k }
		if prefix == "backbone" {
			if rename, err = effnetRenamer(sd.Names, "rmfer"); err != nil {
				sd.Drop()
				out.Drop()
				return nil, fmt.Errorf("read %s: %w", files[prefix], err)
			}
		}
		for _, k := range sd.Names {
			nk := prefix + "." + rename(k)
			out.Names = append(out.Names, nk)
			out.Tensors[nk] = sd.Tensors[k]
		}
		sd.Tensors, sd.Names = nil, nil // moved into out
	}
	out.Source = files["backbone"] + " (+ projection, classifier_main, classifier_att)"
	return out, nil
}
