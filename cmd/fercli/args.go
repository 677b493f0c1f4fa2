package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirstArgs lets flags follow positional arguments on every command,
// as the README writes them (`fercli train stt --dfew --fold 1`, `fercli
// plot tsne feats.safetensors -o tsne.png`): urfave/cli v2 stops reading
// flags at a command's first argument. It finds the command (and
// subcommand) the arguments name and moves that command's flags, with
// their values, before its positional arguments (flagsFirst). When help is
// asked for (-h, --help) the positional arguments are dropped, so
// `fercli train stt --help` shows train's help instead of looking for a
// help topic "stt". Commands that parse their own arguments
// (SkipFlagParsing, e.g. bench) are left alone.
func flagsFirstArgs(args []string, global []cli.Flag, commands []*cli.Command) []string {
	if len(args) < 2 {
		return args
	}
	i := skipFlags(args, 1, global)
	out := slices.Clone(args[:i])
	cmds := commands
	for i < len(args) {
		cmd := findCommand(cmds, args[i])
		if cmd == nil {
			return args // unknown command or "help": urfave reports it
		}
		out = append(out, args[i])
		i++
		if cmd.SkipFlagParsing {
			return append(out, args[i:]...)
		}
		if len(cmd.Subcommands) > 0 {
			// flags of the parent come before the subcommand's name
			j := skipFlags(args, i, cmd.Flags)
			out = append(out, args[i:j]...)
			i = j
			if i < len(args) && findCommand(cmd.Subcommands, args[i]) != nil {
				cmds = cmd.Subcommands
				continue
			}
		}
		rest := flagsFirst(args[i:], cmd.Flags)
		if wantsHelp(rest) {
			rest = slices.DeleteFunc(rest, func(a string) bool { return !strings.HasPrefix(a, "-") })
		}
		return append(out, rest...)
	}
	return out
}

// skipFlags returns the index of the first argument at or after i that is
// not a flag of flags (or a flag's value).
func skipFlags(args []string, i int, flags []cli.Flag) int {
	isBool := boolFlags(flags)
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || len(a) < 2 {
			return i
		}
		i++
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && !isBool[name] {
			i++ // the value
		}
	}
	return min(i, len(args))
}

// boolFlags are the names of the flags that take no value, -h and --help
// included.
func boolFlags(flags []cli.Flag) map[string]bool {
	isBool := map[string]bool{"help": true, "h": true}
	for _, f := range flags {
		if _, ok := f.(*cli.BoolFlag); ok {
			for _, n := range f.Names() {
				isBool[n] = true
			}
		}
	}
	return isBool
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}
