#!/usr/bin/env bash
# bench/gpu-pack.sh — run HERE (a machine with Go, the module cache and
# apt), before bench/gpu.sh runs on a GPU machine that has none of them
# (this workplace's nvidia-h200 has CUDA PyTorch, g++ and Python, but no
# Go, no network and no libjpeg headers). Writes, into .gpu/ (git-ignored
# through .git/info/exclude; carry it: `run(carry=[".gpu"], ...)`):
#
#   go.tar.xz      this Go toolchain, trimmed to what builds and tests code
#                  (bin, compile/link/asm/cgo/vet, std sources without tests)
#   vendor.tar.xz  `go mod vendor` of fer's dependencies, gotch unpatched
#                  (gpu.sh patches it for the GPU machine's libtorch)
#   jpeg/          Debian's libjpeg62-turbo and -dev, extracted (headers and
#                  library for data/imaging's cgo; glibc 2.36, runs on newer)
#
# About 30 MB in all (the device tool carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpu
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
rm -rf "$dir"
mkdir -p "$dir"

goroot=$(go env GOROOT)
echo "gpu-pack: Go toolchain $(go env GOVERSION) from $goroot" >&2
tools=()
for t in compile link asm cgo vet buildid; do
  [ -e "$goroot/pkg/tool/linux_amd64/$t" ] && tools+=("pkg/tool/linux_amd64/$t")
done
tar -C "$goroot" -cf - --exclude='*_test.go' --exclude=testdata --exclude=src/cmd \
  bin "${tools[@]}" pkg/include src go.env VERSION | xz -T0 -6 >"$dir/go.tar.xz"

echo "gpu-pack: vendoring the modules" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOWORK=off go mod vendor -o "$tmp/vendor"
tar -C "$tmp" -cf - vendor | xz -T0 -6 >"$dir/vendor.tar.xz"

echo "gpu-pack: libjpeg-turbo (Debian packages, extracted)" >&2
(cd "$tmp" && apt-get download -q libjpeg62-turbo libjpeg62-turbo-dev >&2)
for deb in "$tmp"/libjpeg62-turbo*.deb; do
  dpkg-deb -x "$deb" "$dir/jpeg"
done

du -sh "$dir"/* >&2
echo "gpu-pack: done; on the GPU machine run bench/gpu.sh (see its header)" >&2
