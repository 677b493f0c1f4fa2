package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/models"
	"github.com/fer-research/fer/plots"
	"github.com/urfave/cli/v2"
)

// rmsetAttentionCommand writes the data of RMFER's Fig. 4 from a trained
// checkpoint: RMset groups drawn by the run's candidate sampler, each
// embedded as one batch [anchor, positives, negatives], and the
// attention matrix IAL computes over it.
var rmsetAttentionCommand = &cli.Command{
	Name:      "attention",
	Usage:     "write an attention dump (RMFER's Fig. 4 data) of an rmfer checkpoint on RMset groups",
	ArgsUsage: "[RMSET_DIR]",
	Description: `Draws --groups groups from the RMset (the checkpoint's aux stream folder
unless RMSET_DIR is given) with the run's candidate sampler — an anchor
face, --positives other people's faces in nearby frames, --negatives the
same person's faces far away — embeds each group as one batch with the
checkpoint's model in eval mode, and writes the attention matrix A of
inter-sample attention over [anchor, positives, negatives] as an attention
dump (JSON; faces relative to the RMset folder). Draw it with
fercli plot attention:

  fercli rmset attention --ckpt runs/rmfer_rafdb/best.ckpt -o att.json /data/rmset
  fercli plot attention -o fig4.png att.json

The faces go through the run's RMset test_transforms (the default RMset
pipeline when the run had no aux stream); --set changes a key of the stored
config, e.g. --set aux.data.options.pos_window=3.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "ckpt", Required: true, Usage: "rmfer checkpoint (RUN/best.ckpt)"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "attention dump to write (default: attention.json beside the checkpoint)"},
		&cli.IntFlag{Name: "groups", Value: 4, Usage: "groups to draw"},
		&cli.IntFlag{Name: "positives", Value: 5, Usage: "positives per group (the sampler's n_positive)"},
		&cli.IntFlag{Name: "negatives", Value: 5, Usage: "negatives per group (the sampler's n_negative)"},
		&cli.Int64Flag{Name: "draw-seed", Value: 1, Usage: "seed of the groups' draws"},
		setFlag("override a key of the stored config (repeatable)"),
	},
	Action: rmsetAttention,
}

func rmsetAttention(c *cli.Context) (err error) {
	defer fer.CatchTorch(&err, "rmset attention")
	if c.NArg() > 1 {
		return fmt.Errorf("rmset attention: give at most one RMset folder")
	}
	for _, f := range []string{"groups", "positives", "negatives"} {
		if c.Int(f) < 1 {
			return fmt.Errorf("--%s %d: want >= 1", f, c.Int(f))
		}
	}
	ckpt := c.String("ckpt")
	ov := sets(c)
	if globalSet(c, "device") {
		ov = append(ov, fmt.Sprintf("device=%q", c.String("device")))
	}
	m, cfg, meta, err := fer.LoadModel(ckpt, ov...)
	if err != nil {
		return err
	}
	rm, ok := m.(*models.RMFERModel)
	if !ok {
		return fmt.Errorf("rmset attention: %s holds model %s: attention dumps need an rmfer checkpoint", ckpt, cfg.Model.Name)
	}
	dc := cfg.Aux.Data
	if dc.Name != "rmset" {
		dc = fer.DataConfig{Name: "rmset"}
	}
	if c.NArg() == 1 {
		dc.Root = c.Args().First()
	}
	if dc.Root == "" {
		return fmt.Errorf("rmset attention: %s was trained without an RMset: give the RMset folder (fercli rmset attention --ckpt %s DIR)", ckpt, ckpt)
	}
	opts := map[string]any{}
	for k, v := range dc.Options {
		opts[k] = v
	}
	opts["n_positive"], opts["n_negative"] = c.Int("positives"), c.Int("negatives")
	dc.Options = opts
	s, err := fer.OpenDataset(dc, cfg.Seed)
	if err != nil {
		return err
	}
	ds, ok := s.Train.(*fer.RMsetData)
	if !ok {
		return fmt.Errorf("rmset attention: data set %s is not an RMset", dc.Name)
	}
	if !slices.Equal(ds.Shape, meta.InputShape) {
		return fmt.Errorf("rmset attention: the RMset's test_transforms give %v images, %s was trained on %v: set --set 'aux.data.options.test_transforms=[...]' to the run's size", ds.Shape, ckpt, meta.InputShape)
	}
	root, err := filepath.Abs(dc.Root)
	if err != nil {
		return err
	}
	if filepath.Base(root) == "index.csv" {
		root = filepath.Dir(root)
	}
	rel := func(file string) string {
		abs, err := filepath.Abs(file)
		if err != nil {
			return file
		}
		if r, err := filepath.Rel(root, abs); err == nil {
			return filepath.ToSlash(r)
		}
		return abs
	}
	dev := rm.VarStore().Device()
	mc := rm.Net.Config()
	dump := &plots.AttentionDump{Model: cfg.Model.Name, Checkpoint: ckpt, Tau: mc.Tau, SelfMasking: mc.SelfMasking, Root: root}
	faces := ds.Sampler.Faces()
	sumPos, sumNeg := 0.0, 0.0
	for g := range c.Int("groups") {
		// one group per batch, drawn from its own generator
		grp := ds.Groups([]int{g}, fer.NewRand(c.Int64("draw-seed"), uint64(g)))[0]
		b, err := ds.Batch([]int{g}, false, fer.NewRand(c.Int64("draw-seed"), uint64(g)), dev)
		if err != nil {
			return err
		}
		pos, err := b.Inputs[fer.RMsetInputPositives].Select(0, 0, false)
		if err != nil {
			b.Drop()
			return err
		}
		neg, err := b.Inputs[fer.RMsetInputNegatives].Select(0, 0, false)
		if err != nil {
			pos.MustDrop()
			b.Drop()
			return err
		}
		a, err := rm.Net.GroupAttention(b.Inputs[fer.RMsetInputAnchor], pos, neg)
		pos.MustDrop()
		neg.MustDrop()
		b.Drop()
		if err != nil {
			return err
		}
		ag := plots.AttentionGroup{Anchor: rel(faces[grp.Anchor].File), Attention: a}
		for _, i := range grp.Positives {
			ag.Positives = append(ag.Positives, rel(faces[i].File))
		}
		for _, i := range grp.Negatives {
			ag.Negatives = append(ag.Negatives, rel(faces[i].File))
		}
		p, n := plots.AttentionMeans(ag)
		sumPos, sumNeg = sumPos+p, sumNeg+n
		fmt.Printf("group %d: anchor %s: mean attention to its positives %.4f, to its negatives %.4f\n", g, ag.Anchor, p, n)
		dump.Groups = append(dump.Groups, ag)
	}
	runtime.KeepAlive(rm)
	n := float64(len(dump.Groups))
	fmt.Printf("mean over %d groups: positives %.4f, negatives %.4f (after ACL the anchor should attend to its positives)\n", len(dump.Groups), sumPos/n, sumNeg/n)
	out := c.String("out")
	if out == "" {
		out = filepath.Join(filepath.Dir(ckpt), "attention.json")
	}
	if err := plots.WriteAttentionDump(out, dump); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "wrote %s (fercli plot attention %s)\n", out, out)
	return nil
}
