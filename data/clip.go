package data

import (
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fer-research/fer/data/imaging"
)

// Clip is one video sample: a folder of frame images (sorted by file
// name, as Former-DFER's sorted glob) or a video file decoded by ffmpeg.
type Clip struct {
	// ID names the clip in messages and batches (DFEW: "00042").
	ID string
	// Path is the frame folder or the video file.
	Path string
	// Label is the class index.
	Label int
	// Frames is the frame count found when the data set was opened (0 =
	// not counted: videos are only counted when MinFrames > 0).
	Frames int
}

// ClipOptions configure a clip data set. The zero value is Former-DFER's
// protocol: 8 segments × 2 frames, 112×112, pixel/255, train crop+flip.
type ClipOptions struct {
	// Sampler picks the frames; zero value = DefaultSegmentSampler (8×2).
	Sampler SegmentSampler
	// Transform resizes and augments the frames (Size default 112).
	Transform Transform
	// MinFrames drops clips with fewer frames when the data set is
	// opened. Former-DFER and the LOGO-Former port filter their list
	// files with `int(item[1]) >= 16`, i.e. MinFrames = 16 (this changes
	// the test-set denominator: AFEW val 381 instead of 383 clips). The
	// default 0 keeps every non-empty clip; shorter clips then get
	// repeated frames (SegmentSampler.Indices: zero offsets and the clamp
	// at the last frame). Empty clip folders are an error when
	// MinFrames = 0 and are dropped otherwise.
	MinFrames int
	// VideoShortSide downscales decoded video frames so that their shorter
	// side is this many pixels (aspect kept) before cropping; default 224
	// (the size of DFEW's face clips); -1 keeps the original resolution.
	VideoShortSide int
}

func (o ClipOptions) withDefaults() (ClipOptions, error) {
	if o.Sampler == (SegmentSampler{}) {
		o.Sampler = DefaultSegmentSampler
	}
	if err := o.Sampler.check(); err != nil {
		return o, err
	}
	t, err := o.Transform.withDefaults()
	if err != nil {
		return o, err
	}
	o.Transform = t
	if o.MinFrames < 0 {
		return o, fmt.Errorf("min_frames = %d, want >= 0", o.MinFrames)
	}
	if o.VideoShortSide == 0 {
		o.VideoShortSide = 224
	}
	return o, nil
}

// ClipDataset is a labelled set of clips with Former-DFER's sampling and
// augmentation. It implements Dataset and Described.
type ClipDataset struct {
	// Name says what was opened, e.g. "DFEW clip_224x224 fold 1 train".
	Name string
	// Clips are the samples, in list-file order.
	Clips []Clip
	// Dropped are the clips MinFrames removed (also counted in Drops).
	Dropped []Clip
	classes []string
	opts    ClipOptions
	drops   *Drops
}

// Drops implements DropReporter: the listed clips left out (never nil).
func (d *ClipDataset) Drops() *Drops {
	if d.drops == nil {
		d.drops = &Drops{}
	}
	return d.drops
}

// SetDrops attaches the drops a reader recorded while listing the clips;
// NewClipDataset's own (min_frames) are added to them.
func (d *ClipDataset) SetDrops(dr *Drops) {
	if d.drops != nil && dr != nil {
		dr.Merge(d.drops)
	}
	d.drops = dr
}

// NewClipDataset checks the clips and options and builds the data set:
// labels must be in [0, len(classes)), frame folders must exist and hold
// at least one .jpg/.jpeg/.png frame, videos must exist. Folders are
// listed once here (so a broken tree fails at start-up, not in epoch 37);
// videos are counted (ffprobe) only when MinFrames > 0.
func NewClipDataset(name string, clips []Clip, classes []string, opts ClipOptions) (*ClipDataset, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &ClipDataset{Name: name, classes: classes, opts: o}
	var missing, empty []string
	for _, c := range clips {
		if c.Label < 0 || c.Label >= len(classes) {
			return nil, fmt.Errorf("%s: clip %s has label %d, want 0..%d", name, c.ID, c.Label, len(classes)-1)
		}
		st, err := os.Stat(c.Path)
		if err != nil {
			missing = append(missing, c.Path)
			continue
		}
		switch {
		case st.IsDir():
			files, err := listFrames(c.Path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			c.Frames = len(files)
			if c.Frames == 0 && o.MinFrames == 0 {
				empty = append(empty, c.Path)
				continue
			}
		case o.MinFrames > 0:
			n, err := countVideoFrames(c.Path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			c.Frames = n
		}
		if o.MinFrames > 0 && c.Frames < o.MinFrames {
			d.Dropped = append(d.Dropped, c)
			d.Drops().Add(fmt.Sprintf("fewer than min_frames = %d frames", o.MinFrames), fmt.Sprintf("%s (%d)", c.ID, c.Frames))
			continue
		}
		d.Clips = append(d.Clips, c)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %d listed clip(s) not found: %s (check the data root and the clip version, or that the archive was fully extracted)", name, len(missing), firstFew(missing))
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("%s: %d clip folder(s) hold no .jpg/.png frames: %s (re-extract them, or set min_frames = 16 to drop short clips as Former-DFER does)", name, len(empty), firstFew(empty))
	}
	if len(d.Clips) == 0 {
		return nil, fmt.Errorf("%s: no clips left (%d dropped by min_frames = %d)", name, len(d.Dropped), o.MinFrames)
	}
	return d, nil
}

func firstFew(s []string) string {
	const k = 5
	if len(s) <= k {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:k], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-k)
}

// isFrameFile reports whether name is a frame image we read.
func isFrameFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return !strings.HasPrefix(name, ".")
	}
	return false
}

// listFrames returns the frame files of a clip folder sorted by name.
func listFrames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list clip folder %s: %w", dir, err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && isFrameFile(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// Len implements Dataset.
func (d *ClipDataset) Len() int { return len(d.Clips) }

// Label implements Dataset.
func (d *ClipDataset) Label(i int) int { return d.Clips[i].Label }

// ID implements Described.
func (d *ClipDataset) ID(i int) string { return d.Clips[i].ID }

// Classes implements Described.
func (d *ClipDataset) Classes() []string { return d.classes }

// SampleShape implements Described: [T, 3, Size, Size].
func (d *ClipDataset) SampleShape() []int {
	s := d.opts.Transform.Size
	return []int{d.opts.Sampler.Frames(), 3, s, s}
}

// Options returns the effective options (defaults filled in).
func (d *ClipDataset) Options() ClipOptions { return d.opts }

// Load implements Dataset: it picks the frames with the segment sampler,
// decodes them, and applies one crop/flip decision to all of them.
func (d *ClipDataset) Load(i int, rng *rand.Rand, train bool) (Sample, error) {
	if i < 0 || i >= len(d.Clips) {
		return Sample{}, fmt.Errorf("%s: sample %d out of range [0, %d)", d.Name, i, len(d.Clips))
	}
	if train && rng == nil {
		return Sample{}, fmt.Errorf("%s: training-mode Load needs a random generator", d.Name)
	}
	c := d.Clips[i]
	buf := getBuffers()
	defer putBuffers(buf)
	var (
		n     int
		frame func(k int) (*imaging.RGB, string, error)
	)
	if isVideoFile(c.Path) {
		v, err := decodeVideo(c.Path, d.opts.VideoShortSide)
		if err != nil {
			return Sample{}, fmt.Errorf("clip %s: %w", c.ID, err)
		}
		n = v.len()
		frame = func(k int) (*imaging.RGB, string, error) {
			return v.frame(k), fmt.Sprintf("%s frame %d", c.Path, k), nil
		}
	} else {
		files, err := listFrames(c.Path)
		if err != nil {
			return Sample{}, fmt.Errorf("clip %s: %w", c.ID, err)
		}
		n = len(files)
		frame = func(k int) (*imaging.RGB, string, error) {
			err := decodeImageFile(files[k], &buf.rgb)
			return &buf.rgb, files[k], err
		}
	}
	if n == 0 {
		return Sample{}, fmt.Errorf("clip %s: %s holds no frames (re-extract it, or set min_frames to drop short clips)", c.ID, c.Path)
	}
	idx := d.opts.Sampler.Indices(n, train, rng)
	t := &d.opts.Transform
	s := t.Size
	per := 3 * s * s
	out := make([]float32, len(idx)*per)
	lut := t.lut()
	var (
		w, h int
		r    *imaging.Resampler
	)
	first := map[int]int{} // frame index → first output slot holding it
	for j, k := range idx {
		dst := out[j*per : (j+1)*per]
		if f, ok := first[k]; ok {
			copy(dst, out[f*per:(f+1)*per])
			continue
		}
		first[k] = j
		img, name, err := frame(k)
		if err != nil {
			return Sample{}, fmt.Errorf("clip %s: %w", c.ID, err)
		}
		if j == 0 {
			// One crop/flip decision for the whole clip.
			w, h = img.W, img.H
			full := image.Rect(0, 0, w, h)
			if r, err = t.resampler(w, h, full, t.newPlan(w, h, train, rng)); err != nil {
				return Sample{}, fmt.Errorf("clip %s: %w", c.ID, err)
			}
		} else if img.W != w || img.H != h {
			return Sample{}, fmt.Errorf("clip %s: frame %s is %dx%d but the clip's first sampled frame is %dx%d (all frames of a clip must have one size)", c.ID, name, img.W, img.H, w, h)
		}
		if err := r.Apply(img, lut, dst, &buf.scratch); err != nil {
			return Sample{}, fmt.Errorf("clip %s: %s: %w", c.ID, name, err)
		}
	}
	return Sample{ID: c.ID, Label: c.Label, Data: out, Shape: d.SampleShape()}, nil
}
