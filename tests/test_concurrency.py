# ruff: noqa: F811  (the browser fixtures come from test_web and are used as arguments)
"""Concurrent sessions never see each other's state: seeded random plans (tests/concurrency_plan.py)
of many sessions, staggered, with clones, aborts and OpenAI requests, run all at once and compared
key by key with the same plan run one script at a time — on CPython and in headless Chromium on
every engine (nomoat's wasm decoder, onnxruntime-web on wasm, onnxruntime-web on WebGPU)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from concurrency_plan import make_plan, run_plan
from test_web import blank_page, browser_type_launch_args, gpu_browser, models, server  # noqa: F401, F811

import nomoat

RUNNER = (Path(__file__).parent / "concurrency_runner.js").read_text()


def compare(got: dict, want: dict) -> list[str]:
    """Mismatched keys, explained. An aborted stream must show the same first pieces in both runs."""
    bad = []
    for key in want:
        g, w = got.get(key), want[key]
        if isinstance(w, dict):
            if not isinstance(g, dict) or g["partial"] != w["partial"]:
                bad.append(f"{key}: aborted stream began {g!r}, alone {w!r}")
        elif g != w:
            bad.append(f"{key}: {g!r} != alone {w!r}")
    return bad


def test_plans_differ_and_cover_every_operation():
    """The generator itself: distinct questions, every operation drawn, reproducible by seed."""
    plans = [make_plan(seed) for seed in range(20)]
    assert make_plan(3) == make_plan(3) and make_plan(3) != make_plan(4)
    ops, texts = set(), []

    def walk(script):
        for st in script["steps"]:
            ops.add(st["op"])
            if "text" in st:
                texts.append(st["text"])
            if st["op"] == "clone":
                walk(st["script"])

    for plan in plans:
        for s in plan:
            walk(s)
    assert ops == {"prompt", "abort", "clone", "openai", "sleep"}
    assert len(set(texts)) > 0.9 * len(texts)


def test_compare_sees_a_swapped_answer():
    want = {0: "a", 1: "b", 2: {"partial": "x"}}
    assert compare(want, want) == []
    assert len(compare({0: "b", 1: "a", 2: {"partial": "x"}}, want)) == 2
    assert compare({0: "a", 1: "b", 2: {"partial": "y"}}, want)


@pytest.fixture(scope="module")
def tiny_model(tiny_dir):
    return nomoat.load(tiny_dir, threads=2)


@pytest.fixture(scope="module")
def tiny_reference(tiny_gguf, tiny_dir):
    """The numpy reference backend behind the same package's tokenizer and template."""
    from nomoat.backends.reference import ReferenceBackend
    from nomoat.model import Model

    m = nomoat.load(tiny_dir)
    tokenizer_config = json.loads((tiny_dir / "tokenizer_config.json").read_text())
    return Model(tiny_dir, m.config, m.tokenizer, ReferenceBackend(tiny_gguf), tokenizer_config)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["ort_native", "reference"])
def test_cpython_concurrent_sessions_equal_sequential(request, backend, seed):
    model = request.getfixturevalue("tiny_model" if backend == "ort_native" else "tiny_reference")
    plan = make_plan(seed, sessions=6, max_delay_ms=30)
    got = asyncio.run(run_plan(model, plan, concurrent=True))
    want = asyncio.run(run_plan(model, plan, concurrent=False))
    assert len(want) >= 6 and compare(got, want) == []


def test_cpython_default_model_concurrent_sessions(default_model):
    plan = make_plan(101, sessions=4, max_steps=3, max_tokens=10, max_delay_ms=20)
    got = asyncio.run(run_plan(default_model, plan, concurrent=True))
    want = asyncio.run(run_plan(default_model, plan, concurrent=False))
    assert compare(got, want) == []


# --- in the browser --------------------------------------------------------------------------------

def run_in_page(page, plan, concurrent: bool, **where) -> dict:
    got = page.evaluate("(a) => runNomoatPlan(a)", {"plan": plan, "concurrent": concurrent, **where})
    return {int(k): v for k, v in got.items()}


def browser_compare(page, plan, **where) -> list[str]:
    page.add_script_tag(content=RUNNER)
    got = run_in_page(page, plan, True, **where)
    want = run_in_page(page, plan, False, **where)
    assert len(want) >= 3
    # An abort may land after a short answer was already complete: that changes the history, so
    # such a plan is only compared up to that point — it must not happen often.
    raced = [k for k, w in want.items() if isinstance(w, dict) and got[k].get("outcome") != w.get("outcome")]
    assert len(raced) <= 1, raced
    return compare(got, want) if not raced else compare({k: got[k] for k in want if k < raced[0]},
                                                         {k: want[k] for k in want if k < raced[0]})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wasm_decoder_concurrent_sessions_equal_sequential(browser, server, seed):
    """The default engine (nomoat's own wasm decoder): the fault users met first (five sessions at
    once all answered the last question)."""
    page = blank_page(browser, server)
    try:
        plan = make_plan(seed, sessions=6, max_tokens=10)
        assert browser_compare(page, plan, model=server + "/models/tiny/", device="wasm") == []
    finally:
        page.close()


def test_wasm_decoder_default_model_concurrent_sessions(browser, server):
    page = blank_page(browser, server)
    try:
        plan = make_plan(7, sessions=5, max_steps=3, max_tokens=12, clones=True, openai=True)
        assert browser_compare(page, plan, model=server + "/models/SmolLM2-135M-Instruct/", device="wasm") == []
    finally:
        page.close()


def test_ort_wasm_concurrent_sessions_equal_sequential(browser, server):
    page = blank_page(browser, server)
    try:
        plan = make_plan(11, sessions=5, max_tokens=8, openai=False)  # OpenAI requests use the default engine
        assert browser_compare(page, plan, model=server + "/models/tiny/", device="wasm", wasmEngine="ort") == []
    finally:
        page.close()


def test_webgpu_concurrent_sessions_equal_sequential(gpu_browser, server):
    """Also: several create() at once on WebGPU (onnxruntime-web creates one session at a time)."""
    page = blank_page(gpu_browser, server)
    try:
        plan = make_plan(5, sessions=4, max_steps=3, max_tokens=6)
        assert browser_compare(page, plan, model=server + "/models/tiny/", device="webgpu") == []
    finally:
        page.close()


# --- aborts -------------------------------------------------------------------------------------

def test_abort_during_a_long_prefill_lands_within_a_chunk(browser, server):
    """A ~2,000-token prompt aborted mid-prefill: the session's next prompt starts within one prefill
    chunk (the prefill is not run to its end first) and answers as if the aborted one never was."""
    page = blank_page(browser, server)
    try:
        r = page.evaluate("""async (model) => {
            const opts = {model, device: "wasm", temperature: 0, maxTokens: 4};
            const long = Array.from({length: 1000}, (_, i) => "w" + (i % 97)).join(" ");
            const s = await llm.create(opts), fresh = await llm.create(opts);
            const want = await fresh.prompt("Hi");
            const c = await s.clone();
            let t = performance.now();
            await c.prompt(long);
            const full = performance.now() - t;
            c.destroy();
            const ctl = new AbortController();
            const p = s.prompt(long, {signal: ctl.signal}).then(() => "done", (e) => e.name);
            await new Promise((r) => setTimeout(r, Math.min(1000, full / 4)));
            t = performance.now();
            ctl.abort();
            const name = await p;
            const got = await s.prompt("Hi");
            return {full, after: performance.now() - t, name, got, want, usage: s.contextUsage,
                    wantUsage: fresh.contextUsage};
        }""", server + "/models/SmolLM2-135M-Instruct/")
    finally:
        page.close()
    assert r["name"] == "AbortError"
    assert r["got"] == r["want"] and r["usage"] == r["wantUsage"]  # nothing of the aborted prompt remains
    assert r["full"] > 2000  # the prompt really is long here (ms)
    assert r["after"] < r["full"] / 3, r  # not the rest of the prefill: one chunk, then the short prompt


def test_sessions_dropped_without_destroy_are_destroyed_in_the_worker(browser, server):
    """A page that lets sessions go without destroy(): once they are collected, the worker is told
    to destroy each (their KV caches are freed there); a session still referenced is kept."""
    page = blank_page(browser, server)
    try:
        page.evaluate("""() => {
            window.sent = [];
            const post = Worker.prototype.postMessage;
            Worker.prototype.postMessage = function (m, ...rest) {
                window.sent.push(m);
                return post.call(this, m, ...rest);
            };
        }""")
        ids = page.evaluate("""async (model) => {
            const made = [];
            const opts = {model, device: "wasm", temperature: 0, maxTokens: 4};
            for (let i = 0; i < 6; i++) made.push(await llm.create(opts));
            for (const s of made) await s.prompt("Hi");
            window.kept = made[0];
            return made.map((s) => s.contextUsage >= 0);
        }""", server + "/models/tiny/")
        assert all(ids)
        cdp = page.context.new_cdp_session(page)
        destroyed = []
        for _ in range(20):
            cdp.send("HeapProfiler.collectGarbage")
            page.wait_for_timeout(250)
            destroyed = page.evaluate("window.sent.filter((m) => m.kind === 'destroy').map((m) => m.payload.session)")
            if len(destroyed) >= 5:
                break
        created = page.evaluate("window.sent.filter((m) => m.kind === 'create').length")
        assert created == 6 and len(set(destroyed)) == 5, destroyed
        assert page.evaluate("window.kept.prompt('Hi').then((t) => typeof t)") == "string"  # the kept one still works
    finally:
        page.close()
