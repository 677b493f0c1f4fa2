package synth

import (
	"math"
	"testing"
)

// pixelFeatures downsamples the image of s to d×d grey-level pixels (box
// filter), standardised per image (zero mean, unit variance).
func pixelFeatures(s *Sample, d int) []float64 {
	img := s.Image()
	n := img.Rect.Dx()
	f := make([]float64, d*d)
	cnt := make([]float64, d*d)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			p := img.Pix[y*img.Stride+4*x:]
			g := 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
			k := (y*d/n)*d + x*d/n
			f[k] += g
			cnt[k]++
		}
	}
	mean := 0.0
	for k := range f {
		f[k] /= cnt[k]
		mean += f[k]
	}
	mean /= float64(len(f))
	v := 0.0
	for k := range f {
		f[k] -= mean
		v += f[k] * f[k]
	}
	sd := math.Sqrt(v/float64(len(f))) + 1e-9
	for k := range f {
		f[k] /= sd
	}
	return f
}

func actionFeatures(s *Sample) []float64 {
	f := make([]float64, NumActions)
	for k, v := range s.Actions {
		f[k] = float64(v)
	}
	return f
}

// nearestCentroid fits class centroids on train and returns test accuracy.
func nearestCentroid(trX [][]float64, trY []int, teX [][]float64, teY []int) float64 {
	dim := len(trX[0])
	cent := make([][]float64, NumClasses)
	cnt := make([]float64, NumClasses)
	for c := range cent {
		cent[c] = make([]float64, dim)
	}
	for i, x := range trX {
		for k, v := range x {
			cent[trY[i]][k] += v
		}
		cnt[trY[i]]++
	}
	for c := range cent {
		for k := range cent[c] {
			cent[c][k] /= math.Max(cnt[c], 1)
		}
	}
	correct := 0
	for i, x := range teX {
		best, bestD := -1, math.Inf(1)
		for c := range cent {
			if cnt[c] == 0 {
				continue
			}
			d := 0.0
			for k, v := range x {
				d += (v - cent[c][k]) * (v - cent[c][k])
			}
			if d < bestD {
				best, bestD = c, d
			}
		}
		if best == teY[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(teX))
}

// softmaxRegression trains multinomial logistic regression with full-batch
// gradient descent and L2 penalty on standardised features; returns test
// accuracy.
func softmaxRegression(trX [][]float64, trY []int, teX [][]float64, teY []int, epochs int, lr, l2 float64) float64 {
	dim := len(trX[0])
	mu := make([]float64, dim)
	sd := make([]float64, dim)
	for _, x := range trX {
		for k, v := range x {
			mu[k] += v
		}
	}
	for k := range mu {
		mu[k] /= float64(len(trX))
	}
	for _, x := range trX {
		for k, v := range x {
			sd[k] += (v - mu[k]) * (v - mu[k])
		}
	}
	for k := range sd {
		sd[k] = math.Sqrt(sd[k]/float64(len(trX))) + 1e-6
	}
	std := func(X [][]float64) [][]float64 {
		out := make([][]float64, len(X))
		for i, x := range X {
			out[i] = make([]float64, dim+1)
			for k, v := range x {
				out[i][k] = (v - mu[k]) / sd[k]
			}
			out[i][dim] = 1
		}
		return out
	}
	tr, te := std(trX), std(teX)
	W := make([][]float64, NumClasses)
	G := make([][]float64, NumClasses)
	for c := range W {
		W[c] = make([]float64, dim+1)
		G[c] = make([]float64, dim+1)
	}
	p := make([]float64, NumClasses)
	scores := func(x []float64) {
		m := math.Inf(-1)
		for c := range W {
			s := 0.0
			for k, v := range x {
				s += W[c][k] * v
			}
			p[c] = s
			m = math.Max(m, s)
		}
		z := 0.0
		for c := range p {
			p[c] = math.Exp(p[c] - m)
			z += p[c]
		}
		for c := range p {
			p[c] /= z
		}
	}
	for ep := 0; ep < epochs; ep++ {
		for c := range G {
			for k := range G[c] {
				G[c][k] = l2 * W[c][k]
			}
		}
		for i, x := range tr {
			scores(x)
			p[trY[i]]--
			for c := range G {
				g := p[c] / float64(len(tr))
				for k, v := range x {
					G[c][k] += g * v
				}
			}
		}
		for c := range W {
			for k := range W[c] {
				W[c][k] -= lr * G[c][k]
			}
		}
	}
	correct := 0
	for i, x := range te {
		scores(x)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		if best == teY[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(te))
}

func features(samples []Sample, f func(*Sample) []float64) ([][]float64, []int) {
	X := make([][]float64, len(samples))
	Y := make([]int, len(samples))
	for i := range samples {
		X[i] = f(&samples[i])
		Y[i] = samples[i].Label
	}
	return X, Y
}

// TestLearnability checks the benchmark is neither trivial nor noise: simple
// classifiers on raw downsampled pixels must beat chance (1/7) clearly but
// stay far from perfect, while the drawn action controls (what a good model
// should recover from the pixels) separate the classes much better.
func TestLearnability(t *testing.T) {
	train, _, test, err := GenerateSplits(Config{Seed: 7, Balanced: true}, 2100, 0, 700)
	if err != nil {
		t.Fatal(err)
	}
	pix16 := func(s *Sample) []float64 { return pixelFeatures(s, 16) }
	pix8 := func(s *Sample) []float64 { return pixelFeatures(s, 8) }
	trX, trY := features(train, pix16)
	teX, teY := features(test, pix16)
	ncPix := nearestCentroid(trX, trY, teX, teY)
	lrPix16 := softmaxRegression(trX, trY, teX, teY, 200, 0.5, 1e-3)
	trX, _ = features(train, pix8)
	teX, _ = features(test, pix8)
	lrPix8 := softmaxRegression(trX, trY, teX, teY, 300, 0.5, 1e-3)
	trA, _ := features(train, actionFeatures)
	teA, _ := features(test, actionFeatures)
	ncAct := nearestCentroid(trA, trY, teA, teY)
	lrAct := softmaxRegression(trA, trY, teA, teY, 300, 1.0, 1e-4)
	t.Logf("test accuracy (7 classes, chance 14.3%%): grey pixels 16x16 nearest-centroid %.1f%%, logistic %.1f%%; 8x8 logistic %.1f%%; drawn action controls nearest-centroid %.1f%%, logistic %.1f%%",
		100*ncPix, 100*lrPix16, 100*lrPix8, 100*ncAct, 100*lrAct)
	if lrPix8 <= 0.25 || lrPix8 >= 0.99 {
		t.Errorf("8x8-pixel logistic accuracy %.3f, want in (0.25, 0.99)", lrPix8)
	}
	if ncPix >= 0.99 || lrPix16 >= 0.99 {
		t.Errorf("pixel baselines too good: nearest-centroid %.3f, logistic %.3f", ncPix, lrPix16)
	}
	if lrAct < 0.85 {
		t.Errorf("action-control logistic accuracy %.3f, want >= 0.85", lrAct)
	}
}
