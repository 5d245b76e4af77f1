"""nomoat's wasm decoder, int16 vs int8 activations (decoder.ts matmul vs matmul8, relaxed SIMD), in one run.

    .venv/bin/python bench/bench_large_kernels.py                          # the synthetic 1.1B
    .venv/bin/python bench/bench_large_kernels.py --model SmolLM2-135M-Instruct --model gemma-3-270m

Per model (a package in models/), one headless Chromium page (cross-origin isolated, so two threads
are available) fetches the package once, then creates WasmEngine with kernels "int16" and "int8" in
turn, --repeats times interleaved (the same machine state for both), each with 1 and 2 threads: a
prefill of --context token ids (fixed, seeded), then --tokens greedy decode steps, each timed; decode
tok/s = tokens / their total time. With --prefill N, also a timed prefill of N such ids in a fresh state
(engine.step without a sampler: no LM head, as a prompt's prefill), prefill tok/s = N / its time, and
the linear layers' share of it (a second such prefill, linear() timed). It also records the first
decode step's profile (ms per call by weight layout: wasm_engine.mjs linear() wrapped) and, over the
prefill's last --check positions, the int8 logits against int16's (max |difference|, argmax agreement).
Writes bench/results_kernels_i8.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "py"))

JS = """async ([model, kernels, threads, ctx, tokens, check, prefill]) => {
    const {WasmEngine} = await import("/wasm_engine.mjs");
    if (!window.pkgCache || window.pkgCache.model !== model) {
        const get = async (f) => new Uint8Array(await (await fetch(`/models/${model}/${f}`)).arrayBuffer());
        const json = async (f) => JSON.parse(new TextDecoder().decode(await get(f)));
        window.pkgCache = {model, config: await json("config.json"), tensors: await json("onnx/nomoat_tensors.json"),
                           data: await get("onnx/model_q4.onnx_data")};
    }
    const {config, tensors, data} = window.pkgCache, V = config.vocab_size;
    const t0 = performance.now();
    const e = await WasmEngine.create({data, tensors, config, threads, kernels});
    const load = performance.now() - t0;
    let s = 12345;
    const next = () => 3 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (V - 3));  // seeded ids
    const ids = Array.from({length: ctx}, next);
    const st = e.newState();
    let prefill_ms = null, prefill_linear_ms = null;
    if (prefill) {
        const long = Array.from({length: prefill}, next);
        const st2 = e.newState(), t = performance.now();
        await e.step(st2, 0, long, null);
        prefill_ms = performance.now() - t;
        st2.dispose();
        const st3 = e.newState(), lin0 = e.linear.bind(e);  // again, timing the linear layers (matmuls) apart
        prefill_linear_ms = 0;
        e.linear = (w, x, T, y) => {
            const t1 = performance.now();
            lin0(w, x, T, y);
            prefill_linear_ms += performance.now() - t1;
        };
        await e.step(st3, 0, long, null);
        e.linear = lin0;
        st3.dispose();
    }
    const all = await e.logits(st, 0, ids);
    const last = all.slice(all.length - check * V);
    let tok = 0;
    for (let i = 1; i < V; i++) if (all[all.length - V + i] > all[all.length - V + tok]) tok = i;
    const prof = {}, lin = e.linear.bind(e);
    let on = true;
    e.linear = (w, x, T, y) => {
        if (!on) return lin(w, x, T, y);
        const t = performance.now(); lin(w, x, T, y);
        const key = `${w === e.head ? "head " : ""}${w.bits}-bit/${w.block}${w.c ? "+offsets" : ""} ${w.n}x${w.k}` +
          (e.int8.has(w) ? " int8" : "");
        prof[key] = (prof[key] || 0) + performance.now() - t;
    };
    const out = [], times = [];
    for (let i = 0; i < tokens; i++) {
        const t = performance.now();
        const lg = await e.logits(st, st.length, [tok]);
        times.push(performance.now() - t);
        on = false;
        out.push(tok);
        tok = 0;
        for (let j = 1; j < V; j++) if (lg[j] > lg[tok]) tok = j;
    }
    const kern = e.kernels, nint8 = e.int8.size;
    e.dispose();
    return {kernels: kern, threads: e.threads, int8_weights: nint8, load_ms: load, step_ms: times,
            prefill_ms, prefill_linear_ms,
            prefill_tps: prefill ? 1000 * prefill / prefill_ms : null,
            decode_tps: 1000 * (tokens - 1) / times.slice(1).reduce((a, b) => a + b, 0), tokens: out,
            profile_first_step_ms: prof, last_logits: Array.from(last)};
}"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="packages in models/ (default: synthetic-1.1b)")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=17, help="decode steps (the first is not counted in tok/s)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--check", type=int, default=8, help="prefill positions whose logits are compared")
    ap.add_argument("--prefill", type=int, default=0, help="also time a prefill of this many tokens (0: none)")
    ap.add_argument("--out", default=str(HERE / "results_kernels_i8.json"))
    a = ap.parse_args(argv)
    import numpy as np
    from bench_peers import FLAGS
    from playwright.sync_api import sync_playwright

    from nomoat.serve import make_server

    srv = make_server(0, models=ROOT / "models")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    results = {"web": os.environ.get("NOMOAT_WEB", "web/dist"), "context": a.context, "tokens": a.tokens, "models": {}}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for model in a.model or ["synthetic-1.1b"]:
            page = b.new_page()
            page.set_default_timeout(1_200_000)
            page.goto(url + "/?load=0")
            runs = []
            for rep in range(a.repeats):
                for threads in [int(t) for t in a.threads.split(",")]:
                    for kernels in (("int16", "int8") if rep % 2 == 0 else ("int8", "int16")):
                        r = page.evaluate(JS, [model, kernels, threads, a.context, a.tokens, a.check, a.prefill])
                        r["repeat"] = rep
                        runs.append(r)
                        print(f"{model} {kernels} threads {r['threads']}: {r['decode_tps']:.2f} tok/s "
                              f"(int8 weights {r['int8_weights']})" +
                              (f", prefill {r['prefill_tps']:.1f} tok/s (linear layers {r['prefill_linear_ms']:.0f} "
                               f"of {r['prefill_ms']:.0f} ms)" if a.prefill else ""), flush=True)
            page.close()
            summary = {}
            for threads in {r["threads"] for r in runs}:
                for kernels in ("int16", "int8"):
                    rs = [r for r in runs if r["threads"] == threads and r["kernels"] == kernels]
                    summary[f"{kernels} threads {threads}"] = {
                        "decode_tps_median": statistics.median(r["decode_tps"] for r in rs),
                        "decode_tps": [r["decode_tps"] for r in rs], "tokens": rs[0]["tokens"],
                        "prefill_tps_median": statistics.median(r["prefill_tps"] for r in rs) if a.prefill else None,
                        "profile_first_step_ms": rs[0]["profile_first_step_ms"]}
            i16 = next(r for r in runs if r["kernels"] == "int16")
            i8 = next(r for r in runs if r["kernels"] == "int8")
            x, y = np.array(i16["last_logits"]), np.array(i8["last_logits"])
            V = len(x) // a.check
            x, y = x.reshape(a.check, V), y.reshape(a.check, V)
            t0 = runs[0]["threads"]
            same = summary[f"int8 threads {t0}"]["tokens"] == summary[f"int16 threads {t0}"]["tokens"]
            summary["int8_vs_int16"] = {"max_abs_diff": float(np.abs(x - y).max()),
                                        "largest_logit": float(np.abs(x).max()),
                                        "argmax_equal": int((x.argmax(-1) == y.argmax(-1)).sum()), "positions": a.check,
                                        "decode_tokens_equal": same}
            for r in runs:
                r.pop("last_logits")
            results["models"][model] = {"summary": summary, "runs": runs}
            brief = {k: (v if k == "int8_vs_int16" else v["decode_tps_median"]) for k, v in summary.items()}
            print(json.dumps({model: brief}, indent=1), flush=True)
        b.close()
    srv.shutdown()
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
