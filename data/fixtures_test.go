package data

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeJPEG writes img as a quality-100 JPEG, creating the folders.
func writeJPEG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// uniformGray is a w×h image of one grey level. A uniform greyscale JPEG
// at quality 100 decodes to exactly that level, so a frame's level tells
// which frame the sampler picked.
func uniformGray(w, h int, level uint8) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = level
	}
	return img
}

// frameLevel is the grey level of frame k in the indexed clips.
func frameLevel(k int) uint8 { return uint8(5 * k) }

// writeIndexedClip writes n frames 00001.jpg.. (frame k has level
// frameLevel(k)) to dir.
func writeIndexedClip(t *testing.T, dir string, n, size int) {
	t.Helper()
	for k := range n {
		writeJPEG(t, filepath.Join(dir, fmt.Sprintf("%05d.jpg", k+1)), uniformGray(size, size, frameLevel(k)))
	}
}

// pattern is a non-symmetric colour image, so that any crop or flip
// changes it.
func pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(255 * x / w), uint8(255 * y / h), uint8((x * y) % 256), 255})
		}
	}
	return img
}

// dfewFixture is a small DFEW tree: clips 1..6 in clip_224x224 (clip i has
// lengths[i-1] frames, 8×8 pixels), a 16-frame copy of clip 1 in
// clip_224x224_16f, and fold-1 split CSVs.
type dfewFixture struct {
	root    string
	lengths []int
}

func newDFEWFixture(t *testing.T) *dfewFixture {
	t.Helper()
	f := &dfewFixture{root: t.TempDir(), lengths: []int{40, 16, 5, 20, 9, 30}}
	for i, n := range f.lengths {
		writeIndexedClip(t, filepath.Join(f.root, "Clip", "clip_224x224", fmt.Sprintf("%05d", i+1)), n, 8)
	}
	for i := range f.lengths {
		writeIndexedClip(t, filepath.Join(f.root, "Clip", "clip_224x224_16f", fmt.Sprintf("%05d", i+1)), 16, 8)
	}
	// labels: happy, sad, neutral, angry (train) / surprise, fear (test)
	f.split(t, "train", 1, "video_name,label\n1,1\n2,2\n3,3\n4,4\n")
	f.split(t, "test", 1, "video_name,label\r\n5,5\r\n6,7\r\n")
	return f
}

func (f *dfewFixture) split(t *testing.T, split string, fold int, content string) {
	writeFile(t, filepath.Join(f.root, "EmoLabel_DataSplit", split+"(single-labeled)", fmt.Sprintf("set_%d.csv", fold)), content)
}

// wantErr fails unless err is non-nil and mentions every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}
