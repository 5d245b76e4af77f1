"""Embeddings in the page, end to end: llm.embeddings.create in Debian's headless Chromium (the
worker, Pyodide's WordPiece tokenizer and batching, onnxruntime-web on all-MiniLM-L6-v2's package),
against CPython's numpy reference encoder (nomoat.backends.reference_encoder) on a fixed sentence
set: every vector's cosine >= 0.9999, on wasm and on WebGPU (SwiftShader); OpenAI's shape, base64,
the errors; and examples/rag retrieving the right passage for questions with known answers. Offline:
served by `nomoat serve`'s server on localhost."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np
import pytest
from offline import CHROMIUM, browser_flags

TIMEOUT = 180_000  # ms
MODEL = "all-MiniLM-L6-v2"
RAG = Path(__file__).resolve().parents[1] / "examples" / "rag"

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Crème brûlée à la française, s'il vous plaît — naïve café owners!",
    "東京は日本の首都です。北京和上海也是大城市。",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is one of the longest words in English.",
    "Hello, world!!! (really?) -- yes: 42% of $3.50 ... #hashtag @user",
    "",
    " ".join(["The printing press changed how knowledge moved through Europe, and within fifty years presses "
              "were running in more than two hundred cities."] * 5),
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": browser_flags()}


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    from nomoat.catalog import convert_named

    return convert_named(MODEL)


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def reference(tokenizer):
    """text → the numpy reference encoder's vector (from the original safetensors), one text at a time."""
    from nomoat.catalog import fetch, find
    from nomoat.convert.encoder import reference_encoder

    enc = reference_encoder(fetch(find(MODEL)))

    def vector(text: str, limit: int | None = None) -> np.ndarray:
        ids = tokenizer.encode(text).ids
        if limit is not None and len(ids) > limit:
            ids = ids[:limit - 1] + ids[-1:]  # truncated: the first limit-1 tokens and [SEP]
        ids = np.array([ids], dtype=np.int64)
        return np.asarray(enc.embeddings(ids, np.ones_like(ids)), dtype=np.float64)[0]

    return vector


@pytest.fixture(scope="module")
def server(minilm_dir, default_model_dir, tmp_path_factory):
    """nomoat serve's server: the embedding and chat models under /models/, examples/rag at /rag/."""
    from nomoat.serve import make_server

    root = tmp_path_factory.mktemp("served-embed")
    (root / MODEL).symlink_to(minilm_dir)
    (root / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    srv = make_server(0, models=root)
    handler = getattr(srv.RequestHandlerClass, "func", srv.RequestHandlerClass)
    if not any(prefix == "/rag/" for prefix, _ in handler.roots):  # (a nomoat serve that does not serve it yet)
        handler.roots = [("/rag/", RAG), *handler.roots]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


EMBED = """async ([request, asBase64]) => {
    const progress = [];
    try {
        const r = await llm.embeddings.create({...request, encoding_format: asBase64 ? "base64" : "float",
            monitor: (m) => m.addEventListener("downloadprogress", (e) => progress.push(e.loaded))});
        return {...r, progress};
    } catch (e) {
        return {error: {name: e.name, message: e.message, ctor: e.constructor.name}};
    }
}"""


def embed(page, asBase64: bool = False, **request) -> dict:
    return page.evaluate(EMBED, [request, asBase64])


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def check_vectors(got: dict, reference, texts: list[str]) -> list[float]:
    assert got.get("error") is None, got
    assert [d["index"] for d in got["data"]] == list(range(len(texts)))
    cos = [cosine(d["embedding"], reference(t)) for d, t in zip(got["data"], texts, strict=True)]
    assert min(cos) >= 0.9999, cos
    return cos


@pytest.fixture(scope="module")
def page(browser, server):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?load=0")
    yield page
    page.close()


def test_wasm_vectors_match_the_reference_in_openai_shape(page, reference, tokenizer):
    got = embed(page, model=MODEL, input=SENTENCES, device="wasm")
    check_vectors(got, reference, SENTENCES)
    assert got["object"] == "list" and got["model"] == MODEL
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in got["data"])
    tokens = sum(len(tokenizer.encode(t).ids) for t in SENTENCES)
    assert got["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert got["progress"][0] == 0 and got["progress"][-1] == 1  # downloadprogress, as llm.create's
    assert page.evaluate("crossOriginIsolated") is True
    # one string; the same text gives the same vector alone as in a padded batch
    one = embed(page, model=MODEL, input=SENTENCES[1], device="wasm")
    # loaded already: 0 then 1, as the spec's already-available path fires
    assert len(one["data"]) == 1 and one["progress"] == [0, 1]
    assert cosine(one["data"][0]["embedding"], got["data"][1]["embedding"]) >= 0.999999


def test_wasm_engines_nomoat_and_ort_both_match_the_reference(page, reference):
    """device wasm runs nomoat's own encoder (web/src/wasm_encoder.mjs: 12-bit weights, int16 activations)
    unless wasmEngine "ort" asks for onnxruntime-web; both within the bar, and not the same arithmetic."""
    own = embed(page, model=MODEL, input=SENTENCES, device="wasm", wasmEngine="nomoat")
    ort = embed(page, model=MODEL, input=SENTENCES, device="wasm", wasmEngine="ort")
    check_vectors(own, reference, SENTENCES)
    check_vectors(ort, reference, SENTENCES)
    assert [d["embedding"] for d in own["data"]] != [d["embedding"] for d in ort["data"]]
    bad = embed(page, model=MODEL, input="x", device="wasm", wasmEngine="fast")["error"]
    assert bad["name"] == "TypeError" and "wasmEngine" in bad["message"]


def test_base64_round_trip(page):
    floats = embed(page, model=MODEL, input=SENTENCES[:3], device="wasm")
    b64 = embed(page, True, model=MODEL, input=SENTENCES[:3], device="wasm")
    for f, b in zip(floats["data"], b64["data"], strict=True):
        v = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert v.shape == (384,) and np.array_equal(v, np.asarray(f["embedding"], dtype=np.float32))


def test_bad_input_is_refused_naming_the_fix(page, reference, tokenizer):
    assert embed(page, model=MODEL, input=[])["error"]["name"] == "TypeError"
    err = embed(page, model=MODEL, input=["ok", 7])["error"]
    assert err["ctor"] == "TypeError" and "input[1]" in err["message"]
    long = "word " * 400  # 402 tokens; the model reads 256
    err = embed(page, model=MODEL, input=["short", long], device="wasm")["error"]
    assert err["name"] == "QuotaExceededError" and "truncate" in err["message"], err
    cut = embed(page, model=MODEL, input=[long], device="wasm", truncate=True)
    assert cut.get("error") is None, cut
    assert cosine(cut["data"][0]["embedding"], reference(long, limit=256)) >= 0.9999
    assert cut["usage"]["prompt_tokens"] == 256
    err = page.evaluate("""async () => {
        try { await llm.create({model: "all-MiniLM-L6-v2", device: "wasm"}); return null; }
        catch (e) { return {name: e.name, message: e.message}; } }""")
    assert err["name"] == "NotSupportedError" and "embeddings.create" in err["message"]


@pytest.fixture(scope="module")
def gpu_browser(browser_type):
    b = browser_type.launch(executable_path=CHROMIUM, args=[*browser_flags(), "--enable-unsafe-webgpu"])
    yield b
    b.close()


def test_webgpu_vectors_match_the_reference(gpu_browser, server, reference):
    page = gpu_browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?load=0")
    texts = SENTENCES[:4]
    got = embed(page, model=MODEL, input=texts, device="webgpu")
    check_vectors(got, reference, texts)
    page.close()


# Questions about examples/rag's own document, and the passage (its paragraph, from 0) that answers each.
QUESTIONS = {
    "Who built the lighthouse on the reef off Scotland?": 0,
    "How do bees tell each other where the flowers are?": 1,
    "When did printing with movable type begin in Europe?": 2,
    "Which towns were buried by the volcano?": 3,
    "Where was coffee first grown for its beans?": 4,
    "Why are spring tides so high?": 5,
    "When is a player not allowed to castle?": 6,
    "Who stayed in orbit while the others walked on the Moon?": 7,
}


def test_rag_example_retrieves_the_right_passage_and_answers(browser, server):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/rag/?device=wasm")
    page.wait_for_function("window.rag && document.querySelector('#status').dataset.state")
    assert page.get_attribute("#status", "data-state") == "ready", page.text_content("#status")
    for question, want in QUESTIONS.items():
        hits = page.evaluate("(q) => rag.search(q, 3)", question)
        assert hits[0]["index"] == want, (question, hits)
    page.fill("#question", "Who built the Bell Rock Lighthouse?")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').dataset.state === 'ready' && "
                           "document.querySelector('#answer').textContent.length > 0")
    assert "Bell Rock" in page.text_content("#passages li")  # the passage shown first
    assert page.text_content("#answer").strip()
    page.close()
