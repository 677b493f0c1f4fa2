#!/usr/bin/env bash
# Reproduces STT (Ma, Sun & Li 2022) on DFEW: trains the 5 folds with the
# built-in config (cmd/fercli/configs/stt_dfew.yaml), evaluates each fold's
# best checkpoint on its test fold and prints per-fold and mean UAR/WAR
# beside the paper's. See repro/README.md.
#
#   repro/stt_dfew.sh /data/DFEW [extra `fercli train` flags, e.g. --set epochs=50]
#
# Environment: FERCLI (the fercli command, default: bin/fercli if it exists,
# else fercli on PATH), FOLDS (default "1 2 3 4 5"), RUNS (default
# runs/stt_dfew). A fold whose run finished is not retrained (its
# last.ckpt says so); an interrupted one resumes.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DFEW_ROOT [extra fercli train flags]" >&2
  exit 2
fi
root=$1
shift
if [ -z "${FERCLI:-}" ]; then
  if [ -x bin/fercli ]; then FERCLI=bin/fercli; else FERCLI=fercli; fi
fi
folds=${FOLDS:-1 2 3 4 5}
runs=${RUNS:-runs/stt_dfew}

# metric NAME FILE: the value of "NAME": in a `fercli eval --json` file
metric() {
  awk -v k="\"$1\":" '$1 == k { v = $2; sub(/,$/, "", v); print v; exit }' "$2"
}

for f in $folds; do
  dir=$runs/fold$f
  if [ -f "$dir/last.ckpt" ]; then
    "$FERCLI" train --resume "$dir" "$@"
  else
    "$FERCLI" train stt --dfew --data-root "$root" --fold "$f" --run-dir "$dir" "$@"
  fi
  "$FERCLI" eval --ckpt "$dir/best.ckpt" --split test --json --progress=false >"$dir/eval_test.json"
done

echo
echo "STT on DFEW ($runs), best epoch per fold selected on the test fold"
printf '%-6s %8s %8s\n' fold UAR WAR
n=0 su=0 sw=0
for f in $folds; do
  j=$runs/fold$f/eval_test.json
  u=$(metric uar "$j")
  w=$(metric war "$j")
  if [ -z "$u" ] || [ -z "$w" ]; then
    echo "$j has no uar/war metrics" >&2
    exit 1
  fi
  printf '%-6s %8.2f %8.2f\n' "$f" "$(awk -v x="$u" 'BEGIN{print 100*x}')" "$(awk -v x="$w" 'BEGIN{print 100*x}')"
  n=$((n + 1))
  su=$(awk -v a="$su" -v b="$u" 'BEGIN{print a+b}')
  sw=$(awk -v a="$sw" -v b="$w" 'BEGIN{print a+b}')
done
printf '%-6s %8.2f %8.2f   (%d folds)\n' mean "$(awk -v s="$su" -v n="$n" 'BEGIN{print 100*s/n}')" "$(awk -v s="$sw" -v n="$n" 'BEGIN{print 100*s/n}')" "$n"
printf '%-6s %8.2f %8.2f   (STT paper, 5-fold mean)\n' paper 54.58 66.65
