"""A tiny random Llama GGUF (2 layers, hidden 64, vocab ~320) for fast tests.

It goes through exactly the path a real model does: GGUF file → converter → model package.
Its tokenizer is a byte-level BPE trained on a few sentences; its weights are random, quantized
to the same GGUF types as the default model (Q4_1 linears, Q8_0 embedding) unless asked otherwise.
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


def make_tiny_gguf(path: str | Path, seed: int = 0, linear_type: str = "Q4_1", tied: bool = True,
                   n_layers: int = 2, hidden: int = 64, n_heads: int = 4, n_kv: int = 2,
                   inter: int = 128, context: int = 256, arch: str = "llama", tokenizer_model: str = "gpt2") -> Path:
    """Write the tiny model to `path`. arch / tokenizer_model / linear_type other than the
    defaults make files the converter must refuse (for its error tests)."""
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    rng = np.random.default_rng(seed)
    tokens, merges = train_tokenizer()
    vocab = len(tokens)
    hd = hidden // n_heads
    path = Path(path)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model(tokenizer_model)
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    def quant(name: str, a: np.ndarray, qtype: Q) -> None:
        w.add_tensor(name, quants.quantize(a.astype(np.float32), qtype), raw_dtype=qtype)

    def linear(name: str, n_out: int, n_in: int) -> None:
        quant(name, rng.normal(0, 1.5 / np.sqrt(n_in), (n_out, n_in)), Q[linear_type])

    def norm(name: str) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.normal(size=hidden)).astype(np.float32))

    quant("token_embd.weight", rng.normal(0, 1.0, (vocab, hidden)), Q.Q8_0)
    for i in range(n_layers):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight")
        linear(p + "attn_q.weight", n_heads * hd, hidden)
        linear(p + "attn_k.weight", n_kv * hd, hidden)
        linear(p + "attn_v.weight", n_kv * hd, hidden)
        linear(p + "attn_output.weight", hidden, n_heads * hd)
        norm(p + "ffn_norm.weight")
        linear(p + "ffn_gate.weight", inter, hidden)
        linear(p + "ffn_up.weight", inter, hidden)
        linear(p + "ffn_down.weight", hidden, inter)
    norm("output_norm.weight")
    if not tied:
        quant("output.weight", rng.normal(0, 1.0, (vocab, hidden)), Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
