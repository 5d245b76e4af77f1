"""Model: a loaded model package (config, tokenizer, chat template, backend); sessions come from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from . import _compat, catalog
from .bpe import BPETokenizer
from .chat import completion_text, render, supports_tools, transcript_text, with_tool_prompt
from .config import ModelConfig
from .errors import InvalidOptionError
from .package import check_package, check_tokenizer_config, read_json
from .session import Session
from .tokenizer import HFTokenizer


class Streamed(str):
    """Text that was already printed as it streamed: a notebook does not display it again."""

    def _ipython_display_(self) -> None:
        pass


class Model:
    def __init__(self, source: str | Path, config: ModelConfig, tokenizer, backend, tokenizer_config: dict) -> None:
        self.source = source  # folder (CPython) or URL (browser)
        self.config = config
        self.tokenizer = tokenizer
        self.backend = backend
        self.chat_template: str | None = tokenizer_config.get("chat_template")
        self.bos_token = tokenizer_config.get("bos_token") or ""
        self.eos_token = tokenizer_config.get("eos_token") or ""
        self.stop_ids = frozenset(config.eos_token_ids or [2])

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def context_window(self) -> int:
        return self.config.max_position_embeddings

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True, suffix: str = "",
                    tools: list[dict] | None = None) -> list[int]:
        """Token ids of the conversation as the chat template renders it (with `tools` described, for
        templates that support them), then `suffix` (the start of the answer, for an assistant prefix).
        A base model (no chat template) gets plain text to continue (chat.completion_text), with BOS
        first where its tokenizer adds one."""
        if not self.chat_template:  # with tools: a transcript after nomoat's generic tool prompt (chat.py)
            text = transcript_text(messages, tools, add_generation_prompt) if tools else \
                completion_text(messages, str(self.source))
            return self.tokenizer.encode(text + suffix, add_special_tokens=True)
        if tools and not supports_tools(self.chat_template):  # nomoat's generic tool prompt instead
            messages, tools = with_tool_prompt(messages, tools), None
        text = render(self.chat_template, messages, add_generation_prompt, self.bos_token, self.eos_token, tools)
        return self.tokenizer.encode(text + suffix)

    def session(self, system: str | None = None, messages: list[dict] | None = None, **sampling) -> Session:
        """A conversation. sampling: temperature, top_k, top_p, min_p, repetition_penalty, seed,
        max_tokens, stop."""
        return Session(self, system=system, messages=messages, **sampling)

    async def prompt(self, text: str, *, stream: bool | None = None, response_constraint: dict | None = None,
                     **options) -> str:
        """One-shot answer in a fresh session. stream: also print the answer as it is generated
        (default: inside a Jupyter kernel, so it appears in the cell's output as it comes; the
        returned text then does not display a second time)."""
        system = options.pop("system", None)
        session = self.session(system=system, **options)
        if not (_compat.in_notebook() if stream is None else stream):
            return await session.prompt(text, response_constraint=response_constraint)
        parts: list[str] = []
        async for piece in session.prompt_streaming(text, response_constraint=response_constraint):
            print(piece, end="", flush=True)
            parts.append(piece)
        print(flush=True)
        return Streamed("".join(parts))

    def prompt_sync(self, text: str, **options) -> str:
        return _compat.run_sync(self.prompt(text, **options))

    def __await__(self):
        """`await nomoat.load(...)` works in both worlds (on CPython the model is already loaded)."""

        async def ready() -> Model:
            return self

        return ready().__await__()


def load_tokenizer(model_dir_or_json: str | Path, prefer: Literal["auto", "hf", "bpe"] = "auto"
                   ) -> HFTokenizer | BPETokenizer:
    """The tokenizer of a model package (its folder, or its tokenizer.json). "auto": HFTokenizer when
    `tokenizers` imports (fast, CPython), else the pure-Python BPETokenizer (same ids); "hf" / "bpe" force one."""
    path = Path(model_dir_or_json)
    model_dir = path.parent if path.name == "tokenizer.json" else path
    if prefer not in ("auto", "hf", "bpe"):
        raise ValueError(f"prefer must be 'auto', 'hf' or 'bpe', not {prefer!r}")
    if prefer != "bpe":
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            if prefer == "hf":
                raise
        else:
            return HFTokenizer(model_dir)
    return BPETokenizer.from_dir(model_dir)


DEFAULT_ACCURACY_LEVEL = 4  # see bench/README.md: 0 is exact f32 math but ~15x slower on CPU


def load(path: str | Path | None = None, *, device: str = "auto", threads: int | None = None,
         accuracy_level: int = DEFAULT_ACCURACY_LEVEL) -> Any:
    """Load a model package.

    CPython: a folder made by 'nomoat convert', or a model's name (catalog.py: "gemma-3-270m" …;
    no path = the default model), fetched and converted on first use; returns the Model (awaiting
    it also works), or for an embedding model ("all-MiniLM-L6-v2") an embed.Embedder.
    Browser (Pyodide, inside nomoat's worker): a URL, or a model's name (models/NAME/ next to the
    runtime files); returns an awaitable — `model = await nomoat.load(url, device="webgpu"|"wasm"|"auto")`.
    accuracy_level (CPython): onnxruntime's MatMulNBits accuracy level — 4 (default) computes
    with 8-bit activations like llama.cpp; 0 accumulates in f32 (exact, much slower on CPU).
    """
    if device not in ("auto", "cpu", "wasm", "webgpu"):
        raise InvalidOptionError(f"device must be 'auto', 'wasm', 'webgpu' (browser) or 'cpu', got {device!r}.")
    if _compat.IS_PYODIDE:
        return load_web(_compat.model_url(str(path)) if path is not None else _compat.default_model_url(), device)
    if device not in ("auto", "cpu"):
        raise InvalidOptionError(f"device {device!r} exists in the browser; on CPython nomoat runs on the CPU.")
    if path is None or (not Path(path).exists() and catalog.find(str(path))):
        path = catalog.convert_named(catalog.DEFAULT.name if path is None else str(path))
    model_dir = Path(path)
    manifest = check_package(model_dir)
    if manifest.get("kind", "llm") == "embedding":  # an embedding model (convert/encoder.py): an Embedder
        from .embed import load_embedder

        return load_embedder(model_dir, manifest, threads=threads)
    config = ModelConfig.from_dir(model_dir)
    from .backends.ort_native import OrtNativeBackend

    tokenizer_config = check_tokenizer_config(read_json(model_dir, "tokenizer_config.json"),
                                              str(model_dir / "tokenizer_config.json"))
    backend = OrtNativeBackend(model_dir, config, threads=threads, accuracy_level=accuracy_level)
    return Model(model_dir, config, load_tokenizer(model_dir), backend, tokenizer_config)


async def load_web(url: str, device: str, request_id: int | None = None) -> Any:
    """The browser path: the JS runtime loads the package and its engine (once); Python builds the
    tokenizer and the model around them (an Embedder for a package of kind "embedding")."""
    from .backends.ort_web import OrtWebBackend

    loaded = await (await _compat.js_runtime()).loadModel(url, device, request_id)
    if getattr(loaded, "kind", "llm") == "embedding":
        from .embed import embedder_from_loaded

        return embedder_from_loaded(url, loaded)
    config = ModelConfig.from_dict(json.loads(loaded.config))
    tokenizer = BPETokenizer(json.loads(loaded.tokenizer))
    return Model(url, config, tokenizer, OrtWebBackend(loaded.engine, config),
                 check_tokenizer_config(json.loads(loaded.tokenizerConfig)))
