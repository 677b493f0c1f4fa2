package synth

import (
	"fmt"
	"image"
)

// ImageNetMean and ImageNetStd are the usual torchvision normalisation
// constants; ZeroMean/UnitStd leave pixels in [0,1].
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
	ZeroMean     = [3]float32{0, 0, 0}
	UnitStd      = [3]float32{1, 1, 1}
)

// ToCHW converts img to float32 channel-major C×H×W (C = 3, RGB), scaling
// to [0,1] and then normalising each channel as (v - mean[c]) / std[c].
func ToCHW(img *image.RGBA, mean, std [3]float32) []float32 {
	out := make([]float32, 3*img.Rect.Dx()*img.Rect.Dy())
	putCHW(out, img, mean, std)
	return out
}

// putCHW writes img into dst (len 3·H·W) as ToCHW does.
func putCHW(dst []float32, img *image.RGBA, mean, std [3]float32) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	plane := w * h
	var scale, shift [3]float32
	for c := 0; c < 3; c++ {
		scale[c] = 1 / (255 * std[c])
		shift[c] = mean[c] / std[c]
	}
	for y := 0; y < h; y++ {
		row := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			px := row[4*x:]
			o := y*w + x
			dst[o] = float32(px[0])*scale[0] - shift[0]
			dst[plane+o] = float32(px[1])*scale[1] - shift[1]
			dst[2*plane+o] = float32(px[2])*scale[2] - shift[2]
		}
	}
}

func checkIndex(samples []Sample, idx []int) (T, H, W int, err error) {
	if len(idx) == 0 {
		return 0, 0, 0, fmt.Errorf("synth: empty batch index")
	}
	for j, i := range idx {
		if i < 0 || i >= len(samples) {
			return 0, 0, 0, fmt.Errorf("synth: batch index %d (position %d) out of range 0..%d", i, j, len(samples)-1)
		}
		s := &samples[i]
		if len(s.Frames) == 0 {
			return 0, 0, 0, fmt.Errorf("synth: sample %d has no frames", i)
		}
		b := s.Frames[0].Rect
		if j == 0 {
			T, H, W = len(s.Frames), b.Dy(), b.Dx()
		}
		if b.Dy() != H || b.Dx() != W {
			return 0, 0, 0, fmt.Errorf("synth: sample %d is %dx%d, batch started with %dx%d", i, b.Dx(), b.Dy(), W, H)
		}
	}
	return T, H, W, nil
}

// BatchCHW stacks the images (for clips: the apex, i.e. last, frame) of
// samples[idx...] into a float32 B×3×H×W buffer normalised with mean/std,
// returning it with the int64 class labels and the shape {B,3,H,W}.
func BatchCHW(samples []Sample, idx []int, mean, std [3]float32) (data []float32, labels []int64, shape []int64, err error) {
	_, H, W, err := checkIndex(samples, idx)
	if err != nil {
		return nil, nil, nil, err
	}
	n := 3 * H * W
	data = make([]float32, len(idx)*n)
	labels = make([]int64, len(idx))
	for j, i := range idx {
		putCHW(data[j*n:(j+1)*n], samples[i].Image(), mean, std)
		labels[j] = int64(samples[i].Label)
	}
	return data, labels, []int64{int64(len(idx)), 3, int64(H), int64(W)}, nil
}

// BatchClips stacks the clips of samples[idx...] into a float32
// B×T×3×H×W buffer (all clips must have the same T), returning it with the
// class labels and the shape {B,T,3,H,W}.
func BatchClips(samples []Sample, idx []int, mean, std [3]float32) (data []float32, labels []int64, shape []int64, err error) {
	T, H, W, err := checkIndex(samples, idx)
	if err != nil {
		return nil, nil, nil, err
	}
	n := 3 * H * W
	data = make([]float32, len(idx)*T*n)
	labels = make([]int64, len(idx))
	for j, i := range idx {
		s := &samples[i]
		if len(s.Frames) != T {
			return nil, nil, nil, fmt.Errorf("synth: sample %d has %d frames, batch started with %d", i, len(s.Frames), T)
		}
		for t, f := range s.Frames {
			o := (j*T + t) * n
			putCHW(data[o:o+n], f, mean, std)
		}
		labels[j] = int64(s.Label)
	}
	return data, labels, []int64{int64(len(idx)), int64(T), 3, int64(H), int64(W)}, nil
}

// BatchFrameTargets returns per-frame targets of the clips
// samples[idx...] (all with T frames): labels B×T (the clip's class on
// every frame), va B×T×2 and au B×T×8 from each frame's FrameLabels.
func BatchFrameTargets(samples []Sample, idx []int) (labels []int64, va, au []float32, T int, err error) {
	for j, i := range idx {
		if i < 0 || i >= len(samples) {
			return nil, nil, nil, 0, fmt.Errorf("synth: batch index %d (position %d) out of range 0..%d", i, j, len(samples)-1)
		}
		s := &samples[i]
		if j == 0 {
			T = len(s.FrameLabels)
		}
		if len(s.FrameLabels) != T {
			return nil, nil, nil, 0, fmt.Errorf("synth: sample %d has %d frame labels, batch started with %d", i, len(s.FrameLabels), T)
		}
		for _, fl := range s.FrameLabels {
			labels = append(labels, int64(s.Label))
			va = append(va, fl.Valence, fl.Arousal)
			for _, a := range fl.AU {
				au = append(au, float32(a))
			}
		}
	}
	return labels, va, au, T, nil
}

// BatchTargets returns the regression and multi-label targets of
// samples[idx...]: va is B×2 (valence, arousal), au is B×8 (0/1 as float32,
// AUNames order).
func BatchTargets(samples []Sample, idx []int) (va, au []float32, err error) {
	va = make([]float32, 2*len(idx))
	au = make([]float32, NumAUs*len(idx))
	for j, i := range idx {
		if i < 0 || i >= len(samples) {
			return nil, nil, fmt.Errorf("synth: batch index %d (position %d) out of range 0..%d", i, j, len(samples)-1)
		}
		s := &samples[i]
		va[2*j], va[2*j+1] = s.Valence, s.Arousal
		for k, v := range s.AU {
			au[NumAUs*j+k] = float32(v)
		}
	}
	return va, au, nil
}
