"""SamplingParams: every sampling option, validated when built (pure Python: runs in Pyodide).

The processors that apply them live with each backend's sampler (numpy on CPython:
sampler.py; on the GPU in the browser)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InvalidOptionError


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidOptionError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int | None = None  # None = fresh entropy each call
    max_tokens: int | None = None  # None: the answer runs to its end of turn or to the context window
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _check(_is_num(self.temperature) and self.temperature >= 0,
               f"temperature must be a number >= 0 (0 = greedy), got {self.temperature!r}.")
        _check(_is_int(self.top_k) and self.top_k >= 0, f"top_k must be an int >= 0 (0 = off), got {self.top_k!r}.")
        _check(_is_num(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}.")
        _check(_is_num(self.min_p) and 0 <= self.min_p < 1, f"min_p must be in [0, 1), got {self.min_p!r}.")
        _check(_is_num(self.repetition_penalty) and self.repetition_penalty > 0,
               f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty!r}.")
        _check(self.seed is None or (_is_int(self.seed) and self.seed >= 0),
               f"seed must be an int >= 0 or None, got {self.seed!r}.")
        _check(self.max_tokens is None or (_is_int(self.max_tokens) and self.max_tokens >= 1),
               f"max_tokens must be an int >= 1 or None (no limit but the context window), got {self.max_tokens!r}.")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        _check(isinstance(stop, (list, tuple)) and all(isinstance(s, str) and s for s in stop),
               f"stop must be a non-empty string or a list of them, got {self.stop!r}.")
        object.__setattr__(self, "stop", tuple(stop))

    @classmethod
    def build(cls, **options) -> SamplingParams:
        """Like the constructor, but an unknown option name is an InvalidOptionError that lists
        the valid ones (a misspelt 'temprature' must not pass silently or as a TypeError)."""
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        _check(not unknown, f"unknown sampling option(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}.")
        return cls(**options)

    def replace(self, **overrides) -> SamplingParams:
        return SamplingParams.build(**{**self.__dict__, **overrides}) if overrides else self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
