#!/usr/bin/env bash
# Draws the "Faces in the wild" README figures into docs/figures/ from
# Megamind.avi (Debian opencv-doc) with a demo checkpoint:
#
#   plots/examples/make_face_figures.sh [CKPT [OUT_DIR]]
#
# megamind-faces.jpg: four annotated frames of `fercli predict --annotate`
# (boxes, track IDs, predicted class, frame number and time);
# megamind-timeline.png: `fercli plot timeline` of the same rows.
# CKPT defaults to runs/demo/best.ckpt (made with `fercli demo` if absent).
# The demo CNN learned synthetic faces: its probabilities on a film show the
# pipeline, not the characters' expressions.
set -euo pipefail
cd "$(dirname "$0")/../.."
ckpt=${1:-runs/demo/best.ckpt}
out=${2:-docs/figures}
[ -x bin/fercli ] || go build -o bin/fercli ./cmd/fercli
if [ ! -f "$ckpt" ]; then
	bin/fercli demo --run-dir "$(dirname "$ckpt")"
fi
video=$(dpkg -L opencv-doc | grep '/Megamind.avi$')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
bin/fercli predict --ckpt "$ckpt" -o "$tmp/megamind.csv" --annotate "$tmp/boxes.mp4" "$video"
bin/fercli plot timeline --smooth 5 -o "$out/megamind-timeline.png" "$tmp/megamind.csv"
ffmpeg -hide_banner -loglevel error -y -i "$tmp/boxes.mp4" \
	-vf "select='eq(n\,30)+eq(n\,90)+eq(n\,150)+eq(n\,240)',scale=360:-1,tile=2x2" \
	-fps_mode passthrough -frames:v 1 -q:v 3 "$out/megamind-faces.jpg"
ls -l "$out/megamind-faces.jpg" "$out/megamind-timeline.png"
