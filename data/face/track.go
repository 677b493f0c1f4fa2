package face

import (
	"image"
	"sort"
)

// Tracker carries face IDs from frame to frame by IoU: each frame's boxes
// are matched to the live tracks' last boxes greedily, highest IoU first
// (the IOU tracker of Bochinski et al. 2017); a box that matches no track
// with IoU >= MinIoU starts a new track with a new ID (IDs count up from
// 0 in order of appearance, so the first frame's faces get 0, 1, ...); a
// track that goes MaxMissed frames without a match ends and its ID is
// never reused.
type Tracker struct {
	MinIoU    float64
	MaxMissed int
	tracks    []track
	next      int
}

type track struct {
	id     int
	box    image.Rectangle
	missed int
}

// NewTracker returns a tracker; minIoU 0 means 0.3, maxMissed < 0 means
// 0 (a track ends at its first miss).
func NewTracker(minIoU float64, maxMissed int) *Tracker {
	if minIoU <= 0 {
		minIoU = 0.3
	}
	return &Tracker{MinIoU: minIoU, MaxMissed: max(maxMissed, 0)}
}

// Update assigns an ID to each box of the next frame.
func (t *Tracker) Update(boxes []image.Rectangle) []int {
	last := make([]image.Rectangle, len(t.tracks))
	for i, tr := range t.tracks {
		last[i] = tr.box
	}
	match := greedyMatch(last, boxes, t.MinIoU)
	ids := make([]int, len(boxes))
	used := make([]bool, len(t.tracks))
	for j := range boxes {
		if i := match[j]; i >= 0 {
			ids[j] = t.tracks[i].id
			t.tracks[i].box, t.tracks[i].missed = boxes[j], 0
			used[i] = true
		}
	}
	kept := t.tracks[:0]
	for i, tr := range t.tracks {
		if !used[i] {
			tr.missed++
			if tr.missed > t.MaxMissed {
				continue
			}
		}
		kept = append(kept, tr)
	}
	t.tracks = kept
	for j := range boxes {
		if match[j] < 0 {
			ids[j] = t.next
			t.tracks = append(t.tracks, track{id: t.next, box: boxes[j]})
			t.next++
		}
	}
	return ids
}

// Live returns the number of live tracks.
func (t *Tracker) Live() int { return len(t.tracks) }

// MatchAnchors matches boxes to fixed anchor boxes (the first frame's
// faces of an RMset video): result[j] is the anchor index of box j, or
// -1 when no anchor overlaps it with IoU >= minIoU; each anchor takes at
// most one box, greedily by IoU.
func MatchAnchors(anchors, boxes []image.Rectangle, minIoU float64) []int {
	return greedyMatch(anchors, boxes, minIoU)
}

// greedyMatch pairs boxes with refs by descending IoU (ties: lower ref,
// then lower box index), each used once; unmatched boxes get -1.
func greedyMatch(refs, boxes []image.Rectangle, minIoU float64) []int {
	type pair struct {
		iou  float64
		r, b int
	}
	var ps []pair
	for r, rb := range refs {
		for b, bb := range boxes {
			if v := IoU(rb, bb); v >= minIoU && v > 0 {
				ps = append(ps, pair{v, r, b})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].iou != ps[j].iou {
			return ps[i].iou > ps[j].iou
		}
		if ps[i].r != ps[j].r {
			return ps[i].r < ps[j].r
		}
		return ps[i].b < ps[j].b
	})
	out := make([]int, len(boxes))
	for i := range out {
		out[i] = -1
	}
	usedR := make([]bool, len(refs))
	for _, p := range ps {
		if usedR[p.r] || out[p.b] >= 0 {
			continue
		}
		usedR[p.r], out[p.b] = true, p.r
	}
	return out
}
