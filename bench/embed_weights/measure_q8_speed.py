"""CPython onnxruntime speed of the f32 and q8 (MatMulNBits 8-bit, block 32) encoder graphs, batch 64
(issue 15)."""

import time

import numpy as np
import onnxruntime as ort
import tokenizers

from nomoat.backends.reference_encoder import BertWeights
from nomoat.convert.encoder import build_encoder_graph, read_source

cfg, tensors, files = read_source("models/downloads/all-MiniLM-L6-v2.zip")
w = BertWeights.from_tensors(cfg, tensors)
tok = tokenizers.Tokenizer.from_str(files["tokenizer.json"].decode())
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
for fmt, level in (("f32", None), ("q8", 0), ("q8", 4)):
    m = build_encoder_graph(cfg, w, fmt)
    if level is not None:
        for n in m.graph.node:
            for a in n.attribute:
                if a.name == "accuracy_level":
                    a.i = level
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for label, texts in (("64 short", short), ("8 x 256-token", long)):
        feeds = batch(texts)
        sess.run(["sentence_embedding"], feeds)
        t = time.perf_counter()
        n = 5
        for _ in range(n):
            sess.run(["sentence_embedding"], feeds)
        dt = (time.perf_counter() - t) / n
        print(f"{fmt} level {level}: {label}: {dt * 1000:.1f} ms/batch, {len(texts) / dt:.0f} sentences/s")
