"""The browser extension (examples/extension/) end to end: Debian's headless Chromium loads the
unpacked extension (built by examples/extension/build.py into a temporary folder), and its popup page
and its panel (framed by the content script on a localhost page) ask the model that lives in the
extension's offscreen document. Offline: the extension carries its own runtime and model, and the
browser's network goes to tests/offline.py's trap.

A second, throwaway extension plays the intruder: it must not get through to nomoat."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from offline import CHROMIUM, browser_flags

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240_000  # ms
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def _load_build():
    path = ROOT / "examples" / "extension" / "build.py"
    spec = importlib.util.spec_from_file_location("nomoat_extension_build", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def extension_dir(tmp_path_factory, default_model_dir, tiny_dir) -> Path:
    build = _load_build()
    try:
        out = build.build(tmp_path_factory.mktemp("extension") / "nomoat", model=default_model_dir)
    except SystemExit as e:  # build.BuildError: web/dist or the model is missing, with what to run
        pytest.fail(f"could not build the extension: {e}", pytrace=False)
    shutil.copytree(tiny_dir, out / "nomoat" / "models" / "tiny")  # for the WebGPU check (SwiftShader is slow)
    shutil.copytree(minilm_dir(), out / "nomoat" / "models" / EMBEDDER)  # llm.embeddings' default model
    return out


EMBEDDER = "all-MiniLM-L6-v2"


@functools.cache
def minilm_dir() -> Path:
    from nomoat.catalog import convert_named

    return convert_named(EMBEDDER)


@pytest.fixture(scope="module")
def intruder_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("intruder")
    (d / "manifest.json").write_text(json.dumps({
        "manifest_version": 3, "name": "intruder", "version": "1.0", "background": {"service_worker": "sw.js"}}))
    (d / "sw.js").write_text("// tries to use nomoat from outside (tests/test_extension.py)\n")
    return d


def launch(playwright, profile: Path, extensions: list[Path], *flags: str):
    paths = ",".join(map(str, extensions))
    ctx = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True,
        args=[*browser_flags(), *flags, f"--disable-extensions-except={paths}", f"--load-extension={paths}"])
    ctx.set_default_timeout(TIMEOUT)
    deadline = time.monotonic() + 30
    while len(ctx.service_workers) < len(extensions) and time.monotonic() < deadline:
        ctx.wait_for_event("serviceworker", timeout=30_000)
    return ctx, {w.evaluate("chrome.runtime.getManifest().name"): w for w in ctx.service_workers}


@pytest.fixture(scope="module")
def ext(playwright, extension_dir, intruder_dir, tmp_path_factory):
    """(context, extension id, nomoat's service worker, the intruder's service worker)."""
    ctx, workers = launch(playwright, tmp_path_factory.mktemp("profile"), [extension_dir, intruder_dir])
    assert set(workers) == {"nomoat: a local LLM", "intruder"}, [w.url for w in ctx.service_workers]
    nomoat_sw = workers["nomoat: a local LLM"]
    yield ctx, nomoat_sw.url.split("/")[2], nomoat_sw, workers["intruder"]
    ctx.close()


@pytest.fixture
def popup(ext):
    ctx, ext_id, _, _ = ext
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"chrome-extension://{ext_id}/popup.html?temperature=0")
    yield page
    page.close()
    assert errors == []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A plain localhost web page (where the content script runs)."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<!doctype html><title>a page</title><h1>A page on localhost</h1>")
    yield from serve_folder(root)


def serve_folder(root: Path):
    """A plain static server for `root` on localhost (a generator fixture body: yields its URL)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


# --- the popup page ------------------------------------------------------------------------------------

def test_popup_answers_through_the_offscreen_document(popup):
    r = popup.evaluate("""async (q) => {
        const events = [];
        const a = await llm.create({temperature: 0, monitor(m) {
            m.addEventListener("nomoatdevice", (e) => events.push(e.detail));
            m.addEventListener("downloadprogress", (e) => events.push({type: "downloadprogress", loaded: e.loaded}));
        }});
        const text = await a.prompt(q);
        const b = await llm.create({temperature: 0});
        const chunks = [];
        for await (const c of b.promptStreaming(q)) chunks.push(c);
        return {text, chunks, device: a.device, stats: b.lastStats, events,
                cores: navigator.hardwareConcurrency, pageIsolated: crossOriginIsolated};
    }""", QUESTION)
    assert r["text"] == ANSWER
    assert len(r["chunks"]) > 1 and "".join(r["chunks"]) == ANSWER  # streamed, piece by piece
    assert r["stats"]["completion_tokens"] >= len(r["chunks"])
    assert r["device"] == "wasm"  # no WebGPU adapter in this headless Chromium
    device = next(e for e in r["events"] if e.get("type") == "device")
    # The manifest's COOP/COEP keys make extension pages (and the worker) cross-origin isolated:
    # SharedArrayBuffer, so onnxruntime-web runs multi-threaded.
    assert r["pageIsolated"] is True and device["crossOriginIsolated"] is True
    assert device["threads"] == max(1, min(8, r["cores"]))


def test_popup_ui_streams_and_stops(popup):
    popup.fill("#input", QUESTION)
    popup.click("#send")
    popup.wait_for_selector(".assistant[data-done='1']")
    assert popup.text_content(".assistant") == ANSWER
    assert int(popup.get_attribute(".assistant", "data-chunks")) > 1
    # An AbortSignal crosses to the offscreen document as an "abort" message; the session stays usable.
    r = popup.evaluate("""async () => {
        const s = await llm.create({temperature: 0, maxTokens: 200});
        const c = new AbortController();
        let text = "", error = null;
        try {
            for await (const piece of s.promptStreaming("Write a long story about a dragon.", {signal: c.signal})) {
                text += piece;
                if (text.length > 20) c.abort();
            }
        } catch (e) { error = {name: e.name, isDOMException: e instanceof DOMException}; }
        return {text, error, next: await s.prompt("What is the capital of France?")};
    }""")
    assert r["error"] == {"name": "AbortError", "isDOMException": True}
    assert 20 < len(r["text"]) < 1000  # stopped long before its 200 tokens
    assert isinstance(r["next"], str) and r["next"]


def test_popup_structured_output_crosses_the_port(popup):
    """responseConstraint (a JSON Schema, or a RegExp sent as {regex, flags}) reaches the model."""
    r = popup.evaluate("""async () => {
        const s = await llm.create({temperature: 0, maxTokens: 64});
        const schema = {type: "object", properties: {city: {type: "string", maxLength: 20}}, required: ["city"],
                        additionalProperties: false};
        const json = await s.prompt("What is the capital of France?", {responseConstraint: schema});
        const word = await s.prompt("Is Paris in France?", {responseConstraint: /(yes|no)/});
        let bad = null;
        try { await s.prompt("x", {responseConstraint: {type: "string", format: "email"}}); }
        catch (e) { bad = e.name; }
        return {json, word, bad};
    }""")
    value = json.loads(r["json"])
    assert list(value) == ["city"] and len(value["city"]) <= 20
    assert r["word"] in ("yes", "no")
    assert r["bad"] == "NotSupportedError"


def test_extension_csp_blocks_eval_where_the_model_runs(popup):
    """The model ran (above) under MV3's extension CSP, which allows 'wasm-unsafe-eval' but not eval:
    check that the CSP is really in force in an extension page and in nomoat's module worker.
    (Evaluated after an await: DevTools' own evaluation is exempt from CSP, later tasks are not.)"""
    check = """async () => {
        await new Promise((r) => setTimeout(r, 0));
        const out = {};
        try { out.eval = new Function("return 'ran'")(); } catch (e) { out.eval = e.name; }
        const bytes = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);
        try { await WebAssembly.compile(bytes); out.wasm = "ok"; } catch (e) { out.wasm = e.name; }
        return out;
    }"""
    csp = popup.evaluate("async () => (await fetch('offscreen.html')).headers.get('content-security-policy')")
    assert csp == "script-src 'self' 'wasm-unsafe-eval'; object-src 'self'"
    assert popup.evaluate(check) == {"eval": "EvalError", "wasm": "ok"}
    with popup.expect_worker() as w:
        popup.evaluate("() => { window.w = new Worker('nomoat/worker.mjs', {type: 'module'}); }")
    assert w.value.evaluate(check) == {"eval": "EvalError", "wasm": "ok"}


def test_webgpu_in_the_extension(playwright, extension_dir, tiny_dir, tmp_path_factory):
    """onnxruntime-web's WebGPU build also runs under the extension CSP (SwiftShader, the tiny model)."""
    import nomoat

    ctx, workers = launch(playwright, tmp_path_factory.mktemp("gpu-profile"), [extension_dir], "--enable-unsafe-webgpu")
    try:
        page = ctx.new_page()
        page.goto(f"chrome-extension://{workers['nomoat: a local LLM'].url.split('/')[2]}/popup.html")
        r = page.evaluate("""async () => {
            const s = await llm.create({device: "webgpu", model: "nomoat/models/tiny/", temperature: 0, maxTokens: 64});
            const chunks = [];
            for await (const c of s.promptStreaming("hello there")) chunks.push(c);
            return {device: s.device, chunks, ids: s.lastStats.token_ids};
        }""")
    finally:
        ctx.close()
    want = nomoat.load(tiny_dir, accuracy_level=0).session(temperature=0, max_tokens=64)
    text = want.prompt_sync("hello there")
    assert r["device"] == "webgpu"
    assert r["ids"] == want.last.token_ids and len(set(r["ids"])) > 10
    assert "".join(r["chunks"]) == text and len(r["chunks"]) > 1


# --- the content script on a web page ----------------------------------------------------------------

def panel_of(page, ext_id: str):
    """The "Ask nomoat" panel's frame on `page` (Playwright reaches into it as the user's browser does;
    the page's own scripts cannot)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for f in page.frames:
            if f.url.startswith(f"chrome-extension://{ext_id}/panel.html"):
                f.wait_for_selector("#ask")
                return f
        page.wait_for_timeout(100)
    raise AssertionError(f"no panel on {page.url}: {[f.url for f in page.frames]}")


def test_content_script_panel_answers_on_a_localhost_page(ext, site):
    """content.js shows the panel (panel.html, an extension page) in an iframe; the panel asks the
    offscreen document over its own port. tests/test_extension_isolation.py attacks it from the page."""
    ctx, ext_id, _, _ = ext
    page = ctx.new_page()
    page.goto(site)
    # The page's own scripts see neither a client nor a way to message the extension, nor the panel.
    seen = page.evaluate("""async (id) => {
        const out = {llm: typeof window.llm, frames: window.length,
                     iframes: document.querySelectorAll("iframe").length};
        if (!(window.chrome && chrome.runtime && chrome.runtime.sendMessage)) out.runtime = "absent";
        else try { out.runtime = await chrome.runtime.sendMessage(id, {type: "nomoat:ensure"}); }
             catch (e) { out.runtime = "error: " + e.message; }
        return out;
    }""", ext_id)
    assert seen["llm"] == "undefined" and seen["iframes"] == 0 and seen["frames"] == 0
    assert seen["runtime"] == "absent" or seen["runtime"].startswith("error"), seen
    panel = panel_of(page, ext_id)
    panel.fill("#question", QUESTION)
    panel.wait_for_selector("body[data-visible='true']", state="attached")  # IntersectionObserver v2
    panel.wait_for_timeout(700)  # visible for 500 ms before it sends (panel.js)
    # A click made by a script (isTrusted false) does not reach the model.
    panel.evaluate("document.getElementById('ask').click()")
    assert panel.get_attribute("#status", "data-refused") == "1"
    assert panel.get_attribute("#answer", "data-done") is None
    # A real click does.
    panel.click("#ask")
    panel.wait_for_selector("#answer[data-done='1']")
    assert panel.text_content("#answer") == ANSWER
    assert int(panel.get_attribute("#answer", "data-chunks")) > 1
    page.close()


# --- who may talk to the back end ----------------------------------------------------------------------

def test_another_extension_is_refused(ext):
    ctx, ext_id, nomoat_sw, intruder = ext
    nomoat_sw.evaluate("ensure()")  # the back end is up and listening: a refusal is nomoat's doing
    r = intruder.evaluate("""async (id) => {
        const out = {};
        try { out.send = await chrome.runtime.sendMessage(id, {type: "nomoat:ensure"}); }
        catch (e) { out.send = "error: " + e.message; }
        out.port = await new Promise((resolve) => {
            const got = [];
            const port = chrome.runtime.connect(id, {name: "nomoat"});
            port.onMessage.addListener((m) => got.push(m));
            port.onDisconnect.addListener(() => resolve({got, disconnected: true}));
            port.postMessage({kind: "create", id: 1, payload: {options: {temperature: 0}}});
            port.postMessage({kind: "prompt", id: 2, payload: {session: "x", input: "hi"}});
            setTimeout(() => resolve({got, disconnected: false}), 5000);
        });
        return out;
    }""", ext_id)
    assert isinstance(r["send"], str) and r["send"].startswith("error"), r
    assert r["port"]["disconnected"] is True
    # Nothing but, at most, a refusal: no hello, no session, no answer.
    assert all(m["kind"] == "reject" and m["payload"]["name"] == "SecurityError" for m in r["port"]["got"]), r


def test_sender_check(ext):
    """nomoatTrusted (trust.js) in nomoat's own service worker, on the senders Chrome can report: this
    extension's pages only (the panel too, framed in a tab), never a content script or a web page."""
    ctx, ext_id, nomoat_sw, _ = ext
    origin = f"chrome-extension://{ext_id}"
    page = {"id": ext_id, "origin": origin, "url": origin + "/popup.html"}
    content = {"id": ext_id, "origin": "http://127.0.0.1:8000", "url": "http://127.0.0.1:8000/a?b", "tab": {"id": 7},
               "frameId": 0}
    cases = [
        (page, True),
        ({**page, "tab": {"id": 3}, "frameId": 0}, True),  # popup.html opened in a tab
        ({**page, "url": origin + "/panel.html", "tab": {"id": 7}, "frameId": 4}, True),  # the panel on a page
        (content, False),  # a content script, ours included: it runs in the web page's renderer
        ({**content, "origin": "http://localhost:5000", "url": "http://localhost:5000/"}, False),
        ({**page, "id": "a" * 32}, False),  # another extension's page
        ({"id": "a" * 32, "origin": f"chrome-extension://{'a' * 32}", "url": f"chrome-extension://{'a' * 32}/x"},
         False),
        ({**content, "id": None}, False),  # a web page (externally_connectable)
        ({**page, "origin": "http://127.0.0.1:8000"}, False),  # origin and URL disagree
        ({**page, "url": "https://evil.example/"}, False),
        ({**page, "url": origin + "evil.example/"}, False),
        ({**page, "origin": None}, False),
        (None, False),
    ]
    got = nomoat_sw.evaluate("(cases) => cases.map(([sender]) => nomoatTrusted(sender))", cases)
    assert got == [want for _, want in cases]


def test_sessions_belong_to_their_port(popup):
    """A raw port speaking window.llm's protocol: another port's session handle, unknown kinds and bad
    options fail; the extension's own runtime files are used whatever assets the client names."""
    r = popup.evaluate("""async () => {
        await chrome.runtime.sendMessage({type: "nomoat:ensure"});
        const open = () => new Promise((resolve) => {
            const port = chrome.runtime.connect({name: "nomoat"});
            const waiting = new Map();
            port.onMessage.addListener((m) => {
                if (m.kind === "hello") resolve(ask);
                const w = waiting.get(m.id);
                if (w && (m.kind === "return" || m.kind === "throw")) { waiting.delete(m.id); w(m); }
            });
            let next = 1;
            const ask = (kind, payload) => new Promise((res) => {
                const id = next++;
                waiting.set(id, res);
                port.postMessage({kind, id, payload});
            });
        });
        const a = await open(), b = await open();
        const model = new URL("nomoat/models/SmolLM2-135M-Instruct/", location.href).href;
        const evil = {pyodide: "https://evil.example/", ort: "https://evil.example/", wheels: ["https://evil.example/x.whl"]};
        const made = await a("create", {model, device: "wasm", assets: evil, options: {temperature: 0, max_tokens: 4}});
        const sid = made.payload.session;
        return {
            made: made.kind,
            own: (await a("prompt", {session: sid, input: "hi", options: {}})).kind,
            foreign: (await b("prompt", {session: sid, input: "hi", options: {}})).payload.name,
            foreignDestroy: (await b("destroy", {session: sid})).payload.name,
            unknown: (await a("eval", {code: "1"})).payload.name,
            noPayload: (await a("prompt", "hi")).payload.name,
            huge: (await a("prompt", {session: sid, input: "x".repeat(300000)})).payload.name,
            badOption: (await a("create", {model, device: "wasm", options: {temperature: "hot"}})).payload.name,
            badDevice: (await a("create", {model, device: "cuda", options: {}})).payload.name,
            stillOwn: (await a("prompt", {session: sid, input: "hi", options: {}})).kind,
        };
    }""")
    assert r == {"made": "return", "own": "return", "foreign": "InvalidStateError",
                 "foreignDestroy": "InvalidStateError", "unknown": "TypeError", "noPayload": "TypeError",
                 "huge": "QuotaExceededError", "badOption": "TypeError", "badDevice": "TypeError", "stillOwn": "return"}


def test_the_whole_prompt_api_crosses_the_port(popup):
    """append, measureContextUsage, clone, a message list with a prefix, and availability: the
    offscreen document relays window.llm's own protocol, so everything a page can do works here."""
    r = popup.evaluate("""async (q) => {
        const s = await llm.create({temperature: 0, maxTokens: 32,
                                    initialPrompts: [{role: "system", content: "You are a helpful assistant."}]});
        const before = s.contextUsage;
        const measured = await s.measureContextUsage(q);
        await s.append([{role: "user", content: "Remember the number 7."}, {role: "assistant", content: "OK."}]);
        const appended = s.contextUsage;
        const twin = await s.clone();
        const twinUsage = twin.contextUsage;
        const answer = await twin.prompt(q);
        const original = await s.prompt(q);
        const prefixed = await s.prompt([{role: "user", content: q},
                                         {role: "assistant", content: "The capital", prefix: true}]);
        let overflow = null;
        try { await s.prompt("word ".repeat(Math.ceil(s.contextWindow * 1.2))); }
        catch (e) { overflow = {name: e.name, requested: e.requested > 0}; }
        return {before, measured, appended, twinUsage, answer, original, prefixed, overflow,
                availability: await llm.availability(), gone: await (async () => {
                    twin.destroy();
                    try { await twin.prompt(q); } catch (e) { return e.name; }
                })()};
    }""", QUESTION)
    assert r["before"] > 0 and r["measured"] > 5
    assert r["appended"] > r["before"] and r["twinUsage"] == r["appended"]
    assert r["answer"] == r["original"] and r["answer"]
    assert r["prefixed"].startswith(" of France") or "Paris" in r["prefixed"], r["prefixed"]
    assert r["overflow"] == {"name": "QuotaExceededError", "requested": True}
    assert r["availability"] == "available"
    assert r["gone"] == "AbortError"


def test_openai_chat_completions_cross_the_port(popup):
    r = popup.evaluate("""async (q) => {
        const req = {model: "gpt-4o-mini", temperature: 0, max_tokens: 32, messages: [{role: "user", content: q}]};
        const whole = await llm.chat.completions.create(req);
        const chunks = [];
        for await (const c of await llm.chat.completions.create({...req, stream: true,
                                                               stream_options: {include_usage: true}})) chunks.push(c);
        const json = await llm.chat.completions.create({...req, response_format: {type: "json_schema",
            json_schema: {name: "city", schema: {type: "object", properties: {city: {type: "string", maxLength: 20}},
                                                 required: ["city"], additionalProperties: false}}}});
        return {whole, text: chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), last: chunks.at(-1),
                json: json.choices[0].message.content};
    }""", QUESTION)
    assert r["whole"]["object"] == "chat.completion"
    assert r["whole"]["choices"][0]["message"]["content"] == ANSWER
    assert r["whole"]["choices"][0]["finish_reason"] == "stop"
    assert r["whole"]["usage"]["total_tokens"] > r["whole"]["usage"]["completion_tokens"] > 0
    assert r["text"] == ANSWER
    assert r["last"]["choices"] == [] and r["last"]["usage"]["completion_tokens"] > 0
    assert list(json.loads(r["json"])) == ["city"]


def test_embeddings_cross_the_port(popup):
    """llm.embeddings in the popup: one "embed" request the offscreen document relays to its worker
    (with the extension's own assets); the vectors cross the JSON port as a list and come back as
    the Float32Array values CPython's embedder gives (cosine >= 0.9999), float and base64 alike."""
    import base64

    import numpy as np

    import nomoat

    texts = ["The cat sat on the mat.", "Paris is the capital of France.", "Embeddings cross the port."]
    r = popup.evaluate("""async (texts) => {
        const f = await llm.embeddings.create({input: texts});
        const b = await llm.embeddings.create({input: texts[0], encoding_format: "base64"});
        let bad;
        try { await llm.embeddings.create({input: [1, 2]}); } catch (e) { bad = e.name; }
        return {vectors: f.data.map((d) => d.embedding), model: f.model, usage: f.usage, b64: b.data[0].embedding, bad};
    }""", texts)
    want = np.asarray(nomoat.load(minilm_dir()).embed_sync(texts))
    got = np.asarray(r["vectors"], dtype=np.float32)
    assert got.shape == want.shape == (3, 384) and r["model"] == EMBEDDER and r["usage"]["prompt_tokens"] > 10
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999, cos
    assert np.array_equal(np.frombuffer(base64.b64decode(r["b64"]), "<f4"), got[0])  # the same float32 values
    assert r["bad"] == "TypeError"
