"""The numpy sampler (CPython backends): small logits processors and a seeded choice.

Order (as Hugging Face): allowed-token mask → repetition penalty → temperature (0 = greedy argmax) →
top-k → top-p → min-p → draw. The options were validated when SamplingParams was built.
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


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or k >= logits.size:
        return logits
    kth = np.partition(logits, -k)[-k]
    return np.where(logits >= kth, logits, -np.inf)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def top_p_mask(probs: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose mass reaches p (always >= 1 token)."""
    if p >= 1.0:
        return probs
    order = np.argsort(-probs, kind="stable")
    cum = np.cumsum(probs[order])
    n_keep = int(np.searchsorted(cum, p)) + 1
    out = np.zeros_like(probs)
    out[order[:n_keep]] = probs[order[:n_keep]]
    return out / out.sum()


def min_p_mask(probs: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens less likely than min_p times the most likely one."""
    if min_p <= 0:
        return probs
    out = np.where(probs >= min_p * probs.max(), probs, 0.0)
    return out / out.sum()


class Sampler:
    """Chooses the next token from logits (vocab,). Same seed and inputs → same choices.

    Each call passes the token ids that joined the sequence since the previous call (the prompt
    first, then one token at a time); the sampler remembers them for the repetition penalty.
    `allowed` (structured output) is a bitmask of the tokens that may be chosen (allowed_only)."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**63)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._seen: set[int] = set()

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
        x = top_k_mask(x.astype(np.float64) / p.temperature, p.top_k)
        probs = min_p_mask(top_p_mask(softmax(x), p.top_p), p.min_p)
        return int(self._rng.choice(probs.size, p=probs))
