package data

import (
	"fmt"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// BenchmarkDFEWClipLoad times one training-mode Load of a DFEW-sized clip
// (40 frames of 224×224 JPEG → 16×3×112×112), the per-sample cost the
// loader's workers share.
func BenchmarkDFEWClipLoad(b *testing.B) {
	dir := b.TempDir()
	img := pattern(224, 224)
	for k := range 40 {
		writeJPEG(b, filepath.Join(dir, "c", fmt.Sprintf("%05d.jpg", k+1)), img)
	}
	d, err := NewClipDataset("bench", []Clip{{ID: "c", Path: filepath.Join(dir, "c")}}, DFEWClasses, ClipOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Load(0, SampleRNG(1, 0, i), true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQCSPipeline times one training-mode Load of a RAF-DB aligned
// face (100×100 JPEG) through the QCS FERPlus/AffectNet-style train
// pipeline (resize 236, flip, rotation, random crop 224, colour jitter,
// normalise, random erasing): a quadruplet batch of 24 anchors is 96 of
// these.
func BenchmarkQCSPipeline(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "a.jpg")
	writeJPEG(b, p, photo(100, 100, 1))
	var spec any
	if err := yaml.Unmarshal([]byte(`[{resize: [236, 236]}, hflip, {random_rotation: 12}, {random_crop: [224, 224]}, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.03, 0.1]}}]`), &spec); err != nil {
		b.Fatal(err)
	}
	tr, err := ParsePipeline(spec, "bench")
	if err != nil {
		b.Fatal(err)
	}
	te, _ := ParsePipeline([]any{map[string]any{"resize": []any{224, 224}}}, "bench")
	set, err := NewStaticSet("bench", []ImageItem{{ID: "a", Path: p}}, []string{"x"}, tr, te)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := set.Load(0, SampleRNG(1, 0, i), true); err != nil {
			b.Fatal(err)
		}
	}
}
