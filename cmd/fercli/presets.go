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

// presetFlags select a data set and its default config: --dfew / --afew /
// --affwild2, and DFEW's --fold.
func presetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "dfew", Usage: "train on DFEW (data set dfew) from the built-in <model>_dfew config; needs --data-root"},
		&cli.BoolFlag{Name: "afew", Usage: "train on AFEW 7.0 (data set afew) from the built-in <model>_afew config; needs --data-root"},
		&cli.BoolFlag{Name: "affwild2", Usage: "train on Aff-Wild2, ABAW layout (data set affwild2) from the built-in <model>_affwild2 config; needs --data-root"},
		&cli.IntFlag{Name: "fold", Usage: "DFEW fold 1..5 (sets data.options.fold; the default run dir gets /foldN)"},
	}
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
	dataset := ""
	for _, d := range []string{"dfew", "afew", "affwild2"} {
		if c.Bool(d) {
			if dataset != "" {
				return nil, fmt.Errorf("--%s and --%s exclude each other", dataset, d)
			}
			dataset = d
		}
	}
	if dataset != "" && c.IsSet("data") && c.String("data") != dataset {
		return nil, fmt.Errorf("--%s and --data %s exclude each other", dataset, c.String("data"))
	}
	if c.IsSet("fold") && dataset != "dfew" && c.String("data") != "dfew" {
		return nil, fmt.Errorf("--fold is for DFEW: add --dfew")
	}
	src, name := []byte(nil), c.String("config")
	if dataset != "" {
		pre = append(pre, fmt.Sprintf("data.name=%q", dataset))
		if name == "" {
			if model == "" {
				return nil, fmt.Errorf("--%s needs a model: fercli train MODEL --%s (models: %s)", dataset, dataset, strings.Join(fer.ModelNames(), ", "))
			}
			src, name = embeddedConfig(model, dataset)
		}
	}
	if c.IsSet("fold") {
		fold := c.Int("fold")
		if fold < 1 || fold > 5 {
			return nil, fmt.Errorf("--fold %d: DFEW has folds 1..5", fold)
		}
		pre = append(pre, fmt.Sprintf("data.options.fold=%d", fold))
	}
	ov := append(pre, overrides(c)...)
	var cfg *fer.Config
	var err error
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
// split when it says so (DFEW: val = test fold).
func printProtocolNote(r *fer.Run) {
	if n, ok := r.Data.Val.(interface{ ProtocolNote() string }); ok && n.ProtocolNote() != "" {
		fmt.Printf("data %s: %s\n", r.Cfg.Data.Name, n.ProtocolNote())
	}
}

// trainFlagsFirst moves the flags of `fercli [global flags] train ...`
// before the model argument, so that the documented form `fercli train
// stt --dfew --fold 1` parses (urfave/cli v2 stops reading flags at the
// first argument). Other commands' arguments are returned unchanged.
func trainFlagsFirst(args []string, commands []*cli.Command) []string {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			// every global flag takes a value
			if !strings.Contains(a, "=") && a != "-h" && a != "--help" {
				i++
			}
			continue
		}
		if a != "train" {
			return args
		}
		for _, c := range commands {
			if c.Name == "train" {
				out := append([]string(nil), args[:i+1]...)
				return append(out, flagsFirst(args[i+1:], c.Flags)...)
			}
		}
		return args
	}
	return args
}
