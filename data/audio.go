package data

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"
)

// The audio front end of the A/V model: a log-mel spectrogram equal to
// torchaudio's
//
//	torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, win_length,
//	    hop_length, f_min, f_max, n_mels)            # power 2, center=True,
//	                                                 # reflect padding, periodic
//	                                                 # Hann window, HTK mel scale,
//	                                                 # no filter normalisation
//	torchaudio.transforms.AmplitudeToDB("power")     # 10·log10(max(x, 1e-10))
//
// (torchaudio 0.13, Debian's python3-torchaudio; a test compares the two).
// It is computed on the host in float64 with gonum's FFT, in the data
// loader, so the model only sees dB images [n_mels, frames].

// MelConfig configures the log-mel front end. Zero values take the
// defaults of DefaultMelConfig.
type MelConfig struct {
	SampleRate int     `yaml:"sample_rate"` // Hz the audio is resampled to (16000)
	NFFT       int     `yaml:"n_fft"`       // FFT size (512)
	WinLength  int     `yaml:"win_length"`  // Hann window length in samples (400 = 25 ms)
	HopLength  int     `yaml:"hop_length"`  // hop in samples (160 = 10 ms)
	FMin       float64 `yaml:"f_min"`       // lowest mel filter edge in Hz (125)
	FMax       float64 `yaml:"f_max"`       // highest mel filter edge in Hz (7500)
	NMels      int     `yaml:"n_mels"`      // mel bands (64)
}

// DefaultMelConfig is our choice for the A/V model's audio branch (the
// paper's front end is unknown, SPEC.md §1.2): VGGish's framing (16 kHz,
// 25 ms Hann windows every 10 ms, 64 mel bands between 125 and 7500 Hz).
func DefaultMelConfig() MelConfig {
	return MelConfig{SampleRate: 16000, NFFT: 512, WinLength: 400, HopLength: 160, FMin: 125, FMax: 7500, NMels: 64}
}

// WithDefaults fills the zero fields from DefaultMelConfig and checks the
// values.
func (c MelConfig) WithDefaults() (MelConfig, error) {
	d := DefaultMelConfig()
	if c.SampleRate == 0 {
		c.SampleRate = d.SampleRate
	}
	if c.NFFT == 0 {
		c.NFFT = d.NFFT
	}
	if c.WinLength == 0 {
		c.WinLength = min(d.WinLength, c.NFFT)
	}
	if c.HopLength == 0 {
		c.HopLength = d.HopLength
	}
	if c.FMin == 0 && c.FMax == 0 {
		c.FMin, c.FMax = d.FMin, d.FMax
	}
	if c.FMax == 0 {
		c.FMax = float64(c.SampleRate / 2)
	}
	if c.NMels == 0 {
		c.NMels = d.NMels
	}
	switch {
	case c.SampleRate < 1000:
		return c, fmt.Errorf("audio sample_rate = %d, want >= 1000", c.SampleRate)
	case c.NFFT < 16 || c.NFFT%2 != 0:
		return c, fmt.Errorf("audio n_fft = %d, want an even number >= 16", c.NFFT)
	case c.WinLength < 1 || c.WinLength > c.NFFT:
		return c, fmt.Errorf("audio win_length = %d, want 1..n_fft (%d)", c.WinLength, c.NFFT)
	case c.HopLength < 1:
		return c, fmt.Errorf("audio hop_length = %d, want >= 1", c.HopLength)
	case c.FMin < 0 || c.FMax <= c.FMin || c.FMax > float64(c.SampleRate)/2:
		return c, fmt.Errorf("audio f_min = %v, f_max = %v: want 0 <= f_min < f_max <= sample_rate/2 (%d)", c.FMin, c.FMax, c.SampleRate/2)
	case c.NMels < 1 || c.NMels > c.NFFT/2+1:
		return c, fmt.Errorf("audio n_mels = %d, want 1..n_fft/2+1 (%d)", c.NMels, c.NFFT/2+1)
	}
	return c, nil
}

// hzToMelHTK and melToHzHTK are torchaudio's _hz_to_mel/_mel_to_hz with
// mel_scale="htk".
func hzToMelHTK(f float64) float64 { return 2595 * math.Log10(1+f/700) }
func melToHzHTK(m float64) float64 { return 700 * (math.Pow(10, m/2595) - 1) }

// linspace is torch.linspace(a, b, n).
func linspace(a, b float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = a
		return out
	}
	step := (b - a) / float64(n-1)
	// torch.linspace fills the first half from the start and the second
	// from the end, which keeps both ends exact
	half := n / 2
	for i := 0; i < n; i++ {
		if i < half {
			out[i] = a + step*float64(i)
		} else {
			out[i] = b - step*float64(n-1-i)
		}
	}
	return out
}

// MelFilterbank is torchaudio.functional.melscale_fbanks(nFreqs, fMin,
// fMax, nMels, sampleRate, norm=None, mel_scale="htk"): fb[f][m] is the
// weight of STFT bin f in mel band m (triangles between nMels+2 points
// equally spaced on the mel scale).
func MelFilterbank(nFreqs int, fMin, fMax float64, nMels, sampleRate int) [][]float64 {
	allFreqs := linspace(0, float64(sampleRate/2), nFreqs)
	mPts := linspace(hzToMelHTK(fMin), hzToMelHTK(fMax), nMels+2)
	fPts := make([]float64, len(mPts))
	for i, m := range mPts {
		fPts[i] = melToHzHTK(m)
	}
	fb := make([][]float64, nFreqs)
	for f, hz := range allFreqs {
		fb[f] = make([]float64, nMels)
		for m := 0; m < nMels; m++ {
			down := -(fPts[m] - hz) / (fPts[m+1] - fPts[m])
			up := (fPts[m+2] - hz) / (fPts[m+2] - fPts[m+1])
			fb[f][m] = math.Max(0, math.Min(down, up))
		}
	}
	return fb
}

// HannWindow is torch.hann_window(n) (periodic): 0.5 − 0.5·cos(2πi/n).
func HannWindow(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	return w
}

// MelSpec computes torchaudio's MelSpectrogram (see the file comment).
// It is safe for concurrent use.
type MelSpec struct {
	Cfg MelConfig
	// FB is the filterbank [n_fft/2+1][n_mels]; Window the Hann window
	// zero-padded to n_fft and centred, as torch.stft pads it.
	FB     [][]float64
	Window []float64
	ffts   sync.Pool
}

// NewMelSpec builds the filterbank and window of cfg (defaults filled in).
func NewMelSpec(cfg MelConfig) (*MelSpec, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	m := &MelSpec{Cfg: c, FB: MelFilterbank(c.NFFT/2+1, c.FMin, c.FMax, c.NMels, c.SampleRate)}
	m.Window = make([]float64, c.NFFT)
	copy(m.Window[(c.NFFT-c.WinLength)/2:], HannWindow(c.WinLength))
	m.ffts.New = func() any { return fourier.NewFFT(c.NFFT) }
	return m, nil
}

// NumFrames is the number of STFT frames torch.stft (center=True) gives
// for n samples: 1 + n/hop.
func (m *MelSpec) NumFrames(n int) int { return 1 + n/m.Cfg.HopLength }

// Power is MelSpectrogram(x): power mel spectrogram [n_mels][frames] of
// the whole signal x (center=True: frame j is centred on sample j·hop,
// the signal reflected at both ends).
func (m *MelSpec) Power(x []float64) ([][]float64, error) {
	n := m.NumFrames(len(x))
	out := make([][]float64, m.Cfg.NMels)
	for i := range out {
		out[i] = make([]float64, n)
	}
	if err := m.frames(x, 0, len(x), 0, n, out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// reflect maps sample position p of a signal of length n into [0, n) as
// torch's "reflect" padding does (the edge sample is not repeated).
func reflect(p, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	p %= period
	if p < 0 {
		p += period
	}
	if p >= n {
		p = period - p
	}
	return p
}

// frames computes STFT frames j0 ≤ j < j1 of a recording of total
// samples, of which chunk holds samples [offset, offset+len(chunk)), into
// out[m][col0 + j − j0]. Samples beyond the recording are reflected as
// center=True does; a needed sample outside chunk is an error.
func (m *MelSpec) frames(chunk []float64, offset, total, j0, j1 int, out [][]float64, col0 int) error {
	c := m.Cfg
	fft := m.ffts.Get().(*fourier.FFT)
	defer m.ffts.Put(fft)
	seq := make([]float64, c.NFFT)
	coef := make([]complex128, c.NFFT/2+1)
	pow := make([]float64, c.NFFT/2+1)
	for j := j0; j < j1; j++ {
		start := j*c.HopLength - c.NFFT/2
		for i := 0; i < c.NFFT; i++ {
			if m.Window[i] == 0 {
				seq[i] = 0
				continue
			}
			p := reflect(start+i, total) - offset
			if p < 0 || p >= len(chunk) {
				return fmt.Errorf("mel frame %d needs sample %d, outside the decoded [%d, %d)", j, p+offset, offset, offset+len(chunk))
			}
			seq[i] = chunk[p] * m.Window[i]
		}
		fft.Coefficients(coef, seq)
		for f, z := range coef {
			pow[f] = real(z)*real(z) + imag(z)*imag(z)
		}
		col := col0 + j - j0
		for mel := 0; mel < c.NMels; mel++ {
			s := 0.0
			for f, p := range pow {
				if w := m.FB[f][mel]; w != 0 {
					s += p * w
				}
			}
			out[mel][col] = s
		}
	}
	return nil
}

// DBFloor is the dB value of silence: AmplitudeToDB's 10·log10(1e-10).
const DBFloor = -100.0

// PowerToDB is torchaudio's AmplitudeToDB(stype="power", top_db=None):
// 10·log10(max(x, 1e-10)).
func PowerToDB(x float64) float64 { return 10 * math.Log10(math.Max(x, 1e-10)) }

// AudioWindows cuts log-mel windows centred on video frames out of a
// recording: for each frame time t (seconds), the Window mel frames
// centred on STFT frame round(t·sr/hop), as dB [n_mels][Window]. Mel
// frames outside the recording (before its start, after its end) are
// silence (DBFloor).
type AudioWindows struct {
	Mel    *MelSpec
	Window int // mel frames per video frame
}

// Span returns the sample range [a, b) that must be decoded to cut the
// windows of the given frame times (a clamped at 0; b may lie beyond the
// end of the recording).
func (w *AudioWindows) Span(times []float64) (a, b int) {
	c := w.Mel.Cfg
	j0, j1 := w.melRange(times)
	a = max(0, j0*c.HopLength-c.NFFT/2-c.NFFT)
	b = max(a+1, (j1-1)*c.HopLength+c.NFFT/2+c.NFFT)
	return a, b
}

func (w *AudioWindows) centre(t float64) int {
	return int(math.Round(t * float64(w.Mel.Cfg.SampleRate) / float64(w.Mel.Cfg.HopLength)))
}

// melRange is the STFT frames [j0, j1) the windows of times cover.
func (w *AudioWindows) melRange(times []float64) (j0, j1 int) {
	j0, j1 = math.MaxInt, math.MinInt
	for _, t := range times {
		c := w.centre(t)
		j0 = min(j0, c-w.Window/2)
		j1 = max(j1, c-w.Window/2+w.Window)
	}
	return j0, j1
}

// Cut returns the windows [len(times)][n_mels·Window] (row-major
// [n_mels][Window]) in dB, from the decoded samples chunk = recording
// [offset, offset+len(chunk)). total is the recording's length in
// samples, or −1 when chunk does not reach its end (then Span's margin
// guarantees no frame needs samples past the chunk).
func (w *AudioWindows) Cut(chunk []float64, offset, total int, times []float64) ([][]float32, error) {
	if len(times) == 0 {
		return nil, nil
	}
	c := w.Mel.Cfg
	j0, j1 := w.melRange(times)
	nFrames := math.MaxInt // STFT frames of the recording (center=True)
	switch {
	case total == 0:
		nFrames = 0 // no sound at all: every window is silence
	case total > 0:
		nFrames = 1 + total/c.HopLength
	default:
		total = math.MaxInt
	}
	mel := make([][]float64, c.NMels)
	for i := range mel {
		mel[i] = make([]float64, j1-j0)
		for k := range mel[i] {
			mel[i][k] = math.NaN() // silence unless computed
		}
	}
	lo, hi := max(j0, 0), min(j1, nFrames)
	if lo < hi {
		if total == math.MaxInt {
			// reflection at the end cannot happen: chunk holds every
			// sample these frames need
			total = offset + len(chunk) + c.NFFT
		}
		if err := w.Mel.frames(chunk, offset, total, lo, hi, mel, lo-j0); err != nil {
			return nil, err
		}
	}
	out := make([][]float32, len(times))
	for i, t := range times {
		start := w.centre(t) - w.Window/2 - j0
		win := make([]float32, c.NMels*w.Window)
		for m := 0; m < c.NMels; m++ {
			for k := 0; k < w.Window; k++ {
				v := mel[m][start+k]
				if math.IsNaN(v) {
					win[m*w.Window+k] = DBFloor
				} else {
					win[m*w.Window+k] = float32(PowerToDB(v))
				}
			}
		}
		out[i] = win
	}
	return out, nil
}

// DecodeAudio decodes dur seconds (dur <= 0: to the end) of the first
// audio stream of a media file from second start, as mono float32 at
// sampleRate, with the ffmpeg command-line tool (its resampler, its
// down-mix). A file without audio is an error naming it.
func DecodeAudio(path string, sampleRate int, start, dur float64) ([]float32, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audio %s: %w", path, err)
	}
	bin, err := ffmpegTool("ffmpeg")
	if err != nil {
		return nil, err
	}
	args := []string{"-v", "error", "-nostdin"}
	if start > 0 {
		args = append(args, "-ss", strconv.FormatFloat(start, 'f', 6, 64))
	}
	args = append(args, "-i", path)
	if dur > 0 {
		args = append(args, "-t", strconv.FormatFloat(dur, 'f', 6, 64))
	}
	args = append(args, "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", strconv.Itoa(sampleRate), "-f", "f32le", "pipe:1")
	out, err := runTool(bin, args...)
	if err != nil {
		if strings.Contains(err.Error(), "matches no streams") {
			return nil, fmt.Errorf("audio %s: the file has no audio stream (the A/V model needs the video's sound; train a visual-only model instead)", path)
		}
		return nil, fmt.Errorf("decode audio %s: %w", path, err)
	}
	if len(out)%4 != 0 {
		return nil, fmt.Errorf("decode audio %s: ffmpeg wrote %d bytes, not whole float32 samples", path, len(out))
	}
	s := make([]float32, len(out)/4)
	for i := range s {
		s[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return s, nil
}

// probeFrameRate returns the average frame rate of the first video stream.
func probeFrameRate(path string) (float64, error) {
	bin, err := ffmpegTool("ffprobe")
	if err != nil {
		return 0, err
	}
	out, err := runTool(bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=avg_frame_rate,r_frame_rate", "-of", "csv=p=0", path)
	if err != nil {
		return 0, fmt.Errorf("probe frame rate of %s: %w", path, err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), ",") {
		if r, ok := parseRate(f); ok {
			return r, nil
		}
	}
	return 0, fmt.Errorf("probe frame rate of %s: no video stream with a frame rate (ffprobe said %q)", path, strings.TrimSpace(string(out)))
}

// parseRate reads "30000/1001" or "25".
func parseRate(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		den = "1"
	}
	a, err1 := strconv.ParseFloat(num, 64)
	b, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || !(a > 0) || !(b > 0) {
		return 0, false
	}
	return a / b, true
}
