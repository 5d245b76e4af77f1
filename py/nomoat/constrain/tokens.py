"""Token masks: which token ids may come next, so the sampled text stays inside the grammar.

A token is allowed when the automaton accepts all its bytes from the current state; the stop ids
(EOS) exactly when the text is complete. TokenIndex (built once per tokenizer) holds the vocabulary
as a byte trie, walked together with the automaton and pruned at the first rejected byte. Inside a
JSON string almost every token fits, so there the walk is skipped for "plain" tokens (whole UTF-8
characters, no quote, backslash or control byte): they are allowed when their character count fits
maxLength, one precomputed set per count. Inside a regular expression (regex.py) the same plain
tokens are walked as sequences of the pattern's character classes (ClassTrie): tokens that read
the same classes in the same order share a path, so a state walks a few hundred nodes instead of
the byte trie of the whole vocabulary. Allowed sets are memoized per parse stack.

Sets of token ids are Python ints used as bitsets (bit i = token i): union is one C-level `|`,
and int.to_bytes(..., "little") is the mask the samplers take, with no numpy (Pyodide has none):
bytes whose 32-bit little-endian words are a Uint32Array bitmask, bit i & 31 of word i >> 5.
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from ..errors import IncompleteOutputError, UnsupportedSchemaError
from .automaton import AState, Automaton, String
from .regex import Regex


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
        longest = max(counts.values(), default=0)
        by_count: list[list[int]] = [[] for _ in range(longest + 1)]
        self.plain_texts: list[tuple[int, str]] = []  # (id, text) of every plain token
        for i, n in counts.items():
            if n > 0:
                by_count[n].append(i)
                self.plain_texts.append((i, self.token_bytes[i].decode()))
        # plain_upto[c]: the plain tokens of 1..c characters, a bitset; c = longest means all of them.
        self.plain_upto: list[int] = [0]
        for ids in by_count[1:]:
            self.plain_upto.append(self.plain_upto[-1] | bitset(ids))
        self.trie = Trie(tokens)
        self.rest_trie = Trie((i, t) for i, t in tokens if counts[i] < 0)
        self._class_tries: dict[tuple, ClassTrie] = {}  # a regex's character classes → its ClassTrie

    def class_trie(self, classes: tuple) -> ClassTrie:
        trie = self._class_tries.get(classes)
        if trie is None:
            if len(self._class_tries) >= 32:  # a few regexes at a time; forget the oldest
                del self._class_tries[next(iter(self._class_tries))]
            trie = self._class_tries[classes] = ClassTrie(self.plain_texts, classes)
        return trie

    @classmethod
    def for_tokenizer(cls, tokenizer) -> TokenIndex:
        index = cls._cache.get(tokenizer)
        if index is None:
            index = cls._cache[tokenizer] = cls([tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)])
        return index


class ClassTrie:
    """Plain tokens spelled in a regex's character classes (Regex.classes: (bounds, class of each
    interval between them)), as a trie grown only where a walk goes: node → [(class, child)] and
    the tokens ending there (a bitset). One character's UTF-8 stands for its class: every character
    of a class steps the NFA alike."""

    def __init__(self, plain_texts: list[tuple[int, str]], classes: tuple) -> None:
        self.bounds, self.of_interval = classes
        self.classes: dict[str, int] = {}  # character → class
        self.example: dict[int, bytes] = {}  # class → one character of it, UTF-8
        self.kids: dict[int, list[tuple[int, int]]] = {}
        self.ends: dict[int, int] = {}
        self.todo: dict[int, tuple[int, list[tuple[int, str]]]] = {0: (0, plain_texts)}  # unexpanded: depth, tokens

    def expand(self, node: int) -> list[tuple[int, int]]:
        depth, tokens = self.todo.pop(node)
        groups: dict[int, list[tuple[int, str]]] = {}
        ending: list[int] = []
        classes = self.classes
        for tid, text in tokens:
            if len(text) == depth:
                ending.append(tid)
                continue
            ch = text[depth]
            k = classes.get(ch)
            if k is None:
                k = classes[ch] = self.of_interval[bisect_right(self.bounds, ord(ch))]
                self.example.setdefault(k, ch.encode())
            group = groups.get(k)
            if group is None:
                group = groups[k] = []
            group.append((tid, text))
        self.ends[node] = bitset(ending)
        kids = self.kids[node] = []
        for k, group in groups.items():
            c = len(self.kids) + len(self.todo) + 1
            self.todo[c] = (depth + 1, group)
            kids.append((k, c))
        return kids

    def allowed(self, regex: Regex, states: frozenset) -> int:
        """The plain tokens the regex can read from its NFA states, as a bitset."""
        bits, todo = 0, [(0, states)]
        while todo:
            node, st = todo.pop()
            kids = self.kids.get(node)
            if kids is None:
                kids = self.expand(node)
            for k, c in kids:
                nxt = regex.advance(st, self.example[k])
                if nxt:
                    if c in self.todo:
                        self.expand(c)
                    bits |= self.ends[c]
                    todo.append((c, nxt))
        return bits


def bitset(ids: Iterable[int]) -> int:
    """Token ids as an int with bit i set for each id i."""
    ids = list(ids)
    if not ids:
        return 0
    buf = bytearray(max(ids) // 8 + 1)
    for i in ids:
        buf[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(buf, "little")


def ids_of(bits: int) -> list[int]:
    """The ids in a bitset, ascending (for tests and messages; the samplers take the bytes)."""
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    return [8 * k + j for k, byte in enumerate(data) if byte for j in range(8) if byte >> j & 1]


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


class GrammarConstraint:
    """Follows one constrained generation: allowed() gives the mask before each choice, advance()
    records the choice. The grammar comes from constrain.compile_constraint (a schema or a regex)."""

    def __init__(self, grammar: Automaton, tokenizer, stop_ids: Iterable[int]) -> None:
        self.grammar = grammar
        self.index = TokenIndex.for_tokenizer(tokenizer)
        self.stop_ids = sorted(stop_ids)
        self.stop_bits = bitset(self.stop_ids)
        size = max(len(self.index.token_bytes), self.stop_ids[-1] + 1 if self.stop_ids else 0)
        self.mask_bytes = 4 * ((size + 31) // 32)  # whole 32-bit words
        self.state = self.grammar.start
        self._by_stack: dict[tuple, int] = {}  # one parse stack → its allowed tokens (a bitset)
        self._by_state: dict[AState, bytes] = {}  # one automaton state → its mask
        self.mask_s, self.masks = 0.0, 0  # time spent computing masks, and how many

    @property
    def complete(self) -> bool:
        return self.grammar.accepting(self.state)

    def allowed(self) -> bytes:
        """The tokens that may come next (the stop ids when the text is complete), as a bitmask:
        bytes of little-endian 32-bit words, bit i & 31 of word i >> 5 set = token i allowed."""
        t0 = time.perf_counter()
        mask = self._by_state.get(self.state)
        if mask is None:
            bits = 0
            for stack in self.state:
                bits |= self._for_stack(stack)
            if self.complete:
                bits |= self.stop_bits
            if not bits:
                raise IncompleteOutputError("No token of this vocabulary can continue the constrained text; the "
                                            "tokenizer lacks single-byte tokens.")
            mask = self._by_state[self.state] = bits.to_bytes(self.mask_bytes, "little")
        self.mask_s += time.perf_counter() - t0
        self.masks += 1
        return mask

    def _for_stack(self, stack: tuple) -> int:
        bits = self._by_stack.get(stack)
        if bits is None:
            state, top = frozenset({stack}), stack[-1] if stack else None
            if top is not None and isinstance(top[0], Regex):  # plain tokens stay inside the regex
                plain = self.index.class_trie(top[0].classes).allowed(top[0], top[1])
                bits = plain | bitset(walk(self.index.rest_trie, self.grammar, state))
            elif top is not None and isinstance(top[0], String) and top[2] == 0:  # plain string content
                plain = self.index.plain_upto
                room = top[0].max_length - top[1] if top[0].max_length is not None else len(plain) - 1
                bits = plain[min(room, len(plain) - 1)] | bitset(walk(self.index.rest_trie, self.grammar, state))
            else:
                bits = bitset(walk(self.index.trie, self.grammar, state))
            self._by_stack[stack] = bits
        return bits

    def feed(self, text: bytes) -> None:
        """Start after text already written (the Prompt API's assistant prefix): the constraint covers the
        prefix and its continuation together. A prefix no allowed text begins with is an
        UnsupportedSchemaError (NotSupportedError in a page), raised before anything runs."""
        state = self.grammar.advance(self.state, text)
        if not state:
            raise UnsupportedSchemaError(
                f"The assistant prefix {text.decode(errors='replace')[:80]!r} cannot begin an answer that matches the "
                "response_constraint; change the prefix (or the constraint) so that a constrained answer can start "
                "with it.")
        self.state = state

    def advance(self, token: int) -> None:
        """Record the chosen token (one that allowed() allowed)."""
        if token in self.stop_ids:
            return
        state = self.grammar.advance(self.state, self.index.token_bytes[token])
        if not state:
            raise AssertionError(f"token {token} is not a valid continuation: it was not masked out")
        self.state = state
