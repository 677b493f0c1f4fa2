package synth

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
)

// LabelsFile is the name of the CSV that WritePNGs writes next to the images.
const LabelsFile = "labels.csv"

// WritePNGs writes samples under dir (created if needed): a still sample i
// becomes "%06d_<class>.png", a clip becomes the folder "%06d_<class>/"
// holding "%03d.png" per frame. It also writes dir/labels.csv with the header
// file,label,valence,arousal,AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25
// where file is the path relative to dir and label the index into Classes.
func WritePNGs(dir string, samples []Sample) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: create %s: %w", dir, err)
	}
	csvPath := filepath.Join(dir, LabelsFile)
	f, err := os.Create(csvPath)
	if err != nil {
		return fmt.Errorf("synth: create %s: %w", csvPath, err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	header := append([]string{"file", "label", "valence", "arousal"}, AUNames...)
	if err := w.Write(header); err != nil {
		return fmt.Errorf("synth: write %s: %w", csvPath, err)
	}
	for i := range samples {
		s := &samples[i]
		if len(s.Frames) == 0 {
			return fmt.Errorf("synth: sample %d has no frames", i)
		}
		if s.Label < 0 || s.Label >= NumClasses {
			return fmt.Errorf("synth: sample %d has label %d out of range", i, s.Label)
		}
		name := fmt.Sprintf("%06d_%s", i, Classes[s.Label])
		if len(s.Frames) == 1 && s.Onset == 0 && s.Apex == 0 {
			name += ".png"
			if err := writePNG(filepath.Join(dir, name), s.Frames[0]); err != nil {
				return err
			}
		} else {
			sub := filepath.Join(dir, name)
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return fmt.Errorf("synth: create %s: %w", sub, err)
			}
			for t, fr := range s.Frames {
				if err := writePNG(filepath.Join(sub, fmt.Sprintf("%03d.png", t)), fr); err != nil {
					return err
				}
			}
		}
		rec := []string{name, strconv.Itoa(s.Label),
			strconv.FormatFloat(float64(s.Valence), 'f', 4, 32),
			strconv.FormatFloat(float64(s.Arousal), 'f', 4, 32)}
		for _, v := range s.AU {
			rec = append(rec, strconv.Itoa(int(v)))
		}
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("synth: write %s: %w", csvPath, err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("synth: write %s: %w", csvPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("synth: close %s: %w", csvPath, err)
	}
	return nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: create %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("synth: encode %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("synth: close %s: %w", path, err)
	}
	return nil
}

// ContactSheet tiles imgs (all drawn at the size of the first one) into a
// grid with cols columns and a pad-pixel grey border, for visual checks.
// It returns nil when imgs is empty or cols <= 0.
func ContactSheet(imgs []*image.RGBA, cols, pad int) *image.RGBA {
	if len(imgs) == 0 || cols <= 0 {
		return nil
	}
	pad = max(pad, 0)
	cw, ch := imgs[0].Rect.Dx(), imgs[0].Rect.Dy()
	rows := (len(imgs) + cols - 1) / cols
	sheet := image.NewRGBA(image.Rect(0, 0, cols*(cw+pad)+pad, rows*(ch+pad)+pad))
	draw.Draw(sheet, sheet.Rect, image.NewUniform(color.Gray{128}), image.Point{}, draw.Src)
	for k, im := range imgs {
		x := pad + (k%cols)*(cw+pad)
		y := pad + (k/cols)*(ch+pad)
		draw.Draw(sheet, image.Rect(x, y, x+cw, y+ch), im, im.Rect.Min, draw.Src)
	}
	return sheet
}
