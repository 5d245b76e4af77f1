"""The numpy sampler (CPython backends): small logits processors and a seeded choice.

The same processors, order, arithmetic and random stream as the browser's JS sampler
(web/src/sampler.js) and its GPU sampler, so the same seed gives the same text on every backend:
allowed-token mask → repetition penalty → temperature (0 = greedy argmax, lowest id on ties) →
rank (highest logit first, lower id first on ties; only the best top_k) → softmax in f64 → top-p
(the smallest prefix whose mass reaches p) → min-p → one mulberry32 draw over the kept prefix.
The options were validated when SamplingParams was built.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from .sampling import SamplingParams


def apply_repetition_penalty(logits: np.ndarray, seen: Sequence[int], penalty: float) -> np.ndarray:
    """Make every token already in `seen` less likely: positive logits / penalty, negative * penalty."""
    if penalty == 1.0 or not seen:
        return logits
    ids = np.unique(np.asarray(seen, np.int64))
    out = logits.copy()
    v = out[ids]
    out[ids] = np.where(v > 0, v / penalty, v * penalty)
    return out


def allowed_only(logits: np.ndarray, allowed: bytes) -> np.ndarray:
    """Every token outside `allowed` at -inf. allowed: a bitmask, bit i & 7 of byte i >> 3 = token i
    (the little-endian bytes of the Uint32Array words the JS samplers take); ids past its end are out."""
    keep = np.unpackbits(np.frombuffer(allowed, np.uint8), bitorder="little")[: logits.size].astype(bool)
    if keep.size < logits.size:
        keep = np.concatenate([keep, np.zeros(logits.size - keep.size, bool)])
    return np.where(keep, logits, np.float32(-np.inf))


def ranked(logits: np.ndarray, k: int) -> np.ndarray:
    """Token ids by logit, highest first, lower id first on ties; only the best k when 0 < k < vocab."""
    if 0 < k < logits.size:
        top = np.argpartition(-logits, k - 1)[:k]
        kth = logits[top].min()
        top = np.flatnonzero(logits >= kth)  # every id tied with the k-th competes, by id
        return top[np.lexsort((top, -logits[top]))][:k]
    return np.lexsort((np.arange(logits.size), -logits))


def softmax(logits: np.ndarray) -> np.ndarray:
    """exp(x - max) / sum, summed left to right (as the JS sampler sums)."""
    e = np.exp(logits - logits.max())
    return e / np.cumsum(e)[-1]


def top_p_count(probs: np.ndarray, p: float) -> int:
    """How many of the ranked `probs` top-p keeps: the smallest prefix whose mass reaches p (>= 1)."""
    if p >= 1.0:
        return probs.size
    return max(1, min(probs.size, int(np.searchsorted(np.cumsum(probs) >= p, True)) + 1))


def min_p_keep(probs: np.ndarray, min_p: float) -> np.ndarray:
    """Which of the ranked `probs` min-p keeps: those at least min_p times the most likely."""
    return probs >= min_p * probs[0] if min_p > 0 else np.ones(probs.size, bool)


class Mulberry32:
    """The seeded stream every nomoat sampler draws from: uniform floats in [0, 1)."""

    def __init__(self, seed: int) -> None:
        self.s = seed & 0xFFFFFFFF

    def __call__(self) -> float:
        self.s = (self.s + 0x6D2B79F5) & 0xFFFFFFFF
        t = self.s
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296


def _imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


class Sampler:
    """Chooses the next token from logits (vocab,). Same seed and inputs → same choices, here and in
    the browser.

    Each call passes the token ids that joined the sequence since the previous call; the sampler
    remembers them (and `seen`, the prompt) for the repetition penalty. `allowed` (structured
    output) is a bitmask of the tokens that may be chosen (allowed_only)."""

    def __init__(self, params: SamplingParams, seen: Sequence[int] = ()) -> None:
        self.params = params
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
        self.rand = Mulberry32(seed)
        self._seen: set[int] = {int(t) for t in seen}

    def close(self) -> None:
        pass  # nothing outside this process's heap

    def __call__(self, logits: np.ndarray, new_ids: Sequence[int], allowed: bytes | None = None) -> int:
        p = self.params
        self._seen.update(int(t) for t in new_ids)
        x = np.asarray(logits, np.float32)
        if allowed is not None:
            x = allowed_only(x, allowed)
        if p.repetition_penalty != 1.0:
            x = apply_repetition_penalty(x, list(self._seen), p.repetition_penalty)
        if p.greedy:
            return int(np.argmax(x))
        idx = ranked(x, p.top_k)
        if allowed is not None:  # masked tokens have probability 0: never drawn, even by rounding
            idx = idx[np.isfinite(x[idx])]
            if not idx.size:
                raise ValueError("No allowed token has a finite logit.")
        probs = softmax(x[idx].astype(np.float64) / p.temperature)
        n = top_p_count(probs, p.top_p)
        keep = min_p_keep(probs[:n], p.min_p)
        idx, probs = idx[:n][keep], probs[:n][keep]
        r = self.rand() * float(np.cumsum(probs)[-1])  # summed left to right, as in JS
        for i, q in enumerate(probs.tolist()):
            r -= q
            if r <= 0:
                return int(idx[i])
        return int(idx[-1])
