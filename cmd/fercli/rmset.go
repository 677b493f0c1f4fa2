package main

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"

	"github.com/fer-research/fer/data/face"
	"github.com/fer-research/fer/data/media"
	"github.com/fer-research/fer/data/rmset"
	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:  "rmset",
		Usage: "build and inspect RMset, RMFER's face crops from reaction-mashup videos",
		Subcommands: []*cli.Command{
			{
				Name:      "build",
				Usage:     "crop every person of reaction-mashup videos into an RMset folder with an index",
				ArgsUsage: "VIDEO|FOLDER...",
				Description: `The RMFER paper's four steps, per video: (1) the trigger film's rectangle
is blanked before detection (--remove, or "remove" in VIDEO.rmset.yaml next
to the video); (2) the people of the first frame get IDs 0, 1, ... in
reading order (faces the detector misses there can be added by hand:
"boxes" in VIDEO.rmset.yaml); (3) each later frame's faces are matched to
the first frame's boxes by IoU (faces of nobody from the first frame are
ignored); (4) each matched face is cropped widened by Δw = 0.31·w_f and
saved as OUT/VIDEO/pID/FRAME.jpg. OUT/index.csv lists the crops (video,
person, frame, time, box, file) for RMFER's sampler.

A killed build continues where it stopped when run again; a video that
cannot be read is reported and skipped. VIDEO.rmset.yaml:

  remove:            # trigger film, [x, y, w, h] in pixels
    - [0, 0, 640, 360]
  boxes:             # first-frame faces the detector misses
    - [900, 400, 120, 120]

  fercli rmset build --out rmset/ --every 2 mashups/`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "RMset folder"},
					&cli.GenericFlag{Name: "remove", Value: &setList{}, Usage: "x,y,w,h: blank this rectangle in every video (repeatable)"},
					&cli.IntFlag{Name: "every", Value: 1, Usage: "analyse every N-th frame"},
					&cli.Float64Flag{Name: "widen", Value: 0.31, Usage: "Δw / w_f: crop width added to the face box (half on each side)"},
					&cli.Float64Flag{Name: "iou", Value: 0.3, Usage: "IoU with a first-frame box that assigns a face to that person"},
					&cli.IntFlag{Name: "quality", Value: 95, Usage: "JPEG quality"},
					&cli.IntFlag{Name: "upsample", Value: 0, Usage: "detector upsampling: 0 finds faces >= 80 px, 1 >= 40 px (4× slower)"},
					&cli.Float64Flag{Name: "det-threshold", Usage: "added to the detector's threshold (negative: more faces)"},
					&cli.IntFlag{Name: "max-side", Usage: "detect on frames downscaled to this longer side (0: full resolution)"},
					&cli.IntFlag{Name: "workers", Usage: "face-detection goroutines (0: one per core)"},
					&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar with frames/s on stderr when it is a terminal"},
				},
				Action: rmsetBuild,
			},
			{
				Name:      "info",
				Usage:     "summarise an RMset: videos, people, faces per person",
				ArgsUsage: "DIR|index.csv",
				Action:    rmsetInfo,
			},
			rmsetAttentionCommand,
		},
	})
}

// videoInputs expands files and folders into videos (folders: the videos
// directly inside, sorted).
func videoInputs(args []string) ([]string, error) {
	if err := noFlagsAfterFiles(args, "fercli rmset build [flags] VIDEO..."); err != nil {
		return nil, err
	}
	return fer.ExpandFiles(args, media.IsVideo, "videos")
}

func rmsetBuild(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("rmset build: give videos or folders (fercli rmset build --out DIR VIDEO...)")
	}
	videos, err := videoInputs(c.Args().Slice())
	if err != nil {
		return err
	}
	var remove []image.Rectangle
	var rects []string
	if l, ok := c.Generic("remove").(*setList); ok && l != nil {
		rects = *l
	}
	for _, s := range rects {
		r, err := rmset.ParseRect(s)
		if err != nil {
			return fmt.Errorf("--remove: %w", err)
		}
		remove = append(remove, r)
	}
	if c.Int("upsample") < 0 || c.Int("upsample") > 3 {
		return fmt.Errorf("--upsample %d: want 0..3", c.Int("upsample"))
	}
	show := progressFlag(c)
	o := rmset.Options{
		Out: c.String("out"), Remove: remove, Every: c.Int("every"), Widen: c.Float64("widen"),
		MinIoU: c.Float64("iou"), Quality: c.Int("quality"), Workers: c.Int("workers"),
		Detector: face.Options{Upsample: c.Int("upsample"), Threshold: c.Float64("det-threshold"), MaxSide: c.Int("max-side")},
		Progress: func(video string, frames int) rmset.Bar {
			return fer.NewProgressBar(frames, video, "frames", show)
		},
		Log: os.Stderr,
	}
	if o.Widen == 0 {
		o.Widen = 1e-9 // --widen 0: the face box itself (0 means the default inside)
	}
	ctx, stop := signalContext()
	defer stop()
	s, err := rmset.Build(ctx, videos, o)
	if s != nil {
		built, skipped, frames, people := 0, 0, 0, 0
		var bad []string
		for _, v := range s.Videos {
			if v.Err != nil {
				skipped++
				bad = append(bad, filepath.Base(v.Path))
				continue
			}
			built++
			frames += v.Frames
			people += v.People
		}
		fmt.Printf("rmset: %d videos built, %d skipped", built, skipped)
		if len(bad) > 0 {
			fmt.Printf(" (%s)", strings.Join(bad, ", "))
		}
		fmt.Printf("; %d frames analysed, %d people\n", frames, people)
		if s.Index != "" {
			fmt.Printf("index %s: %d videos, %d faces\n", s.Index, s.IndexVideos, s.IndexFaces)
		}
		if err == nil && skipped > 0 && built == 0 {
			err = fmt.Errorf("rmset build: no video could be built")
		}
	}
	return err
}

func rmsetInfo(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("rmset info: give the RMset folder or its index.csv")
	}
	ix, err := rmset.ReadIndex(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d videos, %d faces\n", ix.Root, len(ix.Videos()), len(ix.Faces))
	count := map[string]map[int]int{}
	frames := map[string]map[int]bool{}
	for _, f := range ix.Faces {
		if count[f.Video] == nil {
			count[f.Video], frames[f.Video] = map[int]int{}, map[int]bool{}
		}
		count[f.Video][f.Person]++
		frames[f.Video][f.Frame] = true
	}
	for _, v := range ix.Videos() {
		var parts []string
		for _, p := range ix.People(v) {
			parts = append(parts, fmt.Sprintf("%d: %d", p, count[v][p]))
		}
		fmt.Printf("  %s: %d frames with faces, faces per person {%s}\n", v, len(frames[v]), strings.Join(parts, ", "))
	}
	return nil
}
