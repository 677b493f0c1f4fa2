package models

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// The matmul path is bit-identical to timm's Attention on the same
// libtorch (testdata/attention_ref.py), and so is AttentionWithProbs'
// probability tensor.
func TestScaledDotProductAttentionMatchesTimm(t *testing.T) {
	lockThread(t)
	if err := exec.Command(systemPython, "-c", "import torch").Run(); err != nil {
		t.Skipf("PyTorch reference unavailable: %s cannot import torch (install python3-torch; setup-gotch.sh does)", systemPython)
	}
	path := filepath.Join(t.TempDir(), "attention.pt")
	if out, err := exec.Command(systemPython, filepath.Join("testdata", "attention_ref.py"), path).CombinedOutput(); err != nil {
		t.Fatalf("attention_ref.py: %v\n%s", err, out)
	}
	sd, err := ReadStateDict(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Drop()
	q, k, v := tensorOf(t, sd, "q"), tensorOf(t, sd, "k"), tensorOf(t, sd, "v")
	if err := SetAttentionKernel(AttentionMatmul); err != nil {
		t.Fatal(err)
	}
	defer SetAttentionKernel(AttentionAuto)
	out, err := ScaledDotProductAttention(q, k, v, 0.3, false) // eval: no dropout
	if err != nil {
		t.Fatal(err)
	}
	defer out.MustDrop()
	if d := maxAbsDiff(t, out, tensorOf(t, sd, "out")); d != 0 {
		t.Errorf("output differs from timm's sequence by %g", d)
	}
	out2, probs, err := AttentionWithProbs(q, k, v, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.MustDrop()
	defer probs.MustDrop()
	if d := maxAbsDiff(t, probs, tensorOf(t, sd, "probs")); d != 0 {
		t.Errorf("probabilities differ from timm's by %g", d)
	}
	if d := maxAbsDiff(t, out2, out); d != 0 {
		t.Errorf("AttentionWithProbs differs from ScaledDotProductAttention by %g", d)
	}
	if s := out.MustSize(); len(s) != 4 || s[3] != 6 {
		t.Errorf("output shape %v, want [2 3 5 6]", s)
	}
}

// In training the probabilities go through dropout, drawn from libtorch's
// generator exactly as F.dropout would be after the softmax.
func TestScaledDotProductAttentionDropout(t *testing.T) {
	lockThread(t)
	randn := func(shape ...int64) *ts.Tensor {
		x := ts.MustRandn(shape, gotch.Float, gotch.CPU)
		t.Cleanup(x.MustDrop)
		return x
	}
	q, k, v := randn(2, 2, 6, 4), randn(2, 2, 6, 4), randn(2, 2, 6, 4)
	lib.FerManualSeed(11)
	got, err := ScaledDotProductAttention(q, k, v, 0.5, true)
	if err != nil {
		t.Fatal(err)
	}
	defer got.MustDrop()
	lib.FerManualSeed(11)
	qs := q.MustMulScalar(ts.FloatScalar(0.5), false) // 1/√4
	p := qs.MustMatmul(k.MustTranspose(-2, -1, false), true).MustSoftmax(-1, gotch.Invalid, true)
	want := ts.MustDropout(p, 0.5, true).MustMatmul(v, true)
	p.MustDrop()
	defer want.MustDrop()
	if d := maxAbsDiff(t, got, want); d != 0 {
		t.Errorf("dropout path differs from matmul→softmax→dropout→matmul by %g", d)
	}
	eval, err := ScaledDotProductAttention(q, k, v, 0.5, false)
	if err != nil {
		t.Fatal(err)
	}
	defer eval.MustDrop()
	if d := maxAbsDiff(t, eval, got); d == 0 {
		t.Error("train=true gave the dropout-free output")
	}
}

// Kernel selection on a libtorch without scaled_dot_product_attention
// (1.13: fer_sdpa is stubbed): auto falls back to matmul, sdpa is refused
// with the reason, and the probe itself reports the stub's error and
// leaves the thread clean.
func TestAttentionKernelSelection(t *testing.T) {
	lockThread(t)
	for _, s := range []string{"", "auto", "MATMUL", "sdpa"} {
		if _, err := ParseAttentionKernel(s); err != nil {
			t.Errorf("ParseAttentionKernel(%q): %v", s, err)
		}
	}
	if _, err := ParseAttentionKernel("flash"); err == nil {
		t.Error("flash accepted")
	}
	stubbed := false
	for _, s := range fer.StubbedFunctions() {
		stubbed = stubbed || s == sdpaFunction
	}
	if !stubbed {
		// libtorch >= 2.0: the fused kernel must work and be the default
		if err := SDPAUsable(); err != nil {
			t.Fatalf("fer_sdpa compiled but does not run: %v", err)
		}
		if k := CurrentAttentionKernel(); k != AttentionSDPA {
			t.Fatalf("auto chose %s, want sdpa", k)
		}
		return
	}
	err := SDPAUsable()
	if err == nil || !strings.Contains(err.Error(), "not in libtorch") {
		t.Fatalf("SDPAUsable on a libtorch that stubs it: %v", err)
	}
	if k := CurrentAttentionKernel(); k != AttentionMatmul {
		t.Errorf("auto chose %s, want matmul", k)
	}
	if err := SetAttentionKernel(AttentionSDPA); err == nil {
		t.Error("sdpa accepted where it is stubbed")
	}
	// the probe path with the stub list ignored: the call itself fails
	perr := probeSDPA(nil)
	if perr == nil || !strings.Contains(perr.Error(), "fer_sdpa is not available") {
		t.Errorf("probe: %v", perr)
	}
	x := ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU)
	y, err := x.Add(x, true)
	if err != nil {
		t.Fatalf("the failed probe left an error behind: %v", err)
	}
	y.MustDrop()
}
