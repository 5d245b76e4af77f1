"""What the four measurements share: the original all-MiniLM-L6-v2 (config, weights, HF tokenizer without
padding or truncation), the accuracy sentences, the seeded speed texts, and padded batches."""

import numpy as np
import tokenizers

from nomoat.backends.reference_encoder import BertWeights
from nomoat.convert.encoder import read_source

SOURCE = "models/downloads/all-MiniLM-L6-v2.zip"  # made by `make setup` (catalog.py)

# The accuracy set: short sentences are the hardest for 8-bit weights.
SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog, twice!",
    "Café crème brûlée 東京",
    "How do I reset my password?",
    "Embeddings map text to vectors.",
    "ok",
    "The mitochondria is the powerhouse of the cell, as every biology student learns early on.",
    "Paris is the capital of France.",
]

# The speed set: 64 short sentences and 8 passages of ~256 tokens, seeded.
_rng = np.random.default_rng(0)
_WORDS = ("the a local model reads documents without sending them anywhere embeddings retrieval page question "
          "answer").split()
SHORT = [" ".join(_rng.choice(_WORDS, _rng.integers(6, 14))) + "." for _ in range(64)]
LONG = [" ".join(_rng.choice(_WORDS, 254)) for _ in range(8)]


def load():
    """(config, BertWeights, files, tokenizer) of the original model."""
    cfg, tensors, files = read_source(SOURCE)
    tok = tokenizers.Tokenizer.from_str(files["tokenizer.json"].decode())
    tok.no_padding()
    tok.no_truncation()
    return cfg, BertWeights.from_tensors(cfg, tensors), files, tok


def padded(tok, texts, limit=256):
    """input_ids, attention_mask, token_type_ids (numpy int64) of `texts`, padded to the longest."""
    encs = [tok.encode(s).ids[:limit] for s in texts]
    S = max(map(len, encs))
    ids = np.array([e + [0] * (S - len(e)) for e in encs])
    mask = np.array([[1] * len(e) + [0] * (S - len(e)) for e in encs])
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
