package data

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DFEW clip versions (folders under <root>/Clip).
const (
	DFEWClips    = "clip_224x224"     // variable-length 224×224 face clips (default)
	DFEWClips16f = "clip_224x224_16f" // time-normalised 16-frame face clips
	DFEWOriginal = "original"         // the source videos, <id>.mp4/.avi (decoded with ffmpeg)
)

// DFEWOptions select the clip version and the sampling/augmentation.
type DFEWOptions struct {
	// Version is DFEWClips (default), DFEWClips16f or DFEWOriginal. The
	// two give different results (SPEC §8.5): say which one a number used.
	Version string
	ClipOptions
}

// OpenDFEW opens one split of one fold of DFEW's 5-fold protocol:
//
//	<root>/Clip/<version>/<5-digit id>/*.jpg   (or Clip/original/<id>.mp4)
//	<root>/EmoLabel_DataSplit/train(single-labeled)/set_<fold>.csv
//	<root>/EmoLabel_DataSplit/test(single-labeled)/set_<fold>.csv
//
// The split CSVs have the header video_name,label; video_name is the clip
// number (zero-padded to 5 digits for the folder name) and label 1..7 is
// happy, sad, neutral, angry, surprise, disgust, fear, mapped to 0..6
// (DFEWClasses). fold is 1..5; split is "train" or "test".
func OpenDFEW(root string, fold int, split string, opts DFEWOptions) (*ClipDataset, error) {
	if fold < 1 || fold > 5 {
		return nil, fmt.Errorf("dfew: fold = %d, want 1..5", fold)
	}
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("dfew: split = %q, want train or test", split)
	}
	version := opts.Version
	if version == "" {
		version = DFEWClips
	}
	if version != DFEWClips && version != DFEWClips16f && version != DFEWOriginal {
		return nil, fmt.Errorf("dfew: version = %q, want %s, %s or %s", version, DFEWClips, DFEWClips16f, DFEWOriginal)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dfew: data root %s not found: point it at the DFEW folder that holds Clip/ and EmoLabel_DataSplit/", root)
	}
	csvPath := filepath.Join(root, "EmoLabel_DataSplit", split+"(single-labeled)", fmt.Sprintf("set_%d.csv", fold))
	rows, err := readDFEWSplit(csvPath)
	if err != nil {
		return nil, err
	}
	clipDir := filepath.Join(root, "Clip", version)
	if st, err := os.Stat(clipDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dfew: clip folder %s not found: extract the %s clips there, or choose another version (%s, %s, %s)", clipDir, version, DFEWClips, DFEWClips16f, DFEWOriginal)
	}
	var videos map[string]string // id → file, for the original videos
	if version == DFEWOriginal {
		ents, err := os.ReadDir(clipDir)
		if err != nil {
			return nil, fmt.Errorf("dfew: %w", err)
		}
		videos = map[string]string{}
		for _, e := range ents {
			if !e.IsDir() && isVideoFile(e.Name()) {
				stem := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
				videos[stem] = filepath.Join(clipDir, e.Name())
			}
		}
	}
	clips := make([]Clip, len(rows))
	for k, r := range rows {
		id := fmt.Sprintf("%05d", r.video)
		p := filepath.Join(clipDir, id)
		if videos != nil {
			if v, ok := videos[id]; ok {
				p = v
			} else {
				p = filepath.Join(clipDir, id+".mp4") // reported as missing
			}
		}
		clips[k] = Clip{ID: id, Path: p, Label: r.label}
	}
	name := fmt.Sprintf("dfew %s fold %d %s", version, fold, split)
	return NewClipDataset(name, clips, DFEWClasses, opts.ClipOptions)
}

type dfewRow struct{ video, label int }

// readDFEWSplit reads a DFEW split CSV.
func readDFEWSplit(path string) ([]dfewRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dfew: split file %s: %w (expected the official EmoLabel_DataSplit folder under the data root)", path, err)
	}
	defer f.Close()
	return parseDFEWSplit(f, path)
}

// parseDFEWSplit parses a DFEW split CSV: video_name,label per line,
// labels 1..7, an optional header row (recognised by the names video_name
// and label, read by name in either order), UTF-8 with an optional
// byte-order mark. Every line that is not a clip number and a label, and
// a clip listed twice, is an error naming the file and line.
func parseDFEWSplit(r io.Reader, path string) ([]dfewRow, error) {
	br := bufio.NewReader(r)
	if err := checkUTF8Start(br, path); err != nil {
		return nil, fmt.Errorf("dfew: %w", err)
	}
	var rows []dfewRow
	seen := map[int]int{}
	videoCol, labelCol := 0, 1
	sc := bufio.NewScanner(br)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if len(rows) == 0 && len(seen) == 0 && (slices.ContainsFunc(fields, isDFEWColumn)) {
			v := slices.IndexFunc(fields, func(f string) bool { return strings.EqualFold(f, "video_name") })
			l := slices.IndexFunc(fields, func(f string) bool { return strings.EqualFold(f, "label") })
			if v < 0 || l < 0 || len(fields) != 2 {
				return nil, fmt.Errorf("dfew: %s line %d: header %q: want the columns video_name and label", path, line, text)
			}
			videoCol, labelCol = v, l
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("dfew: %s line %d: %q: want 2 comma-separated fields video_name,label", path, line, text)
		}
		v, err1 := strconv.Atoi(fields[videoCol])
		l, err2 := strconv.Atoi(fields[labelCol])
		if err1 != nil || err2 != nil || v < 0 {
			return nil, fmt.Errorf("dfew: %s line %d: %q: want an integer clip number and an integer label", path, line, text)
		}
		if l < 1 || l > len(DFEWClasses) {
			return nil, fmt.Errorf("dfew: %s line %d: label %d out of range, want 1..7 (happy, sad, neutral, angry, surprise, disgust, fear); the single-labeled split files have no 0 labels", path, line, l)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("dfew: %s line %d: clip %d already listed on line %d", path, line, v, prev)
		}
		seen[v] = line
		rows = append(rows, dfewRow{video: v, label: l - 1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dfew: read %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("dfew: %s lists no clips", path)
	}
	return rows, nil
}

func isDFEWColumn(f string) bool {
	return strings.EqualFold(f, "video_name") || strings.EqualFold(f, "label")
}
