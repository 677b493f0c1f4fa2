#!/usr/bin/env bash
# Side-by-side fer vs PyTorch benchmark of every model, then a Markdown
# table of the fer/PyTorch ratios. Each model runs in one `fercli bench
# MODEL --compare` process that alternates fer and PyTorch steps, so load
# from other work on the machine slows both alike.
#
# usage: bench/compare.sh [MODEL ...]        (default: all models)
# environment:
#   FERCLI      fercli binary (default: build ./cmd/fercli into a temp dir)
#   OUT         JSON-lines results file (default bench/results-<date>.jsonl)
#   STEPS       timed steps per phase (default 10); WARMUP (3); ROUNDS (5)
#   THREADS     libtorch threads for both frameworks (default: all cores)
#   WORKERS     data-pipeline workers for both (default: all cores)
#   WAIT_LOAD   if set (e.g. 1.0), wait until the 1-minute load average is
#               below it, polling every 2 minutes for up to 40 minutes
#   EXTRA       more flags for every run (e.g. "--amp")
set -euo pipefail
cd "$(dirname "$0")/.."

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(resnet18 resnet50 vgg16 ir50 effnet_b2 stt smallcnn)
fi
OUT=${OUT:-bench/results-$(date +%Y%m%d-%H%M%S).jsonl}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-0}
WORKERS=${WORKERS:-0}

if [ -z "${FERCLI:-}" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  FERCLI=$tmp/fercli
  go build -o "$FERCLI" ./cmd/fercli
fi

if [ -n "${WAIT_LOAD:-}" ]; then
  for i in $(seq 0 20); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$WAIT_LOAD" 'BEGIN { exit !(l < m) }'; then
      break
    fi
    if [ "$i" -eq 20 ]; then
      echo "compare: load average still $load after 40 minutes; measuring anyway" >&2
      break
    fi
    echo "compare: load average $load >= $WAIT_LOAD, waiting 2 minutes" >&2
    sleep 120
  done
fi

echo "compare: $(uptime)" >&2
for m in "${models[@]}"; do
  echo "=== $m" >&2
  # shellcheck disable=SC2086
  "$FERCLI" --threads "$THREADS" bench "$m" --compare --steps "$STEPS" --warmup "$WARMUP" \
    --rounds "$ROUNDS" --workers "$WORKERS" --json "$OUT" ${EXTRA:-}
  echo
done
echo "compare: $(uptime)" >&2
echo "results: $OUT"
"$FERCLI" bench --summary "$OUT"
