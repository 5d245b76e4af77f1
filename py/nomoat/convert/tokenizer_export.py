"""The GGUF's tokenizer metadata → Hugging Face tokenizer.json + tokenizer_config.json.

Byte-level BPE (tokenizer.ggml.model "gpt2"): the vocabulary, merges and token types are copied
as they are; control (3) and user-defined (4) tokens become added tokens kept whole. The
pre-tokenizer follows tokenizer.ggml.pre, the name llama.cpp uses to pick its split regex.

SentencePiece BPE (tokenizer.ggml.model "llama": Gemma, Llama-2, Mistral, Phi-3): pieces with scores,
"▁" for a space, <0xXX> byte pieces for what the vocabulary lacks. As Hugging Face's own Llama/Gemma
tokenizer.json: a normalizer writes spaces as "▁" (and, with tokenizer.ggml.add_space_prefix, puts
one before each stretch of text between added tokens, as llama.cpp does after each special token),
no pre-tokenizer, BPE with byte_fallback. SentencePiece merges the adjacent pair whose joined piece
has the highest score; BPE merges the pair of lowest rank, so the merges are every split of a normal
piece into two normal pieces, ranked by the joined piece's score (highest first). Control,
unknown and user-defined pieces are added tokens (llama.cpp writes a user-defined piece's "▁" as a
space, so it matches the raw text as llama.cpp matches it).
"""

from __future__ import annotations

from ..errors import UnsupportedModelError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # llama.cpp's token types
SPACE = "\u2581"  # "▁", SentencePiece's space

_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
PRE_TOKENIZERS = {
    "default": _BYTE_LEVEL,
    "gpt2": _BYTE_LEVEL,
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL],
    },
    "llama-bpe": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": _LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {**_BYTE_LEVEL, "use_regex": False},
        ],
    },
}


def tokenizer_json(meta: dict) -> dict:
    kind = meta.get("tokenizer.ggml.model")
    if kind == "llama":
        return _sentencepiece_json(meta)
    if kind != "gpt2":
        raise UnsupportedModelError(f"Tokenizer model {kind!r} is not supported; nomoat knows 'gpt2' (byte-level "
                                    "BPE) and 'llama' (SentencePiece BPE).")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise UnsupportedModelError(
            f"Tokenizer pre-tokenizer {pre!r} is not supported; nomoat knows {sorted(PRE_TOKENIZERS)}."
        )
    tokens, types = _tokens(meta)
    merges: list[str] = list(meta.get("tokenizer.ggml.merges") or [])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added(tokens, types),
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": _bos_processor(meta) or
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }


def _tokens(meta: dict) -> tuple[list[str], list[int]]:
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    types: list[int] = list(meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    return tokens, types


def _added(tokens: list[str], types: list[int]) -> list[dict]:
    """Control and unknown tokens (special: hidden in generated text) and user-defined ones, kept whole."""
    return [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": ty != USER_DEFINED}
            for i, (t, ty) in enumerate(zip(tokens, types, strict=True)) if ty in (UNKNOWN, CONTROL, USER_DEFINED)]


def _bos_processor(meta: dict) -> dict | None:
    """With tokenizer.ggml.add_bos_token: HF's TemplateProcessing that puts BOS first when encoding with
    add_special_tokens=True (nomoat's plain completion; a chat template writes its own BOS)."""
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if not meta.get("tokenizer.ggml.add_bos_token") or bos is None:
        return None
    text = meta["tokenizer.ggml.tokens"][bos]
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {text: {"id": text, "ids": [bos], "tokens": [text]}}}


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """SentencePiece's merge order as BPE ranks: for each normal piece, highest score first (then lower
    id), every split into two normal pieces (left piece's id ascending)."""
    normal = {t: i for i, (t, ty) in enumerate(zip(tokens, types, strict=True)) if ty == NORMAL}
    merges: list[tuple[str, str]] = []
    for i in sorted(normal.values(), key=lambda i: (-scores[i], i)):
        t = tokens[i]
        splits = [(normal[a], a, b) for k in range(1, len(t)) if (a := t[:k]) in normal and (b := t[k:]) in normal]
        merges += [(a, b) for _, a, b in sorted(splits)]
    return merges


def _sentencepiece_json(meta: dict) -> dict:
    tokens, types = _tokens(meta)
    scores = list(meta.get("tokenizer.ggml.scores") or [])
    if len(scores) != len(tokens) or len(set(tokens)) != len(tokens):
        raise UnsupportedModelError("A SentencePiece tokenizer (tokenizer.ggml.model 'llama') needs one score per "
                                    "token (tokenizer.ggml.scores) and no token twice; nomoat supports byte-level "
                                    "BPE ('gpt2') and SentencePiece BPE with scores.")
    if any(" " in t for t, ty in zip(tokens, types, strict=True) if ty == NORMAL):
        raise UnsupportedModelError("A SentencePiece piece holds a space (not '▁'); nomoat cannot write its merges.")
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    if unk is not None:
        types[unk] = UNKNOWN  # Gemma's GGUF marks <unk> as a control token
    byte_pieces = {f"<0x{b:02X}>" for b in range(256)}
    has_bytes = byte_pieces <= {t for t, ty in zip(tokens, types, strict=True) if ty == BYTE}
    space = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))  # llama.cpp's default for SentencePiece
    decoders = [{"type": "Replace", "pattern": {"String": SPACE}, "content": " "}, {"type": "ByteFallback"},
                {"type": "Fuse"}] + ([{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if prefix else [])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added(tokens, types),
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, space]}
        if prefix else space,
        "pre_tokenizer": None,
        "post_processor": _bos_processor(meta),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None if unk is None else tokens[unk],
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
            "byte_fallback": has_bytes, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [f"{a} {b}" for a, b in spm_merges(tokens, scores, types)],
        },
    }


def tokenizer_config(meta: dict, context_length: int) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))

    def tok(key: str) -> str | None:
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return None if i is None else tokens[i]

    config = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "bos_token": tok("bos"),
        "eos_token": tok("eos"),
        "pad_token": tok("padding"),
        "unk_token": tok("unknown"),
        "chat_template": meta.get("tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": context_length,
        "tokenizer_class": "LlamaTokenizer" if meta.get("tokenizer.ggml.model") == "llama" else "GPT2Tokenizer",
        "additional_special_tokens": [t for t, ty in zip(tokens, types, strict=True) if ty == CONTROL],
    }
    if not config["chat_template"]:  # a base model: no key at all, so nothing reads it as a chat model
        del config["chat_template"]
    return config
