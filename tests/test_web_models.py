"""Every architecture and quantization mix, in the browser, against CPython's exact math.

Tiny random GGUFs of each architecture nomoat converts (tests/test_architectures.py's shapes, each
with a different mix of GGUF types) are converted and served; headless Chromium answers greedy
prompts on nomoat's wasm decoder (device "wasm") and on WebGPU (SwiftShader), the full path: the
pure-Python tokenizer and chat template under Pyodide, the engine, the JS or WGSL sampler.

The oracle is teacher-forced: CPython's onnxruntime graph at accuracy level 0 (f32, within 1e-3 of
the numpy reference: test_architectures.py) computes the logits of the browser's own tokens; each
token the browser chose must be the argmax there, or within NEAR_TIE of it (the wasm decoder
rounds activations to int16 per block and keeps a 16-bit KV cache: logits within ~3e-3). So a
wrong engine cannot pass by luck, and a near-tie cannot fail it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_web import blank_page, browser_type_launch_args, gpu_browser  # noqa: F401, F811 (fixtures)

from nomoat.backends.ort_native import OrtNativeBackend
from nomoat.config import ModelConfig
from nomoat.convert import convert
from nomoat.convert.tiny import make_tiny_gguf

NEAR_TIE = 1e-2
PROMPTS = ["hello there", "The quick brown fox", "def add(a, b):", "Numbers: 7 8 9"]
MAX_TOKENS = 12
Q4_K_M = {"attn_v": "Q6_K", "ffn_down": "Q6_K"}
LONGROPE = {"rope_type": "longrope", "original_max_position_embeddings": 512}  # a window of 4096: the long factors
MODELS = {  # name → make_tiny_gguf arguments: each architecture with its own mix of GGUF types
    "llama-q4km": {"arch": "llama", "hidden": 256, "inter": 512, "head_dim": 64, "linear_type": "Q4_K",
                   "types": Q4_K_M, "embed_type": "Q6_K"},
    "llama3-q5": {"arch": "llama", "linear_type": "Q5_0", "tied": False, "embed_type": "F16",
                  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
    "qwen2-q8": {"arch": "qwen2", "linear_type": "Q8_0", "embed_type": "Q4_0"},
    "qwen3-q51": {"arch": "qwen3", "head_dim": 32, "linear_type": "Q5_1", "embed_type": "BF16"},
    "gemma3-mix": {"arch": "gemma3", "head_dim": 32, "n_layers": 6, "n_kv": 1, "sliding_window": 8,
                   "rope_theta": 1e6, "linear_type": "Q5_0", "types": {"attn_output": "Q8_0", "ffn_down": "Q4_1"}},
    "phi3-q41": {"arch": "phi3", "n_kv": 4, "linear_type": "Q4_1", "embed_type": "F32"},
    # the rope variants: Gemma 3 4B+'s linear scaling of its global layer, Phi-3.5's LongRoPE (long factors,
    # attention factor), Phi-4-mini's LongRoPE with partial rotary (24 of 32)
    "gemma3-linear": {"arch": "gemma3", "head_dim": 32, "n_layers": 6, "n_kv": 1, "sliding_window": 8,
                      "rope_theta": 1e6, "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "linear_type": "Q8_0"},
    "phi3-longrope": {"arch": "phi3", "n_kv": 4, "context": 4096, "linear_type": "Q4_0", "embed_type": "Q8_0",
                      "rope_scaling": LONGROPE},
    "phi4-partial": {"arch": "phi3", "hidden": 128, "n_heads": 4, "n_kv": 2, "head_dim": 32, "rope_dim": 24,
                     "context": 4096, "linear_type": "Q5_0", "rope_scaling": LONGROPE},
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("arch-models")
    for name, kw in MODELS.items():
        gguf = make_tiny_gguf(root / f"{name}.gguf", seed=11, **kw)
        convert(gguf, root / name)
        gguf.unlink()
    return root


@pytest.fixture(scope="module")
def arch_server(packages, gemma_dir):
    (packages / "gemma-3-270m").symlink_to(gemma_dir)
    from nomoat.serve import make_server

    srv = make_server(0, models=packages)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def answer_in_browser(owner, server: str, name: str, device: str) -> list[dict]:
    page = blank_page(owner, server)
    try:
        return page.evaluate("""async ([model, device, prompts, n]) => {
            const out = [];
            for (const p of prompts) {
                const s = await llm.create({model, device, temperature: 0, maxTokens: n});
                const text = await s.prompt(p);
                out.push({prompt: p, text, ids: s.lastStats.token_ids, device: s.device});
                s.destroy();
            }
            return out;
        }""", [f"{server}/models/{name}/", device, PROMPTS, MAX_TOKENS])
    finally:
        page.close()


def check_teacher_forced(pkg: Path, answers: list[dict]) -> list[float]:
    """Each browser token against CPython's exact logits at its position; returns the gaps."""
    import nomoat

    model = nomoat.load(pkg, accuracy_level=0, threads=2)
    backend = OrtNativeBackend(pkg, ModelConfig.from_dir(pkg), threads=2, accuracy_level=0)
    gaps = []
    for a in answers:
        prompt = model.encode_chat([{"role": "user", "content": a["prompt"]}])
        ids = [int(t) for t in a["ids"]]
        assert ids, a
        run = backend.forward_all(backend.new_state(), prompt + ids)
        with ThreadPoolExecutor(1) as pool:  # playwright's sync API holds this thread's event loop
            logits = np.asarray(pool.submit(asyncio.run, run).result())
        logits = logits.reshape(-1, logits.shape[-1])[len(prompt) - 1: len(prompt) - 1 + len(ids)]
        for i, (row, tok) in enumerate(zip(logits, ids, strict=True)):
            gap = float(row.max() - row[tok])
            assert gap <= NEAR_TIE, (a["prompt"], i, tok, int(row.argmax()), gap, a["text"])
            gaps.append(gap)
    return gaps


@pytest.mark.parametrize("name", list(MODELS))
def test_wasm_decoder_greedy_equals_exact_math(browser, arch_server, packages, name):
    answers = answer_in_browser(browser, arch_server, name, "wasm")
    assert {a["device"] for a in answers} == {"wasm"}
    gaps = check_teacher_forced(packages / name, answers)
    print(f"{name} wasm: {len(gaps)} tokens, {sum(g == 0 for g in gaps)} exact argmax, max gap {max(gaps):.2e}")


@pytest.mark.parametrize("name", list(MODELS))
def test_webgpu_greedy_equals_exact_math(gpu_browser, arch_server, packages, name):  # noqa: F811
    answers = answer_in_browser(gpu_browser, arch_server, name, "webgpu")
    assert {a["device"] for a in answers} == {"webgpu"}
    gaps = check_teacher_forced(packages / name, answers)
    print(f"{name} webgpu: {len(gaps)} tokens, max gap {max(gaps):.2e}")


QA = "Q: What is the capital of France?\nA:"


def test_gemma_3_270m_in_the_page(browser, arch_server, packages):
    """The second real model on the default engine, asked by its bare name: a base model, so the
    prompt is text to continue. Its answer to a question names Paris; its greedy continuation of
    "The capital of France is" (" the capital of the country of France…", as llama.cpp's and
    transformers' too: Paris is only its third candidate) is CPython's exact math, token for token."""
    page = blank_page(browser, arch_server)
    try:
        r = page.evaluate("""async ([qa, lead]) => {
            const s = await llm.create({model: "gemma-3-270m", device: "wasm", temperature: 0, maxTokens: 12});
            const answer = await s.prompt(qa);
            const t = await llm.create({model: "gemma-3-270m", device: "wasm", temperature: 0, maxTokens: 12});
            const text = await t.prompt(lead);
            const refused = await llm.create({model: "gemma-3-270m", device: "wasm",
                                              initialPrompts: [{role: "system", content: "Be brief."}]})
              .then(() => "created", (e) => `${e.name}: ${e.message}`);
            return {answer, lead: {prompt: lead, text, ids: t.lastStats.token_ids}, window: s.contextWindow, refused};
        }""", [QA, "The capital of France is"])
    finally:
        page.close()
    assert "Paris" in r["answer"], r
    assert r["window"] == 32768
    assert "base model" in r["refused"] and "system" in r["refused"], r["refused"]
    gaps = check_teacher_forced(packages / "gemma-3-270m", [r["lead"]])
    assert r["lead"]["text"].startswith(" the capital of the country of France"), r["lead"]
    print(f"gemma-3-270m wasm: {len(gaps)} tokens, max gap {max(gaps):.2e}")
