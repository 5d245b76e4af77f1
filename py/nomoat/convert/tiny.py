"""A tiny random Llama GGUF (2 layers, hidden 64, vocab ~320) for fast tests.

It goes through exactly the path a real model does: GGUF file → converter → model package.
Its tokenizer is a byte-level BPE trained on a few sentences; its weights are random, quantized
to the same GGUF types as the default model (Q4_1 linears, Q8_0 embedding) unless asked otherwise:
any type nomoat reads, per tensor (write_weight). The `gguf` writer quantizes F32/F16/BF16 and
Q4_0/Q4_1/Q5_0/Q5_1/Q8_0; it has no K-quant quantizer, so K-quant blocks are random bytes with
f16 scales chosen to give the weights the intended spread.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.",
    "A small language model runs inside a web page, with no server and no key.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 2026. Café, naïve, 日本, 😀.",
    "user: hello there! assistant: hello, how can I help you today?",
]


def train_tokenizer(vocab_size: int = 320) -> tuple[list[str], list[str]]:
    """(tokens, merges) of a byte-level BPE trained on CORPUS; specials first (ids 0..2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return [t for t, _ in vocab], merges


# K-quant blocks (gguf/quants.py layouts): byte offsets of their f16 super-block scales d and dmin,
# each with its size relative to d (dmin chosen so that random integers give zero-mean weights).
RANDOM_BLOCK_SCALES = {"Q2_K": ((80, 1.0), (82, 1.5)), "Q3_K": ((108, 1.0),), "Q4_K": ((0, 1.0), (2, 7.5)),
                       "Q5_K": ((0, 1.0), (2, 15.5)), "Q6_K": ((208, 1.0),)}


def write_weight(w, name: str, a: np.ndarray, qtype: str, rng: np.random.Generator) -> None:
    """Add `a` (rows, cols) to the GGUF writer `w` as `qtype`: quantized by the gguf package where
    it can, else (K-quants) random blocks whose dequantized values have a's RMS."""
    from gguf import GGML_QUANT_SIZES, quants
    from gguf import GGMLQuantizationType as Q

    q = Q[qtype]
    if qtype not in RANDOM_BLOCK_SCALES:
        w.add_tensor(name, quants.quantize(a.astype(np.float32), q), raw_dtype=q)
        return
    size, type_size = GGML_QUANT_SIZES[q]
    if a.shape[1] % size:
        raise ValueError(f"{name}: {qtype} blocks hold {size} columns; this tensor has {a.shape[1]}.")
    blocks = rng.integers(0, 256, (a.shape[0], a.shape[1] // size, type_size), dtype=np.uint8)

    def set_scales(d: float) -> None:
        for at, rel in RANDOM_BLOCK_SCALES[qtype]:
            blocks[..., at:at + 2] = np.array([d * rel], np.float16).view(np.uint8)

    set_scales(1.0)
    rms = float(np.sqrt(np.mean(quants.dequantize(blocks.reshape(a.shape[0], -1), q) ** 2)))
    set_scales(float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) / rms)
    w.add_tensor(name, blocks.reshape(a.shape[0], -1), raw_dtype=q)


ARCHS = ("llama", "qwen2", "qwen3", "gemma3", "phi3")  # what make_tiny_gguf writes (and nomoat converts)


def write_tokenizer(w, tokens: list[str], types: list[int], merges: list[str], model: str = "gpt2") -> None:
    """The tiny byte-level BPE's metadata into a GGUFWriter: its tokens, types and merges, the smollm
    pre-tokenizer, bos 1, eos/pad 2, no BOS added, the ChatML template."""
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)


def make_tiny_gguf(path: str | Path, seed: int = 0, linear_type: str = "Q4_1", tied: bool = True,
                   n_layers: int = 2, hidden: int = 64, n_heads: int = 4, n_kv: int = 2,
                   inter: int = 128, context: int = 256, arch: str = "llama", tokenizer_model: str = "gpt2",
                   head_dim: int | None = None, rope_theta: float = 10000.0, sliding_window: int | None = None,
                   rope_scaling: dict | None = None, qkv_bias: bool = False, rope_dim: int | None = None,
                   embed_type: str = "Q8_0", types: dict[str, str] | None = None) -> Path:
    """Write the tiny model to `path`. tokenizer_model / linear_type other than the defaults, or an
    arch outside ARCHS, make files the converter must refuse (for its error tests).

    arch: one of ARCHS, with that architecture's tensors as llama.cpp's converter writes them:
    llama (Q/K rows permuted for adjacent-pair RoPE), qwen2 (q/k/v biases), qwen3 (q/k norms),
    gemma3 (q/k norms, post-norms, norms holding Gemma's +1 as llama.cpp's converter stores them;
    sliding_window, if given, is written as gemma3.attention.sliding_window), phi3 (attn_qkv and
    ffn_up = gate|up fused). head_dim:
    attention.key_length/value_length (default hidden / n_heads); qkv_bias: q/k/v biases for any
    arch (llama.cpp reads them for llama too). The weights are random: a llama file's Q/K rows
    need no permuting. rope_dim: rope.dimension_count (partial rotary, as Phi-4-mini's).

    rope_scaling, HF's dict, as llama.cpp's converters write it: llama3 → the rope_freqs tensor;
    linear → rope.scaling.type/factor (Gemma 3's); longrope → rope_factors_long/short (given, or
    made up: short near 1, long rising to ~40), rope.scaling.original_context_length and the
    attn_factor Phi3MiniModel computes, sqrt(1 + ln(context / original) / ln(original)).

    linear_type: every linear layer's GGUF type; embed_type: token_embd's (and output's, untied).
    types: overrides by tensor name ("blk.1.ffn_down") or name stem ("attn_v", "ffn_down",
    "token_embd", "output"), e.g. Q4_K_M's mix {"attn_v": "Q6_K", "ffn_down": "Q6_K"}. K-quant
    types need the tensor's columns (hidden, inter, heads * head_dim) to be multiples of 256."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens, merges = train_tokenizer()
    vocab = len(tokens)
    hd = head_dim or hidden // n_heads
    path = Path(path)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(rope_theta)
    w.add_rope_dimension_count(rope_dim or hd)
    if head_dim is not None:
        w.add_key_length(hd)
        w.add_value_length(hd)
    if sliding_window is not None:
        w.add_sliding_window(sliding_window)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    write_tokenizer(w, tokens, [3 if t in SPECIALS else 1 for t in tokens], merges, tokenizer_model)

    types = types or {}

    def quant(name: str, a: np.ndarray, qtype: str) -> None:
        stem = name.removesuffix(".weight")
        write_weight(w, name, a, types.get(stem, types.get(stem.split(".")[-1], qtype)), rng)

    def linear(name: str, n_out: int, n_in: int) -> None:
        quant(name, rng.normal(0, 1.5 / np.sqrt(n_in), (n_out, n_in)), linear_type)

    def norm(name: str, size: int = hidden) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.normal(size=size)).astype(np.float32))

    def bias(name: str, size: int) -> None:
        w.add_tensor(name, rng.normal(0, 0.5, size).astype(np.float32))

    # Gemma multiplies its embedding by sqrt(hidden): rows of RMS 1/sqrt(hidden) keep the residual
    # stream from being the input token's row (a model that repeats its last token)
    embed_std = 1.0 / np.sqrt(hidden) if arch == "gemma3" else 1.0
    quant("token_embd.weight", rng.normal(0, embed_std, (vocab, hidden)), embed_type)
    kind = None if rope_scaling is None else rope_scaling.get("rope_type")
    if kind in ("linear", "yarn"):  # (yarn: a file the converter must refuse)
        w.add_rope_scaling_type(gguf.RopeScalingType(kind))
        w.add_rope_scaling_factor(rope_scaling["factor"])
    elif kind == "longrope":  # convert_hf_to_gguf.py Phi3MiniModel
        half, old = (rope_dim or hd) // 2, rope_scaling["original_max_position_embeddings"]
        long = rope_scaling.get("long_factor", 40.0 ** (np.arange(half) / max(half - 1, 1)))
        short = rope_scaling.get("short_factor", 1 + 0.5 * np.arange(half) / half)
        w.add_rope_scaling_orig_ctx_len(old)
        scale = context / old
        w.add_rope_scaling_attn_factors(float(np.sqrt(1 + np.log(scale) / np.log(old))) if scale > 1 else 1.0)
        w.add_tensor("rope_factors_long.weight", np.asarray(long, np.float32))
        w.add_tensor("rope_factors_short.weight", np.asarray(short, np.float32))
    elif rope_scaling is not None:  # llama.cpp's converter: the llama3 divisors of each frequency
        from ..config import ModelConfig

        c = ModelConfig(vocab_size=1, hidden_size=hidden, intermediate_size=1, num_hidden_layers=1,
                        num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=1, rms_norm_eps=1e-5,
                        rope_theta=rope_theta, head_dim=hd, rope_scaling=rope_scaling)
        inv = 1.0 / rope_theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
        w.add_tensor("rope_freqs.weight", (inv / c.rope_inv_freqs(0)).astype(np.float32))
    for i in range(n_layers):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight")
        if arch == "phi3":
            linear(p + "attn_qkv.weight", (n_heads + 2 * n_kv) * hd, hidden)
        else:
            linear(p + "attn_q.weight", n_heads * hd, hidden)
            linear(p + "attn_k.weight", n_kv * hd, hidden)
            linear(p + "attn_v.weight", n_kv * hd, hidden)
        if arch == "qwen2" or qkv_bias:
            for x, n in (("q", n_heads), ("k", n_kv), ("v", n_kv)):
                bias(p + f"attn_{x}.bias", n * hd)
        if arch in ("qwen3", "gemma3"):
            norm(p + "attn_q_norm.weight", hd)
            norm(p + "attn_k_norm.weight", hd)
        linear(p + "attn_output.weight", hidden, n_heads * hd)
        if arch == "gemma3":
            norm(p + "post_attention_norm.weight")
        norm(p + "ffn_norm.weight")
        if arch == "phi3":
            linear(p + "ffn_up.weight", 2 * inter, hidden)
        else:
            linear(p + "ffn_gate.weight", inter, hidden)
            linear(p + "ffn_up.weight", inter, hidden)
        linear(p + "ffn_down.weight", hidden, inter)
        if arch == "gemma3":
            norm(p + "post_ffw_norm.weight")
    norm("output_norm.weight")
    if not tied:
        quant("output.weight", rng.normal(0, 1.0, (vocab, hidden)), embed_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
