package rmset

import (
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const goodIndex = `video,person,frame,time,x,y,w,h,file
mashup,0,0,0.0000,412,96,150,150,mashup/p0/000000.jpg
mashup,1,0,0.0000,30,300,140,141,mashup/p1/000000.jpg
mashup,0,1,0.0417,414,97,150,150,mashup/p0/000001.jpg
other,0,5,0.2000,1,2,3,4,other/p0/000005.jpg
`

// TestReadIndex reads the builder's format (folder or file), by column
// name (extra columns and another order are fine), and answers the
// sampler's questions.
func TestReadIndex(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(goodIndex), 0o644)
	for _, p := range []string{dir, filepath.Join(dir, IndexFile)} {
		ix, err := ReadIndex(p)
		if err != nil {
			t.Fatal(err)
		}
		if ix.Root != dir || len(ix.Faces) != 4 {
			t.Fatalf("%s: root %s, %d faces", p, ix.Root, len(ix.Faces))
		}
		f := ix.Faces[1]
		want := Face{Video: "mashup", Person: 1, Frame: 0, Time: 0, Box: image.Rect(30, 300, 170, 441), File: "mashup/p1/000000.jpg"}
		if f != want {
			t.Fatalf("row 2: %+v, want %+v", f, want)
		}
		if ix.Path(f) != filepath.Join(dir, "mashup", "p1", "000000.jpg") {
			t.Fatalf("path %s", ix.Path(f))
		}
		if !slices.Equal(ix.Videos(), []string{"mashup", "other"}) || !slices.Equal(ix.People("mashup"), []int{0, 1}) {
			t.Fatalf("videos %v, people %v", ix.Videos(), ix.People("mashup"))
		}
	}
	// the minimal columns, in another order, plus an unknown one
	faces, err := ParseIndex(strings.NewReader("file,frame,extra,person,video\na/p3/1.jpg,7,x,3,a\n"))
	if err != nil || len(faces) != 1 || faces[0] != (Face{Video: "a", Person: 3, Frame: 7, File: "a/p3/1.jpg"}) {
		t.Fatalf("%+v %v", faces, err)
	}
	// records written by the builder read back
	rec := strings.Join(IndexHeader, ",") + "\n" + strings.Join(record(want()), ",") + "\n"
	if faces, err := ParseIndex(strings.NewReader(rec)); err != nil || faces[0] != want() {
		t.Fatalf("round trip: %+v %v", faces, err)
	}
}

func want() Face {
	return Face{Video: "v", Person: 2, Frame: 40, Time: 1.6683, Box: image.Rect(-3, 5, 97, 105), File: "v/p2/000040.jpg"}
}

// TestParseIndexErrors: each malformed index is one error naming the line.
func TestParseIndexErrors(t *testing.T) {
	h := "video,person,frame,time,x,y,w,h,file\n"
	for _, c := range []struct{ in, want string }{
		{"", "empty file"},
		{"video,person,file\n", `no "frame" column`},
		{"video,video,person,frame,file\n", "twice"},
		{h + "v,0,0,0,1,1,2,2\n", "line 2: 8 fields"},
		{h + "v,-1,0,0,1,1,2,2,v/a.jpg\n", "line 2: person"},
		{h + "v,0,x,0,1,1,2,2,v/a.jpg\n", "line 2: frame"},
		{h + "v,0,0,abc,1,1,2,2,v/a.jpg\n", "line 2: time"},
		{h + "v,0,0,NaN,1,1,2,2,v/a.jpg\n", "line 2: time"},
		{h + "v,0,0,0,1,1,0,2,v/a.jpg\n", "line 2: box"},
		{h + "v,0,0,0,1,1,2,2,/etc/passwd\n", "line 2: file"},
		{h + "v,0,0,0,1,1,2,2,v/../../x.jpg\n", "line 2: file"},
		{h + ",0,0,0,1,1,2,2,v/a.jpg\n", "line 2: empty video"},
		{h + "v,0,0,0,1,1,2,2,v/a.jpg\nv,0,0,0,1,1,2,2,v/b.jpg\n", "line 3: video v person 0 frame 0 already on line 2"},
		{h + "v,0,0,0,1,1,2,2,\"v/a.jpg\n", "line 2"},
	} {
		_, err := ParseIndex(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := ReadIndex(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing index accepted")
	}
	if _, err := ReadIndex(t.TempDir()); err == nil || !strings.Contains(err.Error(), "rmset build") {
		t.Fatalf("folder without index: %v", err)
	}
}

// FuzzParseIndex: ParseIndex never panics, and what it accepts it writes
// back (record) and reads again to the same faces.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(goodIndex))
	f.Add([]byte("file,frame,person,video\na.jpg,1,2,v\n"))
	f.Add([]byte("video,person,frame,time,x,y,w,h,file\nv,0,0,1e300,1,1,2,2,v/a.jpg\n"))
	f.Add([]byte("\ufeffvideo,person,frame,file\n\"v,\"\"x\",0,0,\"a\nb.jpg\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		faces, err := ParseIndex(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		var sb strings.Builder
		sb.WriteString(strings.Join(IndexHeader, ",") + "\n")
		for _, fc := range faces {
			if fc.Box.Empty() {
				fc.Box = image.Rect(0, 0, 1, 1)
			}
			rec := record(fc)
			for i, v := range rec {
				if strings.ContainsAny(v, ",\"\n\r") || v != strings.TrimSpace(v) {
					rec[i] = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
				}
			}
			sb.WriteString(strings.Join(rec, ",") + "\n")
		}
		again, err := ParseIndex(strings.NewReader(sb.String()))
		if err != nil {
			t.Fatalf("re-reading accepted rows: %v\n%s", err, sb.String())
		}
		if len(again) != len(faces) {
			t.Fatalf("%d faces, %d after the round trip", len(faces), len(again))
		}
		for i := range faces {
			a, b := faces[i], again[i]
			if a.Video != b.Video || a.Person != b.Person || a.Frame != b.Frame || a.File != b.File {
				t.Fatalf("row %d: %+v became %+v", i, a, b)
			}
		}
	})
}

// TestSidecar: the YAML's rectangles, and its errors; --remove's format.
func TestSidecar(t *testing.T) {
	s, err := ParseSidecar([]byte("remove:\n  - [0, 0, 360, 264]\nboxes:\n  - [700, 300, 120, 110]\n"))
	if err != nil || len(s.Remove) != 1 || s.Remove[0] != image.Rect(0, 0, 360, 264) || s.Boxes[0] != image.Rect(700, 300, 820, 410) {
		t.Fatalf("%+v %v", s, err)
	}
	if s, err := ParseSidecar(nil); err != nil || len(s.Remove)+len(s.Boxes) != 0 {
		t.Fatalf("empty: %+v %v", s, err)
	}
	for _, bad := range []string{"remove: [[0, 0, 360]]\n", "boxes: [[1, 2, 0, 4]]\n", "removal: [[0,0,1,1]]\n", "remove: x\n"} {
		if _, err := ParseSidecar([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	dir := t.TempDir()
	v := filepath.Join(dir, "clip.mp4")
	os.WriteFile(filepath.Join(dir, "clip.rmset.yaml"), []byte("boxes:\n  - [1, 2, 3, 4]\n"), 0o644)
	if s, p, err := LoadSidecar(v); err != nil || len(s.Boxes) != 1 || p != filepath.Join(dir, "clip.rmset.yaml") {
		t.Fatalf("%+v %s %v", s, p, err)
	}
	os.WriteFile(v+SidecarExt, []byte("remove: [[1]]\n"), 0o644)
	if _, _, err := LoadSidecar(v); err == nil || !strings.Contains(err.Error(), v+SidecarExt) {
		t.Fatalf("bad sidecar: %v", err)
	}
	if r, err := ParseRect("10, 20,30,40"); err != nil || r != image.Rect(10, 20, 40, 60) {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range []string{"1,2,3", "a,b,c,d", "0,0,0,5"} {
		if _, err := ParseRect(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReadingOrder: first-frame people are numbered top to bottom, left
// to right, tolerating small vertical offsets within a row.
func TestReadingOrder(t *testing.T) {
	ps := []person{{Box: image.Rect(400, 300, 500, 400)}, {Box: image.Rect(10, 20, 110, 120)}, {Box: image.Rect(0, 310, 100, 410)}, {Box: image.Rect(420, 0, 520, 100)}}
	readingOrder(ps)
	got := []int{ps[0].Box.Min.X, ps[1].Box.Min.X, ps[2].Box.Min.X, ps[3].Box.Min.X}
	if !slices.Equal(got, []int{10, 420, 0, 400}) {
		t.Fatalf("order %v", got)
	}
}
