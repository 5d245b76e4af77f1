# ruff: noqa: F811  (the browser fixtures come from test_web and are used as arguments)
"""Faults in headless Chromium: the worker killed mid-answer, the WebGPU device lost mid-answer, and a
WebGPU adapter that computes wrong results. Each is named to the page (never blamed on the model
file), breaks only what it must, and the next create() works (a fresh worker; wasm instead of WebGPU).

The faults are played from the test, with no hook in the product: the page terminate()s the worker
or the worker self.close()s (Playwright evaluates in it); worker.mjs is served with a prologue that
records every GPUDevice it makes (so a test can destroy() onnxruntime-web's), or that corrupts every
GPU readback (an adapter that computes wrong results)."""

from __future__ import annotations

import pytest
from test_web import blank_page, browser_type_launch_args, gpu_browser, models, server  # noqa: F401

import nomoat

# An answer streamed into window.run, so the test can strike while it runs.
START = """async ([options, text]) => {
    window.run = {text: "", error: null, done: false};
    window.s = await llm.create(options);
    (async () => {
        try { for await (const piece of window.s.promptStreaming(text)) window.run.text += piece; }
        catch (e) { window.run.error = {name: e.name, message: e.message, dom: e instanceof DOMException}; }
        window.run.done = true;
    })();
    return {device: window.s.device, reason: window.s.deviceReason};
}"""

# A new session and its answer.
FRESH = """async ([options, text]) => {
    try {
        const s = await llm.create(options);
        return {device: s.device, reason: s.deviceReason, answer: await s.prompt(text), stats: s.lastStats};
    } catch (e) { return {error: {name: e.name, message: e.message}}; }
}"""

# What the broken session says next, and how fast.
BROKEN = """async () => {
    const t0 = performance.now();
    try { await window.s.prompt("Are you there?"); return null; }
    catch (e) { return {name: e.name, message: e.message, ms: performance.now() - t0}; }
}"""

REFUSED = """async () => {
    try { await llm.create({device: "webgpu", model: "/models/tiny/"}); return null; }
    catch (e) { return {name: e.name, message: e.message}; }
}"""

RECORD_DEVICES = """self.__devices = [];
{ const make = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const d = await make.apply(this, args); self.__devices.push(d); return d; }; }
"""

# An adapter that computes wrong results: every value read back from the GPU has one float off.
CORRUPT_READBACK = """{ const read = GPUBuffer.prototype.getMappedRange;
  GPUBuffer.prototype.getMappedRange = function (...args) {
    const r = read.apply(this, args); if (r.byteLength >= 16) new Float32Array(r)[3] += 0.5; return r; }; }
"""


def prologue_page(browser, server: str, prologue: str):
    """A blank page whose nomoat workers run `prologue` before worker.mjs's own code."""
    context = browser.new_context()

    def serve(route):
        response = route.fetch()
        route.fulfill(response=response, body=prologue + response.text())

    context.route("**/worker.mjs", serve)
    return blank_page(context, server)


def nomoat_worker(page):
    [w] = [w for w in page.workers if w.url.endswith("/worker.mjs")]
    return w


def kill_terminate(page):
    page.evaluate("window.s._transport.worker.terminate()")


def kill_close(page):
    nomoat_worker(page).evaluate("self.close()")


@pytest.mark.parametrize("kill", [kill_terminate, kill_close], ids=["terminated", "closed"])
def test_worker_killed_mid_answer(browser, server, kill):
    """The worker ends mid-answer (the page terminates it, or it closes itself, as a crash would):
    the answer rejects with a named OperationError, the session's next call at once, and the next
    create() starts a fresh worker that answers correctly."""
    page = blank_page(browser, server)
    options = {"device": "wasm", "temperature": 0, "maxTokens": 300}
    assert page.evaluate(START, [options, "Write a long story about a dragon."])["device"] == "wasm"
    page.wait_for_function("window.run.text.length > 20 || window.run.done")
    assert not page.evaluate("window.run.done")
    kill(page)
    page.wait_for_function("window.run.done", timeout=10_000)  # seen at once, not after a timeout
    run = page.evaluate("window.run")
    assert run["error"]["dom"] and run["error"]["name"] == "OperationError", run
    assert "nomoat's worker stopped" in run["error"]["message"] and "create a new one" in run["error"]["message"]
    assert "model" not in run["error"]["message"]
    later = page.evaluate(BROKEN)
    assert (later["name"], later["message"]) == (run["error"]["name"], run["error"]["message"])
    assert later["ms"] < 100  # the broken session rejects at once, the same way
    r = page.evaluate(FRESH, [{"device": "wasm", "temperature": 0, "maxTokens": 48}, "What is the capital of France?"])
    assert r.get("answer") == "The capital of France is Paris.", r
    # the dead one is gone: its target's close reaches Playwright a moment later (Python restored from its
    # snapshot answers within ~1 s of the kill), so wait up to 10 s for it
    def workers() -> int:
        return len([w for w in page.workers if w.url.endswith("/worker.mjs")])

    for _ in range(100):
        if workers() == 1:
            break
        page.wait_for_timeout(100)
    assert workers() == 1
    page.close()


def test_webgpu_device_lost_mid_answer_then_wasm(gpu_browser, server, tiny_dir):
    """The GPUDevice onnxruntime-web runs on is destroyed mid-answer: the answer rejects naming the
    loss, the session stays broken, and new "auto" sessions run on wasm (saying why) and answer as
    CPython does. (Sessions asked for with device "webgpu" live in a worker of their own, which
    still has its device; in a worker whose device was lost, "webgpu" is refused with the reason.)"""
    page = prologue_page(gpu_browser, server, RECORD_DEVICES)
    options = {"device": "auto", "model": "/models/tiny/", "temperature": 0, "maxTokens": 400}
    first = page.evaluate(START, [options, "hello there"])
    assert first == {"device": "webgpu", "reason": "auto: a WebGPU adapter is available (self-test passed)"}
    page.wait_for_function("window.run.text.length > 0 || window.run.done")
    assert not page.evaluate("window.run.done")
    # the self-test's device (destroyed by then) and onnxruntime-web's
    assert nomoat_worker(page).evaluate("self.__devices.length") == 2
    nomoat_worker(page).evaluate("self.__devices.at(-1).destroy()")
    page.wait_for_function("window.run.done", timeout=30_000)
    run = page.evaluate("window.run")
    assert run["error"]["dom"] and run["error"]["name"] == "OperationError", run
    assert run["error"]["message"].startswith("The WebGPU device was lost")
    assert "create a new one" in run["error"]["message"] and "model" not in run["error"]["message"]
    later = page.evaluate(BROKEN)
    assert (later["name"], later["message"]) == ("OperationError", run["error"]["message"]) and later["ms"] < 1000
    r = page.evaluate(FRESH, [{**options, "maxTokens": 32}, "hello there"])
    assert r.get("device") == "wasm" and "WebGPU device was lost (destroyed" in r["reason"], r
    want = nomoat.load(tiny_dir, accuracy_level=0).session(temperature=0, max_tokens=32)
    want.prompt_sync("hello there")
    assert r["stats"]["token_ids"] == want.last.token_ids
    page.context.close()


def test_faulty_webgpu_adapter_is_not_used(gpu_browser, server, tiny_dir):
    """An adapter whose results are wrong fails the start-up self-test: "auto" runs on wasm and says
    why (deviceReason, a console warning), and device "webgpu" is refused with that reason."""
    page = prologue_page(gpu_browser, server, CORRUPT_READBACK)
    warnings = []
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    options = {"device": "auto", "model": "/models/tiny/", "temperature": 0, "maxTokens": 16}
    r = page.evaluate(FRESH, [options, "hello there"])
    assert r.get("device") == "wasm", r
    assert "failed nomoat's self-test (value 3:" in r["reason"] and r["reason"].endswith("; using wasm")
    want = nomoat.load(tiny_dir, accuracy_level=0).session(temperature=0, max_tokens=16)
    want.prompt_sync("hello there")
    assert r["stats"]["token_ids"] == want.last.token_ids  # and wasm answers right
    assert any("self-test" in w and "WebGPU is not used" in w for w in warnings), warnings
    refused = page.evaluate(REFUSED)
    assert refused["name"] == "NotSupportedError" and "computes wrong results" in refused["message"], refused
    page.context.close()
