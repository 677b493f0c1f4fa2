package fer

import (
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/data/imaging"
	"github.com/sugarme/gotch"
	"go.yaml.in/yaml/v3"
)

// StaticDataOptions are the options (data.options) of the still-image
// data sets rafdb, ferplus, affectnet7 and affectnet8; the data folder is
// data.root. Every option has a per-data-set default (staticKinds): the
// transforms are those of the public QCS training scripts for that data
// set (SPEC §2.4). README.md ("Static-image datasets") documents them.
type StaticDataOptions struct {
	// Layout is how the data set lies on disk: "native" (the data set's
	// own label files), "list" (the "ImageName label" split lists the
	// public QCS code reads), or "auto" (default): list when the train
	// list exists under the root, else native.
	Layout string `yaml:"layout"`
	// TrainList and TestList are the list files (layout list), relative
	// to the root unless absolute.
	TrainList string `yaml:"train_list"`
	TestList  string `yaml:"test_list"`
	// ImageDir is the folder image names are relative to (relative to
	// the root unless absolute): the list layout's image folder, or
	// AffectNet's folder for subDirectory_filePath.
	ImageDir string `yaml:"image_dir"`
	// ListClasses names the classes in the label order of the list files
	// (the public lists' order is not documented; the default is the
	// order of the QCS code's confusion-matrix labels, which is the data
	// set's own order) and ListLabelBase is the label of the first class
	// (0).
	ListClasses   []string `yaml:"list_classes"`
	ListLabelBase int      `yaml:"list_label_base"`
	// Original reads RAF-DB's Image/original instead of the aligned
	// faces (rafdb, native layout).
	Original bool `yaml:"original"`
	// FaceBox cuts AffectNet's face_x/y/width/height box out first
	// (affectnet, native layout; off for already-cropped faces).
	FaceBox bool `yaml:"face_box"`
	// TrainTransforms and TestTransforms are torchvision-style pipelines
	// (data.ParsePipeline): lists such as [{resize: [224, 224]}, hflip,
	// to_tensor, {normalize: imagenet}].
	TrainTransforms any `yaml:"train_transforms"`
	TestTransforms  any `yaml:"test_transforms"`
	// Sampler is the training order of anchors: "random" (a permutation
	// per epoch, DataLoader(shuffle=True)) or "balanced" (class-balanced
	// with replacement, weights 1/class count, as QCS's
	// ImbalancedDatasetSampler and RMFER's WeightedRandomSampler).
	Sampler string `yaml:"sampler"`
	// SamplesPerEpoch (balanced) is the number of anchors drawn per
	// epoch; 0 means len(train) / EpochDivisor (default divisor 1:
	// RMFER's len(dataset); QCS AffectNet uses 12).
	SamplesPerEpoch int `yaml:"samples_per_epoch"`
	EpochDivisor    int `yaml:"epoch_divisor"`
	// Quadruplet makes training batches QCS quadruplets: inputs [anchor,
	// positive, negative, negative2], targets label and label_neg.
	Quadruplet bool `yaml:"quadruplet"`
	// Pairs makes training batches DCS pairs: inputs [anchor, positive]
	// (another image of the anchor's class), target label (the public
	// code's data_processing/dataset.py).
	Pairs bool `yaml:"pairs"`
	// NegativeClass is how a quadruplet's negative class is drawn: "data"
	// (any image of another class, QCS dataset_q0) or "uniform" (a
	// uniform other class, dataset_q1).
	NegativeClass string `yaml:"negative_class"`
	// Workers is the number of goroutines decoding a batch (default: one
	// per core).
	Workers int `yaml:"workers"`
	// Labelled > 0 keeps a class-stratified random subset of that many
	// training images (data.ClassIndex.Stratified: each class in
	// proportion), the semi-supervised protocol RMFER reports on RAF-DB
	// with 4,000 labels (after Ada-CM); the other training images are
	// not used. LabelledSeed draws it (0: the run's seed); the training
	// run lists the chosen images in RUN/labelled.txt.
	Labelled     int   `yaml:"labelled"`
	LabelledSeed int64 `yaml:"labelled_seed"`
}

// streamLabelled is the rng stream of the labelled subset (NewRand).
const streamLabelled = 5 << 40

// LabelledFile is the run-dir file listing a labelled subset's images.
const LabelledFile = "labelled.txt"

// staticKind describes one registered still-image data set.
type staticKind struct {
	name, title string
	classes     []string
	// list layout defaults (QCS data_processing/dataset_q0.py config())
	trainList, testList, listImages string
	// native layout
	nativeHelp string
	native     func(root string, o StaticDataOptions) (train, val, test *data.ImageDataset, note string, err error)
	// nativeOpts are the native layout's own options, for the help
	nativeOpts string
	// defaults (QCS main_QCS_*.py) and their summary for the help
	trainTransforms, testTransforms string
	transformsHelp                  string
	sampler, negative               string
}

// The QCS scripts' transforms (main_QCS_*.py, the uncommented
// data_transforms of each).
const (
	qcsRAFDBTrain     = `[{resize: [224, 224]}, hflip, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]`
	qcsRAFDBTest      = `[{resize: [224, 224]}, to_tensor, {normalize: imagenet}]`
	qcsFERPlusTrain   = `[{resize: [232, 232]}, hflip, {random_rotation: 10}, {random_crop: [224, 224]}, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]`
	qcsFERPlusTest    = `[{resize: [232, 232]}, {center_crop: [224, 224]}, to_tensor, {normalize: imagenet}]`
	qcsAffectNetTrain = `[{resize: [236, 236]}, hflip, {random_rotation: 12}, {random_crop: [224, 224]}, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.03, 0.1]}}]`
	qcsAffectNetTest  = `[{resize: [236, 236]}, {center_crop: [224, 224]}, to_tensor, {normalize: imagenet}]`
)

// StaticValNote says how rafdb and affectnet fill the validation split.
const StaticValNote = "val = test (the data set has no separate validation split; as in the public QCS code, the best epoch is selected on the test set)"

func affectNetKind(nc int) staticKind {
	return staticKind{
		name: fmt.Sprintf("affectnet%d", nc), title: fmt.Sprintf("AffectNet-%d", nc),
		classes:   data.AffectNetClasses[:nc],
		trainList: fmt.Sprintf("affectnet_training-cls%d-v7.txt", nc), testList: fmt.Sprintf("affectnet_validation-cls%d.txt", nc),
		listImages: "Manually_trainval_croped",
		nativeHelp: "training.csv + validation.csv + Manually_Annotated_Images/",
		native: func(root string, o StaticDataOptions) (*data.ImageDataset, *data.ImageDataset, *data.ImageDataset, string, error) {
			opts := data.AffectNetOptions{Classes: nc, ImageDir: o.ImageDir, FaceBox: o.FaceBox}
			tr, err := data.OpenAffectNet(root, "train", opts)
			if err != nil {
				return nil, nil, nil, "", err
			}
			va, err := data.OpenAffectNet(root, "val", opts)
			if err != nil {
				return nil, nil, nil, "", err
			}
			return tr, va, va, "AffectNet's test labels were never released: val = test = validation.csv (the published protocol)", nil
		},
		nativeOpts:      "face_box, image_dir",
		trainTransforms: qcsAffectNetTrain, testTransforms: qcsAffectNetTest,
		transformsHelp: fmt.Sprintf("main_QCS_affectnet-%d.py's: Resize 236, HFlip, RandomRotation 12, RandomCrop 224, ColorJitter(0.2, 0.2, 0.2, 0.1), ImageNet Normalize, RandomErasing(0.03-0.1); test Resize 236, CenterCrop 224", nc),
		sampler:        "balanced", negative: "uniform",
	}
}

var staticKinds = []staticKind{
	{
		name: "rafdb", title: "RAF-DB basic", classes: data.RAFDBClasses,
		trainList: "raf_db_basic_train.txt", testList: "raf_db_basic_test.txt", listImages: "basic",
		nativeHelp: "EmoLabel/list_patition_label.txt + Image/aligned/",
		native: func(root string, o StaticDataOptions) (*data.ImageDataset, *data.ImageDataset, *data.ImageDataset, string, error) {
			// the QCS layout keeps RAF-DB's own folder as <root>/basic
			if _, err := os.Stat(filepath.Join(root, "EmoLabel")); err != nil {
				if _, err := os.Stat(filepath.Join(root, "basic", "EmoLabel")); err == nil {
					root = filepath.Join(root, "basic")
				}
			}
			opts := data.RAFDBOptions{Original: o.Original}
			tr, err := data.OpenRAFDB(root, "train", opts)
			if err != nil {
				return nil, nil, nil, "", err
			}
			te, err := data.OpenRAFDB(root, "test", opts)
			if err != nil {
				return nil, nil, nil, "", err
			}
			return tr, te, te, "RAF-DB has no validation split: " + StaticValNote, nil
		},
		nativeOpts:      "original",
		trainTransforms: qcsRAFDBTrain, testTransforms: qcsRAFDBTest, sampler: "random", negative: "data",
		transformsHelp: "main_QCS_raf_db.py's: Resize 224x224, HFlip, ColorJitter(0.2, 0.2, 0.2, 0.1), ImageNet Normalize, RandomErasing(0.02-0.1); test Resize 224x224",
	},
	{
		name: "ferplus", title: "FERPlus", classes: data.FERPlusClasses,
		trainList: "ferplus_training.txt", testList: "ferplus_test.txt", listImages: "img",
		nativeHelp: "fer2013.csv + fer2013new.csv (majority vote)",
		native: func(root string, o StaticDataOptions) (*data.ImageDataset, *data.ImageDataset, *data.ImageDataset, string, error) {
			var sets [3]*data.ImageDataset
			for k, split := range []string{"train", "val", "test"} {
				ds, err := data.OpenFERPlus(root, split, data.FERPlusOptions{})
				if err != nil {
					return nil, nil, nil, "", err
				}
				sets[k] = ds
			}
			return sets[0], sets[1], sets[2], "FERPlus from fer2013.csv: val = PublicTest, test = PrivateTest (majority-vote labels, unknown/not-a-face dropped)", nil
		},
		trainTransforms: qcsFERPlusTrain, testTransforms: qcsFERPlusTest, sampler: "random", negative: "data",
		transformsHelp: "main_QCS_ferplus.py's: Resize 232, HFlip, RandomRotation 10, RandomCrop 224, ColorJitter(0.2, 0.2, 0.2, 0.1), ImageNet Normalize, RandomErasing(0.02-0.1); test Resize 232, CenterCrop 224",
	},
	affectNetKind(7),
	affectNetKind(8),
}

func init() {
	for _, k := range staticKinds {
		RegisterDataset(k.name, k.help(), k.open)
		RegisterDatasetDescriber(k.name, k.describe)
	}
}

func (k staticKind) help() string {
	native := ""
	if k.nativeOpts != "" {
		native = " (native: " + k.nativeOpts + ")"
	}
	return fmt.Sprintf("%s still images, %d classes. data.root = folder with %s, or with the QCS lists %s, %s and %s/. "+
		"Options: layout auto|native|list, train_list, test_list, image_dir, list_classes, list_label_base%s; "+
		"train_transforms, test_transforms (default %s); sampler random|balanced (default %s), samples_per_epoch, epoch_divisor; "+
		"quadruplet (QCS), negative_class data|uniform (default %s), pairs (DCS); workers",
		k.title, len(k.classes), k.nativeHelp, k.trainList, k.testList, k.listImages, native, k.transformsHelp, k.sampler, k.negative)
}

func yamlValue(src string) (any, error) {
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		return nil, fmt.Errorf("built-in transforms %q: %w", src, err)
	}
	return v, nil
}

// underRoot resolves p against root unless it is absolute.
func underRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// options decodes cfg's options over k's defaults and parses the two
// pipelines.
func (k staticKind) options(cfg DataConfig) (o StaticDataOptions, trainP, testP *data.Pipeline, err error) {
	o = StaticDataOptions{Layout: "auto", TrainList: k.trainList, TestList: k.testList,
		Sampler: k.sampler, NegativeClass: k.negative, EpochDivisor: 1, Workers: runtime.NumCPU()}
	if err := DecodeOptions(cfg.Options, &o, "dataset "+k.name); err != nil {
		return o, nil, nil, err
	}
	if o.TrainTransforms == nil {
		if o.TrainTransforms, err = yamlValue(k.trainTransforms); err != nil {
			return o, nil, nil, err
		}
	}
	if o.TestTransforms == nil {
		if o.TestTransforms, err = yamlValue(k.testTransforms); err != nil {
			return o, nil, nil, err
		}
	}
	if trainP, err = data.ParsePipeline(o.TrainTransforms, "train_transforms"); err != nil {
		return o, nil, nil, err
	}
	if testP, err = data.ParsePipeline(o.TestTransforms, "test_transforms"); err != nil {
		return o, nil, nil, err
	}
	return o, trainP, testP, nil
}

// describe is k's DatasetDescriber: the classes (list_classes when
// given) and the test pipeline's input, from the options alone. The test
// transforms must end in a fixed size (the defaults do).
func (k staticKind) describe(cfg DataConfig) (*Splits, error) {
	o, trainP, testP, err := k.options(cfg)
	if err != nil {
		return nil, err
	}
	if testP.Random() {
		return nil, fmt.Errorf("dataset %s: test_transforms has random steps (%v): predictions must be deterministic", k.name, testP.Steps())
	}
	if trainP.Channels() != testP.Channels() {
		return nil, fmt.Errorf("dataset %s: train_transforms give %d channels, test_transforms %d: the model sees both", k.name, trainP.Channels(), testP.Channels())
	}
	classes := k.classes
	if len(o.ListClasses) > 0 {
		if len(o.ListClasses) != len(k.classes) {
			return nil, fmt.Errorf("list_classes has %d names, %s has %d classes", len(o.ListClasses), k.title, len(k.classes))
		}
		classes = o.ListClasses
	}
	w, h, ok := testP.FixedSize()
	if !ok {
		return nil, fmt.Errorf("dataset %s: test_transforms %v do not end in a fixed size (a [h, w] resize or a crop): the model's input size depends on the picture", k.name, testP.Steps())
	}
	if tw, th, ok := trainP.FixedSize(); ok && (tw != w || th != h) {
		return nil, fmt.Errorf("dataset %s: train_transforms give %dx%d images, test_transforms %dx%d: the model sees both (end both with the same resize or crop)", k.name, tw, th, w, h)
	}
	shape := []int64{int64(testP.Channels()), int64(h), int64(w)}
	return &Splits{
		Classes:    append([]string(nil), classes...),
		InputShape: shape,
		ImageInput: func(img image.Image) ([]float32, error) {
			if img.Bounds().Empty() {
				return nil, fmt.Errorf("empty image")
			}
			var src imaging.RGB
			imaging.FromImage(img, &src)
			out, got, err := testP.Apply(&src, image.Rectangle{}, nil, nil)
			if err != nil {
				return nil, err
			}
			if int64(got[0]) != shape[0] || int64(got[1]) != shape[1] || int64(got[2]) != shape[2] {
				return nil, fmt.Errorf("the picture gives a %v tensor, the model takes %v", got, shape)
			}
			return out, nil
		},
	}, nil
}

func (k staticKind) open(cfg DataConfig, seed int64) (*Splits, error) {
	o, trainP, testP, err := k.options(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Root == "" {
		return nil, fmt.Errorf("data.root is empty: give the data folder with --data-root PATH (or data.root in the config)")
	}
	if st, err := os.Stat(cfg.Root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("data.root %s is not a folder", cfg.Root)
	}
	neg, err := data.ParseNegativeClass(o.NegativeClass)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Sampler != "random" && o.Sampler != "balanced":
		return nil, fmt.Errorf("sampler = %q, want random (a permutation per epoch) or balanced (class-balanced with replacement)", o.Sampler)
	case o.SamplesPerEpoch < 0 || o.EpochDivisor < 1:
		return nil, fmt.Errorf("samples_per_epoch = %d, epoch_divisor = %d: want samples_per_epoch >= 0 and epoch_divisor >= 1", o.SamplesPerEpoch, o.EpochDivisor)
	case o.Sampler == "random" && (o.SamplesPerEpoch != 0 || o.EpochDivisor != 1):
		return nil, fmt.Errorf("samples_per_epoch and epoch_divisor size a balanced epoch: set sampler: balanced (random visits every image once per epoch)")
	case o.Workers < 0:
		return nil, fmt.Errorf("workers = %d, want >= 0 (0: one per core)", o.Workers)
	case o.Labelled < 0:
		return nil, fmt.Errorf("labelled = %d, want >= 0 (0: every training image)", o.Labelled)
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	classes := k.classes
	layout := o.Layout
	if layout == "auto" || layout == "" {
		layout = "native"
		if _, err := os.Stat(underRoot(cfg.Root, o.TrainList)); err == nil {
			layout = "list"
		}
	}
	var trItems, vaItems, teItems []data.ImageItem
	var note string
	var drops [3]*data.Drops // per split, from the native readers
	separateVal := false
	switch layout {
	case "list":
		if o.Original || o.FaceBox {
			return nil, fmt.Errorf("original and face_box are options of the native layout; the list layout reads the listed image files as they are")
		}
		if len(o.ListClasses) > 0 {
			if len(o.ListClasses) != len(k.classes) {
				return nil, fmt.Errorf("list_classes has %d names, %s has %d classes", len(o.ListClasses), k.title, len(k.classes))
			}
			classes = o.ListClasses
		}
		imgDir := o.ImageDir
		if imgDir == "" {
			imgDir = k.listImages
		}
		lo := data.ImageListOptions{ImageDir: underRoot(cfg.Root, imgDir), Classes: classes, LabelBase: o.ListLabelBase}
		if trItems, err = data.OpenImageList(underRoot(cfg.Root, o.TrainList), lo); err != nil {
			return nil, err
		}
		if teItems, err = data.OpenImageList(underRoot(cfg.Root, o.TestList), lo); err != nil {
			return nil, err
		}
		vaItems = teItems
		note = fmt.Sprintf("%s from the QCS lists %s / %s: %s", k.title, o.TrainList, o.TestList, StaticValNote)
	case "native":
		if len(o.ListClasses) > 0 || o.ListLabelBase != 0 {
			return nil, fmt.Errorf("list_classes and list_label_base are options of the list layout (the native files' label codes are fixed)")
		}
		tr, va, te, n, err := k.native(cfg.Root, o)
		if err != nil {
			return nil, fmt.Errorf("%w (or, for the QCS split lists, put %s under %s)", err, k.trainList, cfg.Root)
		}
		trItems, vaItems, teItems, note = tr.Items, va.Items, te.Items, n
		separateVal = va != te
		for i, ds := range []*data.ImageDataset{tr, va, te} {
			// the readers report what they leave out (data.Drops)
			if dr, ok := any(ds).(data.DropReporter); ok {
				drops[i] = dr.Drops()
			}
		}
	default:
		return nil, fmt.Errorf("layout = %q, want auto, native (%s) or list (%s, %s)", o.Layout, k.nativeHelp, k.trainList, k.testList)
	}
	var subset *labelledSubset
	if o.Labelled > 0 {
		if o.LabelledSeed == 0 {
			o.LabelledSeed = seed
		}
		if trItems, subset, err = stratify(trItems, len(classes), o.Labelled, o.LabelledSeed); err != nil {
			return nil, fmt.Errorf("%s labelled: %w", k.name, err)
		}
		note += "; " + subset.note(classes)
	}
	mk := func(split string, items []data.ImageItem) (*data.StaticSet, error) {
		return data.NewStaticSet(k.name+" "+split, items, classes, trainP, testP)
	}
	trSet, err := mk("train", trItems)
	if err != nil {
		return nil, err
	}
	if o.Quadruplet && o.Pairs {
		return nil, fmt.Errorf("quadruplet (QCS) and pairs (DCS) exclude each other: set one")
	}
	if o.Quadruplet {
		if err := trSet.Index.CheckQuadruplets(neg, classes); err != nil {
			return nil, fmt.Errorf("%s train: %w", k.name, err)
		}
	}
	if o.Pairs {
		if err := trSet.Index.CheckPairs(classes); err != nil {
			return nil, fmt.Errorf("%s train: %w", k.name, err)
		}
	}
	teSet, err := mk("test", teItems)
	if err != nil {
		return nil, err
	}
	vaSet := teSet
	if separateVal {
		if vaSet, err = mk("val", vaItems); err != nil {
			return nil, err
		}
	}
	n := o.SamplesPerEpoch
	if n == 0 {
		n = len(trItems) / o.EpochDivisor
	}
	if o.Sampler == "balanced" && n < 1 {
		return nil, fmt.Errorf("%d training images / epoch_divisor %d = 0 anchors per epoch", len(trItems), o.EpochDivisor)
	}
	note = fmt.Sprintf("%s; %d train / %d val / %d test images", note, len(trItems), len(vaItems), len(teItems))
	if o.Sampler == "balanced" {
		note += fmt.Sprintf("; class-balanced sampling, %d anchors per epoch", n)
	}
	if o.Quadruplet {
		note += fmt.Sprintf("; quadruplet batches (negative class: %s)", neg)
	}
	if o.Pairs {
		note += "; pair batches (anchor, positive)"
	}
	train := &StaticSplit{Set: trSet, Workers: o.Workers, Balanced: o.Sampler == "balanced", EpochSamples: n,
		Quadruplet: o.Quadruplet, Pairs: o.Pairs, Negative: neg, drops: drops[0], subset: subset}
	val := &StaticSplit{Set: vaSet, Workers: o.Workers, Note: note, drops: drops[1]}
	test := val
	if separateVal {
		test = &StaticSplit{Set: teSet, Workers: o.Workers, drops: drops[2]}
	}
	shape := trSet.SampleShape()
	return &Splits{
		Train: train, Val: val, Test: test,
		Classes:    append([]string(nil), classes...),
		InputShape: []int64{int64(shape[0]), int64(shape[1]), int64(shape[2])},
		ImageInput: func(img image.Image) ([]float32, error) { return teSet.Preprocess(img) },
	}, nil
}

// StaticSplit adapts a data.StaticSet to Dataset. Training batches are
// single images (input [B,C,H,W] and the label target) or, with
// Quadruplet, QCS quadruplets (inputs anchor, positive, negative,
// negative2 and the targets label and label_neg), or with Pairs DCS pairs
// (inputs anchor, positive; target label); evaluation batches are
// always single images through the test transforms. The epoch's anchors
// are a permutation, or with Balanced EpochSamples class-balanced draws
// with replacement.
type StaticSplit struct {
	Set          *data.StaticSet
	Workers      int
	Balanced     bool
	EpochSamples int
	Quadruplet   bool
	Pairs        bool
	Negative     data.NegativeClass
	// Note describes the split's protocol for the log; may be empty.
	Note   string
	drops  *data.Drops
	subset *labelledSubset
}

// RunRecords implements RunRecorder: a labelled subset's images, one ID
// per line (LabelledFile).
func (s *StaticSplit) RunRecords() map[string][]byte {
	if s.subset == nil {
		return nil
	}
	return map[string][]byte{LabelledFile: []byte(s.subset.list())}
}

// labelledSubset is the training images a semi-supervised run keeps.
type labelledSubset struct {
	of, seed int64
	perClass []int
	ids      []string
}

// stratify keeps a class-stratified subset of n of items, drawn with
// seed.
func stratify(items []data.ImageItem, numClasses, n int, seed int64) ([]data.ImageItem, *labelledSubset, error) {
	labels := make([]int, len(items))
	for i, it := range items {
		labels[i] = it.Label
	}
	ci := data.NewClassIndex(labels, numClasses)
	idx, err := ci.Stratified(n, NewRand(seed, streamLabelled))
	if err != nil {
		return nil, nil, err
	}
	q, _ := ci.Quotas(n)
	sub := &labelledSubset{of: int64(len(items)), seed: seed, perClass: q}
	out := make([]data.ImageItem, len(idx))
	for i, j := range idx {
		out[i] = items[j]
		sub.ids = append(sub.ids, items[j].ID)
	}
	return out, sub, nil
}

func (l *labelledSubset) note(classes []string) string {
	var parts []string
	for k, c := range classes {
		parts = append(parts, fmt.Sprintf("%s %d", c, l.perClass[k]))
	}
	return fmt.Sprintf("labelled subset: %d of %d training images, class-stratified, seed %d (%s; listed in RUN/%s)",
		len(l.ids), l.of, l.seed, strings.Join(parts, ", "), LabelledFile)
}

func (l *labelledSubset) list() string {
	return fmt.Sprintf("# %d of %d training images, class-stratified, labelled_seed %d\n", len(l.ids), l.of, l.seed) + strings.Join(l.ids, "\n") + "\n"
}

// Len implements Dataset.
func (s *StaticSplit) Len() int { return s.Set.Len() }

// Label implements Labeled.
func (s *StaticSplit) Label(i int) int { return s.Set.Label(i) }

// ProtocolNote returns Note.
func (s *StaticSplit) ProtocolNote() string { return s.Note }

// Drops reports the samples the native readers left out (nil when none).
func (s *StaticSplit) Drops() *data.Drops { return s.drops }

// EpochIndices implements EpochSampler: a permutation of the split, or
// EpochSamples class-balanced draws.
func (s *StaticSplit) EpochIndices(_ int, rng *rand.Rand) []int {
	if s.Balanced {
		return s.Set.Index.Balanced(s.EpochSamples, rng)
	}
	return rng.Perm(s.Set.Len())
}

// Batch implements Dataset.
func (s *StaticSplit) Batch(idx []int, train bool, rng *rand.Rand, dev gotch.Device) (*Batch, error) {
	shape := func(b *data.Batch) []int64 {
		out := make([]int64, len(b.Shape))
		for i, v := range b.Shape {
			out[i] = int64(v)
		}
		return out
	}
	if train && s.Quadruplet {
		qb, err := data.LoadQuadruplets(s.Set, s.Set.Index, idx, s.Negative, rng, s.Workers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Set.Name, err)
		}
		parts := []*data.Batch{qb.Anchor, qb.Positive, qb.Negative, qb.Negative2}
		inputs := make([][]float32, 4)
		shapes := make([][]int64, 4)
		for k, p := range parts {
			inputs[k], shapes[k] = p.Data, shape(p)
		}
		return NewBatch(dev, qb.Anchor.IDs, inputs, shapes, map[string]any{
			TargetLabel: qb.Anchor.Labels, TargetLabelNeg: qb.NegLabels,
		})
	}
	if train && s.Pairs {
		pb, err := data.LoadPairs(s.Set, s.Set.Index, idx, rng, s.Workers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Set.Name, err)
		}
		return NewBatch(dev, pb.Anchor.IDs, [][]float32{pb.Anchor.Data, pb.Positive.Data},
			[][]int64{shape(pb.Anchor), shape(pb.Positive)}, map[string]any{TargetLabel: pb.Anchor.Labels})
	}
	hb, err := data.LoadPositions(s.Set, idx, train, rng, s.Workers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Set.Name, err)
	}
	return NewBatch(dev, hb.IDs, [][]float32{hb.Data}, [][]int64{shape(hb)}, map[string]any{TargetLabel: hb.Labels})
}

// StaticDatasetNames lists the still-image data sets.
func StaticDatasetNames() []string {
	out := make([]string, len(staticKinds))
	for i, k := range staticKinds {
		out[i] = k.name
	}
	return out
}
