"""ModelConfig: the numbers that shape a Llama-family decoder, read from config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InvalidModelError, ModelNotFoundError


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

    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.eos_token_id
        if eos is None:
            return []
        return list(eos) if isinstance(eos, list) else [eos]

    def to_json(self) -> dict:
        d = asdict(self)
        d["torch_dtype"] = "float32"
        d["hidden_act"] = "silu"
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
        model_type, archs = raw.get("model_type", "llama"), raw.get("architectures", ["LlamaForCausalLM"])
        if not isinstance(model_type, str):
            raise bad(f"model_type is {_show(model_type)}, not a string")
        if not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
            raise bad(f"architectures is {_show(archs)}, not a list of strings")
        return cls(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=n_layers,
            num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=whole("max_position_embeddings"),
            rms_norm_eps=real("rms_norm_eps", 1), rope_theta=real("rope_theta", 10**12), head_dim=head_dim,
            tie_word_embeddings=tie, bos_token_id=token("bos_token_id", vocab), eos_token_id=eos,
            pad_token_id=token("pad_token_id", vocab), model_type=model_type, architectures=list(archs),
        )


FIX = "convert the model again ('nomoat convert')"
# The largest config.json values taken; web/src/wasm_engine.mjs LIMITS holds the same numbers.
LIMITS = {"num_hidden_layers": 1024, "hidden_size": 65536, "intermediate_size": 262144, "num_attention_heads": 1024,
          "head_dim": 1024, "vocab_size": 1 << 24, "max_position_embeddings": 1 << 24}
_MISSING = object()


def _show(v: object) -> str:
    """A value as an error message shows it, short (as the browser's messages do)."""
    if v is _MISSING:
        return "missing"
    try:
        s = json.dumps(v)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 40 else s[:40] + "…"
