"""A random-weight model package of the default model's exact shape, for timing nomoat's WebGPU path
where the real one cannot travel (the GPU machine: bench/webgpu_node/run.sh).

    python3 bench/webgpu_node/make_model.py OUT_DIR            # SmolLM2-135M's shape
    python3 bench/webgpu_node/make_model.py OUT_DIR --tiny     # the tests' tiny model (2 layers)

SmolLM2-135M-Instruct's shape (models/SmolLM2-135M-Instruct/config.json): 30 layers, hidden 576,
FFN 1536, 9 heads / 3 KV heads (head_dim 64), vocab 49152, tied embeddings, rope base 100000,
context 8192; the default's GGUF types (Q4_1 linears, Q8_0 embedding). Written by
nomoat.convert.tiny.make_tiny_gguf (random weights, quantized by the `gguf` package) with the
tiny byte-level BPE padded to 49152 tokens (bench/make_synthetic.py's padding), then converted
by nomoat's own converter: the same graph, weight layout and sizes as the real package. The
weights are random: timings only, the model says nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "py"))
sys.path.insert(0, str(ROOT / "bench"))

SMOLLM2_135M = {"n_layers": 30, "hidden": 576, "inter": 1536, "n_heads": 9, "n_kv": 3, "context": 8192,
                "rope_theta": 100000.0}
VOCAB = 49152


def make(out: Path, tiny: bool = False, seed: int = 0) -> dict:
    from nomoat.convert import convert
    from nomoat.convert import tiny as tiny_mod

    out = Path(out)
    gguf_path = out.parent / (out.name + ".gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if tiny:
        tiny_mod.make_tiny_gguf(gguf_path, seed=seed)
    else:
        from make_synthetic import tokenizer

        tokens, _types, merges = tokenizer(VOCAB)
        train = tiny_mod.train_tokenizer
        tiny_mod.train_tokenizer = lambda *a, **k: (tokens, merges)
        try:
            tiny_mod.make_tiny_gguf(gguf_path, seed=seed, **SMOLLM2_135M)
        finally:
            tiny_mod.train_tokenizer = train
    t1 = time.perf_counter()
    convert(gguf_path, out)
    gguf_path.unlink()
    cfg = json.loads((out / "config.json").read_text())
    return {"dir": str(out), "random_weights": True, "gguf_s": round(t1 - t0, 1),
            "convert_s": round(time.perf_counter() - t1, 1),
            "bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
            **{k: cfg[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                                   "num_key_value_heads", "vocab_size", "tie_word_embeddings")}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny model instead of SmolLM2-135M's shape")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(make(args.out, args.tiny, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
