package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func hashSamples(t *testing.T, samples []Sample) [32]byte {
	t.Helper()
	h := sha256.New()
	for _, s := range samples {
		for _, f := range s.Frames {
			h.Write(f.Pix)
		}
		h.Write([]byte{byte(s.Label), s.AU[0], s.AU[7]})
		var b [4]byte
		bits := math.Float32bits(s.Valence)
		b[0], b[1], b[2], b[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		h.Write(b[:])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func mustGenerate(t *testing.T, cfg Config) []Sample {
	t.Helper()
	s, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeterminism(t *testing.T) {
	cfg := Config{N: 40, Seed: 42, Frames: 4, Balanced: true}
	a := mustGenerate(t, cfg)
	cfg.Workers = 1 // scheduling must not matter
	b := mustGenerate(t, cfg)
	cfg.Workers = 7
	c := mustGenerate(t, cfg)
	if hashSamples(t, a) != hashSamples(t, b) || hashSamples(t, a) != hashSamples(t, c) {
		t.Fatal("same config and seed gave different samples for different Workers")
	}
	cfg.Seed = 43
	d := mustGenerate(t, cfg)
	if hashSamples(t, a) == hashSamples(t, d) {
		t.Fatal("different seeds gave identical samples")
	}
	for i := range a {
		if bytes.Equal(a[i].Frames[0].Pix, d[i].Frames[0].Pix) {
			t.Errorf("sample %d identical for seeds 42 and 43", i)
		}
	}
	// A prefix of a larger set equals the smaller set (i.i.d. and balanced).
	for _, bal := range []bool{false, true} {
		small := mustGenerate(t, Config{N: 10, Seed: 5, Balanced: bal})
		big := mustGenerate(t, Config{N: 25, Seed: 5, Balanced: bal})
		if hashSamples(t, small) != hashSamples(t, big[:10]) {
			t.Errorf("Balanced=%v: first 10 of N=25 differ from N=10", bal)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	bad := []Config{
		{N: 0},
		{N: -3},
		{N: 5, Size: 31},
		{N: 5, Size: 16},
		{N: 5, Size: MaxSize + 1},
		{N: 5, Frames: 1},
		{N: 5, Frames: -2},
		{N: 5, Frames: MaxFrames + 1},
		{N: 5, Noise: math.NaN()},
		{N: 5, Noise: 0.6},
		{N: 5, Classes: []int{}},
		{N: 5, Classes: []int{7}},
		{N: 5, Classes: []int{-1}},
		{N: 5, Classes: []int{1, 1}},
		{N: 5, Weights: []float64{1, 2}},
		{N: 5, Classes: []int{1, 2}, Weights: []float64{1, -1}},
		{N: 5, Classes: []int{1, 2}, Weights: []float64{0, 0}},
		{N: 5, Classes: []int{1, 2}, Weights: []float64{1, math.Inf(1)}},
		{N: 5, Workers: -1},
	}
	for i, cfg := range bad {
		if s, err := Generate(cfg); err == nil {
			t.Errorf("case %d (%+v): no error, got %d samples", i, cfg, len(s))
		}
	}
	if _, _, _, err := GenerateSplits(Config{}, 5, -1, 5); err == nil {
		t.Error("GenerateSplits with negative size: no error")
	}
	if _, _, _, err := GenerateSplits(Config{Size: 20}, 5, 5, 5); err == nil {
		t.Error("GenerateSplits with Size 20: no error")
	}
}

func TestSizesAndDefaults(t *testing.T) {
	for _, size := range []int{0, 48, 112} {
		s := mustGenerate(t, Config{N: 3, Size: size, Seed: 1})
		want := size
		if size == 0 {
			want = DefaultSize
		}
		for _, smp := range s {
			if len(smp.Frames) != 1 || len(smp.FrameLabels) != 1 {
				t.Fatalf("still image has %d frames, %d frame labels", len(smp.Frames), len(smp.FrameLabels))
			}
			if b := smp.Image().Rect; b.Dx() != want || b.Dy() != want {
				t.Fatalf("Size %d: image %v, want %dx%d", size, b, want, want)
			}
		}
	}
	// Noise: default differs from none; none is still deterministic.
	a := mustGenerate(t, Config{N: 2, Seed: 3, Noise: -1})
	b := mustGenerate(t, Config{N: 2, Seed: 3, Noise: -1})
	c := mustGenerate(t, Config{N: 2, Seed: 3})
	if !bytes.Equal(a[0].Image().Pix, b[0].Image().Pix) {
		t.Error("noise-free generation not deterministic")
	}
	if bytes.Equal(a[0].Image().Pix, c[0].Image().Pix) {
		t.Error("default noise produced the noise-free image")
	}
}

func TestLabelBalanceAndSubset(t *testing.T) {
	s := mustGenerate(t, Config{N: 7*30 + 3, Seed: 9, Balanced: true})
	var cnt [NumClasses]int
	for _, x := range s {
		cnt[x.Label]++
	}
	for c, n := range cnt {
		if n != 30 && n != 31 {
			t.Errorf("balanced: class %s has %d samples, want 30 or 31", Classes[c], n)
		}
	}
	// Every block of 7 holds each class once.
	for b := 0; b+7 <= len(s); b += 7 {
		var seen [NumClasses]bool
		for _, x := range s[b : b+7] {
			if seen[x.Label] {
				t.Fatalf("block at %d repeats class %d", b, x.Label)
			}
			seen[x.Label] = true
		}
	}
	// Subset with weights 3:1: labels only from the subset, ratio near 3.
	s = mustGenerate(t, Config{N: 800, Seed: 9, Classes: []int{Fear, Anger}, Weights: []float64{3, 1}})
	nf, na := 0, 0
	for _, x := range s {
		switch x.Label {
		case Fear:
			nf++
		case Anger:
			na++
		default:
			t.Fatalf("label %d outside subset {fear, anger}", x.Label)
		}
	}
	// Binomial(800, .75): mean 600, sd 12.2.
	if nf < 550 || nf > 650 {
		t.Errorf("weighted subset: %d fear / %d anger, want ≈600/200", nf, na)
	}
	// Unweighted i.i.d.: every class present.
	s = mustGenerate(t, Config{N: 350, Seed: 4})
	cnt = [NumClasses]int{}
	for _, x := range s {
		cnt[x.Label]++
	}
	for c, n := range cnt {
		// Binomial(350, 1/7): mean 50, sd 6.5.
		if n < 25 || n > 75 {
			t.Errorf("iid: class %s has %d samples, want ≈50", Classes[c], n)
		}
	}
}

// TestLabelsFollowDrawing checks that AU labels are exactly the thresholded
// drawn controls, that valence/arousal follow the circumplex anchors, and
// per-class AU rates match the expression table.
func TestLabelsFollowDrawing(t *testing.T) {
	s := mustGenerate(t, Config{N: 700, Seed: 11, Balanced: true, Noise: -1})
	var au [NumClasses][NumAUs]float64
	var va [NumClasses][2]float64
	var n [NumClasses]float64
	for i, x := range s {
		for k, act := range auActions {
			want := uint8(0)
			if act == ActLipsPart {
				var a [NumActions]float64
				for j, v := range x.Actions {
					a[j] = float64(v)
				}
				if lipGap(&a) > lipGapThreshold {
					want = 1
				}
			} else if x.Actions[act] > AUThreshold {
				want = 1
			}
			if x.AU[k] != want {
				t.Fatalf("sample %d %s: AU %d, drawn control %.3f", i, AUNames[k], x.AU[k], x.Actions[act])
			}
		}
		if x.Intensity < 0 || x.Intensity > 1 || (x.Label == Neutral) != (x.Intensity == 0) {
			t.Fatalf("sample %d (%s): intensity %v", i, Classes[x.Label], x.Intensity)
		}
		a := vaAnchors[x.Label]
		// anchor × intensity + N(0, 0.05²): 5 sigma = 0.25.
		if math.Abs(float64(x.Valence)-a[0]*float64(x.Intensity)) > 0.25 ||
			math.Abs(float64(x.Arousal)-a[1]*float64(x.Intensity)) > 0.25 ||
			math.Abs(float64(x.Valence)) > 1 || math.Abs(float64(x.Arousal)) > 1 {
			t.Fatalf("sample %d (%s, I=%.2f): VA (%.2f, %.2f) far from anchor %v", i, Classes[x.Label], x.Intensity, x.Valence, x.Arousal, a)
		}
		c := x.Label
		n[c]++
		va[c][0] += float64(x.Valence)
		va[c][1] += float64(x.Arousal)
		for k, v := range x.AU {
			au[c][k] += float64(v)
		}
	}
	for c := range au {
		for k := range au[c] {
			au[c][k] /= n[c]
		}
		va[c][0] /= n[c]
		va[c][1] /= n[c]
		t.Logf("%-8s V=%+.2f A=%+.2f AU rates %.2f", Classes[c], va[c][0], va[c][1], au[c])
	}
	const (
		au1, au2, au4, au6, au12, au15, au20, au25 = 0, 1, 2, 3, 4, 5, 6, 7
	)
	high := map[int][]int{ // class -> AUs present in ≥ 80 % of its samples
		Happy: {au12}, Sad: {au1, au15}, Surprise: {au1, au2, au25},
		Fear: {au1, au20, au25}, Anger: {au4},
	}
	for c, aus := range high {
		for _, k := range aus {
			if au[c][k] < 0.8 {
				t.Errorf("%s: %s rate %.2f, want >= 0.8", Classes[c], AUNames[k], au[c][k])
			}
		}
	}
	for k := range au[Neutral] {
		if au[Neutral][k] > 0.1 {
			t.Errorf("neutral: %s rate %.2f, want <= 0.1", AUNames[k], au[Neutral][k])
		}
	}
	if au[Happy][au15] > 0.1 || au[Sad][au12] > 0.1 || au[Anger][au1] > 0.1 {
		t.Errorf("contradictory AUs: happy AU15 %.2f, sad AU12 %.2f, anger AU1 %.2f", au[Happy][au15], au[Sad][au12], au[Anger][au1])
	}
	if va[Happy][0] < 0.4 || va[Surprise][0] < 0.05 {
		t.Errorf("mean valence happy %.2f surprise %.2f, want positive", va[Happy][0], va[Surprise][0])
	}
	for _, c := range []int{Sad, Fear, Disgust, Anger} {
		if va[c][0] > -0.3 {
			t.Errorf("mean valence %s %.2f, want < -0.3", Classes[c], va[c][0])
		}
	}
	if va[Sad][1] > -0.2 || va[Fear][1] < 0.5 || va[Surprise][1] < 0.5 || math.Abs(va[Neutral][1]) > 0.05 {
		t.Errorf("mean arousal sad %.2f fear %.2f surprise %.2f neutral %.2f", va[Sad][1], va[Fear][1], va[Surprise][1], va[Neutral][1])
	}
}

func TestClips(t *testing.T) {
	const T = 16
	s := mustGenerate(t, Config{N: 28, Seed: 21, Frames: T, Balanced: true})
	for i, x := range s {
		if len(x.Frames) != T || len(x.FrameLabels) != T {
			t.Fatalf("clip %d: %d frames, %d labels", i, len(x.Frames), len(x.FrameLabels))
		}
		if x.Onset < 0 || x.Onset >= x.Apex || x.Apex >= T {
			t.Fatalf("clip %d: onset %d apex %d", i, x.Onset, x.Apex)
		}
		fl := x.FrameLabels
		for t2 := 1; t2 < T; t2++ {
			if fl[t2].Intensity < fl[t2-1].Intensity {
				t.Fatalf("clip %d (%s): intensity drops at frame %d: %v", i, Classes[x.Label], t2, fl)
			}
		}
		last := fl[T-1]
		if last.Intensity != x.Intensity || last.Valence != x.Valence || last.AU != x.AU {
			t.Fatalf("clip %d: sample labels differ from the last frame's", i)
		}
		if x.Label != Neutral {
			if fl[x.Apex].Intensity != x.Intensity || fl[x.Onset].Intensity >= x.Intensity || fl[0].Intensity > 0.1 {
				t.Fatalf("clip %d: onset %d apex %d intensities %v", i, x.Onset, x.Apex, fl)
			}
		}
		// Frames move (head motion, noise) but stay the same identity:
		// consecutive frames are much closer than frames of another clip.
		dNext := meanAbsDiff(x.Frames[0], x.Frames[1])
		dOther := meanAbsDiff(x.Frames[0], s[(i+1)%len(s)].Frames[0])
		if dNext == 0 || dNext*3 > dOther {
			t.Errorf("clip %d: frame-to-frame diff %.1f vs other identity %.1f", i, dNext, dOther)
		}
	}
}

func meanAbsDiff(a, b *image.RGBA) float64 {
	d := 0.0
	for i := range a.Pix {
		d += math.Abs(float64(a.Pix[i]) - float64(b.Pix[i]))
	}
	return d / float64(len(a.Pix))
}

func TestIdentitiesDiffer(t *testing.T) {
	s := mustGenerate(t, Config{N: 30, Seed: 8, Noise: -1})
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if d := meanAbsDiff(s[i].Image(), s[j].Image()); d < 5 {
				t.Errorf("samples %d and %d nearly identical (mean |diff| %.2f)", i, j, d)
			}
		}
	}
}

// TestExpressionIsGeometry renders one identity neutral and at each apex:
// the background corners must not change, the face must.
func TestExpressionIsGeometry(t *testing.T) {
	rngID := newRNG(1, 99, 0)
	id := newIdentity(rngID)
	var zero [NumActions]float64
	neutral := render(64, id, &zero, id.base, 0, newRNG(1, 98, 0))
	for c := Happy; c < NumClasses; c++ {
		a := apexActions[c]
		img := render(64, id, &a, id.base, 0, newRNG(1, 98, 0))
		changed := 0
		for i := range img.Pix {
			if img.Pix[i] != neutral.Pix[i] {
				changed++
			}
		}
		if changed < 30 {
			t.Errorf("%s apex changes only %d channel values vs neutral", Classes[c], changed)
		}
		for _, p := range []image.Point{{0, 0}, {63, 0}, {0, 63}, {63, 63}} {
			if img.RGBAAt(p.X, p.Y) != neutral.RGBAAt(p.X, p.Y) {
				t.Errorf("%s changes background pixel %v", Classes[c], p)
			}
		}
	}
}

func TestSplitsDisjoint(t *testing.T) {
	tr, va, te, err := GenerateSplits(Config{Seed: 3, Balanced: true}, 30, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 30 || len(va) != 20 || te != nil {
		t.Fatalf("split sizes %d %d %d", len(tr), len(va), len(te))
	}
	seen := map[[32]byte]bool{}
	for _, s := range tr {
		seen[sha256.Sum256(s.Image().Pix)] = true
	}
	for i, s := range va {
		if seen[sha256.Sum256(s.Image().Pix)] {
			t.Errorf("val sample %d also in train", i)
		}
	}
	base := mustGenerate(t, Config{N: 30, Seed: 3, Balanced: true})
	if hashSamples(t, base) == hashSamples(t, tr) {
		t.Error("train split equals Generate with the base seed")
	}
	s1, s2, s3 := SplitSeed(3, Train), SplitSeed(3, Val), SplitSeed(3, Test)
	if s1 == s2 || s2 == s3 || s1 == s3 || s1 == 3 {
		t.Errorf("split seeds not distinct: %d %d %d", s1, s2, s3)
	}
}

func TestToCHWAndBatches(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	// pixel (x=1, y=0) = (255, 51, 0); pixel (0,1) = (0, 102, 255)
	copy(img.Pix[4:8], []byte{255, 51, 0, 255})
	copy(img.Pix[img.Stride:img.Stride+4], []byte{0, 102, 255, 255})
	got := ToCHW(img, [3]float32{0.5, 0, 0}, [3]float32{0.5, 1, 2})
	want := []float32{
		-1, 1, -1, -1, // R: (v-0.5)/0.5
		0, 0.2, 0.4, 0, // G
		0, 0, 0.5, 0, // B: v/2
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("ToCHW = %v, want %v", got, want)
		}
	}

	s := mustGenerate(t, Config{N: 5, Seed: 2, Frames: 3})
	data, labels, shape, err := BatchCHW(s, []int{4, 1}, ImageNetMean, ImageNetStd)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 4 || shape[0] != 2 || shape[1] != 3 || shape[2] != 64 || shape[3] != 64 || len(data) != 2*3*64*64 {
		t.Fatalf("BatchCHW shape %v len %d", shape, len(data))
	}
	if labels[0] != int64(s[4].Label) || labels[1] != int64(s[1].Label) {
		t.Fatalf("labels %v", labels)
	}
	ref := ToCHW(s[1].Frames[2], ImageNetMean, ImageNetStd) // apex = last frame
	for i, v := range ref {
		if data[3*64*64+i] != v {
			t.Fatalf("BatchCHW element %d = %v, want %v", i, data[3*64*64+i], v)
		}
	}
	data, _, shape, err = BatchClips(s, []int{0, 3}, ZeroMean, UnitStd)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 5 || shape[0] != 2 || shape[1] != 3 || shape[2] != 3 || len(data) != 2*3*3*64*64 {
		t.Fatalf("BatchClips shape %v", shape)
	}
	// Element [1, 2, 1, 10, 20] is the green value of clip 3, frame 2, (x=20, y=10).
	off := (((1*3+2)*3+1)*64+10)*64 + 20
	if wantV := float32(s[3].Frames[2].RGBAAt(20, 10).G) / 255; data[off] != wantV {
		t.Fatalf("BatchClips element = %v, want %v", data[off], wantV)
	}
	va, au, err := BatchTargets(s, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if va[0] != s[2].Valence || va[1] != s[2].Arousal || len(au) != NumAUs || au[4] != float32(s[2].AU[4]) {
		t.Fatalf("BatchTargets va %v au %v for sample %+v", va, au, s[2].AU)
	}
	for _, idx := range [][]int{{}, {5}, {-1}} {
		if _, _, _, err := BatchCHW(s, idx, ZeroMean, UnitStd); err == nil {
			t.Errorf("BatchCHW(%v): no error", idx)
		}
	}
	if _, _, err := BatchTargets(s, []int{9}); err == nil {
		t.Error("BatchTargets out of range: no error")
	}
	mixed := append(mustGenerate(t, Config{N: 1, Seed: 2}), s[0])
	if _, _, _, err := BatchClips(mixed, []int{0, 1}, ZeroMean, UnitStd); err == nil {
		t.Error("BatchClips with different frame counts: no error")
	}
}

func TestWritePNGs(t *testing.T) {
	dir := t.TempDir()
	s := mustGenerate(t, Config{N: 4, Seed: 6, Size: 48})
	if err := WritePNGs(dir, s); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := "file,label,valence,arousal,AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
	if got := joinComma(rows[0]); got != wantHeader || len(rows) != 5 {
		t.Fatalf("header %q (%d rows), want %q", got, len(rows), wantHeader)
	}
	for i, row := range rows[1:] {
		pf, err := os.Open(filepath.Join(dir, row[0]))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(pf)
		pf.Close()
		if err != nil {
			t.Fatalf("decode %s: %v", row[0], err)
		}
		for y := 0; y < 48; y += 7 {
			for x := 0; x < 48; x += 5 {
				r, g, b, _ := img.At(x, y).RGBA()
				p := s[i].Image().RGBAAt(x, y)
				if uint8(r>>8) != p.R || uint8(g>>8) != p.G || uint8(b>>8) != p.B {
					t.Fatalf("%s pixel (%d,%d) differs after PNG round trip", row[0], x, y)
				}
			}
		}
		if l, _ := strconv.Atoi(row[1]); l != s[i].Label {
			t.Errorf("%s: label %s, want %d", row[0], row[1], s[i].Label)
		}
		if v, _ := strconv.ParseFloat(row[2], 64); math.Abs(v-float64(s[i].Valence)) > 1e-4 {
			t.Errorf("%s: valence %s, want %v", row[0], row[2], s[i].Valence)
		}
		if row[4+4] != strconv.Itoa(int(s[i].AU[4])) {
			t.Errorf("%s: AU12 %s, want %d", row[0], row[8], s[i].AU[4])
		}
	}
	clips := mustGenerate(t, Config{N: 1, Seed: 6, Frames: 3})
	cdir := filepath.Join(dir, "clips")
	if err := WritePNGs(cdir, clips); err != nil {
		t.Fatal(err)
	}
	for fr := 0; fr < 3; fr++ {
		name := filepath.Join(cdir, "000000_"+Classes[clips[0].Label], "00"+strconv.Itoa(fr)+".png")
		if _, err := os.Stat(name); err != nil {
			t.Errorf("clip frame missing: %v", err)
		}
	}
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, []byte("x"), 0o644)
	if err := WritePNGs(filepath.Join(blocker, "sub"), s); err == nil {
		t.Error("WritePNGs under a regular file: no error")
	}
}

func joinComma(xs []string) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}

func TestContactSheet(t *testing.T) {
	s := mustGenerate(t, Config{N: 5, Seed: 1, Size: 32})
	imgs := []*image.RGBA{s[0].Image(), s[1].Image(), s[2].Image(), s[3].Image(), s[4].Image()}
	sheet := ContactSheet(imgs, 3, 2)
	if b := sheet.Rect; b.Dx() != 3*34+2 || b.Dy() != 2*34+2 {
		t.Fatalf("sheet %v", b)
	}
	// Tile 4 (row 1, col 1) starts at (36, 36).
	if sheet.RGBAAt(36+5, 36+7) != s[4].Image().RGBAAt(5, 7) {
		t.Error("tile 4 misplaced")
	}
	if ContactSheet(nil, 3, 1) != nil || ContactSheet(imgs, 0, 1) != nil {
		t.Error("ContactSheet of nothing should be nil")
	}
}
