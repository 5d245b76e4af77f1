"""A long run in one page: does memory stay flat, and does everything a session held come back?

    .venv/bin/python bench/bench_soak.py                    # 1,000 operations, 50 sessions, the default model
    .venv/bin/python bench/bench_soak.py --ops 200          # a short look

One headless Chromium page (wasm, 2 threads) runs a seeded random plan of operations across up to
50 live sessions: create, prompt (distinct questions, short answers), clone, an aborted stream,
destroy, and drop (the page lets go of a session without destroy(): the FinalizationRegistry in
session.js must free it once collected). Every `--every` operations it forces a garbage collection
(CDP) and records llm.resources() (sessions, KV states, samplers, Python's JS handles), the page's
JS heap, and the summed RSS of Chromium's process tree. At the end every session is destroyed or
dropped and the counts must return to 0. Within a pass memory grows with the live conversations
(50 sessions whose KV caches lengthen); a leak shows as growth from one pass of the same plan to the
next (`--passes`, default 2: freed wasm memory is reused, never returned, so the second pass's peak
RSS should match the first's). Writes bench/results_soak.json and prints the curves; the
test suite runs a short plan of the same code on the tiny model (tests/test_soak.py) and checks the
counts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = ["What is the capital of {}?", "Name a food from {}.", "Say hello in the language of {}.",
             "How far is {} from the sea?", "Name a river in {}."]
PLACES = ["France", "Peru", "Japan", "Kenya", "Norway", "Chile", "India", "Egypt", "Canada", "Spain", "Ghana", "Laos"]

# The page side: one function per operation on window.__soak's sessions (indices of a plan).
RUNNER = """
window.__soak = window.__soak || {sessions: new Map(), done: 0, errors: []};
window.__soakStep = async (o) => {
  const S = window.__soak.sessions;
  const opts = {device: o.device, temperature: 0, maxTokens: o.maxTokens};
  if (o.model) opts.model = o.model;
  try {
    if (o.op === "create") S.set(o.s, await llm.create(opts));
    else if (o.op === "prompt") await S.get(o.s).prompt(o.q);
    else if (o.op === "clone") S.set(o.to, await S.get(o.s).clone());
    else if (o.op === "abort") {
      const ac = new AbortController();
      try {
        for await (const _ of S.get(o.s).promptStreaming(o.q, {signal: ac.signal})) ac.abort();
      } catch (e) {
        if (e.name !== "AbortError") throw e;
      }
    } else if (o.op === "destroy") { S.get(o.s).destroy(); S.delete(o.s); }
    else if (o.op === "drop") S.delete(o.s);
    window.__soak.done++;
    return null;
  } catch (e) {
    return `${o.op} on ${o.s}: ${e.name}: ${e.message}`;
  }
};
true;  // (the script's value: not the function, which evaluate() would call)
"""


def plan(seed: int, ops: int, max_sessions: int) -> list[dict]:
    """A seeded list of operations; sessions are named by integers, each used only while alive."""
    rng = random.Random(seed)
    alive: list[int] = []
    out, next_id = [], 0
    for _ in range(ops):
        r = rng.random()
        if not alive or (r < 0.12 and len(alive) < max_sessions):
            out.append({"op": "create", "s": next_id})
            alive.append(next_id)
            next_id += 1
        elif r < 0.2 and len(alive) < max_sessions:
            out.append({"op": "clone", "s": rng.choice(alive), "to": next_id})
            alive.append(next_id)
            next_id += 1
        elif r < 0.27:
            s = alive.pop(rng.randrange(len(alive)))
            out.append({"op": "destroy" if rng.random() < 0.7 else "drop", "s": s})
        else:
            q = rng.choice(QUESTIONS).format(rng.choice(PLACES))
            out.append({"op": "abort" if r < 0.35 else "prompt", "s": rng.choice(alive), "q": q})
    out += [{"op": "destroy" if rng.random() < 0.7 else "drop", "s": s} for s in alive]  # the end: nothing held
    return out


def tree_rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def checkpoint(page, cdp, pid: int | None) -> dict:
    """Garbage collected, then the counts and the memory."""
    for _ in range(2):  # (the page's heap: its FinalizationRegistry destroys dropped sessions)
        cdp.send("HeapProfiler.collectGarbage")
        page.wait_for_timeout(200)
    res = page.evaluate("llm.resources()")
    heap = cdp.send("Runtime.getHeapUsage")
    return {**res, "page_heap_mb": heap["usedSize"] / 2**20, "rss_mb": tree_rss_mb(pid) if pid else None}


def soak(page, ops: list[dict], *, device: str = "wasm", model: str | None = None, max_tokens: int = 8,
         every: int = 50, pid: int | None = None, settle_s: float = 30.0, log=None) -> dict:
    """Runs `ops` in `page` (which has window.llm); returns {checkpoints, errors, final, seconds}."""
    cdp = page.context.new_cdp_session(page)
    page.evaluate(RUNNER)
    points, errors, t0 = [], [], time.perf_counter()
    for i, o in enumerate(ops):
        if log:
            log(f"{i}: {o}")
        err = page.evaluate("(o) => window.__soakStep(o)", {**o, "device": device, "model": model,
                                                               "maxTokens": max_tokens})
        if err:
            errors.append(err)
        if (i + 1) % every == 0:
            points.append({"ops": i + 1, "seconds": time.perf_counter() - t0, **checkpoint(page, cdp, pid)})
    deadline = time.perf_counter() + settle_s  # dropped sessions go once collected and finalized
    while True:
        final = checkpoint(page, cdp, pid)
        if final["sessions"] == 0 or time.perf_counter() > deadline:
            break
    return {"checkpoints": points, "errors": errors, "final": final, "seconds": time.perf_counter() - t0}


def flatness(points: list[dict], key: str, warmup: float = 0.2) -> float | None:
    """The last checkpoint's `key` over the first one after the warm-up fraction of operations."""
    after = [p for p in points if p["ops"] >= warmup * points[-1]["ops"] and p.get(key)]
    return after[-1][key] / after[0][key] if len(after) >= 2 else None


def table(result: dict) -> str:
    lines = ["| ops | s | sessions | states | handles | page heap MB | RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p in [*result["checkpoints"], {**result["final"], "ops": "end", "seconds": result["seconds"]}]:
        rss = f"{p['rss_mb']:.0f}" if p.get("rss_mb") else "n/a"
        lines.append(f"| {p['ops']} | {p['seconds']:.0f} | {p['sessions']} | {p['states']} | {p['handles']} | "
                     f"{p['page_heap_mb']:.1f} | {rss} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--passes", type=int, default=2, help="the plan again in the same page: a leak grows each pass")
    ap.add_argument("--out", type=Path, default=HERE / "results_soak.json")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "py"))
    from bench_peers import FLAGS
    from playwright.sync_api import sync_playwright

    from nomoat.catalog import convert_default
    from nomoat.serve import make_server

    model_dir = convert_default()
    srv = make_server(0, models=model_dir.parent)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    ops = plan(args.seed, args.ops, args.sessions)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="nomoat-soak-") as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True,
                                                       args=FLAGS)
            from bench_peers import chromium_pid

            page = ctx.new_page()
            page.set_default_timeout(600_000)
            page.goto(url + "/?load=0")
            passes = [soak(page, ops, every=args.every, max_tokens=args.max_tokens, pid=chromium_pid(profile))
                      for _ in range(args.passes)]
            ctx.close()
    finally:
        srv.shutdown()
    peak = [max(p["rss_mb"] for p in r["checkpoints"]) for r in passes]
    heap = [max(p["page_heap_mb"] for p in r["checkpoints"]) for r in passes]
    result = {"passes": passes, "peak_rss_mb": peak, "peak_page_heap_mb": heap,
              "command": "python bench/bench_soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "ops": args.ops, "max_sessions": args.sessions, "seed": args.seed,
              "rss_last_over_first_after_warmup": flatness(passes[0]["checkpoints"], "rss_mb"),
              "later_pass_peak_rss_over_first": peak[-1] / peak[0],
              "counts": {k: sum(1 for o in ops if o["op"] == k) for k in
                         ("create", "prompt", "clone", "abort", "destroy", "drop")}}
    args.out.write_text(json.dumps(result, indent=1))
    for i, r in enumerate(passes):
        print(f"pass {i + 1}")
        print(table(r))
    print(f"operations per pass: {result['counts']}; errors: {sum(len(r['errors']) for r in passes)}")
    print(f"peak RSS per pass (MB): {[round(x) for x in peak]}; last pass / first: "
          f"{result['later_pass_peak_rss_over_first']:.3f}; page heap peaks (MB): {[round(x, 1) for x in heap]}")
    return 0 if not any(r["errors"] for r in passes) and all(
        r["final"][k] == 0 for r in passes for k in ("sessions", "running", "states", "samplers", "handles")) else 1

if __name__ == "__main__":
    sys.exit(main())
