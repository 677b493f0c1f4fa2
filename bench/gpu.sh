#!/usr/bin/env bash
# bench/gpu.sh — issue #12 part 3, the CUDA measurements, on a machine with
# an NVIDIA GPU and a CUDA PyTorch >= 2.0 (whose libtorch fer builds on),
# with no Go, no network and no apt (this workplace's nvidia-h200). It has
# not run yet: no session so far was lent a GPU.
#
# Before, HERE:   bench/gpu-pack.sh        (writes .gpu/, ~30 MB)
# On the GPU machine, from the repository root, e.g. with the device tool
# (15 minutes of device time in all; the machine stays warm 30 s after a
# call, so issue the second call at once):
#   run(carry=[".gpu"], timeout_s=600, command="bench/gpu.sh build test")
#   run(carry=[".gpu"], timeout_s=600, command="bench/gpu.sh bench")
# Everything it measures lands in $OUT (the device tool's result folder;
# default bench/gpu-out), 8 files (the device tool returns at most 8):
# gpu.log (nvidia-smi, progress, errors), env.txt, setup.log, test.log,
# gpu.jsonl, attention-sdpa.jsonl, attention-matmul.jsonl, summary.md. Copy summary.md's tables into
# bench/RESULTS.md ("CUDA").
#
# Stages (any subset, in this order; each is idempotent):
#   build  unpack the toolchain and modules, patch gotch for this
#          machine's libtorch (LIBTORCH = the torch package of $PYTHON),
#          build bin/fercli, print `fercli env`
#   test   go test ./... (the CUDA tests run: a CUDA device is visible)
#   bench  for every model of `fercli bench --list`: fer vs PyTorch on the
#          GPU, forward and train step, bf16 and fp16 autocast, with step
#          times, images/s, GPU memory and MFU (achieved FLOP/s over the
#          GPU's dense bf16 peak, bench.GPUSpecTFLOPS); float32 for
#          resnet18; SDPA vs matmul attention for $ATTN_MODELS
# Environment: PYTHON (default python3: the one with torch), OUT, STEPS
# (default 20), ATTN_MODELS (default "stt"; add qcs when it exists),
# MODELS (default: all), TEST_TIMEOUT (default 6m), LIBTORCH (default:
# $PYTHON's torch package), DEVICE (default cuda; DEVICE=cpu
# LIBTORCH=system runs the whole script on a CPU machine, the dry run
# that checks it: see bench/RESULTS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
OUT=${OUT:-$root/bench/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
STEPS=${STEPS:-20}
ATTN_MODELS=${ATTN_MODELS:-stt}
W=${GPU_WORK:-/tmp/fer-gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$W"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test bench)
say() { echo "gpu.sh: $*" | tee -a "$OUT/gpu.log" >&2; }

# vendor/ (the carried modules, gotch patched) exists only while this
# script runs: left in a checkout it would switch every later go build
# there to vendor mode.
[ -e vendor ] && { say "vendor/ exists already: run this script on a copy of the repository (the device tool's, or git archive HEAD | tar -x -C DIR)"; exit 1; }
trap 'rm -rf "$root/vendor"' EXIT

# ensure_vendor unpacks the carried modules and puts the patched gotch
# (made by the build stage in $W/fercache) in place of the vendored one.
ensure_vendor() {
  [ -d vendor ] || tar -xJf .gpu/vendor.tar.xz || return 1
  local patched
  patched=$(ls -d "$W"/fercache/gotch-v0.9.1/libtorch-* 2>/dev/null | head -1)
  if [ -n "$patched" ] && [ -e "$patched/libtch/fer_patch.go" ]; then
    cp -r "$patched"/. vendor/github.com/sugarme/gotch/ || return 1
  fi
}

# Toolchain and cgo environment: the carried Go, vendored modules, the
# carried libjpeg.
export GOROOT=$W/go PATH=$W/go/bin:$PATH GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=vendor \
  GOPROXY=off GOSUMDB=off GOCACHE=$W/gocache GOPATH=$W/gopath
jpeg=$root/.gpu/jpeg
export CGO_CFLAGS="-I$jpeg/usr/include -I$jpeg/usr/include/x86_64-linux-gnu ${CGO_CFLAGS:-}"
export CGO_LDFLAGS="-L$jpeg/usr/lib/x86_64-linux-gnu ${CGO_LDFLAGS:-}"
export LD_LIBRARY_PATH=$jpeg/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

build() {
  [ -e .gpu/go.tar.xz ] || { say "no .gpu/: run bench/gpu-pack.sh here first and carry .gpu"; return 1; }
  command -v g++ >/dev/null || { say "no g++ on this machine: the libtorch wrapper cannot be built"; return 1; }
  if [ "$DEVICE" = cuda ]; then
    nvidia-smi >>"$OUT/gpu.log" 2>&1 || say "nvidia-smi failed"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))' | tee -a "$OUT/gpu.log" ||
      { say "$PY has no CUDA torch"; return 1; }
  fi
  if [ ! -x "$W/go/bin/go" ]; then
    mkdir -p "$W/go" && tar -xJf .gpu/go.tar.xz -C "$W/go" || return 1
  fi
  ensure_vendor || return 1
  local lt
  lt=${LIBTORCH:-$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')} || return 1
  say "patching gotch for the libtorch in $lt"
  # the patched copy replaces the vendored gotch (vendor mode has no
  # replace directive to point elsewhere)
  if [ ! -e vendor/github.com/sugarme/gotch/libtch/fer_patch.go ]; then
    go run ./internal/gotchpatch -libtorch "$lt" -gotch vendor/github.com/sugarme/gotch -gotch-version v0.9.1 \
      -out "$W/fercache" 2>&1 | tee "$OUT/setup.log" | tail -5 || return 1
    ensure_vendor || return 1
    [ -e vendor/github.com/sugarme/gotch/libtch/fer_patch.go ] || { say "gotchpatch wrote no patched copy"; return 1; }
  fi
  say "building bin/fercli (the wrapper's first cgo build takes minutes)"
  local t0=$SECONDS
  go build -o bin/fercli ./cmd/fercli 2>&1 | tee -a "$OUT/setup.log" || return 1
  [ -x bin/fercli ] || return 1
  say "built in $((SECONDS - t0)) s"
  bin/fercli env --stubs >"$OUT/env.txt" 2>&1
  head -20 "$OUT/env.txt"
}

test_() {
  ensure_vendor || { say "no modules: run the build stage first"; return 1; }
  say "go test ./... (timeout ${TEST_TIMEOUT:-6m})"
  local t0=$SECONDS
  go test -timeout "${TEST_TIMEOUT:-6m}" ./... >"$OUT/test.log" 2>&1
  local rc=$?
  say "go test exit $rc in $((SECONDS - t0)) s"
  grep -E '^(ok|FAIL|---|panic)' "$OUT/test.log" | head -60
}

bench() {
  [ -x bin/fercli ] || { say "no bin/fercli: run the build stage first"; return 1; }
  local models
  models=${MODELS:-$(bin/fercli bench --list)}
  local flags=(--compare --python "$PY" --phases forward,train --steps "$STEPS" --rounds 2 --warmup 5 --json "$OUT/gpu.jsonl")
  local dtypes="bfloat16 float16"
  [ "$DEVICE" = cpu ] && dtypes=bfloat16 # CPU autocast is bfloat16 only
  for m in $models; do
    for dt in $dtypes; do
      say "$m, $dt autocast"
      bin/fercli --device "$DEVICE" bench "$m" "${flags[@]}" --amp --amp-dtype "$dt" 2>>"$OUT/gpu.log" ||
        say "$m $dt failed (see gpu.log)"
    done
  done
  say "resnet18, float32"
  bin/fercli --device "$DEVICE" bench resnet18 "${flags[@]}" 2>>"$OUT/gpu.log" || say "resnet18 float32 failed"
  for m in $ATTN_MODELS; do
    for a in sdpa matmul; do
      say "$m, attention $a (fer only), bf16"
      bin/fercli --device "$DEVICE" bench "$m" --attention "$a" --amp --amp-dtype bfloat16 --phases forward,train --steps "$STEPS" \
        --rounds 2 --warmup 5 --json "$OUT/attention-$a.jsonl" 2>>"$OUT/gpu.log" || say "$m attention $a failed"
    done
  done
  {
    echo "## fer vs PyTorch on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) ($DEVICE)"
    bin/fercli bench --summary "$OUT/gpu.jsonl"
    echo
    for a in sdpa matmul; do
      echo "## attention: $a (fer, bf16)"
      [ -s "$OUT/attention-$a.jsonl" ] && bin/fercli bench --summary "$OUT/attention-$a.jsonl"
      echo
    done
  } >"$OUT/summary.md" 2>&1
  cat "$OUT/summary.md"
}

for s in "${stages[@]}"; do
  case $s in
  build) build || { say "build failed"; exit 1; } ;;
  test) test_ ;;
  bench) bench ;;
  *) say "unknown stage $s: want build, test, bench"; exit 2 ;;
  esac
done
