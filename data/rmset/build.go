package rmset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fer-research/fer/data/face"
	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
)

// Options configure Build.
type Options struct {
	// Out is the RMset folder.
	Out string
	// Remove are rectangles blanked in every video (added to each video's
	// sidecar "remove" list).
	Remove []image.Rectangle
	// Every > 1 analyses every Every-th frame.
	Every int
	// Widen is Δw / w_f: a crop is the face box widened by Widen·w_f
	// (half on each side), same height (default 0.31, the paper's).
	Widen float64
	// MinIoU is the IoU with a first-frame box that assigns a face to
	// that person (default 0.5).
	MinIoU float64
	// Quality is the JPEG quality (default 95).
	Quality int
	// Detector are the face detector's options (landmarks are not used).
	Detector face.Options
	// Workers are the detection goroutines (0: one per core).
	Workers int
	// Progress, when set, is called at the start of each video with the
	// number of frames to analyse (-1 if unknown); the bar's Add is
	// called once per analysed frame.
	Progress func(video string, frames int) Bar
	// Log receives one line per video (resumed, skipped, built).
	Log io.Writer
}

// Bar is a progress bar (github.com/schollz/progressbar's methods).
type Bar interface {
	Add(n int) error
	Finish() error
}

func (o *Options) defaults() error {
	if o.Out == "" {
		return fmt.Errorf("rmset build: no output folder")
	}
	if o.Every == 0 {
		o.Every = 1
	}
	if o.Widen == 0 {
		o.Widen = 0.31
	}
	if o.MinIoU == 0 {
		o.MinIoU = 0.5
	}
	if o.Quality == 0 {
		o.Quality = 95
	}
	switch {
	case o.Every < 1:
		return fmt.Errorf("rmset build: every = %d, want >= 1", o.Every)
	case o.Widen < 0 || o.Widen > 4:
		return fmt.Errorf("rmset build: widen = %v, want 0..4", o.Widen)
	case !(o.MinIoU > 0 && o.MinIoU <= 1):
		return fmt.Errorf("rmset build: IoU threshold %v, want 0 < IoU <= 1", o.MinIoU)
	case o.Quality < 1 || o.Quality > 100:
		return fmt.Errorf("rmset build: JPEG quality %d, want 1..100", o.Quality)
	}
	o.Detector.NoLandmarks = true
	return nil
}

// VideoResult is what happened to one video.
type VideoResult struct {
	Path, Name string
	// Frames analysed in this run; People of the first frame; Faces is
	// the video's crops in total (earlier runs included).
	Frames, People, Faces int
	// Resumed: an earlier run had done part of it. Complete: it was
	// already complete, nothing was done.
	Resumed, Complete bool
	// Err is why the video was skipped (or stopped).
	Err error
}

// Summary is the result of Build.
type Summary struct {
	Videos []VideoResult
	// Index is the index file; IndexVideos and IndexFaces its content
	// (every complete video of the folder, also from earlier builds).
	Index                   string
	IndexVideos, IndexFaces int
}

// Build makes an RMset from videos in o.Out (see the package
// documentation): per video, folder o.Out/NAME holds settings.json,
// people.csv, faces.csv (the video's index rows, appended frame by frame)
// and the crops NAME/pP/FRAME.jpg, and a DONE file when it is complete;
// o.Out/index.csv is then rewritten from every complete video of the
// folder.
//
// A killed build resumes where it stopped: crops are written to a
// temporary file and renamed, a frame's rows are appended after its
// crops in one write, and on restart a torn last row is cut, the rows of
// the last frame are checked against their crop files (complete JPEGs),
// and analysis continues after the last frame kept. A video that cannot
// be read (or fails half-way) is reported in its VideoResult and skipped;
// Build returns an error only when the whole build cannot proceed or ctx
// is cancelled.
func Build(ctx context.Context, videos []string, o Options) (*Summary, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, v := range videos {
		n := videoName(v)
		if prev, dup := names[n]; dup {
			return nil, fmt.Errorf("rmset build: %s and %s have the same name %q (the crops folder): rename one", prev, v, n)
		}
		names[n] = v
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("rmset build: %w", err)
	}
	s := &Summary{}
	for _, v := range videos {
		r := buildVideo(ctx, v, &o)
		s.Videos = append(s.Videos, r)
		if o.Log != nil {
			fmt.Fprintln(o.Log, r.line())
		}
		if err := ctx.Err(); err != nil {
			return s, fmt.Errorf("rmset build interrupted during %s: run the same command again to continue", v)
		}
	}
	var err error
	s.Index, s.IndexVideos, s.IndexFaces, err = writeIndex(o.Out)
	return s, err
}

// line is the video's one-line report.
func (r VideoResult) line() string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("%s: skipped: %v", r.Path, r.Err)
	case r.Complete:
		return fmt.Sprintf("%s: already built (%d people, %d faces)", r.Path, r.People, r.Faces)
	case r.Resumed:
		return fmt.Sprintf("%s: resumed, %d more frames, %d people, %d faces", r.Path, r.Frames, r.People, r.Faces)
	}
	return fmt.Sprintf("%s: %d frames, %d people, %d faces", r.Path, r.Frames, r.People, r.Faces)
}

func videoName(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

// settings are what a video's crops depend on; a resumed build must use
// the same.
type settings struct {
	Every   int          `json:"every"`
	Widen   float64      `json:"widen"`
	MinIoU  float64      `json:"min_iou"`
	Quality int          `json:"quality"`
	Det     face.Options `json:"detector"`
	Remove  [][4]int     `json:"remove"`
	Boxes   [][4]int     `json:"boxes"`
	Size    [2]int       `json:"frame_size"`
}

func xywh(rs []image.Rectangle) [][4]int {
	out := [][4]int{}
	for _, r := range rs {
		out = append(out, [4]int{r.Min.X, r.Min.Y, r.Dx(), r.Dy()})
	}
	return out
}

// person is one first-frame face.
type person struct {
	Box    image.Rectangle
	Source string // "detector" or "manual"
}

func buildVideo(ctx context.Context, path string, o *Options) (res VideoResult) {
	res = VideoResult{Path: path, Name: videoName(path)}
	side, _, err := LoadSidecar(path)
	if err != nil {
		res.Err = err
		return res
	}
	info, err := media.Probe(path)
	if err != nil {
		res.Err = err
		return res
	}
	remove := append(slices.Clone(o.Remove), side.Remove...)
	st := settings{Every: o.Every, Widen: o.Widen, MinIoU: o.MinIoU, Quality: o.Quality, Det: o.Detector,
		Remove: xywh(remove), Boxes: xywh(side.Boxes), Size: [2]int{info.W, info.H}}
	dir := filepath.Join(o.Out, res.Name)
	want, _ := json.MarshalIndent(st, "", "  ")
	if old, err := os.ReadFile(filepath.Join(dir, "settings.json")); err == nil {
		if !bytes.Equal(bytes.TrimSpace(old), bytes.TrimSpace(want)) {
			res.Err = fmt.Errorf("%s was built with other settings (%s): delete it to rebuild with these", dir, filepath.Join(dir, "settings.json"))
			return res
		}
		res.Resumed = true
	} else if !errors.Is(err, os.ErrNotExist) {
		res.Err = err
		return res
	}
	var people []person
	if res.Resumed {
		people, err = loadPeople(dir)
	} else {
		// the first frame's people, then the state files: a video whose
		// first frame has no face leaves nothing behind (add boxes by
		// hand and run again)
		people, err = firstFramePeople(path, remove, side.Boxes, o)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = writePeople(dir, people)
		}
		if err == nil {
			err = writeAtomic(filepath.Join(dir, "settings.json"), append(want, '\n'))
		}
	}
	if err != nil {
		res.Err = err
		return res
	}
	res.People = len(people)
	rows, err := recoverFaces(dir)
	if err != nil {
		res.Err = err
		return res
	}
	res.Faces = len(rows)
	if _, err := os.Stat(filepath.Join(dir, "DONE")); err == nil {
		res.Complete = true
		return res
	}
	last := -1
	if len(rows) > 0 {
		last = rows[len(rows)-1].Frame
	}
	n, added, err := analyse(ctx, path, info, dir, res.Name, people, remove, last, o)
	res.Frames, res.Faces = n, res.Faces+added
	if err != nil {
		res.Err = err
		return res
	}
	if err := writeAtomic(filepath.Join(dir, "DONE"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
		res.Err = err
	}
	return res
}

// inside reports whether r's centre lies in one of the areas.
func inside(r image.Rectangle, areas []image.Rectangle) bool {
	c := image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
	for _, a := range areas {
		if c.In(a) {
			return true
		}
	}
	return false
}

// detectOutside blanks the areas in a copy of img, detects, and keeps
// the faces whose centre is outside every area.
func detectOutside(d *face.Detector, img *imaging.RGB, areas []image.Rectangle, tmp *imaging.RGB) ([]face.Face, error) {
	src := img
	if len(areas) > 0 {
		tmp.W, tmp.H = img.W, img.H
		tmp.Pix = append(tmp.Pix[:0], img.Pix...)
		face.Blank(tmp, areas)
		src = tmp
	}
	fs, err := d.Detect(src)
	if err != nil {
		return nil, err
	}
	out := fs[:0]
	for _, f := range fs {
		if !inside(f.Box, areas) {
			out = append(out, f)
		}
	}
	return out, nil
}

// firstFramePeople finds the people of the video's first frame: the
// detector's faces (outside the removal areas) and the hand-given boxes
// (a hand-given box replaces a detection it overlaps with IoU >= 0.5), in
// reading order.
func firstFramePeople(path string, remove, manual []image.Rectangle, o *Options) ([]person, error) {
	r, err := media.Open(path, media.Options{MaxFrames: 1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var f media.Frame
	if err := r.Next(&f); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("video %s: no frames", path)
		}
		return nil, err
	}
	d, err := face.NewDetector(o.Detector)
	if err != nil {
		return nil, err
	}
	var tmp imaging.RGB
	fs, err := detectOutside(d, &f.RGB, remove, &tmp)
	if err != nil {
		return nil, fmt.Errorf("video %s: frame 0: %w", path, err)
	}
	var ps []person
	for _, fc := range fs {
		replaced := false
		for _, m := range manual {
			if face.IoU(m, fc.Box) >= 0.5 {
				replaced = true
			}
		}
		if !replaced {
			ps = append(ps, person{Box: fc.Box, Source: "detector"})
		}
	}
	for _, m := range manual {
		ps = append(ps, person{Box: m, Source: "manual"})
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no face found on the first frame: give the people's boxes by hand in %s (boxes: [[x, y, w, h], ...])", path+SidecarExt)
	}
	readingOrder(ps)
	return ps, nil
}

// readingOrder sorts boxes top to bottom, then left to right: boxes
// whose centres are within half the median height of each other count as
// one row.
func readingOrder(ps []person) {
	hs := make([]int, len(ps))
	for i, p := range ps {
		hs[i] = p.Box.Dy()
	}
	sort.Ints(hs)
	tol := hs[len(hs)/2] / 2
	cy := func(p person) int { return (p.Box.Min.Y + p.Box.Max.Y) / 2 }
	cx := func(p person) int { return (p.Box.Min.X + p.Box.Max.X) / 2 }
	sort.Slice(ps, func(i, j int) bool { return cy(ps[i]) < cy(ps[j]) })
	for start := 0; start < len(ps); {
		end := start + 1
		for end < len(ps) && cy(ps[end])-cy(ps[start]) <= tol {
			end++
		}
		row := ps[start:end]
		sort.SliceStable(row, func(i, j int) bool { return cx(row[i]) < cx(row[j]) })
		start = end
	}
}

func writePeople(dir string, ps []person) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"person", "x", "y", "w", "h", "source"})
	for i, p := range ps {
		w.Write([]string{strconv.Itoa(i), strconv.Itoa(p.Box.Min.X), strconv.Itoa(p.Box.Min.Y),
			strconv.Itoa(p.Box.Dx()), strconv.Itoa(p.Box.Dy()), p.Source})
	}
	w.Flush()
	return writeAtomic(filepath.Join(dir, "people.csv"), b.Bytes())
}

func loadPeople(dir string) ([]person, error) {
	path := filepath.Join(dir, "people.csv")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		return nil, fmt.Errorf("%s: unreadable (%v): delete %s to rebuild the video", path, err, dir)
	}
	var ps []person
	for i, r := range recs[1:] {
		if len(r) != 6 {
			return nil, fmt.Errorf("%s line %d: %d fields, want 6", path, i+2, len(r))
		}
		var v [5]int
		for k := range v {
			if v[k], err = strconv.Atoi(r[k]); err != nil {
				return nil, fmt.Errorf("%s line %d: %v", path, i+2, err)
			}
		}
		if v[0] != i || v[3] < 1 || v[4] < 1 {
			return nil, fmt.Errorf("%s line %d: bad person %v", path, i+2, r)
		}
		ps = append(ps, person{Box: image.Rect(v[1], v[2], v[1]+v[3], v[2]+v[4]), Source: r[5]})
	}
	return ps, nil
}

// facesHeader is the per-video faces.csv header (the index's).
var facesHeader = strings.Join(IndexHeader, ",") + "\n"

// recoverFaces reads the video's faces.csv after a possible kill: a torn
// last line is cut off, then the rows of the last frame are checked
// against their crops and, if one is missing or not a complete JPEG,
// that frame's rows are cut too (its crops are redone). The file is
// truncated accordingly and the kept rows returned.
func recoverFaces(dir string) ([]Face, error) {
	path := filepath.Join(dir, "faces.csv")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keep := len(b)
	if i := bytes.LastIndexByte(b, '\n'); i+1 != len(b) {
		keep = i + 1 // torn last line (or no newline at all)
	}
	if keep < len(facesHeader) || string(b[:len(facesHeader)]) != facesHeader {
		keep = 0
	}
	var rows []Face
	var ends []int // byte offset after each row
	if keep > 0 {
		off := len(facesHeader)
		for off < keep {
			nl := bytes.IndexByte(b[off:keep], '\n')
			line := b[off : off+nl+1]
			fs, err := ParseIndex(strings.NewReader(facesHeader + string(line)))
			if err != nil || len(fs) != 1 {
				return nil, fmt.Errorf("%s: row at byte %d is damaged (%v): delete %s to rebuild the video", path, off, err, dir)
			}
			rows = append(rows, fs[0])
			off += nl + 1
			ends = append(ends, off)
		}
	}
	// check the last frame's crops
	for len(rows) > 0 {
		lastFrame := rows[len(rows)-1].Frame
		first := len(rows)
		for first > 0 && rows[first-1].Frame == lastFrame {
			first--
		}
		ok := true
		for _, r := range rows[first:] {
			if !completeJPEG(filepath.Join(filepath.Dir(dir), filepath.FromSlash(r.File))) {
				ok = false
			}
		}
		if ok {
			break
		}
		rows = rows[:first]
		keep = len(facesHeader)
		if first > 0 {
			keep = ends[first-1]
		}
	}
	if keep == 0 && len(b) == 0 {
		return nil, nil
	}
	if keep != len(b) {
		if keep < len(facesHeader) {
			keep = 0
		}
		if err := os.Truncate(path, int64(keep)); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// completeJPEG reports whether the file starts with a JPEG SOI marker and
// ends with EOI.
func completeJPEG(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && len(b) > 4 && b[0] == 0xFF && b[1] == 0xD8 && b[len(b)-2] == 0xFF && b[len(b)-1] == 0xD9
}

// crop is one person's JPEG of one frame.
type crop struct {
	person int
	box    image.Rectangle
	jpeg   []byte
}

// skipSource decodes and drops the frames up to a resume point.
type skipSource struct {
	ctx   context.Context
	r     *media.Reader
	after int
	bar   Bar
}

func (s *skipSource) Next(f *media.Frame) error {
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := s.r.Next(f); err != nil {
			return err
		}
		if s.bar != nil {
			s.bar.Add(1)
		}
		if f.Index > s.after {
			return nil
		}
	}
}

// analyse runs steps (1)–(4) over the frames after frame last; it
// returns the frames analysed and the crops written.
func analyse(ctx context.Context, path string, info media.Info, dir, name string, people []person, remove []image.Rectangle,
	last int, o *Options) (frames, faces int, err error) {
	r, err := media.Open(path, media.Options{Every: o.Every})
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	var bar Bar
	if o.Progress != nil {
		total := -1
		if info.Frames > 0 {
			total = (info.Frames + o.Every - 1) / o.Every
		}
		bar = o.Progress(name, total)
		defer bar.Finish()
	}
	anchors := make([]image.Rectangle, len(people))
	for i, p := range people {
		anchors[i] = p.Box
	}
	for i := range people {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("p%d", i)), 0o755); err != nil {
			return 0, 0, err
		}
	}
	idx, err := os.OpenFile(filepath.Join(dir, "faces.csv"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer idx.Close()
	if st, err := idx.Stat(); err != nil {
		return 0, 0, err
	} else if st.Size() == 0 {
		if _, err := idx.WriteString(facesHeader); err != nil {
			return 0, 0, err
		}
	}
	style := face.CropStyle{Name: "rmset", Scale: 1 + o.Widen, ScaleY: 1}
	lastSync := time.Now()
	var buf bytes.Buffer
	err = face.Stream(&skipSource{ctx: ctx, r: r, after: last, bar: bar}, face.StreamOptions{Workers: o.Workers,
		NewWorker: func() (face.Worker, error) {
			d, err := face.NewDetector(o.Detector)
			if err != nil {
				return nil, err
			}
			cr := &face.Cropper{Style: style}
			var tmp, cimg imaging.RGB
			return func(j *face.Job) error {
				fs, err := detectOutside(d, &j.Frame.RGB, remove, &tmp)
				if err != nil {
					return err
				}
				boxes := make([]image.Rectangle, len(fs))
				for i, f := range fs {
					boxes[i] = f.Box
				}
				match := face.MatchAnchors(anchors, boxes, o.MinIoU)
				var out []crop
				for i, p := range match {
					if p < 0 {
						continue // not one of the first frame's people (paper: ignored)
					}
					if err := cr.Crop(&j.Frame.RGB, &fs[i], &cimg); err != nil {
						return err
					}
					var jb bytes.Buffer
					if err := jpeg.Encode(&jb, rgba(&cimg), &jpeg.Options{Quality: o.Quality}); err != nil {
						return err
					}
					out = append(out, crop{person: p, box: fs[i].Box, jpeg: jb.Bytes()})
				}
				sort.Slice(out, func(a, b int) bool { return out[a].person < out[b].person })
				j.Data = out
				return nil
			}, nil
		}}, func(j *face.Job) error {
		frames++
		crops := j.Data.([]crop)
		if len(crops) == 0 {
			return nil
		}
		buf.Reset()
		w := csv.NewWriter(&buf)
		for _, c := range crops {
			rel := fmt.Sprintf("%s/p%d/%06d.jpg", name, c.person, j.Frame.Index)
			if err := writeFile(filepath.Join(filepath.Dir(dir), filepath.FromSlash(rel)), c.jpeg); err != nil {
				return err
			}
			w.Write(record(Face{Video: name, Person: c.person, Frame: j.Frame.Index, Time: j.Frame.Time, Box: c.box, File: rel}))
		}
		w.Flush()
		// one write per frame: a kill leaves whole frames (or a torn
		// line recoverFaces cuts)
		if _, err := idx.Write(buf.Bytes()); err != nil {
			return err
		}
		faces += len(crops)
		if time.Since(lastSync) > time.Second {
			lastSync = time.Now()
			return idx.Sync()
		}
		return nil
	})
	if err == nil {
		err = idx.Sync()
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted (run again to continue)")
	}
	return frames, faces, err
}

// rgba converts a crop for image/jpeg.
func rgba(m *imaging.RGB) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// writeFile writes b to a temporary file in path's folder and renames it
// over path: the crop is whole or absent, never half-written.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAtomic is writeFile with fsync of the file and its folder (for
// the small state files whose loss would cost a rebuild).
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Chmod(0o644), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeIndex rewrites DIR/index.csv from the faces.csv of every complete
// video folder (sorted by name, rows by frame then person).
func writeIndex(out string) (string, int, int, error) {
	ents, err := os.ReadDir(out)
	if err != nil {
		return "", 0, 0, err
	}
	var b bytes.Buffer
	b.WriteString(facesHeader)
	videos, faces := 0, 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(out, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "DONE")); err != nil {
			continue
		}
		f, err := os.Open(filepath.Join(dir, "faces.csv"))
		if err != nil {
			return "", 0, 0, err
		}
		rows, err := ParseIndex(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return "", 0, 0, fmt.Errorf("%s: %w", filepath.Join(dir, "faces.csv"), err)
		}
		sort.SliceStable(rows, func(i, j int) bool {
			if rows[i].Frame != rows[j].Frame {
				return rows[i].Frame < rows[j].Frame
			}
			return rows[i].Person < rows[j].Person
		})
		w := csv.NewWriter(&b)
		for _, r := range rows {
			w.Write(record(r))
		}
		w.Flush()
		videos++
		faces += len(rows)
	}
	path := filepath.Join(out, IndexFile)
	return path, videos, faces, writeAtomic(path, b.Bytes())
}
