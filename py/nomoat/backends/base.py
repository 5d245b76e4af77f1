"""The backend contract: one generation step over a KV state. Everything else builds on it.

A backend runs the decoder somewhere (onnxruntime on CPython, nomoat's wasm decoder or
onnxruntime-web in the browser, plain numpy for reference). The generation loop never knows which,
and never sees logits: `step` appends token ids to a state and returns the next token id, chosen
by a sampler that runs where the logits are. One call per token, so two sessions stepping at once
can never read each other's logits.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def close(self) -> None:
        """Release the storage now (the state is unusable after)."""


class Sampler(Protocol):
    """Chooses tokens for one generation; owned by the loop, closed when the generation ends."""

    def close(self) -> None: ...


class Backend(Protocol):
    name: str  # "ort_native", "ort_web", "reference"
    device: str  # "cpu", "wasm", "webgpu"
    config: ModelConfig

    def new_state(self) -> State: ...

    def new_sampler(self, params: SamplingParams, seen: Sequence[int]) -> Sampler:
        """A sampler for one generation; `seen` (the prompt's ids) starts its repetition-penalty set."""
        ...

    async def step(self, state: State, token_ids: Sequence[int], sampler: Sampler | None = None,
                   allowed: bytes | None = None) -> int | None:
        """Append token_ids to state; with a sampler, return the next token id chosen from the last
        position's logits (only among `allowed`: a bitmask, bit i & 31 of little-endian 32-bit word
        i >> 5 = token i), else None (a prefill only)."""
        ...

    async def forward_all(self, state: State, token_ids: Sequence[int]) -> Any:
        """Append token_ids to state; every new position's logits, (len(token_ids), vocab). For tests
        and tools: the generation loop never needs logits."""
        ...


class LogitsBackend:
    """The contract built on `forward` for backends whose logits are numpy arrays in this process
    (CPython): the numpy sampler runs on them."""

    async def forward(self, state: Any, token_ids: Sequence[int], all_logits: bool = False) -> Any:
        raise NotImplementedError

    def new_sampler(self, params: SamplingParams, seen: Sequence[int] = ()) -> Any:
        from ..sampler import Sampler

        return Sampler(params, seen)

    async def step(self, state: Any, token_ids: Sequence[int], sampler: Any = None,
                   allowed: bytes | None = None) -> int | None:
        logits = await self.forward(state, token_ids)
        return None if sampler is None else int(sampler(logits, token_ids, allowed))

    async def forward_all(self, state: Any, token_ids: Sequence[int]) -> Any:
        return await self.forward(state, token_ids, all_logits=True)
