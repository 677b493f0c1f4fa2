package data

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FERPlusClasses are FERPlus's 8 classes in fer2013new.csv column order.
var FERPlusClasses = []string{"neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"}

// FERPlusMajority turns one fer2013new.csv vote row (neutral, happiness,
// surprise, sadness, anger, disgust, fear, contempt, unknown, NF) into a
// label, as microsoft/FERPlus src/ferplus.py does in "majority" mode:
// votes ≤ 1 are zeroed (outlier removal), then the label is the argmax
// (first on ties) if its votes exceed half of the remaining total, else
// "unknown". ok is false when the result is unknown (label 8: no
// majority, or a majority of unknown votes) or NF (label 9, not a face):
// such images are dropped.
func FERPlusMajority(votes [10]float64) (label int, ok bool) {
	sum, best := 0.0, 0
	for i, v := range votes {
		if v < 1+2.220446049250313e-16 { // Python: < 1.0 + sys.float_info.epsilon
			votes[i] = 0
		}
		sum += votes[i]
		if votes[i] > votes[best] {
			best = i
		}
	}
	if !(votes[best] > 0.5*sum) {
		return 8, false // unknown
	}
	return best, best < len(FERPlusClasses)
}

// FERPlusOptions configure OpenFERPlus. Transform.Size defaults to 48
// (the native size) here.
type FERPlusOptions struct {
	Transform
}

// OpenFERPlus opens a split of FERPlus from <root>/fer2013.csv (emotion,
// pixels, Usage: 48×48 grayscale pixels) and <root>/fer2013new.csv (Usage,
// Image name, 10 vote columns), whose rows correspond 1:1. split is
// "train" (Usage Training), "val" (PublicTest) or "test" (PrivateTest).
// Rows with an empty Image name are dropped (Microsoft's
// generate_training_data.py does not write them), labels are the majority
// vote (FERPlusMajority), unknown and not-a-face rows are dropped. Images
// are replicated to RGB.
func OpenFERPlus(root, split string, opts FERPlusOptions) (*ImageDataset, error) {
	usage := map[string]string{"train": "Training", "val": "PublicTest", "test": "PrivateTest"}[split]
	if usage == "" {
		return nil, fmt.Errorf("ferplus: split = %q, want train, val or test", split)
	}
	oldPath := filepath.Join(root, "fer2013.csv")
	newPath := filepath.Join(root, "fer2013new.csv")
	oldF, err := os.Open(oldPath)
	if err != nil {
		return nil, fmt.Errorf("ferplus: %w (fer2013.csv comes from the Kaggle FER2013 challenge; put it beside fer2013new.csv)", err)
	}
	defer oldF.Close()
	newF, err := os.Open(newPath)
	if err != nil {
		return nil, fmt.Errorf("ferplus: %w (fer2013new.csv comes from github.com/microsoft/FERPlus)", err)
	}
	defer newF.Close()
	drops := &Drops{}
	items, err := parseFERPlus(oldF, newF, oldPath, newPath, usage, drops)
	if err != nil {
		return nil, err
	}
	if opts.Size == 0 {
		opts.Size = 48
	}
	ds, err := NewImageDataset("ferplus "+split, items, FERPlusClasses, opts.Transform)
	if err != nil {
		return nil, err
	}
	ds.SetDrops(drops)
	return ds, nil
}

// ferPlusVotes are fer2013new.csv's 10 vote columns, in file order.
var ferPlusVotes = []string{"neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"}

// parseFERPlus reads fer2013.csv and fer2013new.csv side by side (their
// rows correspond 1:1) and returns the images of Usage usage with their
// majority-vote labels. Columns are found by their header names, in any
// order (the vote columns by name when the header names them, else the
// ten columns after "Image name"). Rows without an image name and rows
// whose vote gives unknown or not-a-face are recorded in drops; a row that
// cannot be parsed (a vote that is not a finite count >= 0, bad pixels) is
// an error naming the file and line.
func parseFERPlus(oldIn, newIn io.Reader, oldPath, newPath, usage string, drops *Drops) ([]ImageItem, error) {
	ob, nb := bufio.NewReader(oldIn), bufio.NewReader(newIn)
	if err := checkUTF8Start(ob, oldPath); err != nil {
		return nil, fmt.Errorf("ferplus: %w", err)
	}
	if err := checkUTF8Start(nb, newPath); err != nil {
		return nil, fmt.Errorf("ferplus: %w", err)
	}
	oldR, newR := csv.NewReader(ob), csv.NewReader(nb)
	oldR.FieldsPerRecord, newR.FieldsPerRecord = -1, -1
	oldCol, err := csvHeader(oldR, oldPath, "emotion", "pixels", "Usage")
	if err != nil {
		return nil, err
	}
	newCol, err := csvHeader(newR, newPath, "Usage", "Image name")
	if err != nil {
		return nil, err
	}
	voteCol := make([]int, len(ferPlusVotes))
	byName := true
	for k, name := range ferPlusVotes {
		c, ok := newCol[strings.ToLower(name)]
		if !ok {
			byName = false
			break
		}
		voteCol[k] = c
	}
	if !byName {
		for k := range voteCol {
			voteCol[k] = newCol["image name"] + 1 + k // the 10 vote columns follow
		}
	}
	lastVote := slices.Max(voteCol)
	var items []ImageItem
	for row := 1; ; row++ {
		o, errO := oldR.Read()
		n, errN := newR.Read()
		if errors.Is(errO, io.EOF) && errors.Is(errN, io.EOF) {
			break
		}
		if errors.Is(errO, io.EOF) || errors.Is(errN, io.EOF) {
			return nil, fmt.Errorf("ferplus: %s and %s have different numbers of rows (they must correspond 1:1; use the unmodified files)", oldPath, newPath)
		}
		if errO != nil {
			return nil, fmt.Errorf("ferplus: %s: %w", oldPath, errO)
		}
		if errN != nil {
			return nil, fmt.Errorf("ferplus: %s: %w", newPath, errN)
		}
		lineO, _ := oldR.FieldPos(0)
		lineN, _ := newR.FieldPos(0)
		if len(o) <= oldCol["usage"] || len(o) <= oldCol["pixels"] {
			return nil, fmt.Errorf("ferplus: %s line %d: %d fields, want emotion,pixels,Usage", oldPath, lineO, len(o))
		}
		if len(n) <= lastVote || len(n) <= newCol["usage"] || len(n) <= newCol["image name"] {
			return nil, fmt.Errorf("ferplus: %s line %d: %d fields, want Usage, Image name and 10 vote columns", newPath, lineN, len(n))
		}
		if strings.TrimSpace(o[oldCol["usage"]]) != strings.TrimSpace(n[newCol["usage"]]) {
			return nil, fmt.Errorf("ferplus: data row %d: Usage %q in %s but %q in %s (the files are not aligned)", row, o[oldCol["usage"]], oldPath, n[newCol["usage"]], newPath)
		}
		if strings.TrimSpace(n[newCol["usage"]]) != usage {
			continue
		}
		name := strings.TrimSpace(n[newCol["image name"]])
		if name == "" {
			drops.Add("no Image name in fer2013new.csv (Microsoft's generate_training_data.py skips these)", fmt.Sprintf("%s line %d", filepath.Base(newPath), lineN))
			continue
		}
		var votes [10]float64
		for k := range votes {
			cell := strings.TrimSpace(n[voteCol[k]])
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil || !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("ferplus: %s line %d: %s vote %q is not a count >= 0", newPath, lineN, ferPlusVotes[k], cell)
			}
			votes[k] = v
		}
		label, ok := FERPlusMajority(votes)
		if !ok {
			reason := "majority vote is unknown (no majority, or most votes unknown)"
			if label == 9 {
				reason = "majority vote is NF (not a face)"
			}
			drops.Add(reason, name)
			continue
		}
		img, err := parseFER2013Pixels(o[oldCol["pixels"]])
		if err != nil {
			return nil, fmt.Errorf("ferplus: %s line %d: %w", oldPath, lineO, err)
		}
		items = append(items, ImageItem{ID: name, Pixels: img, Label: label})
	}
	return items, nil
}

// csvHeader reads a header row and checks that it names the wanted
// columns; it returns lower-cased column name → index (the first of
// duplicates).
func csvHeader(r *csv.Reader, path string, want ...string) (map[string]int, error) {
	h, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("ferplus: %s: read header: %w", path, err)
	}
	col := map[string]int{}
	for k, name := range h {
		key := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")))
		if _, dup := col[key]; !dup {
			col[key] = k
		}
	}
	for _, w := range want {
		if _, ok := col[strings.ToLower(w)]; !ok {
			return nil, fmt.Errorf("ferplus: %s: header %q lacks the column %q", path, strings.Join(h, ","), w)
		}
	}
	return col, nil
}

// parseFER2013Pixels parses 48·48 space-separated grey levels.
func parseFER2013Pixels(s string) (*image.Gray, error) {
	img := image.NewGray(image.Rect(0, 0, 48, 48))
	k := 0
	for f := range strings.FieldsSeq(s) {
		if k == len(img.Pix) {
			return nil, fmt.Errorf("pixels: more than 48x48 = 2304 values")
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 || v > 255 {
			return nil, fmt.Errorf("pixels: value %d is %q, want an integer 0..255", k+1, f)
		}
		img.Pix[k] = uint8(v)
		k++
	}
	if k != len(img.Pix) {
		return nil, fmt.Errorf("pixels: %d values, want 48x48 = 2304", k)
	}
	return img, nil
}
