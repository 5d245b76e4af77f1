"""Sentence embeddings: an Embedder turns texts into unit vectors with an embedding package's encoder.

    emb = nomoat.load("all-MiniLM-L6-v2")          # CPython; in the browser: await nomoat.load(...)
    vectors = await emb.embed(["a", "b"])           # a list of 384-float lists, one per text
    matrix = await emb.embed(texts, as_numpy=True)  # (len(texts), 384) float32, where numpy imports

Texts are checked before any work (InvalidOptionError for a non-string or an empty list;
ContextOverflowError for a text over max_tokens unless truncate=True), tokenized ([CLS] … [SEP]),
sorted by length and run in batches padded to their longest text, so a batch of short sentences
costs what short sentences cost. The encoder backend has one method (async encode(input_ids,
attention_mask) → one sentence_embedding row per text): onnxruntime on CPython
(backends/ort_native.OrtNativeEncoder), the page's JS engine in Pyodide (backends/ort_web.OrtWebEncoder),
or the numpy oracle (backends/reference_encoder.ReferenceEncoder).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from . import _compat
from .chat import usv
from .errors import AbortedError, ContextOverflowError, InvalidModelError, InvalidOptionError

BATCH_ROWS = 16  # texts per encoder call at most: length-sorted batches of 16 pad less than one of 64 (64 short
# sentences in the page: 436 vs 531 ms, bench/README.md's embeddings section) and an abort waits for one batch
BATCH_TOKENS = 4096  # rows x padded length per call at most: bounds the (rows, heads, S, S) attention scores


class EncoderBackend(Protocol):
    device: str

    async def encode(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> Sequence[Sequence[float]]:
        """One sentence_embedding row per input row (rows padded to one length; token types are 0)."""
        ...


class Embedder:
    """An embedding model: a tokenizer (WordPiece) and an encoder backend. Awaitable, like Model."""

    def __init__(self, name: str, tokenizer, backend: EncoderBackend, *, dimensions: int, max_tokens: int,
                 source: str | Path | None = None) -> None:
        self.name = name  # the package's folder name ("all-MiniLM-L6-v2")
        self.source = source if source is not None else name  # folder (CPython) or URL (browser)
        self.tokenizer = tokenizer  # wordpiece.WordPieceTokenizer or HFWordPiece
        self.backend = backend
        self.dimensions = dimensions
        self.max_tokens = max_tokens  # [CLS] and [SEP] included

    @property
    def device(self) -> str:
        return self.backend.device

    def count_tokens(self, text: str) -> int:
        """The text's length in tokens, [CLS] and [SEP] included, before any truncation."""
        if not isinstance(text, str):
            raise InvalidOptionError(f"count_tokens takes a string, not {type(text).__name__}.")
        return len(self._ids([usv(text)], None)[0])

    async def embed(self, texts: str | Sequence[str], *, truncate: bool = False, as_numpy: bool = False) -> Any:
        """The unit vectors of `texts` (one string, or a list of them), in order: a list of
        `dimensions`-float lists, or with as_numpy=True one (n, dimensions) float32 array.
        truncate: cut a text past max_tokens (as sentence-transformers does) instead of refusing it."""
        vectors, _ = await self.embed_counted(texts, truncate=truncate, as_numpy=as_numpy)
        return vectors

    async def embed_counted(self, texts: str | Sequence[str], *, truncate: bool = False, as_numpy: bool = False,
                            cancelled: Callable[[], bool] | None = None) -> tuple[Any, int]:
        """(embed()'s vectors, the tokens they took): what an OpenAI-style usage reports.
        cancelled: asked between batches; true raises AbortedError (the page's abort, the server's
        client gone)."""
        if not isinstance(truncate, bool):
            raise InvalidOptionError(f"truncate must be True or False, not {truncate!r}.")
        if as_numpy:
            try:
                import numpy as np
            except ImportError:
                raise InvalidOptionError("as_numpy=True needs numpy; install it, or take the lists.") from None
        items = self._texts(texts)
        ids = self._ids(items, self.max_tokens if truncate else None)
        for i, row in enumerate(ids):
            if len(row) > self.max_tokens:
                which = "The text" if isinstance(texts, str) else f"Text {i}"
                raise ContextOverflowError(
                    f"{which} is {len(row)} tokens; {self.name} reads at most {self.max_tokens}. Shorten it, or ask "
                    "for truncation (truncate=True; --truncate in `nomoat embed`) to embed only its first tokens.",
                    requested=len(row), context_window=self.max_tokens)
        vectors: list[Any] = [None] * len(ids)
        for batch in _batches(ids):
            if cancelled is not None and cancelled():
                raise AbortedError("The call was aborted.")
            S = max(len(ids[i]) for i in batch)
            rows = await self.backend.encode([ids[i] + [0] * (S - len(ids[i])) for i in batch],
                                             [[1] * len(ids[i]) + [0] * (S - len(ids[i])) for i in batch])
            for i, row in zip(batch, rows, strict=True):
                vectors[i] = row
        tokens = sum(map(len, ids))
        if as_numpy:
            return np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dimensions), tokens
        # numpy rows and memoryviews (the page's Float32Array) make their Python floats in one tolist() call
        return [v.tolist() if hasattr(v, "tolist") else [float(x) for x in v] for v in vectors], tokens

    def embed_sync(self, texts: str | Sequence[str], **options) -> Any:
        return _compat.run_sync(self.embed(texts, **options))

    def _texts(self, texts: object) -> list[str]:
        """A string or a non-empty list of strings, as valid Unicode (lone surrogates → U+FFFD)."""
        if isinstance(texts, str):
            return [usv(texts)]
        if not isinstance(texts, list | tuple):
            raise InvalidOptionError(f"embed takes a string or a list of strings, not {type(texts).__name__}.")
        if not texts:
            raise InvalidOptionError("embed got an empty list: pass at least one string.")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidOptionError(f"Text {i} is {type(t).__name__}, not a string: embed takes strings.")
        return [usv(t) for t in texts]

    def _ids(self, texts: list[str], max_length: int | None) -> list[list[int]]:
        batch = getattr(self.tokenizer, "encode_batch", None)
        if batch is not None:
            return batch(texts, max_length)
        return [self.tokenizer.encode(t, max_length) for t in texts]

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __await__(self):
        """`await nomoat.load(...)` works in both worlds (on CPython the model is already loaded)."""

        async def ready() -> Embedder:
            return self

        return ready().__await__()

    def __repr__(self) -> str:
        return f"<Embedder {self.name}: {self.dimensions} dimensions, {self.max_tokens} tokens, on {self.device}>"


def _batches(ids: list[list[int]]) -> list[list[int]]:
    """Indices of `ids` in batches: longest first, at most BATCH_ROWS texts and BATCH_TOKENS padded tokens each."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < BATCH_ROWS and \
                (len(batches[-1]) + 1) * len(ids[batches[-1][0]]) <= BATCH_TOKENS:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def embedding_info(manifest: dict, where: str = "nomoat.json") -> dict:
    """nomoat.json's "embedding" object, checked: dimensions, max_tokens, onnx (convert/encoder.py)."""
    info = manifest.get("embedding")

    def bad(what: str) -> InvalidModelError:
        return InvalidModelError(f"{where}: {what}; convert the model again ('nomoat convert').")

    if not isinstance(info, dict):
        raise bad('"embedding" is missing or not an object')
    for key, low, high in (("dimensions", 1, 65536), ("max_tokens", 2, 1 << 16)):
        if type(info.get(key)) is not int or not low <= info[key] <= high:
            raise bad(f'"embedding.{key}" is {str(info.get(key))[:40]}, not an integer from {low} to {high}')
    if not isinstance(info.get("onnx"), str) or info["onnx"] not in manifest.get("files", {}):
        raise bad(f'"embedding.onnx" is {str(info.get("onnx"))[:60]}, not a file of the package')
    if info.get("pooling", "mean") != "mean" or info.get("normalize", True) is not True:
        raise bad("the graph's pooling must be mean with normalize (what nomoat's converter writes)")
    return info


def load_embedder(model_dir: str | Path, manifest: dict, *, threads: int | None = None,
                  tokenizer: str = "auto") -> Embedder:
    """CPython: an embedding package (already checked by package.check_package) on onnxruntime.
    tokenizer: "auto" (HF tokenizers where it imports), "hf" or "python" (wordpiece.py)."""
    from .backends.ort_native import OrtNativeEncoder
    from .wordpiece import load_wordpiece

    d = Path(model_dir)
    info = embedding_info(manifest, str(d / "nomoat.json"))
    backend = OrtNativeEncoder(d / info["onnx"], info["dimensions"], threads=threads)
    return Embedder(d.name, load_wordpiece(d, tokenizer), backend, dimensions=info["dimensions"],
                    max_tokens=info["max_tokens"], source=d)


def embedder_from_loaded(url: str, loaded: Any) -> Embedder:
    """Pyodide: an Embedder around what runtime.loadModel returned for a package of kind "embedding"
    ({config, tokenizer, tokenizerConfig, manifest, engine}); the engine is owned by the Embedder."""
    from .backends.ort_web import OrtWebEncoder
    from .wordpiece import WordPieceTokenizer

    info = embedding_info(json.loads(loaded.manifest), f"{url} nomoat.json")
    name = url.rstrip("/").rsplit("/", 1)[-1] or url
    return Embedder(name, WordPieceTokenizer(json.loads(loaded.tokenizer)),
                    OrtWebEncoder(loaded.engine, info["dimensions"]), dimensions=info["dimensions"],
                    max_tokens=info["max_tokens"], source=url)


async def load_web_embedder(url: str, device: str, request_id: int | None = None) -> Embedder:
    """Pyodide: load an embedding package through the JS runtime (fetch, verify, cache, engine)."""
    from .errors import UnsupportedModelError

    loaded = await (await _compat.js_runtime()).loadModel(url, device, request_id)
    if getattr(loaded, "kind", None) != "embedding":
        loaded.engine.dispose()
        raise UnsupportedModelError(f"{url} is a chat model, not an embedding model: use it with llm.create(), "
                                    "and an embedding model (all-MiniLM-L6-v2) for embeddings.")
    return embedder_from_loaded(url, loaded)
