package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
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

// The flags bench/compare.sh and bench/gpu.sh rely on parse, and their
// misuse is refused with one clear line before anything is built.
func TestBenchScriptFlags(t *testing.T) {
	out, errs, code := run(t, "bench", "--list")
	if code != 0 || !strings.Contains(out, "resnet18\n") || !strings.Contains(out, "stt\n") {
		t.Fatalf("bench --list: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "smallcnn", "--amp-dtype", "float16"}, "--amp-dtype needs --amp"},
		{[]string{"bench", "smallcnn", "--amp", "--amp-dtype", "fp8"}, `--amp-dtype "fp8"`},
		{[]string{"bench", "smallcnn", "--torch-blas", "openmp"}, "--torch-blas needs --compare"},
		{[]string{"bench", "smallcnn", "--compare", "--torch-blas", "/nonexistent"}, `--torch-blas "/nonexistent"`},
		{[]string{"bench", "stt", "--attention", "flash"}, `attention kernel "flash"`},
	} {
		out, errs, code := run(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want an error with %q\n%s", c.args, code, errs, c.want, out)
		}
	}
	// on a libtorch without scaled_dot_product_attention, asking for it
	// says so
	if !slices.Contains(fer.StubbedFunctions(), "fer_sdpa") {
		return
	}
	_, errs, code = run(t, "bench", "stt", "--attention", "sdpa")
	if code == 0 || !strings.Contains(errs, "not in libtorch") {
		t.Errorf("--attention sdpa on libtorch %s: exit %d, %q", fer.LibtorchVersion(), code, errs)
	}
}
