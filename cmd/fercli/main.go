// Command fercli trains, evaluates, compares and plots the FER systems that
// fer implements. Run `fercli --help` for the command list.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/fer-research/fer/fer"
	"github.com/urfave/cli/v2"
)

// commands is filled by the init functions of the files in this package,
// one file per command family (env.go, demo.go, train.go, plot.go, ...).
var commands []*cli.Command

func register(c ...*cli.Command) { commands = append(commands, c...) }

// globalFlags come before the command: fercli --device cpu train ...
var globalFlags = []cli.Flag{
	&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto, cpu, cuda or cuda:N", EnvVars: []string{"FER_DEVICE"}},
	&cli.IntFlag{Name: "threads", Value: 0, Usage: "libtorch intra-op threads (0 = one per core)", EnvVars: []string{"FER_THREADS"}},
	&cli.Int64Flag{Name: "seed", Value: 0, Usage: "random seed for libtorch and data order"},
}

// rt is the libtorch runtime chosen from the global flags; set in Before.
var rt *fer.Runtime

func main() {
	// on a busy machine libgomp's spinning threads cost 3-15x: re-exec with
	// OMP_WAIT_POLICY=PASSIVE unless the user chose a policy
	fer.AdaptOMPWait()
	// libtorch's grad mode is per OS thread: keep every torch call on the
	// main goroutine's thread (GOTCH.md, "Lock the OS thread").
	runtime.LockOSThread()
	app := &cli.App{
		Name:  "fercli",
		Usage: "facial expression recognition research on libtorch",
		Flags: globalFlags,
		Before: func(c *cli.Context) error {
			var err error
			rt, err = fer.Setup(fer.RuntimeOptions{
				Threads: workerThreads(c),
				Device:  c.String("device"),
				Seed:    c.Int64("seed"),
			})
			if err == nil && c.Args().First() != "env" { // env prints them itself
				for _, w := range rt.Warnings {
					fmt.Fprintln(os.Stderr, "fercli: warning:", w)
				}
			}
			return err
		},
		Commands: commands,
	}
	if err := runApp(app, flagsFirstArgs(os.Args, globalFlags, commands)); err != nil {
		fmt.Fprintln(os.Stderr, "fercli:", err)
		os.Exit(1)
	}
}

// runApp runs the command; a libtorch failure that no command turned into
// an error on its way up still ends as one error line, never as a crash.
func runApp(app *cli.App, args []string) (err error) {
	defer fer.CatchTorch(&err, "libtorch")
	return app.Run(args)
}
