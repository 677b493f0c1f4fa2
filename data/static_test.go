package data

import (
	"fmt"
	"image"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

func TestOpenRAFDB(t *testing.T) {
	root := t.TempDir()
	list := "train_00001.jpg 5\ntrain_00002.jpg 1\ntest_0001.jpg 7\ntrain_00003.jpg 4\n\ntest_0002.jpg 2\n"
	writeFile(t, filepath.Join(root, "EmoLabel", "list_patition_label.txt"), list)
	for _, stem := range []string{"train_00001", "train_00002", "train_00003", "test_0001", "test_0002"} {
		writeJPEG(t, filepath.Join(root, "Image", "aligned", stem+"_aligned.jpg"), pattern(10, 10))
	}
	tr, err := OpenRAFDB(root, "train", RAFDBOptions{Transform: Transform{Size: 8}})
	if err != nil {
		t.Fatal(err)
	}
	// 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
	if tr.Len() != 3 || tr.Label(0) != 4 || tr.Label(1) != 0 || tr.Label(2) != 3 ||
		RAFDBClasses[tr.Label(0)] != "sadness" || RAFDBClasses[tr.Label(2)] != "happiness" {
		t.Fatalf("train labels %v", []int{tr.Label(0), tr.Label(1), tr.Label(2)})
	}
	te, err := OpenRAFDB(root, "test", RAFDBOptions{})
	if err != nil || te.Len() != 2 || RAFDBClasses[te.Label(0)] != "neutral" || RAFDBClasses[te.Label(1)] != "fear" {
		t.Fatalf("test: %v %+v", err, te)
	}
	s, err := tr.Load(0, nil, false)
	if err != nil || !slices.Equal(s.Shape, []int{3, 8, 8}) || s.ID != "train_00001.jpg" {
		t.Fatalf("load: %v %+v", err, s.Shape)
	}
	if got := te.SampleShape(); !slices.Equal(got, []int{3, 112, 112}) {
		t.Errorf("default size: %v", got)
	}
	// Preprocess (for predicting one picture) of the decoded file equals
	// the test transform of Load.
	var dec imaging.RGB
	if err := imaging.DecodeFile(filepath.Join(root, "Image", "aligned", "train_00001_aligned.jpg"), &dec); err != nil {
		t.Fatal(err)
	}
	pic := image.NewNRGBA(image.Rect(0, 0, dec.W, dec.H))
	for i := range dec.W * dec.H {
		copy(pic.Pix[4*i:4*i+3], dec.Pix[3*i:3*i+3])
		pic.Pix[4*i+3] = 255
	}
	p, err := tr.Preprocess(pic)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p, s.Data) {
		t.Fatalf("preprocess %v\nload %v", p[:8], s.Data[:8])
	}

	writeFile(t, filepath.Join(root, "EmoLabel", "list_patition_label.txt"), list+"train_00009.jpg 3\n")
	_, err = OpenRAFDB(root, "train", RAFDBOptions{})
	wantErr(t, err, "train_00009_aligned.jpg", "not found")
	writeFile(t, filepath.Join(root, "EmoLabel", "list_patition_label.txt"), list+"train_00003.jpg 8\n")
	_, err = OpenRAFDB(root, "train", RAFDBOptions{})
	wantErr(t, err, "line 7", "label 8 out of range")
	writeFile(t, filepath.Join(root, "EmoLabel", "list_patition_label.txt"), "train_00001.jpg\n")
	_, err = OpenRAFDB(root, "train", RAFDBOptions{})
	wantErr(t, err, "line 1", "<image name> <label>")
	_, err = OpenRAFDB(t.TempDir(), "train", RAFDBOptions{})
	wantErr(t, err, "list_patition_label.txt", "basic/")
}

func TestOpenAffectNet(t *testing.T) {
	root := t.TempDir()
	imgs := filepath.Join(root, "Manually_Annotated_Images")
	writeJPEG(t, filepath.Join(imgs, "1", "a.jpg"), pattern(40, 30))
	writeJPEG(t, filepath.Join(imgs, "1", "b.jpg"), pattern(40, 30))
	header := "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
	rows := "1/a.jpg,10,5,20,20,1.0;2.0;3.0,1,0.5,0.2\n" + // happy
		"1/b.jpg,0,0,40,30,,7,-0.3,0.4\n" + // contempt: AffectNet-8 only
		"1/c.jpg,0,0,40,30,,8,-2,-2\n" + // None: dropped
		"1/d.jpg,0,0,40,30,,10,-2,-2\n" // No-Face: dropped
	writeFile(t, filepath.Join(root, "training.csv"), header+rows)
	writeFile(t, filepath.Join(root, "validation.csv"), rows) // no header row
	d7, err := OpenAffectNet(root, "train", AffectNetOptions{Transform: Transform{Size: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if d7.Len() != 1 || d7.Label(0) != 1 || len(d7.Classes()) != 7 || d7.Classes()[1] != "happy" {
		t.Fatalf("affectnet-7: %d images, classes %v", d7.Len(), d7.Classes())
	}
	d8, err := OpenAffectNet(root, "val", AffectNetOptions{Classes: 8, FaceBox: true, Transform: Transform{Size: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if d8.Len() != 2 || d8.Label(1) != 7 || d8.Classes()[7] != "contempt" || d8.Items[0].Box != image.Rect(10, 5, 30, 25) {
		t.Fatalf("affectnet-8 val: %+v", d8.Items)
	}
	if _, err := d8.Load(0, nil, false); err != nil {
		t.Fatal(err)
	}
	// The face box is cut out before resizing: sample 0 equals loading a
	// 20×20 crop of the image.
	s, _ := d8.Load(0, nil, false)
	var img imaging.RGB
	if err := decodeImageFile(filepath.Join(imgs, "1", "a.jpg"), &img); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(s.Data))
	tr := d8.Transform()
	if err := tr.apply(&img, image.Rect(0, 0, img.W, img.H), plan{crop: image.Rect(10, 5, 30, 25)}, want, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Data, want) {
		t.Error("face box not applied")
	}

	writeFile(t, filepath.Join(root, "training.csv"), header+"1/a.jpg,1,2,3,4,,x,0,0\n")
	_, err = OpenAffectNet(root, "train", AffectNetOptions{})
	wantErr(t, err, "training.csv line 2", `expression "x"`)
	_, err = OpenAffectNet(root, "train", AffectNetOptions{Classes: 6})
	wantErr(t, err, "classes = 6")
	_, err = OpenAffectNet(root, "train", AffectNetOptions{ImageDir: "Images"})
	wantErr(t, err, "Images", "image_dir")
	// a missing image fails when loaded, naming it
	writeFile(t, filepath.Join(root, "training.csv"), header+"1/zz.jpg,1,2,3,4,,0,0,0\n")
	d, err := OpenAffectNet(root, "train", AffectNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Load(0, nil, false)
	wantErr(t, err, filepath.Join(imgs, "1", "zz.jpg"))
}

// Vote rows (neutral, happiness, surprise, sadness, anger, disgust, fear,
// contempt, unknown, NF) and the label microsoft/FERPlus's majority mode
// gives them, worked by hand.
func TestFERPlusMajority(t *testing.T) {
	cases := []struct {
		votes [10]float64
		label int
		ok    bool
	}{
		{[10]float64{10}, 0, true},                            // unanimous neutral
		{[10]float64{4, 6}, 1, true},                          // 6 > 0.5·10
		{[10]float64{5, 5}, 8, false},                         // 5 is not > 5: unknown
		{[10]float64{4, 3, 1, 1, 1}, 0, true},                 // single votes removed: 4 > 0.5·7
		{[10]float64{3, 3, 1, 1, 1, 1}, 8, false},             // 3 vs 6: no majority
		{[10]float64{0, 0, 0, 0, 0, 0, 0, 7, 3}, 7, true},     // contempt
		{[10]float64{0, 2, 0, 0, 0, 0, 0, 0, 0, 8}, 9, false}, // not a face
		{[10]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 8, false}, // all single votes
		{[10]float64{2, 0, 0, 0, 0, 0, 0, 0, 6, 2}, 8, false}, // majority unknown
		{[10]float64{0, 0, 3, 0, 0, 2}, 2, true},              // 3 > 2.5
	}
	for _, c := range cases {
		l, ok := FERPlusMajority(c.votes)
		if ok != c.ok || l != c.label {
			t.Errorf("votes %v: label %d ok %v, want %d %v", c.votes, l, ok, c.label, c.ok)
		}
	}
}

func TestOpenFERPlus(t *testing.T) {
	root := t.TempDir()
	px := func(v int) string { return strings.TrimSpace(strings.Repeat(fmt.Sprint(v, " "), 48*48)) }
	old := "emotion,pixels,Usage\n" +
		"0," + px(10) + ",Training\n" +
		"3," + px(20) + ",Training\n" +
		"3," + px(30) + ",Training\n" +
		"4," + px(40) + ",Training\n" +
		"6," + px(50) + ",PublicTest\n" +
		"2," + px(60) + ",PrivateTest\n"
	votes := "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n" +
		"Training,fer0000000.png,0,8,1,0,0,0,1,0,0,0\n" + // happiness
		"Training,fer0000001.png,5,5,0,0,0,0,0,0,0,0\n" + // no majority: dropped
		"Training,,0,0,0,10,0,0,0,0,0,0\n" + // no image name: dropped
		"Training,fer0000003.png,0,0,0,2,7,0,0,0,1,0\n" + // anger
		"PublicTest,fer0000004.png,0,0,0,0,0,0,0,0,0,10\n" + // NF: dropped
		"PrivateTest,fer0000005.png,0,0,9,0,0,0,0,0,1,0\n" // surprise
	writeFile(t, filepath.Join(root, "fer2013.csv"), old)
	writeFile(t, filepath.Join(root, "fer2013new.csv"), votes)
	tr, err := OpenFERPlus(root, "train", FERPlusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 2 || tr.ID(0) != "fer0000000.png" || FERPlusClasses[tr.Label(0)] != "happiness" || FERPlusClasses[tr.Label(1)] != "anger" {
		t.Fatalf("train: %+v", tr.Items)
	}
	s, err := tr.Load(1, nil, false)
	if err != nil || !slices.Equal(s.Shape, []int{3, 48, 48}) {
		t.Fatalf("load: %v %v", err, s.Shape)
	}
	for _, v := range s.Data { // row 4 (fer0000003) is grey 40 everywhere
		if math.Abs(float64(v)*255-40) > 1e-3 {
			t.Fatalf("pixel %v, want 40/255", v*255)
		}
	}
	te, err := OpenFERPlus(root, "test", FERPlusOptions{})
	if err != nil || te.Len() != 1 || FERPlusClasses[te.Label(0)] != "surprise" {
		t.Fatalf("test: %v", err)
	}
	_, err = OpenFERPlus(root, "val", FERPlusOptions{})
	wantErr(t, err, "no images")

	writeFile(t, filepath.Join(root, "fer2013.csv"), strings.Replace(old, px(10), px(10)+" 7", 1))
	_, err = OpenFERPlus(root, "train", FERPlusOptions{})
	wantErr(t, err, "fer2013.csv line 2", "2304")
	writeFile(t, filepath.Join(root, "fer2013.csv"), strings.Replace(old, "4,"+px(40)+",Training", "4,"+px(40)+",PublicTest", 1))
	_, err = OpenFERPlus(root, "train", FERPlusOptions{})
	wantErr(t, err, "data row 4", "not aligned")
	writeFile(t, filepath.Join(root, "fer2013.csv"), old[:strings.LastIndex(old[:len(old)-1], "\n")+1])
	_, err = OpenFERPlus(root, "train", FERPlusOptions{})
	wantErr(t, err, "different numbers of rows")
	_, err = OpenFERPlus(t.TempDir(), "train", FERPlusOptions{})
	wantErr(t, err, "fer2013.csv", "Kaggle")
}
