"""Every architecture nomoat converts (llama incl. Llama-3.x rope scaling, qwen2, qwen3, gemma3 incl. the
linear rope scaling of its global layers, phi3 incl. LongRoPE with either factor set and partial rotary):
a tiny random GGUF of each, written as llama.cpp's converter writes that architecture, converts, and
onnxruntime on CPython (accuracy level 0: f32 arithmetic) matches the numpy reference
(nomoat.backends.reference, which follows llama.cpp's graph of each architecture from the GGUF's own
metadata) over a prompt and decode steps, greedy tokens equal. Gemma 3's sliding-window layers are
tested past their window (a window of 8 positions, 32 positions in all).

The real Gemma-3-270M Q4_K_M (models/downloads/gemma-3-270m-q4_k_m.gguf; skipped if absent, slow:
~3 min on 2 cores): after "The capital of France is", onnxruntime agrees with the reference and with
Hugging Face transformers' Gemma 3 (fixtures/gemma_hf.json): logits, top-3 (Paris third) and its
30-token greedy continuation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nomoat.backends.ort_native import OrtNativeBackend
from nomoat.backends.reference import ReferenceBackend
from nomoat.config import ModelConfig
from nomoat.convert import convert
from nomoat.convert.tiny import make_tiny_gguf
from nomoat.errors import InvalidModelError, UnsupportedModelError

from conftest import FIXTURES, load_fixture

# |logits_onnx - logits_reference| max over every position and vocabulary entry. Both compute in f32
# from the same dequantized weights; the differences are summation order and transcendental
# rounding (observed <= 4e-5 on logits of magnitude ~25-50).
LOGIT_TOL = 1e-3

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
LONGROPE = {"rope_type": "longrope", "original_max_position_embeddings": 512}  # tiny.py makes up the factors
TINY = {  # name → make_tiny_gguf arguments
    "llama": {},
    "llama3": {"arch": "llama", "rope_scaling": LLAMA3},  # wavelengths 6..2e4 across 64: all three bands
    "llama_bias": {"arch": "llama", "qkv_bias": True},  # biases on permuted rows: permuted back with them
    "qwen2": {"arch": "qwen2"},
    "qwen3": {"arch": "qwen3", "head_dim": 32},  # q_dim 128 != hidden 64, as in Qwen3
    "gemma3": {"arch": "gemma3", "head_dim": 32, "n_layers": 6, "n_kv": 1, "sliding_window": 8,
               "rope_theta": 1e6},  # layers 0-4 slide (base 1e4), layer 5 is global (base 1e6)
    "phi3": {"arch": "phi3", "n_kv": 4},
    # Gemma 3 4B+: linear rope scaling (factor 8) on the global layer only (llama.cpp: scale_train_swa = 1)
    "gemma3_linear": {"arch": "gemma3", "head_dim": 32, "n_layers": 6, "n_kv": 1, "sliding_window": 8,
                      "rope_theta": 1e6, "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
    # Phi-3.5-mini: LongRoPE (context 4096 over an original 512: long factors, attention factor 1.155)
    "phi3_longrope": {"arch": "phi3", "n_kv": 4, "context": 4096, "rope_scaling": LONGROPE},
    "phi3_longrope_short": {"arch": "phi3", "n_kv": 4, "context": 4096, "rope_scaling": LONGROPE},  # window 512
    # Phi-4-mini: LongRoPE and partial rotary (24 of each head's 32 values turn; llama.cpp's phi3 wants
    # heads x head_dim = hidden)
    "phi4_partial": {"arch": "phi3", "hidden": 128, "n_heads": 4, "n_kv": 2, "head_dim": 32, "rope_dim": 24,
                     "context": 4096, "rope_scaling": LONGROPE},
}
# The package's window (convert's context) where it is not the GGUF's context_length: as llama.cpp's n_ctx
# (the fixture's), it picks LongRoPE's factors: 512 is not above the original 512, so the short ones.
WINDOW = {"phi3_longrope_short": 512}
PROMPT = [1] + list(range(40, 52))  # 13 tokens
FED = [60 + 7 * i % 200 for i in range(19)]  # fed one at a time after the prompt: 32 positions in all


def ort(pkg: Path) -> OrtNativeBackend:
    return OrtNativeBackend(pkg, ModelConfig.from_dir(pkg), threads=2, accuracy_level=0)


@pytest.fixture(scope="module", params=list(TINY))
def tiny(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    gguf = make_tiny_gguf(d / "t.gguf", seed=3, **TINY[request.param])
    return request.param, gguf, convert(gguf, d / "pkg", context=WINDOW.get(request.param))


def test_onnx_matches_reference_prompt_and_decode(tiny):
    """The prompt in one pass (every position's logits), then STEPS single-token steps fed a fixed,
    varied sequence (random tiny models often repeat one token under greedy decoding); at each step
    the logits agree and so does the greedy choice."""
    name, gguf, pkg = tiny
    ref, onnx = ReferenceBackend(gguf, n_ctx=WINDOW.get(name)), ort(pkg)
    rs, os_ = ref.new_state(), onnx.new_state()
    a, b = ref._forward(rs, PROMPT), onnx.run(os_, PROMPT, all_logits=True)  # every prompt position
    errors, greedy_ref, greedy_onnx = [np.abs(a - b).max()], [], []
    for t in FED:
        greedy_ref.append(int(a[-1].argmax()))
        greedy_onnx.append(int(b[-1].argmax()))
        a, b = ref._forward(rs, [t]), onnx.run(os_, [t], all_logits=True)
        errors.append(np.abs(a - b).max())
    assert max(errors) <= LOGIT_TOL, f"{name}: max |onnx - reference| per step {np.round(errors, 6)}"
    assert greedy_onnx == greedy_ref


LLAMA_CPP = FIXTURES / "llama_arch.json"  # made by fixtures/make_arch_llama_fixtures.py
NEAR_TIE = 0.5  # a top-1 that differs from llama.cpp's must be a near-tie for llama.cpp (as tests/test_golden.py)


@pytest.mark.skipif(not LLAMA_CPP.is_file(), reason="no llama.cpp fixture")
def test_teacher_forced_agreement_with_llama_cpp(tiny):
    """Along the same 32 tokens, llama.cpp (which quantizes activations to 8 bits in its dot products,
    so exact equality is not the bar) picks nomoat's next token at >= 90% of positions, and every
    disagreement is a near-tie for llama.cpp. (Measured: 32/32 for llama_bias, gemma3, phi3, phi3_longrope;
    31/32 for llama3, qwen2, qwen3, phi4_partial; 30/32 for gemma3_linear (margins 0.002, 0.023) and
    phi3_longrope_short (0.011, 0.322); 29/32 for llama, whose Q4_1 random weights give flat logits: its
    three disagreements are llama.cpp margins of 0.23-0.38. A rope variant left out costs far more: the
    other LongRoPE factor set 8/32 and 10/32, no attention factor 19/32 and 22/32, Gemma 3 without its
    linear scaling 25/32, on the numpy reference.)"""
    import hashlib

    name, gguf, pkg = tiny
    want = load_fixture(LLAMA_CPP.name)
    case = want["tiny"][name]
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == case["sha256"], "tiny.py changed: remake the fixture"
    onnx = ort(pkg)
    pred = onnx.run(onnx.new_state(), want["ids"], all_logits=True).argmax(-1)
    hits = pred == np.asarray(case["top1"])
    margins = np.asarray(case["top2_margin"])[~hits]
    assert (margins < NEAR_TIE).all(), f"{name}: disagreement at a clear llama.cpp choice: margins {margins}"
    assert hits.mean() >= 0.90, f"{name}: top-1 agreement {hits.sum()}/{hits.size}"


def test_package_config_describes_the_architecture(tiny):
    name, _, pkg = tiny
    cfg = json.loads((pkg / "config.json").read_text())
    c = ModelConfig.from_dir(pkg)
    assert cfg["model_type"] == TINY[name].get("arch", "llama")
    rs = cfg["rope_scaling"]
    if name == "llama3":
        assert rs == LLAMA3  # recovered exactly from the GGUF's rope_freqs divisors
    elif name == "gemma3_linear":
        assert rs == {"rope_type": "linear", "factor": 8.0}
        inv = 1e6 ** -(np.arange(0, 32, 2) / 32)
        assert np.allclose(c.rope_inv_freqs(5), inv / 8, rtol=1e-15) and c.rope_inv_freqs(0)[1] == 1e4 ** (-2 / 32)
    elif name.startswith(("phi3_longrope", "phi4")):
        half = c.rotary_dim // 2
        assert rs["rope_type"] == "longrope" and rs["original_max_position_embeddings"] == 512
        assert len(rs["long_factor"]) == len(rs["short_factor"]) == half
        assert rs["attention_factor"] == pytest.approx(np.sqrt(1 + np.log(4096 / 512) / np.log(512)), rel=1e-7)
        assert cfg["max_position_embeddings"] == WINDOW.get(name, 4096) and c.longrope_long == (name not in WINDOW)
        used = rs["long_factor"] if c.longrope_long else rs["short_factor"]
        inv = 10000.0 ** -(np.arange(0, 2 * half, 2) / (2 * half))
        assert np.allclose(c.rope_inv_freqs(0), inv / np.asarray(used), rtol=1e-15)
    else:
        assert rs is None
    assert c.rotary_dim == TINY[name].get("rope_dim", c.head_dim)
    assert cfg.get("partial_rotary_factor") == (0.75 if name == "phi4_partial" else None)
    assert cfg["attention_bias"] == (name in ("qwen2", "llama_bias"))
    assert cfg["hidden_act"] == ("gelu_pytorch_tanh" if name.startswith("gemma3") else "silu")
    assert c.head_dim == TINY[name].get("head_dim", 16)
    if name.startswith("gemma3"):
        assert cfg["sliding_window"] == 8 and cfg["rope_local_base_freq"] == 10000.0
        assert cfg["layer_types"] == ["sliding_attention"] * 5 + ["full_attention"]
        assert c.embedding_multiplier == np.float32(8.0) and cfg["query_pre_attn_scalar"] == 32
    else:
        assert "sliding_window" not in cfg and "layer_types" not in cfg and c.embedding_multiplier == 1.0


@pytest.mark.skipif(not LLAMA_CPP.is_file(), reason="no llama.cpp fixture")
def test_llama_cpp_picks_longrope_factors_by_its_context():
    """The same LongRoPE GGUF, in llama.cpp with n_ctx 4096 (long factors) and 512 (short): its choices
    differ (so the fixture tells the two sets apart, and each package agrees with its own)."""
    tiny = load_fixture(LLAMA_CPP.name)["tiny"]
    a, b = tiny["phi3_longrope"], tiny["phi3_longrope_short"]
    assert a["sha256"] == b["sha256"] and a["top1"] != b["top1"]


def test_graph_uses_only_ops_both_runtimes_have(tiny):
    """onnxruntime-web's WebGPU operator list and onnxruntime's CPU contrib ops both have these."""
    import onnx

    _, _, pkg = tiny
    from nomoat.package import ONNX_FILE

    ops = {n.op_type for n in onnx.load(str(pkg / ONNX_FILE), load_external_data=False).graph.node}
    allowed = {"MatMulNBits", "GroupQueryAttention", "RotaryEmbedding", "SkipSimplifiedLayerNormalization",
               "SimplifiedLayerNormalization", "FastGelu", "Split", "Sigmoid", "Mul", "Add", "Sub", "Div",
               "Reshape", "Gather", "Cast", "ReduceSum", "Shape", "Concat", "Equal", "Where", "Slice", "Identity",
               "MatMul", "Gemm", "Unsqueeze", "Transpose"}
    assert ops <= allowed, ops - allowed


def test_gemma3_window_is_llama_cpps(tmp_path):
    """The window counts the query's own position: with sliding_window 1 a sliding layer sees only
    itself (llama.cpp masks pos_q - pos_k >= n_swa); every layer slides but the 6th."""
    gguf = make_tiny_gguf(tmp_path / "g.gguf", seed=5, **{**TINY["gemma3"], "sliding_window": 1})
    ref, onnx = ReferenceBackend(gguf), ort(convert(gguf, tmp_path / "pkg"))
    a = ref._forward(ref.new_state(), PROMPT)
    b = onnx.run(onnx.new_state(), PROMPT, all_logits=True)
    assert np.abs(a - b).max() <= LOGIT_TOL


def test_other_architectures_are_refused_naming_the_supported(tmp_path):
    gguf = make_tiny_gguf(tmp_path / "m.gguf", arch="mamba")
    with pytest.raises(UnsupportedModelError, match="llama, qwen2, qwen3, gemma3, phi3"):
        convert(gguf, tmp_path / "out")


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "qwen2", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
     "uses rope scaling 'yarn'; nomoat supports none, linear .*, Llama-3.x's .* and Phi-3.5/Phi-4's LongRoPE"),
    ({"arch": "llama", "rope_dim": 8}, r"partial rotary \(8 of 16\) of a llama model"),
    ({"arch": "qwen2", "rope_scaling": {"rope_type": "longrope", "original_max_position_embeddings": 128}},
     "a qwen2 model with LongRoPE factors is not supported"),  # llama.cpp loads them for phi3 only
])
def test_rope_variants_refused(tmp_path, kwargs, match):
    gguf = make_tiny_gguf(tmp_path / "r.gguf", **kwargs)
    with pytest.raises(UnsupportedModelError, match=match):
        convert(gguf, tmp_path / "out")


def test_context_is_the_window_and_at_most_the_gguf_s(tmp_path):
    from nomoat.errors import InvalidOptionError

    gguf = make_tiny_gguf(tmp_path / "c.gguf")  # context_length 256
    assert ModelConfig.from_dir(convert(gguf, tmp_path / "a", context=100)).max_position_embeddings == 100
    with pytest.raises(InvalidOptionError, match=r"context 512: the window must be an integer in 1\.\.256"):
        convert(gguf, tmp_path / "b", context=512)


@pytest.mark.parametrize("field,value,match", [  # the messages of web/test/model_shape.test.js (modelShape)
    ("model_type", "mistral", r'model_type is "mistral", not one of llama, qwen2, qwen3, gemma3, phi3'),
    ("hidden_act", "relu", r'hidden_act is "relu", not one of silu, gelu_pytorch_tanh'),
    ("attention_bias", "yes", r'attention_bias is "yes", not true or false'),
    ("layer_types", ["sliding_attention"],
     r'layer_types is \["sliding_attention"\], not a list of 2 of full_attention, sliding_attention'),
    ("layer_types", ["sliding_attention", "full_attention"], "layer_types has sliding_attention layers but "
                                                             "sliding_window is null"),
    ("sliding_window", 0, r"sliding_window is 0, not an integer in 1\.\.16777216"),
    ("query_pre_attn_scalar", -1, r"query_pre_attn_scalar is -1, not a number in \(0, 16777216\]"),
    ("rope_local_base_freq", "1e4", r'rope_local_base_freq is "1e4", not a number'),
    ("rope_scaling", {"rope_type": "yarn", "factor": 4.0},
     r"rope_scaling is .*, not null or a llama3, linear, longrope rope_scaling object"),
    ("rope_scaling", {"rope_type": "linear", "factor": 0},
     r"rope_scaling\.factor is 0, not a number in \(0, 1000000\]"),
    ("rope_scaling", {"rope_type": "longrope", "long_factor": [1.0] * 8, "short_factor": [1.0] * 7,
                      "original_max_position_embeddings": 64, "attention_factor": 1.1},
     r"rope_scaling\.short_factor is .*, not a list of 8 numbers in \(0, 1000000\]"),
    ("rope_scaling", {"rope_type": "longrope", "long_factor": [1.0] * 8, "short_factor": [1.0] * 8,
                      "original_max_position_embeddings": 64},
     r"rope_scaling\.attention_factor is missing, not a number in \(0, 1000000\]"),
    ("partial_rotary_factor", 0.3, r"partial_rotary_factor 0\.3 turns 5 of head_dim 16, not an even number in 2\.\.16"),
    ("partial_rotary_factor", 1.5, r"partial_rotary_factor is 1\.5, not a number in \(0, 1\]"),
    ("rope_scaling", {**LLAMA3, "high_freq_factor": 0.5}, "high_freq_factor is not above its low_freq_factor"),
    ("rope_scaling", {**LLAMA3, "original_max_position_embeddings": 64.5},
     r"rope_scaling\.original_max_position_embeddings is 64\.5, not an integer in 1\.\.16777216"),
])
def test_config_fields_are_checked(tiny_dir, field, value, match):
    cfg = json.loads((tiny_dir / "config.json").read_text())
    cfg[field] = value
    with pytest.raises(InvalidModelError, match=match):
        ModelConfig.from_dict(cfg)


GEMMA = Path(__file__).resolve().parents[1] / "models" / "downloads" / "gemma-3-270m-q4_k_m.gguf"
# "The capital of France is" with <bos>: each word is one piece of Gemma's vocabulary (checked below),
# which is what SentencePiece gives for it (add_space_prefix false: "The" has no "▁").
GEMMA_PROMPT = {2: "<bos>", 818: "The", 5279: "▁capital", 529: "▁of", 7001: "▁France", 563: "▁is"}
PARIS = 9079  # "▁Paris"


@pytest.fixture
def spm_readable(monkeypatch):
    """read_gguf takes SentencePiece ('llama') tokenizers (a no-op once nomoat reads them itself)."""
    import nomoat.convert.gguf_file as gguf_file

    if "llama" not in gguf_file.TOKENIZER_MODELS:
        monkeypatch.setattr(gguf_file, "TOKENIZER_MODELS", (*gguf_file.TOKENIZER_MODELS, "llama"))


def _gemma_package(tmp: Path) -> Path:
    """The converted package; until nomoat exports SentencePiece tokenizers, the graph and
    config.json only (what OrtNativeBackend reads)."""
    try:
        return convert(GEMMA, tmp / "gemma")
    except (UnsupportedModelError, InvalidModelError, KeyError, ValueError) as e:
        if "okenizer" not in f"{e!r}":
            raise
    import onnx
    from onnx import external_data_helper

    from nomoat.convert import load_weights, read_gguf
    from nomoat.convert.graph import build_graph
    from nomoat.package import DATA_FILE, ONNX_FILE

    m = read_gguf(GEMMA)
    model = build_graph(m.config, load_weights(m))
    pkg = tmp / "gemma"
    (pkg / ONNX_FILE).parent.mkdir(parents=True)
    external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                        location=Path(DATA_FILE).name, size_threshold=1024)
    onnx.save_model(model, pkg / ONNX_FILE)
    (pkg / "config.json").write_text(json.dumps(m.config.to_json()))
    return pkg


@pytest.mark.slow
@pytest.mark.skipif(not GEMMA.is_file(), reason=f"{GEMMA} is not downloaded")
def test_gemma_3_270m_matches_the_reference_and_transformers(tmp_path, spm_readable):
    """After "The capital of France is": onnxruntime's logits equal the numpy reference's, and Hugging
    Face transformers' Gemma3ForCausalLM's (fixtures/gemma_hf.json: its 20 largest logits, its greedy
    continuation); Paris is among the three likeliest next tokens. (The base model's greedy answer,
    transformers' and nomoat's alike, is " the capital of the country of France. It is the largest
    city in France ...": Paris, at p = 0.084, is third after " the" and " a".)"""
    from gguf import GGUFReader

    vocab = GGUFReader(GEMMA).fields["tokenizer.ggml.tokens"].contents()
    assert {i: vocab[i] for i in GEMMA_PROMPT} == GEMMA_PROMPT
    hf = load_fixture("gemma_hf.json")
    prompt = list(GEMMA_PROMPT)
    assert hf["prompt_ids"] == prompt
    onnx = ort(_gemma_package(tmp_path))
    state = onnx.new_state()
    logits = onnx.run(state, prompt)
    np.testing.assert_allclose(logits[hf["top_ids"]], hf["top_logits"], rtol=0, atol=2e-3)
    assert [int(i) for i in np.argsort(-logits)[:3]] == hf["top_ids"][:3] and PARIS in hf["top_ids"][:3]
    greedy = []
    for _ in range(len(hf["greedy_ids"])):
        greedy.append(int(logits.argmax()))
        logits = onnx.run(state, [greedy[-1]])
    assert greedy == hf["greedy_ids"], "".join(vocab[t] for t in greedy)

    if LLAMA_CPP.is_file():  # teacher-forced along llama.cpp's own greedy continuation
        case = load_fixture(LLAMA_CPP.name)["gemma"]
        n = len(case["prompt_ids"])
        assert case["prompt_ids"] == prompt
        got = onnx.run(onnx.new_state(), prompt + case["greedy_ids"], all_logits=True)
        hits = got[n - 1:-1].argmax(-1) == np.asarray(case["greedy_ids"])
        margins = np.asarray(case["top2_margin"])[~hits]
        assert (margins < NEAR_TIE).all() and hits.mean() >= 0.95, (hits.sum(), margins)

    ref = ReferenceBackend(GEMMA)
    expected = ref._forward(ref.new_state(), prompt + greedy[:8])  # prompt and 8 steps, all positions
    state = onnx.new_state()
    got = onnx.run(state, prompt + greedy[:8], all_logits=True)
    assert np.abs(got - expected).max() <= 5e-3  # observed 6e-5 (logits up to ~22)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
