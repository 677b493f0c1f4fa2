package data

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// Fuzz targets for the label and annotation parsers. The pattern, for
// every reader (copy it for a new format):
//
//   - one Fuzz<Format> per parser, calling the parser on the fuzzed bytes
//     exactly as Open<Format> calls it on the file (parsers take an
//     io.Reader, or an fs.FS for folder layouts, so no file is written);
//   - seeds with f.Add: a valid file as the dataset ships it, and the
//     variants a user's copy has (byte-order mark, CRLF, reordered header,
//     extra columns, non-finite numbers, odd prefixes); crashers the
//     fuzzer finds are saved under testdata/fuzz/<FuzzName>/ and stay
//     seeds. `go test ./...` runs every seed;
//   - the property: no panic, no hang; an error, or rows that satisfy the
//     format's contract (labels in range, every input row either kept,
//     in the other split, or counted in Drops).
//
// Fuzz one target at a time, with one worker (the machine is shared):
//
//	go test ./data -run '^$' -fuzz '^FuzzRAFDBList$' -fuzztime 5m -parallel 1

func FuzzRAFDBList(f *testing.F) {
	f.Add([]byte("train_00001.jpg 5\ntrain_00002.jpg 1\ntest_0001.jpg 7\n"), "train")
	f.Add([]byte("\ufefftrain_00001.jpg 5\r\ntest_0001.jpg 7\r\n"), "test")
	f.Add([]byte("Train_00001.jpg 5\nimg_3.jpg 2\n\n  test_0002.jpg\t3  \n"), "train")
	f.Add([]byte("train_00001.jpg 8\n"), "train")
	f.Add([]byte("train_00001.jpg five\n"), "train")
	f.Add([]byte("\xff\xfet\x00r\x00"), "train")
	f.Add([]byte("aligned/train_00009.jpg 6\n"), "train")
	f.Fuzz(func(t *testing.T, b []byte, split string) {
		if split != "train" && split != "test" {
			return
		}
		drops := &Drops{}
		rows, err := parseRAFDBList(bytes.NewReader(b), "list.txt", split, drops)
		if err != nil {
			if !strings.Contains(err.Error(), "list.txt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range rows {
			if r.label < 0 || r.label >= len(RAFDBClasses) || r.name == "" {
				t.Fatalf("row %+v", r)
			}
		}
	})
}

func FuzzAffectNetCSV(f *testing.F) {
	header := "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
	row := func(name string, expr string) string {
		return name + ",10,12,80,90,\"1.0;2.0\"," + expr + ",0.5,-0.2\n"
	}
	f.Add([]byte(header+row("1/a.jpg", "1")+row("2/b.jpg", "8")+row("3/c.jpg", "7")), 7, true)
	f.Add([]byte(row("1/a.jpg", "0")+row("2/b.jpg", "10")), 8, false)
	f.Add([]byte("expression,subDirectory_filePath\n3,x/y.png\n9,z.png\n"), 7, false)
	f.Add([]byte("\ufeffSUBDIRECTORY_FILEPATH,Expression\r\nq.jpg,NaN\r\n"), 7, false)
	f.Add([]byte(header+row("1/a.jpg", "11")), 8, true)
	f.Add([]byte(header+"a.jpg,-1,0,99999999999,1,,2,0,0\n"), 7, true)
	f.Add([]byte("\"unterminated,1\n"), 7, false)
	f.Fuzz(func(t *testing.T, b []byte, nc int, faceBox bool) {
		if nc != 7 && nc != 8 {
			return
		}
		drops := &Drops{}
		rows, err := parseAffectNetCSV(bytes.NewReader(b), "training.csv", nc, faceBox, drops)
		if err != nil {
			if !strings.Contains(err.Error(), "training.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range rows {
			if r.label < 0 || r.label >= nc || r.id == "" {
				t.Fatalf("row %+v", r)
			}
			if faceBox && (r.box.Dx() < 1 || r.box.Dy() < 1) {
				t.Fatalf("empty face box %v", r.box)
			}
		}
	})
}

func FuzzFERPlusCSV(f *testing.F) {
	px := strings.TrimSpace(strings.Repeat("7 ", 48*48))
	old := "emotion,pixels,Usage\n0," + px + ",Training\n3," + px + ",Training\n2," + px + ",PublicTest\n"
	nw := "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n" +
		"Training,fer0000000.png,4,0,0,1,0,0,0,0,5,0\nTraining,,10,0,0,0,0,0,0,0,0,0\nPublicTest,fer0000002.png,0,10,0,0,0,0,0,0,0,0\n"
	f.Add([]byte(old), []byte(nw), "Training")
	f.Add([]byte(old), []byte(strings.Replace(nw, "4,0,0,1", "NaN,0,0,1", 1)), "Training")
	f.Add([]byte(old), []byte(strings.Replace(nw, "Usage,Image name,neutral", "Image name,Usage,neutral", 1)), "Training")
	f.Add([]byte("\ufeff"+old), []byte(strings.ReplaceAll(nw, "\n", "\r\n")), "PublicTest")
	f.Add([]byte(old), []byte("Usage,Image name,NF,unknown,contempt,fear,disgust,anger,sadness,surprise,happiness,neutral\nTraining,a.png,0,0,0,0,0,0,0,0,0,9\n"), "Training")
	f.Add([]byte("emotion,pixels,Usage\n0,1 2 3,Training\n"), []byte("Usage,Image name\nTraining,a.png\n"), "Training")
	f.Fuzz(func(t *testing.T, oldB, newB []byte, usage string) {
		drops := &Drops{}
		items, err := parseFERPlus(bytes.NewReader(oldB), bytes.NewReader(newB), "fer2013.csv", "fer2013new.csv", usage, drops)
		if err != nil {
			if !strings.Contains(err.Error(), "fer2013") {
				t.Fatalf("error does not name a file: %v", err)
			}
			return
		}
		for _, it := range items {
			if it.Label < 0 || it.Label >= len(FERPlusClasses) || it.ID == "" || it.Pixels == nil {
				t.Fatalf("item %+v", it)
			}
		}
	})
}

func FuzzDFEWSplit(f *testing.F) {
	f.Add([]byte("video_name,label\n1,1\n2,7\n10,3\n"))
	f.Add([]byte("\ufefflabel,video_name\r\n5,00012\r\n"))
	f.Add([]byte("1,1\n1,2\n"))
	f.Add([]byte("video_name,label\n3,0\n"))
	f.Add([]byte("video_name,label,extra\n3,1,x\n"))
	f.Add([]byte("\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := parseDFEWSplit(bytes.NewReader(b), "set_1.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "set_1.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no rows and no error")
		}
		seen := map[int]bool{}
		for _, r := range rows {
			if r.label < 0 || r.label >= len(DFEWClasses) || r.video < 0 || seen[r.video] {
				t.Fatalf("row %+v", r)
			}
			seen[r.video] = true
		}
	})
}

// FuzzAFEWTree builds an AFEW folder tree from the fuzzed input (one
// slash-separated path per line; a trailing slash makes a folder) and
// lists it.
func FuzzAFEWTree(f *testing.F) {
	all := func(split string) string {
		var b strings.Builder
		for _, e := range []string{"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"} {
			b.WriteString(split + "/" + e + "/001/\n" + split + "/" + e + "/002.avi\n")
		}
		return b.String()
	}
	f.Add(all("Train"), "train")
	f.Add(all("Val")+"Val/Happy/notes.txt\nVal/Sad/.DS_Store\n", "val")
	f.Add(strings.ToLower(all("train")), "train")
	f.Add(all("Train")+"Train/happy/003/\n", "train")
	f.Add(all("Train")+"Train/Happy/001.avi\n", "train")
	f.Add(all("Train")+"Train/Contempt/x/\n", "train")
	f.Add("Val/Happy/1/\n", "val")
	f.Fuzz(func(t *testing.T, tree, split string) {
		if split != "train" && split != "val" {
			return
		}
		fsys := fstest.MapFS{}
		for _, l := range strings.Split(tree, "\n") {
			if l == "" || strings.HasPrefix(l, "/") || strings.Contains(l, "//") {
				continue
			}
			if strings.HasSuffix(l, "/") {
				fsys[strings.TrimSuffix(l, "/")] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
			} else {
				fsys[l] = &fstest.MapFile{Data: []byte("x")}
			}
		}
		drops := &Drops{}
		clips, err := listAFEW(fsys, "/afew", split, drops)
		if err != nil {
			if !strings.Contains(err.Error(), "afew") {
				t.Fatalf("error does not name the data set: %v", err)
			}
			return
		}
		ids := map[string]bool{}
		for _, c := range clips {
			if c.Label < 0 || c.Label >= len(DFEWClasses) || ids[c.ID] {
				t.Fatalf("clip %+v", c)
			}
			ids[c.ID] = true
		}
	})
}
