package main

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

// configs are the default run configs of the paper reproductions, one per
// (model, data set): configs/<model>_<dataset>.yaml. `fercli train stt
// --dfew` starts from configs/stt_dfew.yaml.
//
//go:embed configs/*.yaml
var configs embed.FS

// datasetPreset is one --<dataset> flag of `fercli train`: it selects
// the data set and the built-in configs/<model>_<dataset>.yaml (or, when
// there is none, the defaults with the model given). Adding a data set's
// flag is one line here.
type datasetPreset struct {
	flag, dataset, title string
}

var datasetPresets = []datasetPreset{
	{"dfew", "dfew", "DFEW"},
	{"afew", "afew", "AFEW 7.0"},
	{"rafdb", "rafdb", "RAF-DB basic"},
	{"ferplus", "ferplus", "FERPlus"},
	{"affectnet7", "affectnet7", "AffectNet-7"},
	{"affectnet8", "affectnet8", "AffectNet-8"},
	{"affwild2", "affwild2", "Aff-Wild2, ABAW layout"},
}

// presetFlags select a data set and its default config (one flag per
// datasetPresets entry), and DFEW's --fold.
func presetFlags() []cli.Flag {
	var out []cli.Flag
	for _, p := range datasetPresets {
		out = append(out, &cli.BoolFlag{Name: p.flag, Usage: fmt.Sprintf(
			"train on %s (data set %s) from the built-in <model>_%s config if there is one, else the data set's defaults; needs --data-root", p.title, p.dataset, p.dataset)})
	}
	return append(out, &cli.IntFlag{Name: "fold", Usage: "DFEW fold 1..5 (sets data.options.fold; the default run dir gets /foldN)"},
		&cli.StringFlag{Name: "rmset", Usage: "RMset folder (fercli rmset build) as the unlabelled aux stream (aux.data: name rmset, root DIR; the config's aux options and start epoch stay): RMFER's ACL from aux.start_epoch on. Without it, an rmset stream without a root is off (rmfer recipes then train L_pre only)"})
}

// rmsetOverrides are --rmset DIR's config overrides: the aux stream is
// the rmset data set in DIR (the recipe's aux options and start epoch
// stay). They come before --set, which may refine aux.data.options.
func rmsetOverrides(c *cli.Context) ([]string, error) {
	if !c.IsSet("rmset") {
		return nil, nil
	}
	for _, k := range []string{"aux", "aux.data", "aux.data.root", "aux.data.name"} {
		if setsKey(c, k) {
			return nil, fmt.Errorf("--rmset and --set %s both choose the aux stream's data: keep one", k)
		}
	}
	return []string{`aux.data.name="rmset"`, fmt.Sprintf("aux.data.root=%q", c.String("rmset"))}, nil
}

// dropRootlessRMset turns off an rmset aux stream without a root (the
// rmfer recipes' aux section when --rmset is not given) and says so.
func dropRootlessRMset(cfg *fer.Config) {
	if cfg.Aux.Data.Name == "rmset" && cfg.Aux.Data.Root == "" {
		fmt.Printf("no --rmset: the config's RMset stream (aux) is off; training without it (rmfer: L_pre only)\n")
		cfg.Aux = fer.AuxConfig{}
	}
}

// presetDataset returns the data set selected by a --<dataset> flag (""
// for none), or an error when several are given.
func presetDataset(c *cli.Context) (string, string, error) {
	var flags []string
	dataset, flag := "", ""
	for _, p := range datasetPresets {
		if c.Bool(p.flag) {
			flags = append(flags, "--"+p.flag)
			dataset, flag = p.dataset, p.flag
		}
	}
	if len(flags) > 1 {
		return "", "", fmt.Errorf("%s exclude each other: give one data set", strings.Join(flags, " and "))
	}
	return dataset, flag, nil
}

// embeddedConfig returns the built-in config for model on dataset, or
// nil when there is none.
func embeddedConfig(model, dataset string) ([]byte, string) {
	name := path.Join("configs", strings.ToLower(model)+"_"+dataset+".yaml")
	b, err := fs.ReadFile(configs, name)
	if err != nil {
		return nil, ""
	}
	return b, name
}

// presetConfig loads the config of a new training run: the model comes
// from --model or the first argument (`fercli train stt`); --dfew/--afew
// pick the data set and, unless --config is given, the built-in config
// for (model, data set). Overrides apply in this order: the preset's
// (model, data set, fold, run dir), then --set, then the other flags.
func presetConfig(c *cli.Context) (*fer.Config, error) {
	var pre []string
	model := c.Args().First()
	if c.Args().Len() > 1 {
		return nil, fmt.Errorf("train takes at most one argument, the model name; got %q", c.Args().Slice())
	}
	if model != "" {
		if c.IsSet("model") && c.String("model") != model {
			return nil, fmt.Errorf("model %q given twice: as argument and as --model %q", model, c.String("model"))
		}
		pre = append(pre, fmt.Sprintf("model.name=%q", model))
	} else {
		model = c.String("model")
	}
	dataset, flag, err := presetDataset(c)
	if err != nil {
		return nil, err
	}
	if dataset != "" && c.IsSet("data") && c.String("data") != dataset {
		return nil, fmt.Errorf("--%s and --data %s exclude each other", flag, c.String("data"))
	}
	if c.IsSet("fold") && dataset != "dfew" && c.String("data") != "dfew" {
		return nil, fmt.Errorf("--fold is for DFEW: add --dfew")
	}
	src, name := []byte(nil), c.String("config")
	defaults := false // no config file: DefaultConfig with the preset's model and data set
	if dataset != "" {
		pre = append(pre, fmt.Sprintf("data.name=%q", dataset))
		if name == "" {
			if model == "" {
				return nil, fmt.Errorf("--%s needs a model: fercli train MODEL --%s (models: %s)", flag, flag, strings.Join(fer.ModelNames(), ", "))
			}
			src, name = embeddedConfig(model, dataset)
			defaults = src == nil
		}
	}
	if c.IsSet("fold") {
		fold := c.Int("fold")
		if fold < 1 || fold > 5 {
			return nil, fmt.Errorf("--fold %d: DFEW has folds 1..5", fold)
		}
		pre = append(pre, fmt.Sprintf("data.options.fold=%d", fold))
	}
	if defaults && !c.IsSet("run-dir") && !setsKey(c, "run_dir") {
		pre = append(pre, fmt.Sprintf("run_dir=%q", path.Join("runs", strings.ToLower(model)+"_"+dataset)))
	}
	rm, err := rmsetOverrides(c)
	if err != nil {
		return nil, err
	}
	fl, err := overrides(c)
	if err != nil {
		return nil, err
	}
	ov := append(append(pre, rm...), fl...)
	var cfg *fer.Config
	if src != nil {
		cfg, err = fer.ParseConfig(src, "built-in "+name, ov...)
	} else {
		cfg, err = fer.LoadConfig(name, ov...)
	}
	if err != nil {
		return nil, err
	}
	// one run dir per fold unless one was chosen
	if c.IsSet("fold") && !c.IsSet("run-dir") && !setsKey(c, "run_dir") {
		cfg.RunDir = path.Join(cfg.RunDir, fmt.Sprintf("fold%d", c.Int("fold")))
	}
	return cfg, nil
}

// setsKey reports whether a --set overrides key.
func setsKey(c *cli.Context, key string) bool {
	for _, s := range sets(c) {
		if k, _, _ := strings.Cut(s, "="); strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

// printProtocolNote prints, once, how a data set fills its evaluation
// split when it says so (DFEW: val = test fold), and what the aux stream
// opened (RMset: videos, faces, anchors).
func printProtocolNote(r *fer.Run) {
	if n, ok := r.Data.Val.(interface{ ProtocolNote() string }); ok && n.ProtocolNote() != "" {
		fmt.Printf("data %s: %s\n", r.Cfg.Data.Name, n.ProtocolNote())
	}
	if r.Aux == nil {
		return
	}
	if n, ok := r.Aux.Data.(interface{ ProtocolNote() string }); ok && n.ProtocolNote() != "" {
		fmt.Printf("aux %s: %s\n", r.Cfg.Aux.Data.Name, n.ProtocolNote())
	}
	fmt.Printf("aux %s: %d sample(s) per step from epoch %d on\n", r.Cfg.Aux.Data.Name, max(r.Aux.BatchSize, 1), r.Aux.StartEpoch+1)
}
