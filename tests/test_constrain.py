"""Structured output (nomoat.constrain): the schema subset, the byte-level automaton, the token masks,
generation driven by random logits (hypothesis over generated schemas), and the real model end to end.

Outputs are checked with json.loads and a small independent validator for the subset (jsonschema is
not a dependency)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nomoat.backends.base import LogitsBackend
from nomoat.config import ModelConfig
from nomoat.constrain import GrammarConstraint, TokenIndex, compile_constraint, compile_schema
from nomoat.constrain.automaton import Automaton
from nomoat.constrain.tokens import bitset, ids_of, plain_chars
from nomoat.errors import IncompleteOutputError, InvalidOptionError, UnsupportedSchemaError
from nomoat.generate import Stats, generate
from nomoat.model import Model
from nomoat.sampler import Sampler
from nomoat.sampling import SamplingParams
from nomoat.tokenizer import ByteLevelDecoder, byte_level_alphabet

# ---------------------------------------------------------------------------------------------
# An independent validator for the supported subset
# ---------------------------------------------------------------------------------------------


def valid(v, s) -> bool:
    if s is True or s == {}:
        return True
    if "anyOf" in s:
        return any(valid(v, alt) for alt in s["anyOf"])
    if "const" in s and not same(v, s["const"]):
        return False
    if "enum" in s and not any(same(v, e) for e in s["enum"]):
        return False
    types = s.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(is_type(v, t) for t in types):
            return False
    if isinstance(v, dict):
        props = s.get("properties", {})
        if s.get("additionalProperties", True) is False and set(v) - set(props):
            return False
        return all(r in v for r in s.get("required", [])) and all(valid(v[k], props[k]) for k in v if k in props)
    if isinstance(v, list):
        return (s.get("minItems", 0) <= len(v) <= s.get("maxItems", math.inf)
                and all(valid(x, s.get("items", True)) for x in v))
    if isinstance(v, str):
        return s.get("minLength", 0) <= len(v) <= s.get("maxLength", math.inf)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return s.get("minimum", -math.inf) <= v <= s.get("maximum", math.inf)
    return True


def is_type(v, t: str) -> bool:
    return {
        "null": v is None, "boolean": isinstance(v, bool), "string": isinstance(v, str),
        "object": isinstance(v, dict), "array": isinstance(v, list),
        "number": isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer()),
    }[t]


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
        not isinstance(a, bool) and not isinstance(b, bool) and isinstance(a, (int, float))
        and isinstance(b, (int, float)) and a == b)


def matches(schema, text: str) -> bool:
    return Automaton(compile_schema(schema)).matches(text.encode())


# ---------------------------------------------------------------------------------------------
# The automaton, by hand
# ---------------------------------------------------------------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 150}},
          "required": ["name", "age"], "additionalProperties": False}

CASES = [
    ({"type": "null"}, ["null"], ["nul", "nulll", "None", " null", ""]),
    ({"type": "boolean"}, ["true", "false"], ["tru", "True", "0"]),
    ({"type": "string"}, ['""', '"abc"', '"a\\"b"', '"\\n\\t\\\\\\/"', '"café 日本 🎉"'],
     ['"abc', "abc", '"a"b"', '"\\x"', '"\\u0041"', '"a\nb"', '"a" ']),
    ({"type": "string", "maxLength": 3}, ['""', '"abc"', '"日本🎉"', '"\\n\\n\\n"'],
     ['"abcd"', '"日本🎉é"', '"\\n\\n\\n\\n"']),
    ({"type": "string", "minLength": 2}, ['"ab"', '"🎉🎉"'], ['""', '"a"', '"🎉"']),
    ({"type": "integer"}, ["0", "7", "-12", "123456789012345"], ["01", "-0", "1.0", "1e3", "-", "+1", "1.", "--1"]),
    ({"type": "integer", "minimum": 0, "maximum": 150}, ["0", "9", "99", "150", "100"],
     ["151", "-1", "1000", "200", "00"]),
    ({"type": "integer", "minimum": 100, "maximum": 120}, ["100", "120", "111"], ["1", "10", "99", "121", "0"]),
    ({"type": "integer", "minimum": -5.5, "maximum": -2.5}, ["-5", "-3"], ["-6", "-2", "-2.5", "3"]),
    ({"type": "number", "minimum": 0.5, "maximum": 2}, ["0.5", "1", "1.999", "2", "2.0", "2.000"],
     ["0.49", "2.01", "-1", "0", "3", "1.", "1e0"]),
    ({"type": "number"}, ["0", "-0.25", "3.14159", "-12", "-0.0"], [".5", "1.", "1e5", "01.5", "NaN", "-0", "-"]),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}, ["[1]", "[1,2,3]", "[-1,0]"],
     ["[]", "[1,2,3,4]", "[1,]", "[,1]", "[1 ,2]", "[1]]"]),
    ({"type": "array", "items": {"type": "string"}, "maxItems": 0}, ["[]"], ['[""]']),
    ({"enum": ["ab", "abc", "abd", 1, 12, None]}, ['"ab"', '"abc"', '"abd"', "1", "12", "null"],
     ['"a"', '"abcd"', "123", '"ab', "2"]),
    ({"const": {"a": [1, 2]}}, ['{"a":[1,2]}'], ['{"a":[1,2,3]}', '{"a": [1,2]}']),
    ({"type": "string", "enum": ["x", 1, "toolong"], "maxLength": 3}, ['"x"'], ["1", '"toolong"']),
    ({"anyOf": [{"type": "integer", "maximum": 5}, {"type": "string", "maxLength": 1}, {"type": "null"}]},
     ["5", '"a"', "null", "-3"], ["6", '"ab"', "true"]),
    ({"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]},
     ['{"a":1}', '{"a":"x"}'], ['{"a":true}', "{}"]),
    ({"type": ["string", "null"], "maxLength": 1}, ['"a"', "null"], ['"ab"', "0"]),
    (PERSON, ['{"name":"Bob","age":42}', '{"name":"","age":0}'],
     ['{"age":42,"name":"Bob"}', '{"name":"Bob"}', '{"name":"Bob","age":42,"x":1}', '{"name":"Bob","age":151}',
      '{"name": "Bob","age":42}']),
    ({"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"}, "c": {"type": "null"}},
      "required": ["b"]},
     ['{"b":null}', '{"a":null,"b":null}', '{"b":null,"c":null}', '{"a":null,"b":null,"c":null}'],
     ["{}", '{"a":null}', '{"c":null}', '{"a":null,"c":null}', '{"b":null,}', '{"b":null,"b":null}']),
    ({"type": "object", "properties": {"o": {"type": "object", "properties": {"é": {"type": "boolean"}}}}},
     ['{}', '{"o":{}}', '{"o":{"é":true}}'], ['{"o":{"e":true}}', '{"o":{"é":1}}']),
    ({}, ["1", '"x"', "[1,[null,{}]]", "{}"], ['{"a":1}', "[1,]"]),
]


@pytest.mark.parametrize("schema,good,bad", CASES, ids=[json.dumps(c[0])[:60] for c in CASES])
def test_automaton_accepts_and_rejects(schema, good, bad):
    for text in good:
        assert matches(schema, text), text
        assert valid(json.loads(text), schema), text
    for text in bad:
        assert not matches(schema, text), text


def test_number_prefixes_that_cannot_reach_the_range_are_dead_early():
    g = Automaton(compile_schema({"type": "integer", "minimum": 100, "maximum": 120}))
    assert g.advance(g.start, b"1")
    assert g.advance(g.start, b"12") and not g.advance(g.start, b"13")  # no 13x lies in 100..120
    assert not g.advance(g.start, b"2") and not g.advance(g.start, b"-")
    g = Automaton(compile_schema({"type": "number", "minimum": 0.5, "maximum": 0.75}))
    assert g.advance(g.start, b"0.7") and not g.advance(g.start, b"0.8") and not g.advance(g.start, b"1")
    assert g.accepting(g.advance(g.start, b"0.7")) and not g.accepting(g.advance(g.start, b"0.4"))


def test_invalid_utf8_is_rejected_inside_strings():
    g = Automaton(compile_schema({"type": "string"}))
    assert g.matches('"é"'.encode())
    for bad in [b'"\xc3"', b'"\x80"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf5\x80\x80\x80"', b'"\xe0\x80\x80"']:
        assert not g.matches(bad), bad


@pytest.mark.parametrize("schema,word", [
    ({"type": "string", "pattern": "^a+$", "maxLength": 3}, "pattern together with minLength/maxLength"),
    ({"type": "string", "pattern": "(a)\\1"}, "#/pattern: the regular expression uses a backreference"),
    ({"type": "string", "format": "date"}, "format"),
    ({"$ref": "#/$defs/x", "$defs": {"x": {}}}, "$defs"),
    ({"oneOf": [{"type": "string"}]}, "oneOf"),
    ({"allOf": [{"type": "string"}]}, "allOf"),
    ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": True}, "additionalProperties"),
    ({"type": "object", "additionalProperties": {"type": "string"}}, "additionalProperties"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "'b'"),
    ({"type": "number", "exclusiveMinimum": 0}, "exclusiveMinimum"),
    ({"type": "array", "items": [{"type": "string"}]}, "items"),
    ({"type": "object", "properties": {"deep": {"type": "array", "items": {"not": {}}}}}, "'not'"),
    ({"anyOf": [{"type": "string"}], "type": "string"}, "anyOf together with 'type'"),
    ({"type": "integer", "minimum": 1.5, "maximum": 1.7}, "minimum..maximum"),
    ({"type": "string", "enum": [1, 2]}, "enum"),
    (False, "false"),
])
def test_unsupported_schemas_are_refused_naming_the_keyword(schema, word):
    with pytest.raises(UnsupportedSchemaError, match=word.replace("$", r"\$").replace(".", r"\.")) as e:
        compile_schema(schema)
    assert e.value.dom_name == "NotSupportedError"


def test_malformed_schemas_are_option_errors():
    for schema in [[], {"type": "str"}, {"type": "string", "maxLength": -1}, {"enum": []},
                   {"type": "number", "minimum": "0"}]:
        with pytest.raises(InvalidOptionError):
            compile_schema(schema)


# ---------------------------------------------------------------------------------------------
# A small byte-level vocabulary: every byte, JSON-ish merges, and special tokens
# ---------------------------------------------------------------------------------------------

BYTE_CHAR = {b: c for c, b in byte_level_alphabet().items()}
MERGES = ['{"', '":', '","', '"}', '":"', '},{', "true", "false", "null", "12", "0.", "-1", "],[", '"a', "ab",
          "abc", "é", "日本", "🎉", "[]", "{}", '"]', "a b", '\\"', "\\n", ',"', "0]", "1}", "name", "x" * 8]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
BOS, EOS = 256 + len(MERGES), 257 + len(MERGES)
VOCAB = 256 + len(MERGES) + len(SPECIALS) + 4  # a few ids past the tokenizer, as real models have


def byte_level(data: bytes) -> str:
    return "".join(BYTE_CHAR[b] for b in data)


def tokenizer_json() -> dict:
    vocab = {byte_level(bytes([b])): b for b in range(256)}
    vocab.update({byte_level(m.encode()): 256 + i for i, m in enumerate(MERGES)})
    added = [{"id": BOS + i, "content": s, "special": True} for i, s in enumerate(SPECIALS)]
    vocab.update({a["content"]: a["id"] for a in added})
    return {"model": {"type": "BPE", "vocab": vocab, "merges": []}, "added_tokens": added}


TOK = ByteLevelDecoder(tokenizer_json())


class RandomState:
    def __init__(self) -> None:
        self.tokens: list[int] = []

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]

    def close(self) -> None:
        self.tokens = []

    def fork(self) -> RandomState:
        other = RandomState()
        other.tokens = list(self.tokens)
        return other


class RandomBackend(LogitsBackend):
    """Seeded random logits: the sampler picks freely among whatever the mask allows."""

    name = "random"
    device = "cpu"

    def __init__(self, seed: int, context_window: int = 4096) -> None:
        self.rng = np.random.default_rng(seed)
        self.config = ModelConfig(
            vocab_size=VOCAB, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=context_window, rms_norm_eps=1e-5, rope_theta=10000.0,
            head_dim=4, bos_token_id=BOS, eos_token_id=EOS,
        )

    def new_state(self) -> RandomState:
        return RandomState()

    async def forward(self, state: RandomState, token_ids, all_logits: bool = False) -> np.ndarray:
        state.tokens.extend(int(t) for t in token_ids)
        return (self.rng.standard_normal(VOCAB) * 2).astype(np.float32)


class CheckedConstraint(GrammarConstraint):
    """Also checks every mask against brute force: each token's bytes run through the automaton."""

    def allowed(self) -> bytes:
        mask = super().allowed()
        brute = {t for t, data in enumerate(self.index.token_bytes) if data and self.grammar.advance(self.state, data)}
        if self.complete:
            brute.add(EOS)
        assert set(ids_of(int.from_bytes(mask, "little"))) == brute
        assert len(mask) % 4 == 0 and len(mask) * 8 >= VOCAB - 4  # whole 32-bit words, the whole vocabulary
        return mask


def constraint_for(spec, checked: bool = True) -> GrammarConstraint:
    return (CheckedConstraint if checked else GrammarConstraint)(compile_constraint(spec), TOK, [EOS])


def run_random(schema, seed: int, max_tokens: int = 2000, checked: bool = True, **sampling) -> tuple[str, Stats]:
    backend = RandomBackend(seed)
    constraint = constraint_for(schema, checked)
    params = SamplingParams(temperature=1.0, seed=seed, max_tokens=max_tokens).replace(**sampling)
    stats = Stats()

    async def go() -> str:
        return "".join([p async for p in generate(backend, backend.new_state(), [BOS], params, TOK, [EOS],
                                                  backend.config.max_position_embeddings, stats, constraint)])

    return asyncio.run(go()), stats


def test_small_vocab_has_every_byte_and_the_merges():
    assert TOK.vocab_size == VOCAB - 4 and TOK.special_ids == {BOS, EOS, EOS + 1}
    assert TOK.token_bytes(256) == b'{"' and TOK.token_bytes(EOS) == b""
    assert plain_chars("日本".encode()) == 2 and plain_chars(b'"a') == -1 and plain_chars(b"\xe6") == -1
    assert plain_chars(b"a\tb") == -1 and plain_chars(b"") == -1


@pytest.mark.parametrize("schema,good,bad", CASES, ids=[json.dumps(c[0])[:60] for c in CASES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_logits_give_valid_json_for_the_hand_cases(schema, good, bad, seed):
    text, stats = run_random(schema, seed)
    assert stats.finish_reason == "stop" and valid(json.loads(text), schema), text


def test_greedy_follows_the_logits_inside_the_mask():
    text, stats = run_random(PERSON, seed=3, temperature=0)
    assert valid(json.loads(text), PERSON) and stats.finish_reason == "stop"


def test_running_out_of_tokens_is_an_error_not_invalid_json():
    with pytest.raises(IncompleteOutputError, match="max_tokens"):
        run_random(PERSON, seed=0, max_tokens=3)


def test_token_index_is_built_once_per_tokenizer():
    assert TokenIndex.for_tokenizer(TOK) is TokenIndex.for_tokenizer(TOK)


# ---------------------------------------------------------------------------------------------
# Property: random schemas of the subset, random logits → every output parses and validates
# ---------------------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "ab", "b", "name", "日本", "x y", 'q"'])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-20, 200), st.sampled_from(["", "a", "ab", "abc", "é"]),
                    st.sampled_from([0.5, -1.25, 3.0]))


@st.composite
def strings(draw):
    s = {"type": "string", "maxLength": draw(st.integers(0, 6))}
    if draw(st.booleans()):
        s["minLength"] = draw(st.integers(0, s["maxLength"]))
    return s


@st.composite
def numbers(draw):
    t = draw(st.sampled_from(["integer", "number"]))
    s: dict = {"type": t}
    bound = st.integers(-1000, 1000) | st.sampled_from([0.5, -2.25, 99.9, 0.125])
    lo, hi = draw(st.none() | bound), draw(st.none() | bound)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    if t == "integer" and lo is not None and hi is not None and math.ceil(lo) > math.floor(hi):
        hi = None
    s.update({k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None})
    return s


LEAVES = st.one_of(
    st.just({"type": "null"}), st.just({"type": "boolean"}), strings(), numbers(),
    st.builds(lambda vs: {"enum": vs}, st.lists(SCALARS, min_size=1, max_size=4)),
    st.builds(lambda v: {"const": v}, SCALARS),
    st.just({"type": ["integer", "null"], "maximum": 9}),
)


def containers(children):
    arrays = st.builds(
        lambda items, lo, extra: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + extra},
        children, st.integers(0, 2), st.integers(0, 2))
    objects = st.builds(
        lambda props, req: {"type": "object", "properties": props, "additionalProperties": False,
                            "required": [k for k, r in zip(props, req, strict=False) if r]},
        st.dictionaries(KEYS, children, max_size=3), st.lists(st.booleans(), min_size=3, max_size=3))
    any_of = st.builds(lambda alts: {"anyOf": alts}, st.lists(children, min_size=1, max_size=3))
    return arrays | objects | any_of


SCHEMAS = st.recursive(LEAVES, containers, max_leaves=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMAS, seed=st.integers(0, 2**32 - 1))
def test_random_schemas_with_random_logits_always_give_valid_json(schema, seed):
    text, stats = run_random(schema, seed)
    assert stats.finish_reason == "stop"
    value = json.loads(text)
    assert valid(value, schema), (text, schema)
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":")) or "\\" in text or "." in text


# ---------------------------------------------------------------------------------------------
# Session wiring, with the random backend behind a Model
# ---------------------------------------------------------------------------------------------

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class EncodingTokenizer(ByteLevelDecoder):
    """The small vocabulary with a byte-per-token encoder (specials kept whole)."""

    def __init__(self) -> None:
        super().__init__(tokenizer_json())

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, part in enumerate(text.replace("<|im_start|>", "\0S\0").replace("<|im_end|>", "\0E\0").split("\0")):
            if i % 2:
                ids.append(BOS if part == "S" else EOS)
            else:
                ids.extend(part.encode())
        return ids


def fake_model(backend) -> Model:
    model = Model.__new__(Model)
    model.source, model.config, model.backend = Path("fake"), backend.config, backend
    model.tokenizer, model.chat_template = EncodingTokenizer(), CHATML
    model.bos_token, model.eos_token = "", "<|im_end|>"
    model.stop_ids = frozenset([EOS])
    return model


def test_session_prompt_with_response_constraint():
    s = fake_model(RandomBackend(5)).session(temperature=1.0, seed=5)
    text = s.prompt_sync("a person please", response_constraint=PERSON)
    assert valid(json.loads(text), PERSON)
    assert s.messages[-1] == {"role": "assistant", "content": text}
    assert s.prompt_sync("again", PERSON, seed=6)  # positional too; history builds up as usual
    pieces = list(s.prompt_streaming_sync("streamed", response_constraint={"type": "array", "maxItems": 2,
                                                                          "items": {"type": "boolean"}}))
    assert isinstance(json.loads("".join(pieces)), list)


def test_session_refuses_bad_schemas_before_running():
    backend = RandomBackend(0)
    s = fake_model(backend).session()
    with pytest.raises(UnsupportedSchemaError, match="format"):
        s.prompt_sync("x", response_constraint={"type": "string", "format": "date"})
    with pytest.raises(UnsupportedSchemaError, match="lookahead"):
        s.prompt_sync("x", response_constraint={"regex": "a(?=b)"})
    with pytest.raises(InvalidOptionError, match="missing"):
        s.prompt_sync("x", response_constraint={"regex": "(a"})
    with pytest.raises(InvalidOptionError, match="stop"):
        s.prompt_sync("x", response_constraint=PERSON, stop="}")
    assert s.messages == [] and s.last is None


class MaskRecordingBackend(RandomBackend):
    """Records the masks its sampler is given (as the browser backend passes them on to JS). EOS is
    the likeliest token: unconstrained answers end at once, constrained ones only when complete."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.masks: list[bytes | None] = []

    def new_sampler(self, params: SamplingParams, seen=()):
        inner = Sampler(params, seen)

        def sample(logits, new_ids, allowed=None):
            self.masks.append(allowed)
            return inner(logits, new_ids, allowed)

        sample.close = inner.close
        return sample

    async def forward(self, state: RandomState, token_ids, all_logits: bool = False) -> np.ndarray:
        logits = await super().forward(state, token_ids, all_logits)
        logits[EOS] = 100.0
        return logits


def test_the_loop_hands_the_mask_to_the_backends_sampler():
    backend = MaskRecordingBackend(2)
    s = fake_model(backend).session(temperature=1.0, seed=2)
    assert valid(json.loads(s.prompt_sync("x", response_constraint=PERSON)), PERSON)
    assert backend.masks and all(isinstance(m, bytes) and len(m) % 4 == 0 for m in backend.masks)
    assert s.last.masks == len(backend.masks) and s.last.to_dict()["mask_ms"] > 0
    backend.masks.clear()
    s.prompt_sync("y")
    assert backend.masks and set(backend.masks) == {None}  # unconstrained: no mask, the same loop


def test_the_constraint_is_described_in_the_prompt_unless_omitted():
    s = fake_model(RandomBackend(3)).session(temperature=1.0, seed=3)
    s.prompt_sync("a person", response_constraint=PERSON)
    assert s.messages[0]["content"].startswith("a person\n\n") and '"maxLength":20' in s.messages[0]["content"]
    s.prompt_sync("digits", response_constraint={"regex": "[0-9]{3}"})
    assert s.messages[2]["content"].endswith("/[0-9]{3}/.") and re.fullmatch("[0-9]{3}", s.messages[3]["content"])
    s.prompt_sync("bare", response_constraint=PERSON, omit_response_constraint_input=True)
    assert s.messages[4]["content"] == "bare"


def test_numpy_sampler_never_picks_a_masked_token():
    rng = np.random.default_rng(0)
    for k in range(200):
        logits = (rng.standard_normal(VOCAB) * 3).astype(np.float32)
        ids = sorted(set(rng.integers(0, VOCAB, rng.integers(1, 6)).tolist()))
        mask = bitset(ids).to_bytes(4 * ((VOCAB + 31) // 32), "little")
        options = [dict(temperature=0), dict(temperature=1.0, seed=k), dict(temperature=2.0, top_k=3, seed=k),
                   dict(temperature=1.0, top_p=0.5, min_p=0.2, repetition_penalty=1.3, seed=k)]
        for o in options:
            assert Sampler(SamplingParams(**o))(logits, ids, mask) in ids
    short = bitset([1]).to_bytes(4, "little")  # ids past the mask's end are not allowed
    assert Sampler(SamplingParams(temperature=0))(np.arange(VOCAB, dtype=np.float32), [], short) == 1


def test_session_keeps_partial_text_when_tokens_run_out():
    s = fake_model(RandomBackend(1)).session(seed=1, temperature=1.0)
    with pytest.raises(IncompleteOutputError):
        s.prompt_sync("x", response_constraint=PERSON, max_tokens=4)
    assert s.last.finish_reason == "length" and len(s.last.token_ids) == 4
    assert s.messages[-1]["content"].startswith("{")


# ---------------------------------------------------------------------------------------------
# End to end: the real default model on CPython
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exact_model(default_model_dir):
    import nomoat

    return nomoat.load(default_model_dir, accuracy_level=0)


def test_real_model_fills_the_schema_greedily(exact_model):
    s = exact_model.session()
    text = s.prompt_sync("Give me a person as JSON: a name and an age.", response_constraint=PERSON, max_tokens=64)
    person = json.loads(text)
    assert valid(person, PERSON), text
    assert s.last.finish_reason == "stop"


@pytest.mark.parametrize("seed", [0, 1])
def test_real_model_fills_the_schema_when_sampling(exact_model, seed):
    s = exact_model.session(temperature=1.0, seed=seed)
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"enum": ["friend", "family", "work", "workshop"]}, "maxItems": 3},
        "city": {"anyOf": [{"type": "string", "maxLength": 30}, {"type": "null"}]},
        "score": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["name", "age", "tags", "city", "score"]}
    text = s.prompt_sync("Describe a person as JSON.", response_constraint=schema, max_tokens=120)
    assert valid(json.loads(text), schema), text


def test_model_prompt_takes_a_response_constraint(default_model_dir):
    import json as _json

    import nomoat

    model = nomoat.load(default_model_dir, accuracy_level=0, threads=2)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    out = model.prompt_sync("Is the sky blue? Answer in JSON.", response_constraint=schema, max_tokens=16)
    assert isinstance(_json.loads(out)["ok"], bool)


def test_an_assistant_prefix_is_the_start_of_the_constrained_text():
    # issue 14: with a prefix, the constraint covers prefix + continuation (the grammar is advanced
    # through the prefix, not restarted); a prefix no allowed text begins with is refused
    # (NotSupportedError in a page) before anything runs
    regex = {"regex": "^Greetings and salutations\\.$"}
    s = fake_model(RandomBackend(3)).session(temperature=1.0, seed=3)
    prefix = [{"role": "user", "content": "greet me"}, {"role": "assistant", "content": "Greetings", "prefix": True}]
    text = s.prompt_sync(prefix, response_constraint=regex)
    assert text == " and salutations."
    assert s.messages[-1] == {"role": "assistant", "content": "Greetings and salutations."}
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    opened = {"role": "assistant", "content": '{"ok":', "prefix": True}
    text = s.prompt_sync([{"role": "user", "content": "ok?"}, opened], response_constraint=schema)
    assert json.loads('{"ok":' + text) in ({"ok": True}, {"ok": False})
    before, tokens = [dict(m) for m in s.messages], list(s.state.tokens)
    with pytest.raises(UnsupportedSchemaError, match="prefix") as e:
        s.prompt_sync([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hi", "prefix": True}],
                      response_constraint=regex)
    assert e.value.dom_name == "NotSupportedError" and s.messages == before and s.state.tokens == tokens
