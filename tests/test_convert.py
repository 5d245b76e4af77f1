"""The converter: package layout, exact weight mapping, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import nomoat
from nomoat.catalog import convert_default
from nomoat.convert import convert
from nomoat.convert.gguf_file import read_gguf
from nomoat.convert.quant import to_qlinear
from nomoat.convert.tiny import make_tiny_gguf
from nomoat.errors import (
    ContextOverflowError,
    InvalidModelError,
    InvalidOptionError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from nomoat.package import DATA_FILE, ONNX_FILE, OPTIMUM_FILE, check_package


def test_package_layout(default_model_dir):
    for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", ONNX_FILE,
                 OPTIMUM_FILE, DATA_FILE]:
        assert (default_model_dir / name).is_file(), name
    cfg = json.loads((default_model_dir / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (
        30, 576, 9, 3)
    assert cfg["vocab_size"] == 49152 and cfg["rope_theta"] == 100000.0 and cfg["tie_word_embeddings"]
    tc = json.loads((default_model_dir / "tokenizer_config.json").read_text())
    assert tc["bos_token"] == "<|im_start|>" and tc["eos_token"] == "<|im_end|>"
    assert "<|im_start|>" in tc["chat_template"]
    manifest = check_package(default_model_dir, verify_sha256=True)
    assert set(manifest["files"]) >= {ONNX_FILE, OPTIMUM_FILE, DATA_FILE, "tokenizer.json"}
    # the two graphs share one weights file: each graph file is small
    assert (default_model_dir / ONNX_FILE).stat().st_size < 1_000_000
    assert (default_model_dir / OPTIMUM_FILE).stat().st_size < 1_000_000


def test_graph_io_follows_optimum(default_model_dir):
    import onnx
    import onnxruntime as ort

    s = ort.InferenceSession(str(default_model_dir / OPTIMUM_FILE), providers=["CPUExecutionProvider"])
    ins, outs = [i.name for i in s.get_inputs()], [o.name for o in s.get_outputs()]
    assert ins[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert ins[3:5] == ["past_key_values.0.key", "past_key_values.0.value"] and len(ins) == 3 + 60
    # transformers.js sees exactly Optimum's inputs; nomoat's own graph adds logits_to_keep
    nomoat_graph = ort.InferenceSession(str(default_model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in nomoat_graph.get_inputs()] == [*ins, "logits_to_keep"]
    assert outs[0] == "logits" and outs[1:3] == ["present.0.key", "present.0.value"] and len(outs) == 61
    graph = onnx.load(str(default_model_dir / OPTIMUM_FILE), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    assert {"MatMulNBits", "GroupQueryAttention", "RotaryEmbedding", "SkipSimplifiedLayerNormalization"} <= ops


def test_weights_equal_gguf_dequantization_bit_for_bit(default_gguf):
    from gguf import GGUFReader, quants

    m = read_gguf(default_gguf)
    n = 0
    for t in GGUFReader(default_gguf).tensors:
        if t.tensor_type.name in ("Q4_1", "Q8_0"):
            expected = quants.dequantize(t.data, t.tensor_type).reshape(m.tensors[t.name].rows, -1)
            np.testing.assert_array_equal(to_qlinear(m.tensors[t.name]).dequantize(), expected)
            n += expected.size
    assert n == 134_479_872


def test_convert_default_twice_is_a_no_op(default_model_dir):
    onnx = default_model_dir / ONNX_FILE
    before = onnx.stat().st_mtime_ns
    assert convert_default() == default_model_dir
    assert onnx.stat().st_mtime_ns == before


# --- bad input ---------------------------------------------------------------------------------

def test_not_a_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_text("definitely not a model")
    with pytest.raises(InvalidModelError, match="not a GGUF file"):
        convert(p, tmp_path / "out")


def test_truncated_gguf(tiny_gguf, tmp_path):
    p = tmp_path / "cut.gguf"
    p.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size * 2 // 3])
    with pytest.raises(InvalidModelError, match="truncated|readable"):
        convert(p, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_gguf(tmp_path):
    with pytest.raises(ModelNotFoundError, match="No such GGUF file"):
        convert(tmp_path / "nope.gguf", tmp_path / "out")


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "gpt2"}, "Llama family"),
    ({"tokenizer_model": "llama"}, "byte-level BPE"),
    ({"linear_type": "Q2_K", "hidden": 256, "inter": 256}, "Q2_K; nomoat reads the types Q4_0, Q4_1, Q5_0"),
])
def test_unsupported_models_are_refused(tmp_path, kwargs, match):
    p = make_tiny_gguf(tmp_path / "m.gguf", **kwargs)
    with pytest.raises(UnsupportedModelError, match=match):
        convert(p, tmp_path / "out")


def test_failed_conversion_keeps_the_old_package(tiny_gguf, tmp_path):
    out = convert(tiny_gguf, tmp_path / "pkg")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(64))
    with pytest.raises(InvalidModelError):
        convert(bad, out)
    check_package(out, verify_sha256=True)


def test_load_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nomoat convert"):
        nomoat.load(tmp_path / "nothing-here")


def test_load_truncated_model_file(tiny_dir, tmp_path):
    pkg = shutil.copytree(tiny_dir, tmp_path / "pkg")
    onnx = pkg / DATA_FILE
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(InvalidModelError, match="truncated"):
        nomoat.load(pkg)


def test_corrupt_model_file_same_size(tiny_dir, tmp_path):
    pkg = shutil.copytree(tiny_dir, tmp_path / "pkg")
    onnx = pkg / ONNX_FILE
    data = bytearray(onnx.read_bytes())
    data[:64] = os.urandom(64)
    onnx.write_bytes(bytes(data))
    with pytest.raises(InvalidModelError, match="corrupt"):
        check_package(pkg, verify_sha256=True)
    with pytest.raises(InvalidModelError, match="re-run 'nomoat convert'"):
        nomoat.load(pkg)


def test_four_flipped_bytes_in_the_weights_are_refused(tiny_dir, tmp_path):
    """CPython means by integrity what the browser does: sha256, not only sizes."""
    pkg = shutil.copytree(tiny_dir, tmp_path / "pkg")
    data = bytearray((pkg / DATA_FILE).read_bytes())
    for i in (100, 2000, 30000, len(data) - 5):
        data[i] ^= 0x5A
    (pkg / DATA_FILE).write_bytes(bytes(data))
    with pytest.raises(InvalidModelError, match="corrupt"):
        nomoat.load(pkg)


def test_a_passed_check_is_remembered_until_the_file_changes(tiny_dir, tmp_path, monkeypatch):
    import nomoat.package as package

    pkg = shutil.copytree(tiny_dir, tmp_path / "pkg")
    check_package(pkg)
    assert (pkg / package.PROOF).is_file()
    hashed = []
    real = package.sha256
    monkeypatch.setattr(package, "sha256", lambda p: hashed.append(p.name) or real(p))
    check_package(pkg)
    assert hashed == []  # nothing changed: nothing hashed again
    data = bytearray((pkg / DATA_FILE).read_bytes())
    data[7] ^= 1
    (pkg / DATA_FILE).write_bytes(bytes(data))  # same size, new bytes
    with pytest.raises(InvalidModelError, match="corrupt"):
        check_package(pkg)
    assert hashed == [Path(DATA_FILE).name]  # only the changed file was hashed


def test_prompt_longer_than_context(tiny_dir):
    model = nomoat.load(tiny_dir)
    session = model.session(max_tokens=4)
    with pytest.raises(ContextOverflowError) as e:
        session.prompt_sync("hello there " * 400)
    assert e.value.context_window == 256 and e.value.requested > 256
    assert session.messages == []
    assert isinstance(session.prompt_sync("hello"), str)  # still usable


@pytest.mark.parametrize("opt", [{"temperature": -0.5}, {"top_p": 0}, {"top_k": 1.5}, {"max_tokens": 0},
                                 {"min_p": 2}, {"repetition_penalty": 0}, {"seed": "x"}, {"stop": [""]}])
def test_invalid_sampling_option(tiny_dir, opt):
    model = nomoat.load(tiny_dir)
    name = next(iter(opt))
    with pytest.raises(InvalidOptionError, match=name):
        model.session(**opt)
