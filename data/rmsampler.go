package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// RMFace is one face crop of an RMset (RMFER's unlabelled set of
// reaction-mashup videos, SPEC.md §3.3): the video it comes from, the
// person (track id, the same for one person over the whole video), the
// frame number and the crop's file. `fercli rmset build` writes an index
// of these; any reader that produces a []RMFace feeds the sampler.
type RMFace struct {
	Video  string
	Person int
	Frame  int
	File   string
}

// RMSamplerConfig selects RMFER's positive and negative candidates for an
// anchor face (the ACL priors: other people in nearby frames react alike,
// the same person far away in time reacts differently). The public code
// (datasets/contrastive/total.py and RMset.py, class RMset, __getitem__)
// gives the defaults; where the paper's text differs it is an option.
type RMSamplerConfig struct {
	// NPositive and NNegative are the candidate pool sizes per anchor
	// (configs/ACL/AffectNet7_cont.json: n_positive = n_negative = 50).
	// Positives are drawn without replacement (random.sample), negatives
	// with replacement (random.choice per draw), as the code.
	NPositive, NNegative int
	// PosWindow is the paper's d: positive candidates are the faces of
	// the other people of the video with |t' − t| ≤ d (d = 5 in the
	// paper). Ignored with DynamicWindow.
	PosWindow int
	// DynamicWindow is the code's positive window instead: radius
	// r = ⌈(NPositive/people − 1)/2⌉ + 1 (people = distinct persons of the
	// video, true division as Python 3's) over the half-open range
	// t − r ≤ t' < t + r, chosen so that the window holds about
	// NPositive other faces. SPEC.md §8 item 3(c): the paper's d = 5 is
	// not what the code does.
	DynamicWindow bool
	// NegGap is d′ = 30: negative candidates are the anchor person's own
	// faces with t' ≤ t − d′ or t' > t + d′ (the code's bounds; the
	// paper says "more than d′ frames away", which differs only at
	// t' = t − d′).
	NegGap int
	// AnchorMargin is the code's 31: the anchor frame t is drawn
	// uniformly from [31, frames − 31] (random.randint, both ends
	// included), frames being the number of distinct frame numbers of the
	// video — the code treats frame numbers as 0..frames−1.
	AnchorMargin int
	// FrameSkip is the code's n_frame_skip (1..30 in their annotation
	// folders): for each draw a residue ρ ∈ [0, FrameSkip) is drawn, only
	// frames ≡ ρ (mod FrameSkip) are kept and renumbered t/FrameSkip, so
	// windows and gaps count sub-sampled frames. 1 keeps every frame.
	FrameSkip int
}

// DefaultRMSamplerConfig is the paper's positive window (d = 5) with the
// code's pool sizes, negative gap, anchor range and no frame skipping.
func DefaultRMSamplerConfig() RMSamplerConfig {
	return RMSamplerConfig{NPositive: 50, NNegative: 50, PosWindow: 5, NegGap: 30, AnchorMargin: 31, FrameSkip: 1}
}

func (c RMSamplerConfig) check() error {
	switch {
	case c.NPositive < 1 || c.NNegative < 1:
		return fmt.Errorf("rmset sampler: n_positive = %d, n_negative = %d, want >= 1", c.NPositive, c.NNegative)
	case c.PosWindow < 0 || c.NegGap < 0 || c.AnchorMargin < 0:
		return fmt.Errorf("rmset sampler: pos_window = %d, neg_gap = %d, anchor_margin = %d, want >= 0", c.PosWindow, c.NegGap, c.AnchorMargin)
	case c.FrameSkip < 1:
		return fmt.Errorf("rmset sampler: frame_skip = %d, want >= 1", c.FrameSkip)
	}
	return nil
}

// RMGroup is one draw: an anchor face with its positive and negative
// candidates, as indices into RMSampler.Faces().
type RMGroup struct {
	Anchor               int
	Positives, Negatives []int
	// Residue is the frame-skip residue ρ of the draw (0 when FrameSkip
	// is 1).
	Residue int
}

// RMSampler draws RMGroups from an RMset index. Build it once with
// NewRMSampler (it precomputes, per video, frame-skip residue and
// person, the frames that can be anchors); Draw is then O(window) and
// safe for concurrent use with separate generators.
//
// The code re-draws the anchor frame until the anchor's face exists and
// its window holds at least NPositive positive candidates, forever if
// there is none (and crashes when the person has no negative). Here the
// valid anchors are enumerated up front: a draw picks a video, a
// residue and a person uniformly among those with at least one valid
// anchor frame, then a frame uniformly among that person's valid frames
// — the code's distribution whenever its loop ends. Persons (and videos)
// without any are left out and reported in Drops.
type RMSampler struct {
	cfg    RMSamplerConfig
	faces  []RMFace
	videos []*rmVideo // with at least one valid view
	drops  Drops
}

type rmVideo struct {
	name  string
	views []*rmView // residues with at least one valid person
}

// rmView is one video at one frame-skip residue.
type rmView struct {
	residue int
	frames  int // distinct sub-sampled frame numbers (the code's len(frameNums))
	people  int // distinct persons (the code's faceNum)
	lo, hi  int // positive window [t+lo, t+hi]
	// byFrame lists the faces of each sub-sampled frame; byPerson the
	// faces of each person sorted by frame.
	byFrame  map[int][]int
	byPerson map[int][]int
	// anchors lists each valid person's valid anchor faces; persons in
	// ascending id order.
	persons []int
	anchors map[int][]int
}

// NewRMSampler indexes faces. Two faces of the same person in the same
// frame of a video are an error naming them.
func NewRMSampler(faces []RMFace, cfg RMSamplerConfig) (*RMSampler, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(faces) == 0 {
		return nil, errors.New("rmset sampler: the index holds no faces")
	}
	s := &RMSampler{cfg: cfg, faces: faces}
	byVideo := map[string][]int{}
	var names []string
	for i, f := range faces {
		if f.Frame < 0 {
			return nil, fmt.Errorf("rmset sampler: face %s (video %s, person %d) has frame %d, want >= 0", f.File, f.Video, f.Person, f.Frame)
		}
		if _, ok := byVideo[f.Video]; !ok {
			names = append(names, f.Video)
		}
		byVideo[f.Video] = append(byVideo[f.Video], i)
	}
	sort.Strings(names)
	for _, name := range names {
		v := &rmVideo{name: name}
		for r := 0; r < cfg.FrameSkip; r++ {
			view, err := s.newView(name, r, byVideo[name])
			if err != nil {
				return nil, err
			}
			if view != nil {
				v.views = append(v.views, view)
			}
		}
		if len(v.views) > 0 {
			s.videos = append(s.videos, v)
		}
	}
	if len(s.videos) == 0 {
		return nil, fmt.Errorf("rmset sampler: no face of the %d in the index can be an anchor: %s; lower n_positive, widen pos_window (or use the dynamic window), or lower neg_gap / anchor_margin",
			len(faces), s.why())
	}
	return s, nil
}

// why names the leading drop reason.
func (s *RMSampler) why() string {
	counts := s.drops.Counts()
	best, n := "", 0
	for r, c := range counts {
		if c > n || (c == n && r < best) {
			best, n = r, c
		}
	}
	return best
}

// window returns the positive window [t+lo, t+hi] for a video of people
// persons.
func (c RMSamplerConfig) window(people int) (lo, hi int) {
	if !c.DynamicWindow {
		return -c.PosWindow, c.PosWindow
	}
	// math.ceil((neighborNum / faceNum - 1) / 2) + 1, Python 3 division
	r := int(math.Ceil((float64(c.NPositive)/float64(people)-1)/2)) + 1
	return -r, r - 1
}

func (s *RMSampler) newView(video string, residue int, idx []int) (*rmView, error) {
	skip := s.cfg.FrameSkip
	v := &rmView{residue: residue, byFrame: map[int][]int{}, byPerson: map[int][]int{}, anchors: map[int][]int{}}
	for _, i := range idx {
		f := s.faces[i]
		if f.Frame%skip != residue {
			continue
		}
		t := f.Frame / skip
		v.byFrame[t] = append(v.byFrame[t], i)
		v.byPerson[f.Person] = append(v.byPerson[f.Person], i)
	}
	if len(v.byFrame) == 0 {
		return nil, nil
	}
	v.frames, v.people = len(v.byFrame), len(v.byPerson)
	v.lo, v.hi = s.cfg.window(v.people)
	id := video
	if skip > 1 {
		id = fmt.Sprintf("%s (frame residue %d of %d)", video, residue, skip)
	}
	for t, fs := range v.byFrame {
		sort.Slice(fs, func(a, b int) bool { return s.faces[fs[a]].Person < s.faces[fs[b]].Person })
		for k := 1; k < len(fs); k++ {
			if s.faces[fs[k]].Person == s.faces[fs[k-1]].Person {
				a, b := s.faces[fs[k-1]], s.faces[fs[k]]
				return nil, fmt.Errorf("rmset sampler: video %s frame %d holds person %d twice (%s and %s)", video, t*skip+residue, a.Person, a.File, b.File)
			}
		}
	}
	persons := make([]int, 0, len(v.byPerson))
	for p, fs := range v.byPerson {
		sort.Slice(fs, func(a, b int) bool { return s.faces[fs[a]].Frame < s.faces[fs[b]].Frame })
		persons = append(persons, p)
	}
	sort.Ints(persons)
	if v.people < 2 {
		s.drops.Add("video with fewer than 2 people (no positive possible)", id)
		return nil, nil
	}
	// frames with a face in (t+lo .. t+hi), by prefix sums over frame
	// numbers
	maxT := 0
	for t := range v.byFrame {
		maxT = max(maxT, t)
	}
	cum := make([]int, maxT+2) // cum[t+1] = faces in frames 0..t
	for t := 0; t <= maxT; t++ {
		cum[t+1] = cum[t] + len(v.byFrame[t])
	}
	inRange := func(a, b int) int { // faces in frames a..b
		a, b = max(a, 0), min(b, maxT)
		if a > b {
			return 0
		}
		return cum[b+1] - cum[a]
	}
	first, last := s.cfg.AnchorMargin, v.frames-s.cfg.AnchorMargin
	for _, p := range persons {
		own := v.byPerson[p]
		var ok []int
		short, lonely := false, false
		for _, i := range own {
			t := s.faces[i].Frame / skip
			if t < first || t > last {
				continue
			}
			// own faces inside the window: own is sorted by frame
			lo := sort.Search(len(own), func(j int) bool { return s.faces[own[j]].Frame/skip >= t+v.lo })
			hi := sort.Search(len(own), func(j int) bool { return s.faces[own[j]].Frame/skip > t+v.hi })
			if inRange(t+v.lo, t+v.hi)-(hi-lo) < s.cfg.NPositive {
				short = true
				continue
			}
			if s.negCount(own, t) == 0 {
				lonely = true
				continue
			}
			ok = append(ok, i)
		}
		if len(ok) == 0 {
			reason := fmt.Sprintf("person never in frames [%d, %d] (the anchor range)", first, last)
			switch {
			case short:
				reason = fmt.Sprintf("person without an anchor frame having >= %d positive candidates in its window", s.cfg.NPositive)
			case lonely:
				reason = fmt.Sprintf("person without own faces more than %d frames from any anchor frame (no negative)", s.cfg.NegGap)
			}
			s.drops.Add(reason, fmt.Sprintf("%s person %d", id, p))
			continue
		}
		v.persons = append(v.persons, p)
		v.anchors[p] = ok
	}
	if len(v.persons) == 0 {
		return nil, nil
	}
	return v, nil
}

// negRange returns the anchor person's faces that are negatives for
// frame t: own[:a] (t' ≤ t − d′) and own[b:] (t' > t + d′).
func (s *RMSampler) negRange(own []int, t int) (a, b int) {
	skip := s.cfg.FrameSkip
	a = sort.Search(len(own), func(j int) bool { return s.faces[own[j]].Frame/skip > t-s.cfg.NegGap })
	b = sort.Search(len(own), func(j int) bool { return s.faces[own[j]].Frame/skip > t+s.cfg.NegGap })
	return a, b
}

func (s *RMSampler) negCount(own []int, t int) int {
	a, b := s.negRange(own, t)
	return a + len(own) - b
}

// Faces returns the index the sampler was built on.
func (s *RMSampler) Faces() []RMFace { return s.faces }

// Config returns the sampler's configuration.
func (s *RMSampler) Config() RMSamplerConfig { return s.cfg }

// Drops reports the videos and persons that can never be anchors, by
// reason.
func (s *RMSampler) Drops() *Drops { return &s.drops }

// Anchors is the number of valid anchor faces over all videos and
// residues.
func (s *RMSampler) Anchors() int {
	n := 0
	for _, v := range s.videos {
		for _, view := range v.views {
			for _, a := range view.anchors {
				n += len(a)
			}
		}
	}
	return n
}

// Candidates returns every positive and negative candidate of anchor
// face i (an index into Faces) at frame-skip residue Frame mod
// FrameSkip, in index order (positives by frame, then person; negatives
// by frame), or an error when i cannot be an anchor.
func (s *RMSampler) Candidates(i int) (pos, neg []int, err error) {
	if i < 0 || i >= len(s.faces) {
		return nil, nil, fmt.Errorf("rmset sampler: face %d out of range [0, %d)", i, len(s.faces))
	}
	f := s.faces[i]
	view := s.view(f.Video, f.Frame%s.cfg.FrameSkip)
	if view == nil || !containsInt(view.anchors[f.Person], i) {
		return nil, nil, fmt.Errorf("rmset sampler: face %s (video %s, person %d, frame %d) is not a valid anchor", f.File, f.Video, f.Person, f.Frame)
	}
	pos, neg = s.candidates(view, i)
	return pos, neg, nil
}

func (s *RMSampler) candidates(v *rmView, anchor int) (pos, neg []int) {
	f := s.faces[anchor]
	t := f.Frame / s.cfg.FrameSkip
	for tt := t + v.lo; tt <= t+v.hi; tt++ {
		for _, j := range v.byFrame[tt] {
			if s.faces[j].Person != f.Person {
				pos = append(pos, j)
			}
		}
	}
	own := v.byPerson[f.Person]
	a, b := s.negRange(own, t)
	neg = append(append(neg, own[:a]...), own[b:]...)
	return pos, neg
}

func (s *RMSampler) view(video string, residue int) *rmView {
	k := sort.Search(len(s.videos), func(j int) bool { return s.videos[j].name >= video })
	if k == len(s.videos) || s.videos[k].name != video {
		return nil
	}
	for _, v := range s.videos[k].views {
		if v.residue == residue {
			return v
		}
	}
	return nil
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Draw picks an anchor and its candidates with rng (see RMSampler for the
// distribution): NPositive distinct positives in random order and
// NNegative negatives drawn with replacement.
func (s *RMSampler) Draw(rng *rand.Rand) RMGroup {
	v := s.videos[rng.IntN(len(s.videos))]
	view := v.views[rng.IntN(len(v.views))]
	p := view.persons[rng.IntN(len(view.persons))]
	as := view.anchors[p]
	anchor := as[rng.IntN(len(as))]
	pos, neg := s.candidates(view, anchor)
	// random.sample(k): a partial Fisher–Yates shuffle
	for k := 0; k < s.cfg.NPositive; k++ {
		j := k + rng.IntN(len(pos)-k)
		pos[k], pos[j] = pos[j], pos[k]
	}
	g := RMGroup{Anchor: anchor, Positives: pos[:s.cfg.NPositive:s.cfg.NPositive], Residue: view.residue}
	g.Negatives = make([]int, s.cfg.NNegative)
	for k := range g.Negatives {
		g.Negatives[k] = neg[rng.IntN(len(neg))]
	}
	return g
}

// Sample is Draw with the generator of (seed, epoch, index) (SampleRNG):
// the same arguments always give the same group.
func (s *RMSampler) Sample(seed int64, epoch, index int) RMGroup {
	return s.Draw(SampleRNG(seed, epoch, index))
}
