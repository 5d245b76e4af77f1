"""Regular-expression constraints (nomoat.constrain.regex): the RegExp subset, its refusals, and two
properties over random regexes: the automaton accepts exactly what Python's re accepts (the pattern
rendered with JavaScript's meaning of . and \\s), and generation from random logits always yields a
full match. Also the JSON Schema `pattern` keyword (unanchored, inside JSON's string escaping)."""

from __future__ import annotations

import asyncio
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_constrain import BOS, EOS, TOK, RandomBackend, constraint_for, run_random

from nomoat.constrain import compile_constraint
from nomoat.constrain.regex import Regex
from nomoat.errors import IncompleteOutputError, InvalidOptionError, UnsupportedSchemaError
from nomoat.generate import Stats, generate
from nomoat.sampling import SamplingParams

# JavaScript's \s and line terminators, spelled out for Python's re (re.ASCII gives JavaScript's \d \w).
PY_SPACE = "\\t-\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
PY_DOT = "[^\\n\\r\\u2028\\u2029]"


# ---------------------------------------------------------------------------------------------
# Hand-written cases
# ---------------------------------------------------------------------------------------------

CASES = [  # (pattern, strings that match, strings that don't): read with JavaScript's meaning
    (r"\d{3}-\d{4}", ["555-1234"], ["55-1234", "5551234", "٣٣٣-1234"]),
    (r"^(?:ab|cd)*e?$", ["", "abcd", "abe", "e", "cdcdab"], ["a", "ee", "abc"]),
    (r"[^a-c]+", ["xyz", "日本", "😀\n"], ["abc", "", "xa"]),
    (r".", ["é", "😀", "\t"], ["\n", "\r", "\u2028", "ab", ""]),
    (r"a|b$", ["a", "b"], ["ab", ""]),
    (r"x{2,3}", ["xx", "xxx"], ["x", "xxxx"]),
    (r"x{2,}y{0}", ["xx", "xxxxx"], ["x", "xxy"]),
    (r"(?<year>\d{4})-(\d\d)", ["2024-05"], ["2024-5"]),
    (r"[\w.+-]+@[\w-]+\.[a-z]{2,}", ["a.b+c@d-e.org"], ["a@b.c", "é@x.io"]),
    (r"\s+", [" \t\n", "\u00a0\u3000\ufeff"], ["", "a "]),
    (r"[\s\S]*", ["", "any\nthing\u2028"], []),
    (r"\S\D\W", ["a -", "日x "], ["  b", "a1b", "abc"]),
    (r"[\b]\0\x41\u00e9\u{1F600}", ["\b\0Aé😀"], ["\b\0A\u00e9"]),
    (r"\uD83D\uDE00|\/|\.|\]", ["😀", "/", ".", "]"], ["\\/", "x"]),
    (r"a*?b+?c??", ["b", "aabbc"], ["ac"]),
    (r"[a-]x|[-a]y", ["-x", "ax", "-y"], ["bx"]),
    (r"()|a", ["", "a"], ["aa"]),
]


@pytest.mark.parametrize("pattern,good,bad", CASES, ids=[c[0] for c in CASES])
def test_hand_cases(pattern, good, bad):
    r = Regex(pattern, "u")
    for s in good:
        assert r.fullmatch(s), s
    for s in bad:
        assert not r.fullmatch(s), s


@pytest.mark.parametrize("pattern,flags,construct", [
    (r"(a)\1", "", "backreference"),
    (r"(?<n>a)\k<n>", "", "backreference"),
    (r"a(?=b)", "", "lookahead"),
    (r"a(?!b)", "", "negative lookahead"),
    (r"(?<=a)b", "", "lookbehind"),
    (r"(?<!a)b", "", "lookbehind"),
    (r"\bword\b", "", "word boundary"),
    (r"a\B", "", "word boundary"),
    (r"a^b", "", "^ or $ inside"),
    (r"(^a)", "", "^ or $ inside"),
    (r"(a$)", "", "^ or $ inside"),
    (r"a$b", "", "^ or $ inside"),
    (r"\p{L}", "u", "property escape"),
    (r"\cJ", "", "control escape"),
    (r"(?i)a", "", "group modifier"),
    (r"a", "i", "flags 'i'"),
    (r"a", "gu", "flags 'gu'"),
    (r"[]", "", "empty class"),
    (r"[^]", "", "empty class"),
    (r"[\d-z]", "", "class escape at an end"),
    (r"\u{41}", "", "without the u flag"),
    (r"\uD800", "", "lone surrogate"),
    (r"\e", "", "the escape \\e"),
    (r"a{,3}", "", "literal '{'"),
    (r"a{100000}", "", "automaton states"),
    (r"[^\s\S]", "", "matches no text"),
    (r"a[^\D0-9]b", "", "matches no text"),
])
def test_unsupported_constructs_are_refused_by_name(pattern, flags, construct):
    with pytest.raises(UnsupportedSchemaError, match=re.escape(construct)) as e:
        Regex(pattern, flags)
    assert e.value.dom_name == "NotSupportedError"


@pytest.mark.parametrize("pattern", ["(a", "a)", "*a", "a**", "a{2}{3}", "[a", "[z-a]", "a{3,2}", "\\x4", "\\u12"])
def test_malformed_patterns_are_option_errors(pattern):
    with pytest.raises(InvalidOptionError) as e:
        Regex(pattern)
    assert e.value.dom_name == "NotSupportedError"  # a constraint nomoat cannot enforce (issue 14)


def test_the_constraint_forms():
    assert compile_constraint({"regex": "ab?"}).matches(b"a")
    assert compile_constraint({"regex": "ab?", "flags": "u"}).matches(b"ab")
    assert compile_constraint(re.compile("ab?")).matches(b"ab")  # read as {"regex": pattern.pattern}
    with pytest.raises(InvalidOptionError, match="flags"):
        compile_constraint(re.compile("a", re.IGNORECASE))
    with pytest.raises(UnsupportedSchemaError, match="'regex'"):  # a schema with a stray key stays a schema
        compile_constraint({"regex": "a", "type": "string"})


def test_an_empty_answer_may_end_at_once():
    text, stats = run_random({"regex": "a{0,2}"}, seed=0)
    assert re.fullmatch("a{0,2}", text) and stats.finish_reason == "stop"


# ---------------------------------------------------------------------------------------------
# JSON Schema pattern: unanchored unless ^ / $, characters escaped as JSON requires
# ---------------------------------------------------------------------------------------------

def json_pattern(pattern: str) -> Regex:
    return Regex(pattern, "u", json_string=True)


def accepts(node: Regex, data: bytes) -> bool:
    from nomoat.constrain.automaton import Automaton

    return Automaton(node).matches(data)


@pytest.mark.parametrize("pattern,good,bad", [
    ("b", ["b", "abc", 'x"b\\'], ["", "a", "B"]),
    ("^a", ["a", "abc"], ["ba"]),
    ("c$", ["c", "abc"], ["cb"]),
    ("^[0-9]{2}$", ["42"], ["4", "423", "a42"]),
    ('^"\\\\\\n$', ['"\\\n'], ['"\\']),
    ("^\\x01\\x7f$", ["\x01\x7f"], ["\x01"]),
])
def test_json_pattern_cases(pattern, good, bad):
    node = json_pattern(pattern)
    for s in good:
        assert accepts(node, json.dumps(s, ensure_ascii=False).encode()), s
    for s in bad:
        assert not accepts(node, json.dumps(s, ensure_ascii=False).encode()), s
    assert not accepts(node, b'"\\u0041"') or pattern == "b"  # only JSON's one spelling of each character


def test_json_pattern_in_a_schema():
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{2}$"},
              "tag": {"enum": ["ab", "b", "cd"], "pattern": "b"}}, "required": ["code", "tag"]}
    for seed in range(4):
        text, _ = run_random(schema, seed)
        value = json.loads(text)
        assert re.fullmatch("[A-Z]{3}-[0-9]{2}", value["code"]) and value["tag"] in ("ab", "b"), text


# ---------------------------------------------------------------------------------------------
# Random regexes: an AST rendered twice, with JavaScript's meaning (for nomoat) and for Python's re
# ---------------------------------------------------------------------------------------------

CHARS = ["a", "b", "c", "0", "7", "_", " ", "\t", "\n", "é", "日", "😀", '"', "\\", "/", "-", ".", "\x01", "\u2028"]
EXTRA = ["Z", "9", "\r", "\xa0", "\u3000", "!"]
PUNCT = set(".^$*+?()[]{}|\\/-")


def lit(c: str, in_class: bool = False) -> tuple[str, str]:
    if c in PUNCT or (in_class and c == "]"):
        return "\\" + c, "\\" + c
    if c == "\n":
        return "\\n", "\\n"
    if ord(c) < 0x20:
        return f"\\x{ord(c):02x}", f"\\x{ord(c):02x}"
    if c == "\u2028":
        return "\\u2028", "\\u2028"
    return c, re.escape(c)


def class_item(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["char", "range", "escape"]))
    if kind == "char":
        return lit(draw(st.sampled_from(CHARS)), True)
    if kind == "range":
        a, b = sorted(draw(st.lists(st.sampled_from("abcxyz079é日"), min_size=2, max_size=2)))
        return f"{a}-{b}", f"{a}-{b}"
    e = draw(st.sampled_from(["\\d", "\\w", "\\D", "\\W", "\\s"]))
    return e, PY_SPACE if e == "\\s" else e


@st.composite
def leaf(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["char", "char", "class", "dot", "escape"]))
    if kind == "char":
        return lit(draw(st.sampled_from(CHARS)))
    if kind == "dot":
        return ".", PY_DOT
    if kind == "escape":
        e = draw(st.sampled_from(["\\d", "\\w", "\\s", "\\D", "\\W", "\\S"]))
        return e, {"\\s": f"[{PY_SPACE}]", "\\S": f"[^{PY_SPACE}]"}.get(e, e)
    items = [class_item(draw) for _ in range(draw(st.integers(1, 3)))]
    neg = "^" if draw(st.booleans()) else ""
    return f"[{neg}{''.join(j for j, _ in items)}]", f"[{neg}{''.join(p for _, p in items)}]"


def combine(children):
    def cat(parts):
        return "".join(j for j, _ in parts), "".join(p for _, p in parts)

    def alt(parts):
        return "(?:" + "|".join(j for j, _ in parts) + ")", "(?:" + "|".join(p for _, p in parts) + ")"

    @st.composite
    def rep(draw):
        j, p = draw(children)
        q = draw(st.sampled_from(["?", "*", "+", "{2}", "{1,}", "{0,2}", "{1,3}"])) + draw(st.sampled_from(["", "?"]))
        return f"(?:{j}){q}", f"(?:{p}){q}"

    return st.one_of(st.lists(children, min_size=0, max_size=4).map(cat),
                     st.lists(children, min_size=2, max_size=3).map(alt), rep())


REGEX = st.recursive(leaf(), combine, max_leaves=8)


@st.composite
def anchored(draw) -> tuple[str, str]:
    """Top-level alternatives, each maybe with ^ and $ (Python: ^ and \\Z, which mean what JavaScript's do)."""
    branches = []
    for _ in range(draw(st.integers(1, 2))):
        j, p = draw(REGEX)
        start, end = draw(st.booleans()), draw(st.booleans())
        branches.append((("^" if start else "") + j + ("$" if end else ""),
                         ("^" if start else "") + f"(?:{p})" + ("\\Z" if end else "")))
    return "|".join(j for j, _ in branches), "|".join(p for _, p in branches)


def no_surrogates(s: str) -> bool:  # UTF-8 text holds none; Python's str can
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(rx=anchored(), data=st.data())
def test_random_regexes_accept_exactly_what_python_re_does(rx, data):
    js, py = rx
    compiled = re.compile(py, re.ASCII)
    texts = data.draw(st.lists(st.text(st.sampled_from(CHARS + EXTRA), max_size=6), max_size=6))
    try:
        node = Regex(js, "u")
    except UnsupportedSchemaError as e:  # refused only when nothing matches (a class such as [^a\D0-a])
        assert "matches no text" in str(e) and not any(compiled.fullmatch(s) for s in texts)
        return
    texts += data.draw(st.lists(st.from_regex(compiled, fullmatch=True).filter(no_surrogates), max_size=3))
    for s in texts:
        assert node.fullmatch(s) == bool(compiled.fullmatch(s)), (js, py, s)
        # As a JSON Schema pattern: JSON's escaping outside, search (unanchored) inside.
        assert accepts(json_pattern(js), json.dumps(s, ensure_ascii=False).encode()) == bool(compiled.search(s)), \
            (js, py, s)


class EagerEOSBackend(RandomBackend):
    """Random logits with EOS favoured, so answers end soon after the pattern allows it."""

    async def forward(self, state, token_ids, all_logits: bool = False) -> np.ndarray:
        logits = await super().forward(state, token_ids, all_logits)
        logits[EOS] += 4.0
        return logits


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rx=anchored(), seed=st.integers(0, 2**16),
       sampling=st.sampled_from([{}, {"temperature": 0}, {"top_k": 5}, {"top_p": 0.8, "min_p": 0.05},
                                 {"repetition_penalty": 1.5}]))
def test_generation_from_random_logits_is_a_full_match(rx, seed, sampling):
    js, py = rx
    try:
        constraint = constraint_for({"regex": js, "flags": "u"})  # every mask checked against brute force
    except UnsupportedSchemaError:
        assume(False)  # matches nothing (see above)
    backend = EagerEOSBackend(seed)
    params = SamplingParams(temperature=1.0, seed=seed, max_tokens=400).replace(**sampling)

    async def go() -> str:
        return "".join([p async for p in generate(backend, backend.new_state(), [BOS], params, TOK, [EOS],
                                                  backend.config.max_position_embeddings, Stats(), constraint)])

    try:
        text = asyncio.run(go())
    except IncompleteOutputError:
        assume(False)  # ran out of tokens inside an unbounded repetition: not a wrong answer
    assert re.compile(py, re.ASCII).fullmatch(text), (js, py, text)


def test_every_mask_equals_brute_force_for_a_regex():
    c = constraint_for({"regex": "(?:[a-c]é|日本|\\d{2,3})+ ?😀?"})  # CheckedConstraint: brute force each step
    rng = np.random.default_rng(0)
    out = b""
    for _ in range(30):
        ids = np.flatnonzero(np.unpackbits(np.frombuffer(c.allowed(), np.uint8), bitorder="little"))
        token = int(rng.choice(ids))
        if token == EOS:
            break
        c.advance(token)
        out += TOK.token_bytes(token)
    assert re.fullmatch("(?:[a-c]é|日本|[0-9]{2,3})+ ?😀?", out.decode()) or not c.complete
