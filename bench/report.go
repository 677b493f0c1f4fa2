package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteReport prints one run: per phase and framework the median, min
// and max step time, the throughput at the median, peak memory, and the
// fer/PyTorch ratio.
func WriteReport(w io.Writer, r *Result) error {
	in := fmt.Sprintf("3×%d×%d", r.Height, r.Width)
	if r.Frames > 0 {
		in = fmt.Sprintf("%d×%s", r.Frames, in)
	}
	amp := "off"
	if r.AMP {
		amp = "on"
	}
	fmt.Fprintf(w, "%s on %s, %d threads, batch %d of %s, optimizer %s, amp %s, %d warm-up + %d timed steps in %d rounds\n",
		r.Model, r.Device, r.Threads, r.Batch, in, r.Optimizer, amp, r.Warmup, r.Steps, len(Chunks(r.Steps, r.Rounds)))
	params := fmt.Sprintf("parameters: fer %d", r.FerParams)
	if r.TorchParams > 0 {
		params += fmt.Sprintf(", PyTorch %d", r.TorchParams)
	}
	if r.FerParams > 0 {
		fmt.Fprintln(w, params)
	}
	if r.Torch != nil {
		fmt.Fprintf(w, "PyTorch %s (torchvision %s, python %s, %d threads)\n", r.Torch.Torch, r.Torch.Torchvision, r.Torch.Python, r.Torch.Threads)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tframework\tmedian\tmin\tmax\tthroughput\tpeak RSS\tratio fer/pt\tof mins\t")
	for _, p := range r.Phases {
		unit := p.Unit + "/s"
		gpu := func(b int64) string {
			if b < 0 {
				return ""
			}
			return " (GPU " + MiB(b) + ")"
		}
		fmt.Fprintf(tw, "%s\tfer\t%s\t%s\t%s\t%.1f %s\t%s%s\t%s\t%s\t\n", p.Phase, fmtSec(p.Fer.Median), fmtSec(p.Fer.Min), fmtSec(p.Fer.Max),
			p.Throughput(false), unit, MiB(p.FerPeakRSS), gpu(p.FerGPU), fmtRatio(p.Ratio), minRatio(p))
		if p.Torch.N > 0 {
			fmt.Fprintf(tw, "\tpytorch\t%s\t%s\t%s\t%.1f %s\t%s%s\t\t\t\n", fmtSec(p.Torch.Median), fmtSec(p.Torch.Min), fmtSec(p.Torch.Max),
				p.Throughput(true), unit, MiB(p.TorchPeakRSS), gpu(p.TorchGPU))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Phase(PhaseData) != nil {
		impl := "fer's data package (libjpeg-turbo decode + Pillow-exact resampling, data/imaging)"
		fmt.Fprintf(w, "data: %s, %d workers, %d timed batches in %d rounds; throughput and ratio from the mean batch time (the sustained rate: prefetching hands out some batches at once)\n",
			impl, r.Workers, r.DataSteps, len(Chunks(r.DataSteps, r.DataRounds)))
	}
	fmt.Fprintf(w, "load average (1/5/15 min): %.2f %.2f %.2f at start, %.2f %.2f %.2f at end\n",
		r.LoadBefore[0], r.LoadBefore[1], r.LoadBefore[2], r.LoadAfter[0], r.LoadAfter[1], r.LoadAfter[2])
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func fmtSec(s float64) string {
	switch {
	case s == 0:
		return "–"
	case s < 1e-3:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.3f s", s)
}

// WriteSummary prints a Markdown table with one row per run: median step
// times of both frameworks and their ratio for each phase, the ratio of
// the fastest steps in parentheses (data: of the mean batch times).
func WriteSummary(w io.Writer, rs []*Result) error {
	var b strings.Builder
	b.WriteString("| model | threads | batch | input | amp | forward fer | forward PyTorch | ratio | train fer | train PyTorch | ratio | data fer | data PyTorch | ratio |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		in := fmt.Sprintf("%d×%d", r.Height, r.Width)
		if r.Frames > 0 {
			in = fmt.Sprintf("%d×%s", r.Frames, in)
		}
		model := r.Model
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %v |", model, r.Threads, r.Batch, in, r.AMP)
		for _, name := range AllPhases {
			p := r.Phase(name)
			if p == nil {
				b.WriteString(" | | |")
				continue
			}
			if name == PhaseData {
				fmt.Fprintf(&b, " %.0f %s/s | %s | %s |", p.Throughput(false), p.Unit, torchThroughput(p), ratioCell(p))
				continue
			}
			tt := "–"
			if p.Torch.N > 0 {
				tt = fmtSec(p.Torch.Median)
			}
			fmt.Fprintf(&b, " %s | %s | %s |", fmtSec(p.Fer.Median), tt, ratioCell(p))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func minRatio(p PhaseResult) string {
	if p.Phase == PhaseData {
		return "–"
	}
	return fmtRatio(p.RatioMin)
}

// ratioCell is "median ratio (ratio of minimums)".
func ratioCell(p *PhaseResult) string {
	if p.RatioMin > 0 && p.Phase != PhaseData {
		return fmtRatio(p.Ratio) + " (" + fmtRatio(p.RatioMin) + ")"
	}
	return fmtRatio(p.Ratio)
}

func torchThroughput(p *PhaseResult) string {
	if p.Torch.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %s/s", p.Throughput(true), p.Unit)
}

// AppendJSON appends r as one JSON line to path.
func AppendJSON(path string, r any) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	if err := json.NewEncoder(f).Encode(r); err != nil {
		f.Close()
		return fmt.Errorf("results file %s: %w", path, err)
	}
	return f.Close()
}

// ReadResults reads the runs of a JSON-lines results file (AppendJSON),
// skipping soak records.
func ReadResults(path string) ([]*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("results file: %w", err)
	}
	defer f.Close()
	var out []*Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var probe struct {
			Kind  string `json:"kind"`
			Model string `json:"model"`
		}
		if err := json.Unmarshal([]byte(text), &probe); err != nil {
			return nil, fmt.Errorf("results file %s line %d: %w", path, line, err)
		}
		if probe.Kind == "soak" {
			continue
		}
		r := new(Result)
		if err := json.Unmarshal([]byte(text), r); err != nil {
			return nil, fmt.Errorf("results file %s line %d: %w", path, line, err)
		}
		if r.Model == "" {
			return nil, fmt.Errorf("results file %s line %d: no model: not a bench result", path, line)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("results file %s: %w", path, err)
	}
	return out, nil
}
