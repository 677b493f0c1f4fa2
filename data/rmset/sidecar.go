package rmset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SidecarExt is the extension of a video's settings file, next to it:
// clip.mp4 → clip.mp4.rmset.yaml (or clip.rmset.yaml).
const SidecarExt = ".rmset.yaml"

// Sidecar are a video's hand-made settings:
//
//	# the trigger film's rectangle(s), blanked before detection: [x, y, w, h]
//	remove:
//	  - [0, 0, 360, 264]
//	# faces the detector misses on the first frame: [x, y, w, h]
//	boxes:
//	  - [700, 300, 120, 120]
//
// Rectangles are in pixels of the video's frames.
type Sidecar struct {
	Remove []image.Rectangle
	Boxes  []image.Rectangle
}

// sidecarPaths are where a video's sidecar may be.
func sidecarPaths(video string) []string {
	stem := strings.TrimSuffix(video, extOf(video))
	return []string{video + SidecarExt, stem + SidecarExt}
}

func extOf(p string) string {
	i := strings.LastIndexByte(p, '.')
	if i < 0 || strings.ContainsRune(p[i:], '/') {
		return ""
	}
	return p[i:]
}

// LoadSidecar reads the video's sidecar file if there is one (a zero
// Sidecar if not). Errors name the file and the entry.
func LoadSidecar(video string) (Sidecar, string, error) {
	for _, p := range sidecarPaths(video) {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Sidecar{}, p, err
		}
		s, err := ParseSidecar(b)
		if err != nil {
			return Sidecar{}, p, fmt.Errorf("%s: %w", p, err)
		}
		return s, p, nil
	}
	return Sidecar{}, "", nil
}

// ParseSidecar decodes a sidecar's YAML.
func ParseSidecar(b []byte) (Sidecar, error) {
	var raw struct {
		Remove [][]int `yaml:"remove"`
		Boxes  [][]int `yaml:"boxes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && err.Error() != "EOF" {
		return Sidecar{}, fmt.Errorf("%v (want keys remove and boxes, lists of [x, y, w, h])", err)
	}
	var s Sidecar
	var err error
	if s.Remove, err = rects("remove", raw.Remove); err != nil {
		return Sidecar{}, err
	}
	if s.Boxes, err = rects("boxes", raw.Boxes); err != nil {
		return Sidecar{}, err
	}
	return s, nil
}

func rects(key string, in [][]int) ([]image.Rectangle, error) {
	var out []image.Rectangle
	for i, v := range in {
		if len(v) != 4 || v[2] < 1 || v[3] < 1 {
			return nil, fmt.Errorf("%s[%d] = %v: want [x, y, w, h] with w, h >= 1", key, i, v)
		}
		out = append(out, image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3]))
	}
	return out, nil
}

// ParseRect reads "x,y,w,h" (a --remove flag).
func ParseRect(s string) (image.Rectangle, error) {
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return image.Rectangle{}, fmt.Errorf("rectangle %q: want x,y,w,h", s)
	}
	var v [4]int
	for i := range f {
		n, err := strconv.Atoi(strings.TrimSpace(f[i]))
		if err != nil {
			return image.Rectangle{}, fmt.Errorf("rectangle %q: want four integers x,y,w,h", s)
		}
		v[i] = n
	}
	if v[2] < 1 || v[3] < 1 {
		return image.Rectangle{}, fmt.Errorf("rectangle %q: width and height must be >= 1", s)
	}
	return image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3]), nil
}
