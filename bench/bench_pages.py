"""Decode speed page by page in one browser profile: the first page (the one that makes Python's memory
snapshot and caches the model) against the next pages (Python restored from that snapshot).

    .venv/bin/python bench/bench_pages.py                  # 3 pages, 4 runs each -> bench/results_pages.json
    .venv/bin/python bench/bench_pages.py --pages 2 --runs 8

Headless Chromium, wasm, the default model, greedy, 128 tokens after a short prompt, each run a fresh session
(stats.decode_tps and python_share from the worker, as bench_browser.py reports them). Until 2026-12-08 the
first page decoded ~18 % slower than every later one: Pyodide's snapshot-making mode reads JS globals through
a Proxy, and nomoat's to_js took Object.fromEntries through it on every step (web/test/pyodide_boot.test.js
now checks that no step reads through `js`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
from pathlib import Path

from bench_browser import JS_CREATE, JS_PROMPT
from bench_peers import FLAGS

HERE = Path(__file__).resolve().parent
PROMPT = "Write a detailed essay about the history of the printing press."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--runs", type=int, default=4, help="decode runs per page")
    ap.add_argument("--out", type=Path, default=HERE / "results_pages.json")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from nomoat.catalog import convert_default
    from nomoat.serve import make_server

    convert_default()
    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    pages = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS)
        for i in range(args.pages):
            page = ctx.new_page()
            page.set_default_timeout(600_000)
            page.goto(url + "?load=0")
            page.evaluate(JS_CREATE, "nomoat")
            snapshot = page.evaluate("""async () => (await llm.timeline())
                .find((t) => t.stage === "python.ready")?.detail?.snapshot ?? null""")
            runs = [page.evaluate(JS_PROMPT, [PROMPT, 128, "nomoat"]) for _ in range(args.runs)]
            tps = [r["decode_tps"] for r in runs]
            pages.append({"page": i, "python": snapshot, "decode_tps": tps, "median": statistics.median(tps),
                          "python_share": statistics.median(r["python_share"] for r in runs)})
            print(f"page {i} (Python {snapshot}): decode {' '.join(f'{t:.1f}' for t in tps)} tok/s, "
                  f"median {pages[-1]['median']:.1f}, Python's share {pages[-1]['python_share']:.3f}", flush=True)
            page.close()
        ctx.close()
    srv.shutdown()
    out = {"command": "bench/bench_pages.py " + f"--pages {args.pages} --runs {args.runs}", "pages": pages}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
