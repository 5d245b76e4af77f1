# ruff: noqa: F811  (the browser fixtures come from test_web and are used as arguments)
"""Same seed, same text: every nomoat sampler (numpy on CPython, JS next to the wasm decoder, WGSL on
the GPU) draws from one mulberry32 stream in one order (tests/test_sampling.py proves the draws equal
on the same logits), so where two engines' logits agree, a seeded answer is the same text."""

from __future__ import annotations

import pytest
from test_web import blank_page, browser_type_launch_args, gpu_browser, models, server  # noqa: F401

import nomoat

CASES = [("Name three primary colours.", 1), ("Write a haiku about the sea.", 2), ("What is a prime number?", 3),
         ("Give me a name for a cat.", 4), ("Describe the moon in one sentence.", 5), ("List two fruits.", 6)]
SAMPLING = {"temperature": 0.7, "top_k": 40}


def seeded_in_page(page, model: str, device: str, max_tokens: int) -> list[str]:
    return page.evaluate("""async ([model, device, cases, maxTokens]) => {
        const out = [];
        for (const [text, seed] of cases) {
            const s = await llm.create({model, device, temperature: 0.7, topK: 40, seed, maxTokens});
            out.push(await s.prompt(text));
            s.destroy();
        }
        return out;
    }""", [model, device, CASES, max_tokens])


def seeded_on_cpython(model, max_tokens: int) -> list[str]:
    return [model.session(seed=seed, max_tokens=max_tokens, **SAMPLING).prompt_sync(text) for text, seed in CASES]


def test_default_model_wasm_decoder_and_cpython_give_the_same_seeded_text(browser, server, default_model_dir):
    """The default engine against CPython's exact f32 math (their logits differ by ~1e-2, which can
    move a draw that lands on a boundary: at most one case of six may part, and then not at once)."""
    page = blank_page(browser, server)
    try:
        got = seeded_in_page(page, server + "/models/SmolLM2-135M-Instruct/", "wasm", 24)
    finally:
        page.close()
    want = seeded_on_cpython(nomoat.load(default_model_dir, accuracy_level=0, threads=2), 24)
    same = [g == w for g, w in zip(got, want, strict=True)]
    assert sum(same) >= len(CASES) - 1, list(zip(got, want, strict=True))
    assert all(g[:12] == w[:12] for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_tiny_model_every_engine_gives_cpythons_seeded_text(gpu_browser, server, tiny_dir, device):
    """The tiny model (f32 math everywhere): the same seeded text on nomoat's wasm decoder, on
    WebGPU (the GPU sampler) and on CPython."""
    page = blank_page(gpu_browser, server)
    try:
        got = seeded_in_page(page, server + "/models/tiny/", device, 12)
    finally:
        page.close()
    assert got == seeded_on_cpython(nomoat.load(tiny_dir, accuracy_level=0), 12)


SWEEP = ["What is the capital of France?", "Write a haiku about the sea.", "List three uses of copper.",
         "Why is the sky blue?", "Name a famous painter.", "How do bees make honey?", "What is 12 times 12?",
         "Translate 'good morning' to Spanish.", "Give a synonym for happy.", "What is photosynthesis?",
         "Suggest a name for a dog.", "How many legs does a spider have?", "What is the boiling point of water?",
         "Tell me a fun fact about octopuses.", "What does a compiler do?", "Describe a sunset in one line.",
         "What is the largest planet?", "Recommend a book for children.", "What is gravity?",
         "How do I make tea?", "What rhymes with cat?", "Who wrote Hamlet?", "What is an atom?",
         "Name two programming languages.", "What is the opposite of cold?", "Why do leaves change colour?",
         "What is a triangle?", "Give me a motivational quote.", "What do pandas eat?", "What is rain?"]


def test_greedy_sweep_wasm_decoder_against_exact_math(browser, server, default_model_dir):
    """30 prompts, greedy: the default engine (16-bit KV cache, int16 activations) against CPython's
    exact f32 math. Stated in README as measured: near-ties (top-2 margins of ~1e-2) may part them."""
    page = blank_page(browser, server)
    try:
        got = page.evaluate("""async ([model, prompts]) => {
            const out = [];
            for (const p of prompts) {
                const s = await llm.create({model, device: "wasm", temperature: 0, maxTokens: 32});
                out.push(await s.prompt(p));
                s.destroy();
            }
            return out;
        }""", [server + "/models/SmolLM2-135M-Instruct/", SWEEP])
    finally:
        page.close()
    exact = nomoat.load(default_model_dir, accuracy_level=0, threads=2)
    want = [exact.session(temperature=0, max_tokens=32).prompt_sync(p) for p in SWEEP]
    same = sum(g == w for g, w in zip(got, want, strict=True))
    print(f"greedy sweep: {same}/{len(SWEEP)} identical to exact f32")
    assert same >= len(SWEEP) - 3, [(g, w) for g, w in zip(got, want, strict=True) if g != w]
