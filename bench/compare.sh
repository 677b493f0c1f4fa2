#!/usr/bin/env bash
# Re-measures bench/RESULTS.md's CPU tables in one command: for every model
# of `fercli bench --list` (or the ones named), fer against PyTorch twice,
#   pthreads  PyTorch as Debian ships it (python3-torch pulls in the pthreads
#             OpenBLAS, libopenblas0-pthread): what its users get;
#   openmp    the same PyTorch on the OpenMP OpenBLAS that fer loads: the
#             fair comparison of the two frameworks,
# all three interleaved step by step in one `fercli bench MODEL --compare`
# (background load hits every side alike), with FLOP counts and the
# machine's matmul peak (roofline); then the Markdown tables.
#
# The pthreads build is used through LD_LIBRARY_PATH only: when Debian's
# libopenblas0-pthread is not installed, it is extracted (apt-get download
# + dpkg-deb -x, same version as libopenblas0-openmp) into the fer cache,
# so the machine's BLAS alternative is never changed.
#
# usage: bench/compare.sh [MODEL ...]        (default: every model)
# environment:
#   FERCLI      fercli binary (default: build ./cmd/fercli into a temp dir)
#   OUT         JSON-lines results file (default bench/results-<date>.jsonl)
#   STEPS       timed steps per phase (default 10); WARMUP (3); ROUNDS (5)
#   THREADS     libtorch threads for both frameworks (default: all cores)
#   WORKERS     data-pipeline workers for both (default: all cores)
#   TORCH_BLAS  PyTorch sides (default "pthreads,openmp"; "system" = the
#               machine's libblas.so.3 as is)
#   WAIT_LOAD   if set (e.g. 1.0), wait until the 1-minute load average is
#               below it, polling every 2 minutes for up to 40 minutes
#   EXTRA       more flags for every run (e.g. "--amp")
#   FER_OPENBLAS_PTHREAD_DIR  a directory with the pthreads libblas.so.3
#               (skips the lookup and the extraction)
#   OMP_WAIT_POLICY / GOMP_SPINCOUNT  libgomp's waiting, both sides (the
#               PyTorch processes inherit fercli's environment). Unset,
#               compare.sh sets GOMP_SPINCOUNT=300000, libgomp's own default,
#               so that every model is measured with the same waiting whatever
#               fer.AdaptOMPWait would see at its start;
#               OMP_WAIT_POLICY=PASSIVE measures the busy-machine setting.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results-$(date +%Y%m%d-%H%M%S).jsonl}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-0}
WORKERS=${WORKERS:-0}
TORCH_BLAS=${TORCH_BLAS:-pthreads,openmp}
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then
  export GOMP_SPINCOUNT=300000
fi

if [ -z "${FERCLI:-}" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  FERCLI=$tmp/fercli
  go build -o "$FERCLI" ./cmd/fercli
fi

# pthreads_blas sets FER_OPENBLAS_PTHREAD_DIR to Debian's pthreads OpenBLAS,
# installed or extracted into the cache.
pthreads_blas() {
  [ -n "${FER_OPENBLAS_PTHREAD_DIR:-}" ] && return 0
  local arch ver cache dl
  arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  if [ -e "/usr/lib/$arch/openblas-pthread/libblas.so.3" ]; then
    export FER_OPENBLAS_PTHREAD_DIR=/usr/lib/$arch/openblas-pthread
    return 0
  fi
  ver=$(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null) ||
    { echo "compare: libopenblas0-openmp is not installed: run ./setup-gotch.sh" >&2; exit 1; }
  cache=${FER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fer}/openblas-pthread-$ver
  if [ ! -e "$cache/usr/lib/$arch/openblas-pthread/libblas.so.3" ]; then
    echo "compare: extracting libopenblas0-pthread $ver into $cache (not installed: the machine's BLAS stays as it is)" >&2
    dl=$(mktemp -d)
    (cd "$dl" && apt-get download -q "libopenblas0-pthread=$ver" >&2)
    mkdir -p "$cache"
    dpkg-deb -x "$dl"/libopenblas0-pthread_*.deb "$cache"
    rm -rf "$dl"
  fi
  export FER_OPENBLAS_PTHREAD_DIR=$cache/usr/lib/$arch/openblas-pthread
}
case ",$TORCH_BLAS," in *,pthreads,*|*,pthread,*) pthreads_blas ;; esac

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  mapfile -t models < <("$FERCLI" bench --list)
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

start=$(date +%s)
echo "compare: $(uptime)" >&2
"$FERCLI" env >&2
for m in "${models[@]}"; do
  echo "=== $m" >&2
  # shellcheck disable=SC2086
  "$FERCLI" --threads "$THREADS" bench "$m" --compare --torch-blas "$TORCH_BLAS" --steps "$STEPS" --warmup "$WARMUP" \
    --rounds "$ROUNDS" --workers "$WORKERS" --json "$OUT" ${EXTRA:-}
  echo
done
echo "compare: $(uptime)" >&2
echo "compare: ${#models[@]} models in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s" >&2
echo "results: $OUT"
"$FERCLI" bench --summary "$OUT"
