# ruff: noqa: E501  (the JavaScript in the strings reads better unwrapped)
"""Third-party code written for Chrome's built-in AI runs unchanged on `llm.polyfill()`.

The library: @built-in-ai/core 3.0.1 (npm, by Jakob Hoeg Mørk: a Vercel AI SDK provider for Chrome's and
Edge's Prompt API), driven through the `ai` package 6.0.333 exactly as its README shows — generateText,
streamText, and generateObject with a JSON Schema (which it passes to LanguageModel as responseConstraint).
Both are pinned devDependencies in web/package.json, bundled as they are by tests/third_party/bundle.mjs
(esbuild) into the test page, on top of nomoat's LanguageModel and the real default model, offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_web import TIMEOUT, blank_page, browser_type_launch_args, models, server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("third_party") / "built_in_ai.js"
    subprocess.run(["node", str(ROOT / "tests/third_party/bundle.mjs"), str(out)], check=True, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def page(browser, server, bundle):  # noqa: F811
    page = blank_page(browser, server)
    r = page.evaluate("async () => { const r = await llm.polyfill(); return {...r, same: globalThis.LanguageModel === llm.LanguageModel}; }")
    assert r["installed"] and r["same"], r
    page.add_script_tag(path=str(bundle))
    assert page.evaluate("typeof window.thirdParty.generateText") == "function"
    yield page
    page.close()


def run(page, body: str):
    return page.evaluate(f"""async () => {{ const {{builtInAI, doesBrowserSupportBuiltInAI, generateObject, generateText, jsonSchema, streamText}} = window.thirdParty;
        try {{ {body} }} catch (e) {{ return {{error: {{name: e.name, message: String(e.message), cause: String(e.cause?.message ?? "")}}}}; }} }}""")


def test_the_library_sees_a_built_in_ai(page):
    r = run(page, "return {supported: doesBrowserSupportBuiltInAI(), availability: await builtInAI().availability()};")
    assert r["supported"] is True
    assert r["availability"] in ("available", "downloadable"), r


def test_generate_text(page):
    r = run(page, """const {text, finishReason, usage} = await generateText({model: builtInAI(), temperature: 0,
            prompt: "What is the capital of France? Answer with the city's name."});
        return {text, finishReason};""")
    print("generateText:", r)
    assert "error" not in r, r
    assert "paris" in r["text"].lower(), r
    assert r["finishReason"] == "stop"


def test_stream_text(page):
    r = run(page, """const result = streamText({model: builtInAI(), temperature: 0, prompt: "Name three colours of the rainbow."});
        const pieces = [];
        for await (const piece of result.textStream) pieces.push(piece);
        return {pieces, text: await result.text};""")
    print("streamText:", r)
    assert "error" not in r, r
    assert len(r["pieces"]) > 1 and "".join(r["pieces"]) == r["text"]  # streamed, piece by piece
    assert any(c in r["text"].lower() for c in ("red", "orange", "yellow", "green", "blue", "indigo", "violet"))


def test_generate_object_with_a_json_schema(page):
    # the schema reaches LanguageModel.prompt() as responseConstraint: the answer always parses and validates
    r = run(page, """const schema = jsonSchema({type: "object", properties: {city: {type: "string"}, country: {type: "string"},
            population_millions: {type: "number"}}, required: ["city", "country", "population_millions"], additionalProperties: false});
        const {object} = await generateObject({model: builtInAI(), temperature: 0, schema,
            prompt: "Give the capital of France, its country and its population in millions."});
        return {object};""")
    print("generateObject:", r)
    assert "error" not in r, r
    obj = r["object"]
    assert set(obj) == {"city", "country", "population_millions"}
    assert isinstance(obj["city"], str) and isinstance(obj["country"], str)
    assert isinstance(obj["population_millions"], (int, float))
    json.dumps(obj)
