package main

import (
	"fmt"

	"github.com/fer-research/fer/plots"
	"github.com/urfave/cli/v2"
)

// plotAttention draws RMFER's Fig. 4 from an attention dump.
func plotAttention(c *cli.Context) error {
	in, err := oneArg(c, "attention dump")
	if err != nil {
		return err
	}
	d, err := plots.ReadAttentionDump(in)
	if err != nil {
		return err
	}
	i := c.Int("group")
	if i < 0 || i >= len(d.Groups) {
		return fmt.Errorf("plot attention: --group %d, the dump %s has groups 0..%d", i, in, len(d.Groups)-1)
	}
	o := outPath(c, in, "attention")
	if err := plots.AttentionFromDump(o, in, i, !c.Bool("no-faces"), c.String("title")); err != nil {
		return err
	}
	g := d.Groups[i]
	pos, neg := plots.AttentionMeans(g)
	fmt.Fprintf(c.App.Writer, "group %d: anchor %s, %d positives, %d negatives\nmean attention of the anchor: positives %.4f, negatives %.4f\n",
		i, g.Anchor, len(g.Positives), len(g.Negatives), pos, neg)
	wrote(c, o)
	return nil
}
