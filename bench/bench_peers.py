"""`nomoat bench`: nomoat side by side with transformers.js, wllama, and native llama.cpp / onnxruntime.

    .venv/bin/nomoat bench            # 3 repeats, 64 decode tokens, every context (~23 min a repeat here)
    .venv/bin/nomoat bench --quick    # 1 repeat, 32 decode tokens; the peers skip the 4096 context and
                                      # the 4-bit transformers.js row decodes at 128 only (~4-6 min here)
    .venv/bin/nomoat bench --quick --model gemma-3-270m       # another model by name (catalog.py), or
    .venv/bin/nomoat bench --quick --gguf FILE.gguf           # any GGUF (converted into .cache/bench/)
                                      # -> bench/results_<name>.json; transformers.js runs the default only
    make bench [QUICK=1]              # the same, after building everything (make web included)

Writes bench/results.json (schema: bench/peers_report.py) and bench/decode_vs_context.svg (with
--out X.json: X.svg), and prints the table. One run, same machine, same model, same prompts (the
chat-rendered token ids of one text, cut to 32 and 512 tokens for time to first token, and to 128,
1024 and 4096 tokens of context for decode), greedy decoding, fixed token counts:

- Per engine: load (cold, warm); one untimed 2-token run (warm-up); time to first token (TTFT: from the
  call to the first generated token, seen where the caller is) for the 32- and 512-token prompts;
  prefill tok/s = 512 / TTFT(512); decode tok/s at each context = (n - 1) / the time from the first to
  the last of n tokens, after prefilling that context in a fresh session.
- In the browser (Debian's headless Chromium, cross-origin isolated, wasm, 2 threads), one fresh
  browser profile per engine and repeat, pages from bench/peers/ served with COOP/COEP:
  nomoat (web/dist as built: `make web`), transformers.js 4.3.1 (its fastest configuration, an f32
  graph on ORT's plain wasm build, and the same 4-bit package nomoat ships) and wllama 2.3.7 (the GGUF).
  load cold = a fresh profile; warm = a second page in the same profile (each engine's own cache).
  peak_mb = the largest sum of RSS over Chromium's process tree (psutil, every 50 ms), which counts
  shared pages once per process.
- WebGPU: only where the adapter is a real GPU; headless Chromium here has SwiftShader (a CPU
  emulation) or none, so those rows are null with the reason.
- On CPython, as ceilings: onnxruntime through nomoat's backend (accuracy_level 4, 2 threads) and
  llama.cpp (llama-cpp-python, 2 threads) on the same GGUF, each in a worker process (peak_mb = its
  peak RSS). load cold = the first load in a new process (files in the OS cache), warm = the second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / "peers"
sys.path.insert(0, str(HERE))

from peers_report import CONTEXTS, TTFT_PROMPTS, aggregate, chart_svg, check_schema, empty_run, markdown  # noqa: E402
from peers_report import targets as compute_targets  # noqa: E402

THREADS = 2
FLAGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic"]
TEXT = ("The printing press changed how knowledge moved through Europe. Before it, a book was copied by hand, "
        "which took months and made every copy a little different. Johannes Gutenberg combined movable metal "
        "type, an oil-based ink and a screw press adapted from wine making, and within fifty years presses were "
        "running in more than two hundred cities. Prices fell, literacy rose, and scholars could compare the "
        "same page in Venice and in Basel. ")
LLAMA_MISSING = ("llama-cpp-python not installed (python3 -m venv .cache/llama-venv && "
                 ".cache/llama-venv/bin/pip install llama-cpp-python: a ~20 min build; or --llama-python)")
NO_GPU = ("no WebGPU adapter backed by a real GPU in headless Chromium on this machine ({}); WebGPU speed is "
          "measured only on a real GPU")


# ------------------------------------------------------------------------------------------------- set-up


def ensure_peers() -> None:
    """npm ci in bench/peers when node_modules is missing or older than the lock file (no install
    scripts: onnxruntime-node's would download binaries, and only the browser builds are used)."""
    stamp = PEERS / "node_modules" / ".package-lock.json"
    if stamp.is_file() and stamp.stat().st_mtime >= (PEERS / "package-lock.json").stat().st_mtime:
        return
    print("installing bench/peers (npm ci) ...", file=sys.stderr)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=PEERS, check=True)


def f32_package(model_dir: Path, gguf: Path, out: Path) -> Path:
    """transformers.js's fastest wasm input: the package's Optimum-I/O graph with every quantized
    matmul an f32 Gemm (weights dequantized here, exactly as nomoat's wasm graph builds them in the
    browser) as onnx/model.onnx + model.onnx_data, next to the package's own files (model_q4.onnx too)."""
    if (out / "onnx" / "model.onnx_data").is_file():
        return out
    import onnx
    from onnx import numpy_helper

    from nomoat.convert import load_weights, read_gguf
    from nomoat.convert.graph import build_graph, optimum_variant

    print("building the f32 graph for transformers.js ...", file=sys.stderr)
    m = read_gguf(gguf)
    w = load_weights(m)
    recipe: list[dict] = []
    model = build_graph(m.config, w, f32_recipe=recipe)
    weights = {f"model.layers.{i}.{n}.f32": q for i, lw in enumerate(w.layers)
               for n, q in (("attn.qkv_proj", lw.qkv), ("attn.o_proj", lw.o), ("mlp.gate_up_proj", lw.gate_up),
                            ("mlp.down_proj", lw.down))}
    weights["lm_head.f32"] = w.embed if w.lm_head is None else w.lm_head
    assert {e["name"] for e in recipe} == set(weights), "the f32 recipe names changed"
    for t in model.graph.initializer:
        if t.name in weights:
            t.CopyFrom(numpy_helper.from_array(weights[t.name].dequantize(), t.name))  # (N, K) f32
    tmp = Path(tempfile.mkdtemp(prefix=".f32-", dir=out.parent if out.parent.is_dir() else None))
    (tmp / "onnx").mkdir()
    onnx.save_model(optimum_variant(model), tmp / "onnx" / "model.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)
    for f in model_dir.glob("*.json"):
        shutil.copy(f, tmp / f.name)
    for f in ("model_q4.onnx", "model_q4.onnx_data"):
        os.symlink(model_dir / "onnx" / f, tmp / "onnx" / f)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def build_prompts(model_dir: Path) -> dict[str, dict]:
    """{"32": {"text", "ids"}, ...}: a user message cut so that the chat-rendered prompt (nomoat's
    template, default system prompt) is at most N tokens; every engine gets these ids (nomoat the text)."""
    import nomoat

    model = nomoat.load(model_dir, threads=1)
    words = " ".join(f"Section {i}. {TEXT}" for i in range(1, 80)).split(" ")
    out = {}
    for n in sorted({*TTFT_PROMPTS, *CONTEXTS}, key=int):
        lo, hi = 1, len(words)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            ids = model.encode_chat([{"role": "user", "content": " ".join(words[:mid])}])
            lo, hi = (mid, hi) if len(ids) <= int(n) else (lo, mid - 1)
        text = " ".join(words[:lo])
        out[n] = {"text": text, "ids": model.encode_chat([{"role": "user", "content": text}])}
    return out


def machine() -> dict:
    """bench_cpython's machine description, plus memory and the browser."""
    from bench_cpython import machine as cpu_machine

    out = cpu_machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        chromium = None
    return {**out, "memory_gib": round(mem, 1), "chromium": chromium, "summary": f"{out['cpu']}, {out['cpus']} CPUs"}


def commit() -> str | None:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if r.returncode:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "web/src", "web/build.mjs", "py/nomoat"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + (" (+ uncommitted changes in web/ or py/)" if dirty else "")


# -------------------------------------------------------------------------------------------------- browser


class PeakRSS:
    """Peak summed RSS of a process tree, sampled in a thread; also the CPU time that other processes
    used meanwhile (`foreign_cpus`: the machine's busy CPU time, from /proc/stat, less this tree's and
    this process's, per second of wall time), since a busy machine slows every engine."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._cpu: dict[int, float] = {}  # pid → its last seen CPU seconds
        self.foreign_cpus: float | None = None

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
                for p in procs:
                    t = p.cpu_times()
                    self._cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._start = (busy_cpu_seconds(), time.process_time(), time.perf_counter())
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        busy0, own0, wall0 = self._start
        busy1 = busy_cpu_seconds()
        if busy0 is not None and busy1 is not None:
            ours = sum(self._cpu.values()) + time.process_time() - own0
            self.foreign_cpus = max(0.0, busy1 - busy0 - ours) / (time.perf_counter() - wall0)


def busy_cpu_seconds() -> float | None:
    """The whole machine's busy CPU time since boot (/proc/stat, less idle and iowait), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def chromium_pid(profile: str) -> int:
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if any(profile in a for a in cmd) and not any(a.startswith("--type=") for a in cmd):
            return proc.info["pid"]
    raise RuntimeError("Chromium's browser process was not found")


def serve(models: Path, bench_models: Path, gguf: Path):
    """nomoat serve's handler (COOP/COEP) with the peers' pages and models added."""
    from nomoat.home import web_dist
    from nomoat.serve import Handler, Server

    dist = web_dist()
    if not (dist / "nomoat.js").is_file():
        raise SystemExit(f"nomoat bench: the browser runtime is not built ({dist}/nomoat.js); run 'make web'.")
    roots = [("/models/", models), ("/bench-models/", bench_models), ("/gguf/", gguf.parent),
             ("/peers/", PEERS), ("/", dist)]
    srv = Server(("127.0.0.1", 0), type("BenchHandler", (Handler,), {"roots": roots}))
    srv.verbose = False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def webgpu_adapter(pw, base: str) -> dict | None:
    """The adapter headless Chromium offers with --enable-unsafe-webgpu: {vendor, architecture,
    description, fallback} or None."""
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[*FLAGS, "--enable-unsafe-webgpu"])
    try:
        page = browser.new_page()
        page.goto(base + "/peers/bench.html?engine=none")
        return page.evaluate("""async () => {
            const a = navigator.gpu && await navigator.gpu.requestAdapter();
            if (!a) return null;
            const i = a.info || {};
            return {vendor: i.vendor, architecture: i.architecture, description: i.description,
                    fallback: !!(a.isFallbackAdapter || i.isFallbackAdapter)};
        }""")
    finally:
        browser.close()


def is_real_gpu(adapter: dict | None) -> bool:
    if not adapter or adapter.get("fallback"):
        return False
    names = " ".join(str(adapter.get(k) or "") for k in ("vendor", "architecture", "description")).lower()
    return not any(s in names for s in ("swiftshader", "llvmpipe", "lavapipe", "software"))


def browser_sample(pw, url: str, prompts: dict, plan: dict, gpu: bool) -> tuple[dict, list[str]]:
    """One repeat of one engine in a fresh profile: cold load, warm load (a second page), time to first
    token for the TTFT prompts, decode at each context of the plan. Returns (sample, notes)."""
    notes: list[str] = []
    sample: dict = {"load_s": {}, "ttft_ms": {}, "decode_tps": {}, "tokens": {}}
    args = [*FLAGS, "--enable-unsafe-webgpu"] if gpu else FLAGS
    with tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=args)
        try:
            with PeakRSS(chromium_pid(profile)) as mem:
                for phase in ("cold", "warm"):
                    page = ctx.new_page()
                    page.set_default_timeout(plan["timeout_ms"])
                    errors: list[str] = []
                    page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                    page.goto(url)
                    page.evaluate("() => window.benchReady")
                    loaded = page.evaluate("() => bench.load()")
                    sample["load_s"][phase] = loaded["ms"] / 1000
                    sample["info"] = loaded["info"]
                    if phase == "cold":
                        page.close()
                page.evaluate("([p]) => bench.run(p, 2)", [prompts[TTFT_PROMPTS[0]]])  # warm-up, not timed
                for n in TTFT_PROMPTS:
                    r = page.evaluate("([p, n]) => bench.run(p, n)", [prompts[n], 1])
                    sample["ttft_ms"][n] = r["ttft_ms"]
                    sample.setdefault("prompt_tokens", {})[n] = r["prompt_tokens"]
                last = TTFT_PROMPTS[-1]
                sample["prefill_tps"] = sample["prompt_tokens"][last] / (sample["ttft_ms"][last] / 1000)
                for n in CONTEXTS:
                    if n not in plan["contexts"]:
                        continue
                    r = page.evaluate("([p, n]) => bench.run(p, n)", [prompts[n], plan["decode_tokens"]])
                    sample["decode_tps"][n] = r["decode_tps"]
                    sample["tokens"][n] = r["tokens"]
                    sample.setdefault("prompt_tokens", {})[n] = r["prompt_tokens"]
                    if r["tokens"] < plan["decode_tokens"]:
                        notes.append(f"decode at {n}: stopped at end-of-sequence after {r['tokens']} of "
                                     f"{plan['decode_tokens']} tokens (no option to ignore it)")
                if errors:
                    notes.append("page errors: " + "; ".join(errors)[:300])
            sample["peak_mb"] = mem.peak / 2**20
        finally:
            ctx.close()
    sample["foreign_cpus"] = mem.foreign_cpus
    if mem.foreign_cpus is not None and mem.foreign_cpus > 0.25:
        notes.append(f"other processes kept {mem.foreign_cpus:.2f} of {os.cpu_count()} CPUs busy during a repeat")
    return sample, notes


# -------------------------------------------------------------------------------------------- CPython side


def cpython_worker(engine: str, spec_file: str) -> int:
    """`--worker ort|llama`: measure one CPython engine, print one JSON line (the sample)."""
    import numpy as np

    spec = json.loads(Path(spec_file).read_text())
    prompts, n_decode = spec["prompts"], spec["decode_tokens"]
    if engine == "llama":
        try:
            import llama_cpp
        except ImportError:
            print(json.dumps({"error": LLAMA_MISSING}))
            return 0

        def make():
            llm = llama_cpp.Llama(model_path=spec["gguf"], n_ctx=spec["n_ctx"], n_threads=THREADS,
                                  n_threads_batch=THREADS, verbose=False)
            n_vocab = llm.n_vocab()

            def feed(ids: list[int]):
                llm.eval(ids)
                return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            return llm.reset, feed
        version = f"llama-cpp-python {llama_cpp.__version__}"
    else:
        import onnxruntime

        import nomoat

        def make():
            m = nomoat.load(spec["model_dir"], threads=THREADS, accuracy_level=4)
            backend, state = m.backend, [m.backend.new_state()]

            def reset() -> None:
                state[0] = backend.new_state()
            return reset, lambda ids: backend.run(state[0], ids)
        version = f"onnxruntime {onnxruntime.__version__}"

    t = time.perf_counter()
    make()
    cold = time.perf_counter() - t
    t = time.perf_counter()
    reset, feed = make()
    warm = time.perf_counter() - t
    reset()
    feed(prompts["32"]["ids"][:8])  # warm-up
    out: dict = {"load_s": {"cold": cold, "warm": warm}, "ttft_ms": {}, "decode_tps": {}, "version": version}
    for n in TTFT_PROMPTS:
        reset()
        t = time.perf_counter()
        int(np.argmax(feed(prompts[n]["ids"])))
        out["ttft_ms"][n] = 1000 * (time.perf_counter() - t)
    out["prefill_tps"] = len(prompts[TTFT_PROMPTS[-1]]["ids"]) / (out["ttft_ms"][TTFT_PROMPTS[-1]] / 1000)
    for n in spec.get("contexts", CONTEXTS):
        reset()
        token = int(np.argmax(feed(prompts[n]["ids"])))
        token = int(np.argmax(feed([token])))  # the first step is warm-up, not timed
        t = time.perf_counter()
        for _ in range(n_decode - 1):
            token = int(np.argmax(feed([token])))
        out["decode_tps"][n] = (n_decode - 1) / (time.perf_counter() - t)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    return 0


def cpython_sample(python: str, engine: str, spec_file: Path) -> tuple[dict | None, str | None]:
    if not Path(python).is_file():
        return None, LLAMA_MISSING if engine == "llama" else f"no Python at {python}"
    r = subprocess.run([python, __file__, "--worker", engine, "--spec", str(spec_file)], capture_output=True,
                       text=True, timeout=1800)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        return None, f"worker failed (exit {r.returncode}): {r.stderr.strip()[-300:]}"
    msg = json.loads(lines[-1])
    return (None, msg["error"]) if "error" in msg else (msg, None)


def llama_python(arg: str | None) -> str:
    """A Python with llama-cpp-python: --llama-python, $NOMOAT_LLAMA_PYTHON, this Python if it has it,
    else the checkout's .cache/llama-venv (see LLAMA_MISSING for how to make it)."""
    if arg:
        return arg
    if os.environ.get("NOMOAT_LLAMA_PYTHON"):
        return os.environ["NOMOAT_LLAMA_PYTHON"]
    import importlib.util

    if importlib.util.find_spec("llama_cpp"):
        return sys.executable
    return str(HERE.parent / ".cache" / "llama-venv" / "bin" / "python")


# ------------------------------------------------------------------------------------------------------ main


def engine_plans(args, gguf: Path, model: str, default: bool) -> list[dict]:
    """The browser rows: engine, configuration, page query, and how much of the schema each measures."""
    n_dec, ctxs = args.decode_tokens, list(args.contexts)
    base = {"decode_tokens": n_dec, "contexts": ctxs, "timeout_ms": 900_000, "notes": []}
    # --quick keeps the run under 10 minutes: the peers' 4096-token prefill takes 1.5-2.5 minutes each
    # here, and the 4-bit transformers.js row decodes at 1-3 tok/s.
    short = [c for c in ("128", "1024") if c in ctxs]
    peer = ({"contexts": short, "notes": ["--quick: decode at 4096 not measured (its 4096-token prefill "
                                                    "takes ~2 min here); `nomoat bench` measures it"]}
            if args.quick else {})
    q4 = ({"contexts": ["128"], "notes": [f"--quick: only the 128-token context, {args.q4_decode_tokens} tokens "
                                          "(4-bit MatMulNBits decodes at 1-3 tok/s on onnxruntime-web's wasm EP)"]}
          if args.quick else {})
    ours = {**base, "engine": "nomoat", "config": "web/dist, device wasm",
            "query": f"engine=nomoat&device=wasm&model=/models/{model}/"}
    wllama = {**base, **peer, "engine": "wllama", "config": f"2.3.7, {gguf.name}",
              "query": f"engine=wllama&threads={THREADS}&gguf=/gguf/{gguf.name}"}
    if not default:  # transformers.js needs the f32 package bench makes for the default model only
        return [ours, wllama]
    return [
        ours,
        {**base, **peer, "engine": "transformers.js", "config": "4.3.1, f32 graph, plain ORT wasm",
         "query": f"engine=transformers&dtype=fp32&device=wasm&threads={THREADS}&model=SmolLM2-135M-Instruct"},
        {**base, **q4, "engine": "transformers.js", "config": "4.3.1, q4 graph (same package)",
         "query": f"engine=transformers&dtype=q4&device=wasm&threads={THREADS}&model=SmolLM2-135M-Instruct",
         "decode_tokens": args.q4_decode_tokens},
        wllama,
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nomoat bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat, 32 decode tokens, slow rows trimmed (<10 min)")
    ap.add_argument("--repeats", type=int, help="repeats per engine (default 3, --quick 1)")
    ap.add_argument("--decode-tokens", type=int, help="decode tokens per context (default 64, --quick 32)")
    ap.add_argument("--engines", help="comma-separated subset: nomoat,transformers.js,wllama,onnxruntime,llama.cpp")
    ap.add_argument("--llama-python", help="a Python with llama-cpp-python (default: $NOMOAT_LLAMA_PYTHON, this "
                    "Python, or .cache/llama-venv/bin/python)")
    ap.add_argument("--contexts", default=",".join(CONTEXTS),
                    help=f"decode at these contexts only, of {','.join(CONTEXTS)} (a large model's 4096-token prefill "
                         "takes minutes per engine)")
    ap.add_argument("--model", help="a named model (catalog.py: gemma-3-270m …; default: the default model)")
    ap.add_argument("--gguf", type=Path, help="any GGUF: converted into .cache/bench/models/ and benchmarked")
    ap.add_argument("--out", type=Path, help="results file (default bench/results.json; bench/results_<model>.json "
                                             "for --model/--gguf)")
    ap.add_argument("--worker", choices=["ort", "llama"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return cpython_worker(args.worker, args.spec)
    args.contexts = [c for c in CONTEXTS if c in args.contexts.split(",")]
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.decode_tokens = args.decode_tokens or (32 if args.quick else 64)
    args.q4_decode_tokens = 8 if args.quick else 16
    wanted = set(args.engines.split(",")) if args.engines else None

    from playwright.sync_api import sync_playwright

    from nomoat import catalog
    from nomoat.convert import convert

    t_start = time.perf_counter()
    bench_models = REPO / ".cache" / "bench" / "models"
    bench_models.mkdir(parents=True, exist_ok=True)
    if args.gguf:
        gguf, model_dir = args.gguf.resolve(), bench_models / args.gguf.stem
        if not (model_dir / "nomoat.json").is_file():
            convert(gguf, model_dir)
    else:
        entry = catalog.find(args.model) if args.model else catalog.DEFAULT
        if entry is None:
            raise SystemExit(f"nomoat bench: no model named {args.model!r} ({catalog.names()}); or give --gguf FILE.")
        model_dir, gguf = catalog.convert_named(entry.name), catalog.fetch(entry)
    default = model_dir.name == catalog.DEFAULT.name and not args.gguf
    args.out = args.out or HERE / ("results.json" if default else f"results_{model_dir.name}.json")
    ensure_peers()
    if default and (not wanted or "transformers.js" in wanted):
        f32_package(model_dir, gguf, bench_models / model_dir.name)
    prompts = build_prompts(model_dir)
    srv, base = serve(model_dir.parent, bench_models, gguf)
    rows: list[dict] = []
    try:
        with sync_playwright() as pw:
            adapter = webgpu_adapter(pw, base)
            gpu = is_real_gpu(adapter)
            for plan in engine_plans(args, gguf, model_dir.name, default):
                if wanted and plan["engine"] not in wanted:
                    continue
                samples, notes = [], list(plan["notes"])
                for r in range(args.repeats):
                    print(f"{plan['engine']} ({plan['config']}) repeat {r + 1}/{args.repeats} ...", file=sys.stderr)
                    try:
                        s, n = browser_sample(pw, f"{base}/peers/bench.html?{plan['query']}", prompts, plan, False)
                    except Exception as e:  # an engine that fails is a null row with the reason, not a crash
                        notes.append(f"failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                        break
                    samples.append(s)
                    notes += [x for x in n if x not in notes]
                    keys = ("load_s", "ttft_ms", "decode_tps", "peak_mb", "foreign_cpus")
                    print(f"  {json.dumps({k: s[k] for k in keys})}", file=sys.stderr)
                for n in CONTEXTS:
                    if n not in args.contexts:
                        notes.append(f"decode at {n}: not measured (--contexts {','.join(args.contexts)})")
                    elif n not in plan["contexts"] and not plan["notes"]:
                        notes.append(f"decode at {n}: not measured in this configuration")
                row = aggregate(plan["engine"], plan["config"], "wasm", THREADS, samples, notes)
                row["decode_tokens"] = plan["decode_tokens"]
                row["info"] = samples[-1].get("info") if samples else None
                rows.append(row)
            reason = NO_GPU.format("adapter: " + json.dumps(adapter) if adapter else "no adapter at all")
            for engine, config in (("nomoat", "web/dist WebGPU graph"), ("transformers.js", "4.3.1, q4 graph"))[
                    :2 if default else 1]:
                if gpu:
                    reason = ("a real GPU adapter was found, but the WebGPU rows are not implemented in this "
                              f"harness yet: {json.dumps(adapter)}")
                if not wanted or engine in wanted:
                    rows.append(empty_run(engine, config, "webgpu", None, [reason]))
            if not wanted or "wllama" in wanted:
                rows.append(empty_run("wllama", "2.3.7", "webgpu", None, ["wllama 2.3.7 has no WebGPU backend"]))
    finally:
        srv.shutdown()

    spec = Path(tempfile.mkdtemp(prefix="nomoat-bench-")) / "spec.json"
    spec.write_text(json.dumps({"prompts": prompts, "decode_tokens": args.decode_tokens, "gguf": str(gguf),
                                "contexts": args.contexts,
                                "model_dir": str(model_dir), "n_ctx": 4608}))
    for engine, config, worker, python in (
            ("onnxruntime", "CPython, accuracy_level 4", "ort", sys.executable),
            ("llama.cpp", "CPython, llama-cpp-python", "llama", llama_python(args.llama_python))):
        if wanted and engine not in wanted:
            continue
        samples = []
        notes = [f"decode at {n}: not measured (--contexts {','.join(args.contexts)})" for n in CONTEXTS
                 if n not in args.contexts]
        for r in range(args.repeats):
            print(f"{engine} repeat {r + 1}/{args.repeats} ...", file=sys.stderr)
            s, err = cpython_sample(python, worker, spec)
            if err:
                notes.append(err)
                break
            samples.append(s)
        row = aggregate(engine, samples[0]["version"] if samples else config, "cpu", THREADS, samples, notes)
        row["decode_tokens"] = args.decode_tokens
        rows.append(row)
    shutil.rmtree(spec.parent)

    results = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "commit": commit(),
        "command": " ".join(["nomoat bench", *(argv if argv is not None else sys.argv[1:])]),
        "model": {"name": model_dir.name, "gguf": gguf.name, "gguf_mb": round(gguf.stat().st_size / 1e6, 1)},
        "settings": {"repeats": args.repeats, "decode_tokens": args.decode_tokens, "threads": THREADS,
                     "prompt_tokens": {n: len(p["ids"]) for n, p in prompts.items()},
                     "webgpu_adapter": adapter, "peak_mb": "browser: largest summed RSS of Chromium's process "
                     "tree (psutil, 50 ms); CPython: the worker's peak RSS",
                     "seconds": round(time.perf_counter() - t_start)},
        "runs": rows,
    }
    results["targets"] = compute_targets(results)
    check_schema(results)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    chart = args.out.parent / ("decode_vs_context.svg" if args.out.name == "results.json" else f"{args.out.stem}.svg")
    chart.write_text(chart_svg(results))
    print(markdown(results))
    print(f"wrote {args.out} and {chart} ({results['settings']['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
