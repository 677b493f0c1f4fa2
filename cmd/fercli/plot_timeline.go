package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fer-research/fer/plots"
	"github.com/urfave/cli/v2"
)

// timelineCommand is `fercli plot timeline`.
func timelineCommand() *cli.Command {
	return &cli.Command{
		Name:      "timeline",
		Usage:     "each face track's expression probabilities over time, from fercli predict's rows for a video",
		ArgsUsage: "RESULTS.csv|RESULTS.jsonl",
		Description: `Reads the rows fercli predict wrote for a video (CSV or --json lines) and
draws one panel per track (the --tracks longest), one line per class over
the video's time; frames where the track's face was not found leave gaps.

  fercli predict --ckpt best.ckpt -o clip.csv clip.mp4
  fercli plot timeline clip.csv -o clip-timeline.png`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output figure (.png, .svg or .pdf; default RESULTS-timeline.png)"},
			&cli.StringFlag{Name: "title", Usage: "figure title (default: the video's file name)"},
			&cli.StringFlag{Name: "video", Usage: "the video to draw when the results hold several (its file name as in the rows)"},
			&cli.IntFlag{Name: "tracks", Value: 6, Usage: "draw the N longest tracks"},
			&cli.IntFlag{Name: "smooth", Value: 1, Usage: "moving average over N analysed frames"},
		},
		Action: plotTimeline,
	}
}

func plotTimeline(c *cli.Context) error {
	if err := noFlagsAfterFiles(c.Args().Slice(), "fercli plot timeline [flags] RESULTS.csv"); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return fmt.Errorf("plot timeline: give one results file (fercli plot timeline [flags] RESULTS.csv)")
	}
	in := c.Args().First()
	vids, err := plots.ReadPredictions(in)
	if err != nil {
		return err
	}
	v := vids[0]
	if want := c.String("video"); want != "" {
		v = nil
		for _, x := range vids {
			if x.File == want || filepath.Base(x.File) == want {
				v = x
			}
		}
		if v == nil {
			return fmt.Errorf("%s: no rows for video %q", in, want)
		}
	} else if len(vids) > 1 {
		var names []string
		for _, x := range vids {
			names = append(names, x.File)
		}
		return fmt.Errorf("%s holds %d videos (%s): choose one with --video", in, len(vids), strings.Join(names, ", "))
	}
	out := c.String("out")
	if out == "" {
		out = strings.TrimSuffix(in, filepath.Ext(in)) + "-timeline.png"
	}
	title := c.String("title")
	if title == "" {
		title = filepath.Base(v.File)
	}
	if err := plots.Timeline(out, title, v, plots.TimelineOptions{MaxTracks: c.Int("tracks"), Smooth: c.Int("smooth")}); err != nil {
		return err
	}
	fmt.Printf("timeline of %d tracks → %s\n", min(len(v.Tracks), max(c.Int("tracks"), 1)), out)
	return nil
}
