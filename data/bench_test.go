package data

import (
	"fmt"
	"path/filepath"
	"testing"
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
