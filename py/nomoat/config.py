"""ModelConfig: the numbers that shape a Llama-family decoder, read from config.json.

The architectures (model_type): llama (incl. Llama-3.x "llama3" rope scaling), qwen2 (q/k/v
biases), qwen3 (q/k norms), gemma3 (embedding scale, post-norms, GeGLU, q/k norms, sliding-window
layers with their own rope base, "linear" rope scaling of the global layers: 4B and up), phi3
(Phi-3.5/Phi-4-mini: "longrope" scaling, partial rotary). Their differences are all fields here
(Hugging Face's names); web/src/package.js modelShape validates and derives the same.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidModelError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    head_dim: int
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    model_type: str = "llama"
    architectures: list[str] = field(default_factory=lambda: ["LlamaForCausalLM"])
    hidden_act: str = "silu"  # or "gelu_pytorch_tanh" (gemma3): act(gate) * up
    attention_bias: bool = False  # q/k/v projections have biases (qwen2)
    query_pre_attn_scalar: float | None = None  # attention scale = its -1/2 power (None: head_dim)
    sliding_window: int | None = None  # keys within the last `sliding_window` positions (current included)
    layer_types: list[str] | None = None  # "full_attention" | "sliding_attention" per layer (None: all full)
    rope_local_base_freq: float | None = None  # rope base of sliding layers (None: rope_theta)
    rope_scaling: dict | None = None  # None, or HF's dict: llama3, linear or longrope (see rope_inv_freqs)
    partial_rotary_factor: float | None = None  # the rotated share of each head (None: all): Phi-4-mini 0.75

    @property
    def embedding_multiplier(self) -> float:
        """What the token embedding is multiplied by: sqrt(hidden_size) rounded to f32 for gemma3
        (llama.cpp: ggml_scale(inpL, sqrtf(n_embd))), 1 otherwise."""
        if self.model_type != "gemma3":
            return 1.0
        return struct.unpack("f", struct.pack("f", math.sqrt(self.hidden_size)))[0]  # rounded to f32

    @property
    def attention_scale(self) -> float:
        """The factor on q.k: query_pre_attn_scalar^-1/2 (head_dim^-1/2 when absent)."""
        return 1.0 / math.sqrt(self.query_pre_attn_scalar or self.head_dim)

    def is_sliding(self, layer: int) -> bool:
        return self.sliding_window is not None and self.layer_types is not None \
            and self.layer_types[layer] == "sliding_attention"

    @property
    def rotary_dim(self) -> int:
        """How many of each head's dimensions RoPE turns (the first ones; the rest pass unchanged):
        round(head_dim * partial_rotary_factor), head_dim when that is None."""
        f = self.partial_rotary_factor
        return self.head_dim if f is None else int(round(self.head_dim * f))

    @property
    def rope_attention_factor(self) -> float:
        """What RoPE's cos and sin are multiplied by (so q.k by its square): longrope's
        attention_factor (llama.cpp: rope.scaling.attn_factor, its cos/sin mscale), else 1."""
        rs = self.rope_scaling
        return float(rs["attention_factor"]) if rs is not None and rs["rope_type"] == "longrope" else 1.0

    @property
    def longrope_long(self) -> bool:
        """Whether a longrope model uses its long factors: as llama.cpp chooses them by its context
        (n_ctx > original context), by the package's window (max_position_embeddings) here: the
        same set at every position. (Hugging Face switches on the current sequence length.)"""
        rs = self.rope_scaling
        return rs is not None and rs["rope_type"] == "longrope" \
            and self.max_position_embeddings > rs["original_max_position_embeddings"]

    def rope_inv_freqs(self, layer: int) -> np.ndarray:  # CPython only (numpy): the converter and the reference
        """Layer `layer`'s RoPE inverse frequencies (rotary_dim/2,) f64, rotate-half pairs (i, i + rd/2):
        base^(-2i/rd); sliding layers use rope_local_base_freq, unscaled (as HF's Gemma 3 and
        llama.cpp do); the others rope_theta, then rope_scaling: llama3 (HF's rule), linear (all
        divided by factor: llama.cpp's freq_scale), longrope (each divided by its long or short
        factor: longrope_long). web/src/package.js ropeInvFreqs computes the same."""
        import numpy as np  # not at the top: this module runs in Pyodide, which has no numpy

        rd = self.rotary_dim
        sliding = self.is_sliding(layer)
        base = (self.rope_local_base_freq or self.rope_theta) if sliding else self.rope_theta
        inv = 1.0 / base ** (np.arange(0, rd, 2, dtype=np.float64) / rd)
        rs = self.rope_scaling
        if rs is None or sliding:
            return inv
        if rs["rope_type"] == "linear":
            return inv / rs["factor"]
        if rs["rope_type"] == "longrope":
            return inv / np.asarray(rs["long_factor" if self.longrope_long else "short_factor"], np.float64)
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = (inv / factor) * (1 - smooth) + inv * smooth
        return np.where(wavelen < old / hi, inv, np.where(wavelen > old / lo, inv / factor, medium))

    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.eos_token_id
        if eos is None:
            return []
        return list(eos) if isinstance(eos, list) else [eos]

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("query_pre_attn_scalar", "sliding_window", "layer_types", "rope_local_base_freq",
                    "partial_rotary_factor"):
            if d[key] is None:
                del d[key]  # absent = the default (HF reads a missing key so too)
        d["torch_dtype"] = "float32"
        d["transformers.js_config"] = {"use_external_data_format": True, "kv_cache_dtype": "float32"}
        return d

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> ModelConfig:
        path = Path(model_dir) / "config.json"
        if not path.is_file():
            raise ModelNotFoundError(
                f"No config.json in {model_dir}: not a nomoat model package. "
                "Make one with 'nomoat convert MODEL.gguf OUT_DIR' (or 'nomoat convert --default')."
            )
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
            raise InvalidModelError(f"{path} is not valid JSON ({str(e)[:200]}); {FIX}.") from e
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: object, where: str = "config.json") -> ModelConfig:
        """config.json's fields, each checked (type, range, divisibility) with the same rules and
        limits as the browser's wasm decoder (web/src/wasm_engine.mjs modelShape): a hostile or
        damaged file is an InvalidModelError naming the file and the field."""

        def bad(what: str) -> InvalidModelError:
            return InvalidModelError(f"{where}: {what}; {FIX}.")

        if not isinstance(raw, dict):
            raise bad(f"is {_show(raw)}, not a JSON object")

        def whole(name: str, hi: int | None = None, default: object = None) -> int:
            v = raw.get(name)
            v = default if v is None else v
            if isinstance(v, float) and v.is_integer():  # 576.0: JSON has one number type (as in JS)
                v = int(v)
            hi = LIMITS[name] if hi is None else hi
            if type(v) is not int or not 1 <= v <= hi:
                raise bad(f"{name} is {_show(raw.get(name, _MISSING))}, not an integer in 1..{hi}")
            return v

        def real(name: str, hi: int) -> float:
            v = raw.get(name, _MISSING)
            if type(v) not in (int, float) or not 0 < v <= hi:
                raise bad(f"{name} is {_show(v)}, not a number in (0, {hi}]")
            return float(v)

        def token(name: str, vocab: int) -> int | None:
            v = raw.get(name)
            if v is None or (type(v) is int and 0 <= v < vocab):
                return v
            raise bad(f"{name} is {_show(v)}, not a token id in 0..{vocab - 1}")

        n_layers, hidden = whole("num_hidden_layers"), whole("hidden_size")
        inter, heads = whole("intermediate_size"), whole("num_attention_heads")
        kv = whole("num_key_value_heads", heads)
        if heads % kv:
            raise bad(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        if raw.get("head_dim") is None and hidden % heads:
            raise bad(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads} "
                      "(and there is no head_dim)")
        head_dim = whole("head_dim", default=hidden // heads if raw.get("head_dim") is None else None)
        if head_dim % 2:
            raise bad(f"head_dim {head_dim} is odd (rotary embeddings turn pairs)")
        vocab = whole("vocab_size")
        eos = raw.get("eos_token_id")
        eos_ids = eos if isinstance(eos, list) and eos else [eos]
        for e in eos_ids:
            if e is not None and not (type(e) is int and 0 <= e < vocab):
                raise bad(f"eos_token_id is {_show(eos)}, not a token id (or a list of them) in 0..{vocab - 1}")
        tie = raw.get("tie_word_embeddings", True)
        if type(tie) is not bool:
            raise bad(f"tie_word_embeddings is {_show(tie)}, not true or false")
        model_type, archs = _default(raw, "model_type", "llama"), raw.get("architectures", ["LlamaForCausalLM"])
        if model_type not in MODEL_TYPES:
            raise bad(f"model_type is {_show(model_type)}, not one of {', '.join(MODEL_TYPES)}")
        if not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
            raise bad(f"architectures is {_show(archs)}, not a list of strings")
        act = _default(raw, "hidden_act", "silu")
        if act not in ACTIVATIONS:
            raise bad(f"hidden_act is {_show(act)}, not one of {', '.join(ACTIVATIONS)}")
        bias = _default(raw, "attention_bias", False)
        if type(bias) is not bool:
            raise bad(f"attention_bias is {_show(bias)}, not true or false")
        scalar = None if raw.get("query_pre_attn_scalar") is None else real("query_pre_attn_scalar", 1 << 24)
        window = raw.get("sliding_window")
        window = None if window is None else whole("sliding_window", LIMITS["max_position_embeddings"])
        types = raw.get("layer_types")
        if types is not None and not (isinstance(types, list) and len(types) == n_layers
                                      and all(t in LAYER_TYPES for t in types)):
            raise bad(f"layer_types is {_show(types)}, not a list of {n_layers} of {', '.join(LAYER_TYPES)}")
        if types is not None and "sliding_attention" in types and window is None:
            raise bad("layer_types has sliding_attention layers but sliding_window is null")
        local = None if raw.get("rope_local_base_freq") is None else real("rope_local_base_freq", 10**12)
        partial = None if raw.get("partial_rotary_factor") is None else real("partial_rotary_factor", 1)
        rd = head_dim if partial is None else int(round(head_dim * partial))
        if rd % 2 or rd < 2:
            raise bad(f"partial_rotary_factor {partial} turns {rd} of head_dim {head_dim}, not an even number "
                      f"in 2..{head_dim}")
        scaling = _rope_scaling(raw.get("rope_scaling"), rd, bad)
        return cls(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=n_layers,
            num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=whole("max_position_embeddings"),
            rms_norm_eps=real("rms_norm_eps", 1), rope_theta=real("rope_theta", 10**12), head_dim=head_dim,
            tie_word_embeddings=tie, bos_token_id=token("bos_token_id", vocab), eos_token_id=eos,
            pad_token_id=token("pad_token_id", vocab), model_type=model_type, architectures=list(archs),
            hidden_act=act, attention_bias=bias, query_pre_attn_scalar=scalar, sliding_window=window,
            layer_types=None if types is None else list(types), rope_local_base_freq=local, rope_scaling=scaling,
            partial_rotary_factor=partial,
        )


FIX = "convert the model again ('nomoat convert')"
MODEL_TYPES = ("llama", "qwen2", "qwen3", "gemma3", "phi3")
ACTIVATIONS = ("silu", "gelu_pytorch_tanh")
LAYER_TYPES = ("full_attention", "sliding_attention")
ROPE_TYPES = ("llama3", "linear", "longrope")
# The largest config.json values taken; web/src/wasm_engine.mjs LIMITS holds the same numbers.
LIMITS = {"num_hidden_layers": 1024, "hidden_size": 65536, "intermediate_size": 262144, "num_attention_heads": 1024,
          "head_dim": 1024, "vocab_size": 1 << 24, "max_position_embeddings": 1 << 24}
_MISSING = object()


def _rope_scaling(scaling: object, rd: int, bad) -> dict | None:
    """config.json's rope_scaling, checked: null, or HF's llama3, linear or longrope object (rd: the
    rotated dimensions, twice longrope's number of factors); returned with only the keys used."""
    if scaling is None:
        return None
    kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
    if kind not in ROPE_TYPES:
        raise bad(f"rope_scaling is {_show(scaling)}, not null or a {', '.join(ROPE_TYPES)} rope_scaling object")

    def number(key: str) -> float:
        v = scaling.get(key, _MISSING)
        if type(v) not in (int, float) or not 0 < v <= 1e6:
            raise bad(f"rope_scaling.{key} is {_show(v)}, not a number in (0, 1000000]")
        return v

    def old() -> int:
        v = scaling.get("original_max_position_embeddings", _MISSING)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if type(v) is not int or not 1 <= v <= LIMITS["max_position_embeddings"]:
            raise bad(f"rope_scaling.original_max_position_embeddings is {_show(v)}, not an integer in "
                      f"1..{LIMITS['max_position_embeddings']}")
        return v

    if kind == "linear":
        return {"rope_type": "linear", "factor": number("factor")}
    if kind == "longrope":
        out = {"rope_type": "longrope"}
        for key in ("long_factor", "short_factor"):
            v = scaling.get(key, _MISSING)
            if not (isinstance(v, list) and len(v) == rd // 2
                    and all(type(f) in (int, float) and 0 < f <= 1e6 for f in v)):
                raise bad(f"rope_scaling.{key} is {_show(v)}, not a list of {rd // 2} numbers in (0, 1000000]")
            out[key] = [float(f) for f in v]
        return {**out, "original_max_position_embeddings": old(), "attention_factor": number("attention_factor")}
    factors = {key: number(key) for key in ("factor", "low_freq_factor", "high_freq_factor")}
    if not factors["high_freq_factor"] > factors["low_freq_factor"]:
        raise bad("rope_scaling.high_freq_factor is not above its low_freq_factor")
    return {"rope_type": "llama3", **factors, "original_max_position_embeddings": old()}


def _default(raw: dict, name: str, default: object) -> object:
    """raw[name], with a missing key or JSON null meaning the default (as the browser reads it)."""
    v = raw.get(name)
    return default if v is None else v


def _show(v: object) -> str:
    """A value as an error message shows it, short (as the browser's messages do)."""
    if v is _MISSING:
        return "missing"
    try:
        s = json.dumps(v)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 40 else s[:40] + "…"
