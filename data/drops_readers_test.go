package data

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Silently dropped data (issue #11): every listed sample a reader leaves
// out is counted by reason, rows that cannot be parsed are errors naming
// the file and line, and headers are read by name in any order.

func TestRAFDBDropsAndEncodings(t *testing.T) {
	root := t.TempDir()
	for _, stem := range []string{"train_00001", "Train_00002", "test_0001"} {
		writeJPEG(t, filepath.Join(root, "Image", "aligned", stem+"_aligned.jpg"), pattern(10, 10))
	}
	list := filepath.Join(root, "EmoLabel", "list_patition_label.txt")
	// a byte-order mark and CRLF (a list saved on Windows), a capitalised
	// prefix, and two names that belong to no split
	writeFile(t, list, "\ufefftrain_00001.jpg 5\r\nTrain_00002.jpg 1\r\nimg_0003.jpg 2\r\nval_0004.jpg 3\r\ntest_0001.jpg 7\r\n")
	tr, err := OpenRAFDB(root, "train", RAFDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 2 || tr.ID(0) != "train_00001.jpg" {
		t.Fatalf("train: %d images (%v)", tr.Len(), tr.Items)
	}
	if c := tr.Drops().Counts()[`name starts with neither "train_" nor "test_"`]; c != 2 || !strings.Contains(tr.Drops().String(), "img_0003.jpg") {
		t.Fatalf("drops: %q", tr.Drops().String())
	}
	writeFile(t, list, "\xff\xfet\x00r\x00a\x00i\x00n\x00")
	_, err = OpenRAFDB(root, "train", RAFDBOptions{})
	wantErr(t, err, list, "UTF-16", "UTF-8")
	writeFile(t, list, "train_00001.jpg 5 extra\n")
	_, err = OpenRAFDB(root, "train", RAFDBOptions{})
	wantErr(t, err, list+" line 1")
}

func TestAffectNetHeaderByNameAndDrops(t *testing.T) {
	root := t.TempDir()
	imgs := filepath.Join(root, "Manually_Annotated_Images")
	writeJPEG(t, filepath.Join(imgs, "1", "a.jpg"), pattern(40, 30))
	// known columns in another order, with other capitalisation
	writeFile(t, filepath.Join(root, "training.csv"), "Expression,face_x,face_y,face_width,face_height,SubDirectory_FilePath\n"+
		"3,1,2,10,10,1/a.jpg\n8,0,0,5,5,1/b.jpg\n9,0,0,5,5,1/c.jpg\n7,0,0,5,5,1/d.jpg\n")
	d, err := OpenAffectNet(root, "train", AffectNetOptions{FaceBox: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1 || d.ID(0) != "1/a.jpg" || d.Label(0) != 3 || d.Items[0].Box.Dx() != 10 {
		t.Fatalf("items: %+v", d.Items)
	}
	c := d.Drops().Counts()
	if c["expression 8 (None) is not one of the 7 classes"] != 1 || c["expression 9 (Uncertain) is not one of the 7 classes"] != 1 ||
		c["expression 7 (contempt) is not one of the 7 classes"] != 1 || d.Drops().Total() != 3 {
		t.Fatalf("drops: %q", d.Drops().String())
	}
	writeFile(t, filepath.Join(root, "training.csv"), "expression,subDirectory_filePath\n3,1/a.jpg\nNaN,1/b.jpg\n")
	_, err = OpenAffectNet(root, "train", AffectNetOptions{})
	wantErr(t, err, "training.csv line 3", `"NaN"`)
	writeFile(t, filepath.Join(root, "training.csv"), "valence,arousal\n0.1,0.2\n")
	_, err = OpenAffectNet(root, "train", AffectNetOptions{})
	wantErr(t, err, "lacks the column subDirectory_filePath")
}

func TestFERPlusVotesByNameNonFiniteAndDrops(t *testing.T) {
	root := t.TempDir()
	px := strings.TrimSpace(strings.Repeat("9 ", 48*48))
	old := "emotion,pixels,Usage\n0," + px + ",Training\n1," + px + ",Training\n2," + px + ",Training\n3," + px + ",Training\n"
	writeFile(t, filepath.Join(root, "fer2013.csv"), old)
	// the vote columns in reverse order: read by name
	writeFile(t, filepath.Join(root, "fer2013new.csv"), "Usage,Image name,NF,unknown,contempt,fear,disgust,anger,sadness,surprise,happiness,neutral\n"+
		"Training,a.png,0,0,0,0,0,0,0,1,9,0\n"+ // happiness
		"Training,b.png,0,6,0,0,0,0,0,0,0,4\n"+ // unknown majority
		"Training,c.png,10,0,0,0,0,0,0,0,0,0\n"+ // not a face
		"Training,,0,0,0,0,0,0,0,0,0,10\n") // no image name
	d, err := OpenFERPlus(root, "train", FERPlusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1 || FERPlusClasses[d.Label(0)] != "happiness" {
		t.Fatalf("items: %+v", d.Items)
	}
	if d.Drops().Total() != 3 || !strings.Contains(d.Drops().String(), "NF (not a face) (c.png)") || !strings.Contains(d.Drops().String(), "unknown") {
		t.Fatalf("drops: %q", d.Drops().String())
	}
	for _, bad := range []string{"NaN", "Inf", "-1", "x"} {
		writeFile(t, filepath.Join(root, "fer2013new.csv"), "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"+
			"Training,a.png,0,0,0,0,0,0,0,1,9,0\nTraining,b.png,"+bad+",9,0,0,0,0,0,0,0,0\nTraining,c.png,10,0,0,0,0,0,0,0,0,0\nTraining,d.png,10,0,0,0,0,0,0,0,0,0\n")
		_, err = OpenFERPlus(root, "train", FERPlusOptions{})
		wantErr(t, err, "fer2013new.csv line 3", fmt.Sprintf("neutral vote %q", bad))
	}
}

func TestDFEWHeaderByName(t *testing.T) {
	f := newDFEWFixture(t)
	f.split(t, "train", 1, "\ufefflabel,video_name\n1,1\n2,2\n")
	d, err := OpenDFEW(f.root, 1, "train", DFEWOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 || d.Clips[0].ID != "00001" || d.Clips[0].Label != 0 || d.Clips[1].Label != 1 {
		t.Fatalf("clips: %+v", d.Clips)
	}
	f.split(t, "train", 1, "video_name,emotion\n1,1\n")
	_, err = OpenDFEW(f.root, 1, "train", DFEWOptions{})
	wantErr(t, err, "set_1.csv line 1", "video_name and label")
}

func TestClipDropsAreCounted(t *testing.T) {
	f := newDFEWFixture(t) // train clips of 40, 16, 5 and 20 frames
	d, err := OpenDFEW(f.root, 1, "train", DFEWOptions{ClipOptions: ClipOptions{MinFrames: 16}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || d.Drops().Counts()["fewer than min_frames = 16 frames"] != 1 || !strings.Contains(d.Drops().String(), "00003 (5)") {
		t.Fatalf("%d clips, drops %q", d.Len(), d.Drops().String())
	}
	// AFEW: a file that is neither a clip folder nor a video
	root := t.TempDir()
	for _, e := range []string{"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"} {
		writeIndexedClip(t, filepath.Join(root, "Train", e, "001"), 3, 8)
	}
	writeFile(t, filepath.Join(root, "Train", "Happy", "002.zip"), "an archive left packed")
	a, err := OpenAFEW(root, "train", ClipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 7 || a.Drops().Total() != 1 || !strings.Contains(a.Drops().String(), "Happy/002.zip") {
		t.Fatalf("%d clips, drops %q", a.Len(), a.Drops().String())
	}
}
