package rmset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/face"
	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
	"github.com/fer-research/fer/internal/rmsetfixture"
)

// The mashup fixture (internal/rmsetfixture, shared with the RMFER
// end-to-end test).
var (
	triggerTile  = rmsetfixture.TriggerTile
	reactorTiles = rmsetfixture.ReactorTiles
)

// tileFaces detects faces in each reactor tile of every frame on its own
// (no tracking): the reference boxes, in frame coordinates; nil where a
// tile has no face.
func tileFaces(t *testing.T, path string, every int) map[int][]image.Rectangle {
	t.Helper()
	r, err := media.Open(path, media.Options{Every: every})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := face.NewDetector(face.Options{NoLandmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]image.Rectangle{}
	var f media.Frame
	c := &face.Cropper{Style: face.CropStyle{Scale: 1}}
	for {
		if err := r.Next(&f); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		refs := make([]image.Rectangle, len(reactorTiles))
		for k, tile := range reactorTiles {
			var sub imaging.RGB
			if err := c.Crop(&f.RGB, &face.Face{Box: tile}, &sub); err != nil {
				t.Fatal(err)
			}
			fs, err := d.Detect(&sub)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) > 0 {
				refs[k] = fs[0].Box.Add(tile.Min)
			}
		}
		out[f.Index] = refs
	}
	return out
}

// tileOf is the reactor tile holding most of r (-1: none).
func tileOf(r image.Rectangle) int {
	best, area := -1, 0
	for k, tile := range reactorTiles {
		in := r.Intersect(tile)
		if a := in.Dx() * in.Dy(); a > area {
			best, area = k, a
		}
	}
	return best
}

// TestBuildMashup: on the generated mashup with the trigger film's tile
// given as the removal area, the builder finds the 4 reactors on the
// first frame (one per tile), keeps each one's ID (its box overlaps the
// tile's own detection with IoU >= 0.5 on >= 90 % of the frames where
// that tile has a face), never puts a face in the blanked tile, writes
// every crop as a complete JPEG widened by 0.31·w, and the index reads
// back. Without the removal area the trigger film's face becomes a fifth
// person.
func TestBuildMashup(t *testing.T) {
	dir := t.TempDir()
	video := rmsetfixture.Mashup(t, dir, "mashup.avi", 1.5)
	os.WriteFile(video+SidecarExt, []byte("# trigger film\nremove:\n  - [0, 0, 360, 264]\n"), 0o644)
	out := filepath.Join(dir, "rmset")
	var log bytes.Buffer
	s, err := Build(context.Background(), []string{video}, Options{Out: out, Log: &log, MinIoU: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(log.String()))
	r := s.Videos[0]
	if r.Err != nil || r.People != 4 || r.Frames != 36 {
		t.Fatalf("result %+v", r)
	}
	ix, err := ReadIndex(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Faces) != r.Faces || s.IndexFaces != r.Faces || s.IndexVideos != 1 {
		t.Fatalf("index has %d faces, summary %d/%d", len(ix.Faces), r.Faces, s.IndexFaces)
	}
	people, err := loadPeople(filepath.Join(out, "mashup"))
	if err != nil {
		t.Fatal(err)
	}
	tiles := map[int]int{}
	for i, p := range people {
		k := tileOf(p.Box)
		if k < 0 || p.Box.Overlaps(triggerTile) {
			t.Fatalf("person %d at %v is in no reactor tile", i, p.Box)
		}
		if _, dup := tiles[k]; dup {
			t.Fatalf("two people in tile %d", k)
		}
		tiles[i] = k
	}
	refs := tileFaces(t, video, 1)
	hits := make([]int, len(people))
	refFrames := make([]int, len(people))
	got := map[[2]int]image.Rectangle{}
	for _, f := range ix.Faces {
		if f.Box.Overlaps(triggerTile) && inside(f.Box, []image.Rectangle{triggerTile}) {
			t.Fatalf("frame %d: a face of person %d in the blanked tile (%v)", f.Frame, f.Person, f.Box)
		}
		got[[2]int{f.Person, f.Frame}] = f.Box
		// the crop: a whole JPEG of the widened box
		b, err := os.ReadFile(ix.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f.File, err)
		}
		wantW := face.CropStyle{Scale: 1.31, ScaleY: 1}.BoxRect(f.Box)
		if cfg.Width != wantW.Dx() || cfg.Height != f.Box.Dy() {
			t.Fatalf("%s: %dx%d crop of a %dx%d face, want %dx%d", f.File, cfg.Width, cfg.Height, f.Box.Dx(), f.Box.Dy(), wantW.Dx(), f.Box.Dy())
		}
	}
	for frame, rs := range refs {
		for p := range people {
			ref := rs[tiles[p]]
			if ref.Empty() {
				continue
			}
			refFrames[p]++
			if b, ok := got[[2]int{p, frame}]; ok && face.IoU(b, ref) >= 0.5 {
				hits[p]++
			}
		}
	}
	for p := range people {
		rate := float64(hits[p]) / float64(refFrames[p])
		t.Logf("person %d (tile %d): %d of %d frames (%.0f %%)", p, tiles[p], hits[p], refFrames[p], 100*rate)
		if refFrames[p] < 10 || rate < 0.9 {
			t.Fatalf("person %d keeps its tile's face on %d of %d frames", p, hits[p], refFrames[p])
		}
	}
	testResume(t, dir, video)
	// control: without the removal area the trigger film's face is found
	os.Remove(video + SidecarExt)
	s, err = Build(context.Background(), []string{video}, Options{Out: filepath.Join(dir, "noremove"), Every: 12})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Videos[0].People; p != 5 {
		t.Fatalf("without the removal area: %d people, want 5 (the trigger film's face too)", p)
	}
}

// cancelBar cancels the build after n frames (a kill between frames).
type cancelBar struct {
	n      int
	cancel context.CancelFunc
}

func (b *cancelBar) Add(k int) error {
	if b.n -= k; b.n <= 0 {
		b.cancel()
	}
	return nil
}
func (b *cancelBar) Finish() error { return nil }

// snapshot is an RMset folder's files (name → content), without the
// per-run DONE stamps.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() || d.Name() == "DONE" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = string(b)
		return nil
	})
	return out
}

// testResume: a build interrupted after a few frames, whose last index
// row is then torn and whose next crop is left half-written (what a kill
// can leave), continues on the next run and ends with exactly the files
// of an uninterrupted build; a corrupt video in the list is reported by
// name and skipped; a video built with other settings is refused.
func testResume(t *testing.T, dir, video string) {
	junk := filepath.Join(dir, "junk.avi")
	os.WriteFile(junk, bytes.Repeat([]byte("RIFF not a video "), 500), 0o644)
	opts := func(out string) Options { return Options{Out: filepath.Join(dir, out), Every: 4, MinIoU: 0.3} }
	full, err := Build(context.Background(), []string{video}, opts("full"))
	if err != nil || full.Videos[0].Err != nil {
		t.Fatalf("%v %+v", err, full.Videos)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := opts("resumed")
	o.Progress = func(string, int) Bar { return &cancelBar{n: 4, cancel: cancel} }
	s, err := Build(ctx, []string{video, junk}, o)
	if err == nil || len(s.Videos) != 1 || s.Videos[0].Err == nil {
		t.Fatalf("interrupted build: %v, %+v", err, s)
	}
	vdir := filepath.Join(dir, "resumed", "mashup")
	rows, err := recoverFaces(vdir)
	if err != nil || len(rows) == 0 || len(rows) >= full.Videos[0].Faces {
		t.Fatalf("after the interruption: %d rows (%v), full build %d", len(rows), err, full.Videos[0].Faces)
	}
	// a torn row and a half-written crop of the next frame
	f, _ := os.OpenFile(filepath.Join(vdir, "faces.csv"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("mashup,0,99,4.1,3")
	f.Close()
	os.WriteFile(filepath.Join(vdir, "p0", "000099.jpg"), []byte{0xFF, 0xD8, 0xFF}, 0o644)
	var log bytes.Buffer
	o = opts("resumed")
	o.Log = &log
	s, err = Build(context.Background(), []string{junk, video}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(log.String()))
	if s.Videos[0].Err == nil || !strings.Contains(s.Videos[0].Err.Error(), junk) || !strings.Contains(log.String(), junk+": skipped") {
		t.Fatalf("corrupt video: %+v\n%s", s.Videos[0], log.String())
	}
	if r := s.Videos[1]; r.Err != nil || !r.Resumed || r.Faces != full.Videos[0].Faces {
		t.Fatalf("resumed: %+v, full build %+v", r, full.Videos[0])
	}
	os.Remove(filepath.Join(vdir, "p0", "000099.jpg")) // frame 99 is beyond the video: never indexed
	a, b := snapshot(t, filepath.Join(dir, "full")), snapshot(t, filepath.Join(dir, "resumed"))
	if len(a) != len(b) {
		t.Fatalf("%d files after the resumed build, %d after the full one", len(b), len(a))
	}
	for name, content := range a {
		if b[name] != content {
			t.Fatalf("%s differs between the full and the resumed build", name)
		}
	}
	// a complete video is not redone; other settings are refused
	s, err = Build(context.Background(), []string{video}, opts("resumed"))
	if err != nil || !s.Videos[0].Complete {
		t.Fatalf("rebuild: %v %+v", err, s.Videos[0])
	}
	o = opts("resumed")
	o.Widen = 0.5
	s, err = Build(context.Background(), []string{video}, o)
	if err != nil || s.Videos[0].Err == nil || !strings.Contains(s.Videos[0].Err.Error(), "other settings") {
		t.Fatalf("other settings: %v %+v", err, s.Videos[0])
	}
	if _, err := Build(context.Background(), []string{video, filepath.Join(dir, "x", "mashup.mp4")}, opts("y")); err == nil {
		t.Fatal("two videos named mashup accepted")
	}
}

var _ = errors.New
