package data

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testWave is 1.3 s of a chirp, noise, a tone burst and silence.
func testWave(sr int) []float64 {
	n := sr * 13 / 10
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, n)
	for i := range x {
		t := float64(i) / float64(sr)
		x[i] = 0.5*math.Sin(2*math.Pi*(200+1500*t)*t) + 0.05*rng.NormFloat64()
		if t > 0.6 && t < 0.8 {
			x[i] += 0.3 * math.Sin(2*math.Pi*3000*t)
		}
		if t > 1.1 {
			x[i] = 0
		}
	}
	return x
}

func writeF64(t *testing.T, path string, x []float64) {
	t.Helper()
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF64(t *testing.T, path string) []float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(b)/8)
	for i := range x {
		x[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return x
}

// The STFT + mel filterbank + dB equal torchaudio's (python3-torchaudio
// 0.13, testdata/mel_ref.py) within 1e-5: the filterbank and power mel
// spectrogram against torchaudio in float64 (relative to each value),
// the dB values in absolute terms; torchaudio's default float32 result
// is reported.
func TestMelMatchesTorchaudio(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, torchaudio, numpy").CombinedOutput(); err != nil {
		t.Skipf("torchaudio reference unavailable: %s cannot import torch, torchaudio, numpy (%v: %s); install python3-torchaudio (setup-gotch.sh does)", py, err, out)
	}
	cfgs := []MelConfig{
		DefaultMelConfig(),
		{SampleRate: 22050, NFFT: 1024, WinLength: 882, HopLength: 441, FMin: 0, FMax: 11025, NMels: 40},
	}
	dirs := make([]string, len(cfgs))
	for i, cfg := range cfgs {
		dirs[i] = t.TempDir()
		writeF64(t, filepath.Join(dirs[i], "wave.f64"), testWave(cfg.SampleRate))
		js, _ := json.Marshal(map[string]any{"sample_rate": cfg.SampleRate, "n_fft": cfg.NFFT, "win_length": cfg.WinLength,
			"hop_length": cfg.HopLength, "f_min": cfg.FMin, "f_max": cfg.FMax, "n_mels": cfg.NMels})
		if err := os.WriteFile(filepath.Join(dirs[i], "config.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(py, append([]string{"testdata/mel_ref.py"}, dirs...)...).CombinedOutput(); err != nil {
		t.Fatalf("mel_ref.py: %v\n%s", err, out)
	}
	for i, cfg := range cfgs {
		dir, wave := dirs[i], testWave(cfg.SampleRate)
		m, err := NewMelSpec(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// filterbank [n_freqs][n_mels]
		var fb []float64
		for _, row := range m.FB {
			fb = append(fb, row...)
		}
		if d := maxAbsDiff(fb, readF64(t, filepath.Join(dir, "fb64.f64"))); d > 1e-12 {
			t.Errorf("%+v: filterbank vs torchaudio float64: max |diff| %g", cfg, d)
		}
		if d := maxAbsDiff(fb, readF64(t, filepath.Join(dir, "fb32.f64"))); d > 1e-5 {
			t.Errorf("%+v: filterbank vs torchaudio float32: max |diff| %g", cfg, d)
		}
		pow, err := m.Power(wave)
		if err != nil {
			t.Fatal(err)
		}
		var mel, db []float64
		for _, row := range pow {
			mel = append(mel, row...)
			for _, v := range row {
				db = append(db, PowerToDB(v))
			}
		}
		ref := readF64(t, filepath.Join(dir, "mel64.f64"))
		if len(ref) != len(mel) || len(pow[0]) != m.NumFrames(len(wave)) {
			t.Fatalf("%d mel values (%d frames), torchaudio %d", len(mel), len(pow[0]), len(ref))
		}
		if r := maxRelDiff(mel, ref, 1e-10); r > 1e-5 {
			t.Errorf("%+v: mel vs torchaudio float64: max relative diff %g", cfg, r)
		}
		if d := maxAbsDiff(db, readF64(t, filepath.Join(dir, "db64.f64"))); d > 1e-5 {
			t.Errorf("%+v: dB vs torchaudio float64: max |diff| %g dB", cfg, d)
		}
		r32 := maxRelDiff(mel, readF64(t, filepath.Join(dir, "mel32.f64")), 1e-6)
		t.Logf("%d Hz, n_fft %d: mel vs torchaudio float64 rel %.2g, dB abs %.2g; vs torchaudio float32 rel %.2g",
			cfg.SampleRate, cfg.NFFT, maxRelDiff(mel, ref, 1e-10), maxAbsDiff(db, readF64(t, filepath.Join(dir, "db64.f64"))), r32)
		if r32 > 1e-3 {
			t.Errorf("float32 torchaudio differs by %g", r32)
		}
	}
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

// maxRelDiff is max |a−b| / max(|b|, floor·max|b|).
func maxRelDiff(a, b []float64, floor float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	top := 0.0
	for _, v := range b {
		top = math.Max(top, math.Abs(v))
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i])/math.Max(math.Abs(b[i]), floor*top))
	}
	return m
}

// Windows cut from a decoded span equal the same columns of the whole
// recording's spectrogram; columns outside it are silence.
func TestAudioWindowsCut(t *testing.T) {
	m, err := NewMelSpec(DefaultMelConfig())
	if err != nil {
		t.Fatal(err)
	}
	w := &AudioWindows{Mel: m, Window: 16}
	wave := testWave(16000)
	full, err := m.Power(wave)
	if err != nil {
		t.Fatal(err)
	}
	for _, times := range [][]float64{{0, 0.04, 0.08}, {0.5, 0.54}, {1.24, 1.28, 1.32, 1.36}, {2.0}} {
		a, b := w.Span(times)
		total := -1
		end := b
		if b >= len(wave) {
			total, end = len(wave), len(wave)
		}
		var chunk []float64
		if a < end {
			chunk = wave[a:end]
		}
		got, err := w.Cut(chunk, a, total, times)
		if err != nil {
			t.Fatal(err)
		}
		for i, tm := range times {
			c := int(math.Round(tm * 100))
			for mel := 0; mel < 64; mel++ {
				for k := 0; k < 16; k++ {
					j := c - 8 + k
					want := float32(DBFloor)
					if j >= 0 && j < len(full[0]) {
						want = float32(PowerToDB(full[mel][j]))
					}
					if g := got[i][mel*16+k]; g != want {
						t.Fatalf("t=%v mel %d col %d (stft frame %d): %v, want %v", tm, mel, k, j, g, want)
					}
				}
			}
		}
	}
}

// Audio decoded from a video with ffmpeg: a segment equals the same
// samples of the whole track; a file without sound is a clear error.
func TestDecodeAudio(t *testing.T) {
	fx := writeABAW(t, true)
	vid := filepath.Join(fx.Root, "videos", "batch1", "vidA.avi")
	all, err := DecodeAudio(vid, 16000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 16000*10/25 {
		t.Fatalf("%d samples, want %d", len(all), 16000*10/25)
	}
	seg, err := DecodeAudio(vid, 16000, 0.1, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if len(seg) != 800 {
		t.Fatalf("segment has %d samples, want 800", len(seg))
	}
	for i := range seg {
		if seg[i] != all[1600+i] {
			t.Fatalf("sample %d: %v, want %v", i, seg[i], all[1600+i])
		}
	}
	if fps, err := probeFrameRate(vid); err != nil || fps != 25 {
		t.Fatalf("fps %v %v", fps, err)
	}
	silent := filepath.Join(t.TempDir(), "silent.avi")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=16x16:rate=25:duration=0.2", "-c:v", "mpeg4", silent).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, out)
	}
	if _, err := DecodeAudio(silent, 16000, 0, 0); err == nil || !strings.Contains(err.Error(), "has no audio stream") {
		t.Fatalf("no audio: %v", err)
	}
}

// With audio on, every frame gets its log-mel window.
func TestAffWild2Audio(t *testing.T) {
	fx := writeABAW(t, true)
	d, err := OpenAffWild2(fx.Root, "val", AffWild2Options{Transform: Transform{Size: 8}, SeqLen: 4,
		Audio: &AudioOptions{Window: 8}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Load(0, nil, false) // vidB_right/00001-00004: vidB.avi
	if err != nil {
		t.Fatal(err)
	}
	a := s.Extra["audio"]
	if want := []int{4, 1, 64, 8}; len(a.Shape) != 4 || a.Shape[0] != 4 || a.Shape[2] != 64 || a.Shape[3] != 8 || len(a.F32) != 4*64*8 {
		t.Fatalf("audio shape %v, want %v", a.Shape, want)
	}
	// frame 0's window starts 4 hops before the recording: silence
	if a.F32[0] != DBFloor || a.F32[7] == DBFloor {
		t.Fatalf("window edges: %v ... %v", a.F32[0], a.F32[7])
	}
	// missing videos are named
	if err := os.RemoveAll(filepath.Join(fx.Root, "videos", "batch1", "vidC.avi")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAffWild2(fx.Root, "val", AffWild2Options{Audio: &AudioOptions{}}); err == nil || !strings.Contains(err.Error(), "vidC") {
		t.Fatalf("missing video: %v", err)
	}
}
