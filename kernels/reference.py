"""numpy reference for the WGSL sampling kernels (kernels/*.wgsl), used by tests/test_kernels.py
and bench/bench_kernels.py.

`js_sample` is the JS Sampler's algorithm (web/src/runtime.mjs) in float64, given the uniform u it
draws; the GPU sampler must choose the same token. The other functions model one kernel each.
"""

from __future__ import annotations

import numpy as np

ELEMS, BINS, PASSES = 1024, 256, 7
MASKED = np.float32(-3.0e38)


def mulberry32(seed: int):
    """The JS Sampler's seeded stream (runtime.mjs, gpu_sampler.mjs): a function giving u in [0, 1)."""
    s = seed & 0xFFFFFFFF

    def imul(a: int, b: int) -> int:
        return (a * b) & 0xFFFFFFFF

    def rand() -> float:
        nonlocal s
        s = (s + 0x6D2B79F5) & 0xFFFFFFFF
        t = s
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return rand


def bitmask(ids, vocab: int) -> np.ndarray:
    """The Uint32Array bitmask of a set of token ids: bit i of word i >> 5."""
    words = np.zeros((vocab + 31) // 32, np.uint32)
    for i in ids:
        words[i >> 5] |= np.uint32(1 << (i & 31))
    return words


def bits(words: np.ndarray, vocab: int) -> np.ndarray:
    """The boolean array (vocab,) of a bitmask."""
    return ((words[np.arange(vocab) >> 5] >> (np.arange(vocab) & 31).astype(np.uint32)) & 1).astype(bool)


def penalised(logits: np.ndarray, seen, penalty: float) -> np.ndarray:
    """The repetition penalty as the JS Sampler applies it (float64 arithmetic, stored as f32)."""
    x = np.asarray(logits, np.float32).copy()
    if penalty != 1:
        for t in sorted(set(int(t) for t in seen)):
            v = float(x[t])
            x[t] = np.float32(v / penalty if v > 0 else v * penalty)
    return x


def js_sample(logits, seen=(), *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
              u=0.5, allowed: np.ndarray | None = None) -> int:
    """The JS Sampler (runtime.mjs) step by step, with the draw u in [0, 1) given."""
    x = penalised(logits, seen, repetition_penalty).astype(np.float64)
    if allowed is not None:
        x[~allowed] = -np.inf
    if temperature == 0:
        return int(np.argmax(x))  # first maximum: ties → lower id
    ids = np.arange(x.size)
    order = np.lexsort((ids, -x))  # highest first, ties → lower id
    if 0 < top_k < x.size:
        order = order[:top_k]
    m = x[order[0]] / temperature
    probs = np.exp(x[order] / temperature - m)
    probs = probs / probs.sum()
    if top_p < 1:
        c, k = 0.0, 0
        while k < probs.size and c < top_p:
            c += probs[k]
            k += 1
        order, probs = order[:max(1, k)], probs[:max(1, k)]
    if min_p > 0:
        keep = probs >= min_p * probs[0]
        order, probs = order[keep], probs[keep]
    r = u * probs.sum()
    for i in range(order.size):
        r -= probs[i]
        if r <= 0:
            return int(order[i])
    return int(order[-1])


# --- one function per kernel --------------------------------------------------------------------

def prep(logits, seen_words=None, penalty=1.0, allowed_words=None):
    """sample_prep.wgsl: (work f32 (vocab,), partials (groups, 2) of (max f32, argmax))."""
    v = len(logits)
    x = np.asarray(logits, np.float32).copy()
    if seen_words is not None and penalty != 1:
        s = bits(seen_words, v)
        x[s] = np.where(x[s] > 0, x[s] / np.float32(penalty), x[s] * np.float32(penalty)).astype(np.float32)
    if allowed_words is not None:
        x[~bits(allowed_words, v)] = MASKED
    groups = (v + ELEMS - 1) // ELEMS
    part = [(x[g * ELEMS:(g + 1) * ELEMS].max(), g * ELEMS + int(np.argmax(x[g * ELEMS:(g + 1) * ELEMS])))
            for g in range(groups)]
    return x, part


def order_key(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, np.float32).view(np.uint32)
    return np.where(u & 0x80000000, ~u, u | 0x80000000).astype(np.uint32)


def keys(work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return order_key(work), (0xFFFFFF - np.arange(work.size)).astype(np.uint32)


def weights(work: np.ndarray, inv_temp: float) -> np.ndarray:
    m = work.max()
    w = np.exp((work.astype(np.float64) - m) * inv_temp)
    return np.where(work == MASKED, 0.0, w)


def digit(hi: np.ndarray, lo: np.ndarray, p: int) -> np.ndarray:
    return (hi >> (24 - 8 * p)) & 0xFF if p < 4 else (lo >> (16 - 8 * (p - 4))) & 0xFF


def hist(work, inv_temp, p=0, pref=(0, 0), bound=(0, 0), min_p=None):
    """select_hist.wgsl summed over workgroups: (count (256,), mass (256,)) of pass p's digits."""
    hi, lo = keys(work)
    w = weights(work, inv_temp)
    key = (hi.astype(np.uint64) << 24) | lo
    cand = key >= ((np.uint64(bound[0]) << 24) | bound[1])
    if min_p is not None:
        cand &= w >= min_p
    if p:
        shift = 56 - 8 * p
        cand &= (key >> shift) == (((np.uint64(pref[0]) << 24) | pref[1]) >> shift)
    d = digit(hi, lo, p)[cand]
    return np.bincount(d, minlength=BINS), np.bincount(d, weights=w[cand], minlength=BINS)
