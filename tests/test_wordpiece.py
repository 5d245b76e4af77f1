"""The pure-Python WordPiece tokenizer (nomoat.wordpiece, the browser's) equals Hugging Face `tokenizers`
on all-MiniLM-L6-v2's tokenizer.json: every code point through the normalizer and the pre-tokenizer,
a committed corpus (tests/fixtures/wordpiece_corpus.json, made by make_wordpiece_fixtures.py corpus:
accents, CJK, punctuation, control characters, words over 100 characters, numbers, emoji, special-token
text) with and without truncation at 256 and 512 tokens, and a seeded random corpus."""

from __future__ import annotations

import random

import pytest

from nomoat.wordpiece import BertNormalizer, HFWordPiece, WordPieceTokenizer, load_wordpiece, pre_tokenize

from conftest import load_fixture

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def minilm_dir():
    from nomoat.catalog import convert_named

    return convert_named("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def hf(minilm_dir):
    tok = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def wp(minilm_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_dir(minilm_dir)


def hf_ids(hf, texts: list[str], max_length: int | None = None) -> list[list[int]]:
    if max_length is None:
        hf.no_truncation()
    else:
        hf.enable_truncation(max_length)
    try:
        return [e.ids for e in hf.encode_batch(texts)]
    finally:
        hf.no_truncation()


CODE_POINTS = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def test_every_code_point_normalizes_and_splits_as_hf(hf):
    # "a" between code points: a base character (canonical class 0) keeps NFD's reordering from
    # crossing from one code point to the next, so one call compares each code point on its own.
    text = "a" + "a".join(CODE_POINTS) + "a"
    assert hf.normalizer.normalize_str(text) == BertNormalizer()(text)
    assert [w for w, _ in hf.pre_tokenizer.pre_tokenize_str(text)] == pre_tokenize(text)


def test_the_corpus_gives_hf_ids(hf, wp):
    corpus = load_fixture("wordpiece_corpus.json")
    assert [wp.encode(t) for t in corpus] == hf_ids(hf, corpus)
    for limit in (256, 512):
        assert [wp.encode(t, max_length=limit) for t in corpus] == hf_ids(hf, corpus, limit)
    assert max(len(ids) for ids in hf_ids(hf, corpus)) > 512  # truncation really cut something


ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßŒœĞİıŞ",  # accents
    "ΑΒΓΔΣσςαβγδ абвгдЖЗИЙ",  # Greek (final sigma), Cyrillic
    "東京日本北京欢迎你漢字中文한국어ソウルカタカナひらがな",  # CJK, kana, Hangul
    " \t\n\r\u00a0\u3000\u2009",  # white space
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’…—–¡¿・。、！？",  # punctuation
    "\u0300\u0301\u0308\u0303\u0327\u20dd",  # combining marks
    "\x00\x01\x07\x1b\x7f\u200b\u200d\ufeff\ufffd\u00ad",  # control and format characters
    "😀👍🏽❤️🇫🇷🤖✓★",  # emoji
    "½²①Ⅻ٣४",  # other numbers
]


def random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 12)):
        if rng.random() < 0.08:
            parts.append(rng.choice(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"]))
        elif rng.random() < 0.05:
            parts.append(chr(rng.choice([rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])))
        else:
            alphabet = rng.choice(ALPHABETS)
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.choice([1, 3, 8, 40, 120]))))
        parts.append(rng.choice(["", " ", " ", "\n"]))
    return "".join(parts)


def test_a_seeded_random_corpus_gives_hf_ids(hf, wp):
    rng = random.Random(15)
    corpus = [random_text(rng) for _ in range(3000)]
    assert [wp.encode(t) for t in corpus] == hf_ids(hf, corpus)
    assert [wp.encode(t, max_length=64) for t in corpus[:500]] == hf_ids(hf, corpus[:500], 64)


def test_the_hf_wrapper_and_the_loader(minilm_dir, wp):
    fast = load_wordpiece(minilm_dir)
    assert isinstance(fast, HFWordPiece) and isinstance(load_wordpiece(minilm_dir, "python"), WordPieceTokenizer)
    long = "word " * 1000  # the source's tokenizer.json truncates to 128: the wrapper must not
    assert fast.encode(long) == wp.encode(long) and len(wp.encode(long)) == 1002
    assert fast.encode(long, max_length=256) == wp.encode(long, max_length=256) and len(fast.encode(long, 256)) == 256
    assert fast.encode("") == wp.encode("") == [101, 102]


def test_pyodide_gives_hf_ids(minilm_dir, hf, tmp_path):
    """The same checks inside Pyodide itself (Node; wordpiece.py and errors.py only), whose Python 3.14
    has Unicode 16 (CPython 3.11 here: 14): every code point, the corpus, truncation at 256."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).parent.parent
    pyodide = root / "web" / "node_modules" / "pyodide"
    if not shutil.which("node") or not (pyodide / "pyodide.mjs").is_file():
        pytest.skip("needs node and web/node_modules/pyodide (cd web && npm ci)")
    texts = load_fixture("wordpiece_corpus.json")
    rng = random.Random(16)
    texts += [random_text(rng) for _ in range(300)]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    r = subprocess.run(["node", str(root / "tests" / "fixtures" / "pyodide_wordpiece.mjs"), str(pyodide),
                        str(minilm_dir / "tokenizer.json"), str(tmp_path / "texts.json"), str(tmp_path / "out.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    every = "a" + "a".join(CODE_POINTS) + "a"
    assert out["normalized"] == hf.normalizer.normalize_str(every)
    assert out["words"] == [w for w, _ in hf.pre_tokenizer.pre_tokenize_str(every)]
    assert out["ids"] == hf_ids(hf, texts) and out["ids_256"] == hf_ids(hf, texts, 256)
    print(f"Pyodide's unicodedata: Unicode {out['unicode']}")
