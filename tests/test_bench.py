"""`nomoat bench`'s results code on a recorded sample: schema, medians, targets, table, chart; the
transformers.js f32 graph it builds; and the command's --help. No browser and no timing here."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("peers_report")

# Two repeats recorded from bench_peers.py on this machine (wasm, 2 threads), trimmed.
WLLAMA = [
    {"load_s": {"cold": 1.10, "warm": 0.63}, "ttft_ms": {"32": 1887.0, "512": 13481.0}, "prefill_tps": 38.0,
     "decode_tps": {"128": 23.3, "1024": 20.1, "4096": 14.0}, "peak_mb": 1276.2},
    {"load_s": {"cold": 1.30, "warm": 0.70}, "ttft_ms": {"32": 1500.0, "512": 13000.0}, "prefill_tps": 39.4,
     "decode_tps": {"128": 22.1, "1024": 19.5, "4096": None}, "peak_mb": 1300.0},
]
TJS = [{"load_s": {"cold": 5.05, "warm": 6.44}, "ttft_ms": {"32": 567.0, "512": 7694.0}, "prefill_tps": 66.5,
        "decode_tps": {"128": 29.9, "1024": 25.0, "4096": 18.0}, "peak_mb": 2576.7}]
NOMOAT = [{"load_s": {"cold": 5.9, "warm": 4.4}, "ttft_ms": {"32": 384.0, "512": 3000.0}, "prefill_tps": 170.0,
           "decode_tps": {"128": 34.1, "1024": 30.0, "4096": 20.0}, "peak_mb": 2533.0}]


def sample_results() -> dict:
    runs = [
        report.aggregate("nomoat", "web/dist wasm graph", "wasm", 2, NOMOAT, []),
        report.aggregate("transformers.js", "f32 graph", "wasm", 2, TJS, []),
        report.aggregate("wllama", "2.3.7", "wasm", 2, WLLAMA, ["decode at 4096: one repeat failed"]),
        report.empty_run("nomoat", "WebGPU graph", "webgpu", None, ["no real GPU adapter here"]),
    ]
    results = {"machine": {"cpu": "test", "summary": "test machine"}, "runs": runs}
    results["targets"] = report.targets(results)
    return results


def test_aggregate_takes_medians_and_skips_missing_values():
    row = report.aggregate("wllama", "2.3.7", "wasm", 2, WLLAMA, ["n"])
    assert row["repeats"] == 2
    assert row["load_s"] == {"cold": pytest.approx(1.2), "warm": pytest.approx(0.665)}
    assert row["decode_tps"] == {"128": pytest.approx(22.7), "1024": pytest.approx(19.8), "4096": 14.0}
    assert row["peak_mb"] == pytest.approx(1288.1)
    empty = report.aggregate("x", "y", "wasm", 2, [], ["it failed: reason"])
    assert empty["repeats"] == 0 and empty["decode_tps"] == {"128": None, "1024": None, "4096": None}


def test_schema_accepts_the_sample_and_refuses_unexplained_nulls_and_wrong_keys():
    results = sample_results()
    report.check_schema(results)
    json.loads(json.dumps(results))  # plain JSON
    silent = copy.deepcopy(results)
    silent["runs"][3]["notes"] = []
    with pytest.raises(ValueError, match="null .* but no note"):
        report.check_schema(silent)
    bad = copy.deepcopy(results)
    bad["runs"][0]["decode_tps"] = {"128": 1.0}
    with pytest.raises(ValueError, match="decode_tps"):
        report.check_schema(bad)


def test_targets_are_ratios_of_this_run():
    t = {x["target"].split(" / ")[-1]: x for x in sample_results()["targets"]}
    assert t["transformers.js (fastest configuration)"]["value"] == pytest.approx(34.1 / 29.9)
    assert t["transformers.js (fastest configuration)"]["met"] is False  # goal 1.5
    assert t["wllama"]["value"] == pytest.approx(34.1 / 22.7) and t["wllama"]["met"] is True
    assert t["decode at 128"]["value"] == pytest.approx(20.0 / 34.1) and t["decode at 128"]["met"] is False
    assert t["transformers.js's"]["value"] == pytest.approx(3000 / 7694) and t["transformers.js's"]["met"] is True


def test_markdown_table_has_every_row_the_missed_targets_and_the_notes():
    md = report.markdown(sample_results())
    assert md.count("\n| nomoat |") == 2 and "| wllama | 2.3.7 | wasm | 2 | 1.2 / 0.7 |" in md
    assert "22.7 / 19.8 / 14.0" in md and "n/a / n/a / n/a" in md
    assert md.count("**no**") == 2
    assert "- nomoat (webgpu): no real GPU adapter here" in md


def test_chart_is_svg_with_one_line_per_engine_that_decoded():
    results = sample_results()
    results["runs"][2]["decode_tps"]["1024"] = None  # a gap: wllama's line breaks into two points
    svg = ET.fromstring(report.chart_svg(results))
    ns = "{http://www.w3.org/2000/svg}"
    lines = svg.findall(f"{ns}polyline")
    assert len(lines) == 2  # nomoat, transformers.js (wllama: lone points; the webgpu row has no numbers)
    assert len(svg.findall(f"{ns}circle")) == 3 + 3 + 2
    labels = [t.text for t in svg.findall(f"{ns}text")]
    assert "wllama (2.3.7, wasm)" in labels and "4096" in labels


def test_committed_results_follow_the_schema():
    path = BENCH / "results.json"
    if not path.is_file():
        pytest.skip("bench/results.json not written yet (nomoat bench)")
    results = json.loads(path.read_text())
    report.check_schema(results)
    engines = {(r["engine"], r["device"]) for r in results["runs"]}
    assert {("nomoat", "wasm"), ("transformers.js", "wasm"), ("wllama", "wasm"), ("llama.cpp", "cpu"),
            ("onnxruntime", "cpu"), ("nomoat", "webgpu")} <= engines


def test_f32_graph_for_transformers_js_equals_the_q4_graph(tiny_gguf, tiny_dir, tmp_path):
    import onnxruntime as ort

    bench_peers = _load("bench_peers")
    out = bench_peers.f32_package(tiny_dir, tiny_gguf, tmp_path / "tiny")
    assert (out / "onnx" / "model.onnx_data").stat().st_size > (tiny_dir / "onnx" / "model_q4.onnx_data").stat().st_size
    cfg = json.loads((out / "config.json").read_text())
    ids = np.array([[1, 5, 9, 14, 3]])

    def last_logits(path: Path) -> np.ndarray:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(ids.shape[1])[None]}
        for i in s.get_inputs():
            if i.name.startswith("past_key_values"):
                feeds[i.name] = np.zeros((1, cfg["num_key_value_heads"], 0, hd), np.float32)
        return s.run(["logits"], feeds)[0][0, -1]

    np.testing.assert_allclose(last_logits(out / "onnx" / "model.onnx"),
                               last_logits(tiny_dir / "onnx" / "model_q4.onnx"), atol=1e-3)


def test_bench_help_lists_its_options():
    r = subprocess.run([sys.executable, "-m", "nomoat", "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--quick" in r.stdout and "results.json" in r.stdout
