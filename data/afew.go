package data

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// afewFolders maps AFEW's emotion folder names to Former-DFER's class
// order, the same as DFEWClasses: Happy 0, Sad 1, Neutral 2, Angry 3,
// Surprise 4, Disgust 5, Fear 6.
var afewFolders = map[string]int{
	"happy": 0, "sad": 1, "neutral": 2, "angry": 3, "surprise": 4, "disgust": 5, "fear": 6,
}

// OpenAFEW opens a split of AFEW 7.0:
//
//	<root>/Train/<Emotion>/<clip>/*.jpg   or   <root>/Train/<Emotion>/<clip>.avi
//	<root>/Val/<Emotion>/...
//
// split is "train" or "val" ("test" is accepted for "val": the test labels
// were never released, so papers report on Val). Emotion folders are
// Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise (case-insensitive);
// labels follow DFEWClasses. Clip ids are "<Emotion>/<clip>". Clips are
// listed in (emotion folder, clip name) order.
func OpenAFEW(root, split string, opts ClipOptions) (*ClipDataset, error) {
	var want string
	switch strings.ToLower(split) {
	case "train":
		want = "train"
	case "val", "test":
		want = "val"
	default:
		return nil, fmt.Errorf("afew: split = %q, want train or val", split)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("afew: data root %s not found: point it at the AFEW folder that holds Train/ and Val/", root)
	}
	drops := &Drops{}
	clips, err := listAFEW(os.DirFS(root), root, want, drops)
	if err != nil {
		return nil, err
	}
	for i := range clips {
		clips[i].Path = filepath.Join(root, filepath.FromSlash(clips[i].Path))
	}
	ds, err := NewClipDataset("afew "+want, clips, DFEWClasses, opts)
	if err != nil {
		return nil, err
	}
	ds.SetDrops(drops)
	return ds, nil
}

// listAFEW lists the clips of split ("train" or "val") of the AFEW tree
// in fsys (root names it in messages); clip paths are slash-separated and
// relative to fsys. Entries of an emotion folder that are neither a
// folder nor a video file are recorded in drops (an archive left
// unextracted, a stray frame); hidden ones (".DS_Store") are ignored.
func listAFEW(fsys fs.FS, root, split string, drops *Drops) ([]Clip, error) {
	splitDir, err := findDir(fsys, ".", split)
	if err != nil {
		return nil, fmt.Errorf("afew: %w under %s (expected %s/Train and %s/Val)", err, root, root, root)
	}
	ents, err := fs.ReadDir(fsys, splitDir)
	if err != nil {
		return nil, fmt.Errorf("afew: %w", err)
	}
	found := map[int]bool{}
	var clips []Clip
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		label, ok := afewFolders[strings.ToLower(e.Name())]
		if !ok {
			return nil, fmt.Errorf("afew: unknown emotion folder %s, want Angry, Disgust, Fear, Happy, Neutral, Sad or Surprise", filepath.Join(root, filepath.FromSlash(path.Join(splitDir, e.Name()))))
		}
		if found[label] {
			return nil, fmt.Errorf("afew: two folders for the emotion %s in %s (names differ only in case)", DFEWClasses[label], filepath.Join(root, splitDir))
		}
		found[label] = true
		emoDir := path.Join(splitDir, e.Name())
		items, err := fs.ReadDir(fsys, emoDir)
		if err != nil {
			return nil, fmt.Errorf("afew: %w", err)
		}
		for _, it := range items {
			name := it.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			if !it.IsDir() && !isVideoFile(name) {
				drops.Add("neither a clip folder nor a video file", path.Join(e.Name(), name))
				continue
			}
			id := e.Name() + "/" + strings.TrimSuffix(name, path.Ext(name))
			if it.IsDir() {
				id = e.Name() + "/" + name
			}
			clips = append(clips, Clip{ID: id, Path: path.Join(emoDir, name), Label: label})
		}
	}
	if len(found) < len(afewFolders) {
		var miss []string
		for name, l := range afewFolders {
			if !found[l] {
				miss = append(miss, name)
			}
		}
		sort.Strings(miss)
		return nil, fmt.Errorf("afew: %s lacks the emotion folder(s) %s", filepath.Join(root, splitDir), strings.Join(miss, ", "))
	}
	sort.Slice(clips, func(a, b int) bool { return clips[a].ID < clips[b].ID })
	for i := 1; i < len(clips); i++ {
		if clips[i].ID == clips[i-1].ID {
			return nil, fmt.Errorf("afew: clip %s is in %s twice (a folder and a video, or two videos with the same name)", clips[i].ID, filepath.Join(root, splitDir))
		}
	}
	return clips, nil
}

// findDir finds the sub-directory of dir (in fsys) named name, ignoring
// case.
func findDir(fsys fs.FS, dir, name string) (string, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.IsDir() && strings.EqualFold(e.Name(), name) {
			return path.Join(dir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("folder %s not found", name)
}
