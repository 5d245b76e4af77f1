"""Start-up benchmark: page load to the first token of a ~32-token prompt, cold and warm, with the stage
timeline, and the memory the model costs above a blank page.

    .venv/bin/python bench/bench_start.py              # writes bench/results_start.json, prints the tables
    .venv/bin/python bench/bench_start.py --repeats 1

Headless Chromium, the default model on wasm (nomoat's own decoder), one fresh browser profile per repeat:
- blank: a page of the same origin with nothing in it, its Chromium process tree's RSS sampled for 2 s
  (the baseline the memory target is measured above);
- cold: a new page in that empty profile (nothing cached: every file comes from the local server);
- warm: the cold page closed, a new page in the same profile (the model in nomoat's Cache API entries,
  Pyodide's files in the HTTP cache).
Each page is a minimal one (nomoat.js, then llm.create() and promptStreaming() at once), and its times
are from the navigation's start (performance.timeOrigin): nomoat.js run, create() resolved, first token.
The stages are llm.timeline()'s (web/src/timeline.js: the worker's spans, on the page's clock; they
overlap: the model is fetched while Pyodide boots). Memory: the peak summed RSS of every Chromium process
during each page, by process type at that peak, and llm.resources()'s wasm memories (nomoat's decoder,
Pyodide's heap) after the first token.
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

from bench_browser import LONG, prompt_ids
from bench_large import TreeRSS  # peak summed RSS of Chromium's tree, by process kind at the peak
from bench_peers import FLAGS, chromium_pid

HERE = Path(__file__).resolve().parent
PAGE = "/bench-start.html"
BLANK = "/bench-blank.html"
HTML = """<!doctype html><meta charset="utf-8"><title>nomoat start</title>
<script src="/nomoat.js"></script>
<script>
window.result = (async () => {
  const marks = {script: performance.now()};
  const s = await llm.create({device: "wasm", temperature: 0});
  marks.created = performance.now();
  const reader = s.promptStreaming(PROMPT).getReader();
  const first = await reader.read();
  marks.first_token = performance.now();
  await reader.cancel();
  const timeline = await llm.timeline(), resources = await llm.resources();
  // JS and wasm memory per realm (the page, the nomoat worker, the decoder's helper thread), when the
  // browser offers it (cross-origin isolated Chromium; eager with --enable-blink-features=ForceEagerMeasureMemory)
  let realms = null;
  if (REALMS && performance.measureUserAgentSpecificMemory) {
    const m = await Promise.race([performance.measureUserAgentSpecificMemory(),
                                  new Promise((r) => setTimeout(r, 20000))]);
    realms = m && m.breakdown.filter((b) => b.bytes).map((b) => ({mb: b.bytes / 2 ** 20, types: b.types,
      scope: b.attribution.map((a) => a.scope + (a.url ? " " + a.url.split("/").pop() : "")).join(", ")}));
  }
  return {marks, timeline, resources, piece: first.value, realms};
})().catch((e) => ({error: String(e && e.stack || e)}));
window.result = Promise.race([window.result, new Promise((r) => setTimeout(r, LIMIT_MS))
  .then(async () => ({error: "no first token in time; the timeline so far: " +
    JSON.stringify(await llm.timeline())}))]);
</script>"""
ORDER = ["pyodide.import", "snapshot.key", "snapshot.read", "device.choose", "manifest", "files.json", "files.other",
         "wasm.compile", "data.pour", "wasm.thread", "model.load", "pyodide.boot", "wheels.install", "python.import",
         "model.create", "prompt.first-token"]
LABELS = {
    "pyodide.import": "pyodide.mjs import",
    "snapshot.key": "wheels fetch + sha256 (the snapshot's key)",
    "snapshot.read": "Python snapshot read + sha256 (warm)",
    "device.choose": "device choice (WebGPU probe)",
    "manifest": "manifest fetch",
    "files.json": "texts (config, tokenizer) fetch + verify",
    "files.other": "other files fetch + verify",
    "wasm.compile": "wasm decoder compile + instantiate",
    "data.pour": "weights into wasm memory (fetch/cache, sha256 unless nomoat's verified entry)",
    "wasm.thread": "decoder's helper thread start",
    "model.load": "model load, all (JS)",
    "pyodide.boot": "Pyodide boot (from the snapshot: warm)",
    "wheels.install": "wheels install / unpack (nomoat, jinja2, markupsafe)",
    "python.import": "import nomoat.worker (+ _snapshot.prepare when making one)",
    "model.create": "Python create (tokenizer, session; waits for the load)",
    "prompt.first-token": "first prompt: tokenize, prefill, first token",
}


def run_page(ctx, url: str, timeout_ms: int) -> dict:
    """One page (PAGE, fulfilled by the route): its result, or a RuntimeError with its error."""
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    page.on("console", lambda m: m.type in ("warning", "error") and print(f"  page {m.type}: {m.text[:300]}",
                                                                        flush=True))
    page.on("pageerror", lambda e: print(f"  page error: {e}", flush=True))
    page.goto(url + PAGE)
    r = page.evaluate("() => window.result")
    page.close()
    if "error" in r:
        raise RuntimeError(r["error"])
    return r


def one_repeat(p, url: str, timeout_ms: int, prompt: str, realms: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=[
            *FLAGS, *(["--enable-blink-features=ForceEagerMeasureMemory"] if realms else [])])
        ctx.route("**" + PAGE, lambda route: route.fulfill(status=200, body=HTML.replace("PROMPT", json.dumps(prompt))
                                                          .replace("LIMIT_MS", str(timeout_ms // 2))
                                                          .replace("REALMS", json.dumps(realms)),
                                                          headers=HEADERS))
        ctx.route("**" + BLANK, lambda route: route.fulfill(status=200, body="<!doctype html><title>blank</title>",
                                                           headers=HEADERS))
        pid = chromium_pid(profile)
        page = ctx.new_page()
        with TreeRSS(pid) as blank:
            page.goto(url + BLANK)
            time.sleep(2)
        out = {"blank": {"peak_rss_mb": blank.peak / 2**20, "by_type_mb": mb(blank.at_peak)}}
        for phase in ("cold", "warm"):
            print(f"  {phase} page", flush=True)
            with TreeRSS(pid) as mem:
                r = run_page(ctx, url, timeout_ms)
            out[phase] = {**summarize(r), "peak_rss_mb": mem.peak / 2**20, "by_type_mb": mb(mem.at_peak)}
        page.close()
        ctx.close()
    return out


HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Embedder-Policy": "require-corp", "Cache-Control": "no-cache"}


def mb(by: dict[str, int]) -> dict[str, float]:
    return {k: round(v / 2**20, 1) for k, v in sorted(by.items())}


def summarize(r: dict) -> dict:
    """One page's result: the page marks (ms from navigation) and each stage's first start and last end."""
    stages: dict[str, dict] = {}
    for s in r["timeline"]:
        if s["worker"] != 1 or s["end"] is None:
            continue
        st = stages.setdefault(s["stage"], {"start_ms": s["start"], "end_ms": s["end"], "ms": 0.0})
        st["start_ms"], st["end_ms"] = min(st["start_ms"], s["start"]), max(st["end_ms"], s["end"])
        st["ms"] += s["end"] - s["start"]
        if s.get("detail"):
            st["detail"] = s["detail"]
    res = r["resources"]
    return {"marks_ms": r["marks"], "stages": stages, "realms": r.get("realms"),
            "wasm_memory_mb": res.get("wasmMemoryBytes", 0) / 2**20,
            "pyodide_heap_mb": res.get("pyodideHeapBytes", 0) / 2**20, "first_piece": r["piece"]}


# Pyodide alone, in a module worker of a blank page: boot, the wheels, import nomoat.worker; then a
# memory snapshot of that state (loadPyodide's _makeSnapshot / makeMemorySnapshot) and a boot from it
# (_loadSnapshot), to see what a snapshot would save.
PYODIDE_WORKER = """
const t = () => performance.now();
self.onmessage = async ({data: {base, wheels, snapshot}}) => {
  const out = {};
  try {
    let t0 = t();
    const {loadPyodide} = await import(base + "pyodide/pyodide.mjs");
    out.import_ms = t() - t0; t0 = t();
    const py = await loadPyodide({indexURL: base + "pyodide/", _makeSnapshot: snapshot});
    out.boot_ms = t() - t0; t0 = t();
    if (snapshot) { // the wheels unpacked (loadPackage records them in a JS object a snapshot cannot hold)
      const got = await Promise.all(wheels.map(async (w) =>
        new Uint8Array(await (await fetch(base + "wheels/" + w)).arrayBuffer())));
      got.forEach((b, i) => py.unpackArchive(b, "wheel", {}));
    } else {
      await py.loadPackage(wheels.map((w) => base + "wheels/" + w), {messageCallback: () => {}});
    }
    out.wheels_ms = t() - t0; t0 = t();
    py.runPython("import nomoat.worker");
    out.import_nomoat_ms = t() - t0;
    out.heap_mb = py._module.HEAPU8.byteLength / 2 ** 20;
    if (snapshot) {
      t0 = t();
      const seen = [];
      const api = py._api, check = api.serializeHiwireState;
      out.entry6 = JSON.stringify(py._module.__hiwire_get ? py._module.__hiwire_get(6) : null)?.slice(0, 200);
      const snap = py.makeMemorySnapshot({serializer: (obj) => { seen.push(String(obj).slice(0, 80)); return null; }});
      out.serialized = seen;

      out.make_snapshot_ms = t() - t0;
      out.snapshot_mb = snap.byteLength / 2 ** 20;
      t0 = t();
      const py2 = await loadPyodide({indexURL: base + "pyodide/", _loadSnapshot: snap,
                                     _snapshotDeserializer: () => null});
      out.boot_from_snapshot_ms = t() - t0; t0 = t();
      py2.runPython("import nomoat.worker");
      out.import_nomoat_after_snapshot_ms = t() - t0;
      out.works = py2.runPython("import nomoat.bpe, sys; str(sum(range(10))) + sys.version[:6]");
      out.js_works = py2.runPython("import js; js.Math.max(3, 4)");
    }
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  self.postMessage(out);
};"""
PYODIDE_PAGE = """<!doctype html><script type="module">
import {WHEELS} from "/generated/wheels.js";
window.result = (async () => {
  const one = (snapshot) => new Promise((resolve) => {
    const w = new Worker("/bench-pyodide-worker.mjs", {type: "module"});
    w.onmessage = (e) => { w.terminate(); resolve(e.data); };
    w.postMessage({base: location.origin + "/", wheels: WHEELS, snapshot});
  });
  const t0 = performance.now();
  const wasm = await WebAssembly.compileStreaming(fetch("/pyodide/pyodide.asm.wasm"));
  const compile_ms = performance.now() - t0;
  return {compile_ms, first: await one(false), again: await one(false), snapshot: await one(true)};
})();
</script>"""


def pyodide_alone(p, url: str) -> dict:
    """Pyodide's boot alone in a fresh profile (first: its files over the network; again: from the HTTP
    cache), and a memory snapshot's make and load times."""
    with tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS)
        ctx.route("**/bench-pyodide.html", lambda r: r.fulfill(status=200, body=PYODIDE_PAGE, headers=HEADERS))
        ctx.route("**/bench-pyodide-worker.mjs", lambda r: r.fulfill(status=200, body=PYODIDE_WORKER, headers={
            **HEADERS, "Content-Type": "text/javascript"}))
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        page.goto(url + "/bench-pyodide.html")
        r = page.evaluate("() => window.result")
        ctx.close()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results_start.json")
    ap.add_argument("--timeout", type=int, default=300, help="seconds one page may take")
    ap.add_argument("--realms", action="store_true",
                    help="also JS + wasm memory per realm (measureUserAgentSpecificMemory)")
    ap.add_argument("--pyodide-only", action="store_true", help="only Pyodide's boot alone (and a snapshot's)")
    args = ap.parse_args()
    import faulthandler

    faulthandler.dump_traceback_later(args.timeout * 3 * args.repeats + 120, exit=True)  # a hung browser: say where
    if args.pyodide_only:
        from playwright.sync_api import sync_playwright

        from nomoat.serve import make_server

        srv = make_server(0)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        with sync_playwright() as p:
            print(json.dumps(pyodide_alone(p, f"http://127.0.0.1:{srv.server_address[1]}"), indent=1))
        srv.shutdown()
        return

    from playwright.sync_api import sync_playwright

    import nomoat
    from nomoat.catalog import convert_default
    from nomoat.serve import make_server

    model_dir = convert_default()
    model = nomoat.load(model_dir, threads=1)
    prompt = prompt_ids(model, LONG, 32)
    prompt_tokens = len(model.encode_chat([{"role": "user", "content": prompt}]))
    data_bytes = (model_dir / "onnx" / "model_q4.onnx_data").stat().st_size
    cfg = json.loads((model_dir / "config.json").read_text())
    L, nkv = cfg["num_hidden_layers"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    # The KV cache at the benchmark's context: 16-bit keys and values, grown by doubling (engine.js
    # BlockKVState) from the prompt and its first token.
    positions = 1 << (prompt_tokens + 1 - 1).bit_length()
    kv_bytes = L * 2 * nkv * hd * 2 * positions
    del model

    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    runs = []
    with sync_playwright() as p:
        for i in range(args.repeats):
            run = one_repeat(p, url, args.timeout * 1000, prompt, args.realms)
            runs.append(run)
            print(f"repeat {i + 1}: cold {run['cold']['marks_ms']['first_token']:.0f} ms, warm "
                  f"{run['warm']['marks_ms']['first_token']:.0f} ms to the first token", flush=True)
    srv.shutdown()

    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "browser": "Debian chromium (headless), wasm (nomoat's decoder), cross-origin isolated, 2 threads",
        "prompt_tokens": prompt_tokens, "model_weight_bytes": data_bytes, "kv_cache_bytes": kv_bytes,
        "kv_positions": positions, "runs": runs, "median": median(runs),
    }
    m = result["median"]
    budget = 1.5 * (data_bytes + kv_bytes) / 2**20
    result["memory_target_mb"] = budget
    for phase in ("cold", "warm"):
        m[phase]["above_blank_mb"] = m[phase]["peak_rss_mb"] - m["blank"]["peak_rss_mb"]
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))


def median(runs: list[dict]) -> dict:
    med = statistics.median
    out: dict = {"blank": {"peak_rss_mb": med(r["blank"]["peak_rss_mb"] for r in runs)}}
    for phase in ("cold", "warm"):
        rs = [r[phase] for r in runs]
        names = {n for r in rs for n in r["stages"]}
        out[phase] = {
            "marks_ms": {k: med(r["marks_ms"][k] for r in rs) for k in rs[0]["marks_ms"]},
            "stages": {n: {k: med(r["stages"][n][k] for r in rs if n in r["stages"])
                           for k in ("start_ms", "end_ms", "ms")} for n in names},
            "peak_rss_mb": med(r["peak_rss_mb"] for r in rs),
            "wasm_memory_mb": med(r["wasm_memory_mb"] for r in rs),
            "pyodide_heap_mb": med(r["pyodide_heap_mb"] for r in rs),
        }
    return out


def table(result: dict) -> str:
    m = result["median"]
    n = len(result["runs"])
    out = [f"Stage timeline, ms from navigation start (median of {n}; stages overlap)", "",
           "| stage | cold: start → end (ms) | warm: start → end (ms) |", "|---|---|---|"]
    for name in ORDER:
        cells = []
        for phase in ("cold", "warm"):
            s = m[phase]["stages"].get(name)
            cells.append(f"{s['start_ms']:.0f} → {s['end_ms']:.0f} ({s['ms']:.0f})" if s else "—")
        out.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    for key, label in (("script", "nomoat.js run"), ("created", "llm.create() resolved"),
                       ("first_token", f"first token ({result['prompt_tokens']}-token prompt)")):
        out.append(f"| **{label}** | **{m['cold']['marks_ms'][key]:.0f}** | **{m['warm']['marks_ms'][key]:.0f}** |")
    w, kv = result["model_weight_bytes"] / 2**20, result["kv_cache_bytes"] / 2**20
    out += ["", f"Memory (median of {n}): blank page {m['blank']['peak_rss_mb']:.0f} MB; target: 1.5 × (weights "
            f"{w:.1f} MB + KV cache {kv:.1f} MB at {result['kv_positions']} positions) = "
            f"{result['memory_target_mb']:.0f} MB above the blank page", "",
            "| | cold | warm |", "|---|---|---|"]
    for key, label in (("peak_rss_mb", "peak RSS, Chromium tree"), ("above_blank_mb", "above the blank page"),
                       ("wasm_memory_mb", "nomoat decoder's wasm memory"), ("pyodide_heap_mb", "Pyodide's heap")):
        out.append(f"| {label} | {m['cold'][key]:.0f} MB | {m['warm'][key]:.0f} MB |")
    last = result["runs"][-1]
    for phase in ("cold", "warm"):
        for realm in last[phase].get("realms") or []:
            out.append(f"| JS + wasm memory ({phase}, last run): {realm['scope'][:60]} | {realm['mb']:.0f} MB | |")
    for phase in ("blank", "cold", "warm"):
        out.append(f"| at the peak, by process ({phase}, last run) | " + ", ".join(
            f"{k} {v:.0f}" for k, v in last[phase]["by_type_mb"].items()) + " | |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
