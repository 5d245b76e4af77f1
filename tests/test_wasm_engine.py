"""nomoat's own wasm decoder (web/src/wasm_engine.mjs + web/src/wasm/decoder.ts) against the numpy
reference: logits at several positions, after fork and truncate, across prefill chunks, for every
weight type the converter emits; and in Chromium: device "wasm" runs it (no graph fetched), the
onnxruntime-web path stays selectable, both greedy-equal.

The engine runs in Node here (tests/wasm_engine_driver.mjs, the same module the browser loads from
web/dist/; web/test/wasm_engine.test.js tests its interface); the activations are int16 per block
of 32 inside the matmuls, so logits match the f32 reference to ~1e-3, not bit for bit.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nomoat.backends.reference import ReferenceBackend
from nomoat.convert import convert
from nomoat.convert.tiny import make_tiny_gguf

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "web" / "dist"
DRIVER = Path(__file__).parent / "wasm_engine_driver.mjs"


def run_engine(model_dir: Path, script: list[dict], tmp_path: Path) -> list[np.ndarray]:
    """Each forward's logits, as (n, vocab) arrays, from the wasm engine in Node."""
    if not (DIST / "nomoat-decoder.wasm").is_file():
        pytest.fail("web/dist/nomoat-decoder.wasm is missing: build the web runtime first ('make web').")
    (tmp_path / "script.json").write_text(json.dumps(script))
    out = tmp_path / "logits.f32"
    r = subprocess.run(["node", str(DRIVER), str(DIST), str(model_dir), str(tmp_path / "script.json"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    flat, res, o = np.fromfile(out, np.float32), [], 0
    for line in r.stdout.splitlines():
        n = json.loads(line)["n"]
        res.append(flat[o:o + n].reshape(-1, vocab))
        o += n
    return res


def run_reference(gguf: Path, script: list[dict], kv_bits: int = 16) -> list[np.ndarray]:
    """The same script on the numpy reference backend (by default with the engine's 16-bit KV cache)."""
    b, states, res = ReferenceBackend(gguf, kv_bits=kv_bits), {}, []
    for s in script:
        if s["op"] == "forward":
            st = states.setdefault(s["state"], b.new_state())
            logits = asyncio.run(b.forward(st, s["ids"], all_logits=True))
            res.append(logits if s.get("all") else logits[-1:])
        elif s["op"] == "fork":
            states[s["to"]] = states[s["from"]].fork()
        elif s["op"] == "truncate":
            states[s["state"]].truncate(s["n"])
    return res


def script_for(vocab: int, rng: np.random.Generator, prefill: int) -> list[dict]:
    """Prefill (all logits), decode steps, a fork that diverges, a truncate and re-decode."""
    ids = lambda n: [int(i) for i in rng.integers(3, vocab, n)]  # noqa: E731
    return [
        {"op": "forward", "state": "a", "ids": ids(prefill), "all": True},
        {"op": "forward", "state": "a", "ids": ids(1)},
        {"op": "forward", "state": "a", "ids": ids(1)},
        {"op": "fork", "from": "a", "to": "b"},
        {"op": "forward", "state": "b", "ids": ids(3), "all": True},
        {"op": "forward", "state": "a", "ids": ids(1)},
        {"op": "truncate", "state": "a", "n": prefill - 2},
        {"op": "forward", "state": "a", "ids": ids(2), "all": True},
        {"op": "forward", "state": "b", "ids": ids(1)},
        {"op": "dispose", "state": "b"},
        {"op": "forward", "state": "c", "ids": ids(5)},
    ]


def assert_close(got: list[np.ndarray], want: list[np.ndarray], tol: float) -> float:
    assert [g.shape for g in got] == [w.shape for w in want]
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        err = float(np.abs(g - w).max())
        worst = max(worst, err)
        assert err <= tol * max(1.0, float(np.abs(w).max())), f"forward #{i}: max error {err}"
        assert (g.argmax(-1) == w.argmax(-1)).mean() >= 0.9, f"forward #{i}: argmax differs"
    return worst


@pytest.mark.parametrize("linear_type,tied", [("Q4_1", True), ("Q4_0", True), ("Q8_0", False)])
def test_tiny_models_match_the_reference(tmp_path, linear_type, tied):
    gguf = make_tiny_gguf(tmp_path / "t.gguf", linear_type=linear_type, tied=tied)
    pkg = convert(gguf, tmp_path / "pkg")
    vocab = json.loads((pkg / "config.json").read_text())["vocab_size"]
    script = script_for(vocab, np.random.default_rng(1), prefill=70)  # > one 64-token chunk
    assert_close(run_engine(pkg, script, tmp_path), run_reference(gguf, script), 2e-3)


def test_default_model_matches_the_reference(tmp_path, default_gguf, default_model_dir):
    script = script_for(49152, np.random.default_rng(2), prefill=67)
    got = run_engine(default_model_dir, script, tmp_path)
    worst = assert_close(got, run_reference(default_gguf, script), 5e-4)
    assert worst < 2e-2  # measured 1.4e-2 here (random ids; logits up to ~30)
    # against the f32 KV cache: the 16-bit rows change no argmax (8-bit rows changed 3 of 67)
    f32 = run_reference(default_gguf, script, kv_bits=32)
    worst32 = assert_close(got, f32, 1e-3)
    assert worst32 < 3e-2  # measured 2.1e-2 (9e-3 when the engine's cache was f32)
    assert all((g.argmax(-1) == w.argmax(-1)).all() for g, w in zip(got, f32, strict=True))


def run_attention(tmp_path: Path, nq, nkv, hd, P, T, J, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """kvWrite16 + attend16 over [0, J) and [J, P+T) + attendMerge in Node; returns (out, inputs, cache)."""
    n = P + T
    a = {"nq": nq, "nkv": nkv, "hd": hd, "P": P, "T": T, "J": J,
         "q": rng.standard_normal((T, nq * hd)).astype(np.float32) * 2,
         "k": rng.standard_normal((n, nkv * hd)).astype(np.float32) * 2,
         "v": rng.standard_normal((n, nkv * hd)).astype(np.float32)}
    a["k"][:, 5] *= 20  # an outlier channel, as real keys have
    (tmp_path / "in.json").write_text(json.dumps({k: v.ravel().tolist() if isinstance(v, np.ndarray) else v
                                                   for k, v in a.items()}))
    driver = Path(__file__).parent / "attention_driver.mjs"
    r = subprocess.run(["node", str(driver), str(DIST), str(tmp_path / "in.json"), str(tmp_path / "out.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    o = json.loads((tmp_path / "out.json").read_text())
    return np.array(o["out"], np.float32).reshape(T, nq * hd), a, o


@pytest.mark.parametrize("nq,nkv,hd,P,T,J", [
    (9, 3, 64, 0, 1, 0), (9, 3, 64, 0, 1, 1), (9, 3, 64, 2, 1, 1), (9, 3, 64, 130, 1, 66),  # decode
    (9, 3, 64, 130, 1, 0), (9, 3, 64, 130, 1, 131), (4, 4, 32, 0, 20, 7), (8, 2, 128, 37, 9, 20),  # MHA, wide heads
    (9, 3, 64, 0, 64, 45), (6, 1, 16, 5, 3, 8)])
def test_attention_kernels_match_numpy(tmp_path, nq, nkv, hd, P, T, J):
    """The 16-bit cache rows are the inputs rounded to their levels; attention over two position
    ranges merged equals softmax(q K^T / sqrt(hd)) V over the dequantized cache (causal)."""
    n, g = P + T, nq // nkv
    out, a, o = run_attention(tmp_path, nq, nkv, hd, P, T, J, np.random.default_rng(P * 1000 + T * 10 + J))
    k = np.array(o["k16"], np.float32).reshape(nkv, n, hd) * np.array(o["ks"], np.float32).reshape(nkv, n, 1)
    v = np.array(o["v16"], np.float32).reshape(nkv, n, hd) * np.array(o["vs"], np.float32).reshape(nkv, n, 1)
    for got, x, levels in ((k, a["k"], 8191), (v, a["v"], 32767)):
        x = x.reshape(n, nkv, hd).transpose(1, 0, 2)
        assert np.abs(got - x).max() <= np.abs(x).max(-1, keepdims=True).max() / levels  # half a level, with room
    q = a["q"].reshape(T, nq, hd).transpose(1, 0, 2)
    s = q @ np.repeat(k, g, 0).transpose(0, 2, 1) / np.sqrt(hd) + np.triu(np.full((T, n), -np.inf), k=P + 1)
    s = np.exp(s - s.max(-1, keepdims=True))
    want = ((s / s.sum(-1, keepdims=True)) @ np.repeat(v, g, 0)).transpose(1, 0, 2).reshape(T, nq * hd)
    assert np.abs(out - want).max() < 2e-3 * np.abs(a["v"]).max()


def test_bad_token_id_is_a_clear_error(tmp_path, tiny_dir):
    (tmp_path / "s.json").write_text(json.dumps([{"op": "forward", "state": "a", "ids": [10**6]}]))
    r = subprocess.run(["node", str(DRIVER), str(DIST), str(tiny_dir), str(tmp_path / "s.json"), str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "outside the vocabulary" in r.stderr


# --- in Chromium: which engine device "wasm" runs ----------------------------------------------

from test_web import blank_page, browser_type_launch_args, models, server  # noqa: E402, F401  (fixtures)


def test_browser_wasm_runs_nomoats_decoder_and_ort_stays_selectable(browser, server):  # noqa: F811
    got = {}
    for engine in ("nomoat", "ort"):
        ctx = browser.new_context()
        page = blank_page(ctx, server)
        urls: list[str] = []
        page.context.on("request", lambda r, urls=urls: urls.append(r.url))
        got[engine] = page.evaluate("""async (engine) => {
            const s = await llm.create({model: "/models/tiny/", device: "wasm", temperature: 0, maxTokens: 12,
                                        wasmEngine: engine});
            return {text: await s.prompt("hello there"), device: s.device};
        }""", engine)
        got[engine]["files"] = {u.split("/")[-1] for u in urls}
        ctx.close()
    assert got["nomoat"]["device"] == got["ort"]["device"] == "wasm"
    assert got["nomoat"]["text"] == got["ort"]["text"]  # greedy: the same tokens
    decoder = {"nomoat-decoder.wasm", "nomoat-decoder-mt.wasm"}  # 1 thread | 2 (cross-origin isolated: this one)
    assert "nomoat_tensors.json" in got["nomoat"]["files"] and decoder & got["nomoat"]["files"]
    assert not {"nomoat_wasm.onnx", "nomoat_wasm.json"} & got["nomoat"]["files"]  # no graph, no f32 recipe
    assert {"nomoat_wasm.onnx", "nomoat_wasm.json"} <= got["ort"]["files"]
    assert not decoder & got["ort"]["files"]
    # nomoat's decoder loads no onnxruntime-web at all (engine_ort.mjs is its only importer)
    assert not {f for f in got["nomoat"]["files"] if f.startswith("ort") or f == "engine_ort.mjs"}
    assert "engine_ort.mjs" in got["ort"]["files"] and "ort.wasm.min.mjs" in got["ort"]["files"]


def test_browser_bad_wasm_engine_is_a_type_error(browser, server):  # noqa: F811
    page = blank_page(browser, server)
    r = page.evaluate("""async () => {
        try { await llm.create({model: "/models/tiny/", device: "wasm", wasmEngine: "fast"}); return null; }
        catch (e) { return {name: e.name, message: e.message}; }
    }""")
    page.close()
    assert r["name"] == "TypeError" and "wasmEngine" in r["message"]


JS_THREADS = """async ([model, ids, steps]) => {
    const {WasmEngine} = await import("/wasm_engine.mjs");
    const get = async (f) => new Uint8Array(await (await fetch(model + f)).arrayBuffer());
    const json = async (f) => JSON.parse(new TextDecoder().decode(await get(f)));
    const data = await get("onnx/model_q4.onnx_data"), tensors = await json("onnx/nomoat_tensors.json");
    const config = await json("config.json");
    const out = {isolated: crossOriginIsolated};
    for (const threads of [1, 2]) {
        const e = await WasmEngine.create({data, tensors, config, threads});
        const st = e.newState();
        const prefill = Array.from(await e.forward(st, ids, true));
        const t0 = performance.now();
        const decode = [];
        for (let i = 0; i < steps; i++) decode.push(...await e.forward(st, [ids[i]], false));
        out[threads] = {prefill, decode, ms: (performance.now() - t0) / steps, threads: e.threads};
    }
    return out;
}"""


def test_browser_two_threads_give_the_same_logits(browser, server, tiny_dir):  # noqa: F811
    """The kernels split rows and heads between the engine and its helper thread (shared memory,
    cross-origin isolated): the logits are bit-for-bit those of one thread."""
    page = blank_page(browser, server)
    vocab = json.loads((tiny_dir / "config.json").read_text())["vocab_size"]
    ids = [int(i) for i in np.random.default_rng(3).integers(3, vocab, 70)]
    r = page.evaluate(JS_THREADS, ["/models/tiny/", ids, 8])
    page.close()
    assert r["isolated"] is True and r["1"]["threads"] == 1 and r["2"]["threads"] == 2
    assert len(r["1"]["prefill"]) == 70 * vocab and len(r["1"]["decode"]) == 8 * vocab
    assert r["1"]["prefill"] == r["2"]["prefill"] and r["1"]["decode"] == r["2"]["decode"]
