"""The WGSL sampling kernels (kernels/*.wgsl) run natively through wgpu-py: time per sampling call.

    .venv/bin/pip install wgpu                          # once (wgpu-native ships in the wheel)
    .venv/bin/python bench/bench_kernels.py             # vocab 49152; --vocab N --calls N --json PATH

The same WGSL sources the browser runs (kernels/common.wgsl prepended to each kernel), dispatched in
the same order as web/src/gpu_sampler.mjs: prep, reduce, then 7 x (select_hist, select_scan) per
query, one submit, a 4-byte readback of the token. Every configuration is first checked against
kernels/reference.py (the JS Sampler's algorithm) on random logits; then each call is timed from the
upload of the uniforms to the token in hand (`time.perf_counter`, median of --calls). "Effective
bandwidth" is the bytes the kernels must touch (the logits read once, the processed logits written
once and read once per radix pass) over that time.

Without a GPU, wgpu finds Mesa's lavapipe (Debian: apt install mesa-vulkan-drivers), a Vulkan
driver on the CPU: its numbers are labelled CPU-emulated and say nothing about a GPU. With no adapter
at all the script prints "no adapter" and exits with status 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
STAGES = ("sample_prep", "sample_reduce", "select_hist", "select_scan")


def load_reference():
    spec = importlib.util.spec_from_file_location("kernels_reference", KERNELS / "reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref = load_reference()


def queries(vocab: int, temperature: float, top_k: int, top_p: float, min_p: float, u: float):
    """The selection queries for these options, as gpu_sampler.mjs builds them: [(count, frac, min_p?)]."""
    if temperature == 0:
        return []
    q = []
    if 0 < top_k < vocab:
        q.append((top_k, 0.0, 0))
    if top_p < 1:
        q.append((0, top_p, 0))
    q.append((0, u, 1 if min_p > 0 else 0))
    return q


def pack_params(vocab, flags, qs, penalty, temperature, min_p) -> bytes:
    groups = (vocab + ref.ELEMS - 1) // ref.ELEMS
    n, qs = len(qs), list(qs) + [(0, 0.0, 0)] * (4 - len(qs))
    return struct.pack("<4I4f12I", vocab, groups, flags, n,
                       penalty, 1 / temperature if temperature else 0.0, min_p, 0.0,
                       *[q[0] for q in qs], *[fraction(q[1]) for q in qs], *[q[2] for q in qs])


def fraction(f: float) -> int:
    """A fraction in [0, 1) in units of 2^-32, rounded down (exact for the JS Sampler's u = k / 2^32)."""
    return min(2**32 - 1, int(f * 2**32))


class WgpuSampler:
    """The GPU sampler on one wgpu device: buffers for one vocabulary size."""

    def __init__(self, device, vocab: int) -> None:
        import wgpu

        self.wgpu, self.device, self.vocab = wgpu, device, vocab
        self.groups = (vocab + ref.ELEMS - 1) // ref.ELEMS
        words = (vocab + 31) // 32
        S, U = wgpu.BufferUsage.STORAGE, wgpu.BufferUsage
        mk = lambda size, usage=S | U.COPY_DST | U.COPY_SRC: device.create_buffer(size=max(16, size), usage=usage)  # noqa: E731
        self.params = mk(80, U.UNIFORM | U.COPY_DST)
        self.logits = mk(4 * vocab)
        self.seen, self.allowed = mk(4 * words), mk(4 * words)
        self.work, self.partials = mk(4 * vocab), mk(8 * self.groups)
        self.hist, self.state = mk(4 * 3 * ref.BINS * self.groups), mk(80)
        self.readback = device.create_buffer(size=4, usage=U.MAP_READ | U.COPY_DST)
        common = (KERNELS / "common.wgsl").read_text()
        entries = [{"binding": 0, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": "uniform"}}]
        for b in range(1, 8):
            kind = "read-only-storage" if b in (1, 2, 3) else "storage"
            entries.append({"binding": b, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}})
        self.layout = device.create_bind_group_layout(entries=entries)
        playout = device.create_pipeline_layout(bind_group_layouts=[self.layout])
        self.pipelines = {}
        for name in STAGES:
            module = device.create_shader_module(code=common + (KERNELS / f"{name}.wgsl").read_text())
            self.pipelines[name] = device.create_compute_pipeline(
                layout=playout, compute={"module": module, "entry_point": "main"})
        bufs = [self.params, self.logits, self.seen, self.allowed, self.work, self.partials, self.hist, self.state]
        self.bind = device.create_bind_group(layout=self.layout, entries=[
            {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}} for i, b in enumerate(bufs)])

    def set_logits(self, logits: np.ndarray) -> None:
        self.device.queue.write_buffer(self.logits, 0, np.ascontiguousarray(logits, np.float32).tobytes())

    def dispatch(self, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, u=0.5,
                 seen=None, allowed=None, stop_after: int | None = None, repeat: int = 1):
        """Upload the uniforms (and masks), encode every stage (`repeat` times: a GPU-bound batch), submit
        once. Returns the dispatch count of one call."""
        q = self.device.queue
        flags = (ref_flags := 0)
        if seen is not None and repetition_penalty != 1:
            q.write_buffer(self.seen, 0, seen.tobytes())
            ref_flags |= 1
        if allowed is not None:
            q.write_buffer(self.allowed, 0, allowed.tobytes())
            ref_flags |= 2
        qs = queries(self.vocab, temperature, top_k, top_p, min_p, u)
        flags = ref_flags | (4 if not qs else 0)
        q.write_buffer(self.params, 0, pack_params(self.vocab, flags, qs, repetition_penalty, temperature, min_p))
        steps = [("sample_prep", self.groups), ("sample_reduce", 1)]
        steps += [(s, self.groups if s == "select_hist" else 1) for _ in range(len(qs) * ref.PASSES)
                  for s in ("select_hist", "select_scan")]
        enc = self.device.create_command_encoder()
        for _ in range(repeat):
            cp = enc.begin_compute_pass()
            cp.set_bind_group(0, self.bind)
            for name, n in steps[:stop_after]:
                cp.set_pipeline(self.pipelines[name])
                cp.dispatch_workgroups(n, 1, 1)
            cp.end()
        enc.copy_buffer_to_buffer(self.state, 44, self.readback, 0, 4)
        q.submit([enc.finish()])
        return len(steps)

    def sample(self, **kw) -> int:
        self.dispatch(**kw)
        self.readback.map_sync(self.wgpu.MapMode.READ)
        token = int(np.frombuffer(self.readback.read_mapped(), np.uint32)[0])
        self.readback.unmap()
        return token

    def read(self, buf, dtype) -> np.ndarray:
        return np.frombuffer(self.device.queue.read_buffer(buf), dtype)


def adapter_or_none():
    try:
        import wgpu
    except ImportError:
        return None, "wgpu is not installed (.venv/bin/pip install wgpu)"
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as e:  # noqa: BLE001 — wgpu-native raises plain RuntimeError variants
        return None, f"no adapter ({e})"
    if adapter is None:
        return None, "no adapter"
    return adapter, None


CONFIGS = {  # name -> sampling options
    "greedy": {"temperature": 0},
    "temperature 0.8 (full vocabulary)": {"temperature": 0.8},
    "top-k 40, T 0.7": {"temperature": 0.7, "top_k": 40},
    "top-k 50, top-p 0.9, T 0.7": {"temperature": 0.7, "top_k": 50, "top_p": 0.9},
    "top-p 0.95, min-p 0.05, penalty 1.1": {"temperature": 1.0, "top_p": 0.95, "min_p": 0.05,
                                            "repetition_penalty": 1.1},
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--batch", type=int, default=100, help="calls encoded in one submit for the GPU-bound time")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    adapter, why = adapter_or_none()
    if adapter is None:
        print(why)
        return 0
    info = adapter.info
    cpu = info.get("adapter_type") == "CPU" or "llvmpipe" in info.get("device", "")
    label = f"{info.get('device')} ({info.get('backend_type')})" + (" — CPU-emulated, not a GPU" if cpu else "")
    print(f"adapter: {label}")
    device = adapter.request_device_sync()
    s = WgpuSampler(device, args.vocab)
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(args.vocab) * 3).astype(np.float32)
    s.set_logits(logits)
    seen_ids = rng.choice(args.vocab, 64, replace=False)
    seen = ref.bitmask(seen_ids, args.vocab)
    rows = []
    for name, opts in CONFIGS.items():
        for u in (0.0, 0.37, 0.999):  # check first: the same token as the JS Sampler's algorithm
            want = ref.js_sample(logits, seen_ids, u=u, **opts)
            got = s.sample(u=u, seen=seen, **opts)
            if got != want:
                print(f"MISMATCH {name} u={u}: gpu {got}, reference {want}")
                return 1
        times = []
        for i in range(args.calls):
            t = time.perf_counter()
            dispatches = s.dispatch(u=(i * 0.618) % 1, seen=seen, **opts)
            s.readback.map_sync(s.wgpu.MapMode.READ)
            s.readback.unmap()
            times.append(time.perf_counter() - t)
        ms = statistics.median(times) * 1000
        batched = []  # the same call encoded args.batch times in one submit: GPU time, no round trip
        for _ in range(5):
            t = time.perf_counter()
            s.dispatch(u=0.37, seen=seen, repeat=args.batch, **opts)
            s.readback.map_sync(s.wgpu.MapMode.READ)
            s.readback.unmap()
            batched.append((time.perf_counter() - t) / args.batch)
        gpu_ms = statistics.median(batched) * 1000
        n_q = len(queries(args.vocab, opts["temperature"], opts.get("top_k", 0), opts.get("top_p", 1.0), 0, 0))
        touched = 4 * args.vocab * (2 + n_q * ref.PASSES)
        rows.append({"config": name, "ms": ms, "dispatches": dispatches, "bytes": touched,
                     "gb_s": touched / (ms / 1000) / 1e9, "batched_ms": gpu_ms,
                     "batched_gb_s": touched / (gpu_ms / 1000) / 1e9})
    print(f"\nvocab {args.vocab}, median of {args.calls} calls, one submit + one 4-byte readback per call;"
          f" batched: {args.batch} calls in one submit, per call\n")
    print("| configuration | dispatches | ms per call | effective GB/s | ms per call, batched | GB/s, batched |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['dispatches']} | {r['ms']:.3f} | {r['gb_s']:.2f}"
              f" | {r['batched_ms']:.4f} | {r['batched_gb_s']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"adapter": label, "cpu_emulated": cpu, "vocab": args.vocab,
                                         "calls": args.calls, "batch": args.batch, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
