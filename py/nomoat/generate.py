"""The generation loop: feed the prompt, forward, sample, stream text, stop. Backend-agnostic."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .backends.base import Backend, Sampler, State
from .errors import AbortedError, ContextOverflowError, IncompleteOutputError
from .sampling import SamplingParams
from .tokenizer import ByteLevelDecoder, StreamDecoder


@dataclass
class Stats:
    """What one generation did; filled in as it runs."""

    prompt_tokens: int = 0  # tokens in the prompt, (reused + computed)
    reused_tokens: int = 0  # prompt tokens served from the KV cache
    completion_tokens: int = 0
    decode_steps: int = 0  # forward passes of one token
    finish_reason: str | None = None  # "stop" (EOS or a stop string) | "length" | None while running
    token_ids: list[int] = field(default_factory=list)
    ttft_s: float = 0.0  # start → first token chosen
    prefill_s: float = 0.0
    decode_s: float = 0.0
    forward_s: float = 0.0  # of decode_s, the time spent inside backend.step (the model and the sampler)
    mask_s: float = 0.0  # time spent computing allowed-token masks (structured output), all tokens
    masks: int = 0

    @property
    def prefill_tps(self) -> float:
        n = self.prompt_tokens - self.reused_tokens
        return n / self.prefill_s if self.prefill_s else 0.0

    @property
    def python_share(self) -> float:
        """Fraction of decode time spent outside backend.step (the Python loop, masks, text)."""
        return 1 - self.forward_s / self.decode_s if self.decode_s else 0.0

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens, "reused_tokens": self.reused_tokens,
            "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason,
            "token_ids": list(self.token_ids), "ttft_ms": self.ttft_s * 1000, "prefill_tps": self.prefill_tps,
            "decode_tps": self.decode_tps, "python_share": self.python_share,
            "mask_ms": 1000 * self.mask_s / self.masks if self.masks else 0.0,
        }

    @property
    def decode_tps(self) -> float:
        return self.decode_steps / self.decode_s if self.decode_s else 0.0


class Constraint(Protocol):
    """Limits the next token (constrain.GrammarConstraint, constrain.toolcall.ToolCallConstraint):
    allowed() is a bitmask of the token ids that may come next (bit i & 31 of 32-bit little-endian
    word i >> 5), which the backend's sampler applies where the logits are, or None for no limit
    (a tool-call constraint outside a call)."""

    complete: bool  # whether the text so far may end here
    mask_s: float  # time spent in allowed(), and how many calls
    masks: int

    def allowed(self) -> bytes | None: ...

    def advance(self, token: int) -> None: ...


class StopMatcher:
    """Holds back text that may be the start of a stop string, so stop text never leaks."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops, self.buf, self.hit = tuple(stops), "", False

    def push(self, text: str) -> str:
        self.buf += text
        found = [i for i in (self.buf.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.buf, self.hit = self.buf[: min(found)], "", True
            return out
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.buf.endswith(s[:k])), default=0)
        out, self.buf = self.buf[: len(self.buf) - hold], self.buf[len(self.buf) - hold:]
        return out

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


PREFILL_CHUNK = 64  # prompt tokens per backend step: an abort lands between two of them


def check(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise AbortedError("The call was aborted.")


async def prefill(backend: Backend, state: State, ids: Sequence[int], sampler: Sampler | None = None,
                  allowed: bytes | None = None, cancelled: Callable[[], bool] | None = None) -> tuple[int, int | None]:
    """Bring `state` to hold `ids`, computing only the tokens after its common prefix with them
    (at least one, for fresh logits), PREFILL_CHUNK at a time; `cancelled()` true between two chunks
    raises AbortedError. Returns (tokens reused, the first token chosen by `sampler`, or None)."""
    keep = min(common_prefix(state.tokens, ids), len(ids) - 1)
    state.truncate(keep)
    start = keep
    while len(ids) - start > PREFILL_CHUNK:
        check(cancelled)
        await backend.step(state, ids[start:start + PREFILL_CHUNK])
        start += PREFILL_CHUNK
    check(cancelled)
    return keep, await backend.step(state, ids[start:], sampler, allowed)


async def generate(backend: Backend, state: State, prompt_ids: Sequence[int], params: SamplingParams,
                   tokenizer: ByteLevelDecoder, stop_ids: Sequence[int], context_window: int,
                   stats: Stats, constraint: Constraint | None = None,
                   cancelled: Callable[[], bool] | None = None) -> AsyncIterator[str]:
    """Stream the completion of prompt_ids as text. `state` may hold an earlier conversation:
    only the tokens after its common prefix with prompt_ids are computed. A constraint limits each
    choice to the tokens it allows; running out of tokens before it is complete is an error.
    `cancelled()` is asked between prefill chunks and between tokens: true raises AbortedError."""
    if len(prompt_ids) >= context_window:
        raise ContextOverflowError(
            f"The prompt is {len(prompt_ids)} tokens; the context window is {context_window}. "
            "Shorten the prompt or start a new session.", requested=len(prompt_ids), context_window=context_window)
    t0 = time.perf_counter()
    sampler = backend.new_sampler(params, prompt_ids)  # runs where the logits are; closed below
    try:
        allowed = constraint.allowed() if constraint is not None else None
        keep, token = await prefill(backend, state, prompt_ids, sampler, allowed, cancelled)
        stats.prompt_tokens, stats.reused_tokens = len(prompt_ids), keep
        stats.prefill_s = stats.ttft_s = time.perf_counter() - t0
        t1, length = time.perf_counter(), len(prompt_ids)
        text, stop = StreamDecoder(tokenizer), StopMatcher(params.stop)
        while True:
            if token in stop_ids:
                stats.finish_reason = "stop"
                break
            if constraint is not None:
                constraint.advance(token)
            stats.token_ids.append(token)
            stats.completion_tokens += 1
            length += 1
            piece = stop.push(text.push(token))
            if piece:
                yield piece
            if stop.hit:
                stats.finish_reason = "stop"
                break
            if (params.max_tokens is not None and stats.completion_tokens >= params.max_tokens) \
                    or length >= context_window:
                stats.finish_reason = "length"
                break
            check(cancelled)
            allowed = constraint.allowed() if constraint is not None else None
            t2 = time.perf_counter()
            token = await backend.step(state, [token], sampler, allowed)  # the model and the sampler, one call
            stats.forward_s += time.perf_counter() - t2
            stats.decode_steps += 1
            stats.decode_s = time.perf_counter() - t1
    finally:
        sampler.close()
    if not stop.hit:
        tail = stop.push(text.flush()) + ("" if stop.hit else stop.flush())
        if tail:
            yield tail
    if constraint is not None:
        stats.mask_s, stats.masks = constraint.mask_s, constraint.masks
    if constraint is not None and not constraint.complete:
        raise IncompleteOutputError(
            f"The answer stopped after {stats.completion_tokens} tokens ({stats.finish_reason}) before it was "
            "complete (response_constraint); raise max_tokens (or shorten the conversation).")
