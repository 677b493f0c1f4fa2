package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/fer-research/fer/models"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:  "models",
		Usage: "list the backbones with parameter counts, input sizes and checkpoint layouts",
		Description: "Parameter counts are computed from the model definitions without building the\n" +
			"networks (no weights are allocated); they equal PyTorch's for the same layout.",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "classes", Value: -1, Usage: "classifier size to count with (-1: each model's reference head, 0: no classifier)"},
		},
		Action: func(c *cli.Context) error {
			infos, err := models.Backbones()
			if err != nil {
				return err
			}
			classes := c.Int64("classes")
			if classes < -1 {
				return fmt.Errorf("--classes %d: want -1, 0 or a class count", classes)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "MODEL\t       PARAMS\t\tINPUT\tFEATURES\tCLASSES")
			for _, info := range infos {
				n, head := info.Params, info.DefaultClasses
				if classes >= 0 && info.DefaultClasses > 0 {
					head = classes
					if n, err = info.Count(classes); err != nil {
						return err
					}
				}
				fmt.Fprintf(w, "%s\t%13s\t%10s\t%s\t%8d\t%7d\n", info.Name, thousands(n), millions(n), info.InputSize, info.FeatureDim, head)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "\nlayouts (parameter names, so checkpoints of these load by name):")
			for _, info := range infos {
				fmt.Fprintf(c.App.Writer, "  %-10s %s\n", info.Name, info.Layout)
			}
			return nil
		},
	})
}

// thousands formats n with comma separators (11,689,512).
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func millions(n int64) string { return fmt.Sprintf("(%.1f M)", float64(n)/1e6) }
