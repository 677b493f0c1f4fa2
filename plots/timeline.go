package plots

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Track is one face track of a video: its class probabilities at each
// analysed frame.
type Track struct {
	ID     int
	Frames []int
	Times  []float64   // seconds
	Probs  [][]float64 // per frame, per class
}

// VideoResults are `fercli predict`'s rows for one video.
type VideoResults struct {
	File    string
	Classes []string
	Tracks  []*Track // by ID
}

// auColumn matches action-unit columns (AU12, au3), which follow the
// class columns in predict's CSV.
var auColumn = regexp.MustCompile(`^(AU|au)\d+$`)

// ReadPredictions reads `fercli predict` output on videos: CSV with a
// header (file, frame, time, track, ..., prediction, the class columns,
// then optional valence, arousal and AU columns) or JSON lines (file,
// frame, time, track, probs {class: p}). Rows are grouped by file, then
// track. Errors name the file and line.
func ReadPredictions(path string) ([]*VideoResults, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("predictions %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	first, err := br.Peek(1)
	if err != nil {
		return nil, fmt.Errorf("predictions %s: empty file", path)
	}
	var rows []predRow
	var classes []string
	if first[0] == '{' {
		rows, classes, err = readPredJSON(br)
	} else {
		rows, classes, err = readPredCSV(br)
	}
	if err != nil {
		return nil, fmt.Errorf("predictions %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("predictions %s: no rows", path)
	}
	byFile := map[string]*VideoResults{}
	var order []*VideoResults
	tracks := map[string]map[int]*Track{}
	for _, r := range rows {
		v := byFile[r.file]
		if v == nil {
			v = &VideoResults{File: r.file, Classes: classes}
			byFile[r.file] = v
			order = append(order, v)
			tracks[r.file] = map[int]*Track{}
		}
		tr := tracks[r.file][r.track]
		if tr == nil {
			tr = &Track{ID: r.track}
			tracks[r.file][r.track] = tr
			v.Tracks = append(v.Tracks, tr)
		}
		tr.Frames = append(tr.Frames, r.frame)
		tr.Times = append(tr.Times, r.time)
		tr.Probs = append(tr.Probs, r.probs)
	}
	for _, v := range order {
		sort.Slice(v.Tracks, func(i, j int) bool { return v.Tracks[i].ID < v.Tracks[j].ID })
	}
	return order, nil
}

type predRow struct {
	file         string
	frame, track int
	time         float64
	probs        []float64
}

func readPredCSV(r io.Reader) ([]predRow, []string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"file", "frame", "time", "track", "prediction"} {
		if _, ok := col[need]; !ok {
			if need != "prediction" && col["face"] > 0 {
				return nil, nil, fmt.Errorf("line 1: photo results (no %q column): a timeline needs fercli predict's rows for a video", need)
			}
			return nil, nil, fmt.Errorf("line 1: no %q column (header %q): is this fercli predict's CSV?", need, strings.Join(head, ","))
		}
	}
	first := col["prediction"] + 1
	end := first
	for end < len(head) && head[end] != "valence" && head[end] != "arousal" && !auColumn.MatchString(head[end]) {
		end++
	}
	if end == first {
		return nil, nil, fmt.Errorf("line 1: no class columns after \"prediction\"")
	}
	classes := append([]string(nil), head[first:end]...)
	var rows []predRow
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) != len(head) {
			return nil, nil, fmt.Errorf("line %d: %d fields, the header has %d", line, len(rec), len(head))
		}
		r := predRow{file: rec[col["file"]], probs: make([]float64, len(classes))}
		var e1, e2, e3 error
		r.frame, e1 = strconv.Atoi(rec[col["frame"]])
		r.track, e2 = strconv.Atoi(rec[col["track"]])
		r.time, e3 = strconv.ParseFloat(rec[col["time"]], 64)
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		for k := range classes {
			if r.probs[k], err = strconv.ParseFloat(rec[first+k], 64); err != nil {
				return nil, nil, fmt.Errorf("line %d, column %s: %w", line, classes[k], err)
			}
		}
		rows = append(rows, r)
	}
	return rows, classes, nil
}

func readPredJSON(r io.Reader) ([]predRow, []string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var rows []predRow
	var classes []string
	for line := 1; sc.Scan(); line++ {
		b := strings.TrimSpace(sc.Text())
		if b == "" {
			continue
		}
		var m struct {
			File  string             `json:"file"`
			Frame *int               `json:"frame"`
			Time  *float64           `json:"time"`
			Track *int               `json:"track"`
			Probs map[string]float64 `json:"probs"`
		}
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		if m.Frame == nil || m.Time == nil || m.Track == nil {
			return nil, nil, fmt.Errorf("line %d: no frame, time or track: a timeline needs fercli predict's rows for a video", line)
		}
		if classes == nil {
			for c := range m.Probs {
				classes = append(classes, c)
			}
			sort.Strings(classes)
			if len(classes) == 0 {
				return nil, nil, fmt.Errorf("line %d: no probs", line)
			}
		}
		r := predRow{file: m.File, frame: *m.Frame, time: *m.Time, track: *m.Track, probs: make([]float64, len(classes))}
		for k, c := range classes {
			p, ok := m.Probs[c]
			if !ok {
				return nil, nil, fmt.Errorf("line %d: no probability for class %q", line, c)
			}
			r.probs[k] = p
		}
		rows = append(rows, r)
	}
	return rows, classes, sc.Err()
}

// TimelineOptions select what Timeline draws.
type TimelineOptions struct {
	// MaxTracks is the number of tracks drawn, the longest ones (0: 6).
	MaxTracks int
	// Smooth > 1 averages each class over a centred window of that many
	// analysed frames of the track.
	Smooth int
}

// TimelineSize is the figure size for a number of track panels.
func TimelineSize(panels int) (w, h vg.Length) {
	return 8 * vg.Inch, 2.1*vg.Inch*vg.Length(panels) + 0.5*vg.Inch
}

// Timeline draws each track's expression probabilities over time, one
// panel per track (shared time axis), one line per class; a gap in a
// track (frames where the face was not found) breaks its lines.
func Timeline(path, title string, v *VideoResults, o TimelineOptions) error {
	if o.MaxTracks <= 0 {
		o.MaxTracks = 6
	}
	tracks := append([]*Track(nil), v.Tracks...)
	if len(tracks) == 0 {
		return fmt.Errorf("plot %s: %s has no tracks", path, v.File)
	}
	if len(tracks) > o.MaxTracks {
		sort.SliceStable(tracks, func(i, j int) bool { return len(tracks[i].Frames) > len(tracks[j].Frames) })
		tracks = tracks[:o.MaxTracks]
		sort.Slice(tracks, func(i, j int) bool { return tracks[i].ID < tracks[j].ID })
	}
	// the typical time between analysed frames, to find gaps
	var steps []float64
	for _, tr := range v.Tracks {
		for i := 1; i < len(tr.Times); i++ {
			if d := tr.Times[i] - tr.Times[i-1]; d > 0 {
				steps = append(steps, d)
			}
		}
	}
	step := math.Inf(1)
	if len(steps) > 0 {
		sort.Float64s(steps)
		step = steps[len(steps)/2]
	}
	tmin, tmax := math.Inf(1), math.Inf(-1)
	for _, tr := range v.Tracks {
		for _, t := range tr.Times {
			tmin, tmax = math.Min(tmin, t), math.Max(tmax, t)
		}
	}
	if tmax <= tmin {
		tmax = tmin + 1
	}
	var plots []*plot.Plot
	legend := newLegend()
	for pi, tr := range tracks {
		p := newPlot("", "time (s)", "p")
		p.Y.Min, p.Y.Max = 0, 1
		p.X.Min, p.X.Max = tmin, tmax
		probs := smooth(tr.Probs, o.Smooth)
		for k, cls := range v.Classes {
			col, _ := classStyle(k)
			var run plotter.XYs
			var first *plotter.Line
			flushRun := func() error {
				if len(run) == 0 {
					return nil
				}
				if len(run) == 1 { // a lone point: a short tick
					run = append(run, plotter.XY{X: run[0].X + step/2, Y: run[0].Y})
				}
				ln, err := plotter.NewLine(run)
				if err != nil {
					return err
				}
				ln.Color, ln.Width = col, vg.Points(1.3)
				p.Add(ln)
				if first == nil {
					first = ln
				}
				run = nil
				return nil
			}
			for i, t := range tr.Times {
				if i > 0 && t-tr.Times[i-1] > 2.5*step {
					if err := flushRun(); err != nil {
						return fmt.Errorf("plot %s: %w", path, err)
					}
				}
				run = append(run, plotter.XY{X: t, Y: probs[i][k]})
			}
			if err := flushRun(); err != nil {
				return fmt.Errorf("plot %s: %w", path, err)
			}
			if pi == 0 && first != nil {
				legend.Add(cls, first)
			} else if pi == 0 {
				ln, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 0}})
				ln.Color, ln.Width = col, vg.Points(1.3)
				legend.Add(cls, ln)
			}
		}
		p.Add(plotter.NewGrid())
		p.Title.Text = fmt.Sprintf("track %d (%d frames, %.1f–%.1f s)", tr.ID, len(tr.Frames), tr.Times[0], tr.Times[len(tr.Times)-1])
		p.Title.TextStyle.Font.Size = labelSize
		plots = append(plots, p)
	}
	if title != "" {
		plots[0].Title.Text = title + "\n" + plots[0].Title.Text
	}
	for _, p := range plots[:len(plots)-1] {
		p.X.Label.Text = "" // the shared axis is labelled once, at the bottom
	}
	w, h := TimelineSize(len(plots))
	return render(path, w, h, func(dc draw.Canvas) error {
		drawStacked(dc, plots, []*plot.Legend{&legend}, vg.Points(4))
		return nil
	})
}

// smooth is a centred moving average over w rows (w <= 1: unchanged).
func smooth(p [][]float64, w int) [][]float64 {
	if w <= 1 {
		return p
	}
	out := make([][]float64, len(p))
	for i := range p {
		lo, hi := max(0, i-w/2), min(len(p), i+w/2+1)
		row := make([]float64, len(p[i]))
		for j := lo; j < hi; j++ {
			for k, v := range p[j] {
				row[k] += v
			}
		}
		for k := range row {
			row[k] /= float64(hi - lo)
		}
		out[i] = row
	}
	return out
}
