package fer

import (
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for LoadImage
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/fer-research/fer/data/imaging"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// imageExts are the file name extensions ImageFiles picks from folders.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// IsImageFile reports whether name has one of the image extensions
// ImageFiles picks from folders.
func IsImageFile(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

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
	// JPEGs are decoded with libjpeg-turbo as the data loaders and
	// Pillow do (Go's image/jpeg rounds differently), so a picture
	// predicted from its file gets exactly the input evaluation gives it.
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err == nil && head[0] == 0xFF && head[1] == 0xD8 {
		var rgb imaging.RGB
		err := imaging.DecodeFile(path, &rgb)
		if err == nil {
			return rgb.NRGBA(), nil
		}
		if !strings.Contains(err.Error(), "color conversion") { // CMYK: image/jpeg below
			return nil, fmt.Errorf("image %s: corrupt jpeg data (%v)", path, errors.Unwrap(err))
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
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
	return ExpandFiles(paths, IsImageFile, "image files (.png, .jpg, .jpeg, .gif, .bmp, .tif, .webp)")
}

// ExpandFiles is ImageFiles for any kind of file: folders contribute the
// files directly inside them that accept takes (sorted by name); kind
// names them in the error for a folder without any.
func ExpandFiles(paths []string, accept func(name string) bool, kind string) ([]string, error) {
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
			if !e.IsDir() && accept(e.Name()) {
				found = append(found, filepath.Join(p, e.Name()))
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: folder has no %s", p, kind)
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

// LoadModel rebuilds a checkpoint's model with its weights from the
// checkpoint alone (its stored config with overrides, classes, AUs and
// input shape), without opening the data set: for tools that feed the
// model other data (RMFER's attention dumps on an RMset).
func LoadModel(ckpt string, overrides ...string) (Model, *Config, *CheckpointMeta, error) {
	lc, err := LoadCheckpoint(ckpt)
	if err != nil {
		return nil, nil, nil, err
	}
	defer lc.Drop()
	cfg, err := ParseConfig([]byte(lc.Meta.Config), ckpt+" (stored config)", overrides...)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(lc.Meta.InputShape) == 0 {
		return nil, nil, nil, fmt.Errorf("checkpoint %s does not record its input shape (an older fer checkpoint): use it through its data set (fercli eval)", ckpt)
	}
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := buildModel(cfg, &Splits{InputShape: lc.Meta.InputShape}, dev, lc.Meta.Classes, lc.Meta.AUs)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := lc.LoadWeights(m.VarStore()); err != nil {
		return nil, nil, nil, err
	}
	meta := lc.Meta
	return m, cfg, &meta, nil
}

// Prediction is one image's class probabilities, or why there are none.
type Prediction struct {
	Path  string
	Probs []float64 // indexed like Classes; nil when Err is set
	Top   int       // argmax
	// Err is set when the image could not be read or preprocessed (a
	// corrupt file); the other images are classified all the same.
	Err error
}

// Predict classifies images with a classification run (eval mode, no
// gradients), in batches of batchSize, preprocessing each image as the
// data set's test split does. It returns one Prediction per path, in
// order; an image that cannot be read gets a Prediction with Err set. The
// error result is for failures of the model itself.
func (r *Run) Predict(paths []string, batchSize int) (_ []Prediction, err error) {
	if r.Data.ImageInput == nil {
		return nil, fmt.Errorf("dataset %s cannot turn single images into model inputs (it takes clips or features)", r.Cfg.Data.Name)
	}
	if len(r.Data.Classes) == 0 {
		return nil, fmt.Errorf("dataset %s has no classes to predict", r.Cfg.Data.Name)
	}
	if batchSize < 1 {
		return nil, fmt.Errorf("predict: batch size %d, want >= 1", batchSize)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		if IsOutOfMemory(err) {
			err = fmt.Errorf("%w; lower the batch size (now %d)", err, batchSize)
		}
	}()
	defer CatchTorch(&err, "predict")
	out := make([]Prediction, len(paths))
	per := int64(1)
	for _, d := range r.Data.InputShape {
		per *= d
	}
	for i, p := range paths {
		out[i].Path = p
	}
	for start := 0; start < len(paths); start += batchSize {
		// the batch's readable images; a bad one is reported, not fatal
		var idx []int
		var chunk []string
		buf := make([]float32, 0, int64(min(batchSize, len(paths)-start))*per)
		for i := start; i < min(start+batchSize, len(paths)); i++ {
			p := paths[i]
			img, err := LoadImage(p)
			if err != nil {
				out[i].Err = err
				continue
			}
			x, err := r.Data.ImageInput(img)
			if err != nil {
				out[i].Err = fmt.Errorf("image %s: %w", p, err)
				continue
			}
			if int64(len(x)) != per {
				return nil, fmt.Errorf("image %s: preprocessing gave %d values, the model takes %v", p, len(x), r.Data.InputShape)
			}
			buf = append(buf, x...)
			idx = append(idx, i)
			chunk = append(chunk, p)
		}
		if len(idx) == 0 {
			continue
		}
		sc, err := r.Score(buf, len(chunk))
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			out[i].Probs, out[i].Top = sc.Probs[k], sc.Top[k]
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
