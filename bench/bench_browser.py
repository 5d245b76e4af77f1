"""Browser benchmark: the default model in headless Chromium on wasm, next to CPython onnxruntime.

    .venv/bin/python bench/bench_browser.py            # writes bench/results_browser.json, prints a table
    .venv/bin/python bench/bench_browser.py --engines nomoat --repeats 1

Both wasm engines in the same run, each in its own fresh browser profile: "nomoat" (nomoat's own
decoder, web/src/wasm_engine.mjs) and "ort" (onnxruntime-web's wasm EP on the f32 graph), with the
ratio nomoat/ort of every measure. Per engine:
- load: cold (a fresh browser profile: Pyodide boot, model download, f32 weight build, session)
  and warm (the cold page closed, a new page in the same profile: the model from nomoat's cache,
  compiled wasm reused), from llm.create() to resolved, with the stages the worker reports, and
  from llm.create() to the first streamed token of a short prompt;
- time to first token and prefill tokens/s for a ~32- and a ~512-token prompt, from a fresh session;
- decode tokens/s over 128 greedy tokens (stats.decode_tps: per-step time after the first token),
  after a short prompt (~30 tokens of context) and after a ~1000-token prompt; for nomoat also
  after a ~4000-token prompt (--long; onnxruntime-web copies the whole KV cache in and out of its
  heap every step, so there it would take minutes);
- Python's share of each decode step (time outside the onnxruntime-web run: the Python loop,
  the FFI, the JS sampler), from the worker's own accounting;
- peak resident memory of all Chromium processes (sampled every 50 ms; one page open at a time);
The CPython numbers are measured once per repeat:
- CPython onnxruntime (nomoat.load, 2 threads) decode tokens/s at accuracy level 0 (f32 math, as
  the browser's wasm graph) and 4 (the CPython default), and the browser/CPython ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench_peers import FLAGS, PeakRSS, chromium_pid  # the browser measuring tools all benches share

HERE = Path(__file__).resolve().parent
LONG = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
        "movable metal type, oil-based inks and a screw press adapted from wine making. ") * 40


def prompt_ids(model, text: str, n: int) -> str:
    """A user message whose rendered chat prompt is about n tokens."""
    words = text.split(" ")
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(model.encode_chat([{"role": "user", "content": " ".join(words[:mid])}])) <= n:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


JS_CREATE = """async (engine) => {
    // stage timeline: the first and last progress event of each stage (stages overlap: the model
    // downloads while Pyodide boots), then the first token of a short prompt.
    const t0 = performance.now(); const stages = {};
    window.s = await llm.create({device: "wasm", wasmEngine: engine, temperature: 0, maxTokens: 128, monitor(m) {
        m.addEventListener("nomoatprogress", (e) => {
            const t = performance.now() - t0, st = stages[e.detail.stage] || {start: t, end: t};
            st.end = t; stages[e.detail.stage] = st;
        });
    }});
    const created = performance.now() - t0;
    const reader = window.s.promptStreaming("Hi!").getReader();
    await reader.read();
    const first = performance.now() - t0;
    await reader.cancel();
    return {ms: created, first_token_ms: first, stages, device: window.s.device};
}"""
JS_PROMPT = """async ([text, max, engine]) => {
    const s = await llm.create({device: "wasm", wasmEngine: engine, temperature: 0, maxTokens: max});
    await s.prompt(text); const st = s.lastStats; s.destroy(); return st;
}"""


def engine_run(p, url: str, engine: str, prompts: dict, decode_prompt: str, long: list[int]) -> dict:
    """One engine in a fresh browser profile: cold and warm load, TTFT, decode at several contexts."""
    with tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS)
        with PeakRSS(chromium_pid(profile)) as mem:
            page = ctx.new_page()  # cold: nothing compiled or cached yet
            page.set_default_timeout(1_200_000)
            page.goto(url + "?load=0")
            cold = page.evaluate(JS_CREATE, engine)
            page.close()
            page = ctx.new_page()  # warm: the same profile, a new page
            page.set_default_timeout(1_200_000)
            page.goto(url + "?load=0")
            warm = page.evaluate(JS_CREATE, engine)
            ttft = {n: page.evaluate(JS_PROMPT, [prompts[n], 1, engine]) for n in (32, 512)}
            dec = page.evaluate(JS_PROMPT, [decode_prompt, 128, engine])
            dec_long = {n: page.evaluate(JS_PROMPT, [prompts[n], 128 if n <= 1000 else 64, engine]) for n in long}
        ctx.close()
    return {
        "load_cold_ms": cold["ms"], "load_warm_ms": warm["ms"], "stages_cold_ms": cold["stages"],
        "stages_warm_ms": warm["stages"], "start_to_first_token_cold_ms": cold["first_token_ms"],
        "start_to_first_token_warm_ms": warm["first_token_ms"],
        "ttft_ms": {str(n): ttft[n]["ttft_ms"] for n in ttft},
        "prompt_tokens": {str(n): ttft[n]["prompt_tokens"] for n in ttft},
        "prefill_tps": {str(n): ttft[n]["prefill_tps"] for n in ttft},
        "decode_tps": dec["decode_tps"], "decode_tokens": dec["completion_tokens"],
        "decode_context": dec["prompt_tokens"],
        "decode_long_tps": {str(n): d["decode_tps"] for n, d in dec_long.items()},
        "decode_long_context": {str(n): d["prompt_tokens"] for n, d in dec_long.items()},
        "python_share": dec["python_share"], "peak_rss_mb": mem.peak / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="nomoat,ort", help="wasm engines to compare (nomoat, ort)")
    ap.add_argument("--long", type=int, default=4000, help="nomoat only: decode after a prompt this long (0: skip)")
    ap.add_argument("--out", type=Path, default=HERE / "results_browser.json")
    args = ap.parse_args()
    engines = args.engines.split(",")

    from playwright.sync_api import sync_playwright

    import nomoat
    from nomoat.catalog import convert_default
    from nomoat.serve import make_server

    model_dir = convert_default()
    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    exact = nomoat.load(model_dir, accuracy_level=0, threads=2)
    fast = nomoat.load(model_dir, accuracy_level=4, threads=2)
    sizes = (32, 512, 1000, *([args.long] if args.long else []))
    prompts = {n: prompt_ids(exact, LONG * (1 + n // 1000), n) for n in sizes}
    decode_prompt = "Write a detailed essay about the history of the printing press."

    runs = []
    with sync_playwright() as p:
        for r in range(args.repeats):
            run = {}
            for e in engines:
                long = [1000] + ([args.long] if args.long and e == "nomoat" else [])
                run[e] = engine_run(p, url, e, prompts, decode_prompt, long)
            for name, m in (("cpython_level0", exact), ("cpython_level4", fast)):
                s = m.session(temperature=0, max_tokens=128)
                s.prompt_sync(decode_prompt)
                run[name] = s.last.decode_tps
            runs.append(run)
            print(f"repeat {r + 1}: {json.dumps(run)}")
    srv.shutdown()

    def med(engine: str, *path: str) -> float:
        vals = []
        for x in runs:
            v = x[engine]
            for k in path:
                v = v[k]
            vals.append(v)
        return statistics.median(vals)

    median = {e: {
        "load_cold_s": med(e, "load_cold_ms") / 1000, "load_warm_s": med(e, "load_warm_ms") / 1000,
        "start_to_first_token_cold_s": med(e, "start_to_first_token_cold_ms") / 1000,
        "start_to_first_token_warm_s": med(e, "start_to_first_token_warm_ms") / 1000,
        "ttft_ms": {n: med(e, "ttft_ms", n) for n in ("32", "512")},
        "prefill_tps": {n: med(e, "prefill_tps", n) for n in ("32", "512")},
        "decode_tps": med(e, "decode_tps"),
        "decode_long_tps": {n: med(e, "decode_long_tps", n) for n in runs[0][e]["decode_long_tps"]},
        "python_share": med(e, "python_share"), "peak_rss_mb": med(e, "peak_rss_mb"),
    } for e in engines}
    median["cpython_level0_decode_tps"] = statistics.median(x["cpython_level0"] for x in runs)
    median["cpython_level4_decode_tps"] = statistics.median(x["cpython_level4"] for x in runs)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "browser": "Debian chromium (headless), wasm, cross-origin isolated; ort: onnxruntime-web wasm EP, 2 threads",
        "runs": runs, "median": median,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result, engines))


def table(result: dict, engines: list[str]) -> str:
    m, runs = result["median"], result["runs"]
    first = runs[0][engines[0]]
    n32, n512 = first["prompt_tokens"]["32"], first["prompt_tokens"]["512"]
    rows = [
        ("load, cold (fresh profile)", lambda e: m[e]["load_cold_s"], "{:.1f} s"),
        ("load, warm (second page)", lambda e: m[e]["load_warm_s"], "{:.1f} s"),
        ("start to first token, warm", lambda e: m[e]["start_to_first_token_warm_s"], "{:.1f} s"),
        (f"time to first token, {n32}-token prompt", lambda e: m[e]["ttft_ms"]["32"], "{:.0f} ms"),
        (f"time to first token, {n512}-token prompt", lambda e: m[e]["ttft_ms"]["512"], "{:.0f} ms"),
        (f"prefill, {n512}-token prompt", lambda e: m[e]["prefill_tps"]["512"], "{:.0f} tok/s"),
        (f"decode, 128 tokens after {first['decode_context']} tokens", lambda e: m[e]["decode_tps"], "{:.1f} tok/s"),
    ]
    for n, ctxlen in first["decode_long_context"].items():
        rows.append((f"decode after {ctxlen} tokens", lambda e, n=n: m[e]["decode_long_tps"].get(n), "{:.1f} tok/s"))
    rows += [
        ("Python's share of a decode step", lambda e: 100 * m[e]["python_share"], "{:.1f} %"),
        ("peak RSS, all Chromium processes", lambda e: m[e]["peak_rss_mb"], "{:.0f} MB"),
    ]
    head = " | ".join(engines)
    out = [f"| measure (median of {len(runs)}) | {head} |" + (" nomoat / ort |" if len(engines) == 2 else ""),
           "|---|" + "---|" * (len(engines) + (len(engines) == 2))]
    for label, get, fmt in rows:
        vals = []
        for e in engines:
            try:
                vals.append(get(e))
            except KeyError:
                vals.append(None)
        cells = [fmt.format(v) if v is not None else "not run" for v in vals]
        if len(engines) == 2:
            cells.append(f"{vals[0] / vals[1]:.2f}" if None not in vals and vals[1] else "")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append(f"| CPython onnxruntime decode, level 0 / level 4 | {m['cpython_level0_decode_tps']:.1f} / "
               f"{m['cpython_level4_decode_tps']:.1f} tok/s |" + " |" * len(engines))
    return "\n".join(out)


if __name__ == "__main__":
    main()
