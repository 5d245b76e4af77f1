"""SentencePiece-style BPE in pure Python: what Hugging Face `tokenizers` does around the merges for
nomoat's SentencePiece tokenizer.json (nomoat.convert.tokenizer_export; Gemma, Llama-2, Mistral, Phi-3).
nomoat.bpe.BPETokenizer runs the merges; this module gives it the words and their first symbols:

1. the normalizer, on each stretch of text between added tokens: Prepend "▁" (llama.cpp's
   add_space_prefix; HF prepends only to a stretch that is not empty), then Replace " " by "▁";
2. no pre-tokenizer: HF merges the whole stretch as one word. Cutting it before a "▁" changes
   nothing where no vocabulary token holds that "▁" right after the character before it (a merge
   across the cut would have made such a token), and lets each word be cached: `words` cuts there;
3. each character is a symbol if the vocabulary has it, else its UTF-8 bytes as <0xXX> pieces
   (byte_fallback, when the vocabulary has each of them), else the unknown token, consecutive
   unknown characters fused into one (fuse_unk), as HF's BPE::merge_word.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import UnsupportedModelError
from .tokenizer import SPACE


def normalizer(cfg: dict | None) -> Callable[[str], str]:
    """tokenizer.json's normalizer → a function: Prepend and Replace (of a plain string), alone or in a
    Sequence; anything else is refused rather than guessed at."""
    steps = (cfg or {}).get("normalizers", []) if (cfg or {}).get("type") == "Sequence" else [cfg] if cfg else []
    funcs: list[Callable[[str], str]] = []
    for step in steps:
        kind = step.get("type")
        if kind == "Prepend" and isinstance(step.get("prepend"), str):
            funcs.append(lambda s, p=step["prepend"]: p + s if s else s)
        elif kind == "Replace" and isinstance((step.get("pattern") or {}).get("String"), str) \
                and isinstance(step.get("content"), str):
            funcs.append(lambda s, a=step["pattern"]["String"], b=step["content"]: s.replace(a, b))
        else:
            raise UnsupportedModelError(f"Normalizer {step!r} is not supported by the pure-Python tokenizer.")

    def normalize(text: str) -> str:
        for f in funcs:
            text = f(text)
        return text

    return normalize


class SentencePieceWords:
    """A normalized stretch of text → its words (cut before "▁" where no merge can cross) and a word →
    its first symbols (characters, byte pieces or the unknown token)."""

    def __init__(self, model: dict) -> None:
        vocab: dict[str, int] = model["vocab"]
        # the characters some token has right before a "▁" (NUL, the separator, counts too: no cut after it)
        glued = set(re.findall(f"(.){SPACE}", "\0".join(vocab), re.DOTALL))
        not_after = f"(?<![{''.join(map(re.escape, sorted(glued)))}])" if glued else ""
        self._cut = re.compile(f"{not_after}(?={SPACE})")
        self._vocab = vocab
        pieces = [f"<0x{b:02X}>" for b in range(256)]
        self._bytes = [p if model.get("byte_fallback") and p in vocab else None for p in pieces]  # byte → its piece
        unk = model.get("unk_token")
        self._unk = unk if unk in vocab else None
        self._fuse_unk = bool(model.get("fuse_unk"))

    def words(self, normalized: str) -> list[str]:
        return [w for w in self._cut.split(normalized) if w]

    def symbols(self, word: str) -> list[str]:
        out: list[str] = []
        for c in word:
            if c in self._vocab:
                out.append(c)
            elif None not in (pieces := [self._bytes[b] for b in c.encode()]):
                out += pieces
            elif self._unk is not None and not (self._fuse_unk and out and out[-1] == self._unk):
                out.append(self._unk)
        return out
