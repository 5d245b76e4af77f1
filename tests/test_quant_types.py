"""Every GGUF quantization type nomoat reads, read exactly: the weights the graph defines equal the
`gguf` package's dequantization (bit for bit, or within the bound convert/quant.py states), for
random blocks, for fused weights of mixed types, for tiny models of each type run by onnxruntime
against the numpy reference, and for every tensor of the real Gemma-3-270M Q4_K_M file."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_web import gpu_browser  # noqa: F401 — a fixture

from nomoat.backends.ort_native import OrtNativeBackend
from nomoat.backends.reference import ReferenceBackend
from nomoat.convert import convert
from nomoat.convert.gguf_file import LINEAR_TYPES, GGUFTensor
from nomoat.convert.quant import F32Linear, QLinear, concat, to_qlinear
from nomoat.convert.tiny import make_tiny_gguf
from nomoat.home import models_home
from nomoat.package import DATA_FILE, ONNX_FILE, WASM_FILE, WASM_RECIPE

ROOT = Path(__file__).resolve().parents[1]
GEMMA = models_home() / "downloads" / "gemma-3-270m-q4_k_m.gguf"

# type → (bits, block, offsets) of its MatMulNBits form (convert/quant.py's table); None = plain f32
LAYOUT = {"Q4_0": (4, 32, False), "Q4_1": (4, 32, True), "Q5_0": (8, 32, False), "Q5_1": (8, 32, True),
          "Q8_0": (8, 32, False), "Q4_K": (4, 32, True), "Q5_K": (8, 32, True), "Q6_K": (8, 16, False),
          "F16": None, "BF16": None, "F32": None}
BOUND = ("Q4_1", "Q4_K")  # the offset m + 8s is rounded once in f32 before the sum: a stated bound
F16_SCALES = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,), "Q4_K": (0, 2),
              "Q5_K": (0, 2), "Q6_K": (208,)}  # byte offsets of each block's f16 d (and m / dmin)


def random_tensor(qtype: str, rows: int, cols: int, rng: np.random.Generator) -> tuple[GGUFTensor, np.ndarray]:
    """Random GGUF bytes of `qtype` (f16 scale fields: any finite f16, every exponent) and gguf's
    dequantization of them (rows, cols)."""
    from gguf import GGML_QUANT_SIZES, quants
    from gguf import GGMLQuantizationType as Q

    q = Q[qtype]
    size, type_size = GGML_QUANT_SIZES[q]
    raw = rng.integers(0, 256, (rows, cols // size, type_size), dtype=np.uint8)
    for at in F16_SCALES.get(qtype, ()):
        h = rng.integers(0, 1 << 16, (rows, cols // size), dtype=np.uint16)
        h = np.where((h & 0x7C00) == 0x7C00, h ^ 0x4000, h).astype(np.uint16)  # no inf/NaN
        raw[..., at:at + 2] = h[..., None].view(np.uint8)
    raw = raw.reshape(rows, -1)
    if qtype in ("F16", "F32"):
        raw = rng.normal(size=(rows, cols)).astype(np.float16 if qtype == "F16" else np.float32)
    elif qtype == "BF16":
        raw = rng.normal(size=(rows, cols)).astype(np.float32).view(np.uint32) >> 16
        raw = raw.astype(np.uint16).view(np.uint8).reshape(rows, -1)
    expected = quants.dequantize(raw, q).reshape(rows, cols).astype(np.float32)
    return GGUFTensor("t", qtype, rows, cols, raw), expected


@pytest.mark.parametrize("qtype", list(LAYOUT))
def test_blocks_read_as_gguf_dequantizes_them(qtype):
    assert qtype in LINEAR_TYPES
    rng = np.random.default_rng(sum(map(ord, qtype)))
    t, expected = random_tensor(qtype, 48, 512, rng)
    w = to_qlinear(t)
    got = w.dequantize()
    assert got.dtype == np.float32 and got.shape == expected.shape
    if LAYOUT[qtype] is None:
        assert isinstance(w, F32Linear)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        return
    bits, block, offsets = LAYOUT[qtype]
    assert (w.bits, w.block, w.offsets is not None) == (bits, block, offsets)
    assert w.packed.shape == (48, 512 // block, block * bits // 8) and w.packed.dtype == np.uint8
    assert w.scales.shape == (48, 512 // block) and w.scales.dtype == np.float32
    if qtype not in BOUND:
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        return
    # |W - W_gguf| <= 2^-23 (|c| + |W_gguf|), c the block's offset; equal wherever c is exact
    c = np.repeat(w.offsets, block, axis=1)
    diff = np.abs(got.astype(np.float64) - expected)
    assert (diff <= 2.0 ** -23 * (np.abs(c) + np.abs(expected))).all()
    assert 0 < (diff > 0).mean() < 0.2  # these scales span the whole f16 range: some offsets round


@pytest.mark.parametrize("types", [
    ("Q4_K", "Q6_K", "Q5_0"),  # a Q4_K_M q|k|v: 4/32 + offsets, 8/16, 8/32 → 8/16 + offsets
    ("Q4_0", "Q4_1"),  # 4/32 stays 4/32 (offsets 0 for the Q4_0 part)
    ("Q4_1", "Q8_0", "Q5_1"),  # → 8/32 + offsets
    ("Q6_K", "Q4_0"),  # → 8/16
    ("Q4_K", "F16", "Q8_0"),  # an f32 part: → f32
    ("BF16", "F32"),
])
def test_fusing_mixed_types_widens_exactly(types):
    rng = np.random.default_rng(len(types))
    parts = [to_qlinear(random_tensor(q, 16 * (i + 1), 256, rng)[0]) for i, q in enumerate(types)]
    fused = concat(parts)
    quantized = [LAYOUT[q] for q in types]
    if None in quantized:
        assert isinstance(fused, F32Linear)
    else:
        assert isinstance(fused, QLinear)
        assert fused.bits == max(b for b, _, _ in quantized) and fused.block == min(k for _, k, _ in quantized)
        assert (fused.offsets is not None) == any(o for _, _, o in quantized)
    np.testing.assert_array_equal(fused.dequantize(), np.concatenate([p.dequantize() for p in parts]))


# --- tiny models of each type, run by onnxruntime, against the numpy reference -------------------

CASES = {q: {"linear_type": q, "embed_type": q} for q in LAYOUT}
CASES["Q4_K_M"] = {  # Q4_K with Q5_0 and Q6_K fused into it, an F16 up projection, a Q4_K tied head
    "linear_type": "Q4_K", "embed_type": "Q4_K",
    "types": {"attn_k": "Q5_0", "attn_v": "Q6_K", "ffn_down": "Q6_K", "blk.1.ffn_up": "F16"}}
CASES["Q4_K_M_untied"] = {  # Gemma's layer types, a Q8_0 embedding and a Q6_K LM head
    "linear_type": "Q5_0", "embed_type": "Q8_0", "tied": False,
    "types": {"attn_v": "Q8_0", "attn_output": "Q4_K", "ffn_down": "Q6_K", "output": "Q6_K"}}
# onnxruntime (accuracy level 0: f32 math) vs numpy over gguf's dequantization: the same weights,
# summed in another order. Measured: <= 1.6e-6 of the largest logit.
REL_TOL = 1e-5
IDS = [1, 40, 41, 42, 43, 44, 45, 46]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    made: dict[str, tuple[Path, Path]] = {}

    def get(case: str) -> tuple[Path, Path]:
        if case not in made:
            d = tmp_path_factory.mktemp(case)
            gguf = make_tiny_gguf(d / "t.gguf", seed=3, hidden=256, inter=512, **CASES[case])
            made[case] = gguf, convert(gguf, d / "pkg")
        return made[case]

    return get


def reference_logits(gguf: Path) -> np.ndarray:
    """The reference's logits (S, vocab) for IDS (in a thread: a browser test's event loop runs in this one)."""
    ref = ReferenceBackend(gguf)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, ref.forward(ref.new_state(), IDS, all_logits=True)).result()


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    err, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
    assert err <= REL_TOL * scale, (err, scale)


def graph(pkg: Path, name: str = ONNX_FILE):
    import onnx

    return onnx.load(str(pkg / name), load_external_data=False).graph


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_model_of_each_type_matches_the_reference(tiny, case):
    gguf, pkg = tiny(case)
    g = graph(pkg)
    inits = {t.name: list(t.dims) for t in g.initializer}
    layout = LAYOUT.get(case)
    qkv = "model.layers.0.attn.qkv_proj"
    if case in LAYOUT and layout is None:
        assert inits[qkv + ".weight"] == [(4 + 2 * 2) * 64, 256] and "embed.weight" in inits
        assert not [n for n in g.node if n.op_type == "MatMulNBits"]
    elif case in LAYOUT:
        bits, block, offsets = layout
        assert inits[qkv + ".qweight"] == [512, 256 // block, block * bits // 8]
        assert inits["embed.qweight"][1:] == [256 // block, block * bits // 8]
        assert (qkv + ".block_offsets" in inits) == offsets == ("embed.block_offsets" in inits)
        assert {a.i for n in g.node if n.op_type == "MatMulNBits" for a in n.attribute
                if a.name == "block_size"} == {block}
    elif case == "Q4_K_M":
        assert inits[qkv + ".qweight"] == [512, 16, 16] and inits[qkv + ".block_offsets"] == [16, 512]
        assert inits["model.layers.1.mlp.gate_up_proj.weight"] == [1024, 256]  # Q4_K | F16 → f32
        assert inits["model.layers.0.mlp.gate_up_proj.qweight"] == [1024, 8, 16]  # Q4_K | Q4_K
        assert inits["model.layers.0.mlp.down_proj.qweight"] == [256, 32, 16]  # Q6_K
    backend = OrtNativeBackend(pkg, ReferenceBackend(gguf).config, threads=2, accuracy_level=0)
    assert_close(backend.run(backend.new_state(), IDS, all_logits=True), reference_logits(gguf))


def build_f32_in_js(pkg: Path) -> None:
    """Write the wasm graph's f32 weights with web/src/engine_ort.mjs's buildF32, as the browser does."""
    script = (f"import {{buildF32}} from {json.dumps(str(ROOT / 'web/src/engine_ort.mjs'))};\n"
              "import fs from 'node:fs';\n"
              "const [recipe, data, out] = process.argv.slice(1);\n"
              "fs.writeFileSync(out, buildF32(JSON.parse(fs.readFileSync(recipe, 'utf8')), "
              "new Uint8Array(fs.readFileSync(data))));\n")
    recipe = json.loads((pkg / WASM_RECIPE).read_text())
    subprocess.run(["node", "--input-type=module", "-e", script, str(pkg / WASM_RECIPE), str(pkg / DATA_FILE),
                    str(pkg / "onnx" / recipe["f32"])], check=True, timeout=120)


@pytest.mark.parametrize("case", ["Q4_K_M", "Q4_K_M_untied", "Q6_K", "Q5_1"])
def test_wasm_f32_variant_of_mixed_types_matches_the_reference(tiny, case):
    """The wasm "ort" variant: every quantized matmul an f32 Gemm whose weight buildF32 (JS) makes
    from the same blocks (block 16 and 32, 4 and 8 bits, offsets), f32 weights read directly."""
    import onnxruntime as ort

    gguf, pkg = tiny(case)
    recipe = json.loads((pkg / WASM_RECIPE).read_text())
    assert {t["block"] for t in recipe["tensors"]} == ({16, 32} if case.startswith("Q4_K_M") else
                                                       {LAYOUT[case][1]})
    assert not [n for n in graph(pkg, WASM_FILE).node if n.op_type == "MatMulNBits"]
    build_f32_in_js(pkg)
    backend = OrtNativeBackend(pkg, ReferenceBackend(gguf).config, threads=2)
    backend.session = ort.InferenceSession(str(pkg / WASM_FILE), providers=["CPUExecutionProvider"])
    assert_close(backend.run(backend.new_state(), IDS, all_logits=True), reference_logits(gguf))


# --- the real Gemma-3-270M Q4_K_M file -----------------------------------------------------------

@pytest.mark.skipif(not GEMMA.is_file(), reason=f"{GEMMA} not downloaded (nomoat convert --model gemma-3-270m)")
def test_every_gemma_tensor_maps_exactly():
    """Q8_0 embedding, Q5_0 / Q8_0 / Q4_K / Q6_K linears: each equal to gguf's dequantization bit
    for bit (Q4_K's offset rounding never happens in this file); the embedding's first and last
    4,096 rows."""
    from gguf import GGUFReader, quants

    seen: dict[str, int] = {}
    for t in GGUFReader(GEMMA).tensors:
        qtype = t.tensor_type.name
        if qtype == "F32":  # norms
            continue
        cols, rows = (int(s) for s in t.shape)
        data = np.asarray(t.data).reshape(rows, -1)
        if rows > 8192:
            data = np.concatenate([data[:4096], data[-4096:]])
        expected = quants.dequantize(data, t.tensor_type).reshape(len(data), cols)
        w = to_qlinear(GGUFTensor(t.name, qtype, len(data), cols, data))
        assert (w.bits, w.block, w.offsets is not None) == LAYOUT[qtype], t.name
        np.testing.assert_array_equal(w.dequantize().view(np.uint32), expected.view(np.uint32), err_msg=t.name)
        seen[qtype] = seen.get(qtype, 0) + 1
    assert set(seen) == {"Q8_0", "Q5_0", "Q4_K", "Q6_K"} and sum(seen.values()) == 127


# --- WebGPU (onnxruntime-web in headless Chromium, SwiftShader) ----------------------------------

GPU_FORWARD = """async ([model, ids]) => {
    const rt = (await import("/runtime.mjs")).createRuntime({assets: {ort: "/ort/"}});
    const pkg = await rt.loadModel(model, "webgpu", 0), e = pkg.engine, st = e.newState();
    const all = Array.from(await e.forward(st, ids, true));
    st.dispose();
    return all;
}"""


@pytest.fixture(scope="module")
def gpu_page(tiny, tmp_path_factory, gpu_browser):  # noqa: F811
    import threading

    from test_web import TIMEOUT

    from nomoat.serve import make_server

    root = tmp_path_factory.mktemp("served")
    for case in ("Q4_K_M", "Q4_K_M_untied", "F16"):
        (root / case).symlink_to(tiny(case)[1])
    srv = make_server(0, models=root)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    page = gpu_browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"http://127.0.0.1:{srv.server_address[1]}/?load=0")
    yield page
    page.close()
    srv.shutdown()


@pytest.mark.parametrize("case", ["Q4_K_M", "Q4_K_M_untied", "F16"])
def test_webgpu_runs_every_layout(gpu_page, tiny, case):
    """MatMulNBits of 4 and 8 bits, blocks of 16 and 32, block offsets, the 4-bit embedding gather,
    a Q6_K LM head and f32 Gemms, on onnxruntime-web's WebGPU EP: the reference's logits."""
    gguf, _ = tiny(case)
    got = np.array(gpu_page.evaluate(GPU_FORWARD, [f"/models/{case}/", IDS]), np.float64)
    want = reference_logits(gguf)
    assert_close(got.reshape(want.shape), want)
