package data

import (
	"strings"
	"testing"
)

func TestDropsCountsByReason(t *testing.T) {
	var d Drops
	if d.String() != "" || d.Total() != 0 {
		t.Fatalf("empty Drops: %q, %d", d.String(), d.Total())
	}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		d.Add("label 8 not in the classes", id)
		if i < 2 {
			d.Add("majority unknown", "u"+id)
		}
	}
	if d.Total() != 7 {
		t.Fatalf("Total = %d, want 7", d.Total())
	}
	if c := d.Counts(); c["label 8 not in the classes"] != 5 || c["majority unknown"] != 2 {
		t.Fatalf("Counts = %v", c)
	}
	want := "5 dropped: label 8 not in the classes (a, b, c, ...)\n2 dropped: majority unknown (ua, ub)"
	if got := d.String(); got != want {
		t.Fatalf("String =\n%s\nwant\n%s", got, want)
	}
	if strings.Count(d.String(), "\n") != 1 {
		t.Fatal("want one line per reason")
	}
}
