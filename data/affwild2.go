package data

import (
	"fmt"
	"image"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/fer-research/fer/data/imaging"
)

// Aff-Wild2 in the ABAW layout (SPEC.md §1.1):
//
//	<root>/cropped_aligned/<video>/00001.jpg ...       frames of each annotated person
//	<root>/annotations/VA_Set/Train_Set/<video>.txt    one file per video (see abaw.go)
//	<root>/annotations/VA_Set/Validation_Set/<video>.txt
//	<root>/annotations/EXPR_Set/{Train_Set,Validation_Set}/<video>.txt
//	<root>/annotations/AU_Set/{Train_Set,Validation_Set}/<video>.txt
//	<root>/videos/<video>.mp4 (or .avi, in any sub-folder)   only for the audio
//
// A video with two annotated people has two annotation names,
// <video>_left and <video>_right, each with its own frames folder; both
// take their sound from <video>.<ext>. Row k of an annotation file labels
// frame file k (00001.jpg is row 1). Folder names are matched ignoring
// case.
//
// The tasks' splits differ (a video may be in VA's Train_Set and in AU's
// Validation_Set): a split holds every video some task lists in that
// split, and a frame carries the labels of exactly the tasks that list its
// video in that split; the other tasks are masked (ABAW's per-track
// protocol).
//
// Masking, never an error: invalid markers (−5 VA, −1 EXPR and AU), rows
// of a task shorter than the video's longest annotation, and frames whose
// image is missing from the frames folder (their labels are masked too).
// The frame sampler leaves out frames without image or without any valid
// label; the sequence sampler keeps them inside windows (a missing image
// is replaced by the nearest earlier, else later, frame of the video, its
// labels masked) and leaves out windows without a labelled frame. Every
// left-out sample is counted in Drops.

// AffWild2Options configure OpenAffWild2.
type AffWild2Options struct {
	// FramesDir, AnnotationsDir and VideosDir are folders under the root
	// (defaults cropped_aligned, annotations, videos). Videos are read
	// only for the audio.
	FramesDir, AnnotationsDir, VideosDir string
	// Tasks are the tracks to read; nil reads all three (a task whose
	// folder does not exist is skipped and named in Notes).
	Tasks []ABAWTask
	// Transform resizes and augments the frames.
	Transform Transform
	// SeqLen > 0 makes every sample a window of SeqLen consecutive frames
	// (the sequence sampler of the CNN-RNN models); 0 one frame.
	SeqLen int
	// Stride is the step between training windows (default SeqLen).
	// Evaluation splits (Train false) always use SeqLen, so every frame
	// is scored exactly once.
	Stride int
	// Train selects the training window stride (and nothing else:
	// augmentation is Load's train argument).
	Train bool
	// Audio, when set, adds the log-mel windows of the video's sound to
	// every frame (Extra "audio").
	Audio *AudioOptions
}

// AudioOptions configure the audio of the A/V model.
type AudioOptions struct {
	Mel MelConfig
	// Window is the number of STFT frames (hops) per video frame, centred
	// on the frame's time (default 64: 0.64 s at a 10 ms hop).
	Window int
}

// AffWild2Dataset is one split of Aff-Wild2 (see the comment above). It
// implements Dataset, Described and DropReporter. Samples carry Extra
// "label" (int64, −1 = none), "va" (float32 ×2, −5 = none), "au" (float32
// × len(AUs()), −1 = none) and with Audio "audio" (float32 [1, n_mels,
// Window] per frame); with SeqLen each has a leading [SeqLen].
type AffWild2Dataset struct {
	// Name says what was opened: "affwild2 train".
	Name string
	// Notes are remarks about the layout (a task folder that is missing).
	Notes []string

	videos  []*abawVideo
	samples []abawSample
	classes []string
	aus     []string
	opts    AffWild2Options
	drops   Drops
	mel     *AudioWindows
}

type abawVideo struct {
	name   string
	frames []string // frame k's image file, "" when missing; len n
	va     [][2]float32
	expr   []int8
	au     []int8 // n × len(aus)
	tasks  []ABAWTask
	video  string // media file for the audio
	// noFolder: the frames folder does not exist (recorded in Drops)
	noFolder bool

	fpsOnce sync.Once
	fps     float64
	fpsErr  error
}

type abawSample struct {
	video, start int
}

var abawSplitDirs = map[string]string{"train": "Train_Set", "val": "Validation_Set"}

// OpenAffWild2 opens split "train" or "val" (Validation_Set; ABAW's test
// labels are not public) of the data set under root.
func OpenAffWild2(root, split string, opts AffWild2Options) (*AffWild2Dataset, error) {
	sub, ok := abawSplitDirs[strings.ToLower(split)]
	if !ok {
		return nil, fmt.Errorf("affwild2: split = %q, want train or val", split)
	}
	if opts.FramesDir == "" {
		opts.FramesDir = "cropped_aligned"
	}
	if opts.AnnotationsDir == "" {
		opts.AnnotationsDir = "annotations"
	}
	if opts.VideosDir == "" {
		opts.VideosDir = "videos"
	}
	if opts.Tasks == nil {
		opts.Tasks = []ABAWTask{TaskVA, TaskEXPR, TaskAU}
	}
	if opts.SeqLen < 0 || opts.Stride < 0 {
		return nil, fmt.Errorf("affwild2: seq_len = %d, stride = %d, want >= 0", opts.SeqLen, opts.Stride)
	}
	if opts.Stride == 0 || !opts.Train {
		opts.Stride = opts.SeqLen
	}
	t, err := opts.Transform.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("affwild2: %w", err)
	}
	opts.Transform = t
	d := &AffWild2Dataset{Name: "affwild2 " + strings.ToLower(split), opts: opts}
	if opts.Audio != nil {
		mel, err := NewMelSpec(opts.Audio.Mel)
		if err != nil {
			return nil, fmt.Errorf("affwild2: %w", err)
		}
		if opts.Audio.Window == 0 {
			opts.Audio.Window = 64
		}
		if opts.Audio.Window < 1 {
			return nil, fmt.Errorf("affwild2: audio window = %d, want >= 1", opts.Audio.Window)
		}
		d.mel = &AudioWindows{Mel: mel, Window: opts.Audio.Window}
		d.opts.Audio = opts.Audio
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("affwild2: data root %s not found: point it at the Aff-Wild2 folder holding %s/ and %s/", root, opts.FramesDir, opts.AnnotationsDir)
	}
	annRoot, err := findOSDir(root, opts.AnnotationsDir)
	if err != nil {
		return nil, fmt.Errorf("affwild2: %w (want %s/VA_Set, EXPR_Set, AU_Set with Train_Set/ and Validation_Set/)", err, opts.AnnotationsDir)
	}
	framesRoot, err := findOSDir(root, opts.FramesDir)
	if err != nil {
		return nil, fmt.Errorf("affwild2: %w (the frames of each annotated video: %s/<video>/00001.jpg ...)", err, opts.FramesDir)
	}
	var files []abawFile
	for _, task := range opts.Tasks {
		fs, err := d.readTask(annRoot, task, sub)
		if err != nil {
			return nil, err
		}
		// the first EXPR / AU file fixes the classes / AUs
		if len(fs) > 0 && task == TaskEXPR && d.classes == nil {
			d.classes = slices.Clone(fs[0].labels.Columns)
		}
		if len(fs) > 0 && task == TaskAU && d.aus == nil {
			d.aus = slices.Clone(fs[0].labels.Columns)
		}
		files = append(files, fs...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("affwild2: no annotation file in %s/{VA_Set,EXPR_Set,AU_Set}/%s", annRoot, sub)
	}
	if d.classes == nil {
		d.classes = slices.Clone(AffWild2Classes)
	}
	if d.aus == nil {
		d.aus = slices.Clone(AffWild2AUs)
	}
	// a video has as many frames as its longest annotation file
	rows := map[string]int{}
	for _, f := range files {
		rows[f.video] = max(rows[f.video], f.labels.Len())
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	byName := map[string]*abawVideo{}
	for _, n := range names {
		v := newABAWVideo(n, rows[n], len(d.aus))
		byName[n] = v
		d.videos = append(d.videos, v)
	}
	for _, f := range files {
		if err := d.addLabels(byName[f.video], f); err != nil {
			return nil, err
		}
	}
	for _, v := range d.videos {
		if err := v.finish(framesRoot, d); err != nil {
			return nil, err
		}
	}
	if opts.Audio != nil {
		if err := d.findVideos(root); err != nil {
			return nil, err
		}
	}
	d.makeSamples()
	if len(d.samples) == 0 {
		return nil, fmt.Errorf("affwild2: %s: no sample left (%s); check that %s holds the frames of the annotated videos", d.Name, strings.ReplaceAll(d.drops.String(), "\n", "; "), framesRoot)
	}
	return d, nil
}

// abawFile is one parsed annotation file.
type abawFile struct {
	video  string
	path   string
	labels *ABAWLabels
}

// readTask parses the annotation files of one task and split.
func (d *AffWild2Dataset) readTask(annRoot string, task ABAWTask, sub string) ([]abawFile, error) {
	taskDir, err := findOSDir(annRoot, task.Folder())
	if err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("no %s folder: the %s task is unlabelled", task.Folder(), task))
		return nil, nil
	}
	dir, err := findOSDir(taskDir, sub)
	if err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("no %s/%s folder: the %s task is unlabelled in this split", task.Folder(), sub, task))
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("affwild2: %w", err)
	}
	var out []abawFile
	for _, e := range ents {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".txt") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("affwild2: %w", err)
		}
		l, err := ParseABAWBytes(b, path, task)
		if err != nil {
			return nil, fmt.Errorf("affwild2: %w", err)
		}
		out = append(out, abawFile{video: strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())), path: path, labels: l})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].video < out[j].video })
	return out, nil
}

// addLabels stores one file's labels in v (already sized), checking the
// EXPR classes and mapping AU columns to the data set's AU order by name.
func (d *AffWild2Dataset) addLabels(v *abawVideo, f abawFile) error {
	l := f.labels
	if slices.Contains(v.tasks, l.Task) {
		return fmt.Errorf("affwild2: %s: a second %s file for video %s", f.path, l.Task, v.name)
	}
	v.tasks = append(v.tasks, l.Task)
	switch l.Task {
	case TaskVA:
		copy(v.va, l.VA)
	case TaskEXPR:
		if !equalFold(d.classes, l.Columns) {
			return fmt.Errorf("affwild2: %s: header classes %s differ from the first EXPR file's %s", f.path, strings.Join(l.Columns, ","), strings.Join(d.classes, ","))
		}
		copy(v.expr, l.EXPR)
	case TaskAU:
		col := make([]int, len(d.aus))
		for j, a := range d.aus {
			col[j] = indexFold(l.Columns, a)
		}
		if len(l.Columns) != len(d.aus) || slices.Contains(col, -1) {
			return fmt.Errorf("affwild2: %s: header AUs %s differ from the first AU file's %s", f.path, strings.Join(l.Columns, ","), strings.Join(d.aus, ","))
		}
		A := len(d.aus)
		for k, row := range l.AU {
			for j, c := range col {
				v.au[k*A+j] = row[c]
			}
		}
	}
	return nil
}

// newABAWVideo allocates n frames of invalid labels for A AUs.
func newABAWVideo(name string, n, A int) *abawVideo {
	v := &abawVideo{name: name, va: make([][2]float32, n), expr: make([]int8, n), au: make([]int8, n*A)}
	for k := range n {
		v.va[k] = [2]float32{ABAWInvalidVA, ABAWInvalidVA}
		v.expr[k] = ABAWInvalidEXPR
	}
	for i := range v.au {
		v.au[i] = ABAWInvalidAU
	}
	return v
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// finish lists the video's frames folder.
func (v *abawVideo) finish(framesRoot string, d *AffWild2Dataset) error {
	n := len(v.va)
	v.frames = make([]string, n)
	dir := filepath.Join(framesRoot, v.name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			v.noFolder = true
			d.drops.Add("annotated video without a frames folder", dir)
			return nil
		}
		return fmt.Errorf("affwild2: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() || !isFrameFile(e.Name()) {
			continue
		}
		stem := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		k, err := strconv.Atoi(stem)
		if err != nil || k < 1 || k > n {
			continue // not a numbered frame, or past the annotations
		}
		if v.frames[k-1] == "" || e.Name() < filepath.Base(v.frames[k-1]) {
			v.frames[k-1] = filepath.Join(dir, e.Name())
		}
	}
	return nil
}

// labelled reports whether frame k has an image and a valid label of
// some task.
func (v *abawVideo) labelled(k, A int) bool {
	return k < len(v.frames) && v.frames[k] != "" && v.hasAnyLabel(k, A)
}

// hasAnyLabel reports whether frame k has a valid label of some task.
func (v *abawVideo) hasAnyLabel(k, A int) bool {
	if v.va[k][0] != ABAWInvalidVA || v.expr[k] >= 0 {
		return true
	}
	for _, a := range v.au[k*A : (k+1)*A] {
		if a >= 0 {
			return true
		}
	}
	return false
}

// makeSamples builds the frame or window list, recording what it leaves
// out.
func (d *AffWild2Dataset) makeSamples() {
	A := len(d.aus)
	for vi, v := range d.videos {
		if v.noFolder {
			continue // recorded by finish
		}
		for k := range v.frames {
			if v.frames[k] == "" && v.hasAnyLabel(k, A) {
				d.drops.Add("annotated frame without image (its labels are masked)", fmt.Sprintf("%s/%05d", v.name, k+1))
			}
		}
		if d.opts.SeqLen == 0 {
			for k := range v.frames {
				switch {
				case v.frames[k] == "":
				case !v.hasAnyLabel(k, A):
					d.drops.Add("frame with only invalid labels (-5 / -1)", fmt.Sprintf("%s/%05d", v.name, k+1))
				default:
					d.samples = append(d.samples, abawSample{video: vi, start: k})
				}
			}
			continue
		}
		for s := 0; s < len(v.frames); s += d.opts.Stride {
			ok := false
			for k := s; k < min(s+d.opts.SeqLen, len(v.frames)); k++ {
				if v.labelled(k, A) {
					ok = true
					break
				}
			}
			if ok {
				d.samples = append(d.samples, abawSample{video: vi, start: s})
			} else {
				d.drops.Add("window without a labelled frame that has an image", fmt.Sprintf("%s/%05d-%05d", v.name, s+1, s+d.opts.SeqLen))
			}
		}
	}
}

// findVideos locates each annotated video's media file for the audio.
func (d *AffWild2Dataset) findVideos(root string) error {
	vroot, err := findOSDir(root, d.opts.VideosDir)
	if err != nil {
		return fmt.Errorf("affwild2: audio needs the videos: %w (put them in %s/%s/, any sub-folder)", err, root, d.opts.VideosDir)
	}
	index := map[string]string{}
	err = filepath.WalkDir(vroot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && isVideoFile(e.Name()) {
			key := strings.ToLower(strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
			if _, dup := index[key]; !dup {
				index[key] = p
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("affwild2: list videos: %w", err)
	}
	var missing []string
	for _, v := range d.videos {
		base := strings.ToLower(v.name)
		for _, suf := range []string{"_left", "_right"} {
			base = strings.TrimSuffix(base, suf)
		}
		p, ok := index[base]
		if !ok {
			p, ok = index[strings.ToLower(v.name)]
		}
		if !ok {
			missing = append(missing, v.name)
			continue
		}
		v.video = p
	}
	if len(missing) > 0 {
		return fmt.Errorf("affwild2: audio: no video file for %d annotated video(s) in %s: %s (name them <video>.mp4/.avi; _left/_right share one file)", len(missing), vroot, firstFew(missing))
	}
	return nil
}

// Len implements Dataset.
func (d *AffWild2Dataset) Len() int { return len(d.samples) }

// Label implements Dataset: the expression of a frame sample (−1 when it
// has none), −1 for windows.
func (d *AffWild2Dataset) Label(i int) int {
	if d.opts.SeqLen > 0 || i < 0 || i >= len(d.samples) {
		return -1
	}
	s := d.samples[i]
	return int(d.videos[s.video].expr[s.start])
}

// ID implements Described: "<video>/00042" or "<video>/00001-00080".
func (d *AffWild2Dataset) ID(i int) string {
	s := d.samples[i]
	name := d.videos[s.video].name
	if d.opts.SeqLen == 0 {
		return fmt.Sprintf("%s/%05d", name, s.start+1)
	}
	return fmt.Sprintf("%s/%05d-%05d", name, s.start+1, s.start+d.opts.SeqLen)
}

// Classes implements Described: the EXPR header's class names.
func (d *AffWild2Dataset) Classes() []string { return d.classes }

// AUs are the action units of the "au" arrays, in order.
func (d *AffWild2Dataset) AUs() []string { return d.aus }

// SampleShape implements Described: [3, S, S] or [SeqLen, 3, S, S].
func (d *AffWild2Dataset) SampleShape() []int {
	s := d.opts.Transform.Size
	if d.opts.SeqLen > 0 {
		return []int{d.opts.SeqLen, 3, s, s}
	}
	return []int{3, s, s}
}

// AudioShape is the shape of one frame's "audio" array, nil without
// audio: [1, n_mels, Window].
func (d *AffWild2Dataset) AudioShape() []int {
	if d.mel == nil {
		return nil
	}
	return []int{1, d.mel.Mel.Cfg.NMels, d.mel.Window}
}

// Drops implements DropReporter.
func (d *AffWild2Dataset) Drops() *Drops { return &d.drops }

// Options returns the effective options.
func (d *AffWild2Dataset) Options() AffWild2Options { return d.opts }

// Load implements Dataset.
func (d *AffWild2Dataset) Load(i int, rng *rand.Rand, train bool) (Sample, error) {
	if i < 0 || i >= len(d.samples) {
		return Sample{}, fmt.Errorf("%s: sample %d out of range [0, %d)", d.Name, i, len(d.samples))
	}
	if train && rng == nil {
		return Sample{}, fmt.Errorf("%s: training-mode Load needs a random generator", d.Name)
	}
	s := d.samples[i]
	v := d.videos[s.video]
	L := max(1, d.opts.SeqLen)
	A := len(d.aus)
	size := d.opts.Transform.Size
	per := 3 * size * size
	out := make([]float32, L*per)
	label := make([]int64, L)
	va := make([]float32, 2*L)
	au := make([]float32, A*L)
	buf := getBuffers()
	defer putBuffers(buf)
	var (
		p        plan
		w, h     int
		haveSize bool
	)
	decoded := map[int]int{} // source frame → output slot
	for j := range L {
		k := s.start + j
		src := v.source(k)
		ok := k < len(v.frames) && v.frames[k] != ""
		label[j], va[2*j], va[2*j+1] = -1, ABAWInvalidVA, ABAWInvalidVA
		for a := range A {
			au[j*A+a] = ABAWInvalidAU
		}
		if ok {
			label[j] = int64(v.expr[k])
			va[2*j], va[2*j+1] = v.va[k][0], v.va[k][1]
			for a := range A {
				au[j*A+a] = float32(v.au[k*A+a])
			}
		}
		dst := out[j*per : (j+1)*per]
		if f, done := decoded[src]; done {
			copy(dst, out[f*per:(f+1)*per])
			continue
		}
		decoded[src] = j
		if err := decodeImageFile(v.frames[src], &buf.rgb); err != nil {
			return Sample{}, fmt.Errorf("%s: %w", d.Name, err)
		}
		img := &buf.rgb
		if !haveSize {
			// one crop/flip decision for the whole window
			w, h, haveSize = img.W, img.H, true
			p = d.opts.Transform.newPlan(w, h, train, rng)
		} else if img.W != w || img.H != h {
			return Sample{}, fmt.Errorf("%s: frame %s is %dx%d, the window's first frame %dx%d (frames of a video must have one size)", d.Name, v.frames[src], img.W, img.H, w, h)
		}
		if err := d.opts.Transform.apply(img, image.Rect(0, 0, w, h), p, dst, &buf.scratch); err != nil {
			return Sample{}, fmt.Errorf("%s: %s: %w", d.Name, v.frames[src], err)
		}
	}
	smp := Sample{ID: d.ID(i), Label: int(label[0]), Data: out, Shape: d.SampleShape()}
	var lead []int
	if d.opts.SeqLen > 0 {
		lead = []int{L}
		smp.Label = -1
	}
	smp.Extra = map[string]Array{
		"label": {I64: label, Shape: lead},
		"va":    {F32: va, Shape: append(slices.Clone(lead), 2)},
		"au":    {F32: au, Shape: append(slices.Clone(lead), A)},
	}
	if d.mel != nil {
		a, err := d.audio(v, s.start, L)
		if err != nil {
			return Sample{}, fmt.Errorf("%s: %s: %w", d.Name, smp.ID, err)
		}
		smp.Extra["audio"] = Array{F32: a, Shape: append(slices.Clone(lead), d.AudioShape()...)}
	}
	return smp, nil
}

// Preprocess applies the evaluation transform to one image (a frame
// model's input [3, S, S], for prediction on single pictures); it is an
// error for sequence samples.
func (d *AffWild2Dataset) Preprocess(img image.Image) ([]float32, error) {
	if d.opts.SeqLen > 0 {
		return nil, fmt.Errorf("%s: sequence samples (seq_len %d) cannot be made from one image", d.Name, d.opts.SeqLen)
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("%s: empty image", d.Name)
	}
	var src imaging.RGB
	imaging.FromImage(img, &src)
	s := d.opts.Transform.Size
	out := make([]float32, 3*s*s)
	t := d.opts.Transform
	if err := t.apply(&src, image.Rect(0, 0, src.W, src.H), t.newPlan(src.W, src.H, false, nil), out, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return out, nil
}

// source is the frame whose image stands for frame k: k itself, else the
// nearest earlier frame with an image, else the nearest later one.
func (v *abawVideo) source(k int) int {
	k = min(k, len(v.frames)-1)
	for i := k; i >= 0; i-- {
		if v.frames[i] != "" {
			return i
		}
	}
	for i := k + 1; i < len(v.frames); i++ {
		if v.frames[i] != "" {
			return i
		}
	}
	return k // unreachable for a kept sample
}

// audio returns the log-mel windows of frames start..start+L−1.
func (d *AffWild2Dataset) audio(v *abawVideo, start, L int) ([]float32, error) {
	v.fpsOnce.Do(func() { v.fps, v.fpsErr = probeFrameRate(v.video) })
	if v.fpsErr != nil {
		return nil, v.fpsErr
	}
	times := make([]float64, L)
	for j := range times {
		times[j] = float64(start+j) / v.fps
	}
	sr := d.mel.Mel.Cfg.SampleRate
	a, b := d.mel.Span(times)
	pcm, err := DecodeAudio(v.video, sr, float64(a)/float64(sr), float64(b-a)/float64(sr))
	if err != nil {
		return nil, err
	}
	total := -1
	if len(pcm) < b-a {
		total = a + len(pcm) // the recording ends inside the span
	}
	chunk := make([]float64, len(pcm))
	for i, x := range pcm {
		chunk[i] = float64(x)
	}
	wins, err := d.mel.Cut(chunk, a, total, times)
	if err != nil {
		return nil, err
	}
	per := d.mel.Mel.Cfg.NMels * d.mel.Window
	out := make([]float32, 0, L*per)
	for _, w := range wins {
		out = append(out, w...)
	}
	return out, nil
}

var (
	_ Described    = (*AffWild2Dataset)(nil)
	_ DropReporter = (*AffWild2Dataset)(nil)
)

// findDir's case-insensitive look-up of folder name in the OS folder dir,
// returning the folder's path.
func findOSDir(dir, name string) (string, error) {
	p, err := findDir(os.DirFS(dir), ".", name)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, p), nil
}
