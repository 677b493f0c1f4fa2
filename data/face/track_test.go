package face

import (
	"image"
	"slices"
	"testing"
)

func box(x, y, s int) image.Rectangle { return image.Rect(x, y, x+s, y+s) }

// TestTracker: first-frame faces get 0, 1, ...; IDs follow moving faces
// by IoU, also when the detection order changes; a face that disappears
// for up to MaxMissed frames keeps its ID; after that its track ends and
// a face appearing there gets a new ID; IDs are never reused.
func TestTracker(t *testing.T) {
	tr := NewTracker(0.3, 2)
	steps := []struct {
		boxes []image.Rectangle
		want  []int
	}{
		{[]image.Rectangle{box(0, 0, 100), box(300, 0, 100)}, []int{0, 1}},
		{[]image.Rectangle{box(310, 5, 100), box(8, 3, 100)}, []int{1, 0}},                      // swapped order, moved
		{[]image.Rectangle{box(16, 6, 100)}, []int{0}},                                          // 1 missed once
		{[]image.Rectangle{box(20, 8, 100), box(600, 0, 80)}, []int{0, 2}},                      // newcomer
		{[]image.Rectangle{box(22, 8, 100), box(318, 8, 100), box(600, 2, 80)}, []int{0, 1, 2}}, // 1 back within 2 misses
		{nil, nil},
		{nil, nil},
		{nil, nil}, // all tracks end (3 misses > 2)
		{[]image.Rectangle{box(22, 8, 100)}, []int{3}},
	}
	for i, s := range steps {
		got := tr.Update(s.boxes)
		if !slices.Equal(got, s.want) && !(len(got) == 0 && len(s.want) == 0) {
			t.Fatalf("step %d: ids %v, want %v", i, got, s.want)
		}
	}
	if tr.Live() != 1 {
		t.Fatalf("%d live tracks", tr.Live())
	}
	// a detection overlapping two tracks goes to the higher IoU, the
	// other track is missed
	tr = NewTracker(0.3, 0)
	tr.Update([]image.Rectangle{box(0, 0, 100), box(60, 0, 100)})
	if got := tr.Update([]image.Rectangle{box(55, 0, 100)}); !slices.Equal(got, []int{1}) {
		t.Fatalf("ambiguous box: %v", got)
	}
	if tr.Live() != 1 {
		t.Fatalf("MaxMissed 0: %d live tracks", tr.Live())
	}
}

// TestMatchAnchors: boxes go to the anchor they overlap most, one box per
// anchor, and boxes overlapping no anchor enough get -1.
func TestMatchAnchors(t *testing.T) {
	anchors := []image.Rectangle{box(0, 0, 100), box(200, 0, 100)}
	got := MatchAnchors(anchors, []image.Rectangle{box(205, 10, 100), box(500, 0, 100), box(10, 0, 100), box(12, 0, 100)}, 0.5)
	if !slices.Equal(got, []int{1, -1, 0, -1}) {
		t.Fatalf("%v", got)
	}
	if IoU(box(0, 0, 10), box(5, 0, 10)) != 50.0/150 || IoU(box(0, 0, 10), box(20, 0, 10)) != 0 || IoU(image.Rectangle{}, box(0, 0, 3)) != 0 {
		t.Fatal("IoU")
	}
}
