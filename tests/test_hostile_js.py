"""Hostile calls to window.llm from page script (tests/hostile_calls_page.js, seeded), on the tiny
model and nomoat's wasm decoder: every call answers or rejects with a named error; afterwards the
worker still serves and a new session answers exactly as one did before the fuzz."""

# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path

import pytest
from test_web import blank_page, browser_type_launch_args, models, server  # noqa: F401

PAGE_JS = (Path(__file__).parent / "hostile_calls_page.js").read_text()
SEEDS = [1, 2, 3]
CALLS = 120

ANSWER = """async (model) => {
    const s = await llm.create({model, device: "wasm", temperature: 0, maxTokens: 8});
    const out = await s.prompt("Name a colour.");
    s.destroy();
    return out;
}"""


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_calls_from_the_page(browser, server, seed):
    page = blank_page(browser, server)
    model = server + "/models/tiny/"
    try:
        before = page.evaluate(ANSWER, model)
        page.evaluate(PAGE_JS)
        result = page.evaluate("([seed, n, model]) => hostileFuzz(seed, n, model)", [seed, CALLS, model])
        print(f"seed {seed}: {dict(sorted(result['outcomes'].items()))}")
        assert result["wrong"] == []
        assert page.evaluate(ANSWER, model) == before  # the worker still serves, as before
        page.wait_for_timeout(500)
        left = page.evaluate("llm.resources()")
        assert left["workers"] >= 1 and left["running"] == 0, left
    finally:
        page.close()
