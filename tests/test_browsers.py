"""Every browser engine, the same checks: Chromium, Firefox and WebKit (Safari's engine) each open the
chat demo served by `nomoat serve` on localhost (cross-origin isolated, offline behind the trap)
and run tests/browsers/check.js, which reports what it saw: the demo's answer on the default model,
greedy answers on the wasm decoder, structured output, the Prompt API's calls and errors, and the
model cache. Each test below asserts on one part of that report; the CPython oracle for greedy
parity is the same as tests/test_web.py's (onnxruntime at accuracy level 0).

The drivers (tests/browsers/drivers.py) start Debian's chromium and firefox-esr through
puppeteer-core, and webkit2gtk-driver's MiniBrowser through Selenium on an Xvfb display; an engine
that is not installed is skipped, naming the command that installs it."""

from __future__ import annotations

import io
import json
import re
import threading
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from browsers import drivers
from offline import TRAP
from test_constrain import valid
from test_web import PROMPTS
from test_web_constrain import PERSON

import nomoat
from nomoat.serve import make_server

ENGINES = ["chromium", "firefox", "webkit"]
# What each engine offers here (the README's table): WebKitGTK is cross-origin isolated but has no
# SharedArrayBuffer, so the wasm decoder runs on one thread; none has a WebGPU adapter headless.
THREADS = {"chromium": 2, "firefox": 2, "webkit": 1}
PARITY_TOKENS = 48
TINY = "/models/tiny/"
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def models(tmp_path_factory, default_model_dir, tiny_dir) -> Path:
    root = tmp_path_factory.mktemp("browsers_models")
    (root / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    (root / "tiny").symlink_to(tiny_dir)
    return root


def checks_server(models: Path):
    """`nomoat serve`'s server, plus what check.js needs of it: itself at /checks/, and
    /checks/refuse?model=NAME, after which every request for /models/NAME/ is answered 503 until
    /checks/refuse without a model; each answers {refused: how many it refused since the last}."""
    srv = make_server(0, models=models)
    serve = srv.RequestHandlerClass.func
    srv.refusing, srv.refused = None, 0

    class Checks(serve):
        roots = [("/checks/", Path(__file__).parent / "browsers"), *serve.roots]

        def send_head(self):
            path = unquote(urlsplit(self.path).path)
            if path == "/checks/refuse":
                body = json.dumps({"refused": self.server.refused}).encode()
                self.server.refused = 0
                self.server.refusing = parse_qs(urlsplit(self.path).query).get("model", [None])[0]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return io.BytesIO(body)
            if self.server.refusing and path.startswith(f"/models/{self.server.refusing}/"):
                self.server.refused += 1
                self.send_error(503, "refused by the test: the network is gone")
                return None
            return super().send_head()

    srv.RequestHandlerClass = partial(Checks)
    return srv


@pytest.fixture(scope="module")
def server(models):
    srv = checks_server(models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module", params=ENGINES)
def report(request, server) -> dict:
    """check.js's report from one engine, with the requests the trap saw while it ran."""
    why = drivers.missing(request.param)
    if why:
        pytest.skip(why)
    TRAP.take()
    options = {"prompts": PROMPTS, "parityTokens": PARITY_TOKENS, "person": PERSON, "tiny": TINY}
    out = drivers.run(request.param, server + "/?temperature=0", options)
    out["offsite"], out["browser_own"] = TRAP.take()
    out["engine"] = request.param
    return out


def part(report: dict, name: str) -> dict:
    """One section of the report; a section that threw fails here, with the page's error."""
    r = report["report"]
    assert "driverError" not in r, r["driverError"]
    assert "error" not in r[name], f"{name}: {r[name]['error']}; before it: {r[name]['value']}"
    return r[name]["value"]


@pytest.fixture(scope="module")
def cpython_greedy(default_model_dir) -> dict:
    model = nomoat.load(default_model_dir, accuracy_level=0, threads=2)
    out = {}
    for text in PROMPTS:
        s = model.session(temperature=0, max_tokens=PARITY_TOKENS)
        out[text] = (s.prompt_sync(text), s.last.token_ids)
    return out


def test_isolated_and_offline(report):
    env = part(report, "environment")
    assert env["crossOriginIsolated"] is True and env["wasmSimd"] is True and env["cacheAPI"] is True
    assert env["sharedArrayBuffer"] is (THREADS[report["engine"]] > 1)
    assert report["offsite"] == [], f"requests tried to leave localhost: {report['offsite']}"


def test_demo_answers(report):
    demo = part(report, "demo")
    assert demo["answer"] == ANSWER, demo
    assert demo["status"] == "ready" and "tok/s" in demo["stats"]
    assert demo["device"] == "wasm" and f"{THREADS[report['engine']]} thread(s)" in demo["deviceLine"], demo


def test_wasm_greedy_equals_cpython(report, cpython_greedy):
    answers = part(report, "parity")["answers"]
    assert [a["prompt"] for a in answers] == PROMPTS
    for a in answers:
        text, ids = cpython_greedy[a["prompt"]]
        assert a["device"] == "wasm"
        assert a["tokenIds"] == ids, a["prompt"]
        assert a["text"] == text


def test_structured_output(report):
    r = part(report, "structured")
    assert "error" not in r["json"], r["json"]
    assert valid(json.loads(r["json"]["value"]), PERSON), r["json"]
    assert re.fullmatch("(1[89]|20)[0-9][0-9]", r["year"].get("value", "")), r["year"]
    assert r["unsupported"]["error"]["name"] == "NotSupportedError" and r["unsupported"]["error"]["isDOM"]


def test_prompt_api(report):
    r = part(report, "promptApi")
    assert r["polyfill"]["installed"] is True
    assert r["availability"] == {"value": "available"}
    assert set(r["params"]["value"]) == {"defaultTopK", "maxTopK", "defaultTemperature", "maxTemperature"}
    assert r["session"]["contextWindow"] == 256 and r["session"]["samplingMode"] == "most-predictable"
    hello = r["prompt"]["value"]
    assert isinstance(hello, str) and hello and r["usageAfterPrompt"] > 0
    assert "".join(r["streamed"]["value"]) == hello and len(r["streamed"]["value"]) > 1  # streamed in pieces
    assert r["clone"]["value"]["same"] is True
    append = r["append"]["value"]
    assert append["after"] > append["before"] and isinstance(append["answer"], str)
    abort = r["abortMidStream"]["value"]
    assert abort["error"]["name"] == "AbortError" and abort["error"]["isDOM"], abort
    assert abort["usage"] == 0 and abort["after"] == "string"  # the aborted exchange left nothing; still usable
    assert r["abortedSignal"] == {"value": "its own reason"}
    kinds = {k: f"DOMException:{e['name']}" if e["isDOM"] else e["ctor"] for k, e in r["errors"].items()}
    assert kinds == {"device": "TypeError", "temperature": "RangeError", "modeAndTopK": "TypeError",
                     "image": "DOMException:NotSupportedError", "role": "TypeError", "constraint": "TypeError",
                     "noInput": "TypeError", "overflow": "DOMException:QuotaExceededError",
                     "missingModel": "DOMException:NotFoundError", "destroyed": "DOMException:AbortError"}, r["errors"]


def test_model_cache(report):
    r = part(report, "cache")
    first = r["first"]["value"]
    assert first["fetched"] and not first["cached"] and r["entry"]["complete"]
    assert r["availableOffline"] == "available"
    offline = r["offline"]["value"]  # a fresh worker, the server refusing every model file
    assert offline["cached"] is True and offline["text"] == first["text"] and r["refusedOffline"] > 0
    corrupt = r["corruptOffline"]["error"]  # the cached data file's bytes are wrong: refused, asked of the server
    assert corrupt["name"] == "NotFoundError" and "onnx/model_q4.onnx_data" in corrupt["message"], corrupt
    assert "HTTP 503" in corrupt["message"] and r["refusedCorrupt"] == 2  # the manifest, then the data file
    online = r["corruptOnline"]["value"]
    assert online["fetched"] == ["onnx/model_q4.onnx_data"] and online["text"] == first["text"]
    assert r["repaired"] is True and r["deleted"] is True
