"""Overhead of constrained decoding (JSON Schema and RegExp) per token: CPython, and the browser (wasm).

    .venv/bin/python bench/bench_constrain.py              # CPython table; --repeats N (default 3)
    .venv/bin/python bench/bench_constrain.py --browser    # the same in headless Chromium, wasm, Pyodide

For each constraint, in one run and interleaved with the same prompt unconstrained: decode tokens/s
and the time spent computing the allowed-token mask per token (the constraint's own timer: Python,
in CPython or in Pyodide), medians over repeats. Temperature 0, the default model; the constraint
is not described in the prompt (the same prompt tokens either way).
- CPython: onnxruntime, 2 threads, accuracy level 4; the mask is applied to the logits in numpy.
- Browser: llm.create({device: "wasm"}), responseConstraint with omitResponseConstraintInput; the
  mask crosses into JS as a Uint32Array and the JS sampler applies it (stats from session.lastStats).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import nomoat
from nomoat.constrain import GrammarConstraint, compile_constraint
from nomoat.generate import Stats, generate

CONSTRAINTS = {
    "person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
               "age": {"type": "integer", "minimum": 0, "maximum": 150}}, "required": ["name", "age"],
               "additionalProperties": False},
    "list of enums": {"type": "array", "items": {"enum": ["red", "green", "blue", "yellow"]}, "minItems": 3,
                      "maxItems": 8},
    "nested": {"type": "object", "properties": {"title": {"type": "string", "maxLength": 60},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 5},
               "score": {"type": "number", "minimum": 0, "maximum": 10}, "draft": {"type": "boolean"}},
               "required": ["title", "tags", "score", "draft"], "additionalProperties": False},
    "pattern": {"type": "object", "properties": {"isbn": {"type": "string", "pattern": "^97[89]-\\d{10}$"},
                "title": {"type": "string", "pattern": "^[A-Z][a-z ]{2,40}$"}}, "required": ["isbn", "title"]},
    "regex: sentence": {"regex": "[A-Z][^\\n.]{10,80}\\."},
    "regex: date": {"regex": "(19|20)\\d\\d-(0[1-9]|1[0-2])-([0-2]\\d|3[01])"},
}
PROMPT = "Describe a made-up book as JSON."
MAX_TOKENS = 96


async def run(model, spec):
    ids = model.encode_chat([{"role": "user", "content": PROMPT}])
    params = nomoat.SamplingParams(temperature=0, max_tokens=MAX_TOKENS)
    constraint = GrammarConstraint(compile_constraint(spec), model.tokenizer, model.stop_ids) if spec else None
    stats = Stats()
    text = "".join([p async for p in generate(model.backend, model.backend.new_state(), ids, params, model.tokenizer,
                                              model.stop_ids, model.context_window, stats, constraint)])
    return {"decode_tps": stats.decode_tps, "mask_ms": stats.to_dict()["mask_ms"],
            "completion_tokens": stats.completion_tokens, "text": text}


def cpython(repeats: int) -> tuple[dict, str]:
    from nomoat.constrain import TokenIndex

    model = nomoat.load(threads=2)
    t0 = time.perf_counter()
    TokenIndex.for_tokenizer(model.tokenizer)
    note = f"Once per tokenizer: the vocabulary index, {1000 * (time.perf_counter() - t0):.0f} ms."
    runs = {}
    for name, spec in CONSTRAINTS.items():
        runs[name] = []
        for _ in range(repeats):
            runs[name].append((asyncio.run(run(model, None)), asyncio.run(run(model, spec))))
    return runs, note


JS_RUN = """async ([text, spec, max]) => {
    const s = await llm.create({device: "wasm", temperature: 0, maxTokens: max});
    const o = {};
    if (spec) {
        o.responseConstraint = spec.regex !== undefined ? new RegExp(spec.regex, spec.flags || "") : spec;
        o.omitResponseConstraintInput = true;
    }
    const t0 = performance.now();
    const out = await s.prompt(text, o);
    const wall_ms = performance.now() - t0;
    const st = s.lastStats; s.destroy();
    return {decode_tps: st.decode_tps, mask_ms: st.mask_ms, completion_tokens: st.completion_tokens, text: out,
            device: s.device, wall_ms};
}"""


def browser(repeats: int) -> tuple[dict, str]:
    from playwright.sync_api import sync_playwright

    from nomoat.serve import make_server

    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/?load=0"
    runs = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-quic"])
        page = b.new_page()
        page.set_default_timeout(600_000)
        page.goto(url)
        device = page.evaluate(JS_RUN, ["Hi", None, 2])["device"]  # load the model once
        first, again = (page.evaluate(JS_RUN, [PROMPT, CONSTRAINTS["person"], MAX_TOKENS]) for _ in range(2))
        note = (f"Device {device}. Once per tokenizer, the vocabulary index: the first constrained prompt took "
                f"{first['wall_ms'] - again['wall_ms']:.0f} ms longer than the same prompt again.")
        for name, spec in CONSTRAINTS.items():
            runs[name] = [(page.evaluate(JS_RUN, [PROMPT, None, MAX_TOKENS]),
                           page.evaluate(JS_RUN, [PROMPT, spec, MAX_TOKENS])) for _ in range(repeats)]
        b.close()
    srv.shutdown()
    return runs, note


def table(runs: dict) -> str:
    lines = ["| constraint | tokens | decode tok/s free | decode tok/s constrained | mask ms/token | output |",
             "|---|---:|---:|---:|---:|---|"]
    for name, pairs in runs.items():
        free = statistics.median(f["decode_tps"] for f, _ in pairs)
        bound = statistics.median(c["decode_tps"] for _, c in pairs)
        mask = statistics.median(c["mask_ms"] for _, c in pairs)
        last = pairs[-1][1]
        text = last["text"][:60].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {last['completion_tokens']} | {free:.1f} | {bound:.1f} ({100 * bound / free:.0f} %) "
                     f"| {mask:.2f} | `{text}` |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="headless Chromium on wasm instead of CPython")
    args = ap.parse_args()
    runs, note = browser(args.repeats) if args.browser else cpython(args.repeats)
    print(table(runs))
    print()
    print(note)


if __name__ == "__main__":
    main()
