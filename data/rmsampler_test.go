package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// rmIndex builds a synthetic RMset index: for every person, a face in
// each listed frame, with file "<video>/<frame>_<person>.jpg".
func rmIndex(video string, frames map[int][]int) []RMFace {
	var out []RMFace
	var people []int
	for p := range frames {
		people = append(people, p)
	}
	sort.Ints(people)
	for _, p := range people {
		for _, t := range frames[p] {
			out = append(out, RMFace{Video: video, Person: p, Frame: t, File: fmt.Sprintf("%s/%d_%d.jpg", video, t, p)})
		}
	}
	return out
}

func span(a, b int) []int { // a..b inclusive
	var out []int
	for t := a; t <= b; t++ {
		out = append(out, t)
	}
	return out
}

// keys names faces as "person@frame", sorted.
func keys(faces []RMFace, idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = fmt.Sprintf("%d@%d", faces[j].Person, faces[j].Frame)
	}
	sort.Strings(out)
	return out
}

func faceAt(t *testing.T, faces []RMFace, video string, person, frame int) int {
	t.Helper()
	for i, f := range faces {
		if f.Video == video && f.Person == person && f.Frame == frame {
			return i
		}
	}
	t.Fatalf("no face of person %d at frame %d in %s", person, frame, video)
	return -1
}

func pf(person int, frames ...int) []string {
	out := make([]string, len(frames))
	for i, t := range frames {
		out[i] = fmt.Sprintf("%d@%d", person, t)
	}
	return out
}

func sortedUnion(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	sort.Strings(out)
	return out
}

// TestRMSamplerCandidates: the paper's window (|t'−t| ≤ d, other people)
// and the code's negative bounds (same person, t' ≤ t−d′ or t' > t+d′)
// give exactly the hand-computed sets.
func TestRMSamplerCandidates(t *testing.T) {
	faces := rmIndex("v", map[int][]int{
		0: span(0, 99),
		1: span(0, 99),
		2: span(0, 60),
		3: append(span(0, 39), span(50, 99)...), // missed by the detector in 40..49
	})
	cfg := RMSamplerConfig{NPositive: 5, NNegative: 4, PosWindow: 1, NegGap: 30, AnchorMargin: 31, FrameSkip: 1}
	s, err := NewRMSampler(faces, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pos, neg, err := s.Candidates(faceAt(t, faces, "v", 0, 50))
	if err != nil {
		t.Fatal(err)
	}
	wantPos := sortedUnion(pf(1, 49, 50, 51), pf(2, 49, 50, 51), pf(3, 50, 51))
	if got := keys(faces, pos); !slices.Equal(got, wantPos) {
		t.Errorf("positives of 0@50:\n got %v\nwant %v", got, wantPos)
	}
	wantNeg := sortedUnion(pf(0, span(0, 20)...), pf(0, span(81, 99)...))
	if got := keys(faces, neg); !slices.Equal(got, wantNeg) {
		t.Errorf("negatives of 0@50:\n got %v\nwant %v", got, wantNeg)
	}
	// anchor range [31, 100−31]: frame 30 and 70 are not anchors, 31 and 69 are
	for _, c := range []struct {
		frame int
		ok    bool
	}{{30, false}, {31, true}, {69, true}, {70, false}} {
		_, _, err := s.Candidates(faceAt(t, faces, "v", 1, c.frame))
		if (err == nil) != c.ok {
			t.Errorf("1@%d as anchor: err = %v, want valid = %v", c.frame, err, c.ok)
		}
	}
	// the negative bound is the code's: t' = t−30 is a negative, t' = t+30 is not
	_, neg, err = s.Candidates(faceAt(t, faces, "v", 1, 40))
	if err != nil {
		t.Fatal(err)
	}
	got := keys(faces, neg)
	if !slices.Contains(got, "1@10") || slices.Contains(got, "1@11") || slices.Contains(got, "1@70") || !slices.Contains(got, "1@71") {
		t.Errorf("negatives of 1@40 around the gap: %v", got)
	}
	if s.Anchors() == 0 {
		t.Fatal("no anchors")
	}
}

// TestRMSamplerDrawExact: an index where only two anchor frames are valid
// and each has exactly NPositive candidates: every draw returns exactly
// those positives, negatives from the expected set, and the persons that
// cannot be anchors are reported, not silently skipped.
func TestRMSamplerDrawExact(t *testing.T) {
	faces := rmIndex("b", map[int][]int{
		0: span(0, 70), // 71 distinct frames: anchor range [31, 40]
		1: {35},
		2: {36},
	})
	cfg := RMSamplerConfig{NPositive: 2, NNegative: 3, PosWindow: 1, NegGap: 30, AnchorMargin: 31, FrameSkip: 1}
	s, err := NewRMSampler(faces, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Anchors(); n != 2 {
		t.Fatalf("%d valid anchors, want 2 (0@35, 0@36)", n)
	}
	if d := s.Drops(); d.Total() != 2 || !strings.Contains(d.String(), "no negative") {
		t.Errorf("drops: %q, want persons 1 and 2 without negatives", d.String())
	}
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		g := s.Sample(7, 0, i)
		a := faces[g.Anchor]
		seen[a.Frame] = true
		if a.Person != 0 || (a.Frame != 35 && a.Frame != 36) {
			t.Fatalf("draw %d: anchor %d@%d", i, a.Person, a.Frame)
		}
		if got := keys(faces, g.Positives); !slices.Equal(got, []string{"1@35", "2@36"}) {
			t.Fatalf("draw %d: positives %v", i, got)
		}
		if len(g.Negatives) != 3 {
			t.Fatalf("draw %d: %d negatives", i, len(g.Negatives))
		}
		for _, n := range g.Negatives {
			f := faces[n]
			if f.Person != 0 || (f.Frame > a.Frame-30 && f.Frame <= a.Frame+30) {
				t.Fatalf("draw %d: negative %d@%d for anchor at %d", i, f.Person, f.Frame, a.Frame)
			}
		}
	}
	if !seen[35] || !seen[36] {
		t.Errorf("anchor frames drawn: %v, want both 35 and 36", seen)
	}
}

// TestRMSamplerDeterministic: Sample is a function of (seed, epoch,
// index); positives are distinct, negatives drawn with replacement.
func TestRMSamplerDeterministic(t *testing.T) {
	frames := map[int][]int{}
	for p := 0; p < 6; p++ {
		frames[p] = span(0, 119)
	}
	faces := append(rmIndex("x", frames), rmIndex("y", frames)...)
	s, err := NewRMSampler(faces, DefaultRMSamplerConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Sample(3, 1, 17), s.Sample(3, 1, 17)
	if a.Anchor != b.Anchor || !slices.Equal(a.Positives, b.Positives) || !slices.Equal(a.Negatives, b.Negatives) {
		t.Fatal("same (seed, epoch, index) gave different groups")
	}
	diff := 0
	videos := map[string]bool{}
	for i := 0; i < 50; i++ {
		g := s.Sample(3, 1, i)
		if g.Anchor != a.Anchor {
			diff++
		}
		videos[faces[g.Anchor].Video] = true
		if len(g.Positives) != 50 || len(g.Negatives) != 50 {
			t.Fatalf("%d positives, %d negatives, want 50/50", len(g.Positives), len(g.Negatives))
		}
		u := map[int]bool{}
		for _, p := range g.Positives {
			if u[p] {
				t.Fatal("a positive drawn twice (random.sample draws without replacement)")
			}
			u[p] = true
		}
		pos, neg, err := s.Candidates(g.Anchor)
		if err != nil {
			t.Fatal(err)
		}
		// paper window d = 5 with 6 people: 5 others × 11 frames = 55
		if len(pos) != 55 {
			t.Fatalf("%d positive candidates, want 55", len(pos))
		}
		for _, p := range g.Positives {
			if !slices.Contains(pos, p) {
				t.Fatal("positive outside the candidates")
			}
		}
		for _, n := range g.Negatives {
			if !slices.Contains(neg, n) {
				t.Fatal("negative outside the candidates")
			}
		}
	}
	if diff < 40 || len(videos) != 2 {
		t.Errorf("draws vary too little: %d of 50 differ from the first, videos %v", diff, videos)
	}
	if g := s.Sample(4, 1, 17); g.Anchor == a.Anchor && slices.Equal(g.Positives, a.Positives) {
		t.Error("another seed gave the same group")
	}
}

// TestRMSamplerDynamicWindow: the code's window radius
// r = ⌈(n_pos/people − 1)/2⌉ + 1 over t−r ≤ t' < t+r. With 6 people and
// n_pos = 50, r = 5 and the window holds exactly 5 × 10 = 50 others; with
// 5 people r = 6 gives 4 × 12 = 48 < 50, so no anchor exists (the code
// would loop forever) and the sampler says so.
func TestRMSamplerDynamicWindow(t *testing.T) {
	cfg := DefaultRMSamplerConfig()
	cfg.DynamicWindow = true
	if lo, hi := cfg.window(6); lo != -5 || hi != 4 {
		t.Errorf("6 people: window [%d, %d], want [-5, 4]", lo, hi)
	}
	if lo, hi := cfg.window(4); lo != -7 || hi != 6 {
		t.Errorf("4 people: window [%d, %d], want [-7, 6]", lo, hi)
	}
	frames := map[int][]int{}
	for p := 0; p < 6; p++ {
		frames[p] = span(0, 99)
	}
	faces := rmIndex("six", frames)
	s, err := NewRMSampler(faces, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Sample(1, 0, 0)
	a := faces[g.Anchor]
	var want []string
	for p := 0; p < 6; p++ {
		if p != a.Person {
			want = append(want, pf(p, span(a.Frame-5, a.Frame+4)...)...)
		}
	}
	sort.Strings(want)
	if got := keys(faces, g.Positives); !slices.Equal(got, want) {
		t.Errorf("positives of %d@%d:\n got %v\nwant %v", a.Person, a.Frame, got, want)
	}
	delete(frames, 5)
	_, err = NewRMSampler(rmIndex("five", frames), cfg)
	if err == nil || !strings.Contains(err.Error(), "positive candidates") {
		t.Errorf("5 people with the dynamic window: err = %v, want no anchor for lack of positives", err)
	}
}

// TestRMSamplerFrameSkip: with frame_skip 2 a draw keeps the frames of
// one residue, renumbered t/2, so windows and gaps count kept frames.
func TestRMSamplerFrameSkip(t *testing.T) {
	frames := map[int][]int{0: span(0, 199), 1: span(0, 199)}
	faces := rmIndex("s", frames)
	cfg := RMSamplerConfig{NPositive: 3, NNegative: 2, PosWindow: 1, NegGap: 30, AnchorMargin: 31, FrameSkip: 2}
	s, err := NewRMSampler(faces, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pos, neg, err := s.Candidates(faceAt(t, faces, "s", 0, 101)) // residue 1, t' = 50
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(faces, pos), pf(1, 101, 103, 99); !slices.Equal(got, sortedUnion(want)) {
		t.Errorf("positives: got %v, want %v", got, sortedUnion(want))
	}
	// t' ≤ 20 (frames 1..41) or t' > 80 (frames 163..199), odd frames only
	var wantNeg []int
	for f := 1; f < 200; f += 2 {
		if f/2 <= 20 || f/2 > 80 {
			wantNeg = append(wantNeg, f)
		}
	}
	if got := keys(faces, neg); !slices.Equal(got, sortedUnion(pf(0, wantNeg...))) {
		t.Errorf("negatives: got %v", got)
	}
	for i := 0; i < 50; i++ {
		g := s.Draw(rand.New(rand.NewPCG(9, uint64(i))))
		for _, j := range append(append([]int{g.Anchor}, g.Positives...), g.Negatives...) {
			if faces[j].Frame%2 != g.Residue {
				t.Fatalf("draw %d (residue %d) holds frame %d", i, g.Residue, faces[j].Frame)
			}
		}
	}
}

// TestRMSamplerErrors: bad configs and indexes fail with a message.
func TestRMSamplerErrors(t *testing.T) {
	good := rmIndex("v", map[int][]int{0: span(0, 99), 1: span(0, 99)})
	if _, err := NewRMSampler(nil, DefaultRMSamplerConfig()); err == nil {
		t.Error("empty index accepted")
	}
	bad := DefaultRMSamplerConfig()
	bad.FrameSkip = 0
	if _, err := NewRMSampler(good, bad); err == nil {
		t.Error("frame_skip 0 accepted")
	}
	dup := append(append([]RMFace(nil), good...), RMFace{Video: "v", Person: 1, Frame: 7, File: "dup.jpg"})
	if _, err := NewRMSampler(dup, RMSamplerConfig{NPositive: 1, NNegative: 1, PosWindow: 1, NegGap: 30, AnchorMargin: 31, FrameSkip: 1}); err == nil || !strings.Contains(err.Error(), "dup.jpg") {
		t.Errorf("a person twice in one frame: err = %v", err)
	}
	one := rmIndex("solo", map[int][]int{0: span(0, 99)})
	_, err := NewRMSampler(one, DefaultRMSamplerConfig())
	if err == nil || !strings.Contains(err.Error(), "fewer than 2 people") {
		t.Errorf("one-person index: err = %v", err)
	}
}
