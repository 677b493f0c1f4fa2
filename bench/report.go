package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
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
		if r.AMPDType != "" {
			amp = r.AMPDType
		}
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
	if r.FerBLAS != "" {
		fmt.Fprintf(w, "fer BLAS: %s\n", r.FerBLAS)
	}
	if r.OMPWait != "" {
		fmt.Fprintf(w, "OpenMP wait (both sides): %s\n", r.OMPWait)
	}
	if r.Attention != "" {
		fmt.Fprintf(w, "fer attention: %s\n", r.Attention)
	}
	for _, ti := range r.torchInfos() {
		label := ""
		if ti.Label != "" {
			label = ti.Label + ": "
		}
		fmt.Fprintf(w, "%sPyTorch %s (torchvision %s, python %s, %d threads", label, ti.Torch, ti.Torchvision, ti.Python, ti.Threads)
		if ti.BLAS != "" {
			fmt.Fprintf(w, ", BLAS %s, %s", ti.BLAS, parallelName(ti.BLASParallel))
		}
		fmt.Fprintln(w, ")")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tframework\tmedian\tmin\tmax\tthroughput\tGFLOP/s\tpeak RSS\tratio fer/it\tof mins\t")
	gpu := func(b int64) string {
		if b < 0 {
			return ""
		}
		return " (GPU " + MiB(b) + ")"
	}
	gflops := func(p PhaseResult, s Stats) string {
		if p.FLOPs <= 0 || s.Median <= 0 {
			return ""
		}
		return fmt.Sprintf("%.1f", float64(p.FLOPs)/s.Median/1e9)
	}
	torchName := "pytorch"
	if r.Torch != nil && r.Torch.Label != "" {
		torchName = r.Torch.Label
	}
	for _, p := range r.Phases {
		unit := p.Unit + "/s"
		fmt.Fprintf(tw, "%s\tfer\t%s\t%s\t%s\t%.1f %s\t%s\t%s%s\t\t\t\n", p.Phase, fmtSec(p.Fer.Median), fmtSec(p.Fer.Min), fmtSec(p.Fer.Max),
			p.Throughput(false), unit, gflops(p, p.Fer), MiB(p.FerPeakRSS), gpu(p.FerGPU))
		if p.Torch.N > 0 {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%.1f %s\t%s\t%s%s\t%s\t%s\t\n", torchName, fmtSec(p.Torch.Median), fmtSec(p.Torch.Min), fmtSec(p.Torch.Max),
				p.Throughput(true), unit, gflops(p, p.Torch), MiB(p.TorchPeakRSS), gpu(p.TorchGPU), fmtRatio(p.Ratio), minRatio(p))
		}
		for _, x := range p.Extra {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%.1f %s\t%s\t%s%s\t%s\t%s\t\n", x.Label, fmtSec(x.Stats.Median), fmtSec(x.Stats.Min), fmtSec(x.Stats.Max),
				x.Stats.Throughput(p.Items), unit, gflops(p, x.Stats), MiB(x.PeakRSS), gpu(x.GPU), fmtRatio(x.Ratio), fmtRatio(x.RatioMin))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeRoofline(w, r)
	writeOps(w, r)
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

// torchInfos is the PyTorch sides in order.
func (r *Result) torchInfos() []TorchInfo {
	if r.Torch == nil {
		return nil
	}
	return append([]TorchInfo{*r.Torch}, r.Extra...)
}

func parallelName(p int) string {
	switch p {
	case 0:
		return "sequential"
	case 1:
		return "pthreads"
	case 2:
		return "OpenMP"
	}
	return "not OpenBLAS"
}

// writeRoofline prints, per model phase, the FLOPs per step, fer's
// achieved rate against the roof, and the dispatched ops per step.
func writeRoofline(w io.Writer, r *Result) {
	if r.Peak == nil {
		return
	}
	roof, what := r.Peak.Roof(r.AMP)
	fmt.Fprintf(w, "roof: %.1f GFLOP/s (%s", roof, what)
	if roof != r.Peak.GFLOPS {
		fmt.Fprintf(w, "; measured %s %d×%d matmul: %.1f GFLOP/s", r.Peak.DType, r.Peak.N, r.Peak.N, r.Peak.GFLOPS)
	}
	if r.Peak.First > 0 && r.Peak.Last > 0 {
		fmt.Fprintf(w, "; best of %.1f before and %.1f after the model phases", r.Peak.First, r.Peak.Last)
	}
	fmt.Fprintln(w, ")")
	util := "of roof"
	if r.AMP && r.Peak.SpecTFLOPS > 0 {
		util = "MFU"
	}
	for _, p := range r.Phases {
		if p.FLOPs <= 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %.3f GFLOP/step (%d GEMM-like ops, 2 FLOPs per multiply-accumulate) -> fer %.1f GFLOP/s = %.1f%% %s; %d dispatched ops/step, %.1f µs per op\n",
			p.Phase, float64(p.FLOPs)/1e9, p.GEMMs, p.GFLOPS(false), 100*Utilization(p.FLOPs, p.Fer.Median, roof), util, p.Ops, 1e6*p.Fer.Median/float64(max(p.Ops, 1)))
	}
}

// writeOps prints the ops of one step by name, fer beside PyTorch, where
// they differ (--ops).
func writeOps(w io.Writer, r *Result) {
	for _, p := range r.Phases {
		if p.FerOps == nil {
			continue
		}
		names := map[string]bool{}
		for n := range p.FerOps {
			names[n] = true
		}
		for n := range p.TorchOps {
			names[n] = true
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		slices.Sort(sorted)
		var ft, tt int64
		fmt.Fprintf(w, "%s: outermost ops per step (fer / PyTorch), where they differ:\n", p.Phase)
		for _, n := range sorted {
			f, t := p.FerOps[n], p.TorchOps[n]
			ft += f
			tt += t
			if f != t {
				fmt.Fprintf(w, "  %-40s %5d %5d\n", n, f, t)
			}
		}
		fmt.Fprintf(w, "  %-40s %5d %5d\n", "total", ft, tt)
	}
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
// times of fer and each PyTorch side and their ratio for each phase, the
// ratio of the fastest steps in parentheses (data: of the mean batch
// times); then, for runs with FLOP counts, the roofline table.
func WriteSummary(w io.Writer, rs []*Result) error {
	var extras []string // labels of further PyTorch sides, first-seen order
	for _, r := range rs {
		for _, x := range r.Extra {
			if !slices.Contains(extras, x.Label) {
				extras = append(extras, x.Label)
			}
		}
	}
	primary := "PyTorch"
	for _, r := range rs {
		if r.Torch != nil && r.Torch.Label != "" {
			primary = "PyTorch " + r.Torch.Label
			break
		}
	}
	var b strings.Builder
	b.WriteString("| model | threads | batch | input | amp |")
	ncol := 5
	for _, ph := range []string{PhaseForward, PhaseTrain} {
		fmt.Fprintf(&b, " %s fer | %s %s | ratio |", ph, ph, primary)
		ncol += 3
		for _, l := range extras {
			fmt.Fprintf(&b, " %s PyTorch %s | ratio |", ph, l)
			ncol += 2
		}
	}
	b.WriteString(" data fer | data PyTorch | ratio |\n")
	ncol += 3
	b.WriteString("|" + strings.Repeat("---|", ncol) + "\n")
	for _, r := range rs {
		in := fmt.Sprintf("%d×%d", r.Height, r.Width)
		if r.Frames > 0 {
			in = fmt.Sprintf("%d×%s", r.Frames, in)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s |", r.Model, r.Threads, r.Batch, in, ampCell(r))
		for _, name := range []string{PhaseForward, PhaseTrain} {
			p := r.Phase(name)
			if p == nil {
				b.WriteString(" | | |" + strings.Repeat(" | |", len(extras)))
				continue
			}
			tt := "–"
			if p.Torch.N > 0 {
				tt = fmtSec(p.Torch.Median)
			}
			fmt.Fprintf(&b, " %s | %s | %s |", fmtSec(p.Fer.Median), tt, ratioCell(p))
			for _, l := range extras {
				x := p.extra(l)
				if x == nil {
					b.WriteString(" | |")
					continue
				}
				fmt.Fprintf(&b, " %s | %s (%s) |", fmtSec(x.Stats.Median), fmtRatio(x.Ratio), fmtRatio(x.RatioMin))
			}
		}
		if p := r.Phase(PhaseData); p != nil {
			fmt.Fprintf(&b, " %.0f %s/s | %s | %s |", p.Throughput(false), p.Unit, torchThroughput(p), ratioCell(p))
		} else {
			b.WriteString(" | | |")
		}
		b.WriteString("\n")
	}
	writeRooflineSummary(&b, rs)
	_, err := io.WriteString(w, b.String())
	return err
}

// ampCell is "false", or the autocast dtype ("true" for results written
// before it was recorded).
func ampCell(r *Result) string {
	if r.AMP && r.AMPDType != "" {
		return r.AMPDType
	}
	return fmt.Sprint(r.AMP)
}

// extra returns the further PyTorch side labelled label, nil if absent.
func (p *PhaseResult) extra(label string) *SideResult {
	for i := range p.Extra {
		if p.Extra[i].Label == label {
			return &p.Extra[i]
		}
	}
	return nil
}

// writeRooflineSummary is the Markdown roofline table of the runs that
// counted FLOPs.
func writeRooflineSummary(b *strings.Builder, rs []*Result) {
	var rows []*Result
	for _, r := range rs {
		if r.Peak != nil {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n| model | amp | roof GFLOP/s | forward GFLOP/step | forward fer GFLOP/s | % of roof | train GFLOP/step | train fer GFLOP/s | % of roof | train ops/step | µs/op |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		roof, _ := r.Peak.Roof(r.AMP)
		fmt.Fprintf(b, "| %s | %s | %.0f |", r.Model, ampCell(r), roof)
		for _, name := range []string{PhaseForward, PhaseTrain} {
			p := r.Phase(name)
			if p == nil || p.FLOPs <= 0 {
				b.WriteString(" | | |")
				continue
			}
			fmt.Fprintf(b, " %.3f | %.1f | %.1f%% |", float64(p.FLOPs)/1e9, p.GFLOPS(false), 100*Utilization(p.FLOPs, p.Fer.Median, roof))
		}
		if p := r.Phase(PhaseTrain); p != nil && p.Ops > 0 {
			fmt.Fprintf(b, " %d | %.1f |\n", p.Ops, 1e6*p.Fer.Median/float64(p.Ops))
		} else {
			b.WriteString(" | |\n")
		}
	}
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
