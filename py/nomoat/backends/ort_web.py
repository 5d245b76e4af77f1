"""The browser backend (Pyodide): the model runs in the worker's JS engine.

Python holds handles, never tensors: the KV cache stays in JS (in the wasm decoder's memory, or
as GPU buffers), logits stay in JS and are sampled there. Per token one call crosses the FFI:
`engine.step(state, start, ids, sampler, mask)` → the next token id. The JS side is `nomoat_js`
(web/src/runtime.mjs); every JS object this module receives has one owner here that releases it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _compat
from ..config import ModelConfig
from ..sampling import SamplingParams


class WebState:
    """A KV cache in the JS engine. `tokens` mirrors what it holds, for prefix reuse; the JS side
    catches up with a truncation at its next step."""

    live = 0  # states holding a JS state (worker.resources())

    def __init__(self, js_state: Any, tokens: list[int] | None = None) -> None:
        self.js: Any = js_state  # JS state; owned here, released by close() (or when collected)
        self.tokens: list[int] = tokens or []
        WebState.live += 1

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]

    def fork(self) -> WebState:
        return WebState(self.js.fork(), list(self.tokens))

    def close(self) -> None:
        js, self.js = self.js, None
        if js is not None:
            WebState.live -= 1
            js.dispose()

    def __del__(self) -> None:
        self.close()


class WebSampler:
    """A JS sampler (next to the wasm decoder, or on the GPU); owned by one generation."""

    live = 0  # samplers holding a JS sampler (worker.resources())

    def __init__(self, js_sampler: Any) -> None:
        self.js: Any = js_sampler
        WebSampler.live += 1

    def close(self) -> None:
        js, self.js = self.js, None
        if js is not None:
            WebSampler.live -= 1
            js.dispose()


class OrtWebBackend:
    name = "ort_web"

    def __init__(self, engine: Any, config: ModelConfig) -> None:
        self.engine = engine  # the JS engine: nomoat's wasm decoder or onnxruntime-web
        self.device: str = engine.device  # "webgpu" | "wasm"
        self.config = config

    def new_state(self) -> WebState:
        return WebState(self.engine.newState())

    def new_sampler(self, params: SamplingParams, seen: Sequence[int] = ()) -> WebSampler:
        return WebSampler(self.engine.newSampler(_compat.to_js(params.__dict__), _compat.to_js(list(seen))))

    async def step(self, state: WebState, token_ids: Sequence[int], sampler: WebSampler | None = None,
                   allowed: bytes | None = None) -> int | None:
        # allowed (structured output): the constraint's bitmask as a Uint32Array (bit i & 31 of word
        # i >> 5 = token i may be chosen), the JS and GPU samplers' third argument.
        mask = None if allowed is None else _compat.to_js(memoryview(allowed).cast("I"))
        start = len(state.tokens)
        token = await self.engine.step(state.js, start, _compat.to_js(list(token_ids)),
                                       None if sampler is None else sampler.js, mask)
        state.tokens.extend(int(t) for t in token_ids)
        return None if sampler is None else int(token)

    async def forward_all(self, state: WebState, token_ids: Sequence[int]) -> list[list[float]]:
        start = len(state.tokens)
        flat = (await self.engine.logits(state.js, start, _compat.to_js(list(token_ids)))).to_py()
        state.tokens.extend(int(t) for t in token_ids)
        V = self.config.vocab_size
        return [list(flat[i * V:(i + 1) * V]) for i in range(len(token_ids))]

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.dispose()



class OrtWebEncoder:
    """An embedding model's encoder in the worker's JS engine (runtime.loadModel of a package of kind
    "embedding"): embed.Embedder's backend. One call per batch: `engine.encode(ids, mask, batch, seq)`
    takes two Int32Arrays (rows of `seq`) and answers a Float32Array of batch x dimensions."""

    name = "ort_web"

    def __init__(self, engine: Any, dimensions: int) -> None:
        self.engine = engine  # the JS engine; owned here, released by close()
        self.device: str = engine.device  # "webgpu" | "wasm"
        self.dimensions = dimensions

    async def encode(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> list[memoryview]:
        from array import array

        batch, seq = len(input_ids), len(input_ids[0])
        ids = array("i", [t for row in input_ids for t in row])
        mask = array("i", [m for row in attention_mask for m in row])
        flat = (await self.engine.encode(_compat.to_js(memoryview(ids)), _compat.to_js(memoryview(mask)),
                                         batch, seq)).to_py()  # a memoryview of float32
        d = self.dimensions
        return [flat[i * d:(i + 1) * d] for i in range(batch)]

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.dispose()
