package main

import (
	"fmt"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/featfile"
	"github.com/urfave/cli/v2"
)

// dumpFeaturesFlag is eval's --dump-features: the feature file that
// `fercli plot tsne|mds|confusion` read.
var dumpFeaturesFlag = &cli.StringFlag{Name: "dump-features", Usage: "save each sample's penultimate features, label, prediction and class probabilities to this safetensors file (for fercli plot tsne/mds/confusion)"}

// dumpFeatures writes the feature file of split ds when --dump-features is
// set (eval's hook): model r.Model in evaluation mode, batches of bs.
func dumpFeatures(c *cli.Context, r *fer.Run, ds fer.Dataset, bs int) error {
	path := c.String(dumpFeaturesFlag.Name)
	if path == "" {
		return nil
	}
	f, err := fer.ExtractFeatures(c.Context, r.Model, ds, r.Data.Classes, bs, r.Device)
	if err != nil {
		return err
	}
	f.Model = r.Cfg.Model.Name
	f.Dataset = r.Cfg.Data.Name
	if s := c.String("split"); s != "" {
		f.Dataset += "/" + s
	}
	if err := featfile.Save(path, f); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "features of %d samples (%d-D): %s\n", f.N(), f.Dim(), path)
	return nil
}
