#!/usr/bin/env bash
# Draws the README figures into docs/figures/ (tsne.png, mds.png,
# confusion.png, curves.png, gradcam.png) from a `fercli demo` run:
#
#   plots/examples/make_readme_figures.sh [DEMO_RUN_DIR [OUT_DIR]]
#
# DEMO_RUN_DIR defaults to runs/demo and is created with `fercli demo` when
# it holds no best.ckpt yet (a few minutes on a CPU). The drawing is done by
# TestREADMEFigures in cmd/fercli (through the `fercli plot` commands, on
# the features of the demo's test split), so it needs the Go toolchain and
# the gotch set-up of the README.
set -euo pipefail
cd "$(dirname "$0")/../.."
demo=${1:-runs/demo}
out=${2:-docs/figures}
if [ ! -f "$demo/best.ckpt" ]; then
	go run ./cmd/fercli demo --run-dir "$demo"
fi
mkdir -p "$out"
demo=$(cd "$demo" && pwd)
out=$(cd "$out" && pwd)
go test ./cmd/fercli -run '^TestREADMEFigures$' -count=1 -v -args -figures.demo "$demo" -figures.out "$out"
ls -l "$out"
