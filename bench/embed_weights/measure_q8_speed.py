"""CPython onnxruntime speed of the f32 and q8 (MatMulNBits 8-bit, block 32) encoder graphs, batch 64
(issue 15)."""

import time

import onnxruntime as ort
from common import LONG, SHORT, load, padded  # bench/embed_weights/common.py (run as a script from the repo root)

from nomoat.convert.encoder import build_encoder_graph

cfg, w, files, tok = load()
short, long = SHORT, LONG


def batch(texts):
    return padded(tok, texts)


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
