"""Regular expressions (a JavaScript RegExp subset) → a byte-level grammar node for automaton.py.

The Prompt API's responseConstraint may be a RegExp; JSON Schema's `pattern` is one too (ECMA-262).
Both are read with JavaScript's meaning, matched by code point (as with the u flag):

  literals, escapes  \\n \\r \\t \\f \\v \\0 \\xHH \\uHHHH (a surrogate pair joins) \\u{H…} (u flag), \\ + punctuation
  classes            [abc] [a-z] [^…] (negation), with \\d \\w \\s \\D \\W \\S and [\\b] (backspace) inside
  . \\d \\w \\s        . = any character but \\n \\r \\u2028 \\u2029; \\d = [0-9]; \\w = [A-Za-z0-9_];
                     \\s = JavaScript's white space and line terminators (WHITESPACE below)
  groups             ( … ) (?: … ) (?<name> … ), alternation |
  quantifiers        ? * + {m} {m,} {m,n}, also lazy (…? : laziness never changes what matches)
  anchors            ^ at the start and $ at the end of the pattern or of a top-level alternative
  flags              none or "u"
Anything else is refused with UnsupportedSchemaError naming the construct: backreferences (\\1,
\\k<…>), lookaround ((?= (?! (?<= (?<!), word boundaries (\\b \\B), anchors elsewhere, property escapes
(\\p{…}), \\c, inline modifiers ((?i) …), other flags, empty classes ([] and [^]).

As a response_constraint the whole answer matches (the pattern as if anchored at both ends). As a
JSON Schema `pattern` the JSON string contains a match (JSON Schema's meaning): a side without its
anchor takes any text there. The string's characters are then written as JSON requires (\\" \\\\,
control characters as \\b \\f \\n \\r \\t or \\u00XX), so the pattern applies to the decoded value.

Compilation: a Thompson NFA whose edges are byte ranges (each character set as UTF-8 sequences, never
a surrogate), run as a set of NFA states; sets are kept to the states that read bytes (plus the
final one), so equal situations give equal sets and the automaton's memo finds them.
"""

from __future__ import annotations

import re

from ..errors import InvalidSchemaError, UnsupportedSchemaError
from .automaton import Node

MAX_CODE = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)
MAX_STATES = 50_000  # NFA states (repetitions are copies): refuse patterns larger than this

Ranges = tuple  # of (lo, hi) code point ranges, sorted and disjoint

DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
WHITESPACE: Ranges = ((0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                      (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF))
LINE_TERMINATORS: Ranges = ((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))
SINGLE_ESCAPES = {"n": 0x0A, "r": 0x0D, "t": 0x09, "f": 0x0C, "v": 0x0B}
QUANTIFIER = re.compile(r"\{\d+(,\d*)?\}")
JSON_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}


# ---------------------------------------------------------------------------------------------
# Character sets: sorted, disjoint (lo, hi) ranges of code points
# ---------------------------------------------------------------------------------------------

def union(*sets: Ranges) -> Ranges:
    out: list[list[int]] = []
    for lo, hi in sorted(r for s in sets for r in s):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def negate(s: Ranges) -> Ranges:
    out, nxt = [], 0
    for lo, hi in union(s):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE:
        out.append((nxt, MAX_CODE))
    return tuple(out)


def without_surrogates(s: Ranges) -> Ranges:
    a, b = SURROGATES
    out = []
    for lo, hi in s:
        if lo < a:
            out.append((lo, min(hi, a - 1)))
        if hi > b:
            out.append((max(lo, b + 1), hi))
    return tuple(out)


def utf8_sequences(lo: int, hi: int) -> list[tuple]:
    """The code points lo..hi (no surrogates) as UTF-8: a list of byte-range sequences
    ((b1lo, b1hi), (b2lo, b2hi), …), each byte ranging independently (as in RE2 and Rust's regex)."""
    out, todo = [], [(lo, hi)]
    while todo:
        lo, hi = todo.pop()
        split = next((limit for limit in (0x7F, 0x7FF, 0xFFFF) if lo <= limit < hi), None)
        if split is not None:  # different encoded lengths
            todo += [(lo, split), (split + 1, hi)]
            continue
        for i in range(1, 4):  # the last i bytes must span their whole range 80..BF, or be split
            m = (1 << (6 * i)) - 1
            if lo & ~m != hi & ~m:
                if lo & m:
                    todo += [(lo, lo | m), ((lo | m) + 1, hi)]
                    break
                if hi & m != m:
                    todo += [(lo, (hi & ~m) - 1), (hi & ~m, hi)]
                    break
        else:
            out.append(tuple(zip(chr(lo).encode(), chr(hi).encode(), strict=True)))
    return out


# ---------------------------------------------------------------------------------------------
# Parser: pattern text → a tree of ("set", ranges) ("cat", [..]) ("alt", [..]) ("rep", node, m, n|None)
# ---------------------------------------------------------------------------------------------

def _refuse(construct: str) -> UnsupportedSchemaError:
    return UnsupportedSchemaError(f"response_constraint: the regular expression uses {construct}, which nomoat "
                                  "cannot enforce; supported: literals, escapes, classes, . \\d \\w \\s, groups, "
                                  "| ? * + {m,n}, ^ and $ at the ends (see nomoat/constrain/regex.py).")


def _bad(message: str) -> InvalidSchemaError:
    return InvalidSchemaError(f"response_constraint: invalid regular expression: {message}")


class Parser:
    def __init__(self, source: str, unicode: bool) -> None:
        self.s, self.i, self.unicode, self.depth = source, 0, unicode, 0

    def peek(self, k: int = 0) -> str:
        return self.s[self.i + k] if self.i + k < len(self.s) else ""

    def take(self) -> str:
        c = self.peek()
        if not c:
            raise _bad(f"{self.s!r} ends early.")
        self.i += 1
        return c

    def top(self) -> list[tuple[bool, tuple, bool]]:
        """The top-level alternatives: (anchored at the start, node, anchored at the end)."""
        branches = []
        while True:
            start = self.peek() == "^"
            self.i += start
            node = self.sequence()
            end = self.peek() == "$"
            self.i += end
            branches.append((start, node, end))
            if self.peek() == "|":
                self.i += 1
                continue
            if self.peek() == ")":
                raise _bad(f"unmatched ) in {self.s!r}.")
            if self.peek():
                raise _refuse("^ or $ inside the pattern")
            return branches

    def alternation(self) -> tuple:
        alts = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            alts.append(self.sequence())
        return alts[0] if len(alts) == 1 else ("alt", alts)

    def sequence(self) -> tuple:
        items = []
        while self.peek() and self.peek() not in "|)":
            if self.peek() == "$" and self.depth == 0 and self.peek(1) in ("", "|"):
                break  # an end anchor: top() takes it (inside a group atom() refuses it)
            items.append(self.quantified(self.atom()))
        return items[0] if len(items) == 1 else ("cat", items)

    def atom(self) -> tuple:
        c = self.take()
        if c == "(":
            if self.peek() == "?":
                self.i += 1
                kind = self.take()
                if kind == "<" and self.peek() not in "=!":
                    while self.take() != ">":
                        pass
                elif kind != ":":
                    look = {"=": "lookahead (?=", "!": "negative lookahead (?!", "<": "lookbehind (?<= / (?<!"}
                    raise _refuse(look.get(kind, f"the group modifier (?{kind}"))
            self.depth += 1
            node = self.alternation()
            self.depth -= 1
            if self.peek() != ")":
                raise _bad(f"missing ) in {self.s!r}.")
            self.i += 1
            return node
        if c in "^$":
            raise _refuse("^ or $ inside the pattern")
        if c in "*+?":
            raise _bad(f"nothing to repeat before {c!r} in {self.s!r}.")
        if c == "{" and self.quantifier_ahead(self.i - 1):
            raise _bad(f"nothing to repeat before '{{' in {self.s!r}.")
        if c == "{":
            raise _refuse("a literal '{' (write \\{)")
        if c == ".":
            return ("set", negate(LINE_TERMINATORS))
        if c == "[":
            return ("set", self.char_class())
        if c == "\\":
            return ("set", self.escape(in_class=False))
        return ("set", ((ord(c), ord(c)),))

    def quantifier_ahead(self, at: int) -> bool:
        return QUANTIFIER.match(self.s, at) is not None

    def quantified(self, node: tuple) -> tuple:
        c = self.peek()
        if c in ("?", "*", "+"):
            self.i += 1
            lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[c]
        elif c == "{" and self.quantifier_ahead(self.i):
            end = self.s.index("}", self.i)
            body = self.s[self.i + 1: end]
            self.i = end + 1
            a, comma, b = body.partition(",")
            lo = int(a)
            hi = lo if not comma else int(b) if b else None
            if hi is not None and hi < lo:
                raise _bad(f"{{{body}}}: the numbers are out of order.")
        else:
            return node
        if self.peek() == "?":
            self.i += 1  # lazy: the same strings match
        if self.peek() in ("?", "*", "+") or (self.peek() == "{" and self.quantifier_ahead(self.i)):
            raise _bad(f"nothing to repeat (a quantifier after a quantifier) in {self.s!r}.")
        return ("rep", node, lo, hi)

    def char_class(self) -> Ranges:
        negated = self.peek() == "^"
        self.i += negated
        if self.peek() == "]":
            raise _refuse("an empty class [] or [^] (write [\\s\\S] for any character)")
        items: list[Ranges] = []
        while True:
            c = self.take()
            if c == "]":
                break
            lo = self.escape(in_class=True) if c == "\\" else ((ord(c), ord(c)),)
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                c2 = self.take()
                hi = self.escape(in_class=True) if c2 == "\\" else ((ord(c2), ord(c2)),)
                if len(lo) != 1 or len(hi) != 1 or lo[0][0] != lo[0][1] or hi[0][0] != hi[0][1]:
                    raise _refuse("a range with a class escape at an end (such as [\\d-z]; write \\- for a '-')")
                if hi[0][0] < lo[0][0]:
                    raise _bad(f"the range {chr(lo[0][0])!r}-{chr(hi[0][0])!r} is out of order.")
                lo = ((lo[0][0], hi[0][0]),)
            items.append(lo)
        s = union(*items)
        return negate(s) if negated else s

    def hex_digits(self, n: int) -> int:
        digits = self.s[self.i: self.i + n]
        if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise _bad(f"an escape needs {n} hex digits in {self.s!r}.")
        self.i += n
        return int(digits, 16)

    def escape(self, in_class: bool) -> Ranges:
        """The set of one escape (after the backslash)."""
        c = self.take()
        classes = {"d": DIGIT, "w": WORD, "s": WHITESPACE}
        if c.lower() in classes:
            s = classes[c.lower()]
            return negate(s) if c.isupper() else s
        if c in SINGLE_ESCAPES:
            code = SINGLE_ESCAPES[c]
        elif c == "b" and in_class:
            code = 0x08
        elif c in "bB":
            raise _refuse(f"the word boundary \\{c}")
        elif c == "0" and not self.peek().isdigit():
            code = 0
        elif c.isdigit() or (c == "k" and self.peek() == "<"):
            raise _refuse(f"a backreference (\\{c})")
        elif c in "pP":
            raise _refuse(f"a Unicode property escape (\\{c}{{…}})")
        elif c == "c":
            raise _refuse("a control escape (\\c)")
        elif c == "x":
            code = self.hex_digits(2)
        elif c == "u" and self.peek() == "{":
            if not self.unicode:
                raise _refuse("\\u{…} without the u flag (there it means 'u' repeated)")
            end = self.s.find("}", self.i)
            digits = self.s[self.i + 1: end] if end > 0 else ""
            if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits) or int(digits, 16) > MAX_CODE:
                raise _bad(f"a bad \\u{{…}} escape in {self.s!r}.")
            self.i = end + 1
            code = int(digits, 16)
        elif c == "u":
            code = self.hex_digits(4)
            if 0xD800 <= code <= 0xDBFF and self.s[self.i: self.i + 2] == "\\u":
                save = self.i
                self.i += 2
                low = self.hex_digits(4)
                if 0xDC00 <= low <= 0xDFFF:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                else:
                    self.i = save
        elif c.isalnum():
            raise _refuse(f"the escape \\{c}")
        else:
            code = ord(c)
        if SURROGATES[0] <= code <= SURROGATES[1]:
            raise _refuse("a lone surrogate (no UTF-8 text contains one)")
        return ((code, code),)


# ---------------------------------------------------------------------------------------------
# NFA over bytes
# ---------------------------------------------------------------------------------------------

class NFA:
    """States are ints; eps[s]: states reached without reading; edges[s]: (lo, hi, target) byte ranges."""

    def __init__(self, json_string: bool) -> None:
        self.json_string = json_string
        self.eps: list[list[int]] = []
        self.bounds: set[int] = set()  # where a character set starts or stops
        self.sets: list[Ranges] = []  # every character set, as wired
        self.edges: list[list[tuple[int, int, int]]] = []

    def state(self) -> int:
        if len(self.eps) >= MAX_STATES:
            raise _refuse(f"more than {MAX_STATES} automaton states (lower the repetition counts)")
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, node: tuple, a: int, b: int) -> None:
        """Wire `node` between states a (before) and b (after)."""
        kind = node[0]
        if kind == "set":
            self.chars(node[1], a, b)
        elif kind == "cat":
            for item in node[1][:-1]:
                mid = self.state()
                self.build(item, a, mid)
                a = mid
            if node[1]:
                self.build(node[1][-1], a, b)
            else:
                self.eps[a].append(b)
        elif kind == "alt":
            for alt in node[1]:
                self.build(alt, a, b)
        else:  # ("rep", sub, lo, hi): lo copies, then hi - lo optional ones (or a loop)
            _, sub, lo, hi = node
            for _ in range(lo):
                mid = self.state()
                self.build(sub, a, mid)
                a = mid
            if hi is None:
                loop = self.state()
                self.eps[a].append(loop)
                self.build(sub, loop, loop)
                self.eps[loop].append(b)
            else:
                for _ in range(hi - lo):
                    mid = self.state()
                    self.eps[a].append(b)
                    self.build(sub, a, mid)
                    a = mid
                self.eps[a].append(b)

    def chars(self, s: Ranges, a: int, b: int) -> None:
        s = without_surrogates(s)
        self.bounds.update(x for lo, hi in s for x in (lo, hi + 1))
        self.sets.append(s)
        if self.json_string:  # characters JSON must escape: their escape sequence
            for code, text in sorted(JSON_ESCAPES.items()):
                if any(lo <= code <= hi for lo, hi in s):
                    self.sequence([(x, x) for x in text], a, b)
            for code in range(0x20):
                if code not in JSON_ESCAPES and any(lo <= code <= hi for lo, hi in s):
                    self.sequence([(x, x) for x in f"\\u{code:04x}".encode()], a, b)
            s = without(s, union(((0, 0x1F), (0x22, 0x22), (0x5C, 0x5C))))
        for lo, hi in s:
            for seq in utf8_sequences(lo, hi):
                self.sequence(seq, a, b)

    def sequence(self, ranges: list[tuple[int, int]], a: int, b: int) -> None:
        for lo, hi in ranges[:-1]:
            mid = self.state()
            self.edges[a].append((lo, hi, mid))
            a = mid
        lo, hi = ranges[-1]
        self.edges[a].append((lo, hi, b))


def without(s: Ranges, t: Ranges) -> Ranges:
    return negate(union(negate(s), t))


# ---------------------------------------------------------------------------------------------
# The grammar node
# ---------------------------------------------------------------------------------------------

class Regex(Node):
    """Text matching a regular expression: raw text (json_string False: a whole response) or a JSON
    string "…" whose decoded value matches (json_string True). Frame: (node, set of NFA states)."""

    def __init__(self, source: str, flags: str = "", json_string: bool = False) -> None:
        if not isinstance(source, str):
            raise _bad(f"the pattern must be a string, got {type(source).__name__}.")
        if not isinstance(flags, str) or set(flags) - {"u"} or len(flags) > 1:
            raise _refuse(f"the flags {flags!r} (only none or 'u')")
        self.source, self.flags, self.json_string = source, flags, json_string
        branches = Parser(source, unicode=flags == "u").top()
        any_text = ("rep", ("set", ((0, MAX_CODE),)), 0, None)
        alts = []
        for start, node, end in branches:
            if json_string:  # JSON Schema: unanchored unless ^ / $
                node = ("cat", [*([] if start else [any_text]), node, *([] if end else [any_text])])
            alts.append(node)
        nfa = NFA(json_string)
        begin, self.final = nfa.state(), nfa.state()
        nfa.build(alts[0] if len(alts) == 1 else ("alt", alts), begin, self.final)
        # Only states from which the final one can be reached (a class may match nothing: [^\s\S]),
        # so that every prefix the automaton accepts can still be completed.
        into: list[list[int]] = [[] for _ in nfa.eps]
        for s, (eps, edges) in enumerate(zip(nfa.eps, nfa.edges, strict=True)):
            for t in [*eps, *(t for _, _, t in edges)]:
                into[t].append(s)
        live, todo = {self.final}, [self.final]
        while todo:
            for s in into[todo.pop()]:
                if s not in live:
                    live.add(s)
                    todo.append(s)
        nfa.edges = [[e for e in edges if e[2] in live] for edges in nfa.edges]
        # closure[s]: the states reachable from s without reading, kept to those that read or end.
        reads = [bool(e) or s == self.final for s, e in enumerate(nfa.edges)]
        self.closure: list[frozenset] = []
        for s in range(len(nfa.eps)):
            seen, todo = {s}, [s]
            while todo:
                for t in nfa.eps[todo.pop()]:
                    if t not in seen:
                        seen.add(t)
                        todo.append(t)
            self.closure.append(frozenset(t for t in seen if reads[t]))
        self.edges = nfa.edges
        # Character classes: code points in the same character sets are read alike by the NFA, so tokens
        # of whole characters can be walked as sequences of classes (tokens.ClassTrie). Interval i holds
        # the code points c with bisect_right(bounds, c) == i; classes[i] is its class.
        bounds = sorted(nfa.bounds)
        sets = list(dict.fromkeys(nfa.sets))
        signatures: dict[tuple, int] = {}
        classes = []
        for i in range(len(bounds) + 1):
            c = bounds[i - 1] if i else 0
            sig = tuple(j for j, s in enumerate(sets) if any(lo <= c <= hi for lo, hi in s))
            classes.append(signatures.setdefault(sig, len(signatures)))
        self.classes = (tuple(bounds), tuple(classes))
        self.initial_set = self.closure[begin]
        if not self.initial_set:
            raise _refuse("a pattern that matches no text at all (a class that matches no character?)")
        self._next: dict[tuple[frozenset, int], frozenset] = {}

    def initial(self) -> tuple:
        return (self, self.initial_set) if not self.json_string else super().initial()

    def next_set(self, states: frozenset, b: int) -> frozenset:
        key = (states, b)
        out = self._next.get(key)
        if out is None:
            targets = [t for s in states for lo, hi, t in self.edges[s] if lo <= b <= hi]
            out = self._next[key] = frozenset().union(*(self.closure[t] for t in targets))
        return out

    def start(self, b: int) -> list[tuple]:
        if self.json_string:
            return [((self, self.initial_set),)] if b == 0x22 else []
        return self.step((self, self.initial_set), b)

    def step(self, frame: tuple, b: int) -> list[tuple]:
        states = frame[1]
        out: list[tuple] = [()] if self.json_string and b == 0x22 and self.final in states else []
        nxt = self.next_set(states, b)
        if nxt:
            out.append(((self, nxt),))
        return out

    def done(self, frame: tuple) -> bool:
        return not self.json_string and self.final in frame[1]

    def advance(self, states: frozenset, data: bytes) -> frozenset:
        for b in data:
            states = self.next_set(states, b)
            if not states:
                break
        return states

    def fullmatch(self, text: str) -> bool:
        """Whether the whole text matches (raw mode; for tests and enum filtering)."""
        states = self.initial_set
        for b in text.encode("utf-8", "surrogatepass"):
            states = self.next_set(states, b)
            if not states:
                return False
        return self.final in states
