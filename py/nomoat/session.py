"""A multi-turn conversation: history, sampling options, and a KV cache reused across turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from . import _compat
from .chat import check_messages
from .errors import ContextOverflowError, InvalidOptionError, UnsupportedSchemaError
from .generate import Stats, generate
from .sampling import SamplingParams

if TYPE_CHECKING:
    from .model import Model


class Session:
    def __init__(self, model: Model, system: str | None = None, messages: list[dict] | None = None,
                 **sampling) -> None:
        self.model = model
        self.params = SamplingParams.build(**sampling)
        self.messages: list[dict] = []
        if system is not None:
            if not isinstance(system, str):
                raise InvalidOptionError(f"system must be a string, got {system!r}.")
            self.messages.append({"role": "system", "content": system})
        if messages:
            check_messages(messages)
            self.messages.extend(dict(m) for m in messages)
        self.state = model.backend.new_state()
        self.last: Stats | None = None  # stats of the latest prompt
        self._lock: asyncio.Lock | None = None  # prompts on one session run in order, never interleaved
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def context_window(self) -> int:
        return self.model.context_window

    @property
    def context_usage(self) -> int:
        """Tokens the conversation so far occupies (what the next prompt builds on)."""
        return len(self.model.encode_chat(self.messages, add_generation_prompt=False)) if self.messages else 0

    def _queue(self) -> asyncio.Lock:
        """The lock that orders prompts, for the running event loop. The *_sync wrappers run
        each call on a fresh loop; a prompt still streaming on another loop is an error."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            if self._lock is not None and self._lock.locked():
                raise InvalidOptionError(
                    "This session is still streaming a prompt on another event loop; finish or close "
                    "that stream first (or clone() the session)."
                )
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def prompt_streaming(self, text: str, response_constraint: dict | None = None,
                               **sampling) -> AsyncIterator[str]:
        """Stream the answer to `text`; the exchange joins the history when it ends (also when
        the caller stops early: what was produced is kept). response_constraint: a JSON Schema
        (the subset in constrain/schema.py); the answer is then compact JSON valid against it, or
        IncompleteOutputError if max_tokens ran out first."""
        if not isinstance(text, str):
            raise InvalidOptionError(f"prompt must be a string, got {type(text).__name__}.")
        params = self.params.replace(**sampling)
        constraint = self._constraint(response_constraint, params)
        async with self._queue():
            turn = [*self.messages, {"role": "user", "content": text}]
            ids = self.model.encode_chat(turn, add_generation_prompt=True)
            self.last = stats = Stats()
            parts: list[str] = []
            refused = False
            try:
                async for piece in generate(self.model.backend, self.state, ids, params, self.model.tokenizer,
                                            self.model.stop_ids, self.context_window, stats, constraint):
                    parts.append(piece)
                    yield piece
            except ContextOverflowError:
                refused = True  # nothing ran: the history stays as it was
                raise
            finally:
                if not refused:
                    self.messages = [*turn, {"role": "assistant", "content": "".join(parts)}]

    async def prompt(self, text: str, response_constraint: dict | None = None, **sampling) -> str:
        return "".join([piece async for piece in self.prompt_streaming(text, response_constraint, **sampling)])

    def _constraint(self, schema: dict | None, params: SamplingParams):
        if schema is None:
            return None
        if self.model.backend.name == "ort_web":
            raise UnsupportedSchemaError("response_constraint works on CPython only for now (the browser backend "
                                         "samples on the GPU, without the token mask).")
        if params.stop:
            raise InvalidOptionError("stop strings cannot be combined with response_constraint (they could cut "
                                     "the JSON short); the answer ends when its JSON is complete.")
        from .constrain import JSONConstraint

        return JSONConstraint(schema, self.model.tokenizer, self.model.stop_ids)

    def clone(self) -> Session:
        """An independent session with the same history; the KV cache is copied, not recomputed."""
        other = Session.__new__(Session)
        other.model, other.params, other.messages = self.model, self.params, [dict(m) for m in self.messages]
        other.state, other.last, other._lock, other._lock_loop = self.state.fork(), None, None, None
        return other

    # Thin synchronous wrappers (CPython).
    def prompt_sync(self, text: str, response_constraint: dict | None = None, **sampling) -> str:
        return _compat.run_sync(self.prompt(text, response_constraint, **sampling))

    def prompt_streaming_sync(self, text: str, response_constraint: dict | None = None, **sampling) -> Iterator[str]:
        return _compat.iter_sync(self.prompt_streaming(text, response_constraint, **sampling))
