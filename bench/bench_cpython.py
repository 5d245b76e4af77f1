"""CPython benchmark: `nomoat convert`, onnxruntime (accuracy_level 0 and 4) and llama.cpp on the same GGUF.

    .venv/bin/python bench/bench_cpython.py                 # 3 interleaved repeats, writes bench/results_cpython.json
    .venv/bin/python bench/bench_cpython.py --repeats 5 --llama-python /path/to/venv/bin/python

What one run does:
1. Converts the GGUF with `nomoat convert` in a subprocess, `--repeats` times: wall time, peak RSS (os.wait4's
   rusage of that child), GGUF size vs package size.
2. Tokenizes one fixed text once (the package's tokenizer; the llama.cpp worker checks that its own tokenizer
   gives the same ids) and takes its first 128 and 512 ids as the two prompts, identical for every engine.
3. For each repeat, runs every engine once, the order rotated per repeat (the machine is shared and noisy; each
   measurement first waits, up to --max-wait seconds, for the CPUs to be at most --quiet busy, and a run during
   which other processes kept more than --max-foreign CPUs busy is done again, up to --retries times):
   onnxruntime at accuracy_level 0 and 4 (nomoat's OrtNativeBackend, 2 threads) and llama.cpp (llama-cpp-python
   in another venv, n_threads=2, driven as a worker subprocess of this script: `--engine llama`). Each run times
   prefill of the 128- and the 512-token prompt from an empty cache, then 128 greedy decode steps after the
   128-token prompt; decode tokens/s leaves out the first step (warm-up). Medians over repeats are reported,
   and onnxruntime decode / llama.cpp decode as the median of the per-repeat ratios.
4. Profiles 20 onnxruntime decode steps per accuracy level (SessionOptions.enable_profiling on a separate
   session built by the backend itself), `--repeats` times, keeps the least disturbed try and sums kernel time
   by op type and matmul time by weight. Profiling adds a fixed cost per node, so its absolute times run high.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_LENGTHS = (128, 512)
THREADS = 2
PROFILE_STEPS = 20

# A fixed English text, repeated with numbered sections until it is long enough for the longest prompt.
TEXT = (
    "The printing press changed how knowledge moved through Europe. Before it, a book was copied by hand, "
    "which took months and made every copy a little different. Johannes Gutenberg combined movable metal "
    "type, an oil-based ink and a screw press adapted from wine making, and within fifty years presses were "
    "running in more than two hundred cities. Prices fell, literacy rose, and scholars could compare the same "
    "page in Venice and in Basel. Pamphlets spread arguments faster than authorities could answer them, "
    "scientific results were checked and extended by readers who never met the author, and vernacular "
    "languages gained fixed spellings. "
)


# ---------------------------------------------------------------------------------------------- measurement


class Engine:
    """One inference engine: reset() empties the cache; feed(ids) runs them and returns the last logits."""

    name: str

    def reset(self) -> None:
        raise NotImplementedError

    def feed(self, ids: list[int]) -> np.ndarray:
        raise NotImplementedError


class OrtEngine(Engine):
    def __init__(self, backend, label: str) -> None:
        self.backend, self.name = backend, label
        self.state = backend.new_state()

    def reset(self) -> None:
        self.state = self.backend.new_state()

    def feed(self, ids: list[int]) -> np.ndarray:
        return self.backend.run(self.state, ids)


class LlamaEngine(Engine):
    name = "llama.cpp"

    def __init__(self, gguf: str) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=gguf, n_ctx=2048, n_threads=THREADS, n_threads_batch=THREADS,
                                   verbose=False)
        self.n_vocab = self.llm.n_vocab()

    def reset(self) -> None:
        self.llm.reset()

    def feed(self, ids: list[int]) -> np.ndarray:
        self.llm.eval(ids)
        # llm.scores / llm.eval_logits are only filled with logits_all=True (0.3.x), which would make prefill
        # compute logits for every position; onnxruntime computes only the last (logits_to_keep=1). So read the
        # last row straight from the context.
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))


def cpu_jiffies() -> tuple[int, int] | None:
    """(total, busy) CPU time of the whole machine since boot, in clock ticks (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return sum(fields), sum(fields) - fields[3] - fields[4]  # busy: less idle and iowait


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot, or None."""
    j = cpu_jiffies()
    return None if j is None else j[1] / os.sysconf("SC_CLK_TCK")


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over `seconds`, or None where there is no /proc/stat."""
    a = cpu_jiffies()
    time.sleep(seconds)
    b = cpu_jiffies()
    if a is None or b is None:
        return None
    return (b[1] - a[1]) / max(b[0] - a[0], 1)


def wait_until_quiet(threshold: float, max_wait: float) -> float | None:
    """Wait (up to max_wait seconds) until other processes leave the CPUs nearly idle; return the last
    busy fraction. On 2 cores, llama.cpp's spinning OpenMP threads can slow down 10-100x under foreign load."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        time.sleep(2)
        busy = cpu_busy()
    return busy


def measure(engine: Engine, prompts: dict[int, list[int]], n_decode: int) -> dict:
    """One run: prefill each prompt from an empty cache, then greedy decode after the shortest prompt.
    `foreign_cpus`: CPUs busy meanwhile but not charged to this process (other processes, kernel threads)."""
    out: dict = {"prefill_tok_s": {}}
    busy0, own0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    for n in sorted(prompts, reverse=True):  # the shortest last: decoding continues from it
        engine.reset()
        t = time.perf_counter()
        logits = engine.feed(prompts[n])
        out["prefill_tok_s"][str(n)] = n / (time.perf_counter() - t)
    steps, tokens = [], []
    token = int(np.argmax(logits))
    for _ in range(n_decode):
        tokens.append(token)
        t = time.perf_counter()
        logits = engine.feed([token])
        steps.append(time.perf_counter() - t)
        token = int(np.argmax(logits))
    timed = steps[1:]  # the first step is warm-up
    out["decode_tok_s"] = len(timed) / sum(timed)
    out["decode_step_ms_p50"] = 1000 * statistics.median(timed)
    out["decode_step_ms_max"] = 1000 * max(timed)
    out["greedy_tokens"] = tokens
    busy1, own1, wall1 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    if busy0 is not None and busy1 is not None:
        out["foreign_cpus"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)
    return out


def warm_up(engine: Engine, ids: list[int]) -> None:
    engine.reset()
    logits = engine.feed(ids[:16])
    for _ in range(2):
        logits = engine.feed([int(np.argmax(logits))])
    engine.reset()


# ------------------------------------------------------------------------------------ llama.cpp worker side


def llama_worker(gguf: str, ids_file: str, n_decode: int) -> int:
    """`--engine llama`: print a ready line, then one JSON line of `measure` per stdin line, until EOF."""
    try:
        import llama_cpp

        engine = LlamaEngine(gguf)
    except Exception as e:  # not installed, or the GGUF did not load
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    spec = json.loads(Path(ids_file).read_text())
    prompts = {int(k): v for k, v in spec["prompts"].items()}
    own_ids = engine.llm.tokenize(spec["text"].encode("utf-8"), add_bos=False, special=True)
    warm_up(engine, prompts[min(prompts)])
    print(json.dumps({"ready": True, "llama_cpp_python": llama_cpp.__version__,
                      "tokenizer_agrees": own_ids == spec["ids"]}), flush=True)
    for _ in sys.stdin:
        print(json.dumps(measure(engine, prompts, n_decode)), flush=True)
    return 0


class LlamaClient:
    """The llama.cpp worker seen from the main process; `error` is set (and runs return None) if it is unusable."""

    name = "llama.cpp"

    def __init__(self, python: str, gguf: Path, ids_file: Path, n_decode: int) -> None:
        self.error: str | None = None
        self.version: str | None = None
        self.tokenizer_agrees: bool | None = None
        self.proc: subprocess.Popen | None = None
        if not Path(python).is_file():
            self.error = f"no Python at {python} (set --llama-python or NOMOAT_LLAMA_PYTHON)"
            return
        cmd = [python, __file__, "--engine", "llama", "--gguf", str(gguf), "--ids-file", str(ids_file),
               "--n-decode", str(n_decode)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        hello = self._read()
        if hello is not None:
            self.version = hello.get("llama_cpp_python")
            self.tokenizer_agrees = hello.get("tokenizer_agrees")

    def _read(self) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            msg = json.loads(line) if line else {"error": "the worker exited"}
        except ValueError:
            msg = {"error": f"unexpected output {line[:200]!r}"}
        if "error" in msg:
            self.proc.kill()
            stderr = self.proc.communicate()[1].strip()
            self.error = msg["error"] + (f" ({stderr[-300:]})" if stderr else "")
            return None
        return msg

    def run(self) -> dict | None:
        if self.error:
            return None
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------------------------- conversion


def convert_once(gguf: Path, out: Path) -> dict:
    """`nomoat convert GGUF OUT` in a subprocess: wall time and the child's own peak RSS (os.wait4)."""
    cmd = [sys.executable, "-m", "nomoat.cli", "convert", str(gguf), str(out)]
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"nomoat convert failed ({proc.returncode}):\n{log.read().decode()[-2000:]}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}  # Linux: ru_maxrss in KiB


# ------------------------------------------------------------------------------------------------ profiling


MATMUL_OPS = ("MatMulNBits", "MatMul", "Gemm")


@contextlib.contextmanager
def profiled_sessions(prefix: Path):
    """Sessions created inside get SessionOptions with profiling on. The backend builds its session itself
    (graph patches, external-data settings), so this profiles exactly the graph the benchmark ran."""
    import onnxruntime as ort

    original = ort.SessionOptions

    def options():
        so = original()
        so.enable_profiling = True
        so.profile_file_prefix = str(prefix)
        return so

    ort.SessionOptions = options
    try:
        yield
    finally:
        ort.SessionOptions = original


def node_stem(node: str) -> str:
    """'model.layers.7.mlp.down_proj/offset_212' -> 'mlp.down_proj/offset' (summed over layers); a matmul outside
    the layers is the LM head."""
    stem = re.sub(r"_\d+", "", node)
    layer = re.match(r"model\.layers\.\d+\.", stem)
    return stem[layer.end():] if layer else f"lm_head: {stem}"


def profile_decode(pkg: Path, config, prompt: list[int], accuracy_level: int, tmp: Path) -> dict:
    """Kernel time by op type (and matmul time by weight) over PROFILE_STEPS decode steps, on a separate session
    with profiling on; the first step after the prompt is left out."""
    from nomoat.backends.ort_native import OrtNativeBackend

    with profiled_sessions(Path(f"{tmp}_ort_profile_level{accuracy_level}")):
        backend = OrtNativeBackend(pkg, config, threads=THREADS, accuracy_level=accuracy_level)
    state = backend.new_state()
    token = int(np.argmax(backend.run(state, prompt)))
    walls = []
    for _ in range(PROFILE_STEPS + 1):  # + the warm-up step
        t = time.perf_counter()
        token = int(np.argmax(backend.run(state, [token])))
        walls.append(time.perf_counter() - t)
    events = json.loads(Path(backend.session.end_profiling()).read_text())

    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    runs = runs[-PROFILE_STEPS:]  # not the prefill, not the warm-up step
    start, end = runs[0]["ts"], runs[-1]["ts"] + runs[-1]["dur"]
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
               and start <= e["ts"] <= end]
    by_op: dict[str, dict] = {}
    by_weight: dict[str, float] = {}
    for e in kernels:
        op = e["args"]["op_name"]
        d = by_op.setdefault(op, {"us": 0.0, "nodes": 0})
        d["us"] += e["dur"]
        d["nodes"] += 1
        if op in MATMUL_OPS:
            stem = node_stem(e["name"].removesuffix("_kernel_time"))
            by_weight[stem] = by_weight.get(stem, 0.0) + e["dur"]
    total_us = sum(d["us"] for d in by_op.values())
    steps = PROFILE_STEPS
    return {
        "accuracy_level": accuracy_level,
        "steps": steps,
        "wall_ms_per_step": 1000 * statistics.mean(walls[1:]),
        "model_run_ms_per_step": sum(r["dur"] for r in runs) / steps / 1000,
        "kernel_ms_per_step": total_us / steps / 1000,
        "ops": sorted(({"op_type": op, "ms_per_step": d["us"] / steps / 1000, "share": d["us"] / total_us,
                        "nodes_per_step": d["nodes"] // steps} for op, d in by_op.items()),
                      key=lambda r: -r["ms_per_step"]),
        "matmul_ms_per_step_by_weight": {k: v / steps / 1000
                                         for k, v in sorted(by_weight.items(), key=lambda kv: -kv[1])},
    }


# -------------------------------------------------------------------------------------------------- report


def median_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{suffix}"


def agreement(a: list[int], b: list[int] | None) -> str:
    if b is None:
        return "n/a"
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
    return f"{n}/{len(a)}"


def markdown(res: dict) -> str:
    c = res["conversion"]
    lines = [
        f"Machine: {res['machine']['cpu']}, {res['machine']['cpus']} CPUs; threads = {THREADS}; "
        f"repeats = {res['repeats']} (medians); onnxruntime {res['versions']['onnxruntime']}, "
        f"llama-cpp-python {res['versions']['llama_cpp_python'] or 'n/a'}; llama.cpp's tokenizer gives the same "
        f"ids: {({True: 'yes', False: 'NO'}).get(res['llama_tokenizer_agrees'], 'n/a')}. CPU time not charged to the "
        f"measuring process (other processes, kernel threads): at most {fmt(res['max_foreign_cpus'], '.2f')} CPUs "
        f"during a kept run; {len(res['discarded_runs'])} disturbed run(s) (> {res['max_foreign_cpus_per_run']} "
        "CPUs) redone.",
        "",
        "| conversion | wall s | peak RSS MiB | GGUF MiB | package MiB | package / GGUF |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `nomoat convert` | {c['wall_s']:.2f} | {c['peak_rss_mib']:.0f} | {c['gguf_bytes'] / 2**20:.1f} | "
        f"{c['package_bytes'] / 2**20:.1f} | {c['package_bytes'] / c['gguf_bytes']:.2f}x |",
        "",
        f"Package (format {c['package_format']}) files over 0.1 MiB: "
        + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in c["files"].items() if size > 2**20 / 10)
        + f". onnxruntime loads {res['graph']}.",
        "",
        f"| engine | prefill {PROMPT_LENGTHS[0]} tok/s | prefill {PROMPT_LENGTHS[1]} tok/s | decode tok/s | "
        "decode ms/step p50 | decode / llama.cpp | greedy = llama.cpp |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in res["engines"].items():
        m = e["median"]
        lines.append(
            f"| {name} | {fmt(m['prefill_tok_s'][str(PROMPT_LENGTHS[0])])} | "
            f"{fmt(m['prefill_tok_s'][str(PROMPT_LENGTHS[1])])} | {fmt(m['decode_tok_s'])} | "
            f"{fmt(m['decode_step_ms_p50'], '.2f')} | {fmt(e.get('decode_ratio_vs_llama'), '.0%')} | "
            f"{e.get('greedy_agreement', '-')} |")
    if res["llama_note"]:
        lines += ["", f"llama.cpp: {res['llama_note']}"]
    for p in res["profile"]:
        unprofiled = res["engines"][f"onnxruntime accuracy_level {p['accuracy_level']}"]["median"]
        lines += [
            "",
            f"onnxruntime accuracy_level {p['accuracy_level']}, {p['steps']} decode steps profiled: "
            f"{p['wall_ms_per_step']:.2f} ms/step wall (unprofiled p50 above: "
            f"{fmt(unprofiled['decode_step_ms_p50'], '.2f')}), {p['model_run_ms_per_step']:.2f} ms in session.run, "
            f"{p['kernel_ms_per_step']:.2f} ms in kernels.",
            "",
            "| op type | ms/step | share of kernel time | nodes/step |",
            "|---|---:|---:|---:|",
        ]
        top = p["ops"][:8]
        lines += [f"| {o['op_type']} | {o['ms_per_step']:.3f} | {o['share']:.1%} | {o['nodes_per_step']} |"
                  for o in top]
        rest = p["ops"][len(top):]
        if rest:
            lines.append(f"| (other {len(rest)} op types) | {sum(o['ms_per_step'] for o in rest):.3f} | "
                         f"{sum(o['share'] for o in rest):.1%} | {sum(o['nodes_per_step'] for o in rest)} |")
        split = ", ".join(f"{k} {v:.3f}" for k, v in p["matmul_ms_per_step_by_weight"].items())
        lines += ["", f"Matmul ms/step by weight ({'/'.join(MATMUL_OPS)} nodes, summed over layers): {split}."]
    return "\n".join(lines)


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------------- main


def find_gguf(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    local = REPO / ".cache" / "gguf" / DEFAULT_GGUF_NAME
    if local.is_file():
        return local
    from nomoat.catalog import fetch_default_gguf

    return fetch_default_gguf()


def bench(args: argparse.Namespace) -> dict:
    import onnxruntime as ort

    from nomoat.backends.ort_native import OrtNativeBackend
    from nomoat.config import ModelConfig
    from nomoat.package import MANIFEST, ONNX_FILE
    from nomoat.tokenizer import HFTokenizer

    gguf = find_gguf(args.gguf)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="nomoat-bench-")
    tmp = Path(tmp_ctx.name)
    pkg = Path(args.package_dir) if args.package_dir else tmp / "package"

    print(f"converting {gguf} x{args.repeats} ...", file=sys.stderr)
    convs = []
    for _ in range(args.repeats):
        busy = wait_until_quiet(args.quiet, args.max_wait)
        convs.append({**convert_once(gguf, pkg), "cpu_busy_before": busy})
    conversion = {
        "wall_s": statistics.median(c["wall_s"] for c in convs),
        "peak_rss_mib": max(c["peak_rss_mib"] for c in convs),
        "runs": convs,
        "gguf_bytes": gguf.stat().st_size,
        "package_bytes": sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file()),
        "package_format": json.loads((pkg / MANIFEST).read_text()).get("format"),
        "files": {p.relative_to(pkg).as_posix(): p.stat().st_size
                  for p in sorted(pkg.rglob("*"), key=lambda p: -p.stat().st_size) if p.is_file()},
    }

    tokenizer = HFTokenizer(pkg)
    text_ids: list[int] = []
    section = 0
    while len(text_ids) < max(PROMPT_LENGTHS):
        section += 1
        text = " ".join(f"Section {i}. {TEXT}" for i in range(1, section + 1))
        text_ids = tokenizer.encode(text)
    prompts = {n: text_ids[:n] for n in PROMPT_LENGTHS}
    ids_file = tmp / "prompt_ids.json"
    ids_file.write_text(json.dumps({"text": text, "ids": text_ids, "prompts": {str(n): p for n, p in prompts.items()}}))

    config = ModelConfig.from_dir(pkg)
    ort_engines = {}
    for level in (0, 4):
        backend = OrtNativeBackend(pkg, config, threads=THREADS, accuracy_level=level)
        engine = OrtEngine(backend, f"onnxruntime accuracy_level {level}")
        warm_up(engine, prompts[min(prompts)])
        ort_engines[engine.name] = engine
    llama = LlamaClient(args.llama_python, gguf, ids_file, args.n_decode)

    names = [*ort_engines, llama.name]
    runs: dict[str, list] = {n: [] for n in names}
    loads: list[float] = []
    discarded: list[dict] = []
    try:
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                for attempt in range(1 + args.retries):  # a run disturbed by other processes is done again
                    busy = wait_until_quiet(args.quiet, args.max_wait)
                    run = llama.run() if name == llama.name else measure(ort_engines[name], prompts, args.n_decode)
                    foreign = run and run.get("foreign_cpus")
                    print(f"repeat {r + 1}/{args.repeats}: {name}: CPU busy before {fmt(busy, '.0%')}, "
                          f"foreign CPUs during {fmt(foreign, '.2f')}", file=sys.stderr)
                    if foreign is None or foreign <= args.max_foreign or attempt == args.retries:
                        break
                    discarded.append({"repeat": r, "engine": name, "foreign_cpus": foreign,
                                      "decode_tok_s": run["decode_tok_s"]})
                runs[name].append(run and {**run, "cpu_busy_before": busy})
            loads.append(os.getloadavg()[0])
    finally:
        llama.close()

    engines: dict[str, dict] = {}
    llama_runs = runs[llama.name]
    for name in names:
        rs = runs[name]
        e: dict = {"median": {
            "prefill_tok_s": {str(n): median_or_none([x and x["prefill_tok_s"][str(n)] for x in rs])
                              for n in PROMPT_LENGTHS},
            "decode_tok_s": median_or_none([x and x["decode_tok_s"] for x in rs]),
            "decode_step_ms_p50": median_or_none([x and x["decode_step_ms_p50"] for x in rs]),
        }, "runs": [x and {k: v for k, v in x.items() if k != "greedy_tokens"} for x in rs]}
        if name != llama.name:
            e["decode_ratio_vs_llama"] = median_or_none(
                [x["decode_tok_s"] / y["decode_tok_s"] for x, y in zip(rs, llama_runs, strict=True) if y])
            e["decode_ratios_vs_llama"] = [y and x["decode_tok_s"] / y["decode_tok_s"]
                                           for x, y in zip(rs, llama_runs, strict=True)]
            e["greedy_agreement"] = agreement(rs[0]["greedy_tokens"], llama_runs[0] and llama_runs[0]["greedy_tokens"])
        engines[name] = e
    greedy = {name: runs[name][0] and runs[name][0]["greedy_tokens"] for name in names}

    # Profiles: `repeats` per level, interleaved; the least disturbed (fastest session.run) is kept.
    tries: dict[int, list[dict]] = {0: [], 4: []}
    for r in range(args.repeats):
        for level in tries:
            wait_until_quiet(args.quiet, args.max_wait)
            print(f"profile {r + 1}/{args.repeats}: accuracy_level {level}", file=sys.stderr)
            tries[level].append(profile_decode(pkg, config, prompts[min(prompts)], level, tmp / f"p{r}"))
    profile = [{**min(ps, key=lambda p: p["model_run_ms_per_step"]),
                "model_run_ms_per_step_all_tries": [p["model_run_ms_per_step"] for p in ps]} for ps in tries.values()]
    tmp_ctx.cleanup()

    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {"onnxruntime": ort.__version__, "numpy": np.__version__, "llama_cpp_python": llama.version},
        "gguf": gguf.name,
        "graph": ONNX_FILE,
        "prompt_text_tokens": len(text_ids),
        "llama_tokenizer_agrees": llama.tokenizer_agrees,
        "repeats": args.repeats,
        "threads": THREADS,
        "prompt_tokens": list(PROMPT_LENGTHS),
        "decode_tokens": args.n_decode,
        "quiet_threshold": args.quiet,
        "max_foreign_cpus_per_run": args.max_foreign,
        "discarded_runs": discarded,
        "load_average_after_each_repeat": loads,
        "conversion": conversion,
        "engines": engines,
        "max_foreign_cpus": max((x["foreign_cpus"] for rs in runs.values() for x in rs if x and "foreign_cpus" in x),
                                default=None),
        "llama_note": None if llama.error is None else f"unavailable: {llama.error}",
        "target": "onnxruntime decode >= 70% of llama.cpp decode",
        "greedy_tokens_first_repeat": greedy,
        "profile": profile,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gguf", help=f"the GGUF (default: .cache/gguf/{DEFAULT_GGUF_NAME}, else the default download)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    p.add_argument("--n-decode", type=int, default=128, help="greedy decode steps per run (default 128)")
    default_llama = str(Path(__file__).resolve().parent.parent / ".cache" / "llama-venv" / "bin" / "python")
    p.add_argument("--llama-python", default=os.environ.get("NOMOAT_LLAMA_PYTHON", default_llama),
                   help="Python of a venv with llama-cpp-python (default: $NOMOAT_LLAMA_PYTHON or .cache/llama-venv)")
    p.add_argument("--quiet", type=float, default=0.15,
                   help="before each measurement, wait until the CPUs are at most this busy (default 0.15)")
    p.add_argument("--max-wait", type=float, default=300, help="longest wait for --quiet, seconds (default 300)")
    p.add_argument("--max-foreign", type=float, default=0.25,
                   help="redo a run during which other processes kept more CPUs than this busy (default 0.25)")
    p.add_argument("--retries", type=int, default=3, help="most redos of one run (default 3)")
    p.add_argument("--package-dir", help="where to write the converted package (default: a temporary folder)")
    p.add_argument("--out", default=str(HERE / "results_cpython.json"), help="results JSON")
    p.add_argument("--engine", choices=["llama"], help=argparse.SUPPRESS)  # worker mode, used by this script
    p.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.engine == "llama":
        return llama_worker(args.gguf, args.ids_file, args.n_decode)
    res = bench(args)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
