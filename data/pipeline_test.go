package data

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/imaging"
	"go.yaml.in/yaml/v3"
)

// parseSpec parses a YAML pipeline.
func parseSpec(t *testing.T, src string) (*Pipeline, any) {
	t.Helper()
	var spec any
	if err := yaml.Unmarshal([]byte(src), &spec); err != nil {
		t.Fatal(err)
	}
	p, err := ParsePipeline(spec, "test")
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return p, spec
}

// photo is a w×h test image with gradients, saturated and grey areas,
// hard edges and noise, so that every colour path (hue wrap-around,
// saturation 0, clipping) and every resampling tap is exercised.
func photo(w, h int, seed uint64) *image.NRGBA {
	rng := rand.New(rand.NewPCG(seed, 3))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var c color.NRGBA
			switch {
			case x < w/4: // grey ramp
				v := uint8(255 * y / max(1, h-1))
				c = color.NRGBA{v, v, v, 255}
			case (x/5+y/7)%3 == 0: // saturated blocks
				c = color.NRGBA{uint8(rng.IntN(2) * 255), uint8(rng.IntN(256)), uint8(rng.IntN(2) * 255), 255}
			default:
				c = color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), uint8((x * y) % 256), 255}
				c.R ^= uint8(rng.IntN(32))
				c.B += uint8(rng.IntN(16))
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type refCase struct {
	Image  string  `json:"image"`
	Region *[4]int `json:"region"`
	Spec   any     `json:"spec"`
	Trace  Trace   `json:"trace"`
}

// torchvision runs testdata/tv_ref.py on the cases and returns each
// case's tensor and shape. Skipped when /usr/bin/python3 lacks
// torchvision.
func torchvision(t *testing.T, cases []refCase) ([][]float32, [][]int) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torchvision, PIL").Run(); err != nil {
		t.Skipf("torchvision reference unavailable: %s cannot import torchvision (%v); install python3-torchvision (setup-gotch.sh does)", py, err)
	}
	req, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/tv_ref.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tv_ref.py: %v\n%s", err, stderr.String())
	}
	r := bufio.NewReader(bytes.NewReader(out))
	var vals [][]float32
	var shapes [][]int
	for range cases {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("tv_ref.py output: %v", err)
		}
		var shape []int
		if err := json.Unmarshal(line, &shape); err != nil {
			t.Fatal(err)
		}
		n := 1
		for _, s := range shape {
			n *= s
		}
		buf := make([]byte, 4*n)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("tv_ref.py output: %v", err)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		vals = append(vals, v)
		shapes = append(shapes, shape)
	}
	return vals, shapes
}

// The pipelines of the public QCS and RMFER code, and every transform's
// options and edge cases, equal torchvision 0.14 on PIL images bit for
// bit: deterministic steps as torchvision's classes compute them, random
// ones with the parameters fer drew.
func TestPipelineMatchesTorchvision(t *testing.T) {
	dir := t.TempDir()
	imgs := []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png"), filepath.Join(dir, "c.jpg")}
	writePNG(t, imgs[0], photo(100, 100, 1)) // RAF-DB's aligned size
	writePNG(t, imgs[1], photo(77, 53, 2))   // odd, landscape
	writeJPEG(t, imgs[2], photo(48, 64, 3))  // JPEG, portrait
	specs := []struct {
		spec  string
		seeds int
	}{
		// QCS RAF-DB (main_QCS_raf_db.py)
		{`[{resize: [224, 224]}, hflip, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]`, 4},
		// QCS FERPlus train and test (main_QCS_ferplus.py)
		{`[{resize: [232, 232]}, hflip, {random_rotation: 10}, {random_crop: [224, 224]}, {color_jitter: [0.2, 0.2, 0.2, 0.1]}, to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]`, 3},
		{`[{resize: [236, 236]}, {center_crop: [224, 224]}, to_tensor, {normalize: imagenet}]`, 1},
		// RMFER (datasets/AffectNet.py, RMset.py)
		{`[{resize: [70, 70]}, {random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}, to_tensor, {normalize: {mean: [0.6112, 0.4708, 0.4095], std: [0.2109, 0.1876, 0.1757]}}]`, 8},
		{`[{resize: [70, 70]}, {grayscale: 3}, to_tensor]`, 1},
		// edge cases of each transform
		{`[{resize: 40}]`, 1},
		{`[{resize: {size: 30, max_size: 36}}, {center_crop: 41}]`, 1},
		{`[{random_rotation: [-180, 180]}, to_tensor]`, 6},
		{`[{random_rotation: {degrees: [90, 90], fill: [10, 200, 30]}}]`, 1},
		{`[{random_rotation: [180, 180]}]`, 1},
		{`[{random_rotation: {degrees: [-270, -270], fill: 77}}]`, 1},
		{`[{random_crop: {size: [55, 50], padding: [3, 5], padding_mode: reflect}}]`, 3},
		{`[{random_crop: {size: 45, padding: [1, 2, 3, 4], padding_mode: symmetric}}]`, 2},
		{`[{random_crop: {size: [30, 90], pad_if_needed: true, padding_mode: edge}}]`, 2},
		{`[{random_crop: {size: 50, padding: 2, fill: [255, 0, 128]}}]`, 2},
		{`[{color_jitter: {brightness: [0, 3], contrast: [0, 3], saturation: [0, 3], hue: 0.5}}]`, 8},
		{`[{color_jitter: {hue: [-0.5, -0.3]}}, {grayscale: 1}, {color_jitter: [0.5, 0.5, 0.5, 0.2]}, to_tensor, {normalize: {mean: [0.5], std: [0.25]}}]`, 3},
		{`[{random_grayscale: 1}, {random_choice: {transforms: [{hflip: 1}, {color_jitter: 0.9}], p: [1, 3]}}]`, 4},
		{`[to_tensor, {random_erasing: {p: 1, scale: [0.1, 0.4], ratio: [0.5, 2], value: random}}]`, 3},
		{`[to_tensor, {random_erasing: {p: 1, value: [0.1, 0.2, 0.3]}}]`, 3},
	}
	type run struct {
		out   []float32
		shape [3]int
	}
	var cases []refCase
	var got []run
	var src imaging.RGB
	for _, s := range specs {
		p, spec := parseSpec(t, s.spec)
		for k, path := range imgs {
			if err := imaging.DecodeFile(path, &src); err != nil {
				t.Fatal(err)
			}
			for seed := range s.seeds {
				var region *[4]int
				r := image.Rectangle{}
				if k == 1 && seed == 1 { // a face box inside the image
					region, r = &[4]int{5, 3, 70, 50}, image.Rect(5, 3, 70, 50)
				}
				var tr Trace
				out, shape, err := p.Apply(&src, r, rand.New(rand.NewPCG(uint64(seed), uint64(k))), &tr)
				if err != nil {
					t.Fatalf("%s on %s: %v", s.spec, path, err)
				}
				cases = append(cases, refCase{Image: path, Region: region, Spec: spec, Trace: tr})
				got = append(got, run{out, shape})
			}
		}
	}
	want, shapes := torchvision(t, cases)
	for i, c := range cases {
		if !slices.Equal(shapes[i], got[i].shape[:]) {
			t.Errorf("%v on %s: shape %v, torchvision %v", c.Spec, filepath.Base(c.Image), got[i].shape, shapes[i])
			continue
		}
		diff, first := 0, -1
		for j := range want[i] {
			if got[i].out[j] != want[i][j] {
				if first < 0 {
					first = j
				}
				diff++
			}
		}
		if diff > 0 {
			tj, _ := json.Marshal(c.Trace)
			t.Errorf("%v on %s: %d of %d values differ (first at %d: %v, torchvision %v); trace %s",
				c.Spec, filepath.Base(c.Image), diff, len(want[i]), first, got[i].out[first], want[i][first], tj)
		}
	}
	t.Logf("%d cases equal torchvision", len(cases))
}

// Random steps draw from the rng only: the same seed gives the same
// tensor and trace, other seeds other draws; deterministic pipelines need
// no rng.
func TestPipelineDeterminism(t *testing.T) {
	p, _ := parseSpec(t, `[{resize: [40, 40]}, hflip, {random_rotation: 15}, {color_jitter: [0.3, 0.3, 0.3, 0.1]}, to_tensor, {random_erasing: {p: 0.7}}]`)
	var src imaging.RGB
	imaging.FromImage(photo(50, 60, 4), &src)
	var t1, t2, t3 Trace
	a, _, err := p.Apply(&src, image.Rectangle{}, rand.New(rand.NewPCG(7, 1)), &t1)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := p.Apply(&src, image.Rectangle{}, rand.New(rand.NewPCG(7, 1)), &t2)
	c, _, _ := p.Apply(&src, image.Rectangle{}, rand.New(rand.NewPCG(8, 1)), &t3)
	j1, _ := json.Marshal(t1)
	j2, _ := json.Marshal(t2)
	j3, _ := json.Marshal(t3)
	if !slices.Equal(a, b) || string(j1) != string(j2) {
		t.Fatal("same seed, different result")
	}
	if slices.Equal(a, c) || string(j1) == string(j3) {
		t.Fatal("different seeds, same draws")
	}
	if _, _, err := p.Apply(&src, image.Rectangle{}, nil, nil); err == nil || !strings.Contains(err.Error(), "random generator") {
		t.Fatalf("nil rng: %v", err)
	}
	det, _ := parseSpec(t, `[{resize: 32}, {center_crop: 28}, to_tensor, {normalize: imagenet}]`)
	if det.Random() {
		t.Fatal("deterministic pipeline reports random steps")
	}
	if w, h, ok := det.FixedSize(); !ok || w != 28 || h != 28 {
		t.Fatalf("fixed size %d %d %v", w, h, ok)
	}
	if _, _, ok := (&Pipeline{steps: []step{resizeStep{short: 32}}}).FixedSize(); ok {
		t.Fatal("shorter-side resize reported as fixed size")
	}
}

// A clip draws each step's parameters once: every frame gets the same
// flip, rotation, jitter and erasing.
func TestPipelineFrames(t *testing.T) {
	p, _ := parseSpec(t, `[{resize: [24, 24]}, hflip, {random_rotation: 30}, {color_jitter: [0.4, 0.4, 0.4, 0.2]}, to_tensor, {random_erasing: {p: 1}}]`)
	var f0, f1 imaging.RGB
	imaging.FromImage(photo(30, 30, 5), &f0)
	imaging.FromImage(photo(30, 30, 6), &f1)
	var tr Trace
	out, shape, err := p.ApplyFrames([]*imaging.RGB{&f0, &f1}, image.Rectangle{}, rand.New(rand.NewPCG(1, 2)), &tr)
	if err != nil {
		t.Fatal(err)
	}
	if shape != [3]int{3, 24, 24} || len(out) != 2 || len(tr) != 6 {
		t.Fatalf("shape %v, %d frames, trace %d steps", shape, len(out), len(tr))
	}
	// replaying frame 1 alone with the recorded draws gives the same
	one := replay(t, p, &f1, tr)
	if !slices.Equal(one, out[1]) {
		t.Fatal("frame 1 was not transformed with the clip's parameters")
	}
	var small imaging.RGB
	imaging.FromImage(photo(20, 30, 5), &small)
	if _, _, err := p.ApplyFrames([]*imaging.RGB{&f0, &small}, image.Rectangle{}, rand.New(rand.NewPCG(1, 2)), nil); err == nil {
		t.Fatal("frames of different sizes accepted")
	}
}

// replay applies p to img with the parameters of a trace.
func replay(t *testing.T, p *Pipeline, img *imaging.RGB, tr Trace) []float32 {
	t.Helper()
	ws := &workspace{}
	f := &frame{cur: &ws.a, spare: &ws.b}
	if err := imaging.Crop(f.cur, img, image.Rect(0, 0, img.W, img.H)); err != nil {
		t.Fatal(err)
	}
	k := 0
	for ; k < len(p.steps); k++ {
		is, ok := p.steps[k].(imageStep)
		if !ok {
			break
		}
		if err := is.apply(f, tr[k].Params); err != nil {
			t.Fatal(err)
		}
	}
	c := 3
	if f.gray {
		c = 1
	}
	out := toTensorCHW(f.cur, c)
	for k++; k < len(p.steps); k++ {
		if err := p.steps[k].(tensorStep).apply(out, c, f.cur.H, f.cur.W, tr[k].Params); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Every malformed spec is an error naming the item, the key and what is
// allowed.
func TestParsePipelineErrors(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{`{resize: 3}`, "want a list of transforms"},
		{`[{resise: 224}]`, `test[0]: unknown transform "resise" (transforms: resize,`},
		{`[{resize: 224, hflip: 0.5}]`, "one transform per list item"},
		{`[resize]`, "size is required"},
		{`[{resize: [1, 2, 3]}]`, "want an int or [height, width]"},
		{`[{resize: {size: 4, interpolation: bicubic}}]`, "only bilinear"},
		{`[{resize: {size: 4, mode: x}}]`, `unknown key "mode" (allowed: size, interpolation, max_size, antialias)`},
		{`[{hflip: 1.5}]`, "test[0] (hflip): p = 1.5: want a probability in [0, 1]"},
		{`[{color_jitter: [0.2, 0.2, 0.2, 0.7]}]`, "hue = 0.7: range [-0.7, 0.7] must satisfy -0.5 <= min <= max <= 0.5"},
		{`[{color_jitter: {brightness: -1}}]`, "a single value must be >= 0"},
		{`[{color_jitter: {sharpness: 1}}]`, `unknown key "sharpness" (allowed: brightness, contrast, saturation, hue)`},
		{`[{random_rotation: {degrees: 10, expand: true}}]`, "only false"},
		{`[{random_rotation: {degrees: 10, interpolation: bilinear}}]`, "only nearest"},
		{`[{random_crop: {size: 3, padding_mode: wrap}}]`, "constant, edge, reflect or symmetric"},
		{`[{random_crop: {size: 3, padding: [1, 2, 3]}}]`, "[left, top, right, bottom]"},
		{`[{normalize: imagenet}]`, "put to_tensor before it"},
		{`[to_tensor, {resize: 3}]`, "put it before to_tensor"},
		{`[to_tensor, to_tensor]`, "to_tensor appears twice"},
		{`[to_tensor, {normalize: cifar}]`, `unknown normalization "cifar"`},
		{`[to_tensor, {normalize: {mean: [0.5, 0.5], std: [1, 1]}}]`, "normalize has 2 means for a 3-channel tensor"},
		{`[{grayscale: 1}, to_tensor, {normalize: imagenet}]`, "3 means for a 1-channel tensor"},
		{`[{grayscale: 2}]`, "want 1 or 3"},
		{`[to_tensor, {random_erasing: {scale: [0.5, 0.1]}}]`, "want [min, max] with 0 < min <= max"},
		{`[to_tensor, {random_erasing: {value: noise}}]`, "or random"},
		{`[{random_choice: [hflip, to_tensor]}]`, "picks among image transforms"},
		{`[{random_choice: {transforms: [hflip, {grayscale: 1}]}}]`, "different channel counts"},
		{`[{random_choice: {transforms: [hflip, grayscale], p: [1]}}]`, "one weight per transform (2)"},
		{`[3]`, "want a transform name or {name: argument}"},
	} {
		var spec any
		if err := yaml.Unmarshal([]byte(c.spec), &spec); err != nil {
			t.Fatal(err)
		}
		_, err := ParsePipeline(spec, "test")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.spec, err, c.want)
		}
	}
	// a crop larger than the image is an error naming the fix
	p, _ := parseSpec(t, `[{random_crop: 50}]`)
	var src imaging.RGB
	imaging.FromImage(photo(40, 40, 1), &src)
	if _, _, err := p.Apply(&src, image.Rectangle{}, rand.New(rand.NewPCG(1, 1)), nil); err == nil || !strings.Contains(err.Error(), "pad_if_needed") {
		t.Fatalf("oversized crop: %v", err)
	}
}
