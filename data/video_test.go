package data

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH (Debian: apt-get install ffmpeg): video decoding not tested", tool)
		}
	}
}

// DFEW's Clip/original videos: a lossless (FFV1) 20-frame video whose
// frame k is grey level 5k, so the decoded frames can be identified.
func TestDFEWOriginalVideo(t *testing.T) {
	needFFmpeg(t)
	f := newDFEWFixture(t)
	frames := filepath.Join(t.TempDir(), "frames")
	writeIndexedClip(t, frames, 20, 8)
	orig := filepath.Join(f.root, "Clip", "original")
	if err := os.MkdirAll(orig, 0o755); err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(orig, "00001.avi")
	out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-framerate", "25", "-i", filepath.Join(frames, "%05d.jpg"), "-c:v", "ffv1", video).CombinedOutput()
	if err != nil {
		t.Fatalf("make test video: %v: %s", err, out)
	}
	f.split(t, "train", 2, "video_name,label\n1,3\n")
	opts := DFEWOptions{Version: DFEWOriginal, ClipOptions: ClipOptions{Transform: Transform{Size: 4}}}
	d, err := OpenDFEW(f.root, 2, "train", opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.Clips[0].Path != video || d.Label(0) != 2 {
		t.Fatalf("clip %+v", d.Clips[0])
	}
	s, err := d.Load(0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pickedFrames(t, s), DefaultSegmentSampler.Indices(20, false, nil); !slices.Equal(got, want) {
		t.Errorf("video frames %v, want %v", got, want)
	}
	// MinFrames counts the video's frames with ffprobe.
	opts.MinFrames = 16
	if d, err = OpenDFEW(f.root, 2, "train", opts); err != nil || d.Clips[0].Frames != 20 {
		t.Fatalf("min_frames 16: %v %+v", err, d)
	}
	opts.MinFrames = 21
	_, err = OpenDFEW(f.root, 2, "train", opts)
	wantErr(t, err, "no clips left", "1 dropped")

	// A broken video fails at load time, naming the file.
	if err := os.WriteFile(video, []byte("RIFF not a video"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.MinFrames = 0
	d, err = OpenDFEW(f.root, 2, "train", opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Load(0, nil, false)
	wantErr(t, err, "00001", video)
}

// A real face video from Debian's opencv-doc package (OpenCV's sample
// data): 270 frames of 720×528.
func TestRealVideoMegamind(t *testing.T) {
	needFFmpeg(t)
	const path = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present (Debian: apt-get install opencv-doc): real-video test skipped", path)
	}
	v, err := decodeVideo(path, 224)
	if err != nil {
		t.Fatal(err)
	}
	// shorter side 528 → 224, 720·224/528 = 305.5 → 305
	if v.len() != 270 || v.w != 305 || v.h != 224 {
		t.Fatalf("decoded %d frames of %dx%d, want 270 of 305x224", v.len(), v.w, v.h)
	}
	n, err := countVideoFrames(path)
	if err != nil || n != 270 {
		t.Fatalf("ffprobe count %d, %v", n, err)
	}
	d, err := NewClipDataset("megamind", []Clip{{ID: "megamind", Path: path, Label: 0}}, DFEWClasses, ClipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Load(0, SampleRNG(1, 0, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Shape, []int{16, 3, 112, 112}) || len(s.Data) != 16*3*112*112 {
		t.Fatalf("shape %v, %d values", s.Shape, len(s.Data))
	}
	lo, hi := slices.Min(s.Data), slices.Max(s.Data)
	if lo < 0 || hi > 1 || hi-lo < 0.3 {
		t.Errorf("pixel range [%v, %v], want a real picture in [0, 1]", lo, hi)
	}
}
