"""Accuracy of int16 arithmetic for the encoder's linear layers (the wasm decoder's i32x4.dot_i16x8_s scheme):
activations quantized to int16 per 32-block (symmetric), weights int16 per 32-block; numpy, vs the f32 reference."""

import numpy as np
import tokenizers

import nomoat.backends.reference_encoder as R
from nomoat.convert.encoder import read_source

cfg, tensors, files = read_source("models/downloads/all-MiniLM-L6-v2.zip")
w = R.BertWeights.from_tensors(cfg, tensors)
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
ref = R.mean_pool_normalize(R.forward(cfg, w, ids, mask), mask)


def q16(a, block=32):  # symmetric int16 per block of the last axis, dequantized
    shp = a.shape
    b = a.reshape(*shp[:-1], shp[-1] // block, block)
    s = np.abs(b).max(-1, keepdims=True) / 32767
    s = np.where(s == 0, 1, s)
    return (np.rint(b / s) * s).reshape(shp)


class Q:  # a weight whose x @ W.T runs with int16 x and int16 W
    __array_ufunc__ = None  # numpy defers x @ Q to Q.__rmatmul__

    def __init__(self, W, quant_w):
        self.W = q16(W) if quant_w else W

    @property
    def T(self):
        return self

    def astype(self, f):
        return self

    def __rmatmul__(self, x):
        return q16(x) @ self.W.T.astype(np.float64)


for quant_w in (False, True):
    import copy

    w2 = copy.deepcopy(w)
    for lw in w2.layers:
        for n in ("q_w", "k_w", "v_w", "o_w", "up_w", "down_w"):
            setattr(lw, n, Q(getattr(lw, n), quant_w))
    e = R.mean_pool_normalize(R.forward(cfg, w2, ids, mask), mask)
    c = (e * ref).sum(-1)
    print(f"int16 activations, {'int16' if quant_w else 'f32'} weights: cosine min {c.min():.8f}")
