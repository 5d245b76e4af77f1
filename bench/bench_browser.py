"""Browser benchmark: the default model in headless Chromium on wasm, next to CPython onnxruntime.

    .venv/bin/python bench/bench_browser.py            # writes bench/results_browser.json, prints a table

One run, on the same machine, same prompts, same thread count (2):
- load: cold (a fresh browser profile: Pyodide boot, model download, f32 weight build, session)
  and warm (the cold page closed, a new page in the same profile: the model from nomoat's cache,
  compiled wasm reused), from llm.create() to resolved, with the stages the worker reports, and
  from llm.create() to the first streamed token of a short prompt;
- time to first token and prefill tokens/s for a ~32- and a ~512-token prompt, from a fresh session;
- decode tokens/s over 128 greedy tokens (stats.decode_tps: per-step time after the first token);
- Python's share of each decode step (time outside the onnxruntime-web run: the Python loop,
  the FFI, the JS sampler), from the worker's own accounting;
- peak resident memory of all Chromium processes (sampled every 50 ms; one page open at a time);
- CPython onnxruntime (nomoat.load, 2 threads) decode tokens/s at accuracy level 0 (f32 math, as
  the browser's wasm graph) and 4 (the CPython default), and the browser/CPython ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
FLAGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic"]
LONG = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
        "movable metal type, oil-based inks and a screw press adapted from wine making. ") * 40


class PeakRSS:
    """Peak summed RSS of a process tree, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def chromium_pid(profile: str) -> int:
    """The browser process launched with this --user-data-dir."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if any(profile in a for a in cmd) and not any(a.startswith("--type=") for a in cmd):
            return proc.info["pid"]
    raise RuntimeError("Chromium's browser process was not found")


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


JS_CREATE = """async () => {
    // stage timeline: the first and last progress event of each stage (stages overlap: the model
    // downloads while Pyodide boots), then the first token of a short prompt.
    const t0 = performance.now(); const stages = {};
    window.s = await llm.create({device: "wasm", temperature: 0, maxTokens: 128, monitor(m) {
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
JS_PROMPT = """async ([text, max]) => {
    const s = await llm.create({device: "wasm", temperature: 0, maxTokens: max});
    await s.prompt(text); const st = s.lastStats; s.destroy(); return st;
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results_browser.json")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    import nomoat
    from nomoat.convert import convert_default
    from nomoat.serve import make_server

    model_dir = convert_default()
    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    exact = nomoat.load(model_dir, accuracy_level=0, threads=2)
    fast = nomoat.load(model_dir, accuracy_level=4, threads=2)
    prompts = {n: prompt_ids(exact, LONG, n) for n in (32, 512)}
    decode_prompt = "Write a detailed essay about the history of the printing press."

    runs = []
    with sync_playwright() as p:
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as profile:
                ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS)
                with PeakRSS(chromium_pid(profile)) as mem:
                    page = ctx.new_page()  # cold: nothing compiled or cached yet
                    page.set_default_timeout(600_000)
                    page.goto(url + "?load=0")
                    cold = page.evaluate(JS_CREATE)
                    page.close()
                    page = ctx.new_page()  # warm: the same profile, a new page
                    page.set_default_timeout(600_000)
                    page.goto(url + "?load=0")
                    warm = page.evaluate(JS_CREATE)
                    ttft = {n: page.evaluate(JS_PROMPT, [prompts[n], 1]) for n in prompts}
                    dec = page.evaluate(JS_PROMPT, [decode_prompt, 128])
                ctx.close()
            cpy = {}
            for name, m in (("cpython_level0", exact), ("cpython_level4", fast)):
                s = m.session(temperature=0, max_tokens=128)
                s.prompt_sync(decode_prompt)
                cpy[name] = s.last.decode_tps
            runs.append({
                "load_cold_ms": cold["ms"], "load_warm_ms": warm["ms"], "stages_cold_ms": cold["stages"],
                "stages_warm_ms": warm["stages"], "start_to_first_token_cold_ms": cold["first_token_ms"],
                "start_to_first_token_warm_ms": warm["first_token_ms"],
                "ttft_ms": {str(n): ttft[n]["ttft_ms"] for n in ttft},
                "prompt_tokens": {str(n): ttft[n]["prompt_tokens"] for n in ttft},
                "prefill_tps": {str(n): ttft[n]["prefill_tps"] for n in ttft},
                "decode_tps": dec["decode_tps"], "decode_tokens": dec["completion_tokens"],
                "python_share": dec["python_share"], "peak_rss_mb": mem.peak / 2**20, **cpy,
            })
            print(f"repeat {r + 1}: {json.dumps(runs[-1])}")
    srv.shutdown()

    med = lambda k: statistics.median(x[k] for x in runs)  # noqa: E731
    medd = lambda k, n: statistics.median(x[k][n] for x in runs)  # noqa: E731
    ratio = lambda k: statistics.median(x["decode_tps"] / x[k] for x in runs)  # noqa: E731
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
        "browser": "Debian chromium (headless), wasm EP, 2 threads, cross-origin isolated",
        "runs": runs,
        "median": {
            "load_cold_s": med("load_cold_ms") / 1000, "load_warm_s": med("load_warm_ms") / 1000,
            "start_to_first_token_cold_s": med("start_to_first_token_cold_ms") / 1000,
            "start_to_first_token_warm_s": med("start_to_first_token_warm_ms") / 1000,
            "ttft_ms": {n: medd("ttft_ms", n) for n in ("32", "512")},
            "prefill_tps": {n: medd("prefill_tps", n) for n in ("32", "512")},
            "decode_tps": med("decode_tps"), "python_share": med("python_share"), "peak_rss_mb": med("peak_rss_mb"),
            "cpython_level0_decode_tps": med("cpython_level0"), "cpython_level4_decode_tps": med("cpython_level4"),
            "browser_over_cpython_level0": ratio("cpython_level0"),
            "browser_over_cpython_level4": ratio("cpython_level4"),
        },
    }
    args.out.write_text(json.dumps(result, indent=1))
    m = result["median"]
    print(f"""
| measure (median of {len(runs)}) | value |
|---|---|
| load, cold (fresh profile) | {m['load_cold_s']:.1f} s |
| load, warm (second page) | {m['load_warm_s']:.1f} s |
| start to first token, cold / warm | {m['start_to_first_token_cold_s']:.1f} / \
{m['start_to_first_token_warm_s']:.1f} s |
| time to first token, {runs[0]['prompt_tokens']['32']}-token prompt | {m['ttft_ms']['32']:.0f} ms |
| time to first token, {runs[0]['prompt_tokens']['512']}-token prompt | {m['ttft_ms']['512']:.0f} ms |
| prefill, {runs[0]['prompt_tokens']['512']}-token prompt | {m['prefill_tps']['512']:.0f} tok/s |
| decode, 128 tokens | {m['decode_tps']:.1f} tok/s |
| Python's share of a decode step | {100 * m['python_share']:.1f} % |
| peak RSS, all Chromium processes | {m['peak_rss_mb']:.0f} MB |
| CPython onnxruntime decode, level 0 (f32, as the wasm graph) | {m['cpython_level0_decode_tps']:.1f} tok/s |
| CPython onnxruntime decode, level 4 (default) | {m['cpython_level4_decode_tps']:.1f} tok/s |
| browser / CPython level 0 | {100 * m['browser_over_cpython_level0']:.0f} % |
| browser / CPython level 4 | {100 * m['browser_over_cpython_level4']:.0f} % |""")


if __name__ == "__main__":
    main()
