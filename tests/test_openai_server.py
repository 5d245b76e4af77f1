"""`nomoat serve --openai`: OpenAI's HTTP API on localhost, driven by the official `openai` client.
Greedy answers are compared with the Python API's (the same loaded model, a fresh session), so
each question here is asked of the server once: a request that repeats one already in a pooled
session's cache computes its last prompt token alone, which at accuracy level 4 can tip a near-tie
("What is the capital of France?" does)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import openai
import pytest

import nomoat
from nomoat.serve import make_server

SMOL = "SmolLM2-135M-Instruct"
EMBED = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def minilm_dir():
    from nomoat.catalog import convert_named

    return convert_named(EMBED)


@pytest.fixture(scope="module")
def models(tmp_path_factory, default_model_dir, tiny_dir, minilm_dir):
    folder = tmp_path_factory.mktemp("openai_models")
    for name, target in ((SMOL, default_model_dir), ("tiny", tiny_dir), (EMBED, minilm_dir)):
        (folder / name).symlink_to(target)
    return folder


@pytest.fixture(scope="module")
def server(models):
    srv = make_server(0, models=models, openai=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="unused",
                         max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def smol(server):
    """The server's own loaded model: the Python API oracle runs on it."""
    return server.api.models.get(SMOL)


def oracle(model, question: str, **sampling) -> tuple[str, object]:
    """The Python API's answer to one user message in a fresh session, and its stats."""
    session = model.session(**sampling)
    text = session.prompt_sync(question)
    return text, session.last


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_chat_completion_is_the_python_api_answer(client, smol):
    q = "Name three fruits."
    want, stats = oracle(smol, q, temperature=0, max_tokens=24)
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0, max_tokens=24)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == SMOL
    assert r.system_fingerprint.startswith("nomoat-") and isinstance(r.created, int)
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.message.content == want
    assert choice.finish_reason == stats.finish_reason and choice.message.tool_calls is None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (stats.prompt_tokens, stats.completion_tokens)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_a_growing_conversation_reuses_its_tokens(client, smol):
    """A "developer" message is the system prompt, text parts are text; the next request of the same
    conversation computes only its new tokens (usage.prompt_tokens_details.cached_tokens)."""
    system, q1, q2 = "You answer in one short sentence.", "What is ice?", "And what is steam?"
    session = smol.session(system=system, temperature=0, max_tokens=20)
    want1, want2 = session.prompt_sync(q1), session.prompt_sync(q2)
    messages = [{"role": "developer", "content": [{"type": "text", "text": system}]},
                {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "ice?"}]}]
    r1 = client.chat.completions.create(model=SMOL, messages=messages, temperature=0, max_tokens=20)
    assert r1.choices[0].message.content == want1
    messages += [{"role": "assistant", "content": want1}, {"role": "user", "content": q2}]
    r2 = client.chat.completions.create(model=SMOL, messages=messages, temperature=0, max_tokens=20)
    assert r2.choices[0].message.content == want2
    assert r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens


def test_streaming_chunks_add_up_to_the_answer(client, smol):
    q = "Why is the sky blue?"
    want, stats = oracle(smol, q, temperature=0, max_tokens=24)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=ask(q), temperature=0, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].model == SMOL  # an OpenAI name: the default
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 5  # really streamed
    (finish,) = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == stats.finish_reason
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == stats.completion_tokens
    assert last.usage.prompt_tokens == stats.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stop_sequences_end_the_answer_before_them(client, smol):
    q = "Describe a cat in one sentence."
    full, _ = oracle(smol, q, temperature=0, max_tokens=30)
    stop = " " + full.split()[3]
    want, stats = oracle(smol, q, temperature=0, max_tokens=30, stop=[stop, "zzqx"])
    assert want == full[:full.index(stop)] and stats.finish_reason == "stop"
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0, max_tokens=30, stop=[stop, "zzqx"])
    assert r.choices[0].message.content == want and r.choices[0].finish_reason == "stop"


def test_sampling_fields_reach_the_sampler(client, smol):
    q = "Tell me a fact about owls."
    want, _ = oracle(smol, q, temperature=0.9, top_p=0.8, seed=1234, max_tokens=16)
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0.9, top_p=0.8, seed=1234,
                                       max_completion_tokens=16)
    assert r.choices[0].message.content == want
    assert r.usage.completion_tokens <= 16


def test_response_format_json_schema(client, smol):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 120}},
              "required": ["name", "age"], "additionalProperties": False}
    q = "Invent a person."
    session = smol.session(temperature=0, max_tokens=40)
    want = session.prompt_sync(q, schema)
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0, max_tokens=40, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert r.choices[0].message.content == want
    person = json.loads(want)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


def test_json_object_and_json_cut_short(client, smol):
    """json_object answers a JSON object; when max_tokens ends a structured answer first, OpenAI's
    answer is finish_reason "length" with the text so far (the Python API raises IncompleteOutputError
    and keeps that text in the history)."""
    q = "Give me a JSON object describing a dog."
    want = smol.session(temperature=0, max_tokens=30).prompt_sync(q, {"type": "object"})
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0, max_tokens=30,
                                       response_format={"type": "json_object"})
    assert r.choices[0].message.content == want and isinstance(json.loads(want), dict)
    q, schema = "Describe a horse.", {"type": "object", "required": ["name", "breed"],
                                      "properties": {"name": {"type": "string"}, "breed": {"type": "string"}}}
    session = smol.session(temperature=0, max_tokens=4)
    with pytest.raises(nomoat.IncompleteOutputError):
        session.prompt_sync(q, schema)
    r = client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0, max_tokens=4, response_format={
        "type": "json_schema", "json_schema": {"name": "horse", "schema": schema}})
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content == session.messages[-1]["content"]
    assert r.choices[0].message.content.startswith("{") and r.usage.completion_tokens == 4


def idle_after(server, n_before: int, timeout: float = 20.0):
    """The session a request gave back to the pool (it goes back when its generation has ended)."""
    idle = server.api.models.idle[SMOL]
    deadline = time.time() + timeout
    while len(idle) <= n_before and time.time() < deadline:
        time.sleep(0.05)
    assert len(idle) > n_before, "the generation did not end"
    return idle[-1]


def test_a_closed_stream_stops_its_generation(client, server, smol):
    server.api.models.idle[SMOL].clear()
    stream = client.chat.completions.create(model=SMOL, messages=ask("Write a very long story about a dragon."),
                                            temperature=0, max_tokens=2000, stream=True)
    pieces = []
    for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")
        if len(pieces) == 4:
            break
    stream.close()
    session = idle_after(server, 0)
    assert session.last.finish_reason is None and session.last.completion_tokens < 200  # aborted, not finished
    q = "What do bees make?"
    want, _ = oracle(smol, q, temperature=0, max_tokens=16)
    assert client.chat.completions.create(model=SMOL, messages=ask(q), temperature=0,
                                          max_tokens=16).choices[0].message.content == want


def test_a_client_that_leaves_stops_a_non_streamed_answer(server):
    server.api.models.idle[SMOL].clear()
    body = json.dumps({"model": SMOL, "messages": ask("Write a very long poem about the sea."), "temperature": 0,
                       "max_tokens": 2000}).encode()
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.5)
    session = idle_after(server, 0)
    assert session.last.finish_reason is None and session.last.completion_tokens < 200


def test_concurrent_requests_each_get_their_own_answer(client, server, smol):
    questions = ["What is the boiling point of water?", "Name a famous painter.", "What is a triangle?",
                 "How many legs does a spider have?"]
    want = [oracle(smol, q, temperature=0, max_tokens=20)[0] for q in questions]  # one at a time

    def one(i: int) -> str:
        params = {"model": SMOL, "messages": ask(questions[i]), "temperature": 0, "max_tokens": 20}
        if i % 2:
            return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True,
                                                                                                 **params))
        return client.chat.completions.create(**params).choices[0].message.content

    server.api.models.idle[SMOL].clear()
    with ThreadPoolExecutor(len(questions)) as pool:
        got = list(pool.map(one, range(len(questions))))
    assert got == want
    assert len(server.api.models.idle[SMOL]) >= 2  # they ran at once, each on a session of its own


def error(e: openai.APIStatusError) -> dict:
    body = e.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize("params,param,words", [
    ({"temperature": 3}, "temperature", "from 0 to 2"),
    ({"max_tokens": 0}, "max_tokens", ">= 1"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
    ({"n": 2}, "n", "n requests"),
    ({"logprobs": True}, "logprobs", "leave it out"),
    ({"tool_choice": "required"}, "tool_choice", "needs tools"),
    ({"tool_choice": {"type": "function", "function": {"name": "g"}}, "tools": [{"type": "function", "function": {
        "name": "f"}}]}, "tool_choice", "not one of tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "string", "format": "date"}}}}}]}, "tools", "'format' is not supported"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]},
     "tools", "two tools are named"),
    ({"response_format": {"type": "xml"}}, "response_format", "json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "soup"}}}}, "response_format",
     "soup"),
    ({"messages": []}, "messages", "non-empty"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages",
     "text only"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages", "role"),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate", "Unrecognized request argument supplied: frobnicate"),
    ({"model": EMBED}, "model", "embedding model"),
])
def test_bad_requests_are_400_naming_the_fix(client, params, param, words):
    params = {"model": SMOL, "messages": ask("hi"), **params}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**params)
    err = error(e.value)
    assert err["type"] == "invalid_request_error" and err["param"] == param and words in err["message"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=ask("hi"))
    err = error(e.value)
    assert err["code"] == "model_not_found" and err["param"] == "model" and SMOL in err["message"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_context_overflow_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=ask("word " * 600), max_tokens=4)
    err = error(e.value)
    assert err["code"] == "context_length_exceeded" and "context window is 256" in err["message"]


def test_http_level_refusals(server):
    status, body = raw(server, "POST", "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON object" in json.loads(body)["error"]["message"]
    assert raw(server, "POST", "/v1/chat/completions", b"[]")[0] == 400
    assert raw(server, "GET", "/v1/chat/completions")[0] == 405
    status, body = raw(server, "GET", "/v1/completions")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_url"
    assert raw(server, "GET", "/v1/models", headers={"Host": "evil.example:80"})[0] == 421  # DNS rebinding
    status, body = raw(server, "POST", "/v1/chat/completions", b"{}", {"Origin": "http://evil.example"})
    assert status == 403 and "own origin" in json.loads(body)["error"]["message"]
    port = server.server_address[1]
    assert raw(server, "GET", "/v1/models", headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert raw(server, "POST", "/index.html", b"")[0] == 501  # only /v1/ takes POST
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/v1/models")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    assert r.getheader("Cross-Origin-Opener-Policy") == "same-origin"  # as every file nomoat serve sends
    assert r.getheader("Cross-Origin-Embedder-Policy") == "require-corp"
    conn.close()


def test_models_lists_the_packages(client, models):
    got = client.models.list().data
    assert [m.id for m in got] == sorted(p.name for p in models.iterdir())
    assert all(m.object == "model" and m.owned_by == "nomoat" and m.created > 0 for m in got)
    assert client.models.retrieve(EMBED).id == EMBED


def test_embeddings_float_and_base64(client, server):
    texts = ["A cat sits on the mat.", "Stock markets fell today.", ""]
    embedder = server.api.models.get(EMBED)
    want, tokens = embedder.embed_sync(texts), sum(embedder.count_tokens(t) for t in texts)
    r = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    assert r.object == "list" and r.model == EMBED and [d.index for d in r.data] == [0, 1, 2]
    assert [d.embedding for d in r.data] == want
    assert r.usage.prompt_tokens == r.usage.total_tokens == tokens
    raw_b64 = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=texts[0],
                                                         encoding_format="base64").http_response.json()
    packed = base64.b64decode(raw_b64["data"][0]["embedding"])
    alone = embedder.embed_sync(texts[0])[0]  # (in a batch of one: padding shifts the last bits)
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == alone  # little-endian float32, exact
    assert raw_b64["model"] == EMBED  # an OpenAI embedding name: the default embedding model
    r = client.embeddings.create(model=EMBED, input=texts[0])  # the client asks for base64 and decodes it
    assert r.data[0].embedding == alone


def test_embedding_errors(client):
    for params, param, words in (({"input": [[1, 2, 3]]}, "input", "token ids"),
                                 ({"input": []}, "input", "non-empty"),
                                 ({"input": "x", "dimensions": 128}, "dimensions", "384"),
                                 ({"input": "x", "model": SMOL}, "model", "chat model"),
                                 ({"input": "word " * 400}, "input", "truncate")):
        with pytest.raises(openai.BadRequestError) as e:
            client.embeddings.create(**{"model": EMBED, **params})
        err = error(e.value)
        assert err["param"] == param and words in err["message"], err
    r = client.embeddings.create(model=EMBED, input="word " * 400, extra_body={"truncate": True})
    assert r.usage.prompt_tokens == 256


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current temperature in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                   "required": ["city"]}}}
CALC = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}


def test_tool_calls_with_the_openai_client_json_and_streaming(client):
    """tool_choice "required" on SmolLM2-135M (its template has no tools: nomoat's generic tool prompt):
    one call whose arguments validate, the same through streaming deltas; then the tool's result goes
    back as a tool message and the final answer uses it."""
    q = ask("What is the weather in Paris right now?")
    r = client.chat.completions.create(model=SMOL, messages=q, tools=[WEATHER, CALC], tool_choice="required",
                                       temperature=0)
    (choice,) = r.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content in (None, "")
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name in ("get_weather", "add")
    args = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert set(args) == {"city"} and isinstance(args["city"], str) and len(args["city"]) <= 40
    else:
        assert set(args) == {"a", "b"} and all(isinstance(v, int) for v in args.values())

    named = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(client.chat.completions.create(model=SMOL, messages=q, tools=[WEATHER, CALC], tool_choice=named,
                                                 temperature=0, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    parts = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert parts[0].index == 0 and parts[0].id.startswith("call_") and parts[0].type == "function"
    assert parts[0].function.name == "get_weather" and all(p.index == 0 and p.id is None for p in parts[1:])
    streamed = "".join(p.function.arguments or "" for p in parts)
    assert json.loads(streamed)["city"] == args.get("city", json.loads(streamed)["city"])
    assert len(parts) >= 3  # the arguments come in pieces, as they are written
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # the result goes back: the answer uses it
    followup = [*q, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": streamed}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "23.7 °C"}]
    r = client.chat.completions.create(model=SMOL, messages=followup, tools=[WEATHER, CALC], temperature=0,
                                       max_tokens=60)
    assert r.choices[0].finish_reason == "stop" and "23.7" in r.choices[0].message.content
    r = client.chat.completions.create(model=SMOL, messages=q, tools=[WEATHER], tool_choice="none", temperature=0,
                                       max_tokens=30)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")


def test_cli_flag(models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NOMOAT_HOME": str(models)}
    p = subprocess.Popen([sys.executable, "-m", "nomoat", "serve", "--openai", "--port", str(port)], env=env,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, body = raw(SimpleNamespace(server_address=("127.0.0.1", port)), "GET", "/v1/models")
                break
            except OSError:
                assert time.time() < deadline and p.poll() is None, "nomoat serve --openai did not start"
                time.sleep(0.2)
        assert status == 200 and SMOL in [m["id"] for m in json.loads(body)["data"]]
    finally:
        p.terminate()
        err = p.communicate(timeout=30)[1]
    assert f"http://127.0.0.1:{port}/v1" in err
