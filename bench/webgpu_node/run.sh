#!/usr/bin/env bash
# One call on a GPU machine with no browser (see bench/README.md, "WebGPU on a lent GPU"):
#   run(command="bash bench/webgpu_node/run.sh", carry=[".gpu", "web/src/generated"], timeout_s=560)
# after `bash bench/webgpu_node/prepare.sh` here. Unpacks Node, the npm `webgpu` package (Dawn) and
# onnxruntime-web's WebGPU build from .gpu/, makes a random-weight model of the default's exact
# shape (bench/webgpu_node/make_model.py), then runs nomoat's WebGPU engine on it in Node
# (bench/webgpu_node/bench.mjs: greedy tokens, submits/readbacks per token, prefill/TTFT/decode)
# and CPython's exact greedy decode of the same prompt (oracle.py). Writes $OUT/webgpu_node.json
# (everything, merged), $OUT/log.txt. Env: NOMOAT_GPU_MODEL=tiny (the tests' tiny model: a check
# of the script itself), PYTHON (default python3), VK_ICD_FILENAMES (else the NVIDIA ICD is found).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/nomoat-gpu-out}
W=${NOMOAT_GPU_WORK:-/tmp/nomoat-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$W"
exec > >(tee -a "$OUT/log.txt") 2>&1
step() { echo "[$(date -u +%T)] $*"; }
[ -f .gpu/node.xz ] || { echo "run.sh: .gpu/ is missing: run bench/webgpu_node/prepare.sh and carry .gpu" >&2; exit 1; }
step "host: $(uname -m), $(nproc) CPUs; $(nvidia-smi -L 2>/dev/null | head -1)"
if ! ldconfig -p | grep -q 'libvulkan.so.1 ' || ! ldconfig -p | grep -q 'libGLdispatch.so.0 '; then
  step "no Vulkan loader in the image: unpacking .gpu/debs"
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  for j in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
           /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$j" ] && { export VK_ICD_FILENAMES=$j VK_DRIVER_FILES=$j; break; }
  done
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
step "Vulkan driver: ${VK_ICD_FILENAMES:-none named, the loader searches}"
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
unxz .gpu/node.xz >"$W/node" && chmod +x "$W/node" && unxz .gpu/js.tar.xz | tar -C "$W" -xf - || exit 1
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/site" .gpu/whl/*.whl || exit 1
export PYTHONPATH="$W/site${PYTHONPATH:+:$PYTHONPATH}"
step "node $("$W/node" --version); making the model"
tiny=()
[ "${NOMOAT_GPU_MODEL:-}" = tiny ] && tiny=(--tiny)
rm -rf "$W/model"
"$PY" bench/webgpu_node/make_model.py "$W/model" "${tiny[@]}" >"$W/model.json" || exit 1
# 30 ids (< the tiny vocabulary's 320): one 24-token chunk and a 6-token one, then 32 greedy tokens
ids='[1,45,67,89,101,123,145,167,189,211,233,255,277,299,31,53,75,97,119,141,163,185,207,229,251,273,295,17,39,61]'
step "WebGPU engine in Node"
timeout 240 "$W/node" bench/webgpu_node/bench.mjs --pkg "$W/model" --ort "$W/ort" --webgpu "$W/webgpu/index.js" \
  --greedy "$ids" --new 32 --out "$W/bench.json" --max-seconds 150 ${NOMOAT_BENCH_ARGS:---long 4096}
step "bench.mjs exit $?"
# A/B: onnxruntime-web submitting every N dispatches instead of 16 (patch_ort.py; same engine, same model)
"$PY" bench/webgpu_node/patch_ort.py "$W/ort" "$W/ortp" >/dev/null || NOMOAT_PENDING=none
for n in ${NOMOAT_PENDING:-64 4096}; do
  [ "$n" = none ] && break
  step "variant: maxNumPendingDispatches $n"
  NOMOAT_ORT_OPTIONS="{\"executionProviders\": [{\"name\": \"webgpu\", \"maxNumPendingDispatches\": $n}]}" \
    timeout 120 "$W/node" bench/webgpu_node/bench.mjs --pkg "$W/model" --ort "$W/ortp" --webgpu "$W/webgpu/index.js" \
    --greedy "$ids" --new 32 --out "$W/bench_pending_$n.json" --max-seconds 60 ${NOMOAT_BENCH_ARGS:---long 4096}
done
step "CPython oracle"
"$PY" bench/webgpu_node/oracle.py "$W/model" "$ids" 32 >"$W/oracle.json"
step "oracle exit $?"
"$PY" - "$W" "$OUT/webgpu_node.json" <<'PYEOF'
import json, pathlib, subprocess, sys
w, out = pathlib.Path(sys.argv[1]), sys.argv[2]
load = lambda n: json.loads((w / n).read_text()) if (w / n).exists() else None
r = load("bench.json") or {"errors": ["bench.mjs wrote nothing (see log.txt)"]}
r["model"] = {**(r.get("model") or {}), **(load("model.json") or {})}
r["weights"] = "random (timing only: the model has the default's exact shape, sizes and graph, not its weights)"
o = load("oracle.json")
if o and r.get("greedy"):
    r["greedy"]["cpython"] = o["tokens"]
    r["greedy"]["equal"] = o["tokens"] == r["greedy"]["tokens"]
try:
    r["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    r["gpu"] = None
r["variants"] = {}
for f in sorted(w.glob("bench_pending_*.json")):
    v = json.loads(f.read_text())
    g = v.get("greedy") or {}
    r["variants"][f.stem.removeprefix("bench_")] = {
        **{k: v.get(k) for k in ("ort_options", "errors", "load_s", "prefill_tok_s", "ttft_s", "decode_tok_s",
                                 "decode_tok_s_long", "per_decode_token")},
        "greedy_equal": bool(o) and g.get("tokens") == o["tokens"]}
pathlib.Path(out).write_text(json.dumps(r, indent=1))
keys = ("adapter", "load_s", "prefill_tok_s", "ttft_s", "decode_tok_s", "decode_tok_s_long", "per_decode_token", "errors")
print(json.dumps({k: r.get(k) if k != "adapter" else (r.get(k) or {}).get("description") for k in keys}))
print("greedy equal to CPython:", (r.get("greedy") or {}).get("equal"))
for k, v in r["variants"].items():
    print(k, json.dumps({x: v.get(x) for x in ("decode_tok_s", "prefill_tok_s", "greedy_equal", "errors")}),
          "submits/token:", (v.get("per_decode_token") or {}).get("submit"))
PYEOF
