package data

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenAFEW(t *testing.T) {
	root := t.TempDir()
	// Train: one clip per emotion folder (AFEW's capitalised names),
	// the Happy clip with 18 frames, the others with 4.
	want := map[string]int{"Happy": 0, "Sad": 1, "Neutral": 2, "Angry": 3, "Surprise": 4, "Disgust": 5, "Fear": 6}
	for emo := range want {
		n := 4
		if emo == "Happy" {
			n = 18
		}
		writeIndexedClip(t, filepath.Join(root, "Train", emo, "0001"+emo), n, 8)
		writeIndexedClip(t, filepath.Join(root, "Val", emo, "0002"+emo), 3, 8)
	}
	writeFile(t, filepath.Join(root, "Train", "Happy", "notes.txt"), "ignored")
	d, err := OpenAFEW(root, "train", ClipOptions{Transform: Transform{Size: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 7 {
		t.Fatalf("%d clips, want 7", d.Len())
	}
	for i := range d.Len() {
		emo := filepath.Dir(d.ID(i))
		if d.Label(i) != want[emo] {
			t.Errorf("clip %s label %d, want %d (%s)", d.ID(i), d.Label(i), want[emo], DFEWClasses[want[emo]])
		}
		if d.ID(i) != emo+"/0001"+emo {
			t.Errorf("clip id %s", d.ID(i))
		}
	}
	// "test" is Val; MinFrames 16 keeps only the 18-frame Happy clip of
	// Train and nothing of Val.
	val, err := OpenAFEW(root, "test", ClipOptions{})
	if err != nil || val.Len() != 7 || val.Name != "afew val" {
		t.Fatalf("val: %v, %+v", err, val)
	}
	f, err := OpenAFEW(root, "train", ClipOptions{MinFrames: 16})
	if err != nil || f.Len() != 1 || f.Label(0) != 0 || len(f.Dropped) != 6 {
		t.Fatalf("min_frames 16: %v %+v", err, f)
	}
	_, err = OpenAFEW(root, "val", ClipOptions{MinFrames: 16})
	wantErr(t, err, "no clips left", "7 dropped")

	// Layout errors.
	_, err = OpenAFEW(filepath.Join(root, "missing"), "train", ClipOptions{})
	wantErr(t, err, "missing", "Train/ and Val/")
	_, err = OpenAFEW(root, "dev", ClipOptions{})
	wantErr(t, err, `split = "dev"`)
	if err := os.RemoveAll(filepath.Join(root, "Val", "Fear")); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAFEW(root, "val", ClipOptions{})
	wantErr(t, err, "Val", "fear")
	if err := os.MkdirAll(filepath.Join(root, "Train", "Contempt"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAFEW(root, "train", ClipOptions{})
	wantErr(t, err, "Contempt", "unknown emotion folder")
}
