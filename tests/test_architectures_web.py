"""Every architecture in the browser's onnxruntime-web engine on WebGPU (headless Chromium,
SwiftShader): a tiny package of each (tests/test_architectures.py's) answers "hello there" at
temperature 0 with exactly the tokens CPython's onnxruntime (accuracy level 0) gives, Gemma 3's past
its sliding window. Chromium runs offline (offline.py)."""

from __future__ import annotations

import threading

import pytest
from offline import CHROMIUM, browser_flags
from test_architectures import TINY

import nomoat
from nomoat.convert import convert
from nomoat.convert.tiny import make_tiny_gguf

TIMEOUT = 240_000  # ms
ARCHS = ["llama3", "qwen2", "qwen3", "gemma3", "phi3"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("arch_served")
    for name in ARCHS:
        gguf = make_tiny_gguf(root / f"{name}.gguf", seed=3, **TINY[name])
        convert(gguf, root / name)
    return root


@pytest.fixture(scope="module")
def server(packages):
    from nomoat.serve import make_server

    srv = make_server(0, models=packages)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def gpu_browser(browser_type):
    b = browser_type.launch(executable_path=CHROMIUM, args=[*browser_flags(), "--enable-unsafe-webgpu"])
    yield b
    b.close()


SAMPLING = {"temperature": 0.7, "top_k": 40, "seed": 5}  # seeded draws: tokens that follow the logits closely


@pytest.mark.parametrize("device", ["webgpu", "wasm"])
@pytest.mark.parametrize("name", ARCHS)
def test_engine_answers_as_cpython(gpu_browser, server, packages, name, device):
    """Greedy and seeded answers to "hello there" (24 tokens) equal CPython's (onnxruntime, f32). The
    seeded one discriminates: tiny random models repeat one token under greedy decoding, while a draw
    moves with the logits (Gemma 3 with a window of 9 instead of 8 draws another first token)."""
    page = gpu_browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?load=0")
    got = page.evaluate("""async ([model, device]) => {
        const out = [];
        for (const o of [{temperature: 0}, {temperature: 0.7, topK: 40, seed: 5}]) {
            let s;
            try { s = await llm.create({model, device, maxTokens: 24, ...o}); }
            catch (e) { return e.name + ': ' + e.message; }
            if (s.device !== device) return 'ran on ' + s.device;
            await s.prompt("hello there");
            out.push(s.lastStats.token_ids);
            s.destroy();
        }
        return out;
    }""", [f"/models/{name}/", device])
    page.close()
    model = nomoat.load(packages / name, accuracy_level=0)
    want = []
    for options in ({"temperature": 0}, SAMPLING):
        s = model.session(max_tokens=24, **options)
        s.prompt_sync("hello there")
        want.append(s.last.token_ids)
    assert got == want
