# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""llm.serve(): OpenAI's API on the page's own origin (dist/nomoat-sw.js, a Service Worker relaying to
the page), driven by the published clients, the `openai` npm package and LangChain's ChatOpenAI
(@langchain/openai), bundled by esbuild from web/node_modules, in headless Chromium on the default
model (SmolLM2-135M-Instruct, wasm) and all-MiniLM-L6-v2. The oracle for every answer is the same
page's llm.chat.completions.create / llm.embeddings.create called directly: through the endpoint,
greedy answers are the same text and vectors the same float32 values. Offline (tests/offline.py);
two origins (two ports of the same server) for the cross-origin refusals."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from offline import CHROMIUM, browser_flags

from nomoat.home import web_dist

TIMEOUT = 240_000  # ms
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "sw"
Q = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": browser_flags()}


@pytest.fixture(scope="module")
def site(tmp_path_factory, default_model_dir) -> Path:
    """The test pages and the clients' bundle, and the models folder (the default model, MiniLM)."""
    from nomoat.catalog import convert_named

    root = tmp_path_factory.mktemp("sw")
    for f in ("index.html", "plain.html"):
        (root / f).write_bytes((FIXTURE / f).read_bytes())
    esbuild = ROOT / "web" / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(FIXTURE / "clients.js"), "--bundle", "--format=iife", "--platform=browser",
                    "--target=es2022", f"--outfile={root / 'clients.bundle.js'}", "--log-level=warning"],
                   check=True, env={**os.environ, "NODE_PATH": str(ROOT / "web" / "node_modules")})
    models = root / "models"
    models.mkdir()
    (models / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    (models / "all-MiniLM-L6-v2").symlink_to(convert_named("all-MiniLM-L6-v2"))
    return root


def start(site: Path) -> tuple[str, object]:
    from nomoat.serve import Handler, Server

    assert (web_dist() / "nomoat-sw.js").is_file(), "web/dist/nomoat-sw.js is missing: run 'make web'"
    handler = type("SwTestHandler", (Handler,), {"roots": [("/models/", site / "models"), ("/sw/", site), ("/", web_dist())],
                                                 "models": site / "models", "api": None})
    srv = Server(("127.0.0.1", 0), handler)
    srv.verbose = False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}", srv


@pytest.fixture(scope="module")
def origins(site):
    """Two origins (two ports) serving the same files: A, where the endpoint runs, and B, another site."""
    a, sa = start(site)
    b, sb = start(site)
    yield a, b
    for s in (sa, sb):
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(context, origins):
    a, _ = origins
    page = context.new_page()
    page.goto(a + "/sw/index.html")
    page.wait_for_function("!!(window.llm && window.OpenAI && window.ChatOpenAI)")
    page.evaluate("""async () => {
        window.ERR = (e) => ({name: e.name, ctor: e.constructor.name, message: e.message, status: e.status, code: e.code,
                              param: e.param, type: e.type ?? e.error?.type});
        window.server = await llm.serve({path: "/v1", device: "wasm"});
        window.client = new OpenAI({baseURL: server.baseURL, apiKey: "local", dangerouslyAllowBrowser: true, maxRetries: 0});
    }""")
    yield page
    page.close()


def js(page, body: str, arg=None):
    return page.evaluate(f"async (arg) => {{ try {{ {body} }} catch (e) {{ return {{error: ERR(e)}}; }} }}", arg)


def direct(page, messages, **params):
    """The oracle: the page's own llm.chat.completions.create, no endpoint in between."""
    return js(page, "return await llm.chat.completions.create({device: 'wasm', ...arg});",
              {"messages": messages, "temperature": 0, **params})["choices"][0]["message"]["content"]


def test_serve_takes_control_of_the_page(page, origins):
    a, _ = origins
    r = js(page, """return {baseURL: server.baseURL, path: server.path, scope: server.scope,
                            controller: navigator.serviceWorker.controller?.scriptURL,
                            again: (await llm.serve({path: "/v1"})) === server};""")
    assert r == {"baseURL": a + "/v1", "path": "/v1", "scope": a + "/", "controller": a + "/nomoat-sw.js?path=%2Fv1", "again": True}
    r = js(page, "await llm.serve({path: '/v2'}); return 'served';")
    assert r["error"]["name"] == "InvalidStateError" and "close()" in r["error"]["message"]
    r = js(page, "await llm.serve({path: '/v1', scope: '/elsewhere/'}); return 'served';")  # same path: the server it has
    assert r == "served"


def test_openai_client_chat_json_equals_the_page_answer(page):
    r = js(page, "return await client.chat.completions.create({model: 'gpt-4o-mini', messages: arg, temperature: 0});", Q)
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-") and r["model"] == "SmolLM2-135M-Instruct"
    (choice,) = r["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == direct(page, Q) and "Paris" in choice["message"]["content"]
    u = r["usage"]
    assert u["prompt_tokens"] > 10 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_openai_client_streams_server_sent_events(page):
    r = js(page, """
        const stream = await client.chat.completions.create({model: "gpt-4o-mini", messages: arg, temperature: 0, stream: true,
                                                              stream_options: {include_usage: true}});
        const chunks = [];
        for await (const c of stream) chunks.push(c);
        return chunks;""", Q)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == r[0]["id"] for c in r)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in r if c["choices"])
    assert text == direct(page, Q)
    assert len([c for c in r if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 3  # really streamed
    assert [c["choices"][0]["finish_reason"] for c in r if c["choices"] and c["choices"][0]["finish_reason"]] == ["stop"]
    assert r[-1]["choices"] == [] and r[-1]["usage"]["completion_tokens"] > 3


def test_aborting_a_stream_or_a_request_stops_the_generation(page):
    """A 400-token story takes many seconds here (tens of tokens/s on wasm); aborted after a few
    chunks, the page's generation must end within a second or two, and the next request work."""
    r = js(page, """
        const idle = async (ms) => {  // until nothing runs: the page answers nothing and the worker generates nothing
            const t0 = performance.now();
            while (performance.now() - t0 < ms) {
                if (server.pending === 0 && (await llm.resources()).running === 0) return Math.round(performance.now() - t0);
                await new Promise((r) => setTimeout(r, 20));
            }
            return null;
        };
        const stream = await client.chat.completions.create({messages: arg, temperature: 0, max_tokens: 400, stream: true});
        let n = 0, text = "";
        for await (const c of stream) {
            text += c.choices[0]?.delta?.content ?? "";
            if (++n === 4) { stream.controller.abort(); break; }
        }
        const streamStopped = await idle(3000);
        const c = new AbortController();
        const p = client.chat.completions.create({messages: arg, temperature: 0, max_tokens: 400}, {signal: c.signal});
        await new Promise((r) => setTimeout(r, 300));
        const during = server.pending;
        c.abort();
        let rejected;
        try { await p; rejected = null; } catch (e) { rejected = e.constructor.name; }
        const requestStopped = await idle(3000);
        const after = await client.chat.completions.create({messages: [{role: "user", content: "Hi"}], temperature: 0, max_tokens: 4});
        return {n, text, streamStopped, during, rejected, requestStopped, after: after.choices[0].finish_reason};""", STORY)
    assert r["n"] == 4 and r["text"]
    assert r["streamStopped"] is not None, "the aborted stream's generation did not stop"
    assert r["during"] == 1 and r["rejected"] == "APIUserAbortError"  # the openai client's own abort
    assert r["requestStopped"] is not None, "the aborted request's generation did not stop"
    assert r["after"] == "length"


def test_models_list_and_retrieve(page):
    r = js(page, """
        const list = [];
        for await (const m of client.models.list()) list.push(m);
        const one = await client.models.retrieve("all-MiniLM-L6-v2");
        let missing;
        try { await client.models.retrieve("no-such-model"); } catch (e) { missing = ERR(e); }
        return {list, one, missing};""")
    assert [m["id"] for m in r["list"]] == ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]
    assert all(m["object"] == "model" and m["owned_by"] == "nomoat" for m in r["list"])
    assert r["one"]["id"] == "all-MiniLM-L6-v2"
    assert r["missing"]["status"] == 404 and r["missing"]["code"] == "model_not_found"


def test_embeddings_equal_the_page_vectors(page):
    texts = ["The cat sat on the mat.", "Paris is the capital of France.", ""]
    r = js(page, """
        const viaApi = await client.embeddings.create({model: "all-MiniLM-L6-v2", input: arg});  // the client asks for base64
        const floats = await client.embeddings.create({model: "all-MiniLM-L6-v2", input: arg, encoding_format: "float"});
        const own = await llm.embeddings.create({model: "all-MiniLM-L6-v2", input: arg, device: "wasm"});
        return {api: viaApi.data.map((d) => d.embedding), floats: floats.data.map((d) => d.embedding),
                own: own.data.map((d) => d.embedding), usage: viaApi.usage, model: viaApi.model};""", texts)
    assert len(r["api"]) == 3 and all(len(v) == 384 for v in r["api"])
    assert r["api"] == r["own"] and r["floats"] == r["own"]  # the same float32 values, through base64 or JSON
    assert r["model"] == "all-MiniLM-L6-v2" and r["usage"]["prompt_tokens"] > 10


def test_langchain_chat_openai_invoke_and_stream(page):
    r = js(page, """
        const model = new ChatOpenAI({model: "gpt-4o-mini", temperature: 0, apiKey: "local", maxRetries: 0,
                                      configuration: {baseURL: server.baseURL, dangerouslyAllowBrowser: true}});
        const msg = await model.invoke(arg);
        let streamed = "", pieces = 0;
        for await (const chunk of await model.stream(arg)) { streamed += chunk.content; pieces += 1; }
        return {content: msg.content, streamed, pieces, usage: msg.usage_metadata};""", Q[0]["content"])
    want = direct(page, Q)
    assert r["content"] == want and r["streamed"] == want
    assert r["pieces"] >= 3
    assert r["usage"]["input_tokens"] > 10 and r["usage"]["output_tokens"] > 3


def test_bad_requests_get_openai_errors(page):
    r = js(page, """
        const out = {};
        for (const [k, params] of Object.entries(arg)) {
            try { await client.chat.completions.create(params); out[k] = "answered"; } catch (e) { out[k] = ERR(e); }
        }
        const raw = await fetch("/v1/chat/completions", {method: "POST", body: "{not json"});
        out.raw = {status: raw.status, body: await raw.json()};
        const wrong = await fetch("/v1/chat/completions");
        out.wrong = {status: wrong.status, body: await wrong.json()};
        return out;""", {
        "empty": {"messages": []},
        "temperature": {"messages": Q, "temperature": 3},
        "stream": {"messages": [], "stream": True},
        "model": {"model": "no-such-model", "messages": Q},
        "n": {"messages": Q, "n": 2},
    })
    for k in ("empty", "temperature", "stream", "n"):
        assert r[k]["status"] == 400 and r[k]["ctor"] == "BadRequestError" and r[k]["type"] == "invalid_request_error", (k, r[k])
    assert r["temperature"]["param"] == "temperature" and "from 0 to 2" in r["temperature"]["message"]
    assert r["model"]["status"] == 404 and r["model"]["code"] == "model_not_found" and r["model"]["ctor"] == "NotFoundError"
    assert r["raw"]["status"] == 400 and set(r["raw"]["body"]["error"]) == {"message", "type", "param", "code"}
    assert r["wrong"]["status"] == 405


def test_another_page_of_the_origin_is_answered_then_503_once_none_serves(page, context, origins):
    a, _ = origins
    other = context.new_page()
    other.goto(a + "/sw/plain.html")  # no nomoat here; the Service Worker controls it
    other.wait_for_function("navigator.serviceWorker.controller !== null")
    got = other.evaluate("""async () => { const r = await fetch("/v1/models"); return {status: r.status, body: await r.json()}; }""")
    assert got["status"] == 200 and got["body"]["data"][0]["id"] == "SmolLM2-135M-Instruct"
    js(page, "await server.close(); return null;")
    try:
        gone = other.evaluate("""async () => { const r = await fetch("/v1/models"); return {status: r.status, body: await r.json()}; }""")
        assert gone["status"] == 503 and gone["body"]["error"]["code"] == "no_serving_page"
        assert "llm.serve" in gone["body"]["error"]["message"]
    finally:
        js(page, "window.server = await llm.serve({path: '/v1', device: 'wasm'}); return null;")
        other.close()


def test_other_origins_are_refused(page, context, origins):
    a, b = origins
    foreign = context.new_page()
    foreign.goto(b + "/sw/plain.html")
    # another site's fetch() never reaches A's Service Worker (the browser sends it to A's server, which has no /v1 and no CORS)
    r = foreign.evaluate("""async (a) => {
        try { const res = await fetch(a + "/v1/models"); return {status: res.status}; } catch (e) { return {error: e.name}; }
    }""", a)
    assert r == {"error": "TypeError"}
    # another site's form posting to the endpoint is a navigation, which A's Service Worker sees and refuses
    foreign.evaluate("""(a) => {
        const f = document.createElement("form");
        f.method = "POST"; f.enctype = "text/plain"; f.action = a + "/v1/chat/completions";
        const i = document.createElement("input");
        i.name = '{"messages": [{"role": "user", "content": "hi"}], "x": "'; i.value = '"}';
        f.append(i); document.body.append(f); f.submit();
    }""", a)
    foreign.wait_for_url(a + "/v1/chat/completions")
    text = foreign.evaluate("document.body.innerText")
    assert '"invalid_request_error"' in text and "not a page" in text, text
    foreign.close()
    # and A's page asking another site's /v1 is not answered by A's worker either (the network is)
    r = js(page, "try { await fetch(arg + '/v1/models'); return 'answered'; } catch (e) { return e.name; }", b)
    assert r == "TypeError"
