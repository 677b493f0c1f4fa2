package data

import (
	"fmt"
	"os"
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
	splitDir, err := findDir(root, want)
	if err != nil {
		return nil, fmt.Errorf("afew: %w (expected %s/Train and %s/Val)", err, root, root)
	}
	ents, err := os.ReadDir(splitDir)
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
			return nil, fmt.Errorf("afew: unknown emotion folder %s, want Angry, Disgust, Fear, Happy, Neutral, Sad or Surprise", filepath.Join(splitDir, e.Name()))
		}
		found[label] = true
		emoDir := filepath.Join(splitDir, e.Name())
		items, err := os.ReadDir(emoDir)
		if err != nil {
			return nil, fmt.Errorf("afew: %w", err)
		}
		for _, it := range items {
			name := it.Name()
			if strings.HasPrefix(name, ".") || (!it.IsDir() && !isVideoFile(name)) {
				continue
			}
			id := e.Name() + "/" + strings.TrimSuffix(name, filepath.Ext(name))
			if it.IsDir() {
				id = e.Name() + "/" + name
			}
			clips = append(clips, Clip{ID: id, Path: filepath.Join(emoDir, name), Label: label})
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
		return nil, fmt.Errorf("afew: %s lacks the emotion folder(s) %s", splitDir, strings.Join(miss, ", "))
	}
	sort.Slice(clips, func(a, b int) bool { return clips[a].ID < clips[b].ID })
	return NewClipDataset("afew "+want, clips, DFEWClasses, opts)
}

// findDir finds the sub-directory of dir named name, ignoring case.
func findDir(dir, name string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.IsDir() && strings.EqualFold(e.Name(), name) {
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("folder %s/%s not found", dir, name)
}
