"""Token masks: which token ids may come next, so the sampled text stays inside the grammar.

A token is allowed when the automaton accepts all its bytes from the current state; the stop ids
(EOS) exactly when the JSON is complete. TokenIndex (built once per tokenizer) holds the vocabulary
as a byte trie, walked together with the automaton and pruned at the first rejected byte. Inside a
string almost every token fits, so there the walk is skipped for "plain" tokens (whole UTF-8
characters, no quote, backslash or control byte): they are allowed when their character count fits
maxLength, a slice of a sorted array. Allowed sets are memoized per parse stack.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import IncompleteOutputError
from .automaton import AState, Automaton, String
from .schema import compile_schema


class Trie:
    """Token byte strings as a trie, in flat dicts of ints and bytes only: the garbage collector
    does not track those, so a 49k-token vocabulary adds no pause to its collections."""

    def __init__(self, tokens: Iterable[tuple[int, bytes]]) -> None:
        self.kids: dict[int, bytes] = {}  # node → the bytes of its children's edges
        self.child: dict[int, int] = {}  # node * 256 + byte → child node (the root is node 0)
        self.ends: dict[int, int] = {}  # node → the token id whose bytes end there
        self.more: dict[int, tuple] = {}  # node → further ids with the same bytes (rare)
        for tid, data in tokens:
            node = 0
            for b in data:
                nxt = self.child.get(node * 256 + b)
                if nxt is None:
                    nxt = self.child[node * 256 + b] = len(self.child) + 1
                    self.kids[node] = self.kids.get(node, b"") + bytes((b,))
                node = nxt
            if node in self.ends:
                self.more[node] = (*self.more.get(node, ()), tid)
            else:
                self.ends[node] = tid


def plain_chars(data: bytes) -> int:
    """How many characters a token adds inside a JSON string, or -1 if it is not plain content."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return -1
    if not text or any(c in '"\\' or c < " " for c in text):
        return -1
    return len(text)


class TokenIndex:
    """The vocabulary's bytes arranged for masking; one per tokenizer (see for_tokenizer)."""

    _cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        self.token_bytes = list(token_bytes)  # special tokens are b"": never allowed as text
        tokens = [(i, t) for i, t in enumerate(self.token_bytes) if t]
        counts = {i: plain_chars(t) for i, t in tokens}
        plain = sorted((n, i) for i, n in counts.items() if n > 0)
        self.plain_counts = np.array([n for n, _ in plain], np.int64)  # ascending
        self.plain_ids = np.array([i for _, i in plain], np.int64)
        self.trie = Trie(tokens)
        self.rest_trie = Trie((i, t) for i, t in tokens if counts[i] < 0)

    @classmethod
    def for_tokenizer(cls, tokenizer) -> TokenIndex:
        index = cls._cache.get(tokenizer)
        if index is None:
            index = cls._cache[tokenizer] = cls([tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)])
        return index


def walk(trie: Trie, grammar: Automaton, state: AState) -> list[int]:
    """The ids of the tokens in `trie` whose bytes the automaton accepts from `state`."""
    out: list[int] = []
    todo = [(0, state)]
    step, kids, child, ends = grammar.step, trie.kids, trie.child, trie.ends
    while todo:
        node, st = todo.pop()
        for b in kids.get(node, b""):
            nxt = step(st, b)
            if nxt:
                c = child[node * 256 + b]
                if c in ends:
                    out.append(ends[c])
                    out.extend(trie.more.get(c, ()))
                if c in kids:
                    todo.append((c, nxt))
    return out


class JSONConstraint:
    """Follows one constrained generation: mask() the logits before each choice, advance() after it."""

    def __init__(self, schema, tokenizer, stop_ids: Iterable[int]) -> None:
        self.grammar = Automaton(compile_schema(schema))
        self.index = TokenIndex.for_tokenizer(tokenizer)
        self.stop_ids = np.array(sorted(stop_ids), np.int64)
        self.state = self.grammar.start
        self._allowed: dict[tuple, np.ndarray] = {}  # one parse stack → its allowed token ids
        self.mask_s, self.masks = 0.0, 0  # time spent computing masks, and how many

    @property
    def complete(self) -> bool:
        return self.grammar.accepting(self.state)

    def allowed(self) -> np.ndarray:
        """The token ids that may come next (with the stop ids when the JSON is complete)."""
        parts = [self._for_stack(stack) for stack in self.state]
        if self.complete:
            parts.append(self.stop_ids)
        if len(parts) == 1:
            return parts[0]
        union = np.zeros(max(len(self.index.token_bytes), int(self.stop_ids.max(initial=0)) + 1), bool)
        for ids in parts:
            union[ids] = True
        return np.flatnonzero(union)

    def _for_stack(self, stack: tuple) -> np.ndarray:
        ids = self._allowed.get(stack)
        if ids is None:
            state, top = frozenset({stack}), stack[-1] if stack else None
            if top is not None and isinstance(top[0], String) and top[2] == 0:  # plain string content
                room = top[0].max_length - top[1] if top[0].max_length is not None else len(self.index.token_bytes)
                plain = self.index.plain_ids[: int(np.searchsorted(self.index.plain_counts, room, "right"))]
                ids = np.concatenate([plain, np.array(walk(self.index.rest_trie, self.grammar, state), np.int64)])
            else:
                ids = np.array(walk(self.index.trie, self.grammar, state), np.int64)
            self._allowed[stack] = ids
        return ids

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A copy of logits (vocab,) with every disallowed token at -inf."""
        t0 = time.perf_counter()
        ids = self.allowed()
        if not ids.size:
            raise IncompleteOutputError("No token of this vocabulary can continue the JSON; the tokenizer lacks "
                                        "single-byte tokens.")
        logits = np.asarray(logits)
        out = np.full(logits.shape, -np.inf, np.float32)
        ids = ids[ids < logits.size]
        out[ids] = logits[ids]
        self.mask_s += time.perf_counter() - t0
        self.masks += 1
        return out

    def advance(self, token: int) -> None:
        """Record the chosen token (one that mask() allowed)."""
        if token in self.stop_ids:
            return
        state = self.grammar.advance(self.state, self.index.token_bytes[token])
        if not state:
            raise AssertionError(f"token {token} is not a valid continuation: it was not masked out")
        self.state = state
