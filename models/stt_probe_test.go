package models

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/data/synth"
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}
func envF(k string, d float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return v
	}
	return d
}

func TestSTTProbeLearn(t *testing.T) {
	if os.Getenv("STT_PROBE") == "" {
		t.Skip()
	}
	sttLockThread(t)
	lib.FerSetNumThreads(envInt("THREADS", 1))
	size, frames, bs := envInt("SIZE", 48), envInt("FRAMES", 8), envInt("BS", 12)
	ntr, nte, steps := envInt("NTR", 420), envInt("NTE", 140), envInt("STEPS", 300)
	st := time.Now()
	train, _, test, err := synth.GenerateSplits(synth.Config{Size: size, Frames: frames, Seed: 1, Balanced: true, Noise: envF("NOISE", 0), Classes: envClasses()}, ntr, 0, nte)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generate %v", time.Since(st))
	if os.Getenv("EVALTRAIN") != "" {
		test = train
	}
	lib.FerManualSeed(1)
	cfg := STTConfig{NumClasses: 7, Frames: frames, ImageSize: size, Dim: envInt("DIM", 64), Depth: envInt("DEPTH", 2), Heads: 4, MLPRatio: 2, DropPath: envF("DP", 0), Attention: os.Getenv("ATT")}
	vs := nn.NewVarStore(gotch.CPU)
	m, err := NewSTT(vs.Root(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var fwd func(x *ts.Tensor, train bool) (*ts.Tensor, error) = m.Forward
	if os.Getenv("MODE") == "cnn" {
		vs2 := nn.NewVarStore(gotch.CPU)
		b := newBuilder(vs2.Root())
		rn, err := newResNet(b.sub("r"), ResNetConfig{Depth: 18, NumStages: 3})
		if err != nil {
			t.Fatal(err)
		}
		fc := newLinear(b.sub("fc"), 256, 7)
		vs = vs2
		fwd = func(x *ts.Tensor, train bool) (*ts.Tensor, error) {
			sh := x.MustSize()
			f := rn.ForwardT(x.MustReshape([]int64{sh[0] * sh[1], 3, sh[3], sh[4]}, false), train) // pooled [BT,256]
			f = f.MustReshape([]int64{sh[0], sh[1], 256}, true).MustMeanDim([]int64{1}, false, gotch.Float, true)
			return fc.ForwardT(f, train), nil
		}
	}
	var opt *nn.Optimizer
	if os.Getenv("OPT") == "sgd" {
		opt, err = nn.NewSGDConfig(0.9, 0, envF("WD", 1e-4), false).Build(vs, envF("LR", 0.02))
	} else {
		opt, err = nn.NewAdamWConfig(0.9, 0.999, envF("WD", 0.01)).Build(vs, envF("LR", 1e-3))
	}
	if err != nil {
		t.Fatal(err)
	}
	eval := func() float64 {
		correct := 0
		for i := 0; i < len(test); i += 35 {
			idx := []int{}
			for j := i; j < i+35 && j < len(test); j++ {
				idx = append(idx, j)
			}
			data, labels, shape, _ := synth.BatchClips(test, idx, synth.ImageNetMean, synth.ImageNetStd)
			x := ts.MustOfSlice(data).MustView(shape, true)
			var pred []int64
			ts.NoGrad(func() {
				y, err := fwd(x, false)
				if err != nil {
					t.Fatal(err)
				}
				pred = y.MustArgmax([]int64{1}, false, true).Int64Values()
			})
			for k := range pred {
				if pred[k] == labels[k] {
					correct++
				}
			}
			x.MustDrop()
		}
		return float64(correct) / float64(len(test))
	}
	perm := make([]int, len(train))
	for i := range perm {
		perm[i] = i
	}
	st = time.Now()
	pos := len(perm)
	var lsum float64
	for step := 1; step <= steps; step++ {
		if c := os.Getenv("COS"); c != "" {
			opt.SetLR(envF("LR", 0.02) * 0.5 * (1 + math.Cos(math.Pi*float64(step-1)/float64(steps))))
		}
		if pos+bs > len(perm) {
			r := fer_rand(step)
			r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			pos = 0
		}
		idx := perm[pos : pos+bs]
		pos += bs
		data, labels, shape, err := synth.BatchClips(train, idx, synth.ImageNetMean, synth.ImageNetStd)
		if err != nil {
			t.Fatal(err)
		}
		x := ts.MustOfSlice(data).MustView(shape, true)
		y := ts.MustOfSlice(labels)
		logits, err := fwd(x, true)
		if err != nil {
			t.Fatal(err)
		}
		loss := logits.CrossEntropyForLogits(y)
		opt.MustBackwardStep(loss)
		lsum += loss.Float64Values()[0]
		loss.MustDrop()
		logits.MustDrop()
		x.MustDrop()
		y.MustDrop()
		if step%envInt("EVERY", 50) == 0 {
			t.Logf("step %d loss %.3f train %v test acc %.3f", step, lsum/float64(envInt("EVERY", 50)), time.Since(st), eval())
			lsum = 0
		}
	}
}

func fer_rand(s int) *rand.Rand { return rand.New(rand.NewPCG(uint64(s), 1)) }

func envClasses() []int {
	v := os.Getenv("CLASSES")
	if v == "" {
		return nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}
