"""Accuracy of int16 arithmetic for the encoder's linear layers (the wasm decoder's i32x4.dot_i16x8_s scheme):
activations quantized to int16 per 32-block (symmetric), weights int16 per 32-block; numpy, vs the f32 reference."""

import numpy as np
from common import SENTENCES, load, padded  # bench/embed_weights/common.py (run as a script from the repo root)

import nomoat.backends.reference_encoder as R

cfg, w, files, tok = load()
feeds = padded(tok, SENTENCES)
ids, mask = feeds["input_ids"], feeds["attention_mask"]
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
