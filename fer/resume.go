package fer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Resuming a run.
//
// `fercli train --resume RUN` continues RUN from RUN/last.ckpt; `--resume
// RUN/best.ckpt` (or any checkpoint file in the run dir) from that file.
//
// Config policy: the run continues with the config stored in the
// checkpoint, with two kinds of changes applied on top and printed as a
// diff before training starts:
//
//  1. edits to RUN/config.yaml: a config.yaml that differs from the
//     checkpoint's config was edited by hand (fer rewrites it with the
//     effective config whenever a run starts or resumes), so the edit is
//     applied rather than silently reverted;
//  2. --set overrides (and flags) given with --resume.
//
// Keys that would make the checkpoint meaningless are refused when the
// checkpoint is loaded: another model name or seed, and model options
// that change a parameter's shape. Everything else (epochs, the learning
// rate, the data root of a moved data set) may change; the run is then no
// longer bit-identical to an uninterrupted one, which the diff makes
// visible.

// ResumePlan is what PlanResume found.
type ResumePlan struct {
	// Checkpoint is the file the run continues from; RunDir its folder.
	Checkpoint string
	RunDir     string
	// Config is the effective config (RunDir is run_dir).
	Config *Config
	// Meta is what the checkpoint says about itself.
	Meta *CheckpointMeta
	// Changes are the config keys that differ from the checkpoint's
	// config: "epochs: 10 -> 20 (config.yaml)".
	Changes []string
}

// PlanResume resolves a --resume argument (a run dir or a checkpoint file
// in one) and the config the run continues with; overrides are
// "key=value" strings as for LoadConfig.
func PlanResume(arg string, overrides ...string) (*ResumePlan, error) {
	ckpt, dir := arg, filepath.Dir(arg)
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		ckpt, dir = filepath.Join(arg, LastCheckpoint), arg
	} else if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--resume %s: no such run dir or checkpoint", arg)
	}
	meta, err := ReadCheckpointMeta(ckpt)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("--resume: %s has no %s to resume from%s", dir, LastCheckpoint, recoveryHint(dir, ckpt))
		}
		return nil, fmt.Errorf("--resume: %w%s", err, recoveryHint(dir, ckpt))
	}
	stored, err := meta.ParsedConfig()
	if err != nil {
		return nil, fmt.Errorf("--resume: %s: %w", ckpt, err)
	}
	p := &ResumePlan{Checkpoint: ckpt, RunDir: dir, Meta: meta}
	base, baseName := []byte(meta.Config), ckpt+" (stored config)"
	var edited *Config
	cfgPath := filepath.Join(dir, ConfigFile)
	if b, err := os.ReadFile(cfgPath); err == nil {
		c, err := ParseConfig(b, cfgPath)
		if err != nil {
			return nil, fmt.Errorf("--resume: %w (fix it, or delete it to continue with the checkpoint's config)", err)
		}
		c.RunDir = stored.RunDir // where the folder was is not an edit
		if d := ConfigDiff(stored, c); len(d) > 0 {
			base, baseName, edited = b, cfgPath, c
			for _, l := range d {
				p.Changes = append(p.Changes, l+" ("+ConfigFile+")")
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	// the run dir is where the checkpoint is, whatever the stored config
	// says (the folder may have been moved)
	ov := append(append([]string(nil), overrides...), fmt.Sprintf("run_dir=%q", dir))
	cfg, err := ParseConfig(base, baseName, ov...)
	if err != nil {
		return nil, err
	}
	before := stored
	if edited != nil {
		before = edited
	}
	cmp := *cfg
	cmp.RunDir = before.RunDir
	for _, l := range ConfigDiff(before, &cmp) {
		p.Changes = append(p.Changes, l+" (--set)")
	}
	p.Config = cfg
	return p, nil
}

// recoveryHint says what can be done when a checkpoint cannot be read:
// the other checkpoints of the run dir that can, or starting over.
func recoveryHint(dir, bad string) string {
	var ok []string
	for _, name := range []string{LastCheckpoint, BestCheckpoint} {
		p := filepath.Join(dir, name)
		if filepath.Clean(p) == filepath.Clean(bad) {
			continue
		}
		if m, err := ReadCheckpointMeta(p); err == nil {
			ok = append(ok, fmt.Sprintf("fercli train --resume %s (epoch %d, step %d)", p, m.Epoch, m.Step))
		}
	}
	if len(ok) > 0 {
		return "; continue from another checkpoint of the run instead: " + strings.Join(ok, " or ")
	}
	return "; the run dir has no other readable checkpoint: start the run over with --overwrite"
}

// ConfigDiff lists the keys whose values differ between two configs, as
// "key: old -> new" lines sorted by key.
func ConfigDiff(a, b *Config) []string {
	fa, fb := flattenConfig(a), flattenConfig(b)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var out []string
	for _, k := range sortedKeys(keys) {
		va, oka := fa[k]
		vb, okb := fb[k]
		switch {
		case oka && okb && va == vb:
		case !oka:
			out = append(out, fmt.Sprintf("%s: (unset) -> %s", k, vb))
		case !okb:
			out = append(out, fmt.Sprintf("%s: %s -> (unset)", k, va))
		default:
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, va, vb))
		}
	}
	return out
}

// flattenConfig maps every leaf of the config's YAML form to its dotted
// key.
func flattenConfig(c *Config) map[string]string {
	out := map[string]string{}
	b, err := c.YAML()
	if err != nil {
		return out
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return out
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			var items []string
			for _, c := range n.Content {
				items = append(items, c.Value)
			}
			out[prefix] = "[" + strings.Join(items, ", ") + "]"
		default:
			out[prefix] = n.Value
		}
	}
	walk(doc.Content[0], "")
	return out
}
