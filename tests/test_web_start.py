"""Python from a memory snapshot, in the page (web/src/pyodide_boot.mjs), in headless Chromium.

The first page of a browser profile boots Python, takes a snapshot of it with nomoat imported and
stores it (Cache API "nomoat-runtime"); the next page restores it. The tests read which happened from
llm.timeline()'s "python.ready" span, and hold every page to the same greedy answer: a restored Python
must answer exactly as a booted one, including code it imports only later (structured output), a
damaged snapshot must be replaced, never used, and data-snapshot="false" boots plainly.
"""

from __future__ import annotations

import json

from test_web import TIMEOUT, blank_page, browser_type_launch_args, models, server  # noqa: F401

ASK = """async () => {
    const s = await llm.create({model: "/models/tiny/", device: "wasm", temperature: 0});
    const text = await s.prompt("The capital of France is", {maxTokens: 8});
    const json = await s.prompt("Give a number.", {maxTokens: 24, responseConstraint:
        {type: "object", properties: {n: {type: "integer"}}, required: ["n"]}});
    s.destroy();
    const ready = (await llm.timeline()).filter((t) => t.stage === "python.ready");
    return {text, json, snapshot: ready.map((t) => t.detail.snapshot)};
}"""
STORED = """async () => {
    const c = await caches.open("nomoat-runtime");
    return (await c.keys()).length;
}"""
OPT_OUT = """<!doctype html><script src="/nomoat.js" data-snapshot="false"></script>"""


def ask(ctx, server: str, url: str = "/?load=0") -> dict:  # noqa: F811
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(server + url)
    r = page.evaluate(ASK)
    if r["snapshot"] == ["made"]:
        page.wait_for_function(f"({STORED})().then((n) => n === 1)", polling=200)  # stored in the background
    stored = page.evaluate(STORED)
    page.close()
    json.loads(r["json"])  # structured output: nomoat.constrain, imported after the restore, works
    return {**r, "stored": stored}


def test_the_next_page_restores_python_and_answers_alike_a_damaged_snapshot_is_replaced(browser, server):  # noqa: F811
    ctx = browser.new_context()
    try:
        ctx.route(server + "/opt-out.html", lambda route: route.fulfill(body=OPT_OUT, content_type="text/html"))
        first = ask(ctx, server)
        assert first["snapshot"] == ["made"] and first["stored"] == 1, first
        again = ask(ctx, server)
        assert again["snapshot"] == ["restored"], again
        assert (again["text"], again["json"]) == (first["text"], first["json"])

        # the stored snapshot damaged, its headers (size, sha256) kept: refused, Python boots and replaces it
        page = blank_page(ctx, server)
        page.evaluate("""async () => {
            const c = await caches.open("nomoat-runtime");
            const [key] = await c.keys();
            const hit = await c.match(key);
            const bytes = new Uint8Array(await hit.arrayBuffer());
            bytes[bytes.length >> 1] ^= 1;
            await c.put(key, new Response(bytes, {headers: hit.headers}));
        }""")
        page.close()
        damaged = ask(ctx, server)
        assert damaged["snapshot"] == ["made"] and damaged["stored"] == 1, damaged
        assert (damaged["text"], damaged["json"]) == (first["text"], first["json"])
        assert ask(ctx, server)["snapshot"] == ["restored"]

        plain = ask(ctx, server, "/opt-out.html")
        assert plain["snapshot"] == ["none"], plain
        assert (plain["text"], plain["json"]) == (first["text"], first["json"])
    finally:
        ctx.close()
