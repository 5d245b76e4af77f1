"""A synthetic ~1.1B Llama GGUF in llama.cpp's Q4_K_M mix, random weights (for bench/bench_large.py).

    .venv/bin/python bench/make_synthetic.py models/downloads/synthetic-1.1b-q4_k_m.gguf
    .venv/bin/python bench/make_synthetic.py OUT.gguf --layers 2      # a small one of the same kind

TinyLlama-1.1B's shape: 22 layers, hidden 2048, FFN 5632, 32 heads / 4 KV heads (head_dim 64),
vocab 32000, context 2048, rope base 10000, RMS eps 1e-5. Types as llama.cpp's Q4_K_M picks them
for a llama model: Q4_K for every linear, except attn_v and ffn_down in the layers llama.cpp's
`use_more_bits` names (the first and last eighth, and every third between) which are Q6_K; the
output (LM head, untied as TinyLlama's) Q6_K; the token embedding Q6_K (llama.cpp would take Q4_K
there; an 8-bit embedding is the case the page's decoder reads row by row); F32 norms.

The weights are random bits in each block with f16 super-block scales set so that every matrix's
dequantized RMS is 0.5/sqrt(fan-in) (the embedding's and head's 0.05), and the Q4_K mins at 7.5x
the scales (zero-mean weights): activations stay finite, the model says nothing meaningful. The
tokenizer is the tiny model's byte-level BPE (py/nomoat/convert/tiny.py train_tokenizer, ~320
tokens, ChatML template) padded to 32000 with unreachable byte-level tokens. Tensors are generated
one at a time and written as they are made (the ~0.6 GB file is never held in memory). Never
committed; same seed, same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "py"))
SHAPE = {"layers": 22, "hidden": 2048, "ffn": 5632, "heads": 32, "kv_heads": 4, "vocab": 32000, "context": 2048}
# byte offsets of the f16 super-block scale d (and Q4_K's dmin, relative to d) in each block
SCALES = {"Q4_K": ((0, 1.0), (2, 7.5)), "Q6_K": ((208, 1.0),)}


def more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits(i_layer, n_layers): the layers Q4_K_M gives Q6_K attn_v/ffn_down."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def random_blocks(rng: np.random.Generator, rows: int, cols: int, qtype: str, rms: float) -> np.ndarray:
    """(rows, cols) of `qtype` as GGUF bytes (rows, cols / 256 * type_size): random bits, f16 scales
    making the dequantized RMS about `rms` (calibrated on the first rows with the gguf package)."""
    from gguf import GGML_QUANT_SIZES, quants
    from gguf import GGMLQuantizationType as Q

    q = Q[qtype]
    size, type_size = GGML_QUANT_SIZES[q]
    blocks = rng.integers(0, 256, (rows, cols // size, type_size), dtype=np.uint8)

    def set_scales(d: float, sel=slice(None)) -> None:
        for at, rel in SCALES[qtype]:
            blocks[sel, :, at:at + 2] = np.array([d * rel], np.float16).view(np.uint8)

    sample = slice(0, min(rows, 64))
    set_scales(1.0, sample)
    got = float(np.sqrt(np.mean(quants.dequantize(blocks[sample].reshape(-1, cols // size * type_size), q) ** 2)))
    set_scales(rms / got)
    return blocks.reshape(rows, -1)


def tokenizer(vocab: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, types, merges): the tiny model's byte-level BPE, padded to `vocab` tokens that no
    merge makes (so text never tokenizes to them)."""
    sys.path.insert(0, str(HERE.parent / "py"))
    from nomoat.convert.tiny import SPECIALS, train_tokenizer

    tokens, merges = train_tokenizer()
    have = set(tokens)
    pad = (f"Ġ~{i:05d}" for i in range(vocab))
    tokens = tokens + [t for t in pad if t not in have][: vocab - len(tokens)]
    return tokens, [3 if t in SPECIALS else 1 for t in tokens], merges


def make(path: Path, seed: int = 0, **shape: int) -> dict:
    """Writes the model to `path`; returns its shape, tensor types and sizes."""
    import gguf
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as Q

    from nomoat.convert.tiny import write_tokenizer

    s = {**SHAPE, **shape}
    L, H, ffn, nq, nkv, V = s["layers"], s["hidden"], s["ffn"], s["heads"], s["kv_heads"], s["vocab"]
    hd = H // nq
    rng = np.random.default_rng(seed)
    tokens, types, merges = tokenizer(V)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("synthetic-1.1b")
    w.add_block_count(L)
    w.add_context_length(s["context"])
    w.add_embedding_length(H)
    w.add_feed_forward_length(ffn)
    w.add_head_count(nq)
    w.add_head_count_kv(nkv)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_file_type(15)  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    write_tokenizer(w, tokens, types, merges)

    # (name, kind, rows, cols, type): kind "q" a quantized matrix with RMS 0.5/sqrt(cols), "e" the
    # embedding/head (RMS 0.05), "n" an F32 norm of `cols` ones (+ a little noise)
    plan: list[tuple[str, str, int, int, str]] = [("token_embd.weight", "e", V, H, "Q6_K")]
    for i in range(L):
        p, wide = f"blk.{i}.", "Q6_K" if more_bits(i, L) else "Q4_K"
        plan += [(p + "attn_norm.weight", "n", 1, H, "F32"), (p + "attn_q.weight", "q", nq * hd, H, "Q4_K"),
                 (p + "attn_k.weight", "q", nkv * hd, H, "Q4_K"), (p + "attn_v.weight", "q", nkv * hd, H, wide),
                 (p + "attn_output.weight", "q", H, nq * hd, "Q4_K"), (p + "ffn_norm.weight", "n", 1, H, "F32"),
                 (p + "ffn_gate.weight", "q", ffn, H, "Q4_K"), (p + "ffn_up.weight", "q", ffn, H, "Q4_K"),
                 (p + "ffn_down.weight", "q", H, ffn, wide)]
    plan += [("output_norm.weight", "n", 1, H, "F32"), ("output.weight", "e", V, H, "Q6_K")]
    for name, kind, rows, cols, t in plan:
        if kind == "n":
            w.add_tensor_info(name, [cols], np.dtype(np.float32), cols * 4)
        else:
            size, type_size = GGML_QUANT_SIZES[Q[t]]
            nbytes = rows * cols // size * type_size
            w.add_tensor_info(name, [rows, nbytes // rows], np.dtype(np.uint8), nbytes, raw_dtype=Q[t])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    counts: dict[str, int] = {}
    for _name, kind, rows, cols, t in plan:
        if kind == "n":
            w.write_tensor_data((1 + 0.05 * rng.standard_normal(cols)).astype(np.float32))
        else:
            w.write_tensor_data(random_blocks(rng, rows, cols, t, 0.05 if kind == "e" else 0.5 / np.sqrt(cols)))
        counts[t] = counts.get(t, 0) + 1
    w.close()
    params = sum(rows * cols for _, kind, rows, cols, _ in plan)
    return {**s, "head_dim": hd, "parameters": params, "tensor_types": counts, "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=SHAPE["layers"])
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent / "py"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = make(args.out, args.seed, layers=args.layers)
    print(f"{args.out}: {info['bytes'] / 2**20:.0f} MiB, {info['parameters'] / 1e9:.2f}B parameters, "
          f"types {info['tensor_types']}, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
