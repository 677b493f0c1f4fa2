package main

// fercli predict on raw photos and videos: faces are detected, aligned to
// the checkpoint's data set's crop style, classified in batches, and
// written as rows (CSV or JSON lines), optionally drawn onto the media.
// predict.go holds the command, the flags it always had and model
// loading; this file the media handling.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/fer-research/fer/data/face"
	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

// mediaFlags are predict's flags for photos and videos.
func mediaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "faces", Value: "detect", Usage: "detect: find, align and classify every face (photos and videos); whole: each image (or video frame) is one face crop already"},
		&cli.StringFlag{Name: "crop", Value: "auto", Usage: "face crop: auto (the checkpoint's data set's), arcface (IR-50 112×112 aligned), rafdb (100×100 aligned), box (AffectNet-style box), box:S, box:SxSY, with @N to resize"},
		&cli.IntFlag{Name: "upsample", Value: -1, Usage: "detector upsampling: 0 finds faces >= 80 px, 1 >= 40 px (4× slower); -1: 1 for photos, 0 for videos"},
		&cli.Float64Flag{Name: "det-threshold", Usage: "added to the detector's threshold (dlib's adjust_threshold): negative finds more faces, positive fewer"},
		&cli.IntFlag{Name: "max-side", Usage: "detect on frames downscaled to this longer side (faster on HD video; 0: full resolution)"},
		&cli.IntFlag{Name: "every", Value: 1, Usage: "videos: analyse every N-th frame"},
		&cli.Float64Flag{Name: "track-iou", Value: 0.3, Usage: "videos: IoU with a track's last box that continues the track"},
		&cli.IntFlag{Name: "max-missed", Value: 10, Usage: "videos: analysed frames a track survives without its face"},
		&cli.IntFlag{Name: "workers", Usage: "face-detection goroutines (0: one per core)"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write the rows to this file instead of stdout"},
		&cli.StringFlag{Name: "annotate", Usage: "draw boxes and labels: a folder (photos, and videos as FOLDER/NAME.mp4) or, for one video, an .mp4/.mkv/.avi file"},
		&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar with frames/s on stderr when it is a terminal"},
	}
}

// mediaInputs expands files and folders into photos and videos: folders
// give the images and videos directly inside them, sorted by name.
func mediaInputs(args []string) (photos, videos []string, err error) {
	if err := noFlagsAfterFiles(args, "fercli predict [flags] PHOTO|VIDEO..."); err != nil {
		return nil, nil, err
	}
	files, err := fer.ExpandFiles(args, func(n string) bool { return media.IsVideo(n) || fer.IsImageFile(n) }, "images or videos")
	for _, f := range files {
		if media.IsVideo(f) {
			videos = append(videos, f)
		} else {
			photos = append(photos, f)
		}
	}
	return photos, videos, err
}

// noFlagsAfterFiles: urfave/cli stops reading flags at the first argument, so a
// flag after the files would be taken for a file; say so instead.
func noFlagsAfterFiles(args []string, usage string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("%s after the files: give the flags first (%s)", a, usage)
		}
	}
	return nil
}

// faceModel is the checkpoint's model as predict uses it on face crops.
type faceModel struct {
	run     *fer.Run
	classes []string
	// input turns a face crop into one input (an image model's) or one
	// frame of a clip (a clip model's: frames = T > 0).
	input  func(image.Image) ([]float32, error)
	per    int // values per crop
	frames int // clip length T, 0 for image models
}

func newFaceModel(r *fer.Run) (*faceModel, error) {
	m := &faceModel{run: r, classes: r.Data.Classes, per: 1}
	shape := r.Data.InputShape
	switch {
	case len(shape) == 3 && r.Data.ImageInput != nil:
		m.input = r.Data.ImageInput
	case len(shape) == 4 && r.Data.FrameInput != nil:
		m.input, m.frames = r.Data.FrameInput, int(shape[0])
		shape = shape[1:]
	default:
		return nil, fmt.Errorf("dataset %s cannot turn face crops into model inputs %v", r.Cfg.Data.Name, r.Data.InputShape)
	}
	for _, d := range shape {
		m.per *= int(d)
	}
	if len(m.classes) == 0 {
		return nil, fmt.Errorf("dataset %s has no classes to predict", r.Cfg.Data.Name)
	}
	return m, nil
}

// mediaOpts are the parsed media flags.
type mediaOpts struct {
	whole     bool
	style     face.CropStyle
	det       face.Options
	upsample  int
	every     int
	trackIoU  float64
	maxMissed int
	workers   int
	batch     int
	annotate  string
	progress  *bool
}

// cropStyleFor is the crop a data set's images were made with: RAF-DB's
// aligned faces, the ArcFace alignment for IR-50 inputs, otherwise box
// crops (AffectNet's boxes, FER2013's and the video data sets' face
// crops, the synthetic faces).
func cropStyleFor(dataset string) face.CropStyle {
	switch strings.ToLower(dataset) {
	case "rafdb", "raf-db":
		return face.StyleRAFDB
	case "ms1m", "arcface":
		return face.StyleArcFace
	}
	return face.StyleBox
}

func parseMediaOpts(c *cli.Context, dataset string) (*mediaOpts, error) {
	o := &mediaOpts{every: c.Int("every"), trackIoU: c.Float64("track-iou"), maxMissed: c.Int("max-missed"),
		workers: c.Int("workers"), batch: c.Int("batch-size"), annotate: c.String("annotate"),
		upsample: c.Int("upsample"), progress: progressFlag(c)}
	switch c.String("faces") {
	case "detect":
	case "whole":
		o.whole = true
	default:
		return nil, fmt.Errorf("--faces %q: want detect or whole", c.String("faces"))
	}
	if s := c.String("crop"); s == "auto" {
		o.style = cropStyleFor(dataset)
	} else {
		st, err := face.ParseCropStyle(s)
		if err != nil {
			return nil, fmt.Errorf("--crop: %w", err)
		}
		o.style = st
	}
	o.det = face.Options{Threshold: c.Float64("det-threshold"), MaxSide: c.Int("max-side"), NoLandmarks: o.style.Template == nil}
	switch {
	case o.every < 1:
		return nil, fmt.Errorf("--every %d: want >= 1", o.every)
	case o.upsample < -1 || o.upsample > 3:
		return nil, fmt.Errorf("--upsample %d: want 0..3 (or -1: automatic)", o.upsample)
	case !(o.trackIoU > 0 && o.trackIoU <= 1):
		return nil, fmt.Errorf("--track-iou %v: want 0 < IoU <= 1", o.trackIoU)
	case o.maxMissed < 0:
		return nil, fmt.Errorf("--max-missed %d: want >= 0", o.maxMissed)
	case o.batch < 1:
		return nil, fmt.Errorf("--batch-size %d: want >= 1", o.batch)
	}
	if o.workers <= 0 {
		o.workers = runtime.NumCPU()
	}
	return o, nil
}

// detectorFor returns detector options for photos or videos.
func (o *mediaOpts) detectorFor(video bool) face.Options {
	d := o.det
	d.Upsample = o.upsample
	if d.Upsample < 0 {
		d.Upsample = 1 // dlib's examples on photos
		if video {
			d.Upsample = 0
		}
	}
	return d
}

// faceRow is one output row.
type faceRow struct {
	File  string
	Video bool
	Frame int
	Time  float64
	// ID is the track ID (videos) or the face's index in the photo.
	ID    int
	Box   image.Rectangle
	Score float64
	Probs []float64
	Top   int
	VA    []float64
	AU    []float64
}

// rowWriter writes rows as CSV (header first, written with the first
// row, when it is known whether the model has VA/AU outputs) or JSON lines.
type rowWriter struct {
	w       io.Writer
	json    bool
	video   bool // CSV layout: the video one (frame, time, track)
	classes []string
	csv     *csv.Writer
	header  []string
	nVA     int
	nAU     int
}

func auNames(n int) []string {
	if n == len(synth.AUNames) {
		return synth.AUNames // Aff-Wild2's eight AUs, in its order
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("au%d", i)
	}
	return out
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

func (w *rowWriter) write(r *faceRow) error {
	if w.json {
		m := map[string]any{"file": r.File, "box": []int{r.Box.Min.X, r.Box.Min.Y, r.Box.Dx(), r.Box.Dy()},
			"score": round4(r.Score), "prediction": w.classes[r.Top]}
		if r.Video {
			m["frame"], m["time"], m["track"] = r.Frame, round4(r.Time), r.ID
		} else {
			m["face"] = r.ID
		}
		probs := map[string]float64{}
		for i, c := range w.classes {
			probs[c] = round4(r.Probs[i])
		}
		m["probs"] = probs
		if r.VA != nil {
			m["valence"], m["arousal"] = round4(r.VA[0]), round4(r.VA[1])
		}
		if r.AU != nil {
			au := map[string]float64{}
			for i, n := range auNames(len(r.AU)) {
				au[n] = round4(r.AU[i])
			}
			m["au"] = au
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = w.w.Write(append(b, '\n'))
		return err
	}
	if w.csv == nil {
		w.csv = csv.NewWriter(w.w)
		w.header = []string{"file", "face"}
		if w.video {
			w.header = []string{"file", "frame", "time", "track"}
		}
		w.header = append(w.header, "x", "y", "w", "h", "score", "prediction")
		w.header = append(w.header, w.classes...)
		if r.VA != nil {
			w.nVA = 2
			w.header = append(w.header, "valence", "arousal")
		}
		if r.AU != nil {
			w.nAU = len(r.AU)
			w.header = append(w.header, auNames(w.nAU)...)
		}
		if err := w.csv.Write(w.header); err != nil {
			return err
		}
	}
	rec := []string{r.File, strconv.Itoa(r.ID)}
	if w.video {
		rec = []string{r.File, strconv.Itoa(r.Frame), f3(r.Time), strconv.Itoa(r.ID)}
	}
	rec = append(rec, strconv.Itoa(r.Box.Min.X), strconv.Itoa(r.Box.Min.Y), strconv.Itoa(r.Box.Dx()), strconv.Itoa(r.Box.Dy()),
		f3(r.Score), w.classes[r.Top])
	for _, p := range r.Probs {
		rec = append(rec, f3(p))
	}
	if w.nVA > 0 {
		for i := range 2 {
			v := math.NaN()
			if r.VA != nil {
				v = r.VA[i]
			}
			rec = append(rec, f3(v))
		}
	}
	for i := range w.nAU {
		v := math.NaN()
		if i < len(r.AU) {
			v = r.AU[i]
		}
		rec = append(rec, f3(v))
	}
	return w.csv.Write(rec)
}

func (w *rowWriter) flush() error {
	if w.csv != nil {
		w.csv.Flush()
		return w.csv.Error()
	}
	return nil
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// predictMedia is `fercli predict --faces detect|whole` on photos and
// videos.
func predictMedia(c *cli.Context, r *fer.Run, photos, videos []string) error {
	m, err := newFaceModel(r)
	if err != nil {
		return err
	}
	o, err := parseMediaOpts(c, r.Cfg.Data.Name)
	if err != nil {
		return err
	}
	if m.frames > 0 && len(photos) > 0 {
		return fmt.Errorf("%s: the checkpoint's model takes clips of %d frames: give videos, not photos", photos[0], m.frames)
	}
	if o.annotate != "" && media.IsVideo(o.annotate) && (len(videos) != 1 || len(photos) > 0) {
		return fmt.Errorf("--annotate %s is a video file: give exactly one video and no photos (or a folder for --annotate)", o.annotate)
	}
	out, done, err := predictOutput(c)
	if err != nil {
		return err
	}
	defer done()
	rw := &rowWriter{w: out, json: c.Bool("json"), video: len(videos) > 0, classes: m.classes}
	ctx, stop := signalContext()
	defer stop()
	if len(photos) > 0 {
		w, err := newFaceWorker(m, o, false)
		if err != nil {
			return err
		}
		for _, p := range photos {
			if err := predictPhoto(w, rw, p); err != nil {
				return err
			}
		}
	}
	for _, v := range videos {
		if err := predictVideo(ctx, m, o, rw, v); err != nil {
			rw.flush()
			return err
		}
	}
	return rw.flush()
}

// toImage wraps a crop for the data set's ImageInput (an *image.NRGBA is
// imaging.FromImage's fast path).
func toImage(m *imaging.RGB) image.Image {
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// faceWorker finds, crops and preprocesses the faces of one frame or
// photo; one per goroutine.
type faceWorker struct {
	m    *faceModel
	o    *mediaOpts
	det  *face.Detector
	crop *face.Cropper
}

func newFaceWorker(m *faceModel, o *mediaOpts, video bool) (*faceWorker, error) {
	w := &faceWorker{m: m, o: o, crop: &face.Cropper{Style: o.style}}
	if !o.whole {
		d, err := face.NewDetector(o.detectorFor(video))
		if err != nil {
			return nil, err
		}
		w.det = d
	}
	return w, nil
}

// process fills j.Faces and j.Inputs from j.Frame.
func (w *faceWorker) process(j *face.Job) error {
	img := &j.Frame.RGB
	if w.o.whole {
		j.Faces = append(j.Faces[:0], face.Face{Box: img.Bounds(), Filter: -1})
	} else {
		fs, err := w.det.Detect(img)
		if err != nil {
			return err
		}
		j.Faces = fs
	}
	j.Inputs = j.Inputs[:0]
	for len(j.Crops) < len(j.Faces) {
		j.Crops = append(j.Crops, imaging.RGB{})
	}
	for i := range j.Faces {
		src := img
		if !w.o.whole {
			if err := w.crop.Crop(img, &j.Faces[i], &j.Crops[i]); err != nil {
				return err
			}
			src = &j.Crops[i]
		}
		x, err := w.m.input(toImage(src))
		if err != nil {
			return err
		}
		if len(x) != w.m.per {
			return fmt.Errorf("preprocessing gave %d values, the model takes %d per face", len(x), w.m.per)
		}
		j.Inputs = append(j.Inputs, x)
	}
	return nil
}

// labelOf is the text drawn beside a face.
func labelOf(classes []string, r *faceRow, video bool) string {
	s := fmt.Sprintf("%s %.2f", classes[r.Top], r.Probs[r.Top])
	if video {
		s = fmt.Sprintf("#%d %s", r.ID, s)
	}
	if r.VA != nil {
		s += fmt.Sprintf(" v%+.2f a%+.2f", r.VA[0], r.VA[1])
	}
	return s
}

func drawRows(img *imaging.RGB, classes []string, rows []faceRow, video bool) {
	thick := max(2, min(img.W, img.H)/300)
	for i := range rows {
		col := face.ColorOf(rows[i].ID)
		face.DrawBox(img, rows[i].Box, col, thick)
		face.DrawLabel(img, rows[i].Box.Min.X, rows[i].Box.Min.Y-16, labelOf(classes, &rows[i], video), color.RGBA{0, 0, 0, 255}, col)
	}
}

func predictPhoto(w *faceWorker, rw *rowWriter, path string) error {
	m, o := w.m, w.o
	var j face.Job
	if err := imaging.DecodeFile(path, &j.Frame.RGB); err != nil {
		img, lerr := fer.LoadImage(path) // GIF, BMP, TIFF, WebP
		if lerr != nil {
			return lerr
		}
		imaging.FromImage(img, &j.Frame.RGB)
	}
	if err := w.process(&j); err != nil {
		return fmt.Errorf("photo %s: %w", path, err)
	}
	if len(j.Faces) == 0 {
		fmt.Fprintf(os.Stderr, "fercli: %s: no face found (small faces: --upsample 2; already-cropped faces: --faces whole)\n", path)
		return nil
	}
	x := make([]float32, 0, len(j.Inputs)*m.per)
	for _, in := range j.Inputs {
		x = append(x, in...)
	}
	sc, err := m.run.Score(x, len(j.Inputs))
	if err != nil {
		return fmt.Errorf("photo %s: %w", path, err)
	}
	rows := make([]faceRow, len(j.Faces))
	for i, f := range j.Faces {
		rows[i] = faceRow{File: path, ID: i, Box: f.Box, Score: f.Score, Probs: sc.Probs[i], Top: sc.Top[i]}
		if sc.VA != nil {
			rows[i].VA = sc.VA[i]
		}
		if sc.AU != nil {
			rows[i].AU = sc.AU[i]
		}
		if err := rw.write(&rows[i]); err != nil {
			return err
		}
	}
	if o.annotate != "" {
		drawRows(&j.Frame.RGB, m.classes, rows, false)
		dst := filepath.Join(o.annotate, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".png")
		if err := writePNG(dst, &j.Frame.RGB); err != nil {
			return err
		}
	}
	return nil
}

func writePNG(path string, m *imaging.RGB) error {
	img := toImage(m)
	return fer.WriteFileAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// pendingFrame is a frame whose faces wait for the model.
type pendingFrame struct {
	index int
	time  float64
	rows  []faceRow
	// first is the position of the frame's first face in the batch.
	first int
	pix   *imaging.RGB // a copy of the frame, when annotating
}

// videoRun is the consumer side of predict on one video: tracking,
// batching, rows, annotation. It runs on the main goroutine (libtorch's).
type videoRun struct {
	m       *faceModel
	o       *mediaOpts
	rw      *rowWriter
	path    string
	tracker *face.Tracker
	clips   map[int]*clipBuf // track ID → its last T inputs (clip models)
	pending []*pendingFrame
	inputs  []float32
	n       int // faces in the batch
	writer  *media.Writer
	spare   []*imaging.RGB // frame copies to reuse
	fps     float64
}

// clipBuf is a track's last frames (ring of T inputs).
type clipBuf struct {
	frames [][]float32
	last   int // frame index of the newest
}

// clipOf returns the track's clip after adding x: its last T frames,
// oldest first; a track younger than T frames repeats its first frame at
// the start.
func (v *videoRun) clipOf(id, frame int, x []float32) []float32 {
	b := v.clips[id]
	if b == nil {
		b = &clipBuf{}
		v.clips[id] = b
	}
	b.frames = append(b.frames, append([]float32(nil), x...))
	if len(b.frames) > v.m.frames {
		b.frames = b.frames[1:]
	}
	b.last = frame
	out := make([]float32, 0, v.m.frames*v.m.per)
	for k := len(b.frames); k < v.m.frames; k++ {
		out = append(out, b.frames[0]...)
	}
	for _, f := range b.frames {
		out = append(out, f...)
	}
	return out
}

func (v *videoRun) consume(j *face.Job) error {
	boxes := make([]image.Rectangle, len(j.Faces))
	for i, f := range j.Faces {
		boxes[i] = f.Box
	}
	ids := v.tracker.Update(boxes)
	p := &pendingFrame{index: j.Frame.Index, time: j.Frame.Time, first: v.n}
	for i, f := range j.Faces {
		p.rows = append(p.rows, faceRow{File: v.path, Video: true, Frame: j.Frame.Index, Time: j.Frame.Time,
			ID: ids[i], Box: f.Box, Score: f.Score})
		x := j.Inputs[i]
		if v.m.frames > 0 {
			x = v.clipOf(ids[i], j.Frame.Index, x)
		}
		v.inputs = append(v.inputs, x...)
		v.n++
	}
	if v.m.frames > 0 { // forget ended tracks
		for id, b := range v.clips {
			if j.Frame.Index-b.last > (v.o.maxMissed+1)*v.o.every {
				delete(v.clips, id)
			}
		}
	}
	if v.o.annotate != "" {
		var cp *imaging.RGB
		if k := len(v.spare); k > 0 {
			cp, v.spare = v.spare[k-1], v.spare[:k-1]
		} else {
			cp = &imaging.RGB{}
		}
		cp.W, cp.H = j.Frame.RGB.W, j.Frame.RGB.H
		cp.Pix = append(cp.Pix[:0], j.Frame.RGB.Pix...)
		p.pix = cp
	}
	v.pending = append(v.pending, p)
	// the batch is full, or enough frames wait (frames without faces)
	if v.n >= v.o.batch || len(v.pending) >= 2*v.o.batch {
		return v.flush()
	}
	return nil
}

// flush runs the model on the batch and writes the waiting frames' rows
// and annotated frames, in frame order.
func (v *videoRun) flush() error {
	var sc *fer.Scores
	if v.n > 0 {
		var err error
		if sc, err = v.m.run.Score(v.inputs, v.n); err != nil {
			return fmt.Errorf("video %s: %w", v.path, err)
		}
	}
	for _, p := range v.pending {
		for i := range p.rows {
			r := &p.rows[i]
			k := p.first + i
			r.Probs, r.Top = sc.Probs[k], sc.Top[k]
			if sc.VA != nil {
				r.VA = sc.VA[k]
			}
			if sc.AU != nil {
				r.AU = sc.AU[k]
			}
			if err := v.rw.write(r); err != nil {
				return err
			}
		}
		if p.pix != nil {
			drawRows(p.pix, v.m.classes, p.rows, true)
			face.DrawLabel(p.pix, 4, p.pix.H-18, fmt.Sprintf("frame %d  %.2f s", p.index, p.time), color.RGBA{255, 255, 255, 255}, color.RGBA{0, 0, 0, 255})
			if v.writer == nil {
				w, err := media.Create(v.annotatePath(), p.pix.W, p.pix.H, v.fps)
				if err != nil {
					return err
				}
				v.writer = w
			}
			if err := v.writer.Write(p.pix); err != nil {
				return err
			}
			v.spare = append(v.spare, p.pix)
		}
	}
	v.pending, v.inputs, v.n = v.pending[:0], v.inputs[:0], 0
	return nil
}

func (v *videoRun) annotatePath() string {
	if media.IsVideo(v.o.annotate) {
		return v.o.annotate
	}
	os.MkdirAll(v.o.annotate, 0o755) // media.Create reports a failure
	return filepath.Join(v.o.annotate, strings.TrimSuffix(filepath.Base(v.path), filepath.Ext(v.path))+".mp4")
}

// frameSource stops at Ctrl-C and counts frames for the progress bar.
type frameSource struct {
	ctx  context.Context
	r    *media.Reader
	tick func()
}

func (s *frameSource) Next(f *media.Frame) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("interrupted")
	}
	err := s.r.Next(f)
	if err == nil {
		s.tick()
	}
	return err
}

func predictVideo(ctx context.Context, m *faceModel, o *mediaOpts, rw *rowWriter, path string) error {
	rd, err := media.Open(path, media.Options{Every: o.every})
	if err != nil {
		return err
	}
	defer rd.Close()
	total := -1
	if rd.Info.Frames > 0 {
		total = (rd.Info.Frames + o.every - 1) / o.every
	}
	bar := fer.NewProgressBar(total, filepath.Base(path), "frames", o.progress)
	defer bar.Finish()
	v := &videoRun{m: m, o: o, rw: rw, path: path, tracker: face.NewTracker(o.trackIoU, o.maxMissed),
		clips: map[int]*clipBuf{}, fps: rd.Info.FPS / float64(o.every)}
	src := &frameSource{ctx: ctx, r: rd, tick: func() { bar.Add(1) }}
	err = face.Stream(src, face.StreamOptions{Workers: o.workers, NewWorker: func() (face.Worker, error) {
		w, err := newFaceWorker(m, o, true)
		if err != nil {
			return nil, err
		}
		return w.process, nil
	}}, v.consume)
	if err == nil {
		err = v.flush()
	} else {
		v.flush() // what was analysed before the error is written
	}
	if v.writer != nil {
		if cerr := v.writer.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil && !strings.Contains(err.Error(), path) {
		err = fmt.Errorf("video %s: %w", path, err)
	}
	return err
}
