package data

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// ImageListOptions configure OpenImageList.
type ImageListOptions struct {
	// ImageDir is the folder the list's image names are relative to.
	ImageDir string
	// Classes names the classes in label order; a line's label v is
	// class v − LabelBase.
	Classes []string
	// LabelBase is the label of the first class (0 for the QCS lists).
	LabelBase int
}

// OpenImageList reads a space-separated "ImageName label" list, the
// format of the public QCS code's split files (raf_db_basic_train.txt,
// ferplus_training.txt, affectnet_training-cls7-v7.txt, ...; read there
// with pandas.read_csv(sep=" ", header=None, names=['ImageName',
// 'label'])): one image per line, the name relative to ImageDir, the
// label an integer. Blank lines are skipped; anything else malformed is
// an error naming the file and line. Every listed image must exist (the
// error names how many are missing and the first few).
func OpenImageList(list string, opts ImageListOptions) ([]ImageItem, error) {
	f, err := os.Open(list)
	if err != nil {
		return nil, fmt.Errorf("image list: %w", err)
	}
	defer f.Close()
	nc := len(opts.Classes)
	if nc == 0 {
		return nil, fmt.Errorf("image list %s: no classes given", list)
	}
	var items []ImageItem
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimPrefix(sc.Text(), "\ufeff")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s line %d: %q: want \"<image name> <label>\" separated by a space (image names must not contain spaces)", list, line, text)
		}
		v, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: label %q is not an integer", list, line, fields[1])
		}
		l := v - opts.LabelBase
		if l < 0 || l >= nc {
			return nil, fmt.Errorf("%s line %d: label %d out of range, want %d..%d (%s); set list_label_base if the list counts from another number", list, line, v, opts.LabelBase, opts.LabelBase+nc-1, strings.Join(opts.Classes, ", "))
		}
		name := fields[0]
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s line %d: %s is listed twice (first on line %d)", list, line, name, prev)
		}
		seen[name] = line
		items = append(items, ImageItem{ID: name, Path: filepath.Join(opts.ImageDir, filepath.FromSlash(name)), Label: l})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", list, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s lists no images", list)
	}
	if missing := missingFiles(items); len(missing) > 0 {
		return nil, fmt.Errorf("%s: %d of %d listed images not found under %s: %s (set image_dir to the folder the names are relative to)", list, len(missing), len(items), opts.ImageDir, firstFew(missing))
	}
	return items, nil
}

// missingFiles stats the items' files in parallel (AffectNet lists ~290k
// images) and returns the missing ones in list order.
func missingFiles(items []ImageItem) []string {
	bad := make([]bool, len(items))
	var wg sync.WaitGroup
	workers := min(8, max(1, runtime.NumCPU()*2))
	chunk := (len(items) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(items))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				if st, err := os.Stat(items[i].Path); err != nil || st.IsDir() {
					bad[i] = true
				}
			}
		}()
	}
	wg.Wait()
	var out []string
	for i, b := range bad {
		if b {
			out = append(out, items[i].Path)
		}
	}
	return out
}
