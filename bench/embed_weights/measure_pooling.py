"""Pooling in the graph (fetch sentence_embedding) vs outside it (fetch last_hidden_state, pool in numpy):
CPython onnxruntime, 2 threads."""

import time

import numpy as np
import onnxruntime as ort
from common import LONG, SHORT, load, padded  # bench/embed_weights/common.py (run as a script from the repo root)

from nomoat.backends.reference_encoder import mean_pool_normalize

tok = load()[3]
short, long = SHORT, LONG


def batch(texts):
    return padded(tok, texts)


so = ort.SessionOptions()
so.intra_op_num_threads = 2
sess = ort.InferenceSession("models/all-MiniLM-L6-v2/onnx/model.onnx", so, providers=["CPUExecutionProvider"])
for label, texts in (("64 short", short), ("8 x 256-token", long)):
    feeds = batch(texts)
    for how in ("in the graph", "numpy"):

        def run(how=how, feeds=feeds):
            if how == "numpy":
                h = sess.run(["last_hidden_state"], feeds)[0]
                return mean_pool_normalize(h, feeds["attention_mask"])
            return sess.run(["sentence_embedding"], feeds)[0]

        run()
        ts = []
        for _ in range(7):
            t = time.perf_counter()
            run()
            ts.append(time.perf_counter() - t)
        print(f"{label}: pooling {how}: median {np.median(ts) * 1000:.1f} ms")
