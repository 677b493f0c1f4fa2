package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:  "env",
		Usage: "print libtorch version, CUDA devices, threads, the BLAS in use and its threading, gotch version and the stubbed wrapper functions",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stubs", Usage: "list every stubbed function, not just the count"},
		},
		Action: func(c *cli.Context) error {
			w := os.Stdout
			fmt.Fprintf(w, "fer runtime\n")
			fmt.Fprintf(w, "  libtorch:      %s (%s build, libraries in %s)\n", fer.LibtorchVersion(), map[bool]string{true: "CUDA", false: "CPU"}[fer.LibtorchCUDA()], fer.LibtorchDir())
			fmt.Fprintf(w, "  gotch:         %s (patched by setup-gotch.sh)\n", fer.GotchVersion())
			fmt.Fprintf(w, "  go:            %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(w, "  threads:       %d (cores: %d)\n", rt.Threads, runtime.NumCPU())
			fmt.Fprintf(w, "  omp wait:      %s\n", fer.OMPWaitPolicy())
			blas := fer.BLAS()
			fmt.Fprintf(w, "  blas:          %s\n", blas)
			if len(blas.Loaded) > 0 {
				fmt.Fprintf(w, "                 loaded: %s\n", strings.Join(blas.Loaded, ", "))
			}
			if p := blas.Problem(); p != "" {
				fmt.Fprintf(w, "  warning:       %s\n", p)
			}
			n := fer.CUDADeviceCount()
			fmt.Fprintf(w, "  cuda:          available=%v devices=%d\n", fer.CUDAAvailable(), n)
			for i, name := range fer.CUDADeviceNames() {
				fmt.Fprintf(w, "    cuda:%d       %s\n", i, name)
			}
			dev := "cpu"
			if rt.Device != gotch.CPU {
				dev = fmt.Sprintf("cuda:%d", rt.Device.Value)
			}
			fmt.Fprintf(w, "  device:        %s\n", dev)
			stubs := fer.StubbedFunctions()
			fmt.Fprintf(w, "  stubbed:       %d generated wrapper functions do not compile against this libtorch and return an error if called\n", len(stubs))
			if c.Bool("stubs") {
				for _, s := range stubs {
					fmt.Fprintf(w, "    %s\n", s)
				}
			} else if len(stubs) > 0 {
				show := stubs
				if len(show) > 6 {
					show = show[:6]
				}
				fmt.Fprintf(w, "                 %s ... (--stubs lists all)\n", strings.Join(show, ", "))
			}
			return nil
		},
	})
}
