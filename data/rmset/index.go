// Package rmset builds and reads RMset: RMFER's unlabelled set of face
// crops from reaction-mashup videos (several people reacting to the same
// film, each in a fixed tile; SPEC.md §3), made as the paper describes in
// four steps: (1) the trigger film's rectangle is blanked before
// detection, (2) face IDs are assigned on the first frame (plus boxes
// given by hand), (3) every later frame's faces are matched to the first
// frame's boxes by IoU, (4) the matched faces are cropped widened by
// Δw = 0.31·w_f and saved as JPEG, with an index.
//
// # Index format
//
// DIR/index.csv is CSV (RFC 4180) with a header; one row per face crop:
//
//		video,person,frame,time,x,y,w,h,file
//		mashup01,0,0,0.0000,412,96,150,150,mashup01/p0/000000.jpg
//
//	  - video: the video's name (its file name without extension; also the
//	    folder of its crops under DIR)
//	  - person: the person's ID in that video, 0..P−1 (IDs of the first
//	    frame, in reading order: top to bottom, left to right) — RMFER's
//	    faceID
//	  - frame: the frame number in the video (0-based, counting every
//	    decoded frame; with --every N only multiples of N occur) — RMFER's
//	    frameNum
//	  - time: the frame's presentation time in seconds
//	  - x, y, w, h: the detected face box in the frame (pixels; before
//	    widening)
//	  - file: the crop, relative to DIR — RMFER's filePath
//
// Rows are sorted by video, frame, person. Columns are found by name, so
// readers accept extra columns and any order; video, person, frame and
// file are required. ReadIndex reads it; DIR/<video>/people.csv lists each
// video's first-frame boxes (person,x,y,w,h,source).
package rmset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// IndexFile is the index's name in an RMset folder.
const IndexFile = "index.csv"

// IndexHeader is the header the builder writes.
var IndexHeader = []string{"video", "person", "frame", "time", "x", "y", "w", "h", "file"}

// Face is one row of the index: one person's face crop in one frame.
type Face struct {
	Video  string
	Person int
	Frame  int
	// Time is the frame's time in seconds (NaN-free; 0 when the index has
	// no time column).
	Time float64
	// Box is the detected face box (empty when the index has no box
	// columns).
	Box image.Rectangle
	// File is the crop's path relative to the RMset folder.
	File string
}

// Index is an RMset's index.
type Index struct {
	// Root is the RMset folder; Face.File is relative to it.
	Root  string
	Faces []Face
}

// Path is the crop file of f.
func (ix *Index) Path(f Face) string { return filepath.Join(ix.Root, filepath.FromSlash(f.File)) }

// Videos lists the videos, sorted.
func (ix *Index) Videos() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range ix.Faces {
		if !seen[f.Video] {
			seen[f.Video] = true
			out = append(out, f.Video)
		}
	}
	sort.Strings(out)
	return out
}

// People lists the person IDs of a video, sorted.
func (ix *Index) People(video string) []int {
	seen := map[int]bool{}
	var out []int
	for _, f := range ix.Faces {
		if f.Video == video && !seen[f.Person] {
			seen[f.Person] = true
			out = append(out, f.Person)
		}
	}
	sort.Ints(out)
	return out
}

// ReadIndex reads an RMset index: path is the RMset folder or its
// index.csv. Errors name the file and line.
func ReadIndex(path string) (*Index, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rmset index %s: %w", path, err)
	}
	root := filepath.Dir(path)
	if st.IsDir() {
		root, path = path, filepath.Join(path, IndexFile)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("rmset index %s: no such file (build the set with fercli rmset build)", path)
		}
		return nil, fmt.Errorf("rmset index %s: %w", path, err)
	}
	defer f.Close()
	faces, err := ParseIndex(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("rmset index %s: %w", path, err)
	}
	return &Index{Root: root, Faces: faces}, nil
}

// ParseIndex reads index rows (with their header) from r. It checks every
// field: IDs and frames are non-negative integers, boxes non-empty,
// files relative paths inside the set, and no (video, person, frame)
// occurs twice. Errors name the line.
func ParseIndex(r io.Reader) ([]Face, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("empty file (want the header %s)", strings.Join(IndexHeader, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("line 1: column %q twice", h)
		}
		col[h] = i
	}
	for _, need := range []string{"video", "person", "frame", "file"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("line 1: no %q column (header %q; want %s)", need, strings.Join(head, ","), strings.Join(IndexHeader, ","))
		}
	}
	_, hasTime := col["time"]
	hasBox := true
	for _, k := range []string{"x", "y", "w", "h"} {
		if _, ok := col[k]; !ok {
			hasBox = false
		}
	}
	type key struct {
		video         string
		person, frame int
	}
	seen := map[key]int{}
	var faces []Face
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) != len(head) {
			return nil, fmt.Errorf("line %d: %d fields, the header has %d", line, len(rec), len(head))
		}
		field := func(name string) string { return strings.TrimSpace(rec[col[name]]) }
		nonneg := func(name string) (int, error) {
			v, err := strconv.Atoi(field(name))
			if err != nil || v < 0 {
				return 0, fmt.Errorf("line %d: %s = %q, want a non-negative integer", line, name, field(name))
			}
			return v, nil
		}
		f := Face{Video: field("video"), File: field("file")}
		if f.Video == "" {
			return nil, fmt.Errorf("line %d: empty video", line)
		}
		if f.Person, err = nonneg("person"); err != nil {
			return nil, err
		}
		if f.Frame, err = nonneg("frame"); err != nil {
			return nil, err
		}
		if f.File == "" || filepath.IsAbs(f.File) || strings.HasPrefix(f.File, "/") || strings.Contains("/"+filepath.ToSlash(f.File)+"/", "/../") {
			return nil, fmt.Errorf("line %d: file %q, want a path relative to the RMset folder", line, f.File)
		}
		if hasTime {
			t, err := strconv.ParseFloat(field("time"), 64)
			if err != nil || t != t || t < -1e9 || t > 1e9 {
				return nil, fmt.Errorf("line %d: time = %q, want seconds", line, field("time"))
			}
			f.Time = t
		}
		if hasBox {
			var v [4]int
			for i, k := range []string{"x", "y", "w", "h"} {
				n, err := strconv.Atoi(field(k))
				if err != nil || n < -1<<24 || n > 1<<24 {
					return nil, fmt.Errorf("line %d: %s = %q, want an integer", line, k, field(k))
				}
				v[i] = n
			}
			if v[2] < 1 || v[3] < 1 {
				return nil, fmt.Errorf("line %d: box %dx%d, want a positive width and height", line, v[2], v[3])
			}
			f.Box = image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3])
		}
		k := key{f.Video, f.Person, f.Frame}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("line %d: video %s person %d frame %d already on line %d", line, f.Video, f.Person, f.Frame, prev)
		}
		seen[k] = line
		faces = append(faces, f)
	}
	return faces, nil
}

// record is f as an index row.
func record(f Face) []string {
	return []string{f.Video, strconv.Itoa(f.Person), strconv.Itoa(f.Frame), strconv.FormatFloat(f.Time, 'f', 4, 64),
		strconv.Itoa(f.Box.Min.X), strconv.Itoa(f.Box.Min.Y), strconv.Itoa(f.Box.Dx()), strconv.Itoa(f.Box.Dy()), f.File}
}
