# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""Tool use end to end in headless Chromium: the Prompt API's `tools` (index.bs LanguageModelTool,
the README's "Tool use") and llm.chat.completions' tools, on the real models over wasm:
SmolLM2-135M-Instruct (the default; its chat template has no tools, so nomoat's generic tool prompt)
and Gemma-3-270M (a base model: the Question/Answer transcript).

A tool returns a distinctive value ("23.7 °C"); the test checks that execute() got arguments valid
against its inputSchema (grammar-constrained) and that the final answer uses the value. These small
models do not choose to call a tool on their own ("auto"): the tests use nomoat's `toolChoice:
"required"` extension for the first answer (the Prompt API has no tool_choice); what "auto" does is
recorded, not asserted."""

from __future__ import annotations

import threading

import pytest
from test_web import TIMEOUT, blank_page, browser_type_launch_args  # noqa: F401

WEATHER = """{name: "getWeather", description: "Get the current temperature in a city.",
    inputSchema: {type: "object", properties: {city: {type: "string", maxLength: 40}}, required: ["city"]},
    async execute(args) { window.calls.push(args); return "23.7 °C"; }}"""


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory, default_model_dir, gemma_dir):
    root = tmp_path_factory.mktemp("tool-models")
    (root / "SmolLM2-135M-Instruct").symlink_to(default_model_dir)
    (root / "gemma-3-270m").symlink_to(gemma_dir)
    from nomoat.serve import make_server

    srv = make_server(0, models=root)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def page(browser, tool_server):
    page = blank_page(browser, tool_server)
    page.set_default_timeout(TIMEOUT)
    page.evaluate("async () => { await llm.polyfill(); window.calls = []; }")
    yield page
    page.close()


def run(page, body: str, arg=None):
    return page.evaluate(f"async (arg) => {{ try {{ {body} }} catch (e) {{ return {{error: `${{e.name}}: ${{e.message}}`}}; }} }}", arg)


@pytest.mark.parametrize("model", ["SmolLM2-135M-Instruct", "gemma-3-270m"])
def test_the_model_calls_the_weather_tool_and_answers_with_its_result(page, model):
    r = run(page, f"""
        window.calls = [];
        const s = await LanguageModel.create({{model: "/models/{model}/", device: "wasm", temperature: 0, topK: 1,
            expectedInputs: [{{type: "text"}}, {{type: "tool-response"}}], expectedOutputs: [{{type: "text"}}, {{type: "tool-call"}}],
            tools: [{WEATHER}]}});
        const before = s.contextUsage;
        const pieces = [];
        for await (const p of s.promptStreaming("What is the weather in Paris right now?", {{toolChoice: "required"}})) pieces.push(p);
        const forced = {{answer: pieces.join(""), calls: window.calls.slice(), usage: s.contextUsage, before}};
        window.calls = [];
        const t = await LanguageModel.create({{model: "/models/{model}/", device: "wasm", temperature: 0, topK: 1, tools: [{WEATHER}]}});
        const auto = {{answer: await t.prompt("What is the weather in Paris right now?"), calls: window.calls.slice()}};
        s.destroy(); t.destroy();
        return {{forced, auto}};""")
    assert "error" not in r, r
    forced = r["forced"]
    print(f"{model}: forced {forced}; auto {r['auto']}")
    assert len(forced["calls"]) >= 1, forced
    args = forced["calls"][0]
    assert set(args) == {"city"} and isinstance(args["city"], str) and 0 < len(args["city"]) <= 40, args  # valid against inputSchema
    assert "23.7" in forced["answer"], forced
    assert "<tool_call>" not in forced["answer"] and forced["before"] > 100 and forced["usage"] > forced["before"]
    assert isinstance(r["auto"]["answer"], str)  # "auto": the model decides (these small ones answer without a call)


def test_a_calculator_tool_and_tool_history_in_initial_prompts(page):
    r = run(page, """
        window.calls = [];
        const add = {name: "add", description: "Add two integers.", inputSchema: {type: "object",
            properties: {a: {type: "integer"}, b: {type: "integer"}}, required: ["a", "b"]},
            async execute({a, b}) { window.calls.push([a, b]); return String(a + b + 1000); }};
        const s = await LanguageModel.create({device: "wasm", temperature: 0, topK: 1, tools: [add]});
        const answer = await s.prompt("What is 17 plus 25? Use the add tool.", {toolChoice: "add"});
        // a conversation that already holds a call and its result (tool-call / tool-response content)
        const h = await LanguageModel.create({device: "wasm", temperature: 0, topK: 1, tools: [add], initialPrompts: [
            {role: "user", content: "What is 2 plus 3?"},
            {role: "assistant", content: [{type: "tool-call", value: {callID: "c1", name: "add", arguments: {a: 2, b: 3}}}]},
            {role: "user", content: [{type: "tool-response", value: {callID: "c1", name: "add", result: [{type: "text", value: "4711"}]}}]}]});
        const recalled = await h.prompt("What was the result of the add tool? Answer with the number.", {toolChoice: "none"});
        s.destroy(); h.destroy();
        return {answer, calls: window.calls, recalled};""")
    assert "error" not in r, r
    print(r)
    (a, b), *_ = r["calls"]
    assert isinstance(a, int) and isinstance(b, int)
    assert str(a + b + 1000) in r["answer"], r
    assert "4711" in r["recalled"], r


def test_errors_abort_and_bad_definitions(page):
    r = run(page, """
        const out = {};
        const ok = {name: "w", description: "weather", inputSchema: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}, execute: async () => "x"};
        const name = (p) => p.then(() => "resolved", (e) => e.name);
        out.noExecute = await name(LanguageModel.create({device: "wasm", tools: [{...ok, execute: undefined}]}));
        out.noSchema = await name(LanguageModel.create({device: "wasm", tools: [{...ok, inputSchema: undefined}]}));
        out.twice = await name(LanguageModel.create({device: "wasm", tools: [ok, ok]}));
        out.availabilityBad = await name(LanguageModel.availability({tools: [{name: "x"}]}));
        out.availabilityOk = await LanguageModel.availability({device: "wasm", tools: [ok]});
        out.unenforceable = await name(LanguageModel.create({device: "wasm", tools: [{...ok, inputSchema: {type: "string", format: "date"}}]}));
        // a tool that throws: the prompt rejects with that error, and the exchange leaves the history
        const boom = {...ok, execute: async () => { throw new RangeError("no such city"); }};
        const s = await LanguageModel.create({device: "wasm", temperature: 0, topK: 1, tools: [boom]});
        const before = s.contextUsage;
        out.thrown = await s.prompt("Weather in Oslo?", {toolChoice: "required"}).then(() => "resolved", (e) => `${e.name}: ${e.message}`);
        out.restored = s.contextUsage === before;
        // abort while the tool runs: the reason, at once; the exchange leaves the history
        let started;
        const running = new Promise((r) => { started = r; });
        const slow = await LanguageModel.create({device: "wasm", temperature: 0, topK: 1,
            tools: [{...ok, execute: () => { started(); return new Promise(() => {}); }}]});
        const usage0 = slow.contextUsage;
        const ac = new AbortController();
        const p = slow.prompt("Weather in Rome?", {signal: ac.signal, toolChoice: "required"});
        await running;
        ac.abort(new Error("user left"));
        out.aborted = await p.then(() => "resolved", (e) => e.message);
        out.abortRestored = (await slow.measureContextUsage("x")) > 0 && slow.contextUsage === usage0;
        out.after = typeof (await slow.prompt("Say hi.", {toolChoice: "none", maxTokens: 5}));
        s.destroy(); slow.destroy();
        return out;""")
    assert "error" not in r, r
    assert r["noExecute"] == r["noSchema"] == r["twice"] == r["availabilityBad"] == "TypeError", r
    assert r["availabilityOk"] in ("available", "downloadable") and r["unenforceable"] == "NotSupportedError", r
    assert r["thrown"] == "RangeError: no such city" and r["restored"], r
    assert r["aborted"] == "user left" and r["abortRestored"] and r["after"] == "string", r


def test_openai_tools_in_the_page_streaming_deltas(page):
    r = run(page, """
        const tools = [{type: "function", function: {name: "get_weather", description: "Get the current temperature in a city.",
            parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}];
        const messages = [{role: "user", content: "What is the weather in Paris right now?"}];
        const r = await llm.chat.completions.create({messages, tools, tool_choice: "required", temperature: 0, device: "wasm"});
        const stream = await llm.chat.completions.create({messages, tools, tool_choice: {type: "function", function: {name: "get_weather"}},
            temperature: 0, device: "wasm", stream: true});
        const chunks = [];
        for await (const c of stream) chunks.push(c.choices[0]);
        const call = r.choices[0].message.tool_calls[0];
        const followup = await llm.chat.completions.create({temperature: 0, device: "wasm", tools, max_tokens: 60, messages: [...messages,
            {role: "assistant", content: null, tool_calls: [call]}, {role: "tool", tool_call_id: call.id, content: "23.7 °C"}]});
        return {message: r.choices[0].message, finish: r.choices[0].finish_reason, chunks, followup: followup.choices[0]};""")
    assert "error" not in r, r
    (call,) = r["message"]["tool_calls"]
    assert r["finish"] == "tool_calls" and call["type"] == "function" and call["function"]["name"] == "get_weather"
    import json

    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)
    deltas = [c["delta"] for c in r["chunks"]]
    parts = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert parts[0]["id"] == parts[0]["id"] and parts[0]["function"]["name"] == "get_weather" and parts[0]["index"] == 0
    assert json.loads("".join(p["function"]["arguments"] for p in parts))["city"]
    assert r["chunks"][-1]["finish_reason"] == "tool_calls"
    assert r["followup"]["finish_reason"] == "stop" and "23.7" in r["followup"]["message"]["content"], r["followup"]
