r"""BPE encoding in pure Python, equal to Hugging Face `tokenizers` on nomoat's tokenizer.json.

For where `tokenizers` cannot run (Pyodide): only the standard library. HF's steps, in HF's order:
1. added tokens (specials like <|im_start|> and user-defined ones) are cut out of the raw text whole,
   leftmost first and longest at a tie, as HF's Aho-Corasick pass does;
2. byte-level BPE: the pre-tokenizers (Digits, Split, ByteLevel, alone or in a Sequence) split each
   stretch between them into words. Their regexes are Oniguruma's, rewritten for `re`: \p{L}, \p{N}
   and \s become explicit classes from _unicode_ranges (`re` has no \p{..}, and its \s also takes
   \x1c-\x1f); each word's UTF-8 bytes become GPT-2's printable characters.
   SentencePiece BPE: nomoat.spm normalizes each stretch ("▁" for a space) and gives its words and
   their first symbols (characters, <0xXX> byte pieces, the unknown token);
3. adjacent symbols merge, lowest merge rank first, leftmost at a tie (HF's Word::merge_all), with a
   per-word cache.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path

from . import _unicode_ranges as uranges
from .errors import InvalidModelError, ModelNotFoundError, UnsupportedModelError
from .spm import SentencePieceWords, normalizer
from .tokenizer import SPACE, ByteLevelDecoder, byte_level_alphabet, is_sentencepiece

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"  # ByteLevel's
CACHE_SIZE = 10_000  # words remembered, as HF's BPE cache


def _class(ranges: Iterable[tuple[int, int]]) -> str:
    """Ranges → the inside of a `re` character class."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_WHITE_SPACE = _class(uranges.WHITE_SPACE)
_CLASSES = {r"\p{L}": _class(uranges.LETTER), r"\p{N}": _class(uranges.NUMBER), r"\s": _WHITE_SPACE}
_NUMERIC = _class(uranges.NUMERIC)
_PLAIN_ESCAPES = {r"\r", r"\n", r"\t"} | {"\\" + c for c in "\\'\" ?+*.()[]{}|^$-/#"}


def translate(pattern: str) -> str:
    r"""An Oniguruma pattern (as tokenizer.json holds it) → the same pattern for Python's `re`.
    Rewrites \p{L}, \p{N}, \s and \S; refuses any other class escape rather than guess at it."""
    out, in_class = [], False
    for tok in re.findall(r"\\p\{\w+\}|\\.|.", pattern, re.DOTALL):
        if tok in _CLASSES:
            out.append(_CLASSES[tok] if in_class else f"[{_CLASSES[tok]}]")
        elif tok == r"\S" and not in_class:
            out.append(f"[^{_WHITE_SPACE}]")
        elif (tok.startswith("\\") and tok not in _PLAIN_ESCAPES) or (tok == "[" and in_class):
            raise UnsupportedModelError(f"Pre-tokenizer regex {pattern!r}: {tok!r} is not supported.")
        else:
            in_class = (in_class or tok == "[") and tok != "]"
            out.append(tok)
    return "".join(out)


def _isolate(pattern: str) -> Callable[[str], list[str]]:
    """HF's split with behavior Isolated: every match is a piece, and so is every stretch between matches."""
    regex = re.compile(pattern)

    def split(text: str) -> list[str]:
        pieces, end = [], 0
        for m in regex.finditer(text):
            pieces += [p for p in (text[end:m.start()], m.group()) if p]
            end = m.end()
        return pieces + [text[end:]] if end < len(text) else pieces

    return split


def _flatten(cfg: dict | None) -> list[dict]:
    """tokenizer.json's pre_tokenizer → its steps, Sequences unrolled."""
    cfg = cfg or {}
    return [step for sub in cfg["pretokenizers"] for step in _flatten(sub)] if cfg.get("type") == "Sequence" else [cfg]


def _splitter(cfg: dict) -> list[Callable[[str], list[str]]]:
    """One pre-tokenizer step → its split (none for ByteLevel without regex). ByteLevel's mapping of
    bytes to characters is left to the caller, which checks that ByteLevel comes last."""
    kind = cfg.get("type")
    if kind == "ByteLevel" and not cfg.get("add_prefix_space"):
        return [_isolate(translate(GPT2_PATTERN))] if cfg.get("use_regex", True) else []
    if kind == "Digits":  # char::is_numeric: each such char alone, or runs of them
        return [_isolate(f"[{_NUMERIC}]" + ("" if cfg.get("individual_digits") else "+"))]
    if kind == "Split" and cfg.get("behavior") == "Isolated" and not cfg.get("invert"):
        pat = cfg["pattern"]
        return [_isolate(translate(pat["Regex"]) if "Regex" in pat else re.escape(pat["String"]))]
    raise UnsupportedModelError(f"Pre-tokenizer {cfg!r} is not supported by the pure-Python tokenizer.")


def longest_first(words: Iterable[str]) -> str:
    """A regex for any of `words` that takes the longest at each position: their trie, each node
    trying its longer continuations before ending (thousands of added tokens stay fast to search)."""
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        alts = [re.escape(c) + chain(child) for c, child in sorted(node.items()) if c]
        body = alts[0] if len(alts) == 1 else f"(?:{'|'.join(alts)})" if alts else ""
        return f"(?:{body})?" if "" in node and body else body

    def chain(node: dict) -> str:  # a path without branches as one literal: a long token nests nothing
        text = ""
        while len(node) == 1 and "" not in node:
            (c, node), = node.items()
            text += re.escape(c)
        return text + pattern(node)

    return pattern(trie)


class BPETokenizer(ByteLevelDecoder):
    """Pure-Python BPE (byte-level, or SentencePiece-style with byte fallback): the same ids as
    HFTokenizer.encode, and ByteLevelDecoder's decoding."""

    def __init__(self, tokenizer_json: dict) -> None:
        """A tokenizer.json of the wrong shape (a wrong type anywhere) is an InvalidModelError, never
        another exception: the browser builds this from a package's bytes."""
        try:
            self._build(tokenizer_json)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, re.error) as e:
            raise InvalidModelError(f"tokenizer.json is not a valid tokenizer ({type(e).__name__}: {str(e)[:200]}); "
                                    "re-run 'nomoat convert'.") from e

    def _build(self, tokenizer_json: dict) -> None:
        model, added = tokenizer_json["model"], tokenizer_json.get("added_tokens", [])
        if model.get("type") != "BPE" or any(
                model.get(k) for k in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "ignore_merges")):
            raise UnsupportedModelError("The pure-Python tokenizer handles plain BPE (no dropout, affixes or "
                                        "ignore_merges).")
        if any(a.get(k) for a in added for k in ("normalized", "lstrip", "rstrip", "single_word")):
            raise UnsupportedModelError("The pure-Python tokenizer keeps added tokens only as raw, exact text.")
        super().__init__(tokenizer_json)
        self._spm: SentencePieceWords | None = None
        if is_sentencepiece(tokenizer_json):
            replaces = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
            norm = tokenizer_json.get("normalizer") or {}
            if tokenizer_json.get("pre_tokenizer") or replaces not in [norm, *norm.get("normalizers", [])]:
                raise UnsupportedModelError("The pure-Python tokenizer handles SentencePiece BPE with spaces "
                                            "normalized to '▁' and no pre-tokenizer.")
            self._normalize = normalizer(norm)
            self._spm = SentencePieceWords(model)
        else:
            steps = _flatten(tokenizer_json.get("pre_tokenizer"))
            if tokenizer_json.get("normalizer") or model.get("byte_fallback"):
                raise UnsupportedModelError("The pure-Python tokenizer handles byte-level BPE without a normalizer "
                                            "or byte fallback.")
            if [s.get("type") for s in steps].count("ByteLevel") != 1 or steps[-1].get("type") != "ByteLevel":
                raise UnsupportedModelError("The pure-Python tokenizer needs a ByteLevel pre-tokenizer, last.")
            self._splits = [split for step in steps for split in _splitter(step)]
            self._byte_chars = {b: c for c, b in byte_level_alphabet().items()}  # byte → GPT-2 char, str.translate
        self._vocab: dict[str, int] = model["vocab"]
        self._ranks = self._merge_ranks(model["merges"])
        self._added: dict[str, int] = {}
        last = len(self._vocab) - 1
        for a in added:  # HF's ids, not the file's: the vocab's if it has the text, else the next one free
            if a["content"] and a["content"] not in self._added:
                i = self._added[a["content"]] = self._vocab.get(a["content"], last + 1)
                last = max(last, i)
        self._added_re = re.compile(longest_first(self._added)) if self._added else None
        self._cache: dict[str, list[int]] = {}

    def _merge_ranks(self, merges: list) -> dict[str, int]:
        """merges → {"left right": rank}; a repeated pair keeps its last rank, as HF. A symbol never holds
        a space (the byte-level alphabet has none; SentencePiece's normalizer wrote "▁"), so "left right"
        names one pair. As HF, a merge must join tokens into a token: checked for each pair, or for HF's
        "left right" strings (Gemma's 500,000 merges, checked at C speed with map) that the joined piece
        is a token (a string naming non-tokens never applies: symbols are tokens)."""
        v = self._vocab
        if all(map(isinstance, merges, repeat(str))):
            if not all(map(v.__contains__, map(str.replace, merges, repeat(" "), repeat(""), repeat(1)))):
                bad = next(m for m in merges if m.replace(" ", "", 1) not in v)
                raise InvalidModelError(f"Merge {bad!r} names a token that is not in the vocab; re-run "
                                        "'nomoat convert'.")
            return dict(zip(merges, range(len(merges)), strict=True))
        pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
        if bad := next(((a, b) for a, b in pairs if a not in v or b not in v or a + b not in v), None):
            raise InvalidModelError(f"Merge {bad} names a token that is not in the vocab; re-run 'nomoat convert'.")
        return {f"{a} {b}": rank for rank, (a, b) in enumerate(pairs)}

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> BPETokenizer:
        """The tokenizer of a model package (its tokenizer.json)."""
        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ModelNotFoundError(f"No tokenizer.json in {model_dir}; re-run 'nomoat convert'.")
        try:
            return cls(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidModelError(f"{path} is not a valid tokenizer ({e}); re-run 'nomoat convert'.") from e

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text → ids. Added tokens written in the text stay whole. add_special_tokens: the
        post-processor's tokens first (BOS where the model adds one), as HF."""
        ids: list[int] = list(self.bos_ids) if add_special_tokens else []
        start = 0
        for m in self._added_re.finditer(text) if self._added_re else ():
            self._encode_stretch(text[start:m.start()], ids)
            ids.append(self._added[m.group()])
            start = m.end()
        self._encode_stretch(text[start:], ids)
        return ids

    def pre_tokenize(self, text: str) -> list[str]:
        """Text without added tokens → its words in GPT-2's byte-level characters (as HF's pre_tokenize_str)."""
        pieces = [text] if text else []
        for split in self._splits:
            pieces = [p for piece in pieces for p in split(piece)]
        return [p.encode().decode("latin-1").translate(self._byte_chars) for p in pieces]

    def _encode_stretch(self, text: str, ids: list[int]) -> None:
        spm = self._spm
        for word in spm.words(self._normalize(text)) if spm else self.pre_tokenize(text):
            word_ids = self._cache.get(word)
            if word_ids is None:
                # byte-level: a character outside the vocab drops out, as in HF
                word_ids = self._merge(spm.symbols(word) if spm else [c for c in word if c in self._vocab])
                if len(self._cache) < CACHE_SIZE:
                    self._cache[word] = word_ids
            ids += word_ids

    def _merge(self, syms: list[str]) -> list[int]:
        """HF's Word::merge_all: a heap of (rank, position) over adjacent pairs; a popped pair that no
        longer stands at its position is stale and skipped."""
        n, ranks = len(syms), self._ranks
        nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))
        heap = [(r, i) for i in range(n - 1) if (r := ranks.get(f"{syms[i]} {syms[i + 1]}")) is not None]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i]
            if not syms[i] or j >= n or ranks.get(f"{syms[i]} {syms[j]}") != rank:
                continue
            syms[i], syms[j] = syms[i] + syms[j], ""
            nxt[i] = k = nxt[j]
            if k < n:
                prv[k] = i
                if (r := ranks.get(f"{syms[i]} {syms[k]}")) is not None:
                    heapq.heappush(heap, (r, i))
            if (p := prv[i]) >= 0 and (r := ranks.get(f"{syms[p]} {syms[i]}")) is not None:
                heapq.heappush(heap, (r, p))
        return [self._vocab[s] for s in syms if s]
