"""Model: a loaded model package (config, tokenizer, chat template, backend); sessions come from it."""

from __future__ import annotations

import json
from pathlib import Path

from . import _compat
from .chat import render
from .config import ModelConfig
from .errors import InvalidModelError, InvalidOptionError
from .package import check_package
from .session import Session


class Model:
    def __init__(self, model_dir: Path, config: ModelConfig, tokenizer, backend) -> None:
        self.model_dir = model_dir
        self.config = config
        self.tokenizer = tokenizer
        self.backend = backend
        tc = json.loads((model_dir / "tokenizer_config.json").read_text())
        self.chat_template: str | None = tc.get("chat_template")
        self.bos_token, self.eos_token = tc.get("bos_token") or "", tc.get("eos_token") or ""
        self.stop_ids = frozenset(config.eos_token_ids) | ({2} if not config.eos_token_ids else frozenset())

    @property
    def context_window(self) -> int:
        return self.config.max_position_embeddings

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        if not self.chat_template:
            raise InvalidModelError(f"{self.model_dir} has no chat template; use a chat (instruct) model.")
        text = render(self.chat_template, messages, add_generation_prompt, self.bos_token, self.eos_token)
        return self.tokenizer.encode(text)

    def session(self, system: str | None = None, messages: list[dict] | None = None, **sampling) -> Session:
        """A conversation. sampling: temperature, top_k, top_p, min_p, repetition_penalty, seed,
        max_tokens, stop."""
        return Session(self, system=system, messages=messages, **sampling)

    async def prompt(self, text: str, **options) -> str:
        """One-shot answer in a fresh session."""
        system = options.pop("system", None)
        return await self.session(system=system, **options).prompt(text)

    def prompt_sync(self, text: str, **options) -> str:
        return _compat.run_sync(self.prompt(text, **options))


def load(path: str | Path | None = None, *, backend: str | None = None, threads: int | None = None,
         accuracy_level: int | None = None) -> Model:
    """Load a model package (a folder made by 'nomoat convert'); no path = the default model,
    converted on first use (CPython). backend: "ort_native" (CPython, the default there)."""
    backend = backend or _compat.default_backend()
    if path is None:
        from .convert import convert_default

        path = convert_default()
    model_dir = Path(path)
    check_package(model_dir)
    config = ModelConfig.from_dir(model_dir)
    if backend == "ort_native":
        from .backends.ort_native import OrtNativeBackend
        from .tokenizer import HFTokenizer

        return Model(model_dir, config, HFTokenizer(model_dir),
                     OrtNativeBackend(model_dir, config, threads=threads, accuracy_level=accuracy_level))
    raise InvalidOptionError(f"Unknown backend {backend!r}; choose 'ort_native' on CPython.")
