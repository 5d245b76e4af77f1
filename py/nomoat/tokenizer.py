"""Tokenizers: a model package's tokenizer.json (byte-level BPE, or SentencePiece BPE with byte fallback).

Decoding is pure Python (token → bytes: through the byte-level alphabet, or SentencePiece's "▁" for a
space and <0xXX> pieces for single bytes), so the browser and CPython decode identically;
`StreamDecoder` turns tokens into text without ever splitting a UTF-8 character. Encoding uses
Hugging Face `tokenizers` on CPython (HFTokenizer) and the pure-Python nomoat.bpe.BPETokenizer, which
gives the same ids, where `tokenizers` is missing (Pyodide); nomoat.model.load_tokenizer picks.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from itertools import accumulate, repeat
from pathlib import Path
from typing import Protocol

from .errors import InvalidModelError, ModelNotFoundError


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte value: char → byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def byte_level_bytes(tokens: list[str]) -> list[bytes]:
    """The bytes each byte-level token stands for (each character of byte_level_alphabet() is its byte),
    or, for a token with any other character, its UTF-8 (an added token's text). All tokens are
    translated and encoded as Latin-1 in one call each, at C speed (Pyodide builds a 49,152-token
    vocabulary's table in ~10 ms this way, ~90 ms a character at a time), then cut apart; if any token
    has a character outside the alphabet, token by token."""
    table = byte_level_table()
    try:
        raw = "".join(tokens).translate(table).encode("latin-1")
    except UnicodeEncodeError:
        return [_one_byte_level(t, table) for t in tokens]
    lengths = list(map(len, tokens))
    return [raw[e - n:e] for e, n in zip(accumulate(lengths), lengths, strict=True)]


def _one_byte_level(token: str, table: dict[int, str]) -> bytes:
    try:
        return token.translate(table).encode("latin-1")
    except UnicodeEncodeError:
        return token.encode()


def byte_level_table() -> dict[int, str]:
    """str.translate's table for byte_level_bytes: each alphabet character → the character of its byte
    (U+0000..U+00FF, which Latin-1 encodes as that byte); every other character below U+0100 → U+FFFF,
    which Latin-1 cannot encode (so, as a character above U+00FF outside the alphabet, it sends the
    token to its UTF-8)."""
    table = {ord(c): chr(b) for c, b in byte_level_alphabet().items()}
    return {**{c: "\uffff" for c in range(256)}, **table}


class Tokenizer(Protocol):
    vocab_size: int
    special_ids: frozenset[int]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]: ...

    def token_bytes(self, token_id: int) -> bytes: ...


SPACE = "\u2581"  # "▁": SentencePiece's space


def is_sentencepiece(tokenizer_json: dict) -> bool:
    """Whether the tokenizer.json is SentencePiece-style (its decoder turns "▁" back into a space) rather
    than byte-level."""
    decoder = tokenizer_json.get("decoder") or {}
    steps = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else [decoder]
    return any(s.get("type") == "Replace" and s.get("pattern") == {"String": SPACE} for s in steps)


def bos_ids(tokenizer_json: dict) -> list[int]:
    """The ids HF's post-processor puts before the text when encoding with add_special_tokens=True: a
    TemplateProcessing whose single template is special tokens then $A (BOS for Gemma, Llama);
    none for the ByteLevel post-processor or none."""
    post = tokenizer_json.get("post_processor") or {}
    if post.get("type") != "TemplateProcessing":
        return []
    single, specials = post["single"], post["special_tokens"]
    if not single or "Sequence" not in single[-1] or any("SpecialToken" not in s for s in single[:-1]):
        raise ValueError("post_processor: only special tokens before the text are supported")
    return [i for s in single[:-1] for i in specials[s["SpecialToken"]["id"]]["ids"]]


class ByteLevelDecoder:
    """token id → the bytes it stands for (byte-level or SentencePiece tokens). Special tokens
    (<|im_end|>, <end_of_turn> …) are hidden from generated text but kept when decoding with
    skip_special_tokens=False."""

    def __init__(self, tokenizer_json: dict) -> None:
        vocab: dict[str, int] = tokenizer_json["model"]["vocab"]
        added = tokenizer_json.get("added_tokens", [])
        self.vocab_size = max([*vocab.values(), *(a["id"] for a in added)]) + 1
        self._bytes: list[bytes] = [b""] * self.vocab_size  # (vocab,) raw bytes of every token
        if is_sentencepiece(tokenizer_json):
            for i, raw in zip(vocab.values(), map(str.encode, map(str.replace, vocab, repeat(SPACE), repeat(" "))),
                              strict=True):
                self._bytes[i] = raw
            for b in range(256):  # HF's ByteFallback decoder: <0xXX> is that byte
                if (i := vocab.get(f"<0x{b:02X}>")) is not None:
                    self._bytes[i] = bytes((b,))
        else:
            for i, raw in zip(vocab.values(), byte_level_bytes(list(vocab)), strict=True):
                self._bytes[i] = raw
        for a in added:
            self._bytes[a["id"]] = a["content"].encode()
        self.special_ids = frozenset(a["id"] for a in added if a["special"])
        self.bos_ids = bos_ids(tokenizer_json)  # put first by encode(text, add_special_tokens=True)

    def token_bytes(self, token_id: int) -> bytes:
        """What a generated token shows: its bytes, or b"" for a special token."""
        return b"" if token_id in self.special_ids else self._bytes[token_id]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        raw = self.token_bytes if skip_special_tokens else self._bytes.__getitem__
        return b"".join(raw(i) for i in ids).decode("utf-8", errors="replace")


class HFTokenizer(ByteLevelDecoder):
    """CPython: encoding by Hugging Face `tokenizers`, decoding by ByteLevelDecoder."""

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer as _HF

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ModelNotFoundError(f"No tokenizer.json in {model_dir}; re-run 'nomoat convert'.")
        try:
            text = path.read_text()
            super().__init__(json.loads(text))
            self._hf = _HF.from_str(text)
        except Exception as e:
            raise InvalidModelError(f"{path} is not a valid tokenizer ({e}); re-run 'nomoat convert'.") from e

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text → ids. Special tokens written in the text (e.g. "<|im_start|>") stay whole.
        add_special_tokens: the post-processor's tokens too (BOS where the model adds one: plain completion)."""
        return self._hf.encode(text, add_special_tokens=add_special_tokens).ids


class StreamDecoder:
    """Feed token ids, get text pieces; a multi-byte character is emitted only once complete.
    The concatenation of every piece plus flush() equals decode(all ids)."""

    def __init__(self, tokenizer: ByteLevelDecoder) -> None:
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._utf8.decode(self._tok.token_bytes(token_id))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)
