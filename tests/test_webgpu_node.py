"""nomoat's WebGPU engine without a browser: bench/webgpu_node/bench.mjs runs web/src/engine_ort.mjs
(onnxruntime-web's WebGPU EP) and web/src/gpu_sampler.mjs in Node, with the npm `webgpu` package
(Dawn) as navigator.gpu — what bench/webgpu_node/run.sh does on a lent GPU machine. Here Dawn
drives Chromium's SwiftShader Vulkan ICD (/usr/lib/chromium/vk_swiftshader_icd.json, with the
libvulkan.so.1 Chromium ships beside it); Debian 12's lavapipe (mesa 22.3) is refused by Dawn
("Vulkan shaderUniform*ArrayDynamicIndexing required"). Skips, saying why, without Node, the
`webgpu` package or a Vulkan driver Dawn accepts; any other failure fails.

On the tiny model: the greedy tokens equal CPython's exact decode (onnxruntime CPU), through a
prompt longer than one 24-token chunk; one readback per decode token; the timing mode runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "webgpu_node"
WEBGPU = ROOT / "web" / "node_modules" / "webgpu" / "index.js"
ORT = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"
KERNELS = ROOT / "web" / "src" / "generated" / "kernels.js"
SWIFTSHADER = [Path("/usr/lib/chromium"), Path("/usr/lib64/chromium"), Path("/opt/google/chrome")]
sys.path.insert(0, str(BENCH))


def vulkan_env() -> dict[str, str]:
    """This environment, with SwiftShader's Vulkan ICD named when no ICD is (and Chromium has one)."""
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    if "VK_ICD_FILENAMES" not in env and "VK_DRIVER_FILES" not in env:
        for d in SWIFTSHADER:
            if (d / "vk_swiftshader_icd.json").is_file():
                env["VK_ICD_FILENAMES"] = str(d / "vk_swiftshader_icd.json")
                env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(d), env.get("LD_LIBRARY_PATH")) if p)
                break
    return env


def run_bench(pkg: Path, out: Path, *args: str) -> dict:
    node = shutil.which("node")
    if not node:
        pytest.skip("no node on PATH")
    for f, fix in ((WEBGPU, "cd web && npm ci"), (ORT / "ort.webgpu.min.mjs", "cd web && npm ci"),
                   (KERNELS, "cd web && npm run build")):
        if not f.exists():
            pytest.skip(f"{f.relative_to(ROOT)} is missing ({fix})")
    cmd = [node, str(BENCH / "bench.mjs"), "--pkg", str(pkg), "--ort", str(ORT), "--webgpu", str(WEBGPU),
           "--out", str(out), *args]
    p = subprocess.run(cmd, env=vulkan_env(), capture_output=True, text=True, timeout=600)
    r = json.loads(out.read_text()) if out.exists() else {}
    if p.returncode == 2 and any("requestAdapter" in e for e in r.get("errors", [])):
        pytest.skip("Dawn found no Vulkan driver it accepts (Chromium's SwiftShader ICD, or set VK_ICD_FILENAMES): "
                    + r["errors"][0])
    assert p.returncode == 0 and not r.get("errors"), (p.returncode, r.get("errors"), p.stderr[-3000:])
    return r


# 30 ids: a 24-token chunk and a 6-token one (engine_ort.mjs GPU_CHUNK), then 24 greedy tokens
PROMPT = [1, 45, 67, 89, 101, 123, 145, 167, 189, 211, 233, 255, 277, 299, 31, 53, 75, 97, 119, 141, 163, 185, 207,
          229, 251, 273, 295, 17, 39, 61]


def test_node_webgpu_greedy_equals_cpython(tiny_dir, tmp_path):
    from oracle import greedy

    r = run_bench(tiny_dir, tmp_path / "r.json", "--greedy", json.dumps(PROMPT), "--new", "24",
                  "--prompt", "40", "--context", "8", "--decode", "4", "--repeats", "1")
    assert r["sampling"] == "gpu" and r["adapter"]["description"]
    want = greedy(tiny_dir, PROMPT, 24)
    assert r["greedy"]["tokens"] == want
    assert len(set(want)) >= 4  # not one token repeated: the oracle can tell engines apart
    per = r["greedy"]["per_decode_token"]
    ort = per["onnxruntime"]  # the counts inside onnxruntime-web's session.run; the rest: the GPU sampler
    assert per["mapAsync"] == 1 and ort["mapAsync"] == 0, per  # the sampled id (4 bytes): the only readback
    assert per["submit"] - ort["submit"] == 1, per  # the sampler: one submit
    assert per["submit"] <= 10, per  # onnxruntime-web 1.30: one per 16 dispatches + ~6 per run (9 here)
    for k in ("prefill_tok_s", "decode_tok_s", "ttft_s", "load_s"):
        assert isinstance(r[k], float) and r[k] > 0, (k, r[k])
    assert r["settings"] == {"prompt": 40, "context": 8, "decode": 4, "repeats": 1}


def test_synthetic_model_has_the_default_shape(tmp_path):
    """run.sh's random-weight model: the default's config.json and weight-file size exactly."""
    from make_model import make

    default = ROOT / "models" / "SmolLM2-135M-Instruct"
    if not (default / "config.json").exists():
        pytest.skip("the default model is not converted (make setup)")
    info = make(tmp_path / "smol")
    assert info["random_weights"]
    got = json.loads((tmp_path / "smol" / "config.json").read_text())
    assert got == json.loads((default / "config.json").read_text())
    data = "onnx/model_q4.onnx_data"
    assert (tmp_path / "smol" / data).stat().st_size == (default / data).stat().st_size


def test_run_sh_is_one_short_command():
    """The device call's command line fits run's 2000 characters, and the scripts parse."""
    readme = (ROOT / "bench" / "README.md").read_text()
    assert 'command="bash bench/webgpu_node/run.sh"' in readme
    for s in ("run.sh", "prepare.sh"):
        subprocess.run(["bash", "-n", str(BENCH / s)], check=True)


def test_patch_ort_finds_its_anchor(tmp_path):
    """run.sh's A/B (patch_ort.py) fits the installed onnxruntime-web: its one-line change applies."""
    from patch_ort import ADDED, patch

    if not (ORT / "ort.webgpu.min.mjs").exists():
        pytest.skip("web/node_modules/onnxruntime-web is missing (cd web && npm ci)")
    out = patch(ORT, tmp_path / "ortp")
    assert (out / "ort.webgpu.min.mjs").read_text().count(ADDED) == 1
    wasm = "ort-wasm-simd-threaded.asyncify.wasm"
    assert (out / wasm).resolve() == (ORT / wasm).resolve()
