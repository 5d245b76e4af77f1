"""A byte-level recognizer for the JSON texts a (compiled) schema allows: a pushdown automaton.

The grammar is a tree of nodes (Literal, String, Number, Array, Object, AnyOf; schema.py builds it).
A running parse is a stack of frames, bottom → top; a frame is a tuple (node, *data) of immutable
values, so stacks hash and compare by value. A node knows three things:

  start(b)        the frames that replace a pending value of this node once it reads its first byte b
  step(frame, b)  the frames that replace `frame` once it reads b (a list of options; [] = rejected,
                  [()] = the value ended with b)
  done(frame)     whether the value may end here without reading more (numbers: "12" may go on)

A value that may end *and* go on stays on the stack until a byte only its parent can read arrives.
anyOf makes the parse nondeterministic, so an automaton state is a frozenset of stacks. Output is
compact JSON (no whitespace); JSON values are prefix-free apart from numbers, so states stay few.
"""

from __future__ import annotations

from fractions import Fraction

Stack = tuple  # of frames
AState = frozenset  # of stacks; empty = dead


class Node:
    def initial(self) -> tuple:
        """The frame a parse of this node alone starts from (as the root): one waiting for the value."""
        return (PENDING, self)

    def start(self, b: int) -> list[tuple]:
        raise NotImplementedError

    def step(self, frame: tuple, b: int) -> list[tuple]:
        return []

    def done(self, frame: tuple) -> bool:
        return False


class Pending(Node):
    """Frame (PENDING, node): a value of `node` comes next."""

    def step(self, frame: tuple, b: int) -> list[tuple]:
        return frame[1].start(b)


PENDING = Pending()


class Literal(Node):
    """One of a fixed set of JSON texts (enum, const, true/false/null). Frame: (node, bytes so far)."""

    def __init__(self, texts: list[bytes]) -> None:
        self.texts = frozenset(texts)
        self.prefixes = frozenset(t[:i] for t in texts for i in range(1, len(t) + 1))
        self.extendable = frozenset(t[:i] for t in texts for i in range(1, len(t)))  # proper prefixes

    def start(self, b: int) -> list[tuple]:
        return self.step((self, b""), b)

    def step(self, frame: tuple, b: int) -> list[tuple]:
        p = frame[1] + bytes((b,))
        if p not in self.prefixes:
            return []
        return [()] if p in self.texts and p not in self.extendable else [((self, p),)]

    def done(self, frame: tuple) -> bool:
        return frame[1] in self.texts


class String(Node):
    """A JSON string of min_length..max_length characters (code points), as valid UTF-8.
    Escapes: the short ones only (\\" \\\\ \\/ \\b \\f \\n \\r \\t), each one character.
    Frame: (node, chars so far, mode): mode 0 = plain, 1 = after a backslash,
    (n, lo, hi) = n UTF-8 continuation bytes still due, the next in lo..hi."""

    ESCAPES = frozenset(b'"\\/bfnrt')

    def __init__(self, min_length: int = 0, max_length: int | None = None) -> None:
        self.min_length, self.max_length = min_length, max_length

    def start(self, b: int) -> list[tuple]:
        return [((self, 0, 0),)] if b == 0x22 else []

    def room(self, count: int) -> bool:
        return self.max_length is None or count < self.max_length

    def step(self, frame: tuple, b: int) -> list[tuple]:
        _, n, mode = frame
        if mode == 1:
            return [((self, n, 0),)] if b in self.ESCAPES else []
        if mode:  # inside a multi-byte character
            due, lo, hi = mode
            if not lo <= b <= hi:
                return []
            return [((self, n, (due - 1, 0x80, 0xBF) if due > 1 else 0),)]
        if b == 0x22:
            return [()] if n >= self.min_length else []
        if b < 0x20 or not self.room(n):
            return []
        if self.max_length is None:  # without a maximum, only reaching min_length matters: fewer states
            n = min(n, self.min_length - 1)
        if b == 0x5C:
            return [((self, n + 1, 1),)]
        if b < 0x80:
            return [((self, n + 1, 0),)]
        lead = utf8_lead(b)
        return [((self, n + 1, lead),)] if lead else []


def utf8_lead(b: int) -> tuple | None:
    """(continuation bytes due, range of the next one) for a UTF-8 lead byte; None if b is no lead
    byte. Excludes overlong forms, surrogates and code points above U+10FFFF."""
    if 0xC2 <= b <= 0xDF:
        return (1, 0x80, 0xBF)
    if 0xE0 <= b <= 0xEF:
        return (2, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF)
    if 0xF0 <= b <= 0xF4:
        return (3, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF)
    return None


class Number(Node):
    """A number in plain decimal notation, -?(0|[1-9][0-9]*)(.[0-9]+)?, within [lo, hi] (inclusive).
    Integers have no fraction; "-0" is no number. Every prefix it accepts can still be completed in range.
    Frame: (node, text so far)."""

    def __init__(self, integer: bool, lo: Fraction, hi: Fraction) -> None:
        self.integer, self.lo, self.hi = integer, lo, hi

    def start(self, b: int) -> list[tuple]:
        return self.step((self, b""), b)

    def step(self, frame: tuple, b: int) -> list[tuple]:
        t = frame[1] + bytes((b,))
        return [((self, t),)] if self.viable(t) else []

    def done(self, frame: tuple) -> bool:
        t = frame[1]  # "-0" may start "-0.5" but does not end a number
        return t[-1:].isdigit() and t != b"-0" and self.lo <= Fraction(t.decode()) <= self.hi

    def viable(self, t: bytes) -> bool:
        """Whether some number in range starts with the text t."""
        neg = t.startswith(b"-")
        body = t[1:] if neg else t
        whole, dot, frac = body.partition(b".")
        if not (whole.isdigit() or whole == b"") or not (frac.isdigit() or frac == b""):
            return False
        if (whole[:1] == b"0" and len(whole) > 1) or (dot and (self.integer or not whole)) or b"." in frac:
            return False
        if neg and self.integer and whole[:1] == b"0":
            return False  # no "-0"
        # The magnitudes that start with this text, [a, a + width), and the magnitudes in range.
        lo, hi = (-self.hi, -self.lo) if neg else (self.lo, self.hi)
        if not whole:  # "" or "-": any magnitude (>= 1 for a negative integer)
            return overlaps(Fraction(1 if self.integer else 0), None, lo, hi)
        if dot:
            a = Fraction((whole + b"." + frac).decode())
            return overlaps(a, Fraction(1, 10 ** len(frac)), lo, hi)
        d = int(whole)
        if d == 0:
            return overlaps(Fraction(0), Fraction(1), lo, hi)
        k = 1  # more digits: [d * 10^k, (d + 1) * 10^k) for k = 0, 1, 2, ...
        while d * k <= hi:
            if overlaps(Fraction(d * k), Fraction(k), lo, hi):
                return True
            k *= 10
        return False


def overlaps(a: Fraction, width: Fraction | None, lo: Fraction, hi: Fraction) -> bool:
    """Whether [a, a + width) (width None = infinite) meets [lo, hi]. Both are sets of reals; the
    numbers a decimal text can reach in [a, a + width) are dense, and the single-point cases are
    decimals too (lo, hi come from JSON numbers), so overlap means some text is in range."""
    return a <= hi and (width is None or a + width > lo)


class Array(Node):
    """[item,item,...] with min_items..max_items items. Frame: (node, items so far, phase):
    phase 0 after '[', 1 after an item, 2 after ','."""

    def __init__(self, items: Node | None, min_items: int = 0, max_items: int | None = None) -> None:
        self.items, self.min_items, self.max_items = items, min_items, max_items

    def start(self, b: int) -> list[tuple]:
        return [((self, 0, 0),)] if b == 0x5B else []

    def step(self, frame: tuple, b: int) -> list[tuple]:
        _, n, phase = frame
        if phase == 1:
            if b == 0x2C and (self.max_items is None or n < self.max_items):
                return [((self, n, 2),)]
            return [()] if b == 0x5D and n >= self.min_items else []
        if phase == 0 and b == 0x5D:
            return [()] if self.min_items == 0 else []
        if self.max_items == 0:
            return []
        return [((self, n + 1, 1), *r) for r in self.items.start(b)]


class Object(Node):
    """{"k":v,...} with the properties in schema order; required ones always, optional ones may be
    left out, no others. Frame: (node, next property index, phase, key bytes so far): phase 0 after
    '{', 1 after a value, 2 after ',', 3 inside a key."""

    def __init__(self, properties: list[tuple[str, Node, bool]]) -> None:
        import json

        self.nodes = [node for _, node, _ in properties]
        n = len(properties)
        required = [i for i, (_, _, req) in enumerate(properties) if req]
        # closable[i]: '}' may come once properties[:i] are dealt with (no required one left).
        self.closable = [not any(r >= i for r in required) for i in range(n + 1)]
        # keys[i]: every prefix of a key that may come next → its property index (-1 = unfinished).
        self.keys: list[dict[bytes, int]] = []
        for i in range(n + 1):
            nxt = next((r for r in required if r >= i), n - 1)
            table: dict[bytes, int] = {}
            for j in range(i, min(nxt, n - 1) + 1):
                key = json.dumps(properties[j][0], ensure_ascii=False).encode() + b":"
                table.update({key[:m]: -1 for m in range(1, len(key))})
                table[key] = j
            self.keys.append(table)

    def start(self, b: int) -> list[tuple]:
        return [((self, 0, 0, b""),)] if b == 0x7B else []

    def step(self, frame: tuple, b: int) -> list[tuple]:
        _, i, phase, key = frame
        if b == 0x7D and phase in (0, 1):
            return [()] if self.closable[i] else []
        if phase == 1:
            return [((self, i, 2, b""),)] if b == 0x2C and self.keys[i] else []
        key += bytes((b,))
        j = self.keys[i].get(key)
        if j is None:
            return []
        if j < 0:
            return [((self, i, 3, key),)]
        return [((self, j + 1, 1, b""), (PENDING, self.nodes[j]))]


class AnyOf(Node):
    def __init__(self, alternatives: list[Node]) -> None:
        self.alternatives = alternatives

    def start(self, b: int) -> list[tuple]:
        return [r for alt in self.alternatives for r in alt.start(b)]


def _consume(stack: Stack, b: int) -> list[Stack]:
    if not stack:
        return []
    top, rest = stack[-1], stack[:-1]
    out = [rest + r for r in top[0].step(top, b)]
    if top[0].done(top):  # the value may end here: let its parent read b
        out += _consume(rest, b)
    return out


def _complete(stack: Stack) -> bool:
    return all(frame[0].done(frame) for frame in stack)


class Automaton:
    """The recognizer for one grammar. States are hashable; transitions are memoized."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self.start: AState = frozenset({(root.initial(),)})
        self._next: dict[tuple[AState, int], AState] = {}

    def step(self, state: AState, b: int) -> AState:
        """The state after byte b (empty: b is not a valid continuation)."""
        key = (state, b)
        nxt = self._next.get(key)
        if nxt is None:
            nxt = self._next[key] = frozenset(s for stack in state for s in _consume(stack, b))
        return nxt

    def advance(self, state: AState, data: bytes) -> AState:
        for b in data:
            if not state:
                break
            state = self.step(state, b)
        return state

    def accepting(self, state: AState) -> bool:
        """Whether the text so far is a complete JSON value of the grammar."""
        return any(_complete(stack) for stack in state)

    def matches(self, data: bytes) -> bool:
        return self.accepting(self.advance(self.start, data))
