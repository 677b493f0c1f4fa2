package fer

import (
	"image"
	"image/color"
	"testing"
)

// 1 sample, 2 planes of 4×4 holding 100·plane + 10·y + x.
func ramp() ([]float32, []int64) {
	d := make([]float32, 2*16)
	for p := 0; p < 2; p++ {
		for y := 0; y < 4; y++ {
			for x := 0; x < 4; x++ {
				d[p*16+y*4+x] = float32(100*p + 10*y + x)
			}
		}
	}
	return d, []int64{1, 2, 4, 4}
}

func TestCropCHW(t *testing.T) {
	d, shape := ramp()
	got := cropCHW(d, shape, 2, nil, 0)
	want := []float32{11, 12, 21, 22, 111, 112, 121, 122}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("centre crop %v, want %v", got, want)
		}
	}
	// with augmentation every window stays inside the image, both planes
	// move together, and flips and shifts both occur
	seen := map[float32]bool{}
	flips := 0
	for i := 0; i < 200; i++ {
		c := cropCHW(d, shape, 2, NewRand(1, uint64(i)), 1)
		if c[4]-c[0] != 100 || c[7]-c[3] != 100 {
			t.Fatalf("planes cropped differently: %v", c)
		}
		if c[1]-c[0] == -1 {
			flips++
		} else if c[1]-c[0] != 1 {
			t.Fatalf("row not contiguous: %v", c)
		}
		if c[2]-c[0] != 10 {
			t.Fatalf("rows not adjacent: %v", c)
		}
		seen[min(c[0], c[1])] = true
	}
	if flips < 60 || flips > 140 || len(seen) != 9 {
		t.Fatalf("%d flips of 200, %d window positions (want about 100 and all 9)", flips, len(seen))
	}
}

func TestAugmentCHWShiftAndFlip(t *testing.T) {
	for i := 0; i < 50; i++ {
		d, shape := ramp()
		augmentCHW(d, shape, NewRand(2, uint64(i)), 1)
		// each row stays a row of the original (edge-repeated), planes agree
		for y := 0; y < 4; y++ {
			for x := 0; x < 4; x++ {
				if d[16+y*4+x]-d[y*4+x] != 100 {
					t.Fatalf("planes differ after augmentation")
				}
			}
		}
		if v := d[0]; v != 0 && v != 1 && v != 10 && v != 11 && v != 2 && v != 3 && v != 12 && v != 13 {
			t.Fatalf("corner value %v cannot come from a ±1 shift (with flip)", v)
		}
	}
}

func TestSynthImageInputMatchesDataset(t *testing.T) {
	lockThread(t)
	s, err := OpenDataset(DataConfig{Name: "synth", Options: map[string]any{"train_n": 1, "val_n": 0, "test_n": 3, "size": 40, "crop": 32}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.InputShape) != 3 || s.InputShape[1] != 32 {
		t.Fatalf("input shape %v", s.InputShape)
	}
	b, err := s.Test.Batch([]int{2}, false, NewRand(0, 0), cpu)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	want := b.Inputs[0].Float64Values()
	samples, _ := s.Test.(*SynthDataset).Samples()
	// the same picture handed in as a generic image, e.g. a decoded PNG
	img := image.NewNRGBA(samples[2].Image().Rect)
	for y := 0; y < 40; y++ {
		for x := 0; x < 40; x++ {
			img.Set(x, y, color.NRGBAModel.Convert(samples[2].Image().At(x, y)))
		}
	}
	got, err := s.ImageInput(img)
	if err != nil || len(got) != len(want) {
		t.Fatalf("ImageInput: %d values, %v", len(got), err)
	}
	for i := range got {
		if float64(got[i]) != want[i] {
			t.Fatalf("value %d: predict input %v, test batch %v", i, got[i], want[i])
		}
	}
}
