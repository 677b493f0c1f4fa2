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
	"strconv"
	"strings"
)

// AffectNetClasses are AffectNet's expression codes 0..7 in code order;
// AffectNet-7 uses the first 7. (HSEmotion/EmotiEffLib heads use
// alphabetical order instead: SPEC §5.4.)
var AffectNetClasses = []string{"neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"}

// affectNetColumns is the official column order, used when a CSV has no
// header row.
var affectNetColumns = []string{"subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression", "valence", "arousal"}

// AffectNetOptions configure OpenAffectNet.
type AffectNetOptions struct {
	// Classes is 7 (AffectNet-7, default) or 8 (AffectNet-8, + contempt).
	Classes int
	// ImageDir is the image folder under the root that
	// subDirectory_filePath is relative to (default
	// "Manually_Annotated_Images").
	ImageDir string
	// FaceBox cuts out the face_x/face_y/face_width/face_height box before
	// the transform; leave it off for the already-cropped face images.
	FaceBox bool
	Transform
}

// OpenAffectNet opens AffectNet's training.csv ("train") or
// validation.csv ("val", "test": the validation set is the test set) under
// root, with columns subDirectory_filePath, face_x, face_y, face_width,
// face_height, facial_landmarks, expression, valence, arousal (a header row
// naming them is optional; with one, the order may differ). Rows whose
// expression code is >= Classes (contempt for AffectNet-7, 8 None,
// 9 Uncertain, 10 No-Face) are dropped; labels are the codes
// (AffectNetClasses). Image files are checked when loaded, not here (the
// training set has ~290k of them).
func OpenAffectNet(root, split string, opts AffectNetOptions) (*ImageDataset, error) {
	var file string
	switch split {
	case "train":
		file = "training.csv"
	case "val", "test":
		file = "validation.csv"
	default:
		return nil, fmt.Errorf("affectnet: split = %q, want train or val", split)
	}
	nc := opts.Classes
	if nc == 0 {
		nc = 7
	}
	if nc != 7 && nc != 8 {
		return nil, fmt.Errorf("affectnet: classes = %d, want 7 or 8", nc)
	}
	imgDir := opts.ImageDir
	if imgDir == "" {
		imgDir = "Manually_Annotated_Images"
	}
	imgDir = filepath.Join(root, imgDir)
	if st, err := os.Stat(imgDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("affectnet: image folder %s not found (set image_dir to the folder subDirectory_filePath is relative to)", imgDir)
	}
	path := filepath.Join(root, file)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("affectnet: %w (point the data root at the folder holding training.csv and validation.csv)", err)
	}
	defer f.Close()
	drops := &Drops{}
	rows, err := parseAffectNetCSV(f, path, nc, opts.FaceBox, drops)
	if err != nil {
		return nil, err
	}
	items := make([]ImageItem, len(rows))
	for i, r := range rows {
		items[i] = ImageItem{ID: r.id, Path: filepath.Join(imgDir, filepath.FromSlash(r.id)), Label: r.label, Box: r.box}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("affectnet: %s has no rows with expression < %d", path, nc)
	}
	ds, err := NewImageDataset(fmt.Sprintf("affectnet-%d %s", nc, split), items, AffectNetClasses[:nc], opts.Transform)
	if err != nil {
		return nil, err
	}
	ds.SetDrops(drops)
	return ds, nil
}

// affectNetCodes names AffectNet's expression codes 8..10, which are no
// expression class.
var affectNetCodes = map[int]string{8: "None", 9: "Uncertain", 10: "No-Face"}

// affectNetRow is one kept row of training.csv / validation.csv.
type affectNetRow struct {
	id    string
	label int
	box   image.Rectangle
}

// parseAffectNetCSV reads AffectNet's training.csv or validation.csv
// (see OpenAffectNet): a header row, when there is one, is recognised by
// any known column name and the columns are then found by name, in any
// order; without one the official column order is assumed. Rows whose
// expression code is a valid code but not one of the nc classes (7
// contempt for AffectNet-7, 8 None, 9 Uncertain, 10 No-Face) are recorded
// in drops; any row that cannot be parsed is an error naming the file and
// line. faceBox requires the four face_* columns.
func parseAffectNetCSV(r io.Reader, path string, nc int, faceBox bool, drops *Drops) ([]affectNetRow, error) {
	br := bufio.NewReader(r)
	if err := checkUTF8Start(br, path); err != nil {
		return nil, fmt.Errorf("affectnet: %w", err)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	col := map[string]int{}
	var rows []affectNetRow
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("affectnet: %s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if row == 0 {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if header := affectNetHeader(rec); header != nil {
				col = header
				for _, need := range []string{"subDirectory_filePath", "expression"} {
					if _, ok := col[need]; !ok {
						return nil, fmt.Errorf("affectnet: %s: header %q lacks the column %s", path, strings.Join(rec, ","), need)
					}
				}
				continue
			}
			for k, name := range affectNetColumns {
				col[name] = k
			}
		}
		get := func(name string) (string, bool) {
			c, ok := col[name]
			if !ok || c >= len(rec) {
				return "", false
			}
			return strings.TrimSpace(rec[c]), true
		}
		id, ok1 := get("subDirectory_filePath")
		expr, ok2 := get("expression")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("affectnet: %s line %d: %d fields, want %d (%s)", path, line, len(rec), len(affectNetColumns), strings.Join(affectNetColumns, ","))
		}
		if id == "" {
			return nil, fmt.Errorf("affectnet: %s line %d: empty subDirectory_filePath", path, line)
		}
		code, err := strconv.Atoi(expr)
		if err != nil || code < 0 || code > 10 {
			return nil, fmt.Errorf("affectnet: %s line %d: expression %q is not a code 0..10", path, line, expr)
		}
		if code >= nc {
			what := affectNetCodes[code]
			if what == "" {
				what = AffectNetClasses[code]
			}
			drops.Add(fmt.Sprintf("expression %d (%s) is not one of the %d classes", code, what, nc), id)
			continue
		}
		it := affectNetRow{id: id, label: code}
		if faceBox {
			var v [4]int
			for k, name := range []string{"face_x", "face_y", "face_width", "face_height"} {
				s, ok := get(name)
				if !ok {
					return nil, fmt.Errorf("affectnet: %s line %d: no %s column for face_box", path, line, name)
				}
				if v[k], err = strconv.Atoi(s); err != nil {
					return nil, fmt.Errorf("affectnet: %s line %d: %s %q is not an integer", path, line, name, s)
				}
			}
			if v[2] < 1 || v[3] < 1 || v[0] < 0 || v[1] < 0 || v[0] > math.MaxInt32-v[2] || v[1] > math.MaxInt32-v[3] {
				return nil, fmt.Errorf("affectnet: %s line %d: face box x=%d y=%d w=%d h=%d: want x, y >= 0 and width, height >= 1", path, line, v[0], v[1], v[2], v[3])
			}
			it.box = image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3])
		}
		rows = append(rows, it)
	}
	return rows, nil
}

// affectNetHeader maps the column names of a header row (matched without
// regard to case) to their indices, or returns nil when the row names no
// known column (it is data).
func affectNetHeader(rec []string) map[string]int {
	col := map[string]int{}
	for k, name := range rec {
		for _, known := range affectNetColumns {
			if strings.EqualFold(strings.TrimSpace(name), known) {
				if _, dup := col[known]; !dup {
					col[known] = k
				}
			}
		}
	}
	if len(col) == 0 {
		return nil
	}
	return col
}
