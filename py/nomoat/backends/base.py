"""The backend contract: one forward step over a KV state. Everything else builds on it.

A backend runs the decoder graph somewhere (onnxruntime on CPython, onnxruntime-web in the
browser, or plain numpy for reference). The generation loop never knows which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..config import ModelConfig
from ..sampling import SamplingParams


class State(Protocol):
    """A KV cache: the tokens it holds, in order. Backends own its storage."""

    tokens: list[int]  # the token ids whose keys/values are cached, (length,)

    def truncate(self, n: int) -> None:
        """Forget every position from n on (keep a common prefix for reuse)."""

    def fork(self) -> State:
        """An independent copy sharing nothing mutable with this one."""


class Backend(Protocol):
    name: str  # "ort_native", "ort_web", "reference"
    device: str  # "cpu", "wasm", "webgpu"
    config: ModelConfig

    def new_state(self) -> State: ...

    def make_sampler(self, params: SamplingParams) -> Callable[[Any, list[int]], int]:
        """A callable (logits, seen_ids) → next token id, running where the logits are."""
        ...

    async def forward(self, state: State, token_ids: Sequence[int], all_logits: bool = False) -> Any:
        """Append token_ids to state; return logits (vocab,) for the last position, or
        (len(token_ids), vocab) for every new position when all_logits."""
        ...
