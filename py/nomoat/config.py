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
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InvalidModelError(f"{path} is not valid JSON ({e}); re-run 'nomoat convert'.") from e
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config.json") -> ModelConfig:
        names = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in raw.items() if k in names})
        except TypeError as e:
            raise InvalidModelError(f"{where} lacks a required field ({e}); re-run 'nomoat convert'.") from e
