package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
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
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	col := map[string]int{}
	var items []ImageItem
	for row := 0; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("affectnet: %s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if row == 0 {
			if strings.EqualFold(strings.TrimPrefix(rec[0], "\ufeff"), "subDirectory_filePath") {
				for k, name := range rec {
					col[strings.TrimPrefix(name, "\ufeff")] = k
				}
				for _, need := range []string{"subDirectory_filePath", "expression"} {
					if _, ok := col[need]; !ok {
						return nil, fmt.Errorf("affectnet: %s: header lacks the column %s", path, need)
					}
				}
				continue
			}
			for k, name := range affectNetColumns {
				col[name] = k
			}
		}
		if len(rec) <= col["expression"] || len(rec) <= col["subDirectory_filePath"] {
			return nil, fmt.Errorf("affectnet: %s line %d: %d fields, want %d (%s)", path, line, len(rec), len(affectNetColumns), strings.Join(affectNetColumns, ","))
		}
		code, err := strconv.Atoi(strings.TrimSpace(rec[col["expression"]]))
		if err != nil || code < 0 {
			return nil, fmt.Errorf("affectnet: %s line %d: expression %q is not a code 0..10", path, line, rec[col["expression"]])
		}
		if code >= nc {
			continue
		}
		it := ImageItem{ID: rec[col["subDirectory_filePath"]], Label: code}
		it.Path = filepath.Join(imgDir, filepath.FromSlash(it.ID))
		if opts.FaceBox {
			var v [4]int
			for k, name := range []string{"face_x", "face_y", "face_width", "face_height"} {
				c, ok := col[name]
				if !ok || c >= len(rec) {
					return nil, fmt.Errorf("affectnet: %s line %d: no %s column for face_box", path, line, name)
				}
				if v[k], err = strconv.Atoi(strings.TrimSpace(rec[c])); err != nil {
					return nil, fmt.Errorf("affectnet: %s line %d: %s %q is not an integer", path, line, name, rec[c])
				}
			}
			if v[2] < 1 || v[3] < 1 {
				return nil, fmt.Errorf("affectnet: %s line %d: empty face box %v", path, line, v)
			}
			it.Box = image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3])
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("affectnet: %s has no rows with expression < %d", path, nc)
	}
	return NewImageDataset(fmt.Sprintf("affectnet-%d %s", nc, split), items, AffectNetClasses[:nc], opts.Transform)
}
