package fer

import "math"

// LR is the learning rate for epoch (0-based) of a run of epochs epochs
// with base learning rate base, in closed form:
//
//	constant:    base
//	step:        base·gamma^⌊e/step_size⌋           (torch StepLR)
//	exponential: base·gamma^e                        (torch ExponentialLR)
//	cosine:      min + (base−min)·(1+cos(π·e/T))/2   (torch CosineAnnealingLR, T = t_max or epochs)
//
// with e counted from the end of warm-up; during the WarmupEpochs first
// epochs the rate is base·(e+1)/WarmupEpochs.
//
// Why not gotch's nn.StepLR & co.: they drive gotch's C++ optimiser and
// keep their position as internal state; a pure function of the epoch is
// what makes a resumed run use exactly the rates of an uninterrupted one.
func (s ScheduleConfig) LR(base float64, epoch, epochs int) float64 {
	if s.WarmupEpochs > 0 && epoch < s.WarmupEpochs {
		return base * float64(epoch+1) / float64(s.WarmupEpochs)
	}
	e := epoch - s.WarmupEpochs
	switch s.Name {
	case "step":
		if s.StepSize < 1 {
			return base
		}
		return base * math.Pow(s.Gamma, float64(e/s.StepSize))
	case "exponential":
		return base * math.Pow(s.Gamma, float64(e))
	case "cosine":
		t := s.TMax
		if t <= 0 {
			t = epochs - s.WarmupEpochs
		}
		if t <= 0 {
			return base
		}
		return s.MinLR + (base-s.MinLR)*(1+math.Cos(math.Pi*float64(e)/float64(t)))/2
	}
	return base
}
