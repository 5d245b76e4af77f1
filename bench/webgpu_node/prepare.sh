#!/usr/bin/env bash
# Builds .gpu/ (git-ignored), everything bench/webgpu_node/run.sh needs on a GPU machine that has no
# browser, no Node and no internet (x86-64, python3 with numpy/onnx/onnxruntime/tokenizers):
#   node.xz       this machine's Node binary, xz-compressed (ldd: only libc/libm/libstdc++/libgcc)
#   js.tar.xz     webgpu/ (the npm `webgpu` package: index.js + Dawn's linux-x64 dawn.node) and
#                 ort/ (onnxruntime-web's WebGPU build: ort.webgpu.min.mjs and the asyncify .mjs/.wasm)
#   whl/          the `gguf` wheel (pure Python; the converter's GGUF reader/writer)
#   debs/         the Vulkan loader and GL dispatch libraries (libvulkan1, libglvnd0, …), extracted
#                 there only where the image has no libvulkan.so.1
# The model is NOT carried (110 MB): run.sh makes a random-weight one of the default's shape there.
# Usage: bash bench/webgpu_node/prepare.sh     (after `cd web && npm ci`; about a minute)
set -euo pipefail
cd "$(dirname "$0")/../.."
G=.gpu
exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
[ "$(uname -m)" = x86_64 ] || { echo "prepare.sh: the GPU machine is x86-64; run this on an x86-64 host" >&2; exit 1; }
nm=web/node_modules
for f in "$nm/webgpu/dist/linux-x64/dawn.node" "$nm/onnxruntime-web/dist/ort.webgpu.min.mjs" web/src/generated/kernels.js; do
  [ -f "$f" ] || { echo "prepare.sh: $f is missing: run 'cd web && npm ci && npm run build' first" >&2; exit 1; }
done
rm -rf "$G"
mkdir -p "$G/whl" "$G/debs"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/webgpu/dist/linux-x64" "$stage/ort"
cp "$nm/webgpu/index.js" "$nm/webgpu/package.json" "$stage/webgpu/"
cp "$nm/webgpu/dist/linux-x64/dawn.node" "$stage/webgpu/dist/linux-x64/"
cp "$nm"/onnxruntime-web/dist/{ort.webgpu.min.mjs,ort-wasm-simd-threaded.asyncify.mjs,ort-wasm-simd-threaded.asyncify.wasm} "$stage/ort/"
tar -C "$stage" -cf - . | xz -T0 -6 >"$G/js.tar.xz"
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" >"$G/node.xz"
py=.venv/bin/python
[ -x "$py" ] || py=python3
gguf=$("$py" -m pip show gguf 2>/dev/null | awk '/^Version/{print $2}')
"$py" -m pip download -q --no-deps --only-binary=:all: -d "$G/whl" "gguf==${gguf:-0.19.0}"
(cd "$G/debs" && apt-get download -q libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 >/dev/null)
du -sh "$G" "$G"/*
size=$(du -sb "$G" | cut -f1)
[ "$size" -lt $((56 * 1024 * 1024)) ] || { echo "prepare.sh: $G is $size bytes: over what one device call carries" >&2; exit 1; }
echo "prepare.sh: $G ready; carry [\".gpu\", \"web/src/generated\"] and run 'bash bench/webgpu_node/run.sh'"
