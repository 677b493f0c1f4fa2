package plots

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const predCSV = `file,frame,time,track,x,y,w,h,score,prediction,neutral,happy,sad,valence,arousal,AU1
a.mp4,0,0.0000,0,1,1,5,5,0.5,happy,0.1,0.8,0.1,0.2,0.3,0.9
a.mp4,0,0.0000,1,9,1,5,5,0.5,sad,0.2,0.1,0.7,0.2,0.3,0.9
a.mp4,2,0.0800,0,1,1,5,5,0.5,happy,0.2,0.7,0.1,0.2,0.3,0.9
a.mp4,40,1.6000,0,1,1,5,5,0.5,happy,0.3,0.6,0.1,0.2,0.3,0.9
b.mp4,0,0.0000,3,1,1,5,5,0.5,happy,0.1,0.8,0.1,0.2,0.3,0.9
`

// TestReadPredictions: predict's CSV and JSON rows group by file and
// track; the class columns end where valence/AU columns begin; photo
// rows and malformed files are errors naming the line.
func TestReadPredictions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rows.csv")
	os.WriteFile(p, []byte(predCSV), 0o644)
	vs, err := ReadPredictions(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].File != "a.mp4" || strings.Join(vs[0].Classes, ",") != "neutral,happy,sad" || len(vs[0].Tracks) != 2 {
		t.Fatalf("%+v", vs)
	}
	tr := vs[0].Tracks[0]
	if tr.ID != 0 || len(tr.Frames) != 3 || tr.Frames[2] != 40 || tr.Times[1] != 0.08 || tr.Probs[1][1] != 0.7 {
		t.Fatalf("track 0: %+v", tr)
	}
	j := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(j, []byte(`{"file":"a.mp4","frame":0,"time":0,"track":0,"probs":{"sad":0.3,"happy":0.7}}
{"file":"a.mp4","frame":1,"time":0.04,"track":0,"probs":{"sad":0.4,"happy":0.6}}
`), 0o644)
	vs, err = ReadPredictions(j)
	if err != nil || len(vs[0].Tracks[0].Frames) != 2 || vs[0].Classes[0] != "happy" || vs[0].Tracks[0].Probs[1][1] != 0.4 {
		t.Fatalf("JSON: %+v %v", vs, err)
	}
	// a figure: one panel per track, the gap at frame 40 splits track 0
	out := filepath.Join(dir, "tl.png")
	vs, _ = ReadPredictions(p)
	if err := Timeline(out, "a", vs[0], TimelineOptions{Smooth: 3}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if w, h := PixelSize(TimelineSize(2)); err != nil || cfg.Width != w || cfg.Height != h {
		t.Fatalf("figure %dx%d %v", cfg.Width, cfg.Height, err)
	}
	for _, c := range []struct{ body, want string }{
		{"file,face,x,y,w,h,score,prediction,happy\nx.jpg,0,1,1,2,2,1,happy,1\n", "photo results"},
		{"file,frame,time,track,prediction,happy\na,x,0,0,happy,1\n", "line 2"},
		{"file,frame,time,track,prediction,happy\na,0,0,0,happy\n", "line 2: 5 fields"},
		{`{"file":"a","frame":0,"probs":{"a":1}}` + "\n", "line 1: no frame, time or track"},
		{"", "empty file"},
	} {
		os.WriteFile(p, []byte(c.body), 0o644)
		if _, err := ReadPredictions(p); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
}
