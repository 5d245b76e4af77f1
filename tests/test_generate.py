"""The generation loop and Session, driven by a scripted fake backend and a synthetic byte-level tokenizer.

The fake backend answers each user message with a scripted list of token ids (then EOS), by making the
next scripted token the argmax of its logits. It logs every forward call, so the tests can check KV reuse
and that concurrent prompts on one session never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nomoat.backends.base import LogitsBackend
from nomoat.config import ModelConfig
from nomoat.errors import ContextOverflowError, InvalidOptionError, InvalidPromptError, UnsupportedModelError
from nomoat.generate import StopMatcher, common_prefix, generate
from nomoat.model import Model
from nomoat.sampling import SamplingParams
from nomoat.session import Session
from nomoat.tokenizer import ByteLevelDecoder, StreamDecoder, byte_level_alphabet
from nomoat.tool_calls import parse_tool_calls

# ---------------------------------------------------------------------------------------------
# A synthetic byte-level tokenizer: ids 0-255 are the bytes, then a few merges, then special tokens.
# ---------------------------------------------------------------------------------------------

BYTE_CHAR = {b: c for c, b in byte_level_alphabet().items()}  # byte value → its byte-level character
MERGES = ["Hello", " world", "EN", "TER", " the", " END", "WEEKEND", "assistant", "user", "system", "é"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
IM_START, IM_END, ENDOFTEXT = 256 + len(MERGES), 257 + len(MERGES), 258 + len(MERGES)
VOCAB = 300
CONTEXT = 256

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_level(data: bytes) -> str:
    return "".join(BYTE_CHAR[b] for b in data)


def tokenizer_json() -> dict:
    vocab = {byte_level(bytes([b])): b for b in range(256)}
    vocab.update({byte_level(m.encode()): 256 + i for i, m in enumerate(MERGES)})
    added = [{"id": IM_START + i, "content": s, "special": True} for i, s in enumerate(SPECIALS)]
    vocab.update({a["content"]: a["id"] for a in added})  # as in SmolLM2: special tokens are in the vocab too
    return {"model": {"type": "BPE", "vocab": vocab, "merges": []}, "added_tokens": added}


class FakeTokenizer(ByteLevelDecoder):
    """ByteLevelDecoder plus a greedy longest-match encoder (special tokens stay whole)."""

    def __init__(self) -> None:
        super().__init__(tokenizer_json())
        self._specials = {s: IM_START + i for i, s in enumerate(SPECIALS)}
        self._split = re.compile("(" + "|".join(map(re.escape, SPECIALS)) + ")")
        self._ids = {self.token_bytes(i): i for i in range(self.vocab_size) if i not in self.special_ids}
        self._longest = max(map(len, self._ids))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:  # no BOS: like SmolLM2's
        ids: list[int] = []
        for part in self._split.split(text):
            if part in self._specials:
                ids.append(self._specials[part])
                continue
            data, i = part.encode(), 0
            while i < len(data):
                n = next(n for n in range(min(self._longest, len(data) - i), 0, -1) if data[i:i + n] in self._ids)
                ids.append(self._ids[data[i:i + n]])
                i += n
        return ids


TOK = FakeTokenizer()


def T(*pieces: str) -> list[int]:
    """One token per piece; each piece must be a single token of the vocabulary."""
    return [TOK._ids[p.encode()] for p in pieces]


def B(text: str) -> list[int]:
    """One byte token per UTF-8 byte of text."""
    return list(text.encode())


# ---------------------------------------------------------------------------------------------
# The fake backend
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeState:
    tokens: list[int] = field(default_factory=list)
    forked_from: FakeState | None = None

    def truncate(self, n: int) -> None:
        self.tokens = self.tokens[:n]

    def fork(self) -> FakeState:
        return FakeState(list(self.tokens), forked_from=self)

    def close(self) -> None:
        self.tokens = []


@dataclass
class Call:
    state: FakeState
    start: int  # how many tokens the state held before this call
    fed: list[int]


class FakeBackend(LogitsBackend):
    """Replies to each user message with replies[message] (token ids), then <|im_end|>."""

    name = "fake"
    device = "cpu"

    def __init__(self, replies: dict[str, list[int]] | None = None, context_window: int = CONTEXT) -> None:
        self.config = ModelConfig(
            vocab_size=VOCAB, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=context_window, rms_norm_eps=1e-5, rope_theta=10000.0,
            head_dim=4, bos_token_id=IM_START, eos_token_id=IM_END,
        )
        self.replies = replies or {}
        self.calls: list[Call] = []
        self._assistant = [IM_START, *TOK.encode("assistant\n")]
        self._user = [IM_START, *TOK.encode("user\n")]

    def new_state(self) -> FakeState:
        return FakeState()

    async def forward(self, state: FakeState, token_ids, all_logits: bool = False) -> np.ndarray:
        assert len(token_ids) >= 1
        assert len(state.tokens) + len(token_ids) <= self.config.max_position_embeddings
        self.calls.append(Call(state, len(state.tokens), list(token_ids)))
        await asyncio.sleep(0)  # a real backend awaits its device here: other tasks may run meanwhile
        rows = []
        for t in token_ids:
            state.tokens.append(int(t))
            rows.append(self.logits(state.tokens))
        return np.stack(rows) if all_logits else rows[-1]

    def logits(self, tokens: list[int]) -> np.ndarray:
        out = np.zeros(VOCAB, np.float32)
        out[self.next_token(tokens)] = 10.0
        return out

    def next_token(self, tokens: list[int]) -> int:
        a = last_index(tokens, self._assistant)
        u = last_index(tokens[:a], self._user)
        if a < 0 or u < 0:
            return IM_END
        start = u + len(self._user)
        user_text = TOK.decode(tokens[start:tokens.index(IM_END, start)])
        reply = self.replies.get(user_text, [])
        n = len(tokens) - (a + len(self._assistant))
        return reply[n] if n < len(reply) else IM_END

    @property
    def prefills(self) -> list[Call]:
        return [c for c in self.calls if len(c.fed) > 1]


def last_index(seq: list[int], sub: list[int]) -> int:
    for i in range(len(seq) - len(sub), -1, -1):
        if seq[i:i + len(sub)] == sub:
            return i
    return -1


def make_model(backend: FakeBackend) -> Model:
    """A Model without files (Model.__init__ reads tokenizer_config.json from its folder)."""
    model = Model.__new__(Model)
    model.source = Path("fake-model")
    model.config = backend.config
    model.tokenizer = TOK
    model.backend = backend
    model.chat_template = CHATML
    model.bos_token, model.eos_token = "", "<|im_end|>"
    model.stop_ids = frozenset(backend.config.eos_token_ids)
    return model


def session_for(replies: dict[str, list[int]], context_window: int = CONTEXT, **sampling) -> Session:
    return make_model(FakeBackend(replies, context_window)).session(**sampling)


async def collect(session: Session, text: str, **sampling) -> list[str]:
    return [piece async for piece in session.prompt_streaming(text, **sampling)]


def stream(session: Session, text: str, **sampling) -> list[str]:
    return asyncio.run(collect(session, text, **sampling))


# ---------------------------------------------------------------------------------------------
# The fakes themselves
# ---------------------------------------------------------------------------------------------


def test_fake_tokenizer_round_trips_and_hides_specials():
    text = "<|im_start|>user\nHello world, café 🎉<|im_end|>\n"
    ids = TOK.encode(text)
    assert ids[0] == IM_START and IM_END in ids
    assert T("Hello")[0] in ids and T("user")[0] in ids
    assert TOK.special_ids == {IM_START, IM_END, ENDOFTEXT}
    assert TOK.decode(ids) == text.replace("<|im_start|>", "").replace("<|im_end|>", "")
    assert TOK.vocab_size <= VOCAB


def test_fake_backend_scripts_the_reply():
    model = make_model(FakeBackend({"hi": T("Hello", " world")}))
    state = model.backend.new_state()
    ids = model.encode_chat([{"role": "user", "content": "hi"}])
    logits = asyncio.run(model.backend.forward_all(state, ids))
    assert int(np.argmax(logits[-1])) == T("Hello")[0]
    assert state.tokens == ids


# ---------------------------------------------------------------------------------------------
# Streaming, EOS, max_tokens
# ---------------------------------------------------------------------------------------------


def test_pieces_concatenate_to_the_full_text():
    reply = T("Hello", " world") + B(", how are you?")
    s = session_for({"hi": reply})
    pieces = stream(s, "hi")
    assert len(pieces) > 1
    assert "".join(pieces) == "Hello world, how are you?" == TOK.decode(reply)
    assert s.last.token_ids == reply
    assert s.messages == [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "Hello world, how are you?"}]


def test_stops_at_eos_without_emitting_it():
    reply = T("Hello", "!")
    s = session_for({"hi": reply})
    text = s.prompt_sync("hi")
    assert text == "Hello!"
    st = s.last
    assert st.finish_reason == "stop"
    assert IM_END not in st.token_ids and st.token_ids == reply
    assert st.completion_tokens == 2
    assert [c.fed for c in s.model.backend.calls[1:]] == [[t] for t in reply]  # EOS is never fed back
    assert st.prompt_tokens == len(s.model.encode_chat([{"role": "user", "content": "hi"}]))


def test_eos_as_first_token_gives_empty_answer():
    s = session_for({})
    assert s.prompt_sync("anything") == ""
    assert s.last.finish_reason == "stop" and s.last.token_ids == []
    assert s.messages[-1] == {"role": "assistant", "content": ""}


@pytest.mark.parametrize("max_tokens", [1, 3, 7])
def test_max_tokens_gives_length_and_exactly_that_many_tokens(max_tokens):
    reply = B("abcdefghijklmnop")
    s = session_for({"go": reply}, max_tokens=max_tokens)
    text = s.prompt_sync("go")
    assert s.last.finish_reason == "length"
    assert len(s.last.token_ids) == s.last.completion_tokens == max_tokens
    assert text == "abcdefghijklmnop"[:max_tokens]
    assert len(s.model.backend.calls) == max_tokens  # one prefill + (max_tokens - 1) decode steps
    assert s.last.decode_steps == max_tokens - 1


def test_per_call_max_tokens_overrides_the_session():
    s = session_for({"go": B("abcdef")}, max_tokens=100)
    assert s.prompt_sync("go", max_tokens=2) == "ab"
    assert s.params.max_tokens == 100  # the session's own options are untouched


def test_generation_stops_at_the_context_window():
    s = session_for({"go": B("x" * 100)}, context_window=40, max_tokens=500)
    text = s.prompt_sync("go")
    st = s.last
    assert st.finish_reason == "length"
    assert st.prompt_tokens + st.completion_tokens == 40
    assert text == "x" * st.completion_tokens


# ---------------------------------------------------------------------------------------------
# Stop strings
# ---------------------------------------------------------------------------------------------


def test_stop_string_split_across_tokens_never_leaks():
    reply = B("abc E") + B("N") + B("D xyz")
    s = session_for({"go": reply}, stop="END")
    pieces = stream(s, "go")
    assert "".join(pieces) == "abc "
    assert not any(c in p for p in pieces for c in "END")
    assert s.last.finish_reason == "stop"
    assert s.last.token_ids == B("abc END")  # nothing generated after the stop
    assert s.messages[-1]["content"] == "abc "


def test_false_partial_match_is_held_then_released():
    reply = T("EN", "TER", " the", " END") + B(" more")
    s = session_for({"go": reply}, stop=["END"])
    pieces = stream(s, "go")
    assert "".join(pieces) == "ENTER the "
    assert "EN" not in pieces  # "EN" was held back (it may start "END"), then released as part of "ENTER"
    assert "ENTER" in "".join(pieces[:1])
    assert s.last.finish_reason == "stop"


def test_partial_match_at_the_end_is_flushed():
    s = session_for({"go": B("the EN")}, stop="END")
    assert s.prompt_sync("go") == "the EN"
    assert s.last.finish_reason == "stop"  # by EOS


def test_partial_match_flushed_at_max_tokens():
    s = session_for({"go": B("xyEND")}, stop="END", max_tokens=4)
    assert s.prompt_sync("go") == "xyEN"
    assert s.last.finish_reason == "length"


def test_stop_string_inside_one_token():
    s = session_for({"go": T("WEEKEND") + B("!!")}, stop="END")
    assert s.prompt_sync("go") == "WEEK"
    assert s.last.finish_reason == "stop"


def test_earliest_of_several_stop_strings_wins():
    s = session_for({"go": B("one\n\ntwo STOP three")}, stop=["STOP", "\n\n"])
    assert s.prompt_sync("go") == "one"
    s = session_for({"go": B("one STOP two\n\nthree")}, stop=["\n\n", "STOP"])
    assert s.prompt_sync("go") == "one "


def test_per_call_stop():
    s = session_for({"go": B("a,b,c")})
    assert s.prompt_sync("go", stop=",") == "a"
    assert s.prompt_sync("go") == "a,b,c"


def test_stop_matcher_unit():
    m = StopMatcher(["END", "xyz"])
    assert m.push("aE") == "a"
    assert m.push("N") == ""
    assert m.push("TER x") == "ENTER "
    assert m.push("y") == ""
    assert m.flush() == "xy"
    assert not m.hit
    assert m.push("ok xyz tail") == "ok " and m.hit


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


# ---------------------------------------------------------------------------------------------
# UTF-8 across tokens
# ---------------------------------------------------------------------------------------------


def test_multibyte_characters_are_never_emitted_half():
    reply = B("caf") + B("é") + B(" ") + B("🎉") + T("é") + B("日本")
    assert len(B("é")) == 2 and len(B("🎉")) == 4
    s = session_for({"go": reply})
    pieces = stream(s, "go")
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == TOK.decode(reply) == "café 🎉é日本"
    assert "🎉" in pieces  # the emoji came out whole, as one piece, once its 4th byte arrived


def test_cut_mid_character_matches_decode_of_all_ids():
    reply = B("a🎉")
    s = session_for({"go": reply}, max_tokens=3)  # 'a' + two of the emoji's four bytes
    pieces = stream(s, "go")
    assert pieces[0] == "a"
    assert "".join(pieces) == TOK.decode(s.last.token_ids) == TOK.decode(B("a🎉")[:3])


def test_stream_decoder_unit():
    ids = B("é🎉a") + [IM_END] + T("Hello")
    dec = StreamDecoder(TOK)
    out = [dec.push(i) for i in ids]
    assert out == ["", "é", "", "", "", "🎉", "a", "", "Hello"]
    assert dec.flush() == ""
    assert "".join(out) == TOK.decode(ids)


def test_stream_decoder_flushes_an_incomplete_character_like_decode():
    for ids in [B("x🎉")[:-1], [0xFF, *B("ok")], [0xC3, *B("z")]]:
        dec = StreamDecoder(TOK)
        text = "".join(dec.push(i) for i in ids) + dec.flush()
        assert text == TOK.decode(ids)
        assert "\ufffd" in text


def test_generate_directly():
    backend = FakeBackend({"hi": T("Hello")})
    model = make_model(backend)
    from nomoat.generate import Stats

    ids = model.encode_chat([{"role": "user", "content": "hi"}])
    state, stats = backend.new_state(), Stats()

    async def run() -> list[str]:
        return [p async for p in generate(backend, state, ids, SamplingParams(), TOK, model.stop_ids, CONTEXT, stats)]

    assert asyncio.run(run()) == ["Hello"]
    assert stats.finish_reason == "stop" and stats.token_ids == T("Hello")
    assert state.tokens == [*ids, *T("Hello")]


# ---------------------------------------------------------------------------------------------
# Context overflow
# ---------------------------------------------------------------------------------------------


def test_prompt_longer_than_the_context_window_raises_and_leaves_history():
    s = session_for({"hi": T("Hello")}, context_window=64)
    assert s.prompt_sync("hi") == "Hello"
    before, tokens_before = [dict(m) for m in s.messages], list(s.state.tokens)
    calls_before = len(s.model.backend.calls)
    long = "x" * 200
    with pytest.raises(ContextOverflowError) as info:
        s.prompt_sync(long)
    err = info.value
    assert err.context_window == 64
    # even with the earlier exchange dropped it does not fit; requested is context_usage + what the
    # prompt's messages measure (the Prompt API's prefill: "current context usage + requested")
    assert err.requested == s.context_usage + s.measure(long) > 64
    assert s.messages == before
    assert s.state.tokens == tokens_before
    assert len(s.model.backend.calls) == calls_before  # nothing was computed
    assert s.prompt_sync("hi") == "Hello"  # the session still works


def test_context_overflow_in_streaming_leaves_history():
    s = session_for({}, context_window=32)
    with pytest.raises(ContextOverflowError):
        stream(s, "y" * 100)
    assert s.messages == []


def test_overflow_drops_oldest_exchanges_but_never_the_initial_messages():
    replies = {f"q{i}": B(f"a{i}" * 3) for i in range(8)}
    s = make_model(FakeBackend(replies, context_window=90)).session(
        system="S", messages=[{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0a0a0"}])
    drops: list[int] = []
    for i in range(1, 6):
        answer = s.prompt_sync(f"q{i}", on_overflow=drops.append)
        assert answer and (f"a{i}" * 3).startswith(answer)  # an answer may end at the window's edge
        assert len(s.state.tokens) <= 90  # the KV cache never outgrows the window
    assert drops and all(d >= 1 for d in drops)
    assert s.messages[:3] == [{"role": "system", "content": "S"}, {"role": "user", "content": "q0"},
                              {"role": "assistant", "content": "a0a0a0"}]
    assert s.messages[-2]["content"] == "q5" and s.messages[-1]["role"] == "assistant"
    kept = [m["content"] for m in s.messages[3::2]]
    assert kept == sorted(kept) and len(kept) < 5  # the oldest went first, in whole exchanges


def test_overflow_that_cannot_fit_drops_nothing():
    s = make_model(FakeBackend({"q": B("a")}, context_window=60)).session(system="S")
    s.prompt_sync("q")
    before = [dict(m) for m in s.messages]
    drops: list[int] = []
    with pytest.raises(ContextOverflowError):
        s.prompt_sync("z" * 80, on_overflow=drops.append)
    assert s.messages == before and drops == []


def test_message_list_prompt_and_assistant_prefix():
    s = session_for({"name a colour": B("Red")})  # the fake counts the prefix as its first reply token
    msgs = [{"role": "user", "content": "name a colour"}, {"role": "assistant", "content": "R", "prefix": True}]
    assert s.prompt_sync(msgs) == "ed"  # the answer continues the prefix
    assert s.messages == [{"role": "user", "content": "name a colour"}, {"role": "assistant", "content": "Red"}]
    ids = s.model.encode_chat([msgs[0]], add_generation_prompt=True)
    assert s.last.prompt_tokens == len(ids) + 1  # the prompt ends with the prefix's token


@pytest.mark.parametrize("bad", [
    [{"role": "user", "content": "a", "prefix": True}],
    [{"role": "assistant", "content": "a", "prefix": True}, {"role": "user", "content": "b"}],
])
def test_misplaced_prefix_is_a_syntax_error(bad):
    s = session_for({})
    with pytest.raises(InvalidPromptError) as info:
        s.prompt_sync(bad)
    assert info.value.dom_name == "SyntaxError" and s.messages == []


def test_system_message_only_first_in_a_new_conversation():
    s = session_for({"q": B("a")})
    assert s.prompt_sync([{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]) == "a"
    with pytest.raises(InvalidOptionError, match="system"):
        s.prompt_sync([{"role": "system", "content": "again"}])
    with pytest.raises(InvalidOptionError, match="system"):
        session_for({}).prompt_sync([{"role": "user", "content": "q"}, {"role": "system", "content": "S"}])


def test_empty_message_list_is_an_empty_user_turn():
    s = session_for({"": B("hm")})
    assert s.prompt_sync([]) == "hm"
    assert s.messages[0] == {"role": "user", "content": ""}


def test_append_computes_the_tokens_and_the_next_prompt_reuses_them():
    backend = FakeBackend({"q": B("a")})
    s = make_model(backend).session(system="S")
    asyncio.run(s.append([{"role": "user", "content": "context one"}, {"role": "assistant", "content": "noted"}]))
    assert [m["content"] for m in s.messages] == ["S", "context one", "noted"]
    appended = s.model.encode_chat(s.messages, add_generation_prompt=False)
    assert s.state.tokens == appended and s.context_usage == len(appended)
    assert s.prompt_sync("q") == "a"
    assert s.last.reused_tokens == len(appended)  # only the new turn was computed


def test_measure_counts_what_a_prompt_adds_without_running_it():
    backend = FakeBackend({"q": B("a")})
    s = make_model(backend).session(system="S")
    n = s.measure("q")
    turn = [*s.messages, {"role": "user", "content": "q"}]
    assert n == len(s.model.encode_chat(turn, add_generation_prompt=False)) - s.context_usage
    assert backend.calls == [] and s.messages == [{"role": "system", "content": "S"}]
    s.prompt_sync("q")
    before = s.context_usage
    m = s.measure("q")
    assert m == len(s.model.encode_chat([*s.messages, {"role": "user", "content": "q"}], add_generation_prompt=False)) \
        - before
    asyncio.run(s.append("q"))
    assert s.context_usage == before + m  # measure(x) is exactly what append(x) adds
    # measured as a fresh prompt: a system message is measured even when the session has content
    assert s.measure([{"role": "system", "content": "S2"}]) > 0


def test_stopping_early_without_keep_partial_drops_the_exchange():
    s = session_for({"go": T("Hello", " world"), "hi": T("Hello")})
    s.prompt_sync("hi")
    before = [dict(m) for m in s.messages]

    async def run() -> None:
        agen = s.prompt_streaming("go", keep_partial=False)
        await agen.__anext__()
        await agen.aclose()

    asyncio.run(run())
    assert s.messages == before
    assert s.prompt_sync("hi") == "Hello"


# ---------------------------------------------------------------------------------------------
# KV reuse, clone
# ---------------------------------------------------------------------------------------------


def test_second_prompt_feeds_only_new_tokens():
    backend = FakeBackend({"hi": T("Hello", " world"), "again": B("ok")})
    s = make_model(backend).session(system="Be brief.")
    assert s.prompt_sync("hi") == "Hello world"
    first_prompt = s.last.prompt_tokens
    assert s.last.reused_tokens == 0
    assert len(backend.prefills) == 1 and len(backend.prefills[0].fed) == first_prompt

    assert s.prompt_sync("again") == "ok"
    st = s.last
    full = s.model.encode_chat(s.messages[:-1])
    assert st.prompt_tokens == len(full)
    # everything up to the end of the first answer is reused (the fake re-encodes it to the same ids)
    assert st.reused_tokens == first_prompt + 2
    second = backend.prefills[1]
    assert second.start == st.reused_tokens
    assert len(second.fed) == len(full) - st.reused_tokens < len(full)
    assert second.fed == full[st.reused_tokens:]


def test_identical_prompt_recomputes_at_least_one_token():
    backend = FakeBackend({})
    model = make_model(backend)
    s = model.session()
    s.prompt_sync("x")  # answer: EOS at once, so the state holds exactly the prompt
    ids = model.encode_chat([{"role": "user", "content": "x"}])
    assert s.state.tokens == ids
    s.messages = []  # ask the same again
    s.prompt_sync("x")
    assert s.last.reused_tokens == len(ids) - 1
    assert backend.calls[-1].fed == ids[-1:]


def test_clone_is_independent():
    backend = FakeBackend({"hi": T("Hello"), "more": B("yes"), "other": B("no")})
    s = make_model(backend).session()
    s.prompt_sync("hi")
    c = s.clone()
    assert c.messages == s.messages and c.messages is not s.messages
    assert c.params == s.params
    assert c.state is not s.state and c.state.forked_from is s.state
    assert c.state.tokens == s.state.tokens and c.state.tokens is not s.state.tokens

    before, tokens_before = [dict(m) for m in s.messages], list(s.state.tokens)
    assert c.prompt_sync("more") == "yes"
    assert s.messages == before
    assert s.state.tokens == tokens_before
    assert c.last.reused_tokens > 0  # the forked cache was reused, not recomputed
    assert backend.calls[-1].state is c.state

    assert s.prompt_sync("other") == "no"
    assert [m["content"] for m in c.messages] == ["hi", "Hello", "more", "yes"]
    assert [m["content"] for m in s.messages] == ["hi", "Hello", "other", "no"]


def test_clone_of_fresh_session_with_system():
    s = make_model(FakeBackend({"q": B("a")})).session(system="sys", temperature=0.5, seed=1)
    c = s.clone()
    assert c.messages == [{"role": "system", "content": "sys"}]
    assert c.params.temperature == 0.5 and c.params.seed == 1
    c.prompt_sync("q")
    assert s.messages == [{"role": "system", "content": "sys"}]


# ---------------------------------------------------------------------------------------------
# Early exit, sync wrappers, concurrency
# ---------------------------------------------------------------------------------------------


def test_breaking_out_early_keeps_what_was_produced():
    s = session_for({"go": T("Hello", " world") + B("!!!")})

    async def run() -> list[str]:
        got = []
        async with contextlib.aclosing(s.prompt_streaming("go")) as agen:
            async for piece in agen:
                got.append(piece)
                if len(got) == 2:
                    break
        return got

    assert asyncio.run(run()) == ["Hello", " world"]
    assert s.messages == [{"role": "user", "content": "go"}, {"role": "assistant", "content": "Hello world"}]
    assert s.last.finish_reason is None


def test_plain_break_then_next_prompt_sees_the_partial_answer():
    backend = FakeBackend({"go": T("Hello", " world") + B("!!!"), "next": B("k")})
    s = make_model(backend).session()

    async def run() -> str:
        async for _ in s.prompt_streaming("go"):
            break  # the abandoned generator is closed by the event loop; the next prompt waits for it
        return await s.prompt("next")

    assert asyncio.run(run()) == "k"
    assert [m["content"] for m in s.messages] == ["go", "Hello", "next", "k"]


def test_prompt_sync_and_streaming_sync():
    s = session_for({"a": T("Hello", " world"), "b": B("é!")})
    assert s.prompt_sync("a") == "Hello world"
    pieces = list(s.prompt_streaming_sync("b"))
    assert pieces == ["é", "!"]
    assert [m["content"] for m in s.messages] == ["a", "Hello world", "b", "é!"]


def test_streaming_sync_break_keeps_partial_answer():
    s = session_for({"go": B("abcdef")})
    for piece in s.prompt_streaming_sync("go"):
        assert piece == "a"
        break
    assert s.messages[-1] == {"role": "assistant", "content": "a"}


def test_model_prompt_sync_is_one_shot():
    model = make_model(FakeBackend({"hi": T("Hello")}))
    assert model.prompt_sync("hi") == "Hello"
    assert model.prompt_sync("hi", max_tokens=1, system="s") == "Hello"


def test_concurrent_prompts_run_one_after_the_other():
    backend = FakeBackend({"alpha": B("AAAA"), "beta": B("BBB")})
    s = make_model(backend).session()
    events: list[tuple[str, str]] = []

    async def consume(label: str, text: str) -> None:
        async for piece in s.prompt_streaming(text):
            events.append((label, piece))

    async def run() -> None:
        await asyncio.gather(consume("a", "alpha"), consume("b", "beta"))

    asyncio.run(run())
    assert events == [("a", "A")] * 4 + [("b", "B")] * 3
    assert [m["content"] for m in s.messages] == ["alpha", "AAAA", "beta", "BBB"]
    # the call log: prefill a, a's 4 decode steps, prefill b (on top of a's answer), b's 3 decode steps
    fed = [c.fed for c in backend.calls]
    assert [len(f) > 1 for f in fed] == [True] + [False] * 4 + [True] + [False] * 3
    assert fed[1:5] == [[t] for t in B("AAAA")] and fed[6:] == [[t] for t in B("BBB")]
    assert backend.calls[5].start > 0  # b reused a's cache


# ---------------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"stop": ""}, {"seed": -3}, {"top_k": 1.5},
])
def test_invalid_per_call_options_raise(options):
    backend = FakeBackend({"hi": T("Hello")})
    s = make_model(backend).session()
    with pytest.raises(InvalidOptionError, match=next(iter(options))):
        s.prompt_sync("hi", **options)
    with pytest.raises(InvalidOptionError):
        list(s.prompt_streaming_sync("hi", **options))
    assert s.messages == [] and backend.calls == []


@pytest.mark.parametrize("prompt", [5, None, b"hi", ["hi"], {"role": "user", "content": "hi"}])
def test_non_string_prompt_raises(prompt):
    backend = FakeBackend({"hi": T("Hello")})
    s = make_model(backend).session()
    with pytest.raises(InvalidOptionError, match="prompt"):
        s.prompt_sync(prompt)
    with pytest.raises(InvalidOptionError, match="prompt"):
        stream(s, prompt)
    assert s.messages == [] and backend.calls == []


def test_invalid_session_options_raise():
    model = make_model(FakeBackend())
    with pytest.raises(InvalidOptionError, match="temperature"):
        model.session(temperature=float("nan"))
    with pytest.raises(InvalidOptionError, match="system"):
        model.session(system=3)
    with pytest.raises(InvalidOptionError, match="messages"):
        model.session(messages=[{"role": "robot", "content": "x"}])


def test_misspelt_option_names_the_valid_ones():
    model = make_model(FakeBackend({"hi": T("Hello")}))
    with pytest.raises(InvalidOptionError, match="temprature.*valid"):
        model.session(temprature=0.5)
    s = model.session()
    with pytest.raises(InvalidOptionError, match="topk"):
        s.prompt_sync("hi", topk=3)


def test_session_moves_between_event_loops():
    """Concurrent prompts in one asyncio.run, then more prompts on fresh loops (the sync wrappers)."""
    backend = FakeBackend({"alpha": B("AA"), "beta": B("B"), "gamma": B("G")})
    s = make_model(backend).session()

    async def both() -> list[str]:
        return await asyncio.gather(s.prompt("alpha"), s.prompt("beta"))

    assert asyncio.run(both()) == ["AA", "B"]
    assert s.prompt_sync("gamma") == "G"
    assert [m["content"] for m in s.messages] == ["alpha", "AA", "beta", "B", "gamma", "G"]


def test_prompt_while_another_loop_streams_is_refused():
    backend = FakeBackend({"alpha": B("AAAA"), "beta": B("B")})
    s = make_model(backend).session()
    paused = s.prompt_streaming_sync("alpha")
    assert next(paused) == "A"
    with pytest.raises(InvalidOptionError, match="still streaming"):
        s.prompt_sync("beta")
    assert "".join(paused) == "AAA"
    assert s.prompt_sync("beta") == "B"


def test_sync_wrappers_work_inside_a_running_event_loop():
    """As in Jupyter on CPython: a loop already runs in this thread."""
    backend = FakeBackend({"alpha": B("AA"), "beta": B("BBB")})
    s = make_model(backend).session()

    async def inside() -> tuple[str, list[str]]:
        return s.prompt_sync("alpha"), list(s.prompt_streaming_sync("beta"))

    text, pieces = asyncio.run(inside())
    assert text == "AA" and pieces == ["B", "B", "B"]


def test_model_prompt_streams_when_asked(capsys):
    from nomoat.model import Streamed

    model = make_model(FakeBackend({"alpha": B("AAAA")}))
    text = asyncio.run(model.prompt("alpha", stream=True))
    assert text == "AAAA" and isinstance(text, Streamed)
    assert capsys.readouterr().out == "AAAA\n"
    assert asyncio.run(model.prompt("alpha", stream=False)) == "AAAA"
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------------------
# Tools (OpenAI-style tool calling through the chat template)
# ---------------------------------------------------------------------------------------------

TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: "
    "{{ tools | map(attribute='function') | map(attribute='name') | join(',') }}<|im_end|>\n{% endif %}" + CHATML
)


def test_tools_are_rendered_by_a_template_that_supports_them():
    backend = FakeBackend({"weather?": B('<tool_call>{"name":"w","arguments":{"c":"Oslo"}}</tool_call>')})
    model = make_model(backend)
    model.chat_template = TOOLS_TEMPLATE
    s = model.session()
    s.tools = [{"type": "function", "function": {"name": "w", "parameters": {
        "type": "object", "properties": {"c": {"type": "string"}}, "required": ["c"]}}}]
    text = s.prompt_sync("weather?")
    assert "Tools: w" in TOK.decode(backend.prefills[0].fed)
    assert parse_tool_calls(text) == ("", [{"name": "w", "arguments": '{"c": "Oslo"}'}])


def test_tools_with_a_template_without_them_get_the_generic_tool_prompt():
    backend = FakeBackend({"q": B("a")}, context_window=1024)
    s = make_model(backend).session(tools=[{"type": "function", "function": {"name": "w"}}])
    assert s.prompt_sync("q") == "a"
    fed = TOK.decode(backend.calls[-1].state.tokens)
    assert fed.startswith("system\nYou can call tools.") and '"name": "w"' in fed


@pytest.mark.parametrize("text, content, calls", [
    ("plain answer", "plain answer", []),
    ('Sure. <tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>', "Sure.", [("f", '{"x": 1}')]),
    ('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": "{}"}</tool_call>',
     "", [("a", "{}"), ("b", "{}")]),
    ('<tool_call>{"name": "cut", "arguments": {"q": 2}}', "", [("cut", '{"q": 2}')]),  # EOS before </tool_call>
    ("<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", []),
    ('<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>', []),
])
def test_parse_tool_calls(text, content, calls):
    got_content, got_calls = parse_tool_calls(text)
    assert got_content == content
    assert [(c["name"], c["arguments"]) for c in got_calls] == calls


class CompletionBackend(FakeBackend):
    """A base model: continues plain text, replies[prompt] after the text `prompt` (no chat markers)."""

    def next_token(self, tokens: list[int]) -> int:
        for prompt, reply in sorted(self.replies.items(), key=lambda kv: -len(kv[0])):  # longest text first
            start = TOK.encode(prompt)
            if tokens[:len(start)] == start:
                n = len(tokens) - len(start)
                return reply[n] if n < len(reply) else IM_END
        return IM_END


def test_a_base_model_continues_plain_text():
    """No chat template (Gemma-3-270M): the prompt's text itself is continued, turn after turn; a
    system prompt is refused naming the fix; with tools, it continues a transcript after nomoat's
    generic tool prompt (chat.transcript_text)."""
    model = make_model(CompletionBackend({"Once upon": B(" a time"), "Once upon a time, there": B(" was")}))
    model.chat_template = None
    s = model.session(temperature=0)
    assert s.prompt_sync("Once upon") == " a time"
    assert s.prompt_sync(", there") == " was"  # the conversation is one growing text
    with pytest.raises(UnsupportedModelError, match="base model"):
        model.session(system="Be brief.").prompt_sync("Hi")
    tools = [{"type": "function", "function": {"name": "w"}}]
    text = TOK.decode(model.encode_chat([{"role": "user", "content": "Hi"}], tools=tools))
    assert text.startswith("You can call tools.") and text.endswith("\nQuestion: Hi\nAnswer:")


def test_no_max_tokens_by_default_the_answer_runs_to_its_end_or_the_context_window():
    # issue 14: the Prompt API has no max-tokens; the 256-token default nomoat had cut answers silently
    long = "y" * 300
    s = session_for({"go": B(long)}, context_window=1024)
    assert s.prompt_sync("go") == long and s.last.finish_reason == "stop"
    short = session_for({"go": B(long)}, context_window=96)
    text = short.prompt_sync("go")  # the window is the only limit: it ends there, as finish_reason says
    assert short.last.finish_reason == "length" and 0 < len(text) < 96
    assert short.last.prompt_tokens + short.last.completion_tokens == 96
