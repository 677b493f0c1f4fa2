package bench

import (
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/synth"
)

// FixtureQuality is the JPEG quality of the fixture files (DFEW's and
// RAF-DB's JPEGs are of this order).
const FixtureQuality = 90

// WriteImageFolder writes n synthetic face images of size×size pixels as
// JPEG files in torchvision ImageFolder layout, <dir>/<class>/<nnnnnn>.jpg
// (classes are data/synth's seven expressions), so that PyTorch reads the
// same files with torchvision.datasets.ImageFolder. It returns the number
// of files written.
func WriteImageFolder(dir string, n, size int, seed int64) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("image fixture: n = %d, want >= 1", n)
	}
	samples, err := synth.Generate(synth.Config{N: n, Size: size, Seed: seed, Balanced: true})
	if err != nil {
		return 0, fmt.Errorf("image fixture: %w", err)
	}
	for i := range samples {
		s := &samples[i]
		sub := filepath.Join(dir, synth.Classes[s.Label])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return 0, fmt.Errorf("image fixture: %w", err)
		}
		if err := writeJPEG(filepath.Join(sub, fmt.Sprintf("%06d.jpg", i)), s.Image()); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// OpenImageFolder lists an ImageFolder tree (<dir>/<class>/<file>) in
// torchvision's order (classes sorted, files sorted within a class) and
// opens it as a data.ImageDataset with transform t.
func OpenImageFolder(dir string, t data.Transform) (*data.ImageDataset, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image folder %s: %w", dir, err)
	}
	var classes []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	var items []data.ImageItem
	for c, name := range classes {
		files, err := os.ReadDir(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("image folder %s: %w", dir, err)
		}
		var names []string
		for _, f := range files {
			ext := strings.ToLower(filepath.Ext(f.Name()))
			if !f.IsDir() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png") {
				names = append(names, f.Name())
			}
		}
		sort.Strings(names)
		for _, f := range names {
			items = append(items, data.ImageItem{ID: name + "/" + f, Path: filepath.Join(dir, name, f), Label: c})
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("image folder %s: no <class>/<image>.jpg files (write one with WriteImageFolder)", dir)
	}
	return data.NewImageDataset("image folder "+dir, items, classes, t)
}

// WriteDFEWTree writes a DFEW-layout fixture under root: clips synthetic
// face clips of frames JPEG frames each (size×size) in
// Clip/clip_224x224/<5-digit id>/<5-digit frame>.jpg, and fold 1's train
// split file EmoLabel_DataSplit/train(single-labeled)/set_1.csv
// (video_name,label with labels 1..7). data.OpenDFEW(root, 1, "train",
// ...) opens it; so does torch_bench.py.
func WriteDFEWTree(root string, clips, frames, size int, seed int64) error {
	if clips < 1 || frames < 2 {
		return fmt.Errorf("dfew fixture: %d clips of %d frames, want >= 1 clip of >= 2 frames", clips, frames)
	}
	samples, err := synth.Generate(synth.Config{N: clips, Size: size, Frames: frames, Seed: seed, Balanced: true})
	if err != nil {
		return fmt.Errorf("dfew fixture: %w", err)
	}
	splitDir := filepath.Join(root, "EmoLabel_DataSplit", "train(single-labeled)")
	if err := os.MkdirAll(splitDir, 0o755); err != nil {
		return fmt.Errorf("dfew fixture: %w", err)
	}
	var csv strings.Builder
	csv.WriteString("video_name,label\n")
	for i := range samples {
		s := &samples[i]
		id := i + 1
		dir := filepath.Join(root, "Clip", data.DFEWClips, fmt.Sprintf("%05d", id))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("dfew fixture: %w", err)
		}
		for k, f := range s.Frames {
			if err := writeJPEG(filepath.Join(dir, fmt.Sprintf("%05d.jpg", k+1)), f); err != nil {
				return err
			}
		}
		// DFEW's label order (happy, sad, neutral, angry, surprise,
		// disgust, fear) is not synth's; the label only has to be valid.
		fmt.Fprintf(&csv, "%d,%d\n", id, s.Label%len(data.DFEWClasses)+1)
	}
	p := filepath.Join(splitDir, "set_1.csv")
	if err := os.WriteFile(p, []byte(csv.String()), 0o644); err != nil {
		return fmt.Errorf("dfew fixture: %w", err)
	}
	return nil
}

func writeJPEG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: FixtureQuality}); err != nil {
		f.Close()
		return fmt.Errorf("fixture: encode %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	return nil
}
