# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""llm.chat.completions.create: OpenAI's request and response shapes, answered by the default model
(SmolLM2-135M-Instruct, wasm) in headless Chromium. Greedy answers are compared with CPython's."""

from __future__ import annotations

import json

import pytest
from test_web import TIMEOUT, blank_page, browser_type_launch_args, models, server  # noqa: F401

Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811
    page = blank_page(browser, server)
    page.evaluate("""() => { window.ERR = (e) => ({name: e.name, ctor: e.constructor.name, message: e.message}); }""")
    yield page
    page.close()


def js(page, body: str, arg=None):
    return page.evaluate(f"async (arg) => {{ try {{ {body} }} catch (e) {{ return {{error: ERR(e)}}; }} }}", arg)


def create(page, params: dict):
    return js(page, "return await llm.chat.completions.create({device: 'wasm', ...arg});", params)


def test_completion_shape_and_greedy_answer(page, cpython_exact):
    r = create(page, {"model": "gpt-4o-mini", "messages": Q, "temperature": 0})
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-") and isinstance(r["created"], int)
    assert r["model"] == "SmolLM2-135M-Instruct"
    (choice,) = r["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert choice["message"]["role"] == "assistant"
    expected = cpython_exact.session(temperature=0).prompt_sync(Q[0]["content"])
    assert choice["message"]["content"] == expected
    u = r["usage"]
    assert u["prompt_tokens"] > 10 and u["completion_tokens"] > 3 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    t = r["timings"]
    assert t["ttft_ms"] > 0 and t["prefill_tokens_per_s"] > 0 and t["decode_tokens_per_s"] > 0


def test_streaming_chunks_add_up_to_the_same_answer(page):
    r = js(page, """
        const stream = await llm.chat.completions.create({device: "wasm", messages: arg, temperature: 0, stream: true,
                                                           stream_options: {include_usage: true}});
        const chunks = [];
        for await (const c of stream) chunks.push(c);
        const full = await llm.chat.completions.create({device: "wasm", messages: arg, temperature: 0});
        return {chunks, full};""", Q)
    chunks, full = r["chunks"], r["full"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == full["choices"][0]["message"]["content"]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 3  # really streamed
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == full["usage"]["completion_tokens"]


def test_a_growing_conversation_reuses_the_kv_cache(page):
    first = create(page, {"messages": Q, "temperature": 0})
    answer = first["choices"][0]["message"]["content"]
    follow = [*Q, {"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}]
    second = create(page, {"messages": follow, "temperature": 0})
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= first["usage"]["prompt_tokens"]  # the whole first exchange came from the cache
    assert second["usage"]["prompt_tokens"] - cached < 20  # only the new turn was computed
    assert second["choices"][0]["message"]["content"]


def test_max_tokens_and_stop(page):
    r = create(page, {"messages": Q, "temperature": 0, "max_tokens": 3})
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 3
    r = create(page, {"messages": Q, "temperature": 0, "stop": ["Paris"]})
    content = r["choices"][0]["message"]["content"]
    assert r["choices"][0]["finish_reason"] == "stop" and "Paris" not in content and content.startswith("The capital")


def test_seeded_sampling_repeats(page):
    a = create(page, {"messages": Q, "temperature": 1, "top_p": 0.9, "seed": 7, "max_tokens": 24})
    b = create(page, {"messages": Q, "temperature": 1, "top_p": 0.9, "seed": 7, "max_tokens": 24})
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


def test_json_schema_response_format(page):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"enum": ["France", "Italy"]}},
              "required": ["city", "country"], "additionalProperties": False}
    r = create(page, {"messages": [{"role": "user", "content": "Name the capital of France as JSON."}], "temperature": 0,
                      "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}})
    value = json.loads(r["choices"][0]["message"]["content"])
    assert set(value) == {"city", "country"} and value["country"] in ("France", "Italy") and len(value["city"]) <= 20


@pytest.mark.parametrize("params, name", [
    ({}, "TypeError"),
    ({"messages": []}, "TypeError"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "TypeError"),
    ({"messages": Q, "temperature": 3}, "TypeError"),
    ({"messages": Q, "max_tokens": 0}, "TypeError"),
    ({"messages": Q, "stop": ["a", "b", "c", "d", "e"]}, "TypeError"),
    ({"messages": Q, "response_format": {"type": "xml"}}, "TypeError"),
    ({"messages": Q, "n": 2}, "NotSupportedError"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "NotSupportedError"),
    ({"messages": Q, "tools": [{"type": "function", "function": {"name": "f", "parameters": {  # a schema nomoat cannot enforce
        "type": "object", "properties": {"d": {"type": "string", "format": "date"}}}}}]}, "NotSupportedError"),
    ({"messages": Q, "tool_choice": "required"}, "TypeError"),
])
def test_bad_requests_name_the_problem(page, params, name):
    r = create(page, params)
    assert r.get("error", {}).get("name") == name, r
    assert r["error"]["message"]


def test_abort_and_closing_a_stream_early(page):
    r = js(page, """
        const c = new AbortController();
        const p = llm.chat.completions.create({device: "wasm", messages: [{role: "user", content: "Write a long story about a dragon."}],
                                               temperature: 0, max_tokens: 200}, {signal: c.signal});
        setTimeout(() => c.abort(), 100);  // the greedy story runs to 200 tokens (~2 s here)
        let aborted;
        try { await p; aborted = false; } catch (e) { aborted = e.name; }
        const s = await llm.chat.completions.create({device: "wasm", messages: [{role: "user", content: "Write a long story about a dragon."}],
                                                     temperature: 0, max_tokens: 200, stream: true});
        let n = 0;
        for await (const chunk of s) { if (++n === 3) break; }
        const after = await llm.chat.completions.create({device: "wasm", messages: arg, temperature: 0, max_tokens: 4});
        return {aborted, n, after: after.choices[0].finish_reason};""", Q)
    assert r == {"aborted": "AbortError", "n": 3, "after": "length"}, r


@pytest.fixture(scope="module")
def cpython_exact(default_model_dir):
    import nomoat

    return nomoat.load(default_model_dir, accuracy_level=0, threads=2)
