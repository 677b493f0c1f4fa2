#!/usr/bin/env bash
# Reproduces RMFER (Cho et al., WACV 2024) on one data set: the paper's
# ablation — baseline (L_FER only), w/o ACL (L_pre = L_FER + lambda1 L_IAL)
# and full (L_pre, then + lambda2 L_ACL on the RMset) — with the built-in
# recipe cmd/fercli/configs/rmfer_DATASET.yaml, and on RAF-DB the
# semi-supervised protocol (4,000 labelled images + RMset). Evaluates each
# best checkpoint on the test split and prints overall accuracy (WAR) and
# average accuracy (mean per-class recall, UAR) beside the paper's. The
# paper's tables could not be read (SPEC.md §3.5): its columns are printed
# as "unknown", never invented.
#
#   repro/rmfer.sh DATASET DATA_ROOT RMSET_DIR [extra `fercli train` flags]
#
# DATASET is rafdb, ferplus, affectnet7 or affectnet8; RMSET_DIR is a
# folder `fercli rmset build` wrote. Environment: FERCLI (the fercli
# command, default: bin/fercli if it exists, else fercli on PATH), RUNS
# (default runs/rmfer_DATASET), INIT (HSEmotion's enet_b2_7.pt/enet_b2_8.pt:
# every run starts from it with --init, as the paper does; without it the
# runs start from the timm-initialised EfficientNet-B2), LABELLED (RAF-DB's
# labelled subset, default 4000; 0 skips the semi-supervised run). A run
# that finished is not retrained (its last.ckpt says so); an interrupted
# one resumes with its stored config (the extra flags apply to new runs).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 DATASET DATA_ROOT RMSET_DIR [extra fercli train flags]" >&2
  exit 2
fi
dataset=$1 root=$2 rmset=$3
shift 3
case $dataset in
  rafdb | ferplus | affectnet7 | affectnet8) ;;
  *)
    echo "$0: DATASET $dataset: want rafdb, ferplus, affectnet7 or affectnet8" >&2
    exit 2
    ;;
esac
if [ -z "${FERCLI:-}" ]; then
  if [ -x bin/fercli ]; then FERCLI=bin/fercli; else FERCLI=fercli; fi
fi
runs=${RUNS:-runs/rmfer_$dataset}
labelled=${LABELLED:-4000}
init=()
if [ -n "${INIT:-}" ]; then
  init=(--init "$INIT")
else
  echo "INIT is not set: the runs start from the timm-initialised EfficientNet-B2, not from HSEmotion's weights as the paper's (INIT=enet_b2_8.pt)" >&2
fi

names=(baseline wo_acl full)
if [ "$dataset" = rafdb ] && [ "$labelled" != 0 ]; then
  names+=("semi_$labelled")
fi

# title NAME: the run's row title; flags NAME: its own train flags (own=(...))
title() {
  case $1 in
    baseline) echo "baseline (L_FER)" ;;
    wo_acl) echo "w/o ACL (L_pre)" ;;
    full) echo "full (L_pre + ACL)" ;;
    semi_*) echo "full, $labelled labels" ;;
  esac
}
flags() {
  case $1 in
    baseline) own=(--set model.options.lambda1=0) ;;
    wo_acl) own=() ;;
    full) own=(--rmset "$rmset") ;;
    semi_*) own=(--rmset "$rmset" --set "data.options.labelled=$labelled") ;;
  esac
}

# metric NAME FILE: the value of "NAME": in a `fercli eval --json` file
metric() {
  awk -v k="\"$1\":" '$1 == k { v = $2; sub(/,$/, "", v); print v; exit }' "$2"
}

for name in "${names[@]}"; do
  dir=$runs/$name
  if [ -f "$dir/last.ckpt" ]; then
    "$FERCLI" train --resume "$dir" --progress=false
  else
    flags "$name"
    "$FERCLI" train rmfer "--$dataset" --data-root "$root" --run-dir "$dir" ${init[@]+"${init[@]}"} ${own[@]+"${own[@]}"} "$@"
  fi
  "$FERCLI" eval --ckpt "$dir/best.ckpt" --split test --json --progress=false >"$dir/eval_test.json"
done

pct() { awk -v x="$1" 'BEGIN{printf "%.2f", 100*x}'; }
echo
echo "RMFER on $dataset ($runs): best epoch by val/acc, evaluated on the test split"
printf '%-22s %8s %8s   %14s %14s\n' run overall average "paper overall" "paper average"
for name in "${names[@]}"; do
  j=$runs/$name/eval_test.json
  acc=$(metric acc "$j")
  uar=$(metric uar "$j")
  if [ -z "$acc" ] || [ -z "$uar" ]; then
    echo "$j has no acc/uar metrics" >&2
    exit 1
  fi
  printf '%-22s %8s %8s   %14s %14s\n' "$(title "$name")" "$(pct "$acc")" "$(pct "$uar")" unknown unknown
done
echo "(paper: Cho et al., WACV 2024; its tables could not be read, SPEC.md §3.5. overall = WAR, average = UAR)"
echo "protocol: EfficientNet-B2 (HSEmotion init via INIT), SAM rho 0.05 over Adam lr 2e-6, batch 32, 15 epochs, class-balanced sampler,"
echo "  Resize 260 + RandomChoice{RandomGrayscale, HFlip, ColorJitter}, ACL from epoch K+1 = 6 (UNCONFIRMED), lambda1 = lambda2 = 1 (UNCONFIRMED);"
echo "  every choice and its source: cmd/fercli/configs/rmfer_$dataset.yaml, README \"RMFER\""
