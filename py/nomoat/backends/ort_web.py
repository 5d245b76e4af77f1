"""onnxruntime-web in the browser (Pyodide): the decoder graph runs in the worker's JS engine.

Python holds handles, never tensors: the KV cache stays in JS (on WebGPU, as GPU buffers fed
back to the next step), logits stay in JS and are sampled there; per token only the token id
and a handle cross the FFI. The JS side is `nomoat_js` (web/src/worker.mjs); this module owns
every JS proxy it creates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _compat
from ..config import ModelConfig
from ..sampling import SamplingParams


class WebState:
    """A KV cache in the JS engine. `tokens` mirrors what it holds, for prefix reuse."""

    def __init__(self, js_state: Any, tokens: list[int] | None = None) -> None:
        self.js = js_state  # JS KVState; owned here, disposed in __del__
        self.tokens: list[int] = tokens or []

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]  # the JS side catches up before the next forward

    def fork(self) -> WebState:
        return WebState(self.js.fork(), list(self.tokens))

    def __del__(self) -> None:
        js = getattr(self, "js", None)
        if js is not None:
            js.dispose()


class OrtWebBackend:
    name = "ort_web"

    def __init__(self, engine: Any, config: ModelConfig) -> None:
        self.engine = engine  # JS Engine (one ort.InferenceSession)
        self.device: str = engine.device  # "webgpu" | "wasm"
        self.config = config

    @classmethod
    async def create(cls, onnx_bytes: Any, device: str, config_json: str, config: ModelConfig) -> OrtWebBackend:
        engine = await (await _compat.js_runtime()).createEngine(onnx_bytes, device, config_json)
        return cls(engine, config)

    def new_state(self) -> WebState:
        return WebState(self.engine.newState())

    def make_sampler(self, params: SamplingParams) -> Callable[..., Any]:
        js = self.engine.newSampler(_compat.to_js(params.__dict__))

        def sample(logits: Any, new_ids: Sequence[int], allowed: bytes | None = None) -> Any:
            # allowed (structured output): the constraint's bitmask, copied once into a Uint32Array
            # (bit i & 31 of word i >> 5 = token i may be chosen), the JS and GPU samplers' third argument.
            mask = None if allowed is None else _compat.to_js(memoryview(allowed).cast("I"))
            got = js.sample(logits, _compat.to_js(list(new_ids)), mask)
            return int(got) if isinstance(got, (int, float)) else got  # WebGPU: a promise of the id

        return sample

    async def forward(self, state: WebState, token_ids: Sequence[int], all_logits: bool = False) -> Any:
        if state.js.length > len(state.tokens):
            await state.js.truncate(len(state.tokens))
        logits = await self.engine.forward(state.js, _compat.to_js(list(token_ids)), all_logits)
        state.tokens.extend(int(t) for t in token_ids)
        return logits  # a JS Float32Array handle


async def fetch_package(url: str, device: str, request_id: int | None = None) -> Any:
    """config/tokenizer texts (str) and the graph for `device` (JS handles), with progress."""
    return await (await _compat.js_runtime()).fetchPackage(url, device, request_id)
