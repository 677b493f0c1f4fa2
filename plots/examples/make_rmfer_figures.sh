#!/usr/bin/env bash
# Draws the RMFER README figures into docs/figures/ from a real two-phase
# run (a few minutes on 2 CPU cores):
#
#   plots/examples/make_rmfer_figures.sh [OUT_DIR]
#
# 1. an RMset: `fercli rmset build` on a reaction-mashup-like clip cut from
#    Debian's Megamind.avi (the trigger film top left, three reactors, 3 s:
#    the README's ffmpeg line, longer, so the anchor range [31, frames - 31]
#    exists);
# 2. `fercli train rmfer` on the synthetic benchmark's faces (data set
#    synth, 64x64) with that RMset as its aux stream: L_pre for 3 epochs,
#    then + L_ACL (SAM over Adam, lr 1e-3, a 0.5-scaled EfficientNet,
#    10 + 10 candidates per anchor);
# 3. rmfer_fig4.png: `fercli rmset attention` + `fercli plot attention`;
#    rmfer_fig5.png: `fercli eval --dump-features` + `fercli plot mds`.
#
# The figures show the pipeline on stand-in data, not the paper's results.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-docs/figures}
[ -x bin/fercli ] || go build -o bin/fercli ./cmd/fercli
video=$(dpkg -L opencv-doc | grep '/Megamind.avi$')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
ffmpeg -loglevel error -y -i "$video" -filter_complex "[0:v]split=4[s0][s1][s2][s3];[s0]trim=start=7:duration=3,setpts=PTS-STARTPTS,scale=360:264[t];[s1]trim=start=0.5:duration=3,setpts=PTS-STARTPTS,crop=360:264:100:130[a];[s2]trim=start=1:duration=3,setpts=PTS-STARTPTS,crop=360:264:100:130,hflip[b];[s3]trim=start=1.5:duration=3,setpts=PTS-STARTPTS,crop=360:264:100:130[c];[t][a][b][c]xstack=inputs=4:layout=0_0|360_0|0_264|360_264[o]" -map "[o]" -c:v mpeg4 -q:v 3 "$tmp/mashup01.avi"
bin/fercli rmset build --out "$tmp/rmset" --remove 0,0,360,264 --progress=false "$tmp/mashup01.avi"
bin/fercli rmset info "$tmp/rmset"
aug='{random_choice: [random_grayscale, hflip, {color_jitter: [0.25, 0.25, 0.25, 0.125]}]}'
bin/fercli --device cpu train --model rmfer --data synth --progress=false \
	--set 'data.options={train_n: 700, val_n: 140, test_n: 140, size: 64, crop: 0}' \
	--set model.options.lambda1=1 --set model.options.channel_multiplier=0.5 --set model.options.depth_multiplier=0.5 \
	--optimizer adam --lr 0.001 --set optimizer.sam_rho=0.05 --epochs 8 --batch-size 32 --best-metric val/acc \
	--rmset "$tmp/rmset" --set aux.start_epoch=3 --set aux.batch_size=2 \
	--set "aux.data.options={n_positive: 10, n_negative: 10, train_transforms: [{resize: [64, 64]}, $aug, to_tensor, {normalize: imagenet}], test_transforms: [{resize: [64, 64]}, to_tensor, {normalize: imagenet}]}" \
	--run-dir "$tmp/run"
bin/fercli --device cpu rmset attention --ckpt "$tmp/run/last.ckpt" --groups 4 -o "$tmp/att.json"
bin/fercli plot attention -o "$out/rmfer_fig4.png" --title "rmfer after ACL (K = 3, 8 epochs), RMset from a Megamind mashup" "$tmp/att.json"
bin/fercli --device cpu eval --ckpt "$tmp/run/last.ckpt" --split test --dump-features "$tmp/test.safetensors" --progress=false
bin/fercli plot mds "$tmp/test.safetensors" -o "$out/rmfer_fig5.png"
ls -l "$out/rmfer_fig4.png" "$out/rmfer_fig5.png"
