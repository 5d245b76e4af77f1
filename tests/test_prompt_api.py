# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""Prompt API conformance, written from the spec text (webmachinelearning/prompt-api index.bs and
README at 2e27365, and the writing-assistance-apis algorithms it builds on), method by method and
error by error. Runs in headless Chromium against the LanguageModel that `llm.polyfill()` installs
(Debian's Chromium here ships a native LanguageModel that is unavailable), on the tiny model over wasm:
its context window is 256 tokens, small enough to overflow on purpose.

Where nomoat departs from the spec text, the test says so: context overflow drops the oldest
exchanges and fires contextoverflow (the README's rule; index.bs's prefill only rejects).

User activation: Playwright's evaluate() runs as a user gesture, so the page's tests have sticky
activation; the NotAllowedError rule is tested from a page's own load-time script, in a fresh context.
"""

from __future__ import annotations

import pytest
from test_web import TIMEOUT, blank_page, browser_type_launch_args, models, server  # noqa: F401

TINY = "/models/tiny/"
ERR = """(e) => ({name: e.name, ctor: e.constructor.name, message: e.message, requested: e.requested,
                  quota: e.quota, contextWindow: e.contextWindow, isDOM: e instanceof DOMException, same: e === window.reason})"""


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811
    page = blank_page(browser, server)
    page.evaluate(f"() => {{ window.ERR = {ERR}; }}")
    r = page.evaluate("""async () => {
        const before = typeof globalThis.LanguageModel;
        const nativeState = before === "function" ? await globalThis.LanguageModel.availability().catch((e) => e.name) : null;
        const result = await llm.polyfill();
        return {before, nativeState, result, same: globalThis.LanguageModel === llm.LanguageModel};
    }""")
    assert r["same"] and r["result"]["installed"], r
    page.evaluate(f"""async () => {{
        window.TINY = {{model: "{TINY}", device: "wasm", maxTokens: 12}};
        window.base = await LanguageModel.create({{...TINY, samplingMode: "most-predictable"}});
    }}""")
    yield page
    page.close()


def js(page, body: str, arg=None):
    """Run an async function body in the page; a throw comes back as {error: {...}}."""
    return page.evaluate(f"async (arg) => {{ try {{ {body} }} catch (e) {{ return {{error: ERR(e)}}; }} }}", arg)


def error_of(page, body: str) -> dict:
    r = js(page, body)
    assert isinstance(r, dict) and "error" in r, f"expected an exception, got {r!r}"
    return r["error"]


# --- polyfill --------------------------------------------------------------------------------------

def test_polyfill_replaces_an_unavailable_native_and_is_idempotent(page):
    assert js(page, "return await llm.polyfill();") == {"installed": True, "reason": "already installed"}
    assert js(page, "return typeof LanguageModel.create + typeof LanguageModel.availability + typeof LanguageModel.params") \
        == "functionfunctionfunction"


def test_polyfill_leaves_a_working_native_alone_unless_forced(page):
    r = js(page, """
        const ours = globalThis.LanguageModel;
        class Native { static async availability() { return "available"; } }
        globalThis.LanguageModel = Native;
        const kept = await llm.polyfill();
        const stillNative = globalThis.LanguageModel === Native;
        const forced = await llm.polyfill({force: true});
        const replaced = globalThis.LanguageModel === ours;
        return {kept, stillNative, forced, replaced};""")
    assert r["kept"]["installed"] is False and r["stillNative"] is True
    assert r["forced"]["installed"] is True and r["replaced"] is True


def test_language_model_cannot_be_constructed_directly(page):
    assert error_of(page, "new LanguageModel(); return 1;")["ctor"] == "TypeError"


# --- availability() and params() ------------------------------------------------------------------

def test_availability_values(page):
    r = js(page, """return {
        plain: await LanguageModel.availability(TINY),
        image: await LanguageModel.availability({...TINY, expectedInputs: [{type: "image"}]}),
        audioOut: await LanguageModel.availability({...TINY, expectedOutputs: [{type: "audio"}]}),
        german: await LanguageModel.availability({...TINY, expectedInputs: [{type: "text", languages: ["de"]}]}),
        english: await LanguageModel.availability({...TINY, expectedInputs: [{type: "text", languages: ["en-US", "en"]}]}),
    };""")
    assert r == {"plain": "available", "image": "unavailable", "audioOut": "unavailable", "german": "unavailable",
                 "english": "available"}


def test_availability_rejects_malformed_options(page):
    assert error_of(page, "return await LanguageModel.availability({expectedInputs: [{type: 'video'}]});")["ctor"] == "TypeError"
    assert error_of(page, "return await LanguageModel.availability({expectedInputs: [{type: 'text', languages: ['en_US!!']}]});")[
        "ctor"] == "RangeError"
    assert error_of(page, "return await LanguageModel.availability({samplingMode: 'wild'});")["ctor"] == "TypeError"


def test_params(page):
    p = js(page, "return await LanguageModel.params();")
    assert set(p) == {"defaultTopK", "maxTopK", "defaultTemperature", "maxTemperature"}
    assert 1 <= p["defaultTopK"] <= p["maxTopK"] and 0 <= p["defaultTemperature"] <= p["maxTemperature"]


# --- create(): options ---------------------------------------------------------------------------

def test_sampling_mode_and_raw_parameters(page):
    r = js(page, """
        const d = await LanguageModel.create(TINY);
        const c = await LanguageModel.create({...TINY, samplingMode: "creative"});
        const raw = await LanguageModel.create({...TINY, temperature: 99, topK: 3.7});
        const inf = await LanguageModel.create({...TINY, temperature: 0.5, topK: Infinity});
        // index.bs: the topK and temperature attributes are "Only available in extension and experimental
        // contexts": undefined on this web page (web/test/language_model.test.js: an extension's values)
        const out = {d: d.samplingMode, c: c.samplingMode, rawT: raw.temperature === undefined, rawK: raw.topK === undefined,
                     infK: inf.topK === undefined, baseMode: base.samplingMode, has: "topK" in base && "temperature" in base};
        for (const s of [d, c, raw, inf]) s.destroy();
        return out;""")
    assert r == {"d": "balanced", "c": "creative", "rawT": True, "rawK": True, "infK": True, "baseMode": "most-predictable",
                 "has": True}


@pytest.mark.parametrize("options, ctor", [
    ("{samplingMode: 'balanced', topK: 3}", "TypeError"),  # README: both → TypeError
    ("{samplingMode: 'wild'}", "TypeError"),  # not a LanguageModelSamplingMode
    ("{temperature: -1}", "RangeError"),
    ("{topK: 0}", "RangeError"),
    ("{expectedInputs: [{type: 'image'}]}", "DOMException:NotSupportedError"),
    ("{expectedInputs: [{type: 'text', languages: ['xx-invalid-tag-!!']}]}", "RangeError"),
    ("{initialPrompts: [{role: 'user', content: 'a'}, {role: 'system', content: 's'}]}", "TypeError"),
    ("{initialPrompts: [{role: 'robot', content: 'a'}]}", "TypeError"),
    ("{initialPrompts: [{role: 'user', content: 'a', prefix: true}]}", "DOMException:SyntaxError"),
    ("{initialPrompts: [{role: 'user', content: 'a'}, {role: 'assistant', content: 'b', prefix: true}]}",
     "DOMException:NotSupportedError"),
    ("{initialPrompts: [{role: 'user', content: [{type: 'image', value: new Uint8Array(4)}]}]}",
     "DOMException:NotSupportedError"),
    ("{signal: 'nope'}", "TypeError"),
])
def test_create_rejects_bad_options(page, options, ctor):
    e = error_of(page, f"const s = await LanguageModel.create({{...TINY, ...{options}}}); s.destroy(); return 'created';")
    got = f"DOMException:{e['name']}" if e["isDOM"] else e["ctor"]
    assert got == ctor, e
    assert e["message"]


def test_initial_prompts_that_overflow_reject_with_quota_exceeded(page):
    e = error_of(page, "await LanguageModel.create({...TINY, initialPrompts: [{role: 'system', content: 'word '.repeat(400)}]});")
    assert e["name"] == "QuotaExceededError" and e["isDOM"]
    assert e["requested"] > 256 and 256 in (e["quota"], e["contextWindow"])


def test_create_with_an_aborted_signal_rejects_with_its_reason(page):
    r = js(page, """
        window.reason = {custom: "reason"};
        const c = new AbortController(); c.abort(window.reason);
        try { await LanguageModel.create({...TINY, signal: c.signal}); return "created"; }
        catch (e) { return e === window.reason; }""")
    assert r is True


def test_a_throwing_monitor_rejects_create(page):
    e = error_of(page, "await LanguageModel.create({...TINY, monitor() { throw new RangeError('from the monitor'); }});")
    assert e["ctor"] == "RangeError" and e["message"] == "from the monitor"


def test_aborting_the_create_signal_later_destroys_the_session(page):
    r = js(page, """
        window.reason = new DOMException("stop it", "AbortError");
        const c = new AbortController();
        const s = await LanguageModel.create({...TINY, signal: c.signal});
        c.abort(window.reason);
        try { await s.prompt("hi"); return "answered"; } catch (e) { return e === window.reason; }""")
    assert r is True


# --- the session's attributes ------------------------------------------------------------------

def test_context_window_usage_and_deprecated_aliases(page):
    r = js(page, """
        const s = await LanguageModel.create({...TINY, initialPrompts: [{role: "system", content: "Be brief."}]});
        const a = {window: s.contextWindow, usage: s.contextUsage, quota: s.inputQuota, inputUsage: s.inputUsage,
                   fresh: (await LanguageModel.create(TINY)).contextUsage};
        await s.prompt("hello", {});
        a.after = s.contextUsage;
        s.destroy();
        return a;""")
    assert r["window"] == 256 and r["quota"] == 256
    assert r["usage"] > 0 and r["inputUsage"] == r["usage"] and r["fresh"] == 0
    assert r["after"] > r["usage"]


# --- prompt(), promptStreaming(), append(), measureContextUsage() ------------------------------

def test_prompt_and_stream_give_the_same_text(page):
    r = js(page, """
        const c = await base.clone();
        const text = await base.prompt("Count to three.");
        let streamed = "", chunks = 0;
        for await (const piece of c.promptStreaming("Count to three.")) { streamed += piece; chunks++; }
        const s = c.promptStreaming("x");
        c.destroy();
        return {text, streamed, chunks, isStream: s instanceof ReadableStream, type: typeof text};""")
    assert r["type"] == "string" and r["text"] and r["text"] == r["streamed"] and r["chunks"] >= 2 and r["isStream"]


def test_message_list_prompts_and_assistant_prefix(page):
    r = js(page, """
        const s = await LanguageModel.create({...TINY, samplingMode: "most-predictable"});
        const a = await s.prompt([{role: "user", content: [{type: "text", value: "Say "}, {type: "text", value: "hi"}]},
                                  {role: "assistant", content: "Sure: ", prefix: true}]);
        const usage = s.contextUsage;
        const b = await s.prompt([]);  // an empty list is an empty user message
        s.destroy();
        return {a: typeof a, usage, grew: s.contextUsage > usage, b: typeof b};""")
    assert r == {"a": "string", "usage": r["usage"], "grew": True, "b": "string"} and r["usage"] > 0


@pytest.mark.parametrize("input_, name", [
    ("[{role: 'user', content: 'x', prefix: true}]", "SyntaxError"),
    ("[{role: 'assistant', content: 'x', prefix: true}, {role: 'user', content: 'y'}]", "SyntaxError"),
    ("[{role: 'system', content: 'late'}]", "TypeError"),  # base already has context (usage > 0)
    ("[{role: 'user', content: [{type: 'image', value: new Uint8Array(4)}]}]", "NotSupportedError"),
    ("[{role: 'user', content: [{type: 'audio', value: new Uint8Array(4)}]}]", "NotSupportedError"),
    ("[{role: 'user', content: [{type: 'video', value: 'x'}]}]", "TypeError"),
    ("[{role: 'user', content: [{type: 'text', value: {}}]}]", "TypeError"),
    ("[{role: 'assistant', content: [{type: 'image', value: new Uint8Array(4)}]}]", "NotSupportedError"),
    ("[{content: 'no role'}]", "TypeError"),
])
def test_invalid_prompts_reject(page, input_, name):
    js(page, "if (base.contextUsage === 0) await base.append('some context');")
    late_system = "'system'" in input_  # measureContextUsage validates its input as a fresh prompt (below)
    for method in ("prompt", "append") + (() if late_system else ("measureContextUsage",)):
        e = error_of(page, f"return await base.{method}({input_});")
        assert e["name"] == name, (method, e)
    e = error_of(page, f"""const r = base.promptStreaming({input_}).getReader(); await r.read(); return 'read';""")
    assert e["name"] == name  # the stream errors; the call itself does not throw


def test_system_message_first_in_a_new_session(page):
    r = js(page, """
        const s = await LanguageModel.create(TINY);
        const t = await s.prompt([{role: "system", content: "Be brief."}, {role: "user", content: "hi"}]);
        s.destroy();
        return typeof t;""")
    assert r == "string"


def test_argument_and_option_errors(page):
    assert error_of(page, "return await base.prompt();")["ctor"] == "TypeError"
    assert error_of(page, "base.promptStreaming(); return 1;")["ctor"] == "TypeError"
    assert error_of(page, "return await base.prompt('x', {signal: 42});")["ctor"] == "TypeError"
    assert error_of(page, "return await base.prompt('x', {responseConstraint: 'json'});")["ctor"] == "TypeError"
    assert error_of(page, "return await base.prompt('x', {omitResponseConstraintInput: true});")["ctor"] == "TypeError"
    assert error_of(page, "return await base.measureContextUsage('x', {omitResponseConstraintInput: true});")[
        "ctor"] == "TypeError"


def test_non_string_input_is_converted_like_webidl(page):
    assert js(page, "return [await base.measureContextUsage(42), await base.measureContextUsage('42')];") in (
        [n, n] for n in range(1, 100))


def test_measure_does_not_change_the_session_and_append_adds_context(page):
    r = js(page, """
        const s = await LanguageModel.create({...TINY, initialPrompts: [{role: "system", content: "S"}]});
        const u0 = s.contextUsage;
        const m = await s.measureContextUsage("a few words of context");
        const u1 = s.contextUsage;
        const ret = await s.append("a few words of context");
        const u2 = s.contextUsage;
        const withSchema = await s.measureContextUsage("q", {responseConstraint: {type: "boolean"}});
        const omitted = await s.measureContextUsage("q", {responseConstraint: {type: "boolean"}, omitResponseConstraintInput: true});
        s.destroy();
        return {u0, m, u1, ret: ret === undefined, u2, withSchema, omitted};""")
    assert r["m"] > 0 and r["u1"] == r["u0"] and r["ret"]
    assert r["u2"] == r["u0"] + r["m"]  # what append() adds is what was measured
    assert r["withSchema"] > r["omitted"] > 0  # the schema is described in the prompt unless omitted


# --- abort, queueing, destroy --------------------------------------------------------------------

def test_aborted_signals_reject_with_the_custom_reason(page):
    r = js(page, """
        window.reason = {mine: true};
        const c = new AbortController(); c.abort(window.reason);
        const out = {};
        for (const m of ["prompt", "append", "measureContextUsage"]) {
            try { await base[m]("x", {signal: c.signal}); out[m] = "ran"; } catch (e) { out[m] = e === window.reason; }
        }
        try { base.promptStreaming("x", {signal: c.signal}); out.stream = "returned"; } catch (e) { out.stream = e === window.reason; }
        try { await base.clone({signal: c.signal}); out.clone = "cloned"; } catch (e) { out.clone = e === window.reason; }
        return out;""")
    assert r == {"prompt": True, "append": True, "measureContextUsage": True, "stream": True, "clone": True}


def test_abort_mid_stream_drops_the_exchange(page):
    r = js(page, """
        const s = await base.clone();
        const before = s.contextUsage;
        window.reason = new DOMException("user stopped", "AbortError");
        const c = new AbortController();
        const reader = s.promptStreaming("Tell a long story.", {signal: c.signal}).getReader();
        let got = 0, error = null;
        try { for (;;) { const {done, value} = await reader.read(); if (done) break; got += value.length; if (got > 3) c.abort(window.reason); } }
        catch (e) { error = e === window.reason; }
        const after = s.contextUsage;
        const next = typeof (await s.prompt("hi"));
        s.destroy();
        return {error, same: after === before, next};""")
    assert r == {"error": True, "same": True, "next": "string"}


def test_prompts_run_in_order_and_a_queued_abort_never_runs(page):
    r = js(page, """
        const s = await base.clone();
        const order = [];
        const c = new AbortController();
        const p1 = s.prompt("one").then(() => order.push(1));
        const p2 = s.prompt("two", {signal: c.signal}).then(() => order.push(2), (e) => order.push("abort:" + e.name));
        const p3 = s.prompt("three").then(() => order.push(3));
        c.abort();
        await Promise.all([p1, p2, p3]);
        const turns = s.lastStats.prompt_tokens;
        s.destroy();
        return {order, turns};""")
    assert r["order"] == ["abort:AbortError", 1, 3]


def test_destroy_rejects_pending_and_later_calls(page):
    r = js(page, """
        const s = await base.clone();
        const pending = s.prompt("Write a long story.").then(() => "resolved", (e) => e.name);
        const queued = s.prompt("and another").then(() => "resolved", (e) => e.name);
        s.destroy();
        const out = {pending: await pending, queued: await queued};
        for (const m of ["prompt", "append", "measureContextUsage"]) {
            try { await s[m]("x"); out[m] = "ran"; } catch (e) { out[m] = e.name; }
        }
        try { s.promptStreaming("x"); out.stream = "returned"; } catch (e) { out.stream = e.name; }
        try { await s.clone(); out.clone = "cloned"; } catch (e) { out.clone = e.name; }
        s.destroy();  // a second destroy() is a no-op
        out.base = typeof (await base.prompt("still fine"));
        return out;""")
    assert r == {"pending": "AbortError", "queued": "AbortError", "prompt": "AbortError", "append": "AbortError",
                 "measureContextUsage": "AbortError", "stream": "AbortError", "clone": "AbortError", "base": "string"}


# --- clone, many sessions ------------------------------------------------------------------------

def test_clone_copies_the_context_and_is_independent(page):
    r = js(page, """
        const s = await LanguageModel.create({...TINY, samplingMode: "most-predictable",
                                               initialPrompts: [{role: "system", content: "S"}]});
        await s.prompt("first question");
        const c = await s.clone();
        const same = {usage: c.contextUsage === s.contextUsage, window: c.contextWindow === s.contextWindow,
                      mode: c.samplingMode, isLM: c instanceof LanguageModel};
        const a = await s.prompt("second"), b = await c.prompt("second");
        await c.prompt("only on the clone");
        const diverged = c.contextUsage > s.contextUsage;
        const reused = c.lastStats.reused_tokens > 0;
        s.destroy(); c.destroy();
        return {...same, equal: a === b, diverged, reused};""")
    assert r == {"usage": True, "window": True, "mode": "most-predictable", "isLM": True, "equal": True,
                 "diverged": True, "reused": True}


def test_many_sessions_at_once(page):
    r = js(page, """
        const ss = await Promise.all([0, 1, 2].map(() => LanguageModel.create({...TINY, samplingMode: "most-predictable"})));
        const texts = await Promise.all(ss.map((s) => s.prompt("the same question")));
        ss.forEach((s) => s.destroy());
        return texts;""")
    assert len(r) == 3 and r[0] == r[1] == r[2]


# --- context overflow ----------------------------------------------------------------------------

def test_context_overflow_drops_old_turns_and_fires_the_event(page):
    r = js(page, """
        const s = await LanguageModel.create({...TINY, samplingMode: "most-predictable",
                                               initialPrompts: [{role: "system", content: "Keep me."}]});
        let events = 0, handler = 0;
        s.addEventListener("contextoverflow", (e) => { events++; });
        s.oncontextoverflow = () => { handler++; };
        const initial = s.contextUsage;
        const usages = [];
        for (let i = 0; i < 8; i++) { await s.append("word ".repeat(30) + i); usages.push(s.contextUsage); }
        const text = await s.prompt("and now?");
        s.destroy();
        return {events, handler, initial, usages, max: Math.max(...usages), window: s.contextWindow, text: typeof text};""")
    assert r["events"] >= 1 and r["handler"] == r["events"], r
    assert r["max"] <= r["window"] and r["text"] == "string"
    per_append = r["usages"][0] - r["initial"]
    assert r["usages"][-1] < r["initial"] + 8 * per_append, r  # old turns were dropped, the system prompt kept


def test_a_prompt_too_big_for_the_window_is_quota_exceeded_and_drops_nothing(page):
    r = js(page, """
        const s = await base.clone();
        let events = 0;
        s.addEventListener("contextoverflow", () => events++);
        const before = s.contextUsage;
        let error;
        try { await s.prompt("word ".repeat(400)); } catch (e) { error = ERR(e); }
        const after = s.contextUsage;
        s.destroy();
        return {error, before, after, events};""")
    e = r["error"]
    assert e["name"] == "QuotaExceededError" and e["isDOM"] and e["requested"] > 256
    assert r["after"] == r["before"] and r["events"] == 0


# --- issue 14: the spec's steps, one test each ------------------------------------------------

def test_downloadprogress_fires_0_then_1_when_the_model_is_already_loaded(page):
    # writing-assistance-apis, "initialize and return an AI model object" steps 2-3: the "available"
    # path performs fireProgressEvent(0) and fireProgressEvent(1); fireProgressEvent does nothing once
    # abortedDuringDownload is true, and the create() promise rejects with the abort reason
    r = js(page, """
        const seen = [];
        const s = await LanguageModel.create({...TINY, monitor(m) {
            m.addEventListener("downloadprogress", (e) => seen.push([e.loaded, e.total, e.lengthComputable])); }});
        s.destroy();
        window.reason = new DOMException("stop monitoring", "AbortError");
        const c = new AbortController(), cut = [];
        let rejected = null;
        try {
            await LanguageModel.create({...TINY, signal: c.signal, monitor(m) {
                m.addEventListener("downloadprogress", (e) => { cut.push(e.loaded); c.abort(window.reason); }); }});
        } catch (e) { rejected = e === window.reason; }
        await new Promise((r) => setTimeout(r, 50));
        return {seen, cut, rejected};""")
    assert r == {"seen": [[0, 1, True], [1, 1, True]], "cut": [0], "rejected": True}


@pytest.mark.parametrize("options, ctor", [
    ("{samplingMode: 'balanced', topK: 3}", "TypeError"),  # README "Legacy ... raw parameters": both → TypeError
    ("{samplingMode: 'balanced', temperature: 0.5}", "TypeError"),
    ("{topK: 0}", "RangeError"),  # README: topK below 1 → RangeError
    ("{topK: -3}", "RangeError"),
    ("{temperature: -1}", "RangeError"),  # README: temperature below 0 → RangeError
    ("{device: 'tpu'}", "TypeError"),
])
def test_availability_rejects_where_create_does(page, options, ctor):
    # writing-assistance-apis: "create an AI model object" step 5 and "compute AI model availability"
    # step 5 perform the same "validate and canonicalize language model options"; so availability()
    # rejects with what create() rejects with on argument validation
    for method in ("create", "availability"):
        e = error_of(page, f"const r = await LanguageModel.{method}({{...TINY, ...{options}}}); r?.destroy?.(); return r;")
        assert e["ctor"] == ctor, (method, e)


def test_availability_is_unavailable_where_create_is_not_supported(page):
    # "create an AI model object": an "unavailable" availability rejects create() with NotSupportedError
    r = js(page, """
        const out = {};
        for (const [k, o] of Object.entries({image: {expectedInputs: [{type: "image"}]}})) {
            out[k] = [await LanguageModel.availability({...TINY, ...o}),
                      await LanguageModel.create({...TINY, ...o}).then(() => "created", (e) => e.name)];
        }
        // tools are supported (tests/test_web_tools.py): a well-formed tool is "available" and created.
        // On the default model: the generic tool prompt alone outgrows the tiny model's 256-token window.
        const tools = {model: "/models/SmolLM2-135M-Instruct/", device: "wasm", tools: [{name: "f", description: "d", inputSchema: {}, execute() {}}]};
        out.tools = [await LanguageModel.availability(tools),
                     await LanguageModel.create(tools).then((s) => { s.destroy(); return "created"; }, (e) => e.name)];
        const tiny = await LanguageModel.create({...TINY, ...tools, model: TINY.model}).then(() => "created", (e) => e.name);
        if (tiny !== "QuotaExceededError") out.tools.push("tiny: " + tiny);
        return out;""")
    assert r == {"tools": ["available", "created"], "image": ["unavailable", "NotSupportedError"]}


def test_measure_append_and_quota_requested_agree_to_the_token(page):
    # index.bs prefill: requested = "measuring language model context usage given messages"; on
    # overflow QuotaExceededError.requested = current context usage + requested; on success the usage
    # grows by requested. measureContextUsage() measures the same messages, so measure(x) is what
    # append(x) adds and requested - contextUsage for a prompt too big.
    r = js(page, """
        const s = await LanguageModel.create({...TINY, initialPrompts: [{role: "system", content: "S"}]});
        const out = {};
        for (const x of ["short", [{role: "user", content: "a question"}, {role: "assistant", content: "an answer"}]]) {
            const m = await s.measureContextUsage(x), before = s.contextUsage;
            await s.append(x);
            (out.appended ??= []).push(s.contextUsage - before === m);
        }
        const big = "word ".repeat(400);
        const m = await s.measureContextUsage(big);
        try { await s.prompt(big); } catch (e) { out.quota = {name: e.name, agree: e.requested - s.contextUsage === m, m}; }
        // measured as a fresh prompt (measureContextUsage step 3: hasAppendedInput false): a system message
        out.system = await s.measureContextUsage([{role: "system", content: "Be brief."}, {role: "user", content: "hi"}]);
        s.destroy();
        return out;""")
    assert r["appended"] == [True, True]
    assert r["quota"]["name"] == "QuotaExceededError" and r["quota"]["agree"] is True and r["quota"]["m"] > 256
    assert r["system"] > 0


def test_response_constraint_covers_the_assistant_prefix_and_its_continuation(page):
    # README "Constraining responses by providing a prefix" + "Structured output": the answer continues
    # the prefix, and the constraint holds for the assistant message (prefix + continuation); a
    # prefix that no allowed answer begins with cannot be honoured: NotSupportedError
    r = js(page, r"""
        const s = await base.clone();
        const rc = /^Greetings and salutations\.$/;
        const text = await s.prompt([{role: "user", content: "Greet me."}, {role: "assistant", content: "Greetings", prefix: true}],
                                    {responseConstraint: rc, maxTokens: 40});
        let bad;
        try { await s.prompt([{role: "user", content: "Greet me."}, {role: "assistant", content: "Hello", prefix: true}],
                             {responseConstraint: rc, maxTokens: 40}); } catch (e) { bad = ERR(e); }
        s.destroy();
        return {text, bad};""")
    assert r["text"] == " and salutations."
    assert r["bad"]["isDOM"] and r["bad"]["name"] == "NotSupportedError" and "prefix" in r["bad"]["message"]


@pytest.mark.parametrize("schema", ["{type: 'soup'}", "{type: 'integer', minimum: '0'}", "{type: 'string', format: 'date'}"])
def test_invalid_or_unsupported_schemas_are_not_supported_errors(page, schema):
    # README "Structured output": unsupported schema features → "NotSupportedError" DOMException (issue 14:
    # invalid ones too); only a constraint that is no object is a TypeError (test_argument_and_option_errors)
    for method in ("prompt", "measureContextUsage"):
        e = error_of(page, f"return await base.{method}('x', {{responseConstraint: {schema}}});")
        assert e["isDOM"] and e["name"] == "NotSupportedError", (method, e)


def test_answers_have_no_token_limit_but_the_context_window(page):
    # The Prompt API has no max-tokens: an answer runs to its end of turn or to the context window
    r = js(page, """
        const s = await LanguageModel.create({model: TINY.model, device: TINY.device, samplingMode: "most-predictable"});
        const text = await s.prompt("Tell me everything.");
        const st = s.lastStats;
        s.destroy();
        return {text: typeof text, reason: st.finish_reason, used: st.prompt_tokens + st.completion_tokens, n: st.completion_tokens,
                window: s.contextWindow};""")
    assert r["text"] == "string"
    assert r["reason"] == "stop" or (r["reason"] == "length" and r["used"] == r["window"]), r


def test_a_detached_iframes_language_model_rejects_with_invalid_state(page):
    # writing-assistance-apis: "If document is not fully active, then return a promise rejected with an
    # InvalidStateError" (create an AI model object step 4, compute AI model availability step 4, get an
    # aggregated/streaming AI model result step 3 — promptStreaming throws —, measure AI model input
    # usage step 3), and index.bs "clone a language model" step 3
    r = js(page, """
        const f = document.createElement("iframe");
        f.src = location.href;
        document.body.append(f);
        await new Promise((r) => f.addEventListener("load", r, {once: true}));
        const LM = f.contentWindow.llm.LanguageModel;
        const s = await LM.create({...TINY, samplingMode: "most-predictable"});
        f.remove();
        const out = {};
        const names = (p) => p.then(() => "resolved", (e) => e.name);
        out.create = await names(LM.create(TINY));
        out.availability = await names(LM.availability(TINY));
        for (const m of ["prompt", "append", "measureContextUsage"]) out[m] = await names(s[m]("hi"));
        out.clone = await names(s.clone());
        try { s.promptStreaming("hi"); out.stream = "returned"; } catch (e) { out.stream = e.name; }
        return out;""")
    assert r == {k: "InvalidStateError" for k in ("create", "availability", "prompt", "append", "measureContextUsage",
                                                   "clone", "stream")}, r


ACTIVATION_PAGE = """<!doctype html><script src="/nomoat.js"></script>
<script type="module">
  // Runs at load, before any script of the test's: the page has no user activation yet.
  const TINY = {model: "/models/tiny/", device: "wasm", maxTokens: 4};
  await llm.polyfill();
  const out = {sticky: navigator.userActivation.hasBeenActive, availability: await LanguageModel.availability(TINY)};
  out.create = await LanguageModel.create(TINY).then((s) => { s.destroy(); return "created"; },
                                                      (e) => ({name: e.name, message: e.message}));
  console.log("activation:" + JSON.stringify(out));
</script>"""


def test_create_needs_sticky_activation_only_when_the_model_must_be_downloaded(browser, server):  # noqa: F811
    # Chrome's rule, as web-platform-tests ai/language-model/language-model-create-user-activation states
    # it: availability "downloadable" and no sticky activation -> NotAllowedError (nothing fetched);
    # with activation create() succeeds and does not consume it; once "available", no activation needed.
    # Playwright's evaluate() counts as a user gesture (as WebDriver's clicks do), so the page's own
    # load-time script is what runs without one; a fresh context starts with an empty model cache.
    import json

    ctx = browser.new_context()
    try:
        ctx.route(server + "/activation.html", lambda route: route.fulfill(body=ACTIVATION_PAGE, content_type="text/html"))

        def load() -> tuple:
            page = ctx.new_page()
            page.set_default_timeout(TIMEOUT)
            with page.expect_console_message(lambda m: m.text.startswith("activation:"), timeout=TIMEOUT) as msg:
                page.goto(server + "/activation.html")
            return page, json.loads(msg.value.text.split(":", 1)[1])

        page, first = load()
        assert first["sticky"] is False and first["availability"] == "downloadable", first
        assert first["create"]["name"] == "NotAllowedError" and "user gesture" in first["create"]["message"], first
        fetched = page.evaluate("""async () => (await llm.cache.list()).length""")
        assert fetched == 0, "a refused create() must not start the download"
        r = page.evaluate("""async () => {
            const s = await LanguageModel.create({model: "/models/tiny/", device: "wasm"});
            const out = {active: navigator.userActivation.isActive, availability: await LanguageModel.availability({model: "/models/tiny/", device: "wasm"})};
            s.destroy();
            return out;
        }""")
        assert r == {"active": True, "availability": "available"}, r  # activation is not consumed
        page.close()
        page, second = load()  # a new document: no activation, but the model is now in the cache
        assert second["sticky"] is False and second["availability"] == "available", second
        assert second["create"] == "created", second
        page.close()
    finally:
        ctx.close()
