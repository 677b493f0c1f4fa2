package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/plots"
)

// TestPlotAttention: `fercli plot attention` draws a dump's group and
// prints the anchor's mean attention to positives and negatives.
func TestPlotAttention(t *testing.T) {
	dir := t.TempDir()
	g := plots.AttentionGroup{Anchor: "a.jpg", Positives: []string{"p1.jpg", "p2.jpg"}, Negatives: []string{"n1.jpg", "n2.jpg"},
		Attention: [][]float64{
			{0, 0.4, 0.4, 0.1, 0.1},
			{0.25, 0, 0.25, 0.25, 0.25},
			{0.25, 0.25, 0, 0.25, 0.25},
			{0.25, 0.25, 0.25, 0, 0.25},
			{0.25, 0.25, 0.25, 0.25, 0},
		}}
	dump := filepath.Join(dir, "att.json")
	if err := plots.WriteAttentionDump(dump, &plots.AttentionDump{Model: "rmfer", Tau: 1, SelfMasking: true, Groups: []plots.AttentionGroup{g}}); err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, "fig4.png")
	out, err := runPlot(t, "attention", "-o", o, dump)
	if err != nil {
		t.Fatal(err)
	}
	// the faces are missing: no strip, a square figure
	checkPNG(t, o, plots.Width, plots.Width)
	if !strings.Contains(out, "positives 0.4000, negatives 0.1000") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := runPlot(t, "attention", "--group", "3", dump); err == nil || !strings.Contains(err.Error(), "groups 0..0") {
		t.Errorf("--group 3 of 1: err = %v", err)
	}
}
