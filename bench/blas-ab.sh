#!/usr/bin/env bash
# bench/blas-ab.sh — issue #12's table: fer's step times with the BLAS
# builds and wait policies of the CPU contention fix, interleaved.
#
#   pthreads     Debian's default OpenBLAS (what fer ran on before the
#                fix), forced in with LD_PRELOAD, which beats fer's
#                DT_RPATH; libgomp's default spinning (GOMP_SPINCOUNT=300000
#                set, so that fer does not adapt it)
#   passive      the same with OMP_WAIT_POLICY=PASSIVE (the earlier
#                work-around, still used by the test binaries)
#   openmp-spin  the OpenMP OpenBLAS through fer's DT_RPATH, libgomp's
#                default spinning
#   openmp       fer as it is now: the OpenMP OpenBLAS, and PASSIVE when
#                the machine is busy at start (fer.AdaptOMPWait)
#   omp-passive  the OpenMP OpenBLAS with OMP_WAIT_POLICY=PASSIVE
#   spinN        the OpenMP OpenBLAS with GOMP_SPINCOUNT=N
#
# For each round and each case (order rotated every round) one fresh
# `fercli bench` process measures STT's forward and train step and
# ResNet-18's and EfficientNet-B2's train step (BLAS is chosen when a
# process starts, so the cases cannot share one). Prints the median per
# case and measurement, and the load.
#
# usage: bench/blas-ab.sh [ROUNDS]   (default 3; ~25 min on an idle 2-core box)
# CASES (default "pthreads passive openmp-spin openmp") picks the cases, MEASURE
# (default "stt:forward,train resnet18:train effnet_b2:train") the runs.
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
  pthreads) env=(LD_PRELOAD="$preload" GOMP_SPINCOUNT=300000) ;;
  passive) env=(LD_PRELOAD="$preload" OMP_WAIT_POLICY=PASSIVE) ;;
  openmp-spin) env=(GOMP_SPINCOUNT=300000) ;;
  openmp) env=() ;;
  omp-passive) env=(OMP_WAIT_POLICY=PASSIVE) ;;
  spin*) env=(GOMP_SPINCOUNT="${1#spin}") ;;
  *) echo "blas-ab: unknown case $1" >&2; exit 2 ;;
  esac
  local tmp
  tmp=$(mktemp)
  env "${env[@]}" "$FERCLI" bench "$2" --phases "$3" --steps "$STEPS" --warmup 1 --rounds 1 \
    --roofline=false --json "$tmp" >/dev/null 2>&1
  # tag the JSON line with the case
  sed "s/^{/{\"case\":\"$1\",/" "$tmp" >>"$OUT"
  rm -f "$tmp"
}

read -r -a cases <<<"${CASES:-pthreads passive openmp-spin openmp}"
read -r -a measure <<<"${MEASURE:-stt:forward,train resnet18:train effnet_b2:train}"
n=${#cases[@]}
echo "blas-ab: $(uptime)" >&2
for r in $(seq 1 "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    c=${cases[$(((r + i) % n))]}
    echo "round $r: $c" >&2
    for m in "${measure[@]}"; do
      run "$c" "${m%%:*}" "${m#*:}"
    done
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
cols = sorted({(m, ph) for (_, m, ph) in rows}, key=lambda c: (c[0] != "stt", c))
cases = []
for (c, _, _) in rows:
    if c not in cases:
        cases.append(c)
print("| case | " + " | ".join("%s %s" % c for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for case in cases:
    cells = []
    for m, ph in cols:
        t = rows.get((case, m, ph), [])
        cells.append("%.3f s (n=%d)" % (statistics.median(t), len(t)) if t else "")
    print("| %s | %s |" % (case, " | ".join(cells)))
EOF
echo "results: $OUT" >&2
