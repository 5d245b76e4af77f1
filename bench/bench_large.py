"""A 1-2B model in the page: convert it, load it in headless Chromium on wasm, decode, measure memory.

    .venv/bin/python bench/bench_large.py                        # the synthetic 1.1B (made if missing)
    .venv/bin/python bench/bench_large.py --model SmolLM2-135M-Instruct --before 5cc7bfd

The model is bench/make_synthetic.py's ~1.1B Llama in llama.cpp's Q4_K_M mix (TinyLlama's shape,
random weights), written to models/synthetic/ and converted with `nomoat convert` into
models/synthetic-1.1b/ (both git-ignored; --model NAME takes any package in models/ instead). The
conversion runs under /usr/bin/time -v: its wall time and peak RSS are recorded.

Then, per runtime (the current web/dist, and with --before REV the same dist with package.js and
runtime.mjs as they were at REV: the load that kept a JS copy of the data file), one fresh browser
profile: the page is opened with nothing loaded (the idle RSS of Chromium's process tree), then
llm.create({model, device: "wasm"}) and a greedy prompt of --tokens tokens (cold: the download,
the Cache API filled); the page closes and a second page does the same (warm: from the Cache API).
Peak RSS of all Chromium processes is sampled every 50 ms over each phase, with the processes'
shares at the peak (browser, renderer, GPU, utility). Memory is compared with the weights (the
package's data file, which the wasm decoder holds in its memory whole) and the KV cache (the
decoder's 16-bit rows: L x 2 x kv_heads x positions x (2 head_dim + 4) bytes, at the full context).
Writes bench/results_large.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "py"))
SYNTH_GGUF = ROOT / "models" / "synthetic" / "synthetic-1.1b-q4_k_m.gguf"
SYNTH = "synthetic-1.1b"

JS_RUN = """async ([model, tokens]) => {
    const t0 = performance.now();
    const s = await llm.create({model, device: "wasm", temperature: 0, maxTokens: tokens});
    const created = performance.now() - t0;
    const answer = await s.prompt("Tell me a story about a lighthouse.");
    const st = s.lastStats; s.destroy();
    return {create_ms: created, answer_chars: answer.length, stats: st, device: s.device};
}"""


def node_run(mode: str, web: Path, pkg: Path, decoder: Path, tokens: int) -> dict:
    """bench_large_node.mjs: the same load without a browser (Node), "stream" or "bytes"."""
    cmd = ["node", str(HERE / "bench_large_node.mjs"), mode, str(web), str(pkg), str(decoder), str(tokens)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in got.items()}


class TreeRSS:
    """Peak summed RSS of a process tree, sampled every 50 ms in a thread, with each process
    kind's share at the peak (Chromium's --type=..., "browser" for the main process); and the peak
    summed PSS (proportional set size: pages shared between the processes, such as Chromium's own
    code, counted once in all), which is what the tree really holds."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.at_peak, self.peak_pss = pid, 0, {}, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, dict[str, int], int]:
        """(summed RSS, RSS per process kind, summed PSS)."""
        import psutil

        root = psutil.Process(self.pid)
        kinds: dict[str, int] = {}
        pss = 0
        for p in [root, *root.children(recursive=True)]:
            try:
                cmd = p.cmdline()
                kind = next((a[7:] for a in cmd if a.startswith("--type=")), "browser")
                if kind == "utility":
                    sub = next((a.split("=", 1)[1] for a in cmd if a.startswith("--utility-sub-type=")), "")
                    kind = "utility " + sub.rsplit(".", 1)[-1]
                kinds[kind] = kinds.get(kind, 0) + p.memory_info().rss
                pss += p.memory_full_info().pss
            except psutil.Error:
                pass
        return sum(kinds.values()), kinds, pss

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total, kinds, pss = self.sample()
                self.peak_pss = max(self.peak_pss, pss)
                if total > self.peak:
                    self.peak, self.at_peak = total, kinds
            except Exception:  # noqa: BLE001  (the tree changes under us)
                pass
            time.sleep(0.05)

    def __enter__(self) -> TreeRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def mb(n: float) -> float:
    return round(n / 2**20, 1)


def convert(gguf: Path, out: Path) -> dict:
    """`nomoat convert gguf out` under /usr/bin/time -v: wall seconds and peak RSS."""
    if out.exists():
        shutil.rmtree(out)
    cmd = ["/usr/bin/time", "-v", str(ROOT / ".venv" / "bin" / "nomoat"), "convert", str(gguf), str(out)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) * 1024
    return {"command": f"nomoat convert {gguf.relative_to(ROOT)} {out.relative_to(ROOT)}",
            "seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": mb(rss)}


def model_sizes(pkg: Path) -> dict:
    """The weights (the data file) and the 16-bit KV cache at the full context."""
    c = json.loads((pkg / "config.json").read_text())
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * c["max_position_embeddings"] * (2 * hd + 4)
    data = (pkg / "onnx" / "model_q4.onnx_data").stat().st_size
    return {"weights_mb": mb(data), "kv_full_context_mb": mb(kv), "context": c["max_position_embeddings"],
            "layers": c["num_hidden_layers"], "hidden": c["hidden_size"], "vocab": c["vocab_size"],
            "target_mb": mb(1.3 * data + kv)}


def before_dist(rev: str, into: Path) -> Path:
    """web/dist with runtime.mjs as it was at `rev` (hard links for the rest): the load that reads
    the data file as bytes (package.js load without a stream) and WasmEngine.create copies it in."""
    dist = ROOT / "web" / "dist"
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(dist, into, copy_function=os.link)
    (into / "runtime.mjs").unlink()
    (into / "runtime.mjs").write_bytes(subprocess.run(["git", "show", f"{rev}:web/src/runtime.mjs"], cwd=ROOT,
                                                      capture_output=True, check=True).stdout)
    return into


def browser(p, url: str, model: str, tokens: int) -> dict:
    """A fresh profile: idle RSS, then a cold and a warm page (create + prompt), each's peak."""
    from bench_peers import FLAGS, chromium_pid

    out = {}
    with tempfile.TemporaryDirectory(prefix="nomoat-large-", ignore_cleanup_errors=True) as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True,
                                                   args=FLAGS)
        pid = chromium_pid(profile)
        for phase in ("cold", "warm"):
            page = ctx.new_page()
            page.set_default_timeout(1_200_000)
            page.goto(url + "/?load=0")
            page.wait_for_timeout(1000)
            idle, _, idle_pss = TreeRSS(pid).sample()
            with TreeRSS(pid) as mem:
                try:
                    r = page.evaluate(JS_RUN, [model, tokens])
                except Exception as e:  # noqa: BLE001  (recorded, the other runs go on)
                    out[phase] = {"error": str(e).splitlines()[0][:300]}
                    print(f"  {phase}: {out[phase]}", flush=True)
                    break
            page.wait_for_timeout(1000)
            settled, _, settled_pss = TreeRSS(pid).sample()  # the model still loaded, the session destroyed
            st = r["stats"] or {}
            out[phase] = {"idle_rss_mb": mb(idle), "peak_rss_mb": mb(mem.peak), "idle_pss_mb": mb(idle_pss),
                          "peak_pss_mb": mb(mem.peak_pss), "settled_rss_mb": mb(settled),
                          "settled_pss_mb": mb(settled_pss),
                          "at_peak_mb": {k: mb(v) for k, v in sorted(mem.at_peak.items(), key=lambda kv: -kv[1])},
                          "create_s": round(r["create_ms"] / 1000, 1), "decode_tps": st.get("decode_tps"),
                          "completion_tokens": st.get("completion_tokens"), "device": r["device"]}
            print(f"  {phase}: {out[phase]}", flush=True)
            page.close()
        ctx.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=SYNTH, help="a package folder name in models/ (default: the synthetic 1.1B)")
    ap.add_argument("--tokens", type=int, default=8, help="tokens to decode")
    ap.add_argument("--before", metavar="REV", help="also run the runtime's package.js/runtime.mjs of REV")
    ap.add_argument("--reconvert", action="store_true", help="convert the synthetic model again")
    ap.add_argument("--node-only", action="store_true", help="only the Node measurement (no browser)")
    ap.add_argument("--out", type=Path, default=HERE / "results_large.json")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from nomoat.home import models_home
    from nomoat.serve import make_server

    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "tokens": args.tokens,
                    "command": "python bench/bench_large.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "machine": {"cpus": os.cpu_count()}}
    pkg = models_home() / args.model
    if args.model == SYNTH:
        if not SYNTH_GGUF.exists():
            import make_synthetic

            t0 = time.perf_counter()
            SYNTH_GGUF.parent.mkdir(parents=True, exist_ok=True)
            make_synthetic.make(SYNTH_GGUF)
            print(f"made {SYNTH_GGUF} in {time.perf_counter() - t0:.0f} s")
        result["gguf_mb"] = mb(SYNTH_GGUF.stat().st_size)
        if args.reconvert or not (pkg / "nomoat.json").exists():
            result["convert"] = convert(SYNTH_GGUF, pkg)
            print(f"converted: {result['convert']}")
    result["sizes"] = sizes = model_sizes(pkg)
    runs = {"after": None, **({"before": args.before} if args.before else {})}
    decoder = ROOT / "web" / "dist"
    result["node"] = {"after": node_run("stream", ROOT / "web", pkg, decoder, args.tokens)}
    if args.before:  # the data file as bytes, then copied into the engine: the load before streaming
        result["node"]["before"] = node_run("bytes", ROOT / "web", pkg, decoder, args.tokens)
    print(f"node: {result['node']}", flush=True)
    if args.node_only:
        runs = {}
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="nomoat-dist-") as tmp:
        for label, rev in runs.items() if runs else ():
            if rev:
                os.environ["NOMOAT_WEB"] = str(before_dist(rev, Path(tmp) / "dist"))
            else:
                os.environ.pop("NOMOAT_WEB", None)
            srv = make_server(0, models=pkg.parent)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            print(f"{label} ({rev or 'working tree'}):", flush=True)
            try:
                result[label] = {"runtime": rev or "web/dist as built", **browser(
                    p, f"http://127.0.0.1:{srv.server_address[1]}", args.model, args.tokens)}
            finally:
                srv.shutdown()
    for label in runs:
        for phase in ("cold", "warm"):
            r = result[label].get(phase, {})
            if "peak_rss_mb" not in r:
                continue
            r["over_weights"] = round(r["peak_rss_mb"] / sizes["weights_mb"], 2)
            r["peak_minus_idle_mb"] = round(r["peak_rss_mb"] - r["idle_rss_mb"], 1)
            r["pss_peak_minus_idle_mb"] = round(r["peak_pss_mb"] - r["idle_pss_mb"], 1)
            r["pss_settled_minus_idle_mb"] = round(r["settled_pss_mb"] - r["idle_pss_mb"], 1)
            # what loading and running the model added to the open page (Pyodide's boot included), against
            # 1.3 x weights + KV; the idle page itself (Chromium, ~400 MB PSS here) is not the model's
            r["within_target"] = r["pss_peak_minus_idle_mb"] <= sizes["target_mb"]
    prev = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "convert" not in result and "convert" in prev.get(args.model, {}):  # converted by an earlier run
        result["convert"] = prev[args.model]["convert"]
    prev[args.model] = result
    args.out.write_text(json.dumps(prev, indent=1) + "\n")
    print(table(result))
    return 0


def table(r: dict) -> str:
    s = r["sizes"]
    node = "; ".join(f"{k}: peak RSS {v['peak_rss_mb']:.0f} MB, wasm memory {v['wasm_memory_mb']:.0f} MB, "
                     f"load {v['load_s']:.1f} s" for k, v in r.get("node", {}).items())
    lines = [f"{r['model']}: weights {s['weights_mb']:.0f} MB, KV cache at {s['context']} tokens "
             f"{s['kv_full_context_mb']:.0f} MB, target 1.3 x weights + KV = {s['target_mb']:.0f} MB",
             f"Node (no browser): {node}",
             "| runtime | phase | idle RSS MB | peak RSS MB | peak - idle | peak / weights | peak PSS MB "
             "| PSS peak - idle | PSS settled - idle | create s | decode tok/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in ("before", "after"):
        if label not in r:
            continue
        for phase in ("cold", "warm"):
            x = r[label].get(phase, {})
            if "peak_rss_mb" not in x:
                lines.append(f"| {label} | {phase} | {x.get('error', 'not run')} |")
                continue
            lines.append(f"| {label} ({r[label]['runtime']}) | {phase} | {x['idle_rss_mb']:.0f} | "
                         f"{x['peak_rss_mb']:.0f} | {x['peak_minus_idle_mb']:.0f} | {x['over_weights']:.2f} | "
                         f"{x['peak_pss_mb']:.0f} | {x['pss_peak_minus_idle_mb']:.0f} | "
                         f"{x['pss_settled_minus_idle_mb']:.0f} | "
                         f"{x['create_s']:.1f} | {x['decode_tps'] or 0:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
