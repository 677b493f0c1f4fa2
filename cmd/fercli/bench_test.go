package main

import (
	"slices"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"resnet18", "--batch", "8", "--compare", "--size=64x64"}, []string{"--batch", "8", "--compare", "--size=64x64", "resnet18"}},
		{[]string{"--soak", "--soak-steps", "200"}, []string{"--soak", "--soak-steps", "200"}},
		{[]string{"stt", "--amp", "--frames", "8", "--", "--weird"}, []string{"--amp", "--frames", "8", "--", "stt", "--weird"}},
		{[]string{"resnet18", "-h"}, []string{"-h", "resnet18"}},
	} {
		if got := flagsFirst(c.in, benchFlags); !slices.Equal(got, c.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string][2]int{"112x112": {112, 112}, "64X48": {64, 48}, "96": {96, 96}} {
		h, w, err := parseSize(in)
		if err != nil || h != want[0] || w != want[1] {
			t.Errorf("parseSize(%q) = %d, %d, %v", in, h, w, err)
		}
	}
	for _, bad := range []string{"", "x", "0x4", "axb", "-3x3"} {
		if _, _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
