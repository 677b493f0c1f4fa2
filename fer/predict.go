package fer

import (
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for LoadImage
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// imageExts are the file name extensions ImageFiles picks from folders.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// LoadImage decodes a PNG, JPEG, GIF, BMP, TIFF or WebP file. Missing,
// empty, truncated and non-image files are errors naming the file.
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("image %s: no such file", path)
		}
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("image %s: is a folder", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("image %s: empty file", path)
	}
	img, format, err := image.Decode(f)
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, fmt.Errorf("image %s: not a PNG, JPEG, GIF, BMP, TIFF or WebP image", path)
		}
		return nil, fmt.Errorf("image %s: corrupt %s data (%v)", path, format, err)
	}
	if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
		return nil, fmt.Errorf("image %s: has no pixels (%dx%d)", path, b.Dx(), b.Dy())
	}
	return img, nil
}

// ImageFiles expands a list of files and folders into image files: files
// are kept as given (whatever their extension), folders contribute the
// image files directly inside them, sorted by name. A missing path, or a
// folder without images, is an error.
func ImageFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such file or folder", p)
			}
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var found []string
		for _, e := range ents {
			if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
				found = append(found, filepath.Join(p, e.Name()))
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: folder has no image files (.png, .jpg, .jpeg, .gif, .bmp, .tif, .webp)", p)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// LoadRun rebuilds the run a checkpoint was trained in (its stored config,
// with overrides applied on top, e.g. "device=cpu" or a data root) and
// loads the checkpoint's weights into the model.
func LoadRun(ckpt string, overrides ...string) (*Run, *CheckpointMeta, error) {
	lc, err := LoadCheckpoint(ckpt)
	if err != nil {
		return nil, nil, err
	}
	defer lc.Drop()
	cfg, err := ParseConfig([]byte(lc.Meta.Config), ckpt+" (stored config)", overrides...)
	if err != nil {
		return nil, nil, err
	}
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, nil, err
	}
	data, err := OpenDataset(cfg.Data, cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	// the model has the classes and AUs it was trained with; another
	// data set's are matched to them by name (classmap.go)
	classes, aus := lc.Meta.Classes, lc.Meta.AUs
	if len(classes) == 0 {
		classes = data.Classes
	}
	if len(aus) == 0 {
		aus = data.AUs
	}
	r, err := buildRun(cfg, dev, data, classes, aus)
	if err != nil {
		return nil, nil, err
	}
	if err := lc.LoadWeights(r.Model.VarStore()); err != nil {
		return nil, nil, err
	}
	if err := mapRun(r, lc.Meta.Classes, lc.Meta.AUs); err != nil {
		return nil, nil, err
	}
	m := lc.Meta
	return r, &m, nil
}

// Prediction is one image's class probabilities.
type Prediction struct {
	Path  string
	Probs []float64 // indexed like Classes
	Top   int       // argmax
}

// Predict classifies images with a classification run (eval mode, no
// gradients), in batches of batchSize, preprocessing each image as the
// data set's test split does.
func (r *Run) Predict(paths []string, batchSize int) ([]Prediction, error) {
	if r.Data.ImageInput == nil {
		return nil, fmt.Errorf("dataset %s cannot turn single images into model inputs (it takes clips or features)", r.Cfg.Data.Name)
	}
	if len(r.Data.Classes) == 0 {
		return nil, fmt.Errorf("dataset %s has no classes to predict", r.Cfg.Data.Name)
	}
	if batchSize < 1 {
		batchSize = 32
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out []Prediction
	per := int64(1)
	for _, d := range r.Data.InputShape {
		per *= d
	}
	for start := 0; start < len(paths); start += batchSize {
		chunk := paths[start:min(start+batchSize, len(paths))]
		buf := make([]float32, 0, int64(len(chunk))*per)
		for _, p := range chunk {
			img, err := LoadImage(p)
			if err != nil {
				return nil, err
			}
			x, err := r.Data.ImageInput(img)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", p, err)
			}
			if int64(len(x)) != per {
				return nil, fmt.Errorf("image %s: preprocessing gave %d values, the model takes %v", p, len(x), r.Data.InputShape)
			}
			buf = append(buf, x...)
		}
		shape := append([]int64{int64(len(chunk))}, r.Data.InputShape...)
		b, err := NewBatch(r.Device, chunk, [][]float32{buf}, [][]int64{shape}, nil)
		if err != nil {
			return nil, err
		}
		var probs []float64
		err = torchx.NoGrad(func() error {
			o, err := r.Model.Forward(b, false)
			if err != nil {
				return err
			}
			defer o.Drop()
			logits, err := o.Get(OutputLogits)
			if err != nil {
				return err
			}
			sm, err := logits.Softmax(-1, logits.DType(), false)
			if err != nil {
				return err
			}
			defer sm.Drop()
			probs, err = float64Values(sm)
			return err
		})
		b.Drop()
		if err != nil {
			return nil, err
		}
		c := len(probs) / len(chunk)
		if c != len(r.Data.Classes) {
			return nil, fmt.Errorf("model gives %d scores, the data set has %d classes", c, len(r.Data.Classes))
		}
		for i, p := range chunk {
			pr := probs[i*c : (i+1)*c]
			top := 0
			for k := range pr {
				if pr[k] > pr[top] {
					top = k
				}
			}
			out = append(out, Prediction{Path: p, Probs: pr, Top: top})
		}
	}
	return out, nil
}

// float64Values copies a float tensor to the host as float64.
func float64Values(t *ts.Tensor) ([]float64, error) {
	d, err := t.Totype(gotch.Double, false)
	if err != nil {
		return nil, err
	}
	defer d.Drop()
	c, err := d.To(gotch.CPU, false)
	if err != nil {
		return nil, err
	}
	defer c.Drop()
	out := make([]float64, c.Numel())
	if len(out) > 0 {
		if err := c.CopyData(out, uint(len(out))); err != nil {
			return nil, err
		}
	}
	return out, nil
}
