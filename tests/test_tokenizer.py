"""Tokenizer parity with llama.cpp on the committed corpus, exact decoding, streaming decoding."""

from __future__ import annotations

import pytest

from nomoat.tokenizer import HFTokenizer, StreamDecoder

from conftest import load_fixture

CORPUS = load_fixture("tokenizer_corpus.json")


@pytest.fixture(scope="module")
def tok(default_model_dir) -> HFTokenizer:
    return HFTokenizer(default_model_dir)


def test_corpus_covers_what_the_issue_names():
    text = "".join(CORPUS)
    for needle in ["def ", "  ", "\n\n", "2024", "é", "😀", "日本語", "<|im_start|>", "<|im_end|>", "assistant\n"]:
        assert needle in text


def test_encode_equals_llama_cpp(tok):
    expected = load_fixture("llama_tokens.json")["ids"]
    assert len(expected) == len(CORPUS)
    mismatches = [(s, tok.encode(s), ids) for s, ids in zip(CORPUS, expected, strict=True) if tok.encode(s) != ids]
    assert mismatches == []


def test_special_tokens_stay_whole(tok):
    assert tok.encode("<|im_start|>user") == [1, *tok.encode("user")]
    assert tok.encode("x<|im_end|>") == [*tok.encode("x"), 2]


def test_decode_round_trips_every_string(tok):
    assert [s for s in CORPUS if tok.decode(tok.encode(s), skip_special_tokens=False) != s] == []


def test_generated_text_hides_special_tokens(tok):
    assert tok.decode(tok.encode("<|im_start|>assistant\nHi<|im_end|>")) == "assistant\nHi"


@pytest.mark.parametrize("text", [s for s in CORPUS if any(ord(c) > 127 for c in s)][:40])
def test_streaming_never_splits_a_character(tok, text):
    ids = tok.encode(text)
    stream = StreamDecoder(tok)
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    full = tok.decode(ids)
    assert "".join(pieces) == full
    if "\ufffd" not in full:
        assert not any("\ufffd" in p for p in pieces)


def test_streaming_emoji_arrives_whole(tok):
    ids = tok.encode("a 👨‍👩‍👧‍👦 b")
    assert len(ids) > 5  # the emoji spans several byte-level tokens
    stream = StreamDecoder(tok)
    pieces = [p for p in (stream.push(i) for i in ids) if p]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + stream.flush() == "a 👨‍👩‍👧‍👦 b"


def test_byte_level_bytes_equals_the_per_character_definition():
    """byte_level_bytes (str.translate + Latin-1 over all tokens at once, as the browser's tokenizer
    builds its 49,152-token table) equals the definition on seeded random vocabularies: every character
    in byte_level_alphabet() is its byte; a token with any other character is its UTF-8, whether that
    character lies below U+0100 (a control or space, which Latin-1 could otherwise encode), above it,
    or outside the BMP; empty tokens too."""
    import random

    from nomoat.tokenizer import byte_level_alphabet, byte_level_bytes

    alphabet = byte_level_alphabet()
    letters = list(alphabet)
    others = [chr(c) for c in range(0x200) if chr(c) not in alphabet] + ["é", "▁", "東", "😀", "\uffff"]
    assert any(ord(c) < 256 for c in others) and any(ord(c) > 255 for c in others)

    def definition(tok: str) -> bytes:
        try:
            return bytes(alphabet[c] for c in tok)
        except KeyError:
            return tok.encode()

    rng = random.Random(12)
    for odd in (0, 1, 3, 50):  # vocabularies with that many tokens holding a character outside the alphabet
        toks = ["".join(rng.choice(letters) for _ in range(rng.randint(0, 8))) for _ in range(2000)]
        for _ in range(odd):
            j = rng.randrange(len(toks))
            i = rng.randint(0, len(toks[j]))
            toks[j] = toks[j][:i] + rng.choice(others) + toks[j][i:]
        assert byte_level_bytes(toks) == [definition(t) for t in toks], odd
