"""The browser runtime end to end: Debian's headless Chromium, the real onnxruntime-web and
Pyodide, served by `nomoat serve` on localhost, fully offline.

Two browsers: one without WebGPU (as most headless machines: "auto" falls back to wasm) and one
with --enable-unsafe-webgpu (SwiftShader: correct but slow, so it runs the tiny model)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from offline import CHROMIUM, browser_flags

import nomoat
from nomoat.package import DATA_FILE, ONNX_FILE, TENSORS_FILE, WASM_FILE

from conftest import load_fixture

TIMEOUT = 240_000  # ms


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": browser_flags()}


@pytest.fixture(scope="session")
def gpu_browser(browser_type):
    b = browser_type.launch(executable_path=CHROMIUM, args=[*browser_flags(), "--enable-unsafe-webgpu"])
    yield b
    b.close()


@pytest.fixture(scope="session")
def models(tmp_path_factory, default_model_dir, tiny_dir) -> Path:
    """The served models folder: the default model, the tiny one, and broken copies."""
    root = tmp_path_factory.mktemp("served")
    (root / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    shutil.copytree(tiny_dir, root / "tiny")
    corrupt = shutil.copytree(tiny_dir, root / "corrupt")
    for graph in (ONNX_FILE, WASM_FILE, TENSORS_FILE):  # same size, garbage bytes
        p = corrupt / graph
        p.write_bytes(b"\x07" * p.stat().st_size)
    truncated = shutil.copytree(tiny_dir, root / "truncated")
    data = truncated / DATA_FILE
    data.write_bytes(data.read_bytes()[:1000])
    return root


@pytest.fixture(scope="session")
def server(models):
    from nomoat.serve import make_server

    srv = make_server(0, models=models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def blank_page(owner, server: str):
    """A page of `owner` (a browser or a context) with window.llm and nothing loaded yet."""
    page = owner.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?load=0")
    return page


def watch_requests(page, server) -> list[str]:
    """Every URL the page (and its workers) asks for."""
    seen: list[str] = []
    page.context.on("request", lambda r: seen.append(r.url))
    return seen


def offsite(urls: list[str], server: str) -> list[str]:
    return [u for u in urls if not (u.startswith(server + "/") or u.startswith(("data:", "blob:")))]


def create(page, **options) -> dict:
    """llm.create in the page; returns {device} or {error: {name, message, ...}}."""
    return page.evaluate("""async (o) => {
        try { window.s = await llm.create(o); return {device: window.s.device, reason: window.s.deviceReason}; }
        catch (e) { return {error: {name: e.name, message: e.message, ctor: e.constructor.name}}; }
    }""", options)


def prompt(page, text: str, **options) -> dict:
    return page.evaluate("""async ([text, o]) => {
        try { const t = await window.s.prompt(text, o); return {text: t, stats: window.s.lastStats}; }
        catch (e) { return {error: {name: e.name, message: e.message, requested: e.requested,
                                    contextWindow: e.contextWindow}}; }
    }""", [text, options])


# --- the default model on wasm -------------------------------------------------------------------

@pytest.fixture(scope="module")
def wasm_page(browser, server):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    requests = watch_requests(page, server)
    page.goto(server + "/?temperature=0")
    page.wait_for_function("document.body.dataset.ready === '1' || document.querySelector('.error')")
    yield page, requests
    page.close()


def test_demo_page_answers_offline(wasm_page, server):
    page, requests = wasm_page
    assert page.evaluate("crossOriginIsolated") is True
    error = page.query_selector(".error")
    assert error is None, error.text_content()
    assert page.get_attribute("#device", "data-device") == "wasm"  # no WebGPU adapter here → wasm
    assert "no WebGPU" in page.text_content("#device") and "2 thread(s)" in page.text_content("#device")
    page.fill("#input", "What is the capital of France?")
    page.click("#send")
    page.wait_for_selector(".assistant[data-done='1']")
    assert page.text_content(".assistant") == "The capital of France is Paris."
    assert "tok/s" in page.text_content("#stats")
    assert len(requests) > 10 and offsite(requests, server) == []


PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three uses of copper."]


@pytest.fixture(scope="module")
def cpython_exact(default_model_dir):
    return nomoat.load(default_model_dir, accuracy_level=0, threads=2)


@pytest.mark.parametrize("text", PROMPTS)
def test_wasm_greedy_equals_cpython(wasm_page, cpython_exact, text):
    page, _ = wasm_page
    assert create(page, device="wasm", temperature=0, maxTokens=48) == {"device": "wasm", "reason": "asked for wasm"}
    got = prompt(page, text)
    s = cpython_exact.session(temperature=0, max_tokens=48)
    want = s.prompt_sync(text)
    assert got["stats"]["token_ids"] == s.last.token_ids
    assert got["text"] == want


def test_tokenizer_parity_with_cpython(wasm_page, cpython_exact):
    page, _ = wasm_page
    corpus = load_fixture("tokenizer_corpus.json")
    create(page, device="wasm")
    got = page.evaluate("async (texts) => await window.s.tokenize(texts)", corpus)
    assert got == [cpython_exact.tokenizer.encode(t) for t in corpus]


def test_abort_mid_stream_keeps_the_session_usable(wasm_page):
    page, _ = wasm_page
    create(page, device="wasm", temperature=0, maxTokens=200)
    r = page.evaluate("""async () => {
        const c = new AbortController();
        const reader = window.s.promptStreaming("Write a long story about a dragon.", {signal: c.signal}).getReader();
        let text = "", error = null;
        try {
            for (;;) {
                const {done, value} = await reader.read();
                if (done) break;
                text += value;
                if (text.length > 20) c.abort();
            }
        } catch (e) { error = {name: e.name, isDOMException: e instanceof DOMException}; }
        const reason = new Error("custom reason");
        const c2 = new AbortController(); c2.abort(reason);
        let passed = null;
        try { await window.s.prompt("hi", {signal: c2.signal}); } catch (e) { passed = e === reason; }
        const next = await window.s.prompt("What is the capital of France?");
        const usage = window.s.contextUsage;
        return {text, error, passed, next, usage};
    }""")
    assert r["error"] == {"name": "AbortError", "isDOMException": True}
    assert 20 < len(r["text"]) < 1000  # stopped long before its 200 tokens
    assert r["usage"] < 200  # the aborted exchange left the conversation (the Prompt API's abort)
    assert r["passed"] is True  # an already-aborted signal rejects with its own reason
    assert isinstance(r["next"], str) and r["next"]  # the session still works


# --- WebGPU (SwiftShader) on the tiny model ----------------------------------------------------------

def test_webgpu_greedy_equals_cpython(gpu_browser, server, tiny_dir):
    page = gpu_browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + "/?load=0")
    assert create(page, device="webgpu", model="/models/tiny/", temperature=0, maxTokens=64)["device"] == "webgpu"
    got = prompt(page, "hello there")
    s = nomoat.load(tiny_dir, accuracy_level=0).session(temperature=0, max_tokens=64)
    s.prompt_sync("hello there")
    assert got["stats"]["token_ids"] == s.last.token_ids
    assert len(set(s.last.token_ids)) > 10
    page.close()


# --- errors ------------------------------------------------------------------------------------------

@pytest.fixture
def page(browser, server):
    p = blank_page(browser, server)
    yield p
    p.close()


def test_model_url_404(page):
    r = create(page, model="/models/no-such-model/")
    assert r["error"]["name"] == "NotFoundError" and "HTTP 404" in r["error"]["message"]


def test_corrupt_model_file(page):
    r = create(page, model="/models/corrupt/", device="wasm")
    assert r["error"]["name"] == "DataError" and "convert" in r["error"]["message"]


def test_truncated_model_file(page):
    r = create(page, model="/models/truncated/", device="wasm")
    assert r["error"]["name"] == "DataError" and "truncated" in r["error"]["message"]


def test_webgpu_asked_but_unavailable(page):
    r = create(page, model="/models/tiny/", device="webgpu")
    assert r["error"]["name"] == "NotSupportedError" and "wasm" in r["error"]["message"]


def test_bad_options_are_type_errors(page):
    assert create(page, device="cuda")["error"]["ctor"] == "TypeError"
    r = create(page, model="/models/tiny/", device="wasm", temperature=-1)  # out of range: the Prompt API's RangeError
    assert r["error"]["ctor"] == "RangeError" and "temperature" in r["error"]["message"]


def test_prompt_longer_than_the_context(page):
    create(page, model="/models/tiny/", device="wasm", maxTokens=4)
    r = prompt(page, "hello there " * 400)
    assert r["error"]["name"] == "QuotaExceededError"
    assert r["error"]["contextWindow"] == 256 and r["error"]["requested"] > 256
    assert isinstance(prompt(page, "hello")["text"], str)


def test_destroy_then_create_again(page):
    r = page.evaluate("""async () => {
        const a = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3});
        await a.prompt("hello");
        a.destroy();
        let after = null;
        try { await a.prompt("again"); } catch (e) { after = e.name; }
        const b = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3});
        return {after, text: typeof (await b.prompt("hello"))};
    }""")
    assert r == {"after": "AbortError", "text": "string"}


def test_es_module_and_download_progress(page):
    r = page.evaluate("""async () => {
        const mod = await import("/nomoat.mjs");
        const events = [];
        const monitor = (m) => m.addEventListener("downloadprogress", (e) => events.push(e.loaded));
        const s = await mod.llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3, monitor});
        const after = events.length;
        await s.prompt("hello");
        return {same: mod.default === mod.llm, events, after, total: events.length,
                availability: await mod.llm.availability({device: "wasm"})};
    }""")
    assert r["same"] is True
    ev = r["events"]
    assert ev[0] == 0 and ev[-1] == 1 and ev == sorted(ev) and len(ev) >= 2
    assert all(abs(x * 65536 - round(x * 65536)) < 1e-9 for x in ev)
    assert r["after"] == r["total"]  # none after create() resolved
    assert r["availability"] == "available"


# --- the model cache (issue 6) --------------------------------------------------------------------

def model_files(page, model: str) -> dict:
    return page.evaluate("async (m) => (await llm.cache.list()).find((e) => e.model.endsWith(m)) || null", model)


def test_cache_makes_the_next_load_offline(browser, server, tiny_dir):
    ctx = browser.new_context()
    page = blank_page(ctx, server)
    progress = page.evaluate("""async () => {
        const seen = [];
        const s = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3,
                                    monitor(m) { m.addEventListener("nomoatprogress", (e) => seen.push(e.detail)); }});
        await s.prompt("hello");
        return seen.filter((p) => p.stage === "download");
    }""")
    files = {p["file"] for p in progress if "file" in p}
    assert {"config.json", "tokenizer.json", "onnx/model_q4.onnx_data"} <= files
    last = progress[-1]
    assert last["loaded"] == last["total"] and last["fraction"] == 1 and last["cached"] is False
    assert page.evaluate("llm.availability({model: '/models/tiny/', device: 'webgpu'})") == "unavailable"
    entry = model_files(page, "/models/tiny/")
    manifest = json.loads((tiny_dir / "nomoat.json").read_text())
    want = {"config.json", "tokenizer.json", "tokenizer_config.json", TENSORS_FILE, DATA_FILE}  # nomoat's wasm decoder
    assert entry["complete"] and entry["files"] == len(want) + 1  # + the manifest
    assert entry["bytes"] == sum(manifest["files"][f]["size"] for f in want) + (tiny_dir / "nomoat.json").stat().st_size
    page.close()

    blocked: list[str] = []

    def block(route):
        blocked.append(route.request.url)
        route.abort()

    ctx.route("**/models/tiny/**", block)  # the network is gone for the model
    page = blank_page(ctx, server)
    assert page.evaluate("llm.availability({model: '/models/tiny/'})") == "available"  # cached: no download
    assert page.evaluate("llm.availability({model: '/models/not-cached/'})") == "downloadable"
    r = page.evaluate("""async () => {
        const seen = [];
        const s = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3, temperature: 0,
                                    monitor(m) { m.addEventListener("nomoatprogress", (e) => seen.push(e.detail)); }});
        return {text: await s.prompt("hello"), cached: seen.filter((p) => p.file).every((p) => p.cached)};
    }""")
    assert blocked and r["cached"] is True and isinstance(r["text"], str)
    ctx.close()


def test_corrupt_cache_entry_is_refetched_never_used(browser, server):
    ctx = browser.new_context()
    page = blank_page(ctx, server)
    r = page.evaluate("""async () => {
        const ask = async () => { const s = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 8,
                                                             temperature: 0}); return s.prompt("hello"); };
        const first = await ask();
        const c = await caches.open("nomoat-models");
        const url = new URL("/models/tiny/onnx/model_q4.onnx_data", location.href).href;
        const good = new Uint8Array(await (await c.match(url)).arrayBuffer());
        const bad = good.slice(); bad.fill(7, 1000, 5000);  // same size, wrong bytes
        await c.put(url, new Response(bad));
        const deleted = await llm.cache.delete("/models/nothing-here/");
        return {first, good: good.length, deleted};
    }""")
    page.close()
    page = blank_page(ctx, server)  # a new worker: it must read the cache again
    r2 = page.evaluate("""async () => {
        const seen = [];
        const s = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 8, temperature: 0,
                                    monitor(m) { m.addEventListener("nomoatprogress", (e) => seen.push(e.detail)); }});
        const text = await s.prompt("hello");
        const data = seen.filter((p) => p.file === "onnx/model_q4.onnx_data").pop();
        const c = await caches.open("nomoat-models");
        const url = new URL("/models/tiny/onnx/model_q4.onnx_data", location.href).href;
        const now = new Uint8Array(await (await c.match(url)).arrayBuffer());
        return {text, refetched: data.cached === false, repaired: now[2000] !== 7 || now[3000] !== 7};
    }""")
    assert r["deleted"] is False
    assert r2 == {"text": r["first"], "refetched": True, "repaired": True}
    assert page.evaluate("llm.cache.delete('/models/tiny/')") is True
    assert model_files(page, "/models/tiny/") is None
    ctx.close()


def test_two_tabs_loading_one_model_download_it_once(browser, server, tiny_dir):
    """Two tabs of one profile create the same uncached model at the same moment: each file crosses
    the network once (the second tab waits on the first's Web Lock and reads the cache), the cache
    ends whole and correct, and both tabs answer alike."""
    ctx = browser.new_context()
    fetched: list[str] = []
    ctx.on("request", lambda r: fetched.append(r.url) if "/models/tiny/" in r.url else None)
    tabs = [blank_page(ctx, server) for _ in range(2)]
    start = """() => { window.created = llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 8,
                                                  temperature: 0}); return true; }"""
    for tab in tabs:  # both loads are under way before either is awaited
        tab.evaluate(start)
    answers = [tab.evaluate("async () => (await window.created).prompt('hello')") for tab in tabs]
    assert answers[0] == answers[1] and isinstance(answers[0], str)
    data_url = f"{server}/models/tiny/{DATA_FILE}"
    assert fetched.count(data_url) == 1, fetched
    manifest = json.loads((tiny_dir / "nomoat.json").read_text())
    for name in ("config.json", "tokenizer.json", TENSORS_FILE):
        assert fetched.count(f"{server}/models/tiny/{name}") == 1, (name, fetched)
    entry = model_files(tabs[1], "/models/tiny/")
    assert entry["complete"]
    cached = tabs[1].evaluate("""async (url) => {
        const r = await (await caches.open("nomoat-models")).match(url);
        const bytes = new Uint8Array(await r.arrayBuffer());
        const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
    }""", data_url)
    assert cached == manifest["files"][DATA_FILE]["sha256"]
    ctx.close()


def test_quota_error_is_reported_and_the_model_still_runs(browser, server):
    ctx = browser.new_context()
    page = blank_page(ctx, server)
    cdp = ctx.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": server, "quotaSize": 50_000})
    r = page.evaluate("""async () => {
        const warnings = [];
        const monitor = (m) => m.addEventListener("nomoatwarning", (e) => warnings.push(e.detail.warning));
        const s = await llm.create({model: "/models/tiny/", device: "wasm", maxTokens: 3, monitor});
        return {warnings, text: typeof (await s.prompt("hello"))};
    }""")
    assert r["text"] == "string"
    assert r["warnings"] and "quota" in r["warnings"][0] and "llm.cache.delete" in r["warnings"][0]
    ctx.close()


def test_script_tag_data_model(page, server):
    r = page.evaluate("""async () => {
        const el = document.createElement("script");
        el.src = "/nomoat.js"; el.dataset.model = "/models/tiny/"; el.dataset.device = "wasm";
        delete window.llm;
        await new Promise((ok) => { el.onload = ok; document.head.appendChild(el); });
        const s = await llm.create({maxTokens: 2});
        return {model: llm.defaultModel, device: s.device, text: typeof (await s.prompt("hi"))};
    }""")
    assert r == {"model": server + "/models/tiny/", "device": "wasm", "text": "string"}
