package data

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RAFDBClasses are RAF-DB basic's 7 classes: list-file label v ∈ 1..7 is
// class v−1.
var RAFDBClasses = []string{"surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"}

// RAFDBOptions configure OpenRAFDB.
type RAFDBOptions struct {
	// Original reads Image/original/<name> instead of the aligned 100×100
	// faces Image/aligned/<stem>_aligned.jpg (the default, what the
	// published numbers use).
	Original bool
	Transform
}

// OpenRAFDB opens a split ("train" or "test") of RAF-DB basic:
//
//	<root>/EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5"
//	<root>/Image/aligned/train_00001_aligned.jpg
//
// root is the "basic" folder. The split is the file-name prefix (train_ /
// test_); labels 1..7 = Surprise, Fear, Disgust, Happiness, Sadness,
// Anger, Neutral map to 0..6 (RAFDBClasses). Every listed image must exist.
func OpenRAFDB(root, split string, opts RAFDBOptions) (*ImageDataset, error) {
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("rafdb: split = %q, want train or test", split)
	}
	list := filepath.Join(root, "EmoLabel", "list_patition_label.txt")
	f, err := os.Open(list)
	if err != nil {
		return nil, fmt.Errorf("rafdb: label list %s: %w (point the data root at RAF-DB's basic/ folder)", list, err)
	}
	defer f.Close()
	imgDir := filepath.Join(root, "Image", "aligned")
	if opts.Original {
		imgDir = filepath.Join(root, "Image", "original")
	}
	var items []ImageItem
	var missing []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("rafdb: %s line %d: %q: want \"<image name> <label>\"", list, line, sc.Text())
		}
		name := fields[0]
		l, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("rafdb: %s line %d: label %q is not an integer", list, line, fields[1])
		}
		if l < 1 || l > len(RAFDBClasses) {
			return nil, fmt.Errorf("rafdb: %s line %d: label %d out of range, want 1..7 (surprise, fear, disgust, happiness, sadness, anger, neutral)", list, line, l)
		}
		if !strings.HasPrefix(name, split+"_") {
			continue
		}
		p := filepath.Join(imgDir, name)
		if !opts.Original {
			p = filepath.Join(imgDir, strings.TrimSuffix(name, filepath.Ext(name))+"_aligned.jpg")
		}
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
		items = append(items, ImageItem{ID: name, Path: p, Label: l - 1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rafdb: read %s: %w", list, err)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("rafdb: %d listed image(s) not found: %s (extract Image/aligned.zip, or set original to read Image/original)", len(missing), firstFew(missing))
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("rafdb: %s lists no %s_ images", list, split)
	}
	return NewImageDataset("rafdb "+split, items, RAFDBClasses, opts.Transform)
}
