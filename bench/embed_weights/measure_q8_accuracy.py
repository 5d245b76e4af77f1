"""Accuracy of 8-bit weight formats for all-MiniLM-L6-v2: numpy reference with each format's dequantized
weights vs the f32 reference, cosine of sentence embeddings (helper B, issue 15)."""

import copy

import numpy as np
from common import SENTENCES, load, padded  # bench/embed_weights/common.py (run as a script from the repo root)

from nomoat.backends.reference_encoder import forward, mean_pool_normalize

cfg, w, files, tok = load()
feeds = padded(tok, SENTENCES)
ids, mask = feeds["input_ids"], feeds["attention_mask"]
ref = mean_pool_normalize(forward(cfg, w, ids, mask), mask)


def sym(a, block):
    N, K = a.shape
    b = a.reshape(N, K // block, block)
    s = np.abs(b).max(-1, keepdims=True) / 127
    return (np.rint(b / np.where(s == 0, 1, s)) * s).reshape(N, K)


def asym(a, block):
    N, K = a.shape
    b = a.reshape(N, K // block, block)
    lo = np.minimum(b.min(-1, keepdims=True), 0)
    hi = np.maximum(b.max(-1, keepdims=True), 0)
    s = (hi - lo) / 255
    s = np.where(s == 0, 1, s)
    zp = np.rint(-lo / s)
    return ((np.clip(np.rint(b / s) + zp, 0, 255) - zp) * s).reshape(N, K)


formats = {
    "sym block 32": lambda a: sym(a, 32),
    "sym block 16": lambda a: sym(a, 16),
    "asym block 32": lambda a: asym(a, 32),
    "asym block 16": lambda a: asym(a, 16),
    "sym per channel": lambda a: sym(a, a.shape[1]),
}
for name, f in formats.items():
    w2 = copy.deepcopy(w)
    for lw in w2.layers:
        for n in ("q_w", "k_w", "v_w", "o_w", "up_w", "down_w"):
            setattr(lw, n, f(getattr(lw, n)).astype(np.float32))
    e = mean_pool_normalize(forward(cfg, w2, ids, mask), mask)
    c = (e * ref).sum(-1)
    print(f"{name:16s} cosine vs f32 reference: min {c.min():.6f} mean {c.mean():.6f}")
