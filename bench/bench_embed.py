"""Embedding throughput and latency in headless Chromium, wasm: nomoat (llm.embeddings.create) on its
own wasm encoder ("nomoat", web/src/wasm_encoder.mjs) and on onnxruntime-web ("nomoat_ort", wasmEngine
"ort") next to transformers.js's feature-extraction pipeline (mean pooling, normalize) on the same
package, in the same page of the same browser run, 2 threads each.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_embed.py      # writes bench/results_embed.json, prints a table
    .venv/bin/python bench/bench_embed.py --repeats 3 --out /tmp/embed.json

Workloads: batches of 1, 8 and 64 short sentences (8-20 words), and batches of 8 passages of ~256 tokens
(the model's limit, [CLS] and [SEP] included). Per workload and engine: one untimed call, then `repeats`
timed calls (the engines alternate); latency is the fastest call (the median is recorded too: on
this shared 2-CPU machine single calls vary up to 2x with other load, for either engine), throughput
sentences per second of it. Then the graphs alone on the same padded token ids (the 64 sentences, and
the 8 passages, each as one batch padded to its longest, as both engines pad them): nomoat's encoders
made in the page's thread (where transformers.js runs its own) and transformers.js's model call, with no
tokenizer, pooling, Pyodide or worker (nomoat's own encoder leaves the padded positions out; the
onnxruntime-web graphs compute them). And the padding lever: the 64 sentences sorted by length and run
in batches of 64, 16 and 8 (nomoat's onnxruntime-web graph alone). `foreign_cpus`: the CPUs other
processes kept busy meanwhile (2 CPUs here: a busy machine slows every engine). Agreement: the cosine of
nomoat's and transformers.js's vectors for
every text of the 64-sentence and passage batches, and of each against the numpy reference encoder
(nomoat.backends.reference_encoder) on the same texts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_peers import FLAGS, PEERS, PeakRSS, chromium_pid, commit, machine  # noqa: E402

SUBJECTS = ["The old lighthouse keeper", "A small team of engineers", "My neighbour's daughter", "The river",
            "An unexpected letter", "The city council", "A tired violinist", "The morning train"]
VERBS = ["repaired the broken lamp", "argued about the budget", "painted the garden fence", "flooded the lower fields",
         "changed everything for the family", "voted to close the library", "played until midnight",
         "arrived twenty minutes late"]
TAILS = ["before the storm reached the coast.", "while the children slept upstairs.",
         "after a long and difficult winter.", "because nobody else had the time.", "on the first warm day of spring.",
         "and then went home without a word.", "despite the heavy rain.", "as the market was opening."]
PASSAGE = ("The printing press changed how knowledge moved through Europe. Before it, a book was copied by hand, "
           "which took months and made every copy a little different. Johannes Gutenberg combined movable metal "
           "type, an oil-based ink and a screw press adapted from wine making, and within fifty years presses were "
           "running in more than two hundred cities. Prices fell, literacy rose, and scholars could compare the "
           "same page in Venice and in Basel. Pamphlets spread arguments faster than any authority could answer "
           "them, and the Reformation was carried as much by cheap print as by preaching. Maps, tables and "
           "diagrams could be reproduced exactly, which made cumulative science possible: an astronomer in one "
           "country could correct the numbers of another. ")


# nomoat's own wasm encoder, nomoat on onnxruntime-web (wasmEngine "ort"), transformers.js
ENGINES = ("nomoat", "nomoat_ort", "transformers")


def short_sentences(n: int) -> list[str]:
    """n different short sentences (8-20 words)."""
    out = []
    for i in range(n):
        s, v, t = SUBJECTS[i % 8], VERBS[(i // 8 + i) % 8], TAILS[(i * 3 + i // 8) % 8]
        out.append(f"{s} {v} {t}" if i % 3 else f"{s} {v}.")
    return out


def passages(n: int, tokenizer, limit: int) -> list[str]:
    """n different passages of as many words of PASSAGE (repeated, each starting further in) as fit
    in `limit` tokens, [CLS] and [SEP] included."""
    words = (PASSAGE * 6).split()
    out = []
    for i in range(n):
        w = words[i * 7:]
        lo, hi = 1, len(w)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(tokenizer.encode(" ".join(w[:mid])).ids) <= limit:
                lo = mid
            else:
                hi = mid - 1
        out.append(" ".join(w[:lo]))
    return out


def serve(models: Path):
    from nomoat.home import web_dist
    from nomoat.serve import Handler, Server

    dist = web_dist()
    if not (dist / "nomoat.js").is_file():
        raise SystemExit(f"bench_embed: the browser runtime is not built ({dist}/nomoat.js); run 'make web'.")
    roots = [("/models/", models), ("/peers/", PEERS), ("/bench/", HERE), ("/", dist)]
    srv = Server(("127.0.0.1", 0), type("BenchHandler", (Handler,), {"roots": roots}))
    srv.verbose = False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def padded_batch(rows: list[list[int]]) -> list:
    """[ids, mask, batch, seq]: the rows padded to the longest (bench.forward's batch)."""
    seq = max(map(len, rows))
    ids = [t for r in rows for t in r + [0] * (seq - len(r))]
    mask = [m for r in rows for m in [1] * len(r) + [0] * (seq - len(r))]
    return [ids, mask, len(rows), seq]


def cosines(a, b) -> list[float]:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).tolist()


def reference_vectors(source: Path, texts: list[str], tokenizer):
    """The numpy reference encoder's vectors of `texts` (one text at a time: no padding), from the
    original model (the zip `nomoat convert --model` downloaded)."""
    import numpy as np

    from nomoat.convert.encoder import reference_encoder

    enc = reference_encoder(source)
    out = []
    for t in texts:
        ids = np.array([tokenizer.encode(t).ids], dtype=np.int64)
        out.append(np.asarray(enc.embeddings(ids, np.ones_like(ids)))[0])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results_embed.json")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright
    from tokenizers import Tokenizer

    from nomoat.home import models_home

    models = models_home()
    model_dir = models / args.model
    manifest = json.loads((model_dir / "nomoat.json").read_text())
    limit = manifest["embedding"]["max_tokens"]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    short = short_sentences(64)
    long = passages(8, tokenizer, limit)
    workloads = {"short x1": short[:1], "short x8": short[:8], "short x64": short, "passage x8": long}

    srv, base = serve(models)
    results: dict = {"command": "flock /tmp/heavy.lock .venv/bin/python bench/bench_embed.py" +
                     (f" --repeats {args.repeats}" if args.repeats != 7 else ""),
                     "machine": machine(), "commit": commit(), "model": args.model,
                     "weights": manifest["embedding"].get("weights"), "threads": 2, "repeats": args.repeats,
                     "tokens_per_text": {k: statistics.mean(len(tokenizer.encode(t).ids) for t in v)
                                         for k, v in workloads.items()},
                     "engines": {}, "graph_alone": {}, "padding": {}, "agreement": {}}
    vectors: dict = {}
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS)
            page = ctx.new_page()
            page.set_default_timeout(600_000)
            page.goto(base + f"/bench/bench_embed.html?model={args.model}")
            page.wait_for_function("() => window.benchReady && window.llm")
            assert page.evaluate("crossOriginIsolated"), "the bench page must be cross-origin isolated (2 threads)"
            with PeakRSS(chromium_pid(profile)) as mem:
                for engine in ENGINES:
                    loaded = page.evaluate("(e) => bench.load(e)", engine)
                    results["engines"][engine] = {"load_s": loaded["ms"] / 1000, "info": loaded["info"],
                                                  "workloads": {}}
                for name, texts in workloads.items():
                    for engine in ENGINES:
                        page.evaluate("([e, t]) => bench.embed(e, t)", [engine, texts])  # untimed
                    times = {e: [] for e in ENGINES}
                    for _ in range(args.repeats):
                        for engine in ENGINES:
                            r = page.evaluate("([e, t]) => bench.embed(e, t)", [engine, texts])
                            times[engine].append(r["ms"])
                            vectors[(engine, name)] = r["vectors"]
                            if r.get("padded"):
                                results["engines"][engine].setdefault("padded_tokens", {})[name] = r["padded"]
                            if r.get("tokens"):
                                results["engines"][engine].setdefault("tokens", {})[name] = r["tokens"]
                    for engine, ms in times.items():
                        results["engines"][engine]["workloads"][name] = {
                            "latency_ms": min(ms), "latency_ms_median": statistics.median(ms), "latency_ms_all": ms,
                            "sentences_per_s": len(texts) / (min(ms) / 1000)}
                    print(f"{name}: " + ", ".join(f"{e} {min(m):.1f} ms" for e, m in times.items()), flush=True)
                for name in ("short x64", "passage x8"):
                    batch = padded_batch([tokenizer.encode(t).ids for t in workloads[name]])
                    graph = {e: [] for e in ENGINES}
                    for _ in range(args.repeats):
                        for engine in graph:
                            graph[engine].append(page.evaluate("([e, b]) => bench.forward(e, b)",
                                                               [engine, [batch]])["ms"])
                    results["graph_alone"][name] = {"shape": batch[2:], "all": graph,
                                                    **{e: min(m) for e, m in graph.items()}}
                    print(f"graph alone, {name} {batch[2:]}: " + ", ".join(f"{e} {min(m):.1f} ms"
                                                                          for e, m in graph.items()), flush=True)
                # The padding lever: the 64 sentences sorted by length in batches of 64, 16, 8 (nomoat's
                # onnxruntime-web encoder alone: its own encoder leaves padding out).
                ids = sorted((tokenizer.encode(t).ids for t in short), key=len)
                for rows in (64, 16, 8):
                    batches = [padded_batch(ids[i:i + rows]) for i in range(0, len(ids), rows)]
                    ms = [page.evaluate("([e, b]) => bench.forward(e, b)", ["nomoat_ort", batches])["ms"]
                          for _ in range(args.repeats)]
                    results["padding"][f"{rows} per batch"] = {"padded_tokens": sum(b[2] * b[3] for b in batches),
                                                               "ms": min(ms), "all": ms}
                print("padding: " + ", ".join(f"{k} ({v['padded_tokens']} tokens) {v['ms']:.0f} ms"
                                              for k, v in results["padding"].items()), flush=True)
            results["foreign_cpus"] = mem.foreign_cpus
            ctx.close()
    finally:
        srv.shutdown()

    for name in ("short x64", "passage x8"):
        texts = workloads[name]
        ref = reference_vectors(models / "downloads" / f"{args.model}.zip", texts, tokenizer)
        results["agreement"][name] = {
            "nomoat_vs_transformers_min": min(cosines(vectors[("nomoat", name)], vectors[("transformers", name)])),
            "nomoat_vs_reference_min": min(cosines(vectors[("nomoat", name)], ref)),
            "nomoat_ort_vs_reference_min": min(cosines(vectors[("nomoat_ort", name)], ref)),
            "transformers_vs_reference_min": min(cosines(vectors[("transformers", name)], ref)),
        }
    e = results["engines"]
    results["speedup"] = {name: e["nomoat"]["workloads"][name]["sentences_per_s"] /
                          e["transformers"]["workloads"][name]["sentences_per_s"] for name in workloads}
    results["speedup_ort"] = {name: e["nomoat_ort"]["workloads"][name]["sentences_per_s"] /
                              e["transformers"]["workloads"][name]["sentences_per_s"] for name in workloads}
    worst = min(a["nomoat_vs_reference_min"] for a in results["agreement"].values())
    results["target"] = {"speedup_at_64": results["speedup"]["short x64"], "want": 2.0,
                         "met": results["speedup"]["short x64"] >= 2.0,
                         "cosine_min": worst, "cosine_met": worst >= 0.9999}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


def markdown(r: dict) -> str:
    e = r["engines"]
    lines = ["| workload | tokens/text | nomoat texts/s | nomoat ms (median) | nomoat (ort) texts/s "
             "| nomoat (ort) ms (median) | transformers.js texts/s | transformers.js ms (median) | nomoat / tjs "
             "| nomoat (ort) / tjs |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, w in e["nomoat"]["workloads"].items():
        o, t = e["nomoat_ort"]["workloads"][name], e["transformers"]["workloads"][name]
        lines.append(f"| {name} | {r['tokens_per_text'][name]:.0f} | {w['sentences_per_s']:.1f} | "
                     f"{w['latency_ms']:.0f} ({w['latency_ms_median']:.0f}) | {o['sentences_per_s']:.1f} | "
                     f"{o['latency_ms']:.0f} ({o['latency_ms_median']:.0f}) | {t['sentences_per_s']:.1f} | "
                     f"{t['latency_ms']:.0f} ({t['latency_ms_median']:.0f}) | {r['speedup'][name]:.2f}x | "
                     f"{r['speedup_ort'][name]:.2f}x |")
    lines.append("")
    for name, g in r["graph_alone"].items():
        lines.append(f"graph alone, {name} as one {g['shape'][0]} x {g['shape'][1]} batch of the same token ids: "
                     f"nomoat {g['nomoat']:.1f} ms, nomoat (ort) {g['nomoat_ort']:.1f} ms, "
                     f"transformers.js {g['transformers']:.1f} ms")
    lines.append("padding, short x64 sorted by length, nomoat (ort)'s graph alone: " + ", ".join(
        f"{k} {v['padded_tokens']} tokens {v['ms']:.0f} ms" for k, v in r["padding"].items()))
    lines.append(f"load: nomoat {e['nomoat']['load_s']:.1f} s, nomoat (ort) {e['nomoat_ort']['load_s']:.1f} s, "
                 f"transformers.js {e['transformers']['load_s']:.1f} s; "
                 f"other processes kept {r['foreign_cpus'] or 0:.2f} CPUs busy")
    for name, a in r["agreement"].items():
        lines.append(f"cosine ({name}, min over texts): "
                     f"nomoat vs transformers.js {a['nomoat_vs_transformers_min']:.7f}, "
                     f"nomoat vs numpy reference {a['nomoat_vs_reference_min']:.7f}, "
                     f"nomoat (ort) vs reference {a['nomoat_ort_vs_reference_min']:.7f}, "
                     f"transformers.js vs reference {a['transformers_vs_reference_min']:.7f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
