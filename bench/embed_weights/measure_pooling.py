"""Pooling in the graph (fetch sentence_embedding) vs outside it (fetch last_hidden_state, pool in numpy):
CPython onnxruntime, 2 threads."""

import time

import numpy as np
import onnxruntime as ort
import tokenizers

from nomoat.backends.reference_encoder import mean_pool_normalize

tok = tokenizers.Tokenizer.from_file("models/all-MiniLM-L6-v2/tokenizer.json")
tok.no_padding()
tok.no_truncation()
rng = np.random.default_rng(0)
words = (
    "the a local model reads documents without sending them anywhere embeddings retrieval page question answer".split()
)
short = [" ".join(rng.choice(words, rng.integers(6, 14))) + "." for _ in range(64)]
long = [" ".join(rng.choice(words, 254)) for _ in range(8)]


def batch(texts):
    encs = [tok.encode(s).ids[:256] for s in texts]
    S = max(map(len, encs))
    ids = np.array([e + [0] * (S - len(e)) for e in encs])
    m = np.array([[1] * len(e) + [0] * (S - len(e)) for e in encs])
    return {"input_ids": ids, "attention_mask": m, "token_type_ids": np.zeros_like(ids)}


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
