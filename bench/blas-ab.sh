#!/usr/bin/env bash
# bench/blas-ab.sh — issue #12's table: fer's step times with the BLAS
# builds and wait policies of the CPU contention fix, interleaved.
#
#   pthreads  Debian's default OpenBLAS (what fer ran on before the fix),
#             forced in with LD_PRELOAD, which beats fer's DT_RPATH
#   passive   the same with OMP_WAIT_POLICY=PASSIVE (the earlier
#             work-around, still used by the test binaries)
#   openmp    fer as built now: the OpenMP OpenBLAS through its DT_RPATH
#
# For each round and each case (order rotated every round) one fresh
# `fercli bench` process measures STT's forward and train step and
# ResNet-18's and EfficientNet-B2's train step (BLAS is chosen when a
# process starts, so the cases cannot share one). Prints the median per
# case and measurement, and the load.
#
# usage: bench/blas-ab.sh [ROUNDS]   (default 3; ~25 min on an idle 2-core box)
# environment: FERCLI (default bin/fercli), FER_OPENBLAS_PTHREAD_DIR (as in
# bench/compare.sh, which it reuses to find or extract the pthreads build),
# STEPS (timed steps per process and phase, default 2), OUT (JSON lines).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
STEPS=${STEPS:-2}
FERCLI=${FERCLI:-bin/fercli}
OUT=${OUT:-bench/blas-ab-$(date +%Y%m%d-%H%M%S).jsonl}
# reuse compare.sh's lookup/extraction of the pthreads build
eval "$(sed -n '/^pthreads_blas() {/,/^}/p' bench/compare.sh)"
pthreads_blas
P=$FER_OPENBLAS_PTHREAD_DIR
preload="$P/libopenblas.so.0 $P/libblas.so.3"

run() { # case model phase
  local env=()
  case $1 in
  pthreads) env=(LD_PRELOAD="$preload") ;;
  passive) env=(LD_PRELOAD="$preload" OMP_WAIT_POLICY=PASSIVE) ;;
  openmp) env=() ;;
  esac
  local tmp
  tmp=$(mktemp)
  env "${env[@]}" "$FERCLI" bench "$2" --phases "$3" --steps "$STEPS" --warmup 1 --rounds 1 \
    --roofline=false --json "$tmp" >/dev/null 2>&1
  # tag the JSON line with the case
  sed "s/^{/{\"case\":\"$1\",/" "$tmp" >>"$OUT"
  rm -f "$tmp"
}

cases=(pthreads passive openmp)
echo "blas-ab: $(uptime)" >&2
for r in $(seq 1 "$ROUNDS"); do
  for i in 0 1 2; do
    c=${cases[$(((r + i) % 3))]}
    echo "round $r: $c" >&2
    run "$c" stt forward,train
    run "$c" resnet18 train
    run "$c" effnet_b2 train
  done
done
echo "blas-ab: $(uptime)" >&2
/usr/bin/python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    for p in r["phases"]:
        rows.setdefault((r["case"], r["model"], p["phase"]), []).extend(p["fer_times_s"])
cols = [("stt", "forward"), ("stt", "train"), ("resnet18", "train"), ("effnet_b2", "train")]
print("| case | " + " | ".join("%s %s" % c for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for case in ("pthreads", "passive", "openmp"):
    cells = []
    for m, ph in cols:
        t = rows.get((case, m, ph), [])
        cells.append("%.3f s (n=%d)" % (statistics.median(t), len(t)) if t else "")
    print("| %s | %s |" % (case, " | ".join(cells)))
EOF
echo "results: $OUT" >&2
