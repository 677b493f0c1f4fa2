package data

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
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
	drops := &Drops{}
	rows, err := parseRAFDBList(f, list, split, drops)
	if err != nil {
		return nil, err
	}
	var items []ImageItem
	var missing []string
	for _, r := range rows {
		p := filepath.Join(imgDir, filepath.FromSlash(r.name))
		if !opts.Original {
			p = filepath.Join(imgDir, filepath.FromSlash(strings.TrimSuffix(r.name, path.Ext(r.name))+"_aligned.jpg"))
		}
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
		items = append(items, ImageItem{ID: r.name, Path: p, Label: r.label})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("rafdb: %d listed image(s) not found: %s (extract Image/aligned.zip, or set original to read Image/original)", len(missing), firstFew(missing))
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("rafdb: %s lists no %s_ images", list, split)
	}
	ds, err := NewImageDataset("rafdb "+split, items, RAFDBClasses, opts.Transform)
	if err != nil {
		return nil, err
	}
	ds.SetDrops(drops)
	return ds, nil
}

// rafdbRow is one line of list_patition_label.txt.
type rafdbRow struct {
	name  string
	label int // 0-based
}

// parseRAFDBList reads RAF-DB's list_patition_label.txt ("train_00001.jpg
// 5" per line; UTF-8, an optional byte-order mark, LF or CRLF) and returns
// the rows of split, labels 0-based. A line that is not "<name> <label
// 1..7>" is an error naming the file and line; a name that belongs to
// neither split (its base name starts with neither train_ nor test_) is
// recorded in drops.
func parseRAFDBList(r io.Reader, list, split string, drops *Drops) ([]rafdbRow, error) {
	br := bufio.NewReader(r)
	if err := checkUTF8Start(br, list); err != nil {
		return nil, fmt.Errorf("rafdb: %w", err)
	}
	var rows []rafdbRow
	sc := bufio.NewScanner(br)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("rafdb: %s line %d: %q: want \"<image name> <label>\"", list, line, text)
		}
		name := fields[0]
		l, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("rafdb: %s line %d: label %q is not an integer", list, line, fields[1])
		}
		if l < 1 || l > len(RAFDBClasses) {
			return nil, fmt.Errorf("rafdb: %s line %d: label %d out of range, want 1..7 (surprise, fear, disgust, happiness, sadness, anger, neutral)", list, line, l)
		}
		base := strings.ToLower(path.Base(filepath.ToSlash(name)))
		switch {
		case strings.HasPrefix(base, split+"_"):
			rows = append(rows, rafdbRow{name: name, label: l - 1})
		case strings.HasPrefix(base, "train_") || strings.HasPrefix(base, "test_"):
			// the other split's
		default:
			drops.Add(`name starts with neither "train_" nor "test_"`, fmt.Sprintf("%s line %d: %s", filepath.Base(list), line, name))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rafdb: read %s: %w", list, err)
	}
	return rows, nil
}
