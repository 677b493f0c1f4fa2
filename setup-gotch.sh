#!/usr/bin/env bash
# setup-gotch.sh — installs everything fer needs and builds it. Idempotent:
# re-running it when nothing changed takes seconds.
#
#   ./setup-gotch.sh                          # Debian's libtorch-dev (CPU)
#   LIBTORCH=/path/to/libtorch ./setup-gotch.sh
#   LIBTORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))') ./setup-gotch.sh
#
# Steps:
#  1. apt packages that are missing: libtorch-dev (unless LIBTORCH is set),
#     g++, ffmpeg (video decoding), opencv-doc (Megamind.avi, a real face
#     video the video-decoding test reads), libjpeg62-turbo-dev (the JPEG
#     decoder fer's loaders use, the one Pillow links),
#     python3-torch/python3-torchvision (the PyTorch reference the
#     equivalence tests compare against), python3-torchaudio (the
#     reference of the A/V model's STFT + mel filterbank), libdlib-dev +
#     libdlib-data (face detection and the 68-point landmark model,
#     data/face), libgloo-dev (the Gloo headers libtorch's c10d headers
#     include; fer/dist's data-parallel shim), libopenblas0-openmp (the
#     OpenMP build of OpenBLAS: fer's binaries load it ahead of the
#     machine's libblas.so.3 through a DT_RPATH, so BLAS and libtorch share
#     one OpenMP thread pool instead of fighting over the cores; the
#     machine's BLAS alternative is left to dpkg: where Debian's default
#     pthreads build is installed it stays the default for other programs).
#     Tests only: skimage's astronaut.png test photo, taken out of
#     Debian's python3-skimage .deb into $FER_CACHE/testdata (installing
#     the package would pull 46 others, among them a pthreads OpenBLAS
#     that takes over libblas.so.3).
#  2. Go modules (exact versions pinned in go.mod).
#  3. internal/gotchpatch: copies gotch v0.9.1 out of the module cache into
#     a per-libtorch directory ($FER_CACHE, default ~/.cache/fer), writes its
#     cgo flags for the libtorch found (CUDA only if libtorch_cuda.so is
#     there), stubs the generated wrapper functions that do not compile
#     against it, and writes the git-ignored go.work that points the build at
#     that copy (the shared module cache is never modified).
#  4. builds bin/fercli (the first cgo build of the wrapper takes ~2 min).
#
# Environment: LIBTORCH (libtorch or Python torch package dir), FER_CACHE,
# FER_SKIP_APT=1 (never call apt; fail if something is missing), CXX.
set -euo pipefail
cd "$(dirname "$0")"

GOTCH_VERSION=v0.9.1
say() { printf '\033[1msetup-gotch:\033[0m %s\n' "$*"; }
die() { printf 'setup-gotch: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: install Go >= 1.26 (https://go.dev/dl) and re-run"

# --- 1. system packages -------------------------------------------------------
pkgs=(g++ ffmpeg opencv-doc python3-torch python3-torchvision python3-torchaudio python3-numpy libjpeg62-turbo-dev libdlib-dev libdlib-data libgloo-dev libopenblas0-openmp)
[ -z "${LIBTORCH:-}" ] && pkgs+=(libtorch-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "${FER_SKIP_APT:-0}" = 1 ] && die "missing packages: ${missing[*]} (FER_SKIP_APT=1 forbids installing them)"
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]}; this is not a Debian-like system: install them by hand"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && { command -v sudo >/dev/null && SUDO=sudo || die "missing packages: ${missing[*]}; run as root or install sudo"; }
  say "installing ${missing[*]} with apt"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "system packages present"
fi

# test photo: skimage's astronaut.png (NASA, public domain) from Debian's
# python3-skimage package, without installing it (see above)
cache_dir="${FER_CACHE:-$HOME/.cache/fer}"
astro="$cache_dir/testdata/astronaut.png"
if [ ! -s "$astro" ] && [ "${FER_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  say "test photo astronaut.png (from python3-skimage's .deb)"
  tmpdeb=$(mktemp -d)
  if (cd "$tmpdeb" && apt-get download -q python3-skimage >/dev/null 2>&1); then
    mkdir -p "$cache_dir/testdata"
    dpkg-deb --fsys-tarfile "$tmpdeb"/python3-skimage_*.deb |
      tar -xO ./usr/lib/python3/dist-packages/skimage/data/astronaut.png >"$astro.tmp" && mv "$astro.tmp" "$astro"
  else
    say "could not download python3-skimage: the astronaut photo tests will be skipped"
  fi
  rm -rf "$tmpdeb"
fi

# --- 2. Go modules ------------------------------------------------------------
say "Go modules"
GOWORK=off go mod download
gotch_dir=$(GOWORK=off go mod download -json "github.com/sugarme/gotch@$GOTCH_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[ -n "$gotch_dir" ] && [ -d "$gotch_dir" ] || die "could not locate gotch $GOTCH_VERSION in the module cache"

# --- 3. patched gotch for this libtorch ---------------------------------------
GOWORK=off go run ./internal/gotchpatch -libtorch "${LIBTORCH:-system}" -gotch "$gotch_dir" -gotch-version "$GOTCH_VERSION" -work go.work

# --- 4. build ------------------------------------------------------------------
say "building bin/fercli (first build of the libtorch wrapper takes a few minutes)"
go build -o bin/fercli ./cmd/fercli
say "done; next: go test ./...   (and bin/fercli env)"
bin/fercli env
