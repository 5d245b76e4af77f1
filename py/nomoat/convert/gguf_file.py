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
from ..errors import InvalidModelError, InvalidOptionError, ModelNotFoundError, UnsupportedModelError
from .gguf_check import check_gguf_structure

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma3", "phi3")
HF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                    "gemma3": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM"}
GEMMA3_SWA_PATTERN = 6  # llama.cpp: set_swa_pattern(6): layer il slides iff il % 6 < 5
GEMMA3_SWA_ROPE_BASE = 10000.0  # llama.cpp: rope_freq_base_train_swa
# Linear layers, embeddings and LM heads map onto MatMulNBits blocks or f32 (convert/quant.py
# states each mapping: exact, or Q4_1/Q4_K's stated one-rounding bound), in any mix.
LINEAR_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32")
EMBED_TYPES = LINEAR_TYPES
NORM_TYPES = ("F32", "F16")
TOKENIZER_MODELS = ("gpt2", "llama")  # byte-level BPE, SentencePiece BPE


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


def read_gguf(path: str | Path, context: int | None = None) -> GGUFModel:
    """The GGUF at `path`, checked. context: the package's window (max_position_embeddings), at most
    the GGUF's context_length (the default); like llama.cpp's n_ctx it also picks LongRoPE's factors
    (long iff it exceeds the original context)."""
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
            f"{path.name} is a {arch!r} model; nomoat converts the Llama family and its relatives "
            f"(general.architecture in {', '.join(SUPPORTED_ARCHS)}: Llama 2/3.x, SmolLM, TinyLlama, "
            "Qwen2/2.5, Qwen3, Gemma 3, Phi-3/3.5/4-mini)."
        )
    tok_model = _field(reader, "tokenizer.ggml.model")
    if tok_model not in TOKENIZER_MODELS:
        raise UnsupportedModelError(
            f"{path.name} uses a {tok_model!r} tokenizer; nomoat supports byte-level BPE ('gpt2') and "
            f"SentencePiece BPE ('llama') (tokenizer.ggml.model in {TOKENIZER_MODELS})."
        )
    names = {t.name for t in reader.tensors}
    if "rope_freqs.weight" in names and arch != "llama":
        raise UnsupportedModelError(f"{path.name}: a {arch} model with rope_freqs is not supported "
                                    "(only llama's Llama-3.x rope scaling).")

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
    has_kl = f"{arch}.attention.key_length" in reader.fields
    if (hidden % n_heads and not has_kl) or n_heads % n_kv:
        raise InvalidModelError(f"{path.name}: {hidden} hidden units do not split into {n_heads} heads "
                                f"in groups of {n_kv} KV heads: corrupt.")
    head_dim = count(f"{arch}.attention.key_length", None if has_kl else hidden // n_heads, hi=1024)
    if head_dim % 2:
        raise InvalidModelError(f"{path.name}: head dimension {head_dim} is odd: corrupt.")
    v_dim = count(f"{arch}.attention.value_length", head_dim, hi=1024)
    if v_dim != head_dim:
        raise UnsupportedModelError(f"{path.name}: value heads of {v_dim} with key heads of {head_dim} "
                                    "are not supported.")
    rope_dim = count(f"{arch}.rope.dimension_count", head_dim, hi=head_dim)
    if rope_dim % 2:
        raise InvalidModelError(f"{path.name}: {arch}.rope.dimension_count {rope_dim} is odd: corrupt.")
    if rope_dim != head_dim and arch == "llama":
        raise UnsupportedModelError(f"{path.name}: partial rotary ({rope_dim} of {head_dim}) of a llama model "
                                    "(adjacent-pair RoPE) is not supported; NEOX architectures' (phi3 …) is.")
    rope_theta = real(f"{arch}.rope.freq_base", 10000.0, 1.0, 1e9)
    trained = count(f"{arch}.context_length", 2048, hi=1 << 24)
    if context is None:
        context = trained
    elif isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= trained:
        raise InvalidOptionError(f"context {context!r}: the window must be an integer in 1..{trained} "
                         f"({path.name}'s context_length).")
    arch_fields = _arch_fields(path.name, reader, arch, n_layers, hidden, n_heads, head_dim, rope_theta, names,
                               rope_dim, trained)
    if rope_dim != head_dim:
        arch_fields["partial_rotary_factor"] = rope_dim / head_dim
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
        max_position_embeddings=context,
        rms_norm_eps=real(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5, 1e-12, 1e-1),
        rope_theta=rope_theta,
        head_dim=head_dim,
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=eos,
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        model_type=arch,
        architectures=[HF_ARCHITECTURES[arch]],
        **arch_fields,
    )
    _check_types(path.name, config, tensors)
    read = {"token_embd.weight", "output.weight", "output_norm.weight", "rope_freqs.weight",
            "rope_factors_long.weight", "rope_factors_short.weight"}
    read |= {f"blk.{i}.{t}" for i in range(n_layers) for t in layer_tensors(config, tensors, i)}
    if extra := sorted(names - read):
        raise UnsupportedModelError(f"{path.name} has tensors nomoat's {arch} decoder does not use "
                                    f"({', '.join(extra[:4])}{' …' if len(extra) > 4 else ''}): a variant of "
                                    "the architecture that nomoat does not support.")
    meta = {}
    for key in reader.fields:
        if key.startswith(("tokenizer.", "general.")):
            meta[key] = _field(reader, key)
    return GGUFModel(path, config, tensors, meta)


def _arch_fields(name: str, reader, arch: str, n_layers: int, hidden: int, n_heads: int, head_dim: int,
                 rope_theta: float, names: set[str], rope_dim: int, trained: int) -> dict:
    """The config fields that set the architectures apart, as llama.cpp derives them (llama-model.cpp's
    hparams and src/models/*.cpp): qwen2's biases, gemma3's activation, sliding layers and scale,
    the rope scaling (_rope_scaling)."""
    out: dict = {}
    if arch == "qwen2" or "blk.0.attn_q.bias" in names:  # qwen2's are required; llama.cpp takes them for llama too
        out["attention_bias"] = True
    if arch == "gemma3":
        if _field(reader, "gemma3.final_logit_softcapping") not in (None, 0, 0.0):
            raise UnsupportedModelError(f"{name}: Gemma 3 with final logit softcapping is not supported.")
        out["hidden_act"] = "gelu_pytorch_tanh"
        # llama.cpp: 1/sqrt(n_embd_head_k), but 1/sqrt(n_embd/n_head) for the 62-layer 27B
        out["query_pre_attn_scalar"] = float(hidden // n_heads if n_layers == 62 else head_dim)
        window = _field(reader, "gemma3.attention.sliding_window")
        if window is not None:
            if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 1 << 24:
                raise InvalidModelError(f"{name}: gemma3.attention.sliding_window = {window!r}: corrupt.")
            if window > 0:
                out["sliding_window"] = window
                out["layer_types"] = ["sliding_attention" if i % GEMMA3_SWA_PATTERN < GEMMA3_SWA_PATTERN - 1
                                      else "full_attention" for i in range(n_layers)]
                out["rope_local_base_freq"] = GEMMA3_SWA_ROPE_BASE
    scaling = _rope_scaling(name, reader, arch, rope_theta, names, rope_dim, trained)
    if scaling is not None:
        out["rope_scaling"] = scaling
    return out


ROPE_SUPPORT = ("nomoat supports none, linear (Gemma 3 4B+), Llama-3.x's (a rope_freqs tensor) and Phi-3.5/Phi-4's "
                "LongRoPE (rope_factors_long/short)")


def _rope_scaling(name: str, reader, arch: str, base: float, names: set[str], rope_dim: int, trained: int
                  ) -> dict | None:
    """HF's rope_scaling for what llama.cpp reads from the GGUF (llama-model.cpp load_hparams,
    get_rope_factors; ggml's rope_yarn with ext_factor 0):
      - `<arch>.rope.scaling.type` linear with `.rope.scaling.factor` f: every frequency times
        freq_scale = 1/f (Gemma 3: its global layers only; sliding ones keep scale 1) → "linear";
      - a rope_freqs tensor (llama): each frequency divided by its entry → "llama3" (llama3_scaling);
      - rope_factors_long/short (phi3, n_rot/2 divisors each) with `.rope.scaling.original_context_length`
        (default context_length) and `.rope.scaling.attn_factor` (default 1, cos/sin's multiplier)
        → "longrope" (which set is used: ModelConfig.longrope_long).
    Anything else (YaRN, …) is refused naming what is supported."""

    def factors(tname: str) -> np.ndarray:
        t = next(t for t in reader.tensors if t.name == tname)
        f = np.asarray(t.data, np.float64).reshape(-1)
        if t.tensor_type.name != "F32" or f.size != rope_dim // 2 or not (np.isfinite(f).all() and (f > 0).all()):
            raise InvalidModelError(f"{name}: {tname} is {t.tensor_type.name} of {f.size} values; expected F32 of "
                                    f"{rope_dim // 2} positive numbers: corrupt.")
        return f

    def real(key: str, default: float) -> float:
        v = _field(reader, key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v <= 1e6):
            raise InvalidModelError(f"{name}: {key} = {v!r}; expected a number in (0, 1e6]: corrupt.")
        return float(v)

    kind = _field(reader, f"{arch}.rope.scaling.type", "linear")  # llama.cpp's default too
    if kind not in ("none", "linear", "longrope"):
        raise UnsupportedModelError(f"{name} uses rope scaling {kind!r}; {ROPE_SUPPORT}.")
    factor = real(f"{arch}.rope.scaling.factor", real(f"{arch}.rope.scale_linear", 1.0))
    linear = kind == "linear" and factor != 1.0  # llama.cpp: rope_freq_scale_train = 1 / factor
    attn = real(f"{arch}.rope.scaling.attn_factor", 1.0)
    longrope = names & {"rope_factors_long.weight", "rope_factors_short.weight"}
    if kind == "longrope" and not longrope:
        raise InvalidModelError(f"{name}: rope scaling 'longrope' without rope_factors_long/short: incomplete model.")
    used = [what for what, on in (("linear scaling", linear), ("rope_freqs", "rope_freqs.weight" in names),
                                  ("LongRoPE factors", longrope)) if on]
    if len(used) > 1:
        raise UnsupportedModelError(f"{name} combines {' and '.join(used)}; {ROPE_SUPPORT}, one at a time.")
    if attn != 1.0 and not longrope:
        raise UnsupportedModelError(f"{name}: rope attention factor {attn} without LongRoPE factors; {ROPE_SUPPORT}.")
    if linear:
        return {"rope_type": "linear", "factor": factor}
    if "rope_freqs.weight" in names:
        return llama3_scaling(name, factors("rope_freqs.weight"), base, rope_dim)
    if longrope:
        if arch != "phi3":  # llama.cpp loads rope_factors_long/short for phi3 only (of these architectures)
            raise UnsupportedModelError(f"{name}: a {arch} model with LongRoPE factors is not supported (only phi3's).")
        if len(longrope) != 2:
            raise InvalidModelError(f"{name} has {next(iter(longrope))} without its pair: incomplete model.")
        old = _field(reader, f"{arch}.rope.scaling.original_context_length", trained)
        if isinstance(old, bool) or not isinstance(old, int) or not 1 <= old <= 1 << 24:
            raise InvalidModelError(f"{name}: {arch}.rope.scaling.original_context_length = {old!r}: corrupt.")
        return {"rope_type": "longrope", "long_factor": factors("rope_factors_long.weight").tolist(),
                "short_factor": factors("rope_factors_short.weight").tolist(),
                "original_max_position_embeddings": old, "attention_factor": attn}
    return None


def llama3_scaling(name: str, factors: np.ndarray, base: float, head_dim: int) -> dict:
    """HF's llama3 rope_scaling dict that gives llama.cpp's rope_freqs divisors (the GGUF holds the
    divisors f_i, inv_freq_i = base^(-2i/d) / f_i, which llama.cpp's converter computed from that dict).

    Between wavelengths old/high and old/low the divisor is 1 / ((1 - s) / factor + s) with
    s = (old / wavelen - low) / (high - low), which only fixes old/low and old/high: low = 1 here,
    the form Llama 3.x uses (old 8192, low 1, high 4), and the dict is checked to give the divisors back."""
    from ..config import ModelConfig

    def refuse(why: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{name}: its rope_freqs ({why}) are not Llama-3.x rope scaling, "
                                     "the only rope scaling nomoat supports.")

    if not (np.isfinite(factors).all() and (factors >= 1).all()):
        raise refuse("divisors below 1")
    factor = float(np.float32(factors.max()))
    if factor == 1.0:
        raise refuse("all 1")
    inv = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / inv
    one, full = np.isclose(factors, 1.0, rtol=1e-6), np.isclose(factors, factor, rtol=1e-6)
    mid = ~one & ~full
    if mid.sum() >= 2:  # s = old / wavelen - 1) / (high - 1) is linear in 1 / wavelen
        s = (1 / factors[mid] - 1 / factor) / (1 - 1 / factor)
        slope, icept = np.polyfit(1 / wavelen[mid], s, 1)  # s = slope / w + icept, icept = -1 / (high - 1)
        high = 1 - 1 / icept
        old = slope * (high - 1)
        old = int(round(old))  # an integer (HF's original_max_position_embeddings); checked below
        high = float(round(high, 6))
    elif one.any() and full.any():  # no divisor in between: any boundaries that separate the two sets
        old = int(np.floor(wavelen[full].min()))
        high = float((1 + old / wavelen[one].max()) / 2)
    else:
        raise refuse("no recognisable boundaries")
    scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": high,
               "original_max_position_embeddings": old}
    cfg = ModelConfig(vocab_size=1, hidden_size=head_dim, intermediate_size=1, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=1, rms_norm_eps=1e-5,
                      rope_theta=base, head_dim=head_dim, rope_scaling=scaling)
    if not np.allclose(cfg.rope_inv_freqs(0), inv / factors, rtol=1e-5, atol=0):
        raise refuse("not of the llama3 form")
    return scaling


def _check_types(name: str, cfg: ModelConfig, tensors: dict[str, GGUFTensor]) -> None:
    """Every tensor the converter reads: present, of a type it maps, of the shape the config says
    ((rows, cols) = (output features, input features); norms are (1, hidden))."""
    H, V = cfg.hidden_size, cfg.vocab_size

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
    for i in range(cfg.num_hidden_layers):
        for w, (rows, cols) in layer_tensors(cfg, tensors, i).items():
            need(f"blk.{i}.{w}", LINEAR_TYPES if rows > 1 else NORM_TYPES, rows, cols)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = getattr(cfg, key)
        if v is not None and not (isinstance(v, int) and 0 <= v < V):
            raise InvalidModelError(f"{name}: tokenizer.ggml.{key} = {v!r} is not a token of the {V}-token "
                                    "vocabulary: corrupt.")


def layer_tensors(cfg: ModelConfig, tensors: dict, i: int) -> dict[str, tuple[int, int]]:
    """Layer i's tensors (names after "blk.{i}.") the converter reads, with their (rows, cols);
    1-D tensors (norms, biases) have 1 row. Per architecture, as llama.cpp's llama-model.cpp loads them."""
    H, F, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    out = {"attn_norm.weight": (1, H)}
    if cfg.model_type == "phi3" and f"blk.{i}.attn_qkv.weight" in tensors:  # phi3: q|k|v fused in the GGUF
        out["attn_qkv.weight"] = (q + 2 * kv, H)
    else:
        out.update({"attn_q.weight": (q, H), "attn_k.weight": (kv, H), "attn_v.weight": (kv, H)})
    if cfg.attention_bias:
        out.update({"attn_q.bias": (1, q), "attn_k.bias": (1, kv), "attn_v.bias": (1, kv)})
    if cfg.model_type in ("qwen3", "gemma3"):
        out.update({"attn_q_norm.weight": (1, hd), "attn_k_norm.weight": (1, hd)})
    out["attn_output.weight"] = (H, q)
    if cfg.model_type == "gemma3":
        out["post_attention_norm.weight"] = (1, H)
    out["ffn_norm.weight"] = (1, H)
    if cfg.model_type == "phi3":  # phi3: gate|up fused in ffn_up
        out["ffn_up.weight"] = (2 * F, H)
    else:
        out.update({"ffn_gate.weight": (F, H), "ffn_up.weight": (F, H)})
    out["ffn_down.weight"] = (H, F)
    if cfg.model_type == "gemma3":
        out["post_ffw_norm.weight"] = (1, H)
    return out
