"""The wasm graph variant (onnx/nomoat_wasm.onnx): f32 Gemms whose weights the browser builds at
load time from the 4-bit blocks, following onnx/nomoat_wasm.json. Here the recipe is carried out
in numpy (what web/src/worker.mjs does in JS) and the graph is run by onnxruntime on the CPU."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nomoat.backends.ort_native import OrtNativeBackend
from nomoat.config import ModelConfig
from nomoat.package import DATA_FILE, WASM_FILE, WASM_RECIPE


def build_f32(pkg) -> None:
    """Write pkg/onnx/<recipe f32 file> from the recipe, the way the browser does."""
    recipe = json.loads((pkg / WASM_RECIPE).read_text())
    data = np.fromfile(pkg / DATA_FILE, np.uint8)
    out = np.zeros(recipe["size"] // 4, np.float32)
    for t in recipe["tensors"]:
        n, k, block = t["n"], t["k"], t.get("block", 32)
        nb = k // block
        q = data[t["qweight"][0] : sum(t["qweight"])].reshape(n, nb, -1)
        if t["bits"] == 4:  # element 2i: low nibble of byte i; 2i+1: high nibble
            q = np.stack([q & 15, q >> 4], -1).reshape(n, nb, block)
        d = data[t["scales"][0] : sum(t["scales"])].view(np.float32).reshape(n, nb, 1)
        w = (q.astype(np.float32) - (1 << (t["bits"] - 1))) * d
        if t["offsets"]:
            w = w + data[t["offsets"][0] : sum(t["offsets"])].view(np.float32).reshape(nb, n).T[..., None]
        out[t["offset"] // 4 : t["offset"] // 4 + n * k] = w.reshape(-1)
    out.tofile(pkg / "onnx" / recipe["f32"])


@pytest.fixture(scope="module", params=["tiny", "default"])
def pkg(request, tmp_path_factory, tiny_dir):
    src = tiny_dir if request.param == "tiny" else request.getfixturevalue("default_model_dir")
    dst = shutil.copytree(src, tmp_path_factory.mktemp("wasm") / "pkg")
    build_f32(dst)
    return dst


def test_recipe_covers_every_quantized_matmul(pkg):
    import onnx

    graph = onnx.load(str(pkg / WASM_FILE), load_external_data=False).graph
    assert not [n for n in graph.node if n.op_type == "MatMulNBits"]
    recipe = json.loads((pkg / WASM_RECIPE).read_text())
    cfg = ModelConfig.from_dir(pkg)
    assert len(recipe["tensors"]) == 4 * cfg.num_hidden_layers + 1  # qkv, o, gate_up, down per layer + head


def test_wasm_graph_equals_the_q4_graph(pkg):
    cfg = ModelConfig.from_dir(pkg)
    q4 = OrtNativeBackend(pkg, cfg, threads=2, accuracy_level=0)
    f32 = OrtNativeBackend(pkg, cfg, threads=2)
    f32.session = type(q4.session)(str(pkg / WASM_FILE), providers=["CPUExecutionProvider"])
    ids = [1, 30, 31, 32, 33, 34, 35, 36, 2, 40]
    a = q4.run(q4.new_state(), ids, all_logits=True)
    b = f32.run(f32.new_state(), ids, all_logits=True)
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, atol=2e-3)
    s1, s2 = q4.new_state(), f32.new_state()  # and step by step, through the KV cache
    q4.run(s1, ids)
    f32.run(s2, ids)
    np.testing.assert_allclose(f32.run(s2, [50]), q4.run(s1, [50]), atol=2e-3)
