package bench

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func sampleResult() *Result {
	return &Result{
		Model: "resnet18", Device: "cpu", Threads: 2, Batch: 16, Height: 112, Width: 112, Workers: 2,
		Optimizer: "sgd", Warmup: 3, Steps: 4, Rounds: 2, FerParams: 10, TorchParams: 10,
		Phases: []PhaseResult{
			{Phase: PhaseForward, Items: 16, Unit: "samples", Fer: Stats{N: 4, Median: 0.1, Min: 0.09, Max: 0.2},
				Torch: Stats{N: 4, Median: 0.125, Min: 0.1, Max: 0.3}, Ratio: 0.8, FerGPU: -1, TorchGPU: -1},
			{Phase: PhaseData, Items: 16, Unit: "images", Fer: Stats{N: 4, Median: 0.015, Mean: 0.02}, Torch: Stats{N: 4, Median: 0.01, Mean: 0.04}, Ratio: 0.5, FerGPU: -1, TorchGPU: -1},
		},
	}
}

func TestWriteSummaryRow(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, []*Result{sampleResult()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	// forward 100 ms vs 125 ms; no train phase; data 16/0.02 = 800 vs 400 images/s.
	want := "| resnet18 | 2 | 16 | 112×112 | false | 100.0 ms | 125.0 ms | 0.80 | | | | 800 images/s | 400 images/s | 0.50 |"
	if lines[2] != want {
		t.Errorf("row\n%s\nwant\n%s", lines[2], want)
	}
}

func TestWriteReportAndJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	var b bytes.Buffer
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"resnet18 on cpu", "160.0 samples/s", "128.0 samples/s", "0.80", "800.0 images/s"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := AppendJSON(path, r); err != nil {
		t.Fatal(err)
	}
	if err := AppendJSON(path, &SoakResult{Kind: "soak", Model: "smallcnn"}); err != nil {
		t.Fatal(err)
	}
	if err := AppendJSON(path, r); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[1].Phase(PhaseForward).Torch.Median != 0.125 || rs[0].Phase(PhaseTrain) != nil {
		t.Errorf("read back %d results: %+v", len(rs), rs)
	}
}
