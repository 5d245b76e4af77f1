"""The pure-Python BPETokenizer gives exactly Hugging Face tokenizers' ids (and llama.cpp's on the corpus).

The oracle is HF `tokenizers` itself: on the committed corpus, on 20,000+ seeded random strings
(scripts, symbols, every whitespace, digits of many scripts, contractions in odd casing, added tokens,
emoji sequences), on every code point there is, for each pre-tokenizer nomoat writes, for the tiny
model and for a tokenizer.json with extra non-special added tokens.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from nomoat.bpe import BPETokenizer, translate
from nomoat.convert.tokenizer_export import PRE_TOKENIZERS
from nomoat.errors import InvalidModelError, UnsupportedModelError
from nomoat.model import load_tokenizer
from nomoat.tokenizer import HFTokenizer, byte_level_alphabet

from conftest import load_fixture

CORPUS = load_fixture("tokenizer_corpus.json")
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]

BLOCKS = [  # (first, last): scripts, marks, symbols, controls, private use, every plane
    (0x0000, 0x007F), (0x0080, 0x00FF), (0x0100, 0x024F), (0x0250, 0x02FF), (0x0300, 0x036F), (0x0370, 0x03FF),
    (0x0400, 0x052F), (0x0530, 0x058F), (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0700, 0x074F), (0x0780, 0x07BF),
    (0x0900, 0x097F), (0x0980, 0x09FF), (0x0B80, 0x0BFF), (0x0E00, 0x0E7F), (0x0F00, 0x0FFF), (0x10A0, 0x10FF),
    (0x1100, 0x11FF), (0x1200, 0x137F), (0x13A0, 0x13FF), (0x1680, 0x169F), (0x1780, 0x17FF), (0x1800, 0x18AF),
    (0x1C80, 0x1C8F), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20CF),
    (0x2100, 0x218F), (0x2190, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F), (0x2600, 0x27BF), (0x2C00, 0x2C5F),
    (0x2E80, 0x2EFF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3190, 0x31FF), (0x3200, 0x32FF), (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xA700, 0xA7FF), (0xAC00, 0xD7AF), (0xE000, 0xF8FF), (0xF900, 0xFAFF),
    (0xFB00, 0xFDFF), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF), (0x10000, 0x100FF), (0x10330, 0x1034F),
    (0x10400, 0x1044F), (0x10D40, 0x10D8F), (0x11DB0, 0x11DEF), (0x11F00, 0x11F5F), (0x12000, 0x1247F),
    (0x16A40, 0x16B8F), (0x1D400, 0x1D7FF), (0x1E800, 0x1E8DF), (0x1EC70, 0x1ED4F), (0x1F000, 0x1F0FF),
    (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0x2EBF0, 0x2EE5F), (0x30000, 0x3134F), (0xE0000, 0xE007F),
    (0xF0000, 0xFFFFF), (0x10FF00, 0x10FFFF),
]  # 1C80..: Unicode 16 letters; 10D40..: Garay (16); 11DB0..: Tolong Siki (17, its digits numeric to Digits only)
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
NOT_WHITE_SPACE = "\x1c\x1d\x1e\x1f\u200b\u180e\ufeff\u2060"  # \s to Python's re (the first four) or lookalikes
DIGITS = [
    "0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵", "०१२३४५", "০১২৩", "๐๑๒๓", "０１２３４５６７８９", "²³¹⁰⁴⁵⁹", "₀₁₂₉",
    "½¼¾⅓⅞↉", "ⅠⅡⅢⅫⅻↀↈ", "①②⑳⓪❶", "𝟎𝟏𝟗𝟘", "〇一二三", "𒐀𒐁", "𑽐𑽙", "\U00011de0\U00011de9",
    "㉐㉑", "\U0001ecac\U0001ecb1",
]
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll",
                "'lL", "'d", "'D", "'ſ", "'K", "’s", "''s", "'", "'x", "'ss", "'tt"]
WORDS = ["it", "DON", "I", "they", "We", "x", "", " you", "2", "é", "日本", "don", "Ω"]
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>", "<empty_output>",
         "<|im_start", "im_end|>", "<|", "|>", "<||>", "<repo", " hello", "o_n", "<jupyter_code"]
EMOJI = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "🇫🇷🇩🇪", "1️⃣", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "❤️‍🔥", "🧑‍🤝‍🧑", "\u200d", "\ufe0f", "😀"]
ASCII = ["Hello", "world", "def f(x):", "    return x", "\r\n", "\n\n", "  ", "!!!", "...", "a.b", "x=1;", "😀a",
         "https://example.com/?q=1", "{\"k\": [1, 2]}", "__init__", "CamelCase", "--flag", "$HOME", "#!"]


def fragment(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        lo, hi = rng.choice(BLOCKS)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 8)))
    if kind == 1:
        return "".join(rng.choice(WHITE_SPACE + NOT_WHITE_SPACE) for _ in range(rng.randint(1, 4)))
    if kind == 2:
        return "".join(rng.choice(rng.choice(DIGITS)) for _ in range(rng.randint(1, 7)))
    if kind == 3:
        return rng.choice(WORDS) + rng.choice(CONTRACTIONS)
    if kind == 7:
        return chr(rng.choice(CODE_POINTS))
    return rng.choice([ADDED, EMOJI, ASCII, ASCII][kind - 4])


def random_corpus(seed: int = 20261126, n: int = 20_000) -> list[str]:
    rng = random.Random(seed)
    return ["".join(fragment(rng) for _ in range(rng.randint(1, 10))) for _ in range(n)]


GENERATED = random_corpus()
ALL = CORPUS + GENERATED


def mismatches(bpe: BPETokenizer, hf: HFTokenizer, texts: list[str]) -> list[tuple[str, list[int], list[int]]]:
    return [(s, ours, theirs) for s in texts if (ours := bpe.encode(s)) != (theirs := hf.encode(s))]


@pytest.fixture(scope="module")
def smollm_json(default_model_dir) -> dict:
    return json.loads((Path(default_model_dir) / "tokenizer.json").read_text())


@pytest.fixture(scope="module")
def bpe(default_model_dir) -> BPETokenizer:
    return BPETokenizer.from_dir(default_model_dir)


@pytest.fixture(scope="module")
def hf(default_model_dir) -> HFTokenizer:
    return HFTokenizer(default_model_dir)


def lossless(tokenizer_json: dict, texts: list[str]) -> list[str]:
    """The texts whose every byte the vocab has: HF drops a byte it lacks (no unk token, no byte fallback),
    and SmolLM2's vocab lacks \x04 \x06 \x13 \x14 \x16 \x1d and lead bytes C0 C1 F1 F2 F5-FF."""
    vocab = tokenizer_json["model"]["vocab"]
    missing = {b for c, b in byte_level_alphabet().items() if c not in vocab}
    return [s for s in texts if not missing.intersection(s.encode())]


def package(tmp_path: Path, tokenizer_json: dict) -> Path:
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    return tmp_path


def test_generated_corpus_covers_what_it_claims():
    text = "".join(GENERATED)
    assert len(GENERATED) >= 20_000 and len(set(GENERATED)) > 19_000
    for needle in [*WHITE_SPACE, *NOT_WHITE_SPACE, *"".join(DIGITS), *CONTRACTIONS, *ADDED, *EMOJI]:
        assert needle in text, repr(needle)
    assert sum(any(lo <= ord(c) <= hi for c in text) for lo, hi in BLOCKS) == len(BLOCKS)


def test_equals_llama_cpp_on_the_corpus(bpe):
    expected = load_fixture("llama_tokens.json")["ids"]
    assert len(expected) == len(CORPUS)
    assert [(s, bpe.encode(s), ids) for s, ids in zip(CORPUS, expected, strict=True) if bpe.encode(s) != ids] == []


def test_equals_hf_on_generated_corpus(bpe, hf):
    assert mismatches(bpe, hf, ALL)[:5] == []


def test_equals_hf_on_every_code_point(bpe, hf):
    shuffled = CODE_POINTS.copy()
    random.Random(0).shuffle(shuffled)
    text = "".join(map(chr, shuffled))
    assert bpe.encode(text) == hf.encode(text)


@pytest.mark.parametrize("name", ["gpt2", "smollm", "llama-bpe"])
def test_pre_tokenizers_split_every_code_point_as_hf(smollm_json, name):
    """All code points in order: a code point put in another class (\\p{L}, \\p{N}, \\s, is_numeric or
    none) than HF's moves a piece boundary next to it."""
    tj = {**smollm_json, "pre_tokenizer": PRE_TOKENIZERS[name]}
    ours, theirs = BPETokenizer(tj), Tokenizer.from_str(json.dumps(tj)).pre_tokenizer
    text = "".join(map(chr, CODE_POINTS))
    assert ours.pre_tokenize(text) == [piece for piece, _ in theirs.pre_tokenize_str(text)]


def test_equals_hf_for_the_tiny_model(tiny_dir):
    assert json.loads((tiny_dir / "tokenizer.json").read_text())["model"]["vocab"].__len__() < 1000
    assert mismatches(BPETokenizer.from_dir(tiny_dir), HFTokenizer(tiny_dir), ALL)[:5] == []


@pytest.mark.parametrize("name", sorted(PRE_TOKENIZERS))
def test_equals_hf_for_every_pre_tokenizer_and_user_defined_tokens(smollm_json, tmp_path, name):
    user = [{"id": 49152 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False} for i, c in enumerate(["<repo", " hello", "o_n"])]
    tj = {**smollm_json, "pre_tokenizer": PRE_TOKENIZERS[name], "added_tokens": smollm_json["added_tokens"] + user}
    bpe, hf = BPETokenizer(tj), HFTokenizer(package(tmp_path, tj))
    assert hf.encode("<repo_name> hello<repo") == [3, 49153, 49152]  # longest first, then leftmost
    assert mismatches(bpe, hf, ALL)[:5] == []
    assert [s for s in lossless(tj, ALL) if bpe.decode(bpe.encode(s), skip_special_tokens=False) != s] == []


def test_added_token_ids_are_hfs_not_the_files(smollm_json, tmp_path):
    """HF gives an added token the vocab's id for its text, else the next id past the vocab and the
    added tokens so far: the ids written in the file are not read."""
    wrong = [{**smollm_json["added_tokens"][0], "id": i, "content": c, "special": False}
             for i, c in [(60000, "zzqq"), (60001, "hello"), (60002, "qqzz")]]
    tj = {**smollm_json, "added_tokens": smollm_json["added_tokens"] + wrong}
    bpe, hf = BPETokenizer(tj), HFTokenizer(package(tmp_path, tj))
    assert hf.encode("zzqq hello qqzz") == [49152, 216, smollm_json["model"]["vocab"]["hello"], 216, 49153]
    assert mismatches(bpe, hf, ["zzqq hello qqzz", "xhellozzqq", *(s + "zzqq" for s in GENERATED[:2000])]) == []


def test_decode_round_trips_every_string(bpe, smollm_json):
    texts = lossless(smollm_json, ALL)
    assert len(texts) > 13_000 and lossless(smollm_json, CORPUS) == CORPUS
    assert [s for s in texts if bpe.decode(bpe.encode(s), skip_special_tokens=False) != s] == []


def test_bytes_missing_from_the_vocab_vanish_as_in_hf(bpe, hf):
    text = "a\x04b \U00080000c"  # \x04 and the lead byte F2 are not in SmolLM2's vocab
    assert bpe.encode(text) == hf.encode(text)
    assert bpe.decode(bpe.encode(text), skip_special_tokens=False) == "ab \ufffd\ufffd\ufffdc"
    assert bpe.decode(bpe.encode("<|im_start|>assistant\nHi<|im_end|>")) == "assistant\nHi"


def test_translate_rewrites_classes_and_refuses_what_it_cannot_vouch_for():
    assert "\\p" not in translate(r"[^\s\p{L}\p{N}]+|\s+(?!\S)")
    for pattern in [r"\d+", r"\p{Han}", r"\w", r"[a[b]]", r"\bx"]:
        with pytest.raises(UnsupportedModelError):
            translate(pattern)


def test_unsupported_tokenizers_are_refused(smollm_json):
    for change in [{"normalizer": {"type": "NFC"}}, {"pre_tokenizer": {"type": "Whitespace"}},
                   {"pre_tokenizer": {"type": "Digits", "individual_digits": True}},
                   {"added_tokens": [{**smollm_json["added_tokens"][0], "lstrip": True}]}]:
        with pytest.raises(UnsupportedModelError):
            BPETokenizer({**smollm_json, **change})
    model = smollm_json["model"]
    with pytest.raises(InvalidModelError, match="not in the vocab"):  # HF refuses such a file too
        BPETokenizer({**smollm_json, "model": {**model, "merges": [*model["merges"], ["Hello", "zzqqzz"]]}})


def test_runs_with_the_standard_library_alone(default_model_dir):
    """As in Pyodide: no tokenizers, regex or numpy. Encodes the corpus to llama.cpp's ids."""
    code = (
        "import json, sys\n"
        "for m in ('tokenizers', 'regex', 'numpy', 'onnxruntime'): sys.modules[m] = None\n"
        "from nomoat.bpe import BPETokenizer\n"
        f"tok = BPETokenizer.from_dir({str(default_model_dir)!r})\n"
        "print(json.dumps([tok.encode(s) for s in json.load(sys.stdin)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(CORPUS), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == load_fixture("llama_tokens.json")["ids"]


def test_load_tokenizer_picks_hf_when_it_imports_else_bpe(default_model_dir, monkeypatch):
    assert type(load_tokenizer(default_model_dir)) is HFTokenizer
    assert type(load_tokenizer(Path(default_model_dir) / "tokenizer.json", prefer="bpe")) is BPETokenizer
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as in Pyodide: `import tokenizers` fails
    assert type(load_tokenizer(default_model_dir)) is BPETokenizer
    with pytest.raises(ImportError):
        load_tokenizer(default_model_dir, prefer="hf")
