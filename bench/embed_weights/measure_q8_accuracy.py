"""Accuracy of 8-bit weight formats for all-MiniLM-L6-v2: numpy reference with each format's dequantized
weights vs the f32 reference, cosine of sentence embeddings (helper B, issue 15)."""

import copy

import numpy as np
import tokenizers

from nomoat.backends.reference_encoder import BertWeights, forward, mean_pool_normalize
from nomoat.convert.encoder import read_source

cfg, tensors, files = read_source("models/downloads/all-MiniLM-L6-v2.zip")
w = BertWeights.from_tensors(cfg, tensors)
tok = tokenizers.Tokenizer.from_str(files["tokenizer.json"].decode())
tok.no_padding()
tok.no_truncation()
sents = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog, twice!",
    "Café crème brûlée 東京",
    "How do I reset my password?",
    "Embeddings map text to vectors.",
    "ok",
    "The mitochondria is the powerhouse of the cell, as every biology student learns early on.",
    "Paris is the capital of France.",
]
encs = [tok.encode(s).ids for s in sents]
S = max(map(len, encs))
ids = np.array([e + [0] * (S - len(e)) for e in encs])
mask = np.array([[1] * len(e) + [0] * (S - len(e)) for e in encs])
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
