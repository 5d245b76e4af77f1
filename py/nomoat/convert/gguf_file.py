"""Read a Llama-family GGUF: validate it, and expose its config, tensors and tokenizer metadata.

Everything that can be wrong with a file is found here, before any graph is built: a file that
is not GGUF, one cut short, an architecture or a quantization type nomoat cannot map.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..errors import InvalidModelError, ModelNotFoundError, UnsupportedModelError
from .gguf_check import check_gguf_structure

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHS = ("llama",)
# Linear layers, embeddings and LM heads map onto MatMulNBits blocks or f32 (convert/quant.py
# states each mapping: exact, or Q4_1/Q4_K's stated one-rounding bound), in any mix.
LINEAR_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32")
EMBED_TYPES = LINEAR_TYPES
NORM_TYPES = ("F32", "F16")
TOKENIZER_MODELS = ("gpt2",)  # byte-level BPE


@dataclass
class GGUFTensor:
    name: str
    qtype: str  # "Q4_1", "Q8_0", "F32" ...
    rows: int  # output features (GGUF ne1)
    cols: int  # input features (GGUF ne0)
    data: np.ndarray  # uint8 (rows, bytes_per_row) for quantized types, float (rows, cols) else


@dataclass
class GGUFModel:
    path: Path
    config: ModelConfig
    tensors: dict[str, GGUFTensor]
    metadata: dict  # tokenizer.* and general.* fields, decoded

    def tensor(self, name: str) -> GGUFTensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise InvalidModelError(f"{self.path.name} has no tensor {name!r}: incomplete model.") from None


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def read_gguf(path: str | Path) -> GGUFModel:
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"No such GGUF file: {path}. Pass the path of a .gguf model file.")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise InvalidModelError(
            f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'). "
            "nomoat convert takes llama.cpp GGUF files."
        )
    size = path.stat().st_size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            check_gguf_structure(path, view)
        finally:
            view.release()
    try:
        reader = GGUFReader(path)
    except Exception as e:  # the gguf package raises ValueError/IndexError/struct.error on bad bytes
        raise InvalidModelError(
            f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); it may be truncated "
            "or corrupt: download it again."
        ) from e
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > size:
        raise InvalidModelError(
            f"{path} is truncated: its tensors need {end} bytes but the file has {size}. "
            "Download it again."
        )

    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise UnsupportedModelError(
            f"{path.name} is a {arch!r} model; nomoat converts the Llama family "
            f"(general.architecture in {SUPPORTED_ARCHS}: Llama, SmolLM, TinyLlama …)."
        )
    tok_model = _field(reader, "tokenizer.ggml.model")
    if tok_model not in TOKENIZER_MODELS:
        raise UnsupportedModelError(
            f"{path.name} uses a {tok_model!r} tokenizer; nomoat supports byte-level BPE "
            f"(tokenizer.ggml.model in {TOKENIZER_MODELS})."
        )
    scaling = _field(reader, f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise UnsupportedModelError(f"{path.name} uses rope scaling {scaling!r}; only none is supported.")

    tensors = {}
    for t in reader.tensors:
        shape = [int(s) for s in t.shape]
        cols, rows = shape[0], (shape[1] if len(shape) > 1 else 1)
        data = np.asarray(t.data)
        tensors[t.name] = GGUFTensor(t.name, t.tensor_type.name, rows, cols, data.reshape(rows, -1))

    def count(key: str, default: int | None = None, lo: int = 1, hi: int = 1 << 20) -> int:
        v = _field(reader, key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InvalidModelError(f"{path.name}: {key} = {v!r}; expected an integer in {lo}..{hi}. "
                                    "The file is corrupt or not a model: download it again.")
        return v

    def real(key: str, default: float, lo: float, hi: float) -> float:
        v = _field(reader, key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise InvalidModelError(f"{path.name}: {key} = {v!r}; expected a number in {lo}..{hi}: corrupt.")
        return float(v)

    n_layers = count(f"{arch}.block_count", hi=1024)
    hidden = count(f"{arch}.embedding_length", hi=1 << 16)
    n_heads = count(f"{arch}.attention.head_count", hi=1024)
    n_kv = count(f"{arch}.attention.head_count_kv", n_heads, hi=n_heads)
    if hidden % n_heads or n_heads % n_kv:
        raise InvalidModelError(f"{path.name}: {hidden} hidden units do not split into {n_heads} heads "
                                f"in groups of {n_kv} KV heads: corrupt.")
    head_dim = hidden // n_heads
    rope_dim = count(f"{arch}.rope.dimension_count", head_dim, hi=head_dim)
    if rope_dim != head_dim:
        raise UnsupportedModelError(f"{path.name}: partial rotary ({rope_dim} of {head_dim}) is not supported.")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = count(f"{arch}.vocab_size", len(tokens.data) if tokens is not None else None, hi=1 << 24)
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    config = ModelConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=count(f"{arch}.feed_forward_length", hi=1 << 18),
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        max_position_embeddings=count(f"{arch}.context_length", 2048, hi=1 << 24),
        rms_norm_eps=real(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5, 1e-12, 1e-1),
        rope_theta=real(f"{arch}.rope.freq_base", 10000.0, 1.0, 1e9),
        head_dim=head_dim,
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=eos,
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id"),
    )
    _check_types(path.name, config, tensors)
    meta = {}
    for key in reader.fields:
        if key.startswith(("tokenizer.", "general.")):
            meta[key] = _field(reader, key)
    return GGUFModel(path, config, tensors, meta)


def _check_types(name: str, cfg: ModelConfig, tensors: dict[str, GGUFTensor]) -> None:
    """Every tensor the converter reads: present, of a type it maps, of the shape the config says
    ((rows, cols) = (output features, input features); norms are (1, hidden))."""
    H, V, F = cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim

    def need(tname: str, allowed: tuple[str, ...], rows: int, cols: int) -> None:
        t = tensors.get(tname)
        if t is None:
            raise InvalidModelError(f"{name} has no tensor {tname!r}: incomplete model.")
        if t.qtype not in allowed:
            raise UnsupportedModelError(
                f"{name}: tensor {tname} is {t.qtype}; nomoat reads the types {', '.join(allowed)}. "
                "Use a GGUF quantized to one of them (e.g. Q4_K_M, Q4_0 or Q8_0 from llama.cpp's quantize)."
            )
        if (t.rows, t.cols) != (rows, cols):
            raise InvalidModelError(f"{name}: tensor {tname} is {t.rows}x{t.cols}; the model's metadata makes it "
                                    f"{rows}x{cols}. The file is corrupt: download it again.")

    need("token_embd.weight", EMBED_TYPES, V, H)
    if not cfg.tie_word_embeddings:
        need("output.weight", EMBED_TYPES, V, H)
    need("output_norm.weight", NORM_TYPES, 1, H)
    shapes = {"attn_q": (q, H), "attn_k": (kv, H), "attn_v": (kv, H), "attn_output": (H, q), "ffn_gate": (F, H),
              "ffn_up": (F, H), "ffn_down": (H, F)}
    for i in range(cfg.num_hidden_layers):
        for w, (rows, cols) in shapes.items():
            need(f"blk.{i}.{w}.weight", LINEAR_TYPES, rows, cols)
        for w in ("attn_norm", "ffn_norm"):
            need(f"blk.{i}.{w}.weight", NORM_TYPES, 1, H)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = getattr(cfg, key)
        if v is not None and not (isinstance(v, int) and 0 <= v < V):
            raise InvalidModelError(f"{name}: tokenizer.ggml.{key} = {v!r} is not a token of the {V}-token "
                                    "vocabulary: corrupt.")
