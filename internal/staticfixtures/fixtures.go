// Package staticfixtures writes tiny copies of the still-image FER data
// sets in their real on-disk formats (RAF-DB basic, FERPlus's
// fer2013.csv + fer2013new.csv, AffectNet's CSVs, and the "ImageName
// label" split lists of the public QCS code) for tests. Each class has its
// own colour pattern, so a model can learn them in a few steps.
package staticfixtures

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Face is a w×h picture of class k: a class-specific background colour
// and stripe direction, with noise from seed.
func Face(w, h, k int, seed uint64) *image.NRGBA {
	rng := rand.New(rand.NewPCG(seed, uint64(k)))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	base := [3]int{(k * 97) % 256, (k*53 + 40) % 256, (k*181 + 90) % 256}
	for y := range h {
		for x := range w {
			stripe := 0
			if ((x*(k%3+1) + y*(k/3+1)) / 4 % 2) == 0 {
				stripe = 60
			}
			var c [3]uint8
			for ch := range 3 {
				v := base[ch] + stripe + rng.IntN(30) - 15
				c[ch] = uint8(min(max(v, 0), 255))
			}
			img.SetNRGBA(x, y, color.NRGBA{c[0], c[1], c[2], 255})
		}
	}
	return img
}

// WriteJPEG writes img as a quality-95 JPEG, creating folders.
func WriteJPEG(t testing.TB, path string, img image.Image) {
	t.Helper()
	write(t, path, func(f *os.File) error { return jpeg.Encode(f, img, &jpeg.Options{Quality: 95}) })
}

// WritePNG writes img as a PNG, creating folders.
func WritePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	write(t, path, func(f *os.File) error { return png.Encode(f, img) })
}

// WriteFile writes content, creating folders.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	write(t, path, func(f *os.File) error { _, err := f.WriteString(content); return err })
}

func write(t testing.TB, path string, enc func(*os.File) error) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Size is the side of the fixture images.
const Size = 40

// Counts are the images per class written to each split.
type Counts struct{ Train, Test int }

// RAFDB writes RAF-DB basic's own layout under root:
// EmoLabel/list_patition_label.txt ("train_00001.jpg 5", labels 1..7)
// and Image/aligned/<stem>_aligned.jpg. It returns the number of train
// and test images.
func RAFDB(t testing.TB, root string, n Counts) (int, int) {
	t.Helper()
	var list strings.Builder
	tr, te := 0, 0
	for k := range 7 {
		for i := range n.Train + n.Test {
			var stem string
			if i < n.Train {
				tr++
				stem = fmt.Sprintf("train_%05d", tr)
			} else {
				te++
				stem = fmt.Sprintf("test_%04d", te)
			}
			fmt.Fprintf(&list, "%s.jpg %d\n", stem, k+1)
			WriteJPEG(t, filepath.Join(root, "Image", "aligned", stem+"_aligned.jpg"), Face(Size, Size, k, uint64(100*k+i)))
		}
	}
	WriteFile(t, filepath.Join(root, "EmoLabel", "list_patition_label.txt"), list.String())
	return tr, te
}

// QCSList writes the public QCS code's layout under root: the train and
// test lists (0-based labels of classes classes) and the images under
// root/imageDir/<sub>/, one file per line. ext is ".jpg" or ".png".
func QCSList(t testing.TB, root, trainList, testList, imageDir string, classes int, n Counts, ext string) (int, int) {
	t.Helper()
	var trb, teb strings.Builder
	tr, te := 0, 0
	for k := range classes {
		for i := range n.Train + n.Test {
			name := fmt.Sprintf("c%d/img_%d_%d%s", k, k, i, ext)
			if i < n.Train {
				fmt.Fprintf(&trb, "%s %d\n", name, k)
				tr++
			} else {
				fmt.Fprintf(&teb, "%s %d\n", name, k)
				te++
			}
			img := Face(Size, Size+4, k, uint64(1000+100*k+i))
			if ext == ".png" {
				WritePNG(t, filepath.Join(root, imageDir, name), img)
			} else {
				WriteJPEG(t, filepath.Join(root, imageDir, name), img)
			}
		}
	}
	WriteFile(t, filepath.Join(root, trainList), trb.String())
	WriteFile(t, filepath.Join(root, testList), teb.String())
	return tr, te
}

// FERPlus writes fer2013.csv and fer2013new.csv under root: n.Train rows
// per class with Usage Training and n.Test each with PublicTest and
// PrivateTest, 48×48 grey pixels, votes giving a clear majority; plus
// three rows the reader must drop (no majority, not a face, no image
// name). It returns the kept train, val and test counts.
func FERPlus(t testing.TB, root string, n Counts) (int, int, int) {
	t.Helper()
	var old, nw strings.Builder
	old.WriteString("emotion,pixels,Usage\n")
	nw.WriteString("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n")
	row := 0
	add := func(usage string, k int, votes [10]int, name string) {
		img := Face(48, 48, k, uint64(row))
		px := make([]string, 48*48)
		for i := range px {
			c := img.NRGBAAt(i%48, i/48)
			px[i] = fmt.Sprint((int(c.R) + int(c.G) + int(c.B)) / 3)
		}
		fmt.Fprintf(&old, "0,%s,%s\n", strings.Join(px, " "), usage)
		v := make([]string, 10)
		for i, x := range votes {
			v[i] = fmt.Sprint(x)
		}
		fmt.Fprintf(&nw, "%s,%s,%s\n", usage, name, strings.Join(v, ","))
		row++
	}
	counts := [3]int{}
	for s, usage := range []string{"Training", "PublicTest", "PrivateTest"} {
		per := n.Test
		if s == 0 {
			per = n.Train
		}
		for k := range 8 {
			for range per {
				var votes [10]int
				votes[k], votes[(k+1)%8] = 8, 2
				add(usage, k, votes, fmt.Sprintf("fer%07d.png", row))
				counts[s]++
			}
		}
		add(usage, 0, [10]int{3, 3, 3, 1, 0, 0, 0, 0, 0, 0}, fmt.Sprintf("fer%07d.png", row))  // no majority
		add(usage, 0, [10]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, fmt.Sprintf("fer%07d.png", row)) // not a face
		add(usage, 0, [10]int{10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "")                              // no image
	}
	WriteFile(t, filepath.Join(root, "fer2013.csv"), old.String())
	WriteFile(t, filepath.Join(root, "fer2013new.csv"), nw.String())
	return counts[0], counts[1], counts[2]
}

// AffectNet writes training.csv and validation.csv (with a header) and
// the images under root/Manually_Annotated_Images/: n.Train images per
// class 0..7 for training and n.Test for validation, plus rows with the
// codes 8 (None) and 10 (No-Face) that AffectNet-7/8 leave out. Face
// boxes cover the middle of each image. It returns the train and
// validation counts for nc classes.
func AffectNet(t testing.TB, root string, n Counts, nc int) (int, int) {
	t.Helper()
	head := "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
	var tr, va strings.Builder
	tr.WriteString(head)
	va.WriteString(head)
	ntr, nva := 0, 0
	for k := range 10 {
		code := k
		if k >= 8 {
			code = 8 + 2*(k-8) // 8 None, 10 No-Face
		}
		for i := range n.Train + n.Test {
			name := fmt.Sprintf("%d/%d_%d.jpg", k, code, i)
			WriteJPEG(t, filepath.Join(root, "Manually_Annotated_Images", filepath.FromSlash(name)), Face(Size+8, Size+8, min(k, 7), uint64(5000+100*k+i)))
			line := fmt.Sprintf("%s,4,4,%d,%d,1.0;2.0,%d,0.1,-0.2\n", name, Size, Size, code)
			if i < n.Train {
				tr.WriteString(line)
				if code < nc {
					ntr++
				}
			} else {
				va.WriteString(line)
				if code < nc {
					nva++
				}
			}
		}
	}
	WriteFile(t, filepath.Join(root, "training.csv"), tr.String())
	WriteFile(t, filepath.Join(root, "validation.csv"), va.String())
	return ntr, nva
}
