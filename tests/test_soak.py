"""A short soak (bench/bench_soak.py's plan and runner, on the tiny model): many sessions created,
prompted, cloned, aborted, destroyed and dropped in one page; afterwards llm.resources() counts
nothing held — no session, KV state, GPU sampler or Python handle left behind. The long run with
its memory curve is the benchmark (bench/README.md); this checks the counts, not the time."""

# ruff: noqa: F811
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from test_web import blank_page, browser_type_launch_args, gpu_browser, models, server  # noqa: F401

BENCH = Path(__file__).resolve().parents[1] / "bench"
KEYS = ("sessions", "running", "states", "samplers", "handles")


def _soak_module():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH / "bench_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


soak = _soak_module()


def test_plan_is_seeded_and_ends_holding_nothing():
    a, b = soak.plan(3, 120, 8), soak.plan(3, 120, 8)
    assert a == b and a != soak.plan(4, 120, 8)
    alive = set()
    for o in a:
        if o["op"] == "create":
            alive.add(o["s"])
        elif o["op"] == "clone":
            assert o["s"] in alive
            alive.add(o["to"])
        elif o["op"] in ("destroy", "drop"):
            alive.remove(o["s"])
        else:
            assert o["s"] in alive
    assert not alive
    assert {o["op"] for o in a} == {"create", "prompt", "clone", "abort", "destroy", "drop"}


@pytest.mark.parametrize("device,ops", [("wasm", 90), ("webgpu", 30)])
def test_soak_frees_everything(browser, gpu_browser, server, device, ops):
    page = blank_page(gpu_browser if device == "webgpu" else browser, server)
    try:
        result = soak.soak(page, soak.plan(11, ops, 8), device=device, model=server + "/models/tiny/",
                           max_tokens=4, every=30)
    finally:
        page.close()
    assert result["errors"] == []
    peak = max(p["sessions"] for p in result["checkpoints"])
    assert peak >= 2, result["checkpoints"]  # sessions were really held at once
    assert any(p["states"] for p in result["checkpoints"])  # and the counts count something
    assert {k: result["final"][k] for k in KEYS} == dict.fromkeys(KEYS, 0), result
