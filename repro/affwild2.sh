#!/usr/bin/env bash
# Reproduces the five Aff-Wild2 multi-task models of Kollias & Zafeiriou
# (BMVC 2019): trains MT-VGG, MT-VGG-RNN, A/V-MT-VGG-RNN, MT-ArcRes and
# MT-ArcVGG with their built-in configs (cmd/fercli/configs/<model>_affwild2.yaml),
# evaluates each best checkpoint on the Validation_Set and prints CCC
# (valence, arousal, mean), expression F1/accuracy and AU F1 per model
# beside the paper's columns. The paper's numbers could not be read
# (SPEC.md §1.2): its columns are printed as "unknown", never invented.
#
#   repro/affwild2.sh /data/Aff-Wild2 [extra `fercli train` flags, e.g. --set epochs=5]
#
# Environment: FERCLI (the fercli command, default: bin/fercli if it exists,
# else fercli on PATH), MODELS (default: the five; A/V needs
# <root>/videos/), RUNS (default runs/affwild2). A model whose run finished
# is not retrained (its last.ckpt says so); an interrupted one resumes.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 AFFWILD2_ROOT [extra fercli train flags]" >&2
  exit 2
fi
root=$1
shift
if [ -z "${FERCLI:-}" ]; then
  if [ -x bin/fercli ]; then FERCLI=bin/fercli; else FERCLI=fercli; fi
fi
models=${MODELS:-mt-vgg mt-vgg-rnn av-mt-vgg-rnn mt-arcres mt-arcvgg}
runs=${RUNS:-runs/affwild2}

# metric NAME FILE: the value of "NAME": in a `fercli eval --json` file
metric() {
  awk -v k="\"$1\":" '$1 == k { v = $2; sub(/,$/, "", v); print v; exit }' "$2"
}

for m in $models; do
  dir=$runs/$m
  if [ -f "$dir/last.ckpt" ]; then
    "$FERCLI" train --resume "$dir" "$@"
  else
    "$FERCLI" train "$m" --affwild2 --data-root "$root" --run-dir "$dir" "$@"
  fi
  "$FERCLI" eval --ckpt "$dir/best.ckpt" --split val --json --progress=false >"$dir/eval_val.json"
done

echo
echo "Aff-Wild2 multi-task models ($runs), Validation_Set, best epoch by val/mtl_score"
printf '%-14s %8s %8s %8s %8s %8s %8s %8s\n' model CCC-V CCC-A CCC EXPR-F1 EXPR-acc AU-F1 MTL
for m in $models; do
  j=$runs/$m/eval_val.json
  row=$(printf '%-14s' "$m")
  for k in ccc_v ccc_a ccc f1 acc au_f1 mtl_score; do
    v=$(metric "$k" "$j")
    if [ -z "$v" ]; then
      row="$row $(printf '%8s' -)"
    else
      row="$row $(printf '%8.3f' "$v")"
    fi
  done
  echo "$row"
done
printf '%-14s %8s %8s %8s %8s %8s %8s %8s\n' paper unknown unknown unknown unknown unknown unknown unknown
echo "(paper: Kollias & Zafeiriou, BMVC 2019; its tables could not be read, SPEC.md §1.2)"
