package plots

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testGroup is an anchor with 3 positives and 3 negatives whose anchor
// row puts 0.25 on each positive and 0.25/3 on each negative; the other
// rows are uniform over the others.
func testGroup() AttentionGroup {
	g := AttentionGroup{Anchor: "a.png", Positives: []string{"p1.png", "p2.png", "p3.png"}, Negatives: []string{"n1.png", "n2.png", "n3.png"}}
	n := 7
	for i := 0; i < n; i++ {
		row := make([]float64, n)
		for j := range row {
			switch {
			case i == j:
			case i == 0 && j <= 3:
				row[j] = 0.25
			case i == 0:
				row[j] = 0.25 / 3
			default:
				row[j] = 1.0 / 6
			}
		}
		g.Attention = append(g.Attention, row)
	}
	return g
}

// TestAttentionFigure: Fig. 4 from a dump, with the faces found next to
// it drawn above the columns, and the anchor's mean attention to
// positives and negatives.
func TestAttentionFigure(t *testing.T) {
	dir := t.TempDir()
	g := testGroup()
	for i, f := range append(append([]string{g.Anchor}, g.Positives...), g.Negatives...) {
		img := image.NewRGBA(image.Rect(0, 0, 24, 24))
		for y := 0; y < 24; y++ {
			for x := 0; x < 24; x++ {
				img.Set(x, y, color.RGBA{R: uint8(30 * i), G: uint8(8 * x), B: uint8(8 * y), A: 255})
			}
		}
		fh, err := os.Create(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(fh, img); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	dump := filepath.Join(dir, "attention.json")
	if err := WriteAttentionDump(dump, &AttentionDump{Model: "rmfer", Tau: 1, SelfMasking: true, Groups: []AttentionGroup{g}}); err != nil {
		t.Fatal(err)
	}
	pos, neg := AttentionMeans(g)
	if math.Abs(pos-0.25) > 1e-12 || math.Abs(neg-0.25/3) > 1e-12 {
		t.Errorf("means %v %v", pos, neg)
	}
	out := figPath(t, "attention.png")
	if err := AttentionFromDump(out, dump, 0, true, ""); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, out, Width, Width+0.6*72)
	plain := figPath(t, "attention_nofaces.png")
	if err := AttentionFromDump(plain, dump, 0, false, "no faces"); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, plain, Width, Width)
	if err := AttentionFromDump(plain, dump, 1, false, ""); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("group 1 of 1: err = %v", err)
	}
}

// TestAttentionDumpErrors: dumps that are not row-softmax matrices of the
// group's size are refused with the reason.
func TestAttentionDumpErrors(t *testing.T) {
	dir := t.TempDir()
	bad := testGroup()
	bad.Attention[2][3] += 0.5
	if err := WriteAttentionDump(filepath.Join(dir, "x.json"), &AttentionDump{Groups: []AttentionGroup{bad}}); err == nil || !strings.Contains(err.Error(), "sums to") {
		t.Errorf("row not summing to 1: err = %v", err)
	}
	short := testGroup()
	short.Negatives = short.Negatives[:2]
	if err := short.check(); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("wrong size: err = %v", err)
	}
	p := filepath.Join(dir, "other.json")
	os.WriteFile(p, []byte(`{"format": "something/1", "groups": []}`), 0o644)
	if _, err := ReadAttentionDump(p); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("wrong format: err = %v", err)
	}
}
