"""Tool use on CPython: grammar-constrained calls (constrain/toolcall.py), the generic tool prompt
(chat.py), the Session's tool exchange, the streaming splitter (tool_calls.CallStream), and the real
models end to end (SmolLM2-135M-Instruct, whose template has no tools; Gemma-3-270M, a base model).

Calls are checked with json.loads and test_constrain's independent validator of the schema subset."""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_constrain import BOS, EOS, SCHEMAS, TOK, VOCAB, RandomBackend, fake_model, valid

from nomoat.chat import tool_prompt, transcript_text, with_tool_prompt
from nomoat.constrain import TokenIndex
from nomoat.constrain.toolcall import OPEN, ToolCallConstraint, _free_mask, calls_grammar, check_tools
from nomoat.errors import InvalidOptionError, UnsupportedSchemaError
from nomoat.generate import Stats, generate
from nomoat.sampling import SamplingParams
from nomoat.tool_calls import CallStream, parse_tool_calls


def fn(name: str, parameters, description: str = "") -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


WEATHER = fn("get_weather", {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                             "required": ["city"]}, "Get the current temperature in a city.")
ADD = fn("add", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                 "required": ["a", "b"]}, "Add two integers.")


class ScriptedThenRandom(RandomBackend):
    """Writes `script` (byte tokens, strongly preferred while the mask allows them), then random logits."""

    def __init__(self, seed: int, script: bytes) -> None:
        super().__init__(seed)
        self.script, self.steps = script, 0

    async def forward(self, state, token_ids, all_logits: bool = False) -> np.ndarray:
        logits = await super().forward(state, token_ids, all_logits)
        if self.steps < len(self.script):
            logits[self.script[self.steps]] += 40.0
        self.steps += 1
        return logits


def run(backend, tools, choice: str, seed: int, max_tokens: int = 3000) -> tuple[str, Stats]:
    constraint = ToolCallConstraint(check_tools(tools), TOK, [EOS], choice)
    params = SamplingParams(temperature=1.0, seed=seed, max_tokens=max_tokens)
    stats = Stats()

    async def go() -> str:
        return "".join([p async for p in generate(backend, backend.new_state(), [BOS], params, TOK, [EOS],
                                                  backend.config.max_position_embeddings, stats, constraint)])

    return asyncio.run(go()), stats


def check_calls(text: str, tools: list[dict]) -> list[dict]:
    """Every call parses, names one of the tools, and its arguments validate against that tool's schema."""
    _, calls = parse_tool_calls(text)
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    for c in calls:
        assert c["name"] in schemas, (text, c)
        assert valid(json.loads(c["arguments"]), schemas[c["name"]]), (text, c, schemas[c["name"]])
    return calls


OBJECTS = st.builds(
    lambda props, req: {"type": "object", "properties": props,
                        "required": [k for k, r in zip(props, req, strict=False) if r]},
    st.dictionaries(st.sampled_from(["city", "n", "q", "日本"]), SCHEMAS, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3))
TOOL_LISTS = st.lists(OBJECTS, min_size=1, max_size=3).map(lambda ps: [fn(f"t{i}", p) for i, p in enumerate(ps)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tools=TOOL_LISTS, seed=st.integers(0, 2**32 - 1), named=st.booleans())
def test_forced_calls_on_random_schemas_always_parse_and_validate(tools, seed, named):
    """tool_choice "required" (or a tool's name), random logits: exactly one call, valid, nothing else."""
    choice = tools[seed % len(tools)]["function"]["name"] if named else "required"
    text, stats = run(RandomBackend(seed), tools, choice, seed)
    assert stats.finish_reason == "stop"
    content, _ = parse_tool_calls(text)
    calls = check_calls(text, tools)
    assert content == "" and len(calls) == 1 and text.startswith("<tool_call>"), text
    if named:
        assert calls[0]["name"] == choice


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tools=TOOL_LISTS, seed=st.integers(0, 2**32 - 1))
def test_auto_free_text_then_a_call_from_the_marker_on(tools, seed):
    """tool_choice "auto": free text is not masked; once the text reaches "<tool_call>", the grammar
    takes over (random logits from there), so the call parses and validates."""
    text, stats = run(ScriptedThenRandom(seed, b"Let me check. " + OPEN), tools, "auto", seed)
    assert stats.finish_reason == "stop"
    content, _ = parse_tool_calls(text)
    calls = check_calls(text, tools)
    assert content == "Let me check." and 1 <= len(calls) <= 4, text


def test_auto_without_the_marker_is_plain_text_and_never_masked():
    backend = ScriptedThenRandom(0, b"Paris is sunny.")
    constraint = ToolCallConstraint(check_tools([WEATHER]), TOK, [EOS], "auto")
    assert constraint.allowed() is None and constraint.complete
    for b in b"Paris is sunny.":
        constraint.advance(b)
        assert constraint.allowed() is None  # no vocabulary token runs past the marker in this tokenizer
    text, _ = run(backend, [WEATHER], "auto", 0, max_tokens=15)
    assert text.startswith("Paris is sunny.") and parse_tool_calls(text)[1] == []


def test_a_token_that_would_run_past_the_marker_is_refused():
    index = TokenIndex([b"<", b"tool", b"_call", b">", b">{", b"x<tool_call>{", b"a", b"<tool_call>"])
    free = _free_mask(index, 4, (0,))
    assert not (int.from_bytes(free, "little") >> 5) & 1  # "x<tool_call>{" runs on past the marker
    after = int.from_bytes(_free_mask(index, 4, (10, 0)), "little")  # the text ends with "<tool_call"
    assert not after >> 4 & 1 and after >> 3 & 1 and after >> 7 & 1  # ">{" refused; ">" and "<tool_call>" fine
    assert _free_mask(TokenIndex([b"a", b"b"]), 4, (0,)) is None


def test_the_grammar_allows_the_format_and_nothing_else():
    g = calls_grammar(check_tools([WEATHER, ADD]))
    ok = ['<tool_call>{"name":"add","arguments":{"a":1,"b":-2}}</tool_call>',
          '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>\n',
          '<tool_call>{"name":"add","arguments":{"a":1,"b":2}}</tool_call> <tool_call>{"name":"add","arguments":'
          '{"a":3,"b":4}}</tool_call>']
    bad = ['<tool_call>{"name":"sub","arguments":{"a":1,"b":2}}</tool_call>',  # not a tool
           '<tool_call>{"name":"add","arguments":{"a":1}}</tool_call>',  # a required argument missing
           '<tool_call>{"name":"add","arguments":{"a":"1","b":2}}</tool_call>',  # the wrong type
           '<tool_call>{"arguments":{"a":1,"b":2},"name":"add"}</tool_call>',  # the name comes first
           '<tool_call>{"name":"add","arguments":{"a":1,"b":2}}',  # not closed
           'text<tool_call>{"name":"add","arguments":{"a":1,"b":2}}</tool_call>']  # free text is "auto"'s, not here
    for text in ok:
        assert g.matches(text.encode()), text
    for text in bad:
        assert not g.matches(text.encode()), text
    assert not calls_grammar(check_tools([ADD]), 1, 1).matches(ok[2].encode())  # "required": one call


def test_tool_definitions_are_checked_naming_the_tool():
    assert check_tools([{"name": "f"}]) == [fn("f", {})]
    with pytest.raises(InvalidOptionError, match="two tools are named 'f'"):
        check_tools([fn("f", {}), fn("f", {})])
    with pytest.raises(InvalidOptionError, match="needs a name"):
        check_tools([fn("", {})])
    with pytest.raises(UnsupportedSchemaError, match="tool 'f'.s input schema.*'format'"):
        check_tools([fn("f", {"type": "string", "format": "date"})])
    with pytest.raises(InvalidOptionError, match="not one of the tools"):
        ToolCallConstraint(check_tools([ADD]), TOK, [EOS], "sub")


@pytest.mark.parametrize("seed", range(8))
def test_call_stream_splits_any_way_the_pieces_fall(seed):
    text = ('Sure. <tool_call>{"name":"get_weather","arguments":{"city":"Pa}r\\"is"}}</tool_call>\n'
            '<tool_call>{"name":"add","arguments":{"a":1,"b":{}}}</tool_call>')
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 25)))
    split, said, args, names = CallStream(), "", {}, {}
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        for kind, *rest in split.push(text[a:b]):
            if kind == "text":
                said += rest[0]
            else:
                names.setdefault(rest[0], rest[1])
                args[rest[0]] = args.get(rest[0], "") + rest[2]
    assert said == "Sure. " and names == {0: "get_weather", 1: "add"}
    assert args == {0: '{"city":"Pa}r\\"is"}', 1: '{"a":1,"b":{}}'}


def test_generic_tool_prompt_and_transcript():
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "23.7 °C", "tool_call_id": "c1", "name": "get_weather"}]
    out = with_tool_prompt(msgs, [WEATHER])
    assert out[0] == {"role": "system", "content": tool_prompt([WEATHER])} and "<tool_call>" in out[0]["content"]
    assert out[1:] == [{"role": "user", "content": "Weather in Paris?"},
                       {"role": "assistant", "content": 'Calling get_weather({"city": "Paris"}).'},
                       {"role": "user", "content": "get_weather returned: 23.7 °C"}]
    text = transcript_text(msgs, [WEATHER])
    assert text == tool_prompt([WEATHER]) + "\nQuestion: Weather in Paris? (get_weather returned: 23.7 °C)\nAnswer:"


def test_a_session_exchange_with_tool_results_is_one_exchange():
    """The answer's calls join the history (OpenAI's shape), the results come back with continues=True,
    and undo_last() (an abort that came late) takes the whole exchange back."""
    s = fake_model(ScriptedThenRandom(1, b"")).session(tools=[ADD], temperature=1.0, seed=1)
    before = list(s.messages)
    usage = s.context_usage
    assert usage > 100  # the generic tool prompt is in the context from the start
    asyncio.run(s.prompt("add 1 and 2", tool_choice="required"))
    (call,) = s.last_tool_calls
    assert call["name"] == "add" and call["id"].startswith("call_")
    assert s.messages[-1]["tool_calls"][0]["function"]["arguments"] == json.loads(call["arguments"])
    result = [{"role": "tool", "content": "3", "tool_call_id": call["id"], "name": "add"}]
    asyncio.run(s.prompt(result, tool_choice="none", continues=True, max_tokens=5))
    assert [m["role"] for m in s.messages[len(before):]] == ["user", "assistant", "tool", "assistant"]
    assert s.last_tool_calls == []
    s.undo_last()
    assert s.messages == before and s.context_usage == usage
    with pytest.raises(InvalidOptionError, match="tool_choice"):
        asyncio.run(s.prompt("x", tool_choice=3))
    with pytest.raises(InvalidOptionError, match="needs tools"):
        asyncio.run(fake_model(RandomBackend(0)).session().prompt("x", tool_choice="required"))


def test_measure_counts_tool_messages_as_append_adds_them():
    s = fake_model(RandomBackend(2)).session(tools=[WEATHER])
    msgs = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "-3 °C", "tool_call_id": "c", "name": "get_weather"}]
    n = s.measure(msgs)
    before = s.context_usage
    asyncio.run(s.append(msgs))
    assert s.context_usage - before == n > 0


def test_vocab_sanity():
    assert VOCAB > 256 and TOK.token_bytes(EOS) == b""


# ---------------------------------------------------------------------------------------------
# The real models
# ---------------------------------------------------------------------------------------------

def tool_round_trip(model, tools, question: str, result: str) -> tuple[dict, str]:
    """A forced call, then the tool's result back and the model's free answer."""
    s = model.session(tools=tools, temperature=0)
    asyncio.run(s.prompt(question, tool_choice="required", max_tokens=80))
    (call,) = s.last_tool_calls
    answer = asyncio.run(s.prompt([{"role": "tool", "content": result, "tool_call_id": call["id"],
                                    "name": call["name"]}], continues=True, max_tokens=60))
    return call, answer


def test_smollm2_calls_the_weather_tool_and_answers_with_its_result(default_model_dir):
    import nomoat

    call, answer = tool_round_trip(nomoat.load(default_model_dir), [WEATHER, ADD],
                                   "What is the weather in Paris right now?", "23.7 °C")
    assert call["name"] == "get_weather" and json.loads(call["arguments"])["city"] == "Paris"
    assert "23.7" in answer, answer


def test_gemma_base_model_calls_the_weather_tool_with_valid_arguments(gemma_dir):
    import nomoat

    model = nomoat.load(gemma_dir)
    assert not model.chat_template  # a base model: the Question/Answer transcript
    call, answer = tool_round_trip(model, [WEATHER], "What is the weather in Paris right now?", "23.7 °C")
    assert call["name"] == "get_weather" and valid(json.loads(call["arguments"]), WEATHER["function"]["parameters"])
    assert "\n" not in answer  # the transcript's answer is one line
