"""Hostile messages on the extension's port (the protocol every window.llm call crosses), seeded:
random kinds, ids and payloads — wrong types, huge and odd strings, nested junk, other sessions'
handles. Each request with a usable id is answered once, with a result or an error the protocol
names; the port stays open; afterwards the same port still gets a correct answer."""

# ruff: noqa: F811
from __future__ import annotations

import pytest
from test_extension import ext, extension_dir, intruder_dir, popup  # noqa: F401

FUZZ = """async ([seed, n]) => {
    let x = seed >>> 0;
    const rand = () => { x = (x + 0x6d2b79f5) >>> 0; let t = x; t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    const pick = (a) => a[Math.floor(rand() * a.length)];
    await chrome.runtime.sendMessage({type: "nomoat:ensure"});
    const port = chrome.runtime.connect({name: "nomoat"});
    let closed = false;
    port.onDisconnect.addListener(() => { closed = true; });
    const waiting = new Map(), chunks = new Map();
    await new Promise((ok) => port.onMessage.addListener((m) => {
        if (m.kind === "hello") ok();
        if (m.kind === "chunk") chunks.set(m.id, (chunks.get(m.id) || "") + m.payload);
        const w = waiting.get(m.id);
        if (w && (m.kind === "return" || m.kind === "throw")) { waiting.delete(m.id); w(m); }
    }));
    let next = 1;
    const SILENT = new Set(["abort", "live", "ping"]);  // no reply by design (or not on this id)
    const ask = (kind, payload, id = next++) => new Promise((res) => {
        waiting.set(id, (m) => res({...m, text: chunks.get(id) || ""}));
        port.postMessage({kind, id, payload});
        setTimeout(() => { if (waiting.delete(id)) res({kind: "none:" + kind}); }, SILENT.has(kind) ? 2000 : 60000);
    });
    const model = new URL("nomoat/models/tiny/", location.href).href;
    const made = await ask("create", {model, device: "wasm", options: {temperature: 0, max_tokens: 4}});
    const sid = made.payload.session;
    const before = (await ask("prompt", {session: sid, input: "Name a colour.", options: {}})).text;
    const text = () => pick(["", "hi", "\\ud800", "x".repeat(pick([10, 250000])), "__proto__", "constructor"]);
    const value = (d = 0) => d > 2 || rand() < 0.5
        ? pick([null, true, 0, -1, 1.5, 2 ** 60, "", text(), sid, sid + 1, -sid, "1", [], {}])
        : pick([() => [value(d + 1), value(d + 1)],
                () => ({session: pick([sid, value(d + 1)]), input: pick([text(), value(d + 1)]),
                        options: pick([{}, value(d + 1), {temperature: value(d + 1)}, {max_tokens: value(d + 1)}]),
                        messages: value(d + 1), model: pick([model, value(d + 1)]), device: value(d + 1),
                        target: value(d + 1), texts: value(d + 1), __proto__: value(d + 1)})])();
    const kinds = ["create", "prompt", "complete", "append", "measure", "clone", "destroy", "tokenize", "abort",
                   "availability", "resources", "live", "ping", "eval", "", "__proto__", "toString"];
    const NAMED = new Set(["TypeError", "RangeError", "NotSupportedError", "QuotaExceededError", "InvalidStateError",
                           "AbortError", "DataError", "NotFoundError", "SyntaxError", "NotAllowedError"]);
    const outcomes = {}, wrong = [];
    for (let i = 0; i < n; i++) {
        const kind = pick(kinds);
        if (kind === "destroy" && rand() < 0.8) continue;  // keep sid alive most of the time
        const r = await ask(kind, rand() < 0.9 ? value() : text());
        const key = r.kind === "throw" ? r.payload.name : r.kind;
        outcomes[key] = (outcomes[key] || 0) + 1;
        if (r.kind === "throw" && (!NAMED.has(r.payload.name) || !r.payload.message)) {
            wrong.push(`${kind}: ${r.payload.name}: ${String(r.payload.message).slice(0, 200)}`);
        }
    }
    for (const id of [0, -1, 1.5, "7", null]) { port.postMessage({kind: "prompt", id, payload: {session: sid}}); }
    port.postMessage("junk"); port.postMessage(null); port.postMessage([1, 2]);
    const again = await ask("create", {model, device: "wasm", options: {temperature: 0, max_tokens: 4}});
    const after = (await ask("prompt", {session: again.payload.session, input: "Name a colour.", options: {}})).text;
    return {outcomes, wrong, closed, before, after};
}"""


@pytest.mark.parametrize("seed", [5, 6])
def test_port_fuzz(popup, seed):
    r = popup.evaluate(FUZZ, [seed, 80])
    print(f"seed {seed}: {dict(sorted(r['outcomes'].items()))}")
    assert r["wrong"] == []
    assert not r["closed"]
    silent = {k for k in r["outcomes"] if k.startswith("none:")}
    assert silent <= {"none:abort", "none:live", "none:ping"}, r["outcomes"]  # every other request was answered
    assert r["before"] and r["after"] == r["before"]
