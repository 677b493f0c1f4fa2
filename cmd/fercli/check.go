package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fer-research/fer/data"
	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "check",
		Usage:     "read every sample of a data set once: counts per class and split, dropped samples, files that fail to decode",
		ArgsUsage: "DATASET|CONFIG.yaml",
		Description: `Opens a data set as training would (a registered data set name, or the data
section of a run config) and reads every sample of every split once, in
parallel. Prints the samples per class and split, the samples the reader
left out when opening (by reason, with the first few names), and every
file that fails to decode. Run it before a multi-day training. Exit status
1 when a sample cannot be read.

  fercli check dfew --data-root /data/DFEW --set data.options.fold=2
  fercli check runs.yaml`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-root", Usage: "dataset folder on disk"},
			setFlag("override a data key, e.g. --set data.options.fold=2 (repeatable)"),
			&cli.IntFlag{Name: "workers", Usage: "decoding goroutines (0: one per core)"},
			&cli.BoolFlag{Name: "progress", Value: true, Usage: "progress bar on stderr when it is a terminal"},
		},
		Action: checkAction,
	})
}

func checkAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("check: give one data set name (%s) or run config file", strings.Join(fer.DatasetNames(), ", "))
	}
	arg := c.Args().First()
	var ov []string
	path := ""
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		path = arg
	} else {
		ov = append(ov, fmt.Sprintf("data.name=%q", arg))
	}
	if c.IsSet("data-root") {
		ov = append(ov, fmt.Sprintf("data.root=%q", c.String("data-root")))
	}
	ov = append(ov, sets(c)...)
	cfg, err := fer.LoadDataConfig(path, ov...)
	if err != nil {
		return err
	}
	if w := c.Int("workers"); w < 0 {
		return fmt.Errorf("--workers %d: want >= 0 (0: one per core)", w)
	}
	s, err := fer.OpenDataset(cfg.Data, cfg.Seed)
	if err != nil {
		return err
	}
	root := ""
	if cfg.Data.Root != "" {
		root = " at " + cfg.Data.Root
	}
	fmt.Printf("data set %s%s: %d classes\n", cfg.Data.Name, root, len(s.Classes))
	res, err := fer.CheckDataset(c.Context, s, c.Int("workers"), progressFlag(c))
	if err != nil {
		return err
	}
	printCheck(res)
	if n := res.Problems(); n > 0 {
		return cli.Exit(fmt.Sprintf("fercli: %d sample(s) cannot be read (listed above): fix or remove them before training", n), 1)
	}
	fmt.Println("every sample was read")
	return nil
}

func printCheck(res *fer.DataCheck) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "split\tsamples\t%s\t\n", strings.Join(res.Classes, "\t"))
	for _, s := range res.Splits {
		cells := make([]string, len(res.Classes))
		for k := range cells {
			cells[k] = "-"
			if s.PerClass != nil {
				cells[k] = fmt.Sprint(s.PerClass[k])
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", s.Name, s.Samples, strings.Join(cells, "\t"))
	}
	tw.Flush()
	for _, s := range res.Splits {
		if s.Unlabelled > 0 {
			fmt.Printf("%s: %d unlabelled samples\n", s.Name, s.Unlabelled)
		}
	}
	dropped := false
	for _, s := range res.Splits {
		if s.Drops == nil {
			continue
		}
		if !dropped {
			fmt.Println("left out when opening:")
			dropped = true
		}
		for _, l := range strings.Split(s.Drops.String(), "\n") {
			fmt.Printf("  %s: %s\n", s.Name, l)
		}
	}
	if !dropped {
		fmt.Println("left out when opening: none")
	}
	for _, s := range res.Splits {
		if len(s.Failed) == 0 {
			continue
		}
		fmt.Printf("%s: %d sample(s) cannot be read:\n", s.Name, len(s.Failed))
		for _, f := range s.Failed {
			id := f.ID
			if id == "" {
				id = fmt.Sprintf("sample %d", f.Index)
			}
			fmt.Printf("  %s: %v\n", id, f.Err)
		}
	}
}

// printDrops prints, once when a data set is opened for training or
// evaluation, the samples its readers left out. It writes to stderr, so
// that `eval --json` and `predict --json` keep stdout machine-readable.
func printDrops(s *fer.Splits) {
	if r := s.DropReport(); r != "" {
		fmt.Fprintf(os.Stderr, "samples left out when opening the data set (fercli check lists them all by reason):\n%s", indent(r))
	}
}

// printAuxDrops prints what the aux stream's data set left out (RMset:
// people who can never be anchors).
func printAuxDrops(r *fer.Run) {
	if r.Aux == nil {
		return
	}
	if dr, ok := r.Aux.Data.(data.DropReporter); ok && dr.Drops().Total() > 0 {
		fmt.Fprintf(os.Stderr, "aux %s: left out:\n%s", r.Cfg.Aux.Data.Name, indent(dr.Drops().String()))
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
