package data

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/fer-research/fer/data/imaging"
	"go.yaml.in/yaml/v3"
)

// TransformNames lists the step names ParsePipeline accepts (aliases
// after the canonical names).
var TransformNames = []string{
	"resize", "center_crop", "random_crop", "hflip", "random_rotation", "color_jitter",
	"grayscale", "random_grayscale", "random_choice", "to_tensor", "normalize", "random_erasing",
	"random_horizontal_flip", "rotation",
}

// NamedNormalizations are the mean/std pairs `normalize:` accepts by name:
// torchvision's ImageNet statistics and those the public RMFER code
// (yunseongcho/RMFER) hard-codes — RMset's (datasets/contrastive/RMset.py,
// RMset_normalize) and AffectNet's train and validation sets
// (datasets/AffectNet.py, train_normalize / valid_normalize).
var NamedNormalizations = map[string]Normalize{
	"imagenet": *ImageNetNormalize,
	"rmset": {Mean: [3]float32{0.52934384, 0.39199043, 0.3694192},
		Std: [3]float32{0.20445083, 0.17351717, 0.16180859}},
	"rmfer_affectnet_train": {Mean: [3]float32{0.61120795, 0.47080194, 0.40948687},
		Std: [3]float32{0.21088221, 0.1876408, 0.17565419}},
	"rmfer_affectnet_val": {Mean: [3]float32{0.59882072, 0.46099265, 0.40169688},
		Std: [3]float32{0.20795445, 0.18521879, 0.17365596}},
}

// normalizationNames lists NamedNormalizations, sorted.
func normalizationNames() string {
	names := make([]string, 0, len(NamedNormalizations))
	for n := range NamedNormalizations {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ParsePipeline reads a pipeline from its YAML list form (the decoded
// value of data.options.train_transforms / test_transforms), e.g.
//
//	[{resize: [224, 224]}, hflip, {color_jitter: [0.2, 0.2, 0.2, 0.1]},
//	 to_tensor, {normalize: imagenet}, {random_erasing: {scale: [0.02, 0.1]}}]
//
// Each item is a step name alone (its defaults) or a one-key mapping
// from the name to its argument: a scalar or list for torchvision's first
// parameter, or a mapping of torchvision's keyword arguments. to_tensor
// is implied at the end when the list has none. what names the list in
// errors ("train_transforms"); every error names the item, the key and
// what is allowed.
func ParsePipeline(spec any, what string) (*Pipeline, error) {
	list, ok := spec.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list of transforms (e.g. [{resize: 224}, to_tensor, {normalize: imagenet}]), got %s", what, describe(spec))
	}
	p := &Pipeline{channels: 3}
	tensor := false
	for i, item := range list {
		where := fmt.Sprintf("%s[%d]", what, i)
		name, arg, err := splitItem(item, where)
		if err != nil {
			return nil, err
		}
		where = fmt.Sprintf("%s (%s)", where, name)
		switch name {
		case "to_tensor":
			if tensor {
				return nil, fmt.Errorf("%s: to_tensor appears twice", where)
			}
			if arg != nil {
				return nil, fmt.Errorf("%s: to_tensor takes no argument", where)
			}
			p.steps = append(p.steps, toTensor{})
			tensor = true
			continue
		case "normalize", "random_erasing":
			if !tensor {
				return nil, fmt.Errorf("%s: %s works on the tensor: put to_tensor before it", where, name)
			}
			s, err := parseTensorStep(name, arg, where)
			if err != nil {
				return nil, err
			}
			p.steps = append(p.steps, s)
			continue
		}
		if tensor {
			return nil, fmt.Errorf("%s: %s works on the image: put it before to_tensor", where, name)
		}
		s, err := parseImageStep(name, arg, where)
		if err != nil {
			return nil, err
		}
		p.steps = append(p.steps, s)
	}
	if !tensor {
		p.steps = append(p.steps, toTensor{})
	}
	// channel count: grayscale(1) leaves one channel; a random_choice
	// must not change it in some branches only
	for _, s := range p.steps {
		if ch := stepChannels(s, p.channels); ch < 0 {
			return nil, fmt.Errorf("%s: random_choice: its transforms give different channel counts (grayscale: 1 in one branch only)", what)
		} else {
			p.channels = ch
		}
	}
	for _, s := range p.steps {
		if n, ok := s.(normalizeStep); ok && len(n.mean) != 1 && len(n.mean) != p.channels {
			return nil, fmt.Errorf("%s: normalize has %d means for a %d-channel tensor", what, len(n.mean), p.channels)
		}
		if e, ok := s.(erasingStep); ok && e.value != nil && len(e.value) != 1 && len(e.value) != p.channels {
			return nil, fmt.Errorf("%s: random_erasing has %d values for a %d-channel tensor", what, len(e.value), p.channels)
		}
	}
	return p, nil
}

// ParsePipelineYAML is ParsePipeline on the YAML text of the list (a
// built-in default, e.g. "[{resize: [260, 260]}, to_tensor]").
func ParsePipelineYAML(src, what string) (*Pipeline, error) {
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, src, err)
	}
	return ParsePipeline(v, what)
}

// stepChannels is the channel count after s for c channels in (−1: the
// branches of a random_choice disagree).
func stepChannels(s step, c int) int {
	switch s := s.(type) {
	case grayscaleStep:
		return s.channels
	case randomChoiceStep:
		first := stepChannels(s.choices[0], c)
		for _, ch := range s.choices[1:] {
			if stepChannels(ch, c) != first {
				return -1
			}
		}
		return first
	}
	return c
}

// splitItem reads "name" or {name: arg}.
func splitItem(item any, where string) (string, any, error) {
	switch v := item.(type) {
	case string:
		return canonical(strings.TrimSpace(v), where)
	case map[string]any:
		if len(v) != 1 {
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return "", nil, fmt.Errorf("%s: one transform per list item, got the keys %s (write each as its own item: - {%s: ...})", where, strings.Join(keys, ", "), keys[0])
		}
		for k, a := range v {
			name, _, err := canonical(k, where)
			return name, a, err
		}
	}
	return "", nil, fmt.Errorf("%s: want a transform name or {name: argument}, got %s (transforms: %s)", where, describe(item), strings.Join(TransformNames, ", "))
}

func canonical(name, where string) (string, any, error) {
	switch name {
	case "random_horizontal_flip":
		return "hflip", nil, nil
	case "rotation":
		return "random_rotation", nil, nil
	}
	for _, n := range TransformNames {
		if n == name {
			return name, nil, nil
		}
	}
	return "", nil, fmt.Errorf("%s: unknown transform %q (transforms: %s)", where, name, strings.Join(TransformNames, ", "))
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("the string %q", v)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

// args holds one step's argument: the positional value (torchvision's
// first parameter) or keyword values, checked against the allowed names.
type args struct {
	where string
	kw    map[string]any
}

// newArgs splits arg into keywords; a non-mapping argument is the first
// parameter, first.
func newArgs(arg any, where, first string, allowed ...string) (*args, error) {
	a := &args{where: where, kw: map[string]any{}}
	switch v := arg.(type) {
	case nil:
	case map[string]any:
		names := allowed
		if first != "" {
			names = append([]string{first}, allowed...)
		}
		for k, x := range v {
			found := false
			for _, n := range names {
				if n == k {
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("%s: unknown key %q (allowed: %s)", where, k, strings.Join(names, ", "))
			}
			a.kw[k] = x
		}
	default:
		if first == "" {
			return nil, fmt.Errorf("%s: takes keyword arguments only (allowed: %s)", where, strings.Join(allowed, ", "))
		}
		a.kw[first] = v
	}
	return a, nil
}

func (a *args) has(k string) bool { _, ok := a.kw[k]; return ok }

func (a *args) errf(k, format string, v ...any) error {
	return fmt.Errorf("%s: %s = %s: %s", a.where, k, describe(a.kw[k]), fmt.Sprintf(format, v...))
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<31 {
			return int(x), true
		}
	}
	return 0, false
}

// float reads a number (def when absent).
func (a *args) float(k string, def float64) (float64, error) {
	v, ok := a.kw[k]
	if !ok {
		return def, nil
	}
	f, ok := toFloat(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, a.errf(k, "want a number")
	}
	return f, nil
}

// prob reads a probability in [0, 1].
func (a *args) prob(k string, def float64) (float64, error) {
	p, err := a.float(k, def)
	if err == nil && (p < 0 || p > 1) {
		err = a.errf(k, "want a probability in [0, 1]")
	}
	return p, err
}

// floats reads a list of numbers (or one number, as a list of one).
func (a *args) floats(k string) ([]float64, error) {
	v := a.kw[k]
	if f, ok := toFloat(v); ok {
		return []float64{f}, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, a.errf(k, "want a number or a list of numbers")
	}
	out := make([]float64, len(l))
	for i, x := range l {
		f, ok := toFloat(x)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, a.errf(k, "item %d is not a number", i)
		}
		out[i] = f
	}
	return out, nil
}

// size reads torchvision's size argument: an int, [s] or [h, w].
// one is set for the single-value forms.
func (a *args) size(k string) (h, w int, one bool, err error) {
	v, ok := a.kw[k]
	if !ok {
		return 0, 0, false, fmt.Errorf("%s: %s is required (an int, or [height, width])", a.where, k)
	}
	var l []any
	if s, ok := toInt(v); ok {
		l, one = []any{s}, true
	} else if l, ok = v.([]any); !ok || len(l) < 1 || len(l) > 2 {
		return 0, 0, false, a.errf(k, "want an int or [height, width]")
	}
	vals := make([]int, len(l))
	for i, x := range l {
		n, ok := toInt(x)
		if !ok || n < 1 {
			return 0, 0, false, a.errf(k, "want positive ints")
		}
		vals[i] = n
	}
	if len(vals) == 1 {
		return vals[0], vals[0], true, nil
	}
	return vals[0], vals[1], false, nil
}

// fill reads a fill colour: one int (all channels) or three.
func (a *args) fill(k string) (imaging.Fill, error) {
	var f imaging.Fill
	if !a.has(k) {
		return f, nil
	}
	vs, err := a.floats(k)
	if err != nil || (len(vs) != 1 && len(vs) != 3) {
		return f, a.errf(k, "want a grey level 0..255 or [r, g, b]")
	}
	for c := range 3 {
		v := vs[min(c, len(vs)-1)]
		if v < 0 || v > 255 {
			return f, a.errf(k, "want levels in 0..255")
		}
		f[c] = uint8(int(v)) // _parse_fill: int(x)
	}
	return f, nil
}

// jitterRange is ColorJitter._check_input: a number v gives [center − v,
// center + v] (the low end clipped at 0 for brightness, contrast and
// saturation), a pair is taken as is; both must lie in bound; nil when
// the range is the single point center (the adjustment is off).
func (a *args) jitterRange(k string, center float64, bound [2]float64, clipZero bool) (*[2]float64, error) {
	if !a.has(k) {
		return nil, nil
	}
	vs, err := a.floats(k)
	if err != nil {
		return nil, err
	}
	var r [2]float64
	switch len(vs) {
	case 1:
		if vs[0] < 0 {
			return nil, a.errf(k, "a single value must be >= 0")
		}
		r = [2]float64{center - vs[0], center + vs[0]}
		if clipZero {
			r[0] = max(r[0], 0)
		}
	case 2:
		r = [2]float64{vs[0], vs[1]}
	default:
		return nil, a.errf(k, "want a number or [min, max]")
	}
	if !(bound[0] <= r[0] && r[0] <= r[1] && r[1] <= bound[1]) {
		return nil, a.errf(k, "range [%g, %g] must satisfy %g <= min <= max <= %g", r[0], r[1], bound[0], bound[1])
	}
	if r[0] == center && r[1] == center {
		return nil, nil
	}
	return &r, nil
}

func (a *args) str(k, def string) (string, error) {
	v, ok := a.kw[k]
	if !ok {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", a.errf(k, "want a string")
	}
	return s, nil
}

func (a *args) boolean(k string) (bool, error) {
	v, ok := a.kw[k]
	if !ok {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, a.errf(k, "want true or false")
	}
	return b, nil
}

// padding reads torchvision's padding: an int, [lr, tb] or [l, t, r, b].
func (a *args) padding(k string) (padding, error) {
	if !a.has(k) {
		return padding{}, nil
	}
	vs, err := a.floats(k)
	ok := err == nil
	is := make([]int, len(vs))
	for i, v := range vs {
		if v != math.Trunc(v) || v < 0 {
			ok = false
		}
		is[i] = int(v)
	}
	switch {
	case !ok:
	case len(is) == 1:
		return padding{is[0], is[0], is[0], is[0]}, nil
	case len(is) == 2:
		return padding{is[0], is[1], is[0], is[1]}, nil
	case len(is) == 4:
		return padding{is[0], is[1], is[2], is[3]}, nil
	}
	return padding{}, a.errf(k, "want an int >= 0, [left/right, top/bottom] or [left, top, right, bottom]")
}

func parseImageStep(name string, arg any, where string) (imageStep, error) {
	switch name {
	case "resize":
		a, err := newArgs(arg, where, "size", "interpolation", "max_size", "antialias")
		if err != nil {
			return nil, err
		}
		h, w, one, err := a.size("size")
		if err != nil {
			return nil, err
		}
		if in, err := a.str("interpolation", "bilinear"); err != nil || in != "bilinear" {
			if err != nil {
				return nil, err
			}
			return nil, a.errf("interpolation", "only bilinear (torchvision's default, Pillow's antialiased BILINEAR) is supported")
		}
		s := resizeStep{h: h, w: w}
		if one {
			s = resizeStep{short: h}
		}
		if a.has("max_size") {
			m, ok := toInt(a.kw["max_size"])
			if !ok || !one || m <= h {
				return nil, a.errf("max_size", "want an int > size, with an int size (the shorter side)")
			}
			s.maxSize = m
		}
		return s, nil
	case "center_crop":
		a, err := newArgs(arg, where, "size")
		if err != nil {
			return nil, err
		}
		h, w, _, err := a.size("size")
		if err != nil {
			return nil, err
		}
		return centerCropStep{h: h, w: w}, nil
	case "random_crop":
		a, err := newArgs(arg, where, "size", "padding", "pad_if_needed", "fill", "padding_mode")
		if err != nil {
			return nil, err
		}
		h, w, _, err := a.size("size")
		if err != nil {
			return nil, err
		}
		s := randomCropStep{h: h, w: w}
		if s.pad, err = a.padding("padding"); err != nil {
			return nil, err
		}
		if s.padIfNeeded, err = a.boolean("pad_if_needed"); err != nil {
			return nil, err
		}
		if s.fill, err = a.fill("fill"); err != nil {
			return nil, err
		}
		mode, err := a.str("padding_mode", "constant")
		if err != nil {
			return nil, err
		}
		if s.mode, err = imaging.ParsePadMode(mode); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return s, nil
	case "hflip":
		a, err := newArgs(arg, where, "p")
		if err != nil {
			return nil, err
		}
		p, err := a.prob("p", 0.5)
		return hflipStep{p: p}, err
	case "random_rotation":
		a, err := newArgs(arg, where, "degrees", "interpolation", "expand", "center", "fill")
		if err != nil {
			return nil, err
		}
		if !a.has("degrees") {
			return nil, fmt.Errorf("%s: degrees is required (d for [-d, d], or [min, max])", where)
		}
		vs, err := a.floats("degrees")
		if err != nil {
			return nil, err
		}
		var s rotationStep
		switch {
		case len(vs) == 1 && vs[0] >= 0:
			s.lo, s.hi = -vs[0], vs[0]
		case len(vs) == 2 && vs[0] <= vs[1]:
			s.lo, s.hi = vs[0], vs[1]
		default:
			return nil, a.errf("degrees", "want a number >= 0 or [min, max]")
		}
		if in, err := a.str("interpolation", "nearest"); err != nil || in != "nearest" {
			if err != nil {
				return nil, err
			}
			return nil, a.errf("interpolation", "only nearest (torchvision's default) is supported")
		}
		if e, err := a.boolean("expand"); err != nil || e {
			if err != nil {
				return nil, err
			}
			return nil, a.errf("expand", "only false (torchvision's default) is supported")
		}
		if a.has("center") {
			return nil, a.errf("center", "only the image centre (torchvision's default) is supported")
		}
		s.fill, err = a.fill("fill")
		return s, err
	case "color_jitter":
		var s colorJitterStep
		keys := []string{"brightness", "contrast", "saturation", "hue"}
		kw := arg
		if l, ok := arg.([]any); ok { // [brightness, contrast, saturation, hue]
			if len(l) > 4 {
				return nil, fmt.Errorf("%s: want [brightness, contrast, saturation, hue] (up to 4 values), got %d", where, len(l))
			}
			m := map[string]any{}
			for i, v := range l {
				m[keys[i]] = v
			}
			kw = m
		} else if _, ok := toFloat(arg); ok { // ColorJitter(b)
			kw = map[string]any{"brightness": arg}
		} else if _, ok := arg.(map[string]any); !ok && arg != nil {
			return nil, fmt.Errorf("%s: want [brightness, contrast, saturation, hue] or {brightness: .., contrast: .., saturation: .., hue: ..}", where)
		}
		a, err := newArgs(kw, where, "", keys...)
		if err != nil {
			return nil, err
		}
		inf := [2]float64{0, math.Inf(1)}
		if s.brightness, err = a.jitterRange("brightness", 1, inf, true); err != nil {
			return nil, err
		}
		if s.contrast, err = a.jitterRange("contrast", 1, inf, true); err != nil {
			return nil, err
		}
		if s.saturation, err = a.jitterRange("saturation", 1, inf, true); err != nil {
			return nil, err
		}
		if s.hue, err = a.jitterRange("hue", 0, [2]float64{-0.5, 0.5}, false); err != nil {
			return nil, err
		}
		return s, nil
	case "grayscale":
		a, err := newArgs(arg, where, "num_output_channels")
		if err != nil {
			return nil, err
		}
		c := 1
		if a.has("num_output_channels") {
			n, ok := toInt(a.kw["num_output_channels"])
			if !ok || (n != 1 && n != 3) {
				return nil, a.errf("num_output_channels", "want 1 or 3")
			}
			c = n
		}
		return grayscaleStep{channels: c}, nil
	case "random_grayscale":
		a, err := newArgs(arg, where, "p")
		if err != nil {
			return nil, err
		}
		p, err := a.prob("p", 0.1)
		return randomGrayscaleStep{p: p}, err
	case "random_choice":
		a, err := newArgs(arg, where, "transforms", "p")
		if err != nil {
			return nil, err
		}
		l, ok := a.kw["transforms"].([]any)
		if !ok || len(l) == 0 {
			return nil, fmt.Errorf("%s: want a non-empty list of transforms to pick from", where)
		}
		var s randomChoiceStep
		for i, item := range l {
			w := fmt.Sprintf("%s[%d]", where, i)
			n, sub, err := splitItem(item, w)
			if err != nil {
				return nil, err
			}
			if n == "to_tensor" || n == "normalize" || n == "random_erasing" {
				return nil, fmt.Errorf("%s: random_choice picks among image transforms (before to_tensor), not %s", w, n)
			}
			c, err := parseImageStep(n, sub, fmt.Sprintf("%s (%s)", w, n))
			if err != nil {
				return nil, err
			}
			s.choices = append(s.choices, c)
		}
		if a.has("p") {
			ps, err := a.floats("p")
			if err != nil || len(ps) != len(s.choices) {
				return nil, a.errf("p", "want one weight per transform (%d)", len(s.choices))
			}
			sum := 0.0
			for _, w := range ps {
				if w < 0 {
					return nil, a.errf("p", "weights must be >= 0")
				}
				sum += w
				s.cum = append(s.cum, sum)
			}
			if sum <= 0 {
				return nil, a.errf("p", "the weights sum to 0")
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s: unknown transform %q (transforms: %s)", where, name, strings.Join(TransformNames, ", "))
}

func parseTensorStep(name string, arg any, where string) (tensorStep, error) {
	switch name {
	case "normalize":
		if s, ok := arg.(string); ok {
			n, ok := NamedNormalizations[s]
			if !ok {
				return nil, fmt.Errorf("%s: unknown normalization %q (named: %s; or give {mean: [..], std: [..]})", where, s, normalizationNames())
			}
			return normalizeStep{mean: n.Mean[:], std: n.Std[:]}, nil
		}
		a, err := newArgs(arg, where, "", "mean", "std")
		if err != nil {
			return nil, fmt.Errorf("%s: want a named normalization (%s) or {mean: [..], std: [..]}", where, normalizationNames())
		}
		if !a.has("mean") || !a.has("std") {
			return nil, fmt.Errorf("%s: want a named normalization (%s) or {mean: [..], std: [..]}", where, normalizationNames())
		}
		m, err := a.floats("mean")
		if err != nil {
			return nil, err
		}
		sd, err := a.floats("std")
		if err != nil {
			return nil, err
		}
		if len(m) != len(sd) {
			return nil, fmt.Errorf("%s: %d means but %d stds", where, len(m), len(sd))
		}
		s := normalizeStep{}
		for i := range m {
			if !(sd[i] > 0) {
				return nil, a.errf("std", "want values > 0")
			}
			s.mean = append(s.mean, float32(m[i]))
			s.std = append(s.std, float32(sd[i]))
		}
		return s, nil
	case "random_erasing":
		a, err := newArgs(arg, where, "p", "scale", "ratio", "value", "inplace")
		if err != nil {
			return nil, err
		}
		s := erasingStep{scale: [2]float64{0.02, 0.33}, ratio: [2]float64{0.3, 3.3}, value: []float32{0}}
		if s.p, err = a.prob("p", 0.5); err != nil {
			return nil, err
		}
		for _, k := range []string{"scale", "ratio"} {
			if !a.has(k) {
				continue
			}
			vs, err := a.floats(k)
			if err != nil || len(vs) != 2 || vs[0] > vs[1] || vs[0] <= 0 {
				return nil, a.errf(k, "want [min, max] with 0 < min <= max")
			}
			if k == "scale" {
				if vs[1] > 1 {
					return nil, a.errf(k, "scale must lie in (0, 1]")
				}
				s.scale = [2]float64{vs[0], vs[1]}
			} else {
				s.ratio = [2]float64{vs[0], vs[1]}
			}
		}
		if a.has("value") {
			if v, ok := a.kw["value"].(string); ok {
				if v != "random" {
					return nil, a.errf("value", "want a number, a list per channel, or random")
				}
				s.value = nil
			} else {
				vs, err := a.floats("value")
				if err != nil {
					return nil, a.errf("value", "want a number, a list per channel, or random")
				}
				s.value = s.value[:0]
				for _, v := range vs {
					s.value = append(s.value, float32(v))
				}
			}
		}
		if _, err := a.boolean("inplace"); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s: unknown transform %q", where, name)
}
