package data

import (
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

// labelsOf makes a label list with counts[k] samples of class k,
// interleaved so that indices do not follow classes.
func labelsOf(counts []int) []int {
	var out []int
	left := slices.Clone(counts)
	for more := true; more; {
		more = false
		for k := range left {
			if left[k] > 0 {
				out = append(out, k)
				left[k]--
				more = true
			}
		}
	}
	return out
}

// chi2 is Pearson's statistic of observed counts against expected ones.
func chi2(obs []int, exp []float64) float64 {
	s := 0.0
	for i, o := range obs {
		if exp[i] > 0 {
			d := float64(o) - exp[i]
			s += d * d / exp[i]
		}
	}
	return s
}

// The quadruplet draw keeps its invariants (anchor and positive of class
// y, distinct; negatives of class y' ≠ y, distinct), and y' follows the
// data distribution of the other classes with NegativeData (dataset_q0)
// and is uniform over them with NegativeUniform (dataset_q1).
func TestQuadrupletDraw(t *testing.T) {
	counts := []int{2, 5, 40, 3, 10}
	labels := labelsOf(counts)
	ci := NewClassIndex(labels, len(counts))
	for _, mode := range []NegativeClass{NegativeData, NegativeUniform} {
		if err := ci.CheckQuadruplets(mode, nil); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(mode)))
		const draws = 40000
		neg := make([][]int, len(counts)) // neg[y][y'] counts
		for k := range neg {
			neg[k] = make([]int, len(counts))
		}
		posHits := map[int]int{}
		for d := range draws {
			a := d % len(labels)
			q := ci.Draw(a, mode, rng)
			y := labels[a]
			switch {
			case q.Anchor != a || q.Label != y:
				t.Fatalf("anchor %d: %+v", a, q)
			case labels[q.Positive] != y || q.Positive == a:
				t.Fatalf("positive %d (class %d) for anchor %d of class %d", q.Positive, labels[q.Positive], a, y)
			case q.NegLabel == y || labels[q.Negative] != q.NegLabel || labels[q.Negative2] != q.NegLabel || q.Negative2 == q.Negative:
				t.Fatalf("negatives %+v for class %d", q, y)
			}
			neg[y][q.NegLabel]++
			if a == 0 {
				posHits[q.Positive]++
			}
		}
		// positives of anchor 0 (class 0 has 2 images) are always the other one
		if len(posHits) != 1 {
			t.Fatalf("class-0 anchor got positives %v", posHits)
		}
		for y := range counts {
			exp := make([]float64, len(counts))
			total := 0
			for _, c := range neg[y] {
				total += c
			}
			others := 0
			for k, c := range counts {
				if k != y {
					others += c
				}
			}
			for k, c := range counts {
				if k == y {
					continue
				}
				if mode == NegativeData {
					exp[k] = float64(total) * float64(c) / float64(others)
				} else {
					exp[k] = float64(total) / float64(len(counts)-1)
				}
			}
			// 3 degrees of freedom: P(chi2 > 25) < 2e-5
			if s := chi2(neg[y], exp); s > 25 {
				t.Errorf("%s: negative classes for class %d: %v, expected %v (chi2 %.1f)", mode, y, neg[y], exp, s)
			}
		}
	}
}

// DCS pairs: the positive is uniform over the other images of the
// anchor's class; a class of one image is an error, an empty one is not
// (pairs draw no negative class).
func TestPairDraw(t *testing.T) {
	counts := []int{2, 4, 0, 3}
	labels := labelsOf(counts)
	ci := NewClassIndex(labels, len(counts))
	if err := ci.CheckPairs(nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	hits := map[int]int{}
	members := ci.Members(1)
	a := members[1] // the second image of class 1 (4 images)
	for range 30000 {
		p := ci.DrawPositive(a, rng)
		if labels[p] != labels[a] || p == a {
			t.Fatalf("positive %d of class %d for anchor %d", p, labels[p], a)
		}
		hits[p]++
	}
	exp := []float64{10000, 10000, 10000}
	got := []int{hits[members[0]], hits[members[2]], hits[members[3]]}
	// 2 degrees of freedom: P(chi2 > 22) < 2e-5
	if s := chi2(got, exp); s > 22 || len(hits) != 3 {
		t.Fatalf("positives %v (chi2 %.1f)", hits, s)
	}
	one := NewClassIndex(labelsOf([]int{3, 1}), 2)
	if err := one.CheckPairs([]string{"a", "b"}); err == nil || !strings.Contains(err.Error(), `class 1 "b" (1 image)`) {
		t.Fatalf("one-image class: %v", err)
	}
}

// A class with one image (no positive) is an error naming it; uniform
// negatives also need every class to have images.
func TestCheckQuadruplets(t *testing.T) {
	classes := []string{"a", "b", "c"}
	ci := NewClassIndex([]int{0, 0, 1, 2, 2}, 3)
	err := ci.CheckQuadruplets(NegativeData, classes)
	if err == nil || !strings.Contains(err.Error(), `class 1 "b" (1 image`) {
		t.Fatalf("one-image class: %v", err)
	}
	ci = NewClassIndex([]int{0, 0, 2, 2}, 3)
	if err := ci.CheckQuadruplets(NegativeData, classes); err != nil {
		t.Fatalf("an empty class is never drawn by data negatives: %v", err)
	}
	if err := ci.CheckQuadruplets(NegativeUniform, classes); err == nil || !strings.Contains(err.Error(), `class 1 "b" (no image`) {
		t.Fatalf("uniform with an empty class: %v", err)
	}
	ci = NewClassIndex([]int{1, 1, 1}, 3)
	if err := ci.CheckQuadruplets(NegativeData, classes); err == nil || !strings.Contains(err.Error(), "at least 2 classes") {
		t.Fatalf("one class: %v", err)
	}
}

// The class-balanced sampler draws n indices with replacement, every
// class equally often (weights 1/count), every image of a class equally
// often.
func TestBalanced(t *testing.T) {
	counts := []int{3, 50, 0, 12}
	labels := labelsOf(counts)
	ci := NewClassIndex(labels, len(counts))
	const n = 30000
	idx := ci.Balanced(n, rand.New(rand.NewPCG(3, 4)))
	if len(idx) != n {
		t.Fatalf("%d draws", len(idx))
	}
	per := make([]int, len(counts))
	img := map[int]int{}
	for _, i := range idx {
		per[labels[i]]++
		img[i]++
	}
	exp := []float64{n / 3.0, n / 3.0, 0, n / 3.0}
	if s := chi2(per, exp); per[2] != 0 || s > 20 {
		t.Fatalf("class counts %v (chi2 %.1f)", per, s)
	}
	// class 0's three images: each about n/9
	for _, i := range ci.Members(0) {
		if math.Abs(float64(img[i])-n/9.0) > 5*math.Sqrt(n/9.0) {
			t.Fatalf("image %d drawn %d times, expected about %d", i, img[i], n/9)
		}
	}
	// same rng state, same draws
	if !slices.Equal(idx, ci.Balanced(n, rand.New(rand.NewPCG(3, 4)))) {
		t.Fatal("not repeatable")
	}
}

// A quadruplet batch holds four images per anchor, each augmented with
// its own random stream: the same picture as anchor and positive (all
// images here are identical) comes out differently, and the batch is a
// function of the rng state.
func TestLoadQuadruplets(t *testing.T) {
	dir := t.TempDir()
	var items []ImageItem
	for i := range 8 {
		p := filepath.Join(dir, "img"+string(rune('a'+i))+".png")
		writePNG(t, p, photo(20, 20, 9)) // the same picture every time
		items = append(items, ImageItem{ID: filepath.Base(p), Path: p, Label: i % 2})
	}
	train, _ := parseSpec(t, `[{random_rotation: [-180, 180]}, {color_jitter: [0.5, 0.5, 0.5, 0.3]}, to_tensor]`)
	test, _ := parseSpec(t, `[to_tensor]`)
	set, err := NewStaticSet("t", items, []string{"x", "y"}, train, test)
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{0, 1, 2, 3, 0, 0}
	qb, err := LoadQuadruplets(set, set.Index, idx, NegativeData, rand.New(rand.NewPCG(5, 5)), 3)
	if err != nil {
		t.Fatal(err)
	}
	n := 3 * 20 * 20
	for j := range idx {
		a := qb.Anchor.Data[j*n : (j+1)*n]
		for k, other := range []*Batch{qb.Positive, qb.Negative, qb.Negative2} {
			if slices.Equal(a, other.Data[j*n:(j+1)*n]) {
				t.Fatalf("anchor %d and image %d of its quadruplet were augmented alike", j, k+1)
			}
		}
		if j > 0 && idx[j] == 0 && slices.Equal(a, qb.Anchor.Data[0:n]) {
			t.Fatalf("anchor 0 drawn twice got the same augmentation")
		}
		if qb.Anchor.Labels[j] != int64(idx[j]%2) || qb.NegLabels[j] != 1-qb.Anchor.Labels[j] || qb.Positive.Labels[j] != qb.Anchor.Labels[j] {
			t.Fatalf("labels of quadruplet %d: %d %d %d", j, qb.Anchor.Labels[j], qb.Positive.Labels[j], qb.NegLabels[j])
		}
	}
	again, _ := LoadQuadruplets(set, set.Index, idx, NegativeData, rand.New(rand.NewPCG(5, 5)), 1)
	if !slices.Equal(again.Negative2.Data, qb.Negative2.Data) || !slices.Equal(again.Anchor.Data, qb.Anchor.Data) {
		t.Fatal("same rng state, different batch (or it depends on the number of workers)")
	}
	// eval loads go through the test pipeline: no augmentation
	s0, _ := set.Load(0, nil, false)
	s1, _ := set.Load(1, nil, false)
	if !slices.Equal(s0.Data, s1.Data) {
		t.Fatal("test pipeline is not deterministic")
	}
}

// OpenImageList reads the QCS "ImageName label" lists; malformed lines
// are errors naming the file and line.
func TestOpenImageList(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "img", "a.png"), photo(8, 8, 1))
	writePNG(t, filepath.Join(root, "img", "sub", "b.png"), photo(8, 8, 2))
	list := filepath.Join(root, "l.txt")
	classes := []string{"x", "y", "z"}
	opts := ImageListOptions{ImageDir: filepath.Join(root, "img"), Classes: classes}
	writeFile(t, list, "a.png 2\r\n\nsub/b.png 0\n")
	items, err := OpenImageList(list, opts)
	if err != nil || len(items) != 2 || items[0].Label != 2 || items[1].Label != 0 || items[1].Path != filepath.Join(root, "img", "sub", "b.png") {
		t.Fatalf("%+v %v", items, err)
	}
	one := opts
	one.LabelBase = 1
	if items, err := OpenImageList(list, one); err == nil {
		t.Fatalf("label 0 with base 1 accepted: %+v", items)
	} else {
		wantErr(t, err, "l.txt line 3", "label 0 out of range, want 1..3", "list_label_base")
	}
	for _, c := range []struct{ content, want string }{
		{"a.png 1 x\n", "line 1"},
		{"a.png\n", "<image name> <label>"},
		{"a.png one\n", `label "one" is not an integer`},
		{"a.png 3\n", "label 3 out of range, want 0..2 (x, y, z)"},
		{"a.png 1\na.png 2\n", "listed twice (first on line 1)"},
		{"a.png 1\nc.png 1\n", "1 of 2 listed images not found"},
		{"\n\n", "lists no images"},
	} {
		writeFile(t, list, c.content)
		_, err := OpenImageList(list, opts)
		wantErr(t, err, "l.txt", c.want)
	}
	_, err = OpenImageList(filepath.Join(root, "none.txt"), opts)
	wantErr(t, err, "none.txt")
}

// StaticSet: a face box is cut out before the pipeline; train and test
// pipelines of different output sizes are an error; so is a random test
// pipeline; Preprocess of a picture equals the evaluation load.
func TestStaticSet(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.png")
	pic := photo(30, 24, 7)
	writePNG(t, p, pic)
	tr, _ := parseSpec(t, `[{resize: [12, 12]}, hflip, to_tensor]`)
	te, _ := parseSpec(t, `[{resize: [12, 12]}, to_tensor, {normalize: imagenet}]`)
	items := []ImageItem{{ID: "a", Path: p, Label: 0}, {ID: "b", Path: p, Label: 1, Box: image.Rect(5, 4, 25, 20)}}
	set, err := NewStaticSet("s", items, []string{"x", "y"}, tr, te)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.SampleShape(), []int{3, 12, 12}) {
		t.Fatalf("shape %v", set.SampleShape())
	}
	s0, _ := set.Load(0, nil, false)
	got, err := set.Preprocess(pic)
	if err != nil || !slices.Equal(got, s0.Data) {
		t.Fatalf("Preprocess differs from the eval load: %v", err)
	}
	s1, _ := set.Load(1, nil, false)
	want, _, _ := te.Apply(fromImage(pic), image.Rect(5, 4, 25, 20), nil, nil)
	if !slices.Equal(s1.Data, want) {
		t.Fatal("face box not applied")
	}
	big, _ := parseSpec(t, `[{resize: [14, 14]}, to_tensor]`)
	if _, err := NewStaticSet("s", items, []string{"x", "y"}, big, te); err == nil || !strings.Contains(err.Error(), "train_transforms give 14x14 images, test_transforms 12x12") {
		t.Fatalf("size mismatch: %v", err)
	}
	if _, err := NewStaticSet("s", items, []string{"x", "y"}, tr, tr); err == nil || !strings.Contains(err.Error(), "test_transforms has random steps") {
		t.Fatalf("random test pipeline: %v", err)
	}
	// without a fixed size the first image decides; a different-sized
	// image is then an error naming it
	q := filepath.Join(dir, "b.png")
	writePNG(t, q, photo(20, 20, 1))
	free, _ := parseSpec(t, `[to_tensor]`)
	set, err = NewStaticSet("s", []ImageItem{{ID: "a", Path: p}, {ID: "b", Path: q}}, []string{"x"}, free, free)
	if err != nil || !slices.Equal(set.SampleShape(), []int{3, 24, 30}) {
		t.Fatalf("%v %v", err, set)
	}
	if _, err := set.Load(1, nil, false); err == nil || !strings.Contains(err.Error(), "b gives a [3 20 20] tensor") {
		t.Fatalf("odd-sized image: %v", err)
	}
}

func fromImage(img image.Image) *imaging.RGB {
	var m imaging.RGB
	imaging.FromImage(img, &m)
	return &m
}

// TestStratified: the semi-supervised subset (labelled: 4000 on RAF-DB
// basic's training classes) takes each class in proportion (largest
// remainder: 420, 92, 234, 1555, 646, 230, 823, computed by hand), the
// same seed draws the same images and another seed others; a rare class
// keeps one image.
func TestStratified(t *testing.T) {
	counts := []int{1290, 281, 717, 4772, 1982, 705, 2524} // RAF-DB basic train
	labels := labelsOf(counts)
	ci := NewClassIndex(labels, 7)
	q, err := ci.Quotas(4000)
	if err != nil || !slices.Equal(q, []int{420, 92, 234, 1555, 646, 230, 823}) {
		t.Fatalf("quotas %v, %v", q, err)
	}
	a, err := ci.Stratified(4000, rand.New(rand.NewPCG(7, 0)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ci.Stratified(4000, rand.New(rand.NewPCG(7, 0)))
	c, _ := ci.Stratified(4000, rand.New(rand.NewPCG(8, 0)))
	if !slices.Equal(a, b) || slices.Equal(a, c) || len(a) != 4000 || !slices.IsSorted(a) {
		t.Fatalf("subsets: %d, same seed equal %v, other seed equal %v, sorted %v", len(a), slices.Equal(a, b), slices.Equal(a, c), slices.IsSorted(a))
	}
	got := make([]int, 7)
	for i, x := range a {
		if i > 0 && a[i-1] == x {
			t.Fatalf("index %d twice", x)
		}
		got[labels[x]]++
	}
	if !slices.Equal(got, q) {
		t.Fatalf("per class %v, want %v", got, q)
	}
	rare := NewClassIndex([]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 3)
	if q, err := rare.Quotas(3); err != nil || !slices.Equal(q, []int{2, 1, 0}) {
		t.Errorf("rare class quotas %v, %v; want [2 1 0]", q, err)
	}
	if _, err := rare.Quotas(12); err == nil || !strings.Contains(err.Error(), "12 of 11") {
		t.Errorf("too many: %v", err)
	}
}
