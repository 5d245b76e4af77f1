"""OpenAI's HTTP API on localhost, answered by the local models (`nomoat serve --openai`).

    POST /v1/chat/completions   an answer as JSON, or as server-sent events with "stream": true
    POST /v1/embeddings         vectors of an embedding package (all-MiniLM-L6-v2), float or base64
    GET  /v1/models             the packages in the models folder (nomoat.home.models_home())
    GET  /v1/models/NAME

serve.py's one HTTP server sends /v1/ here when it is started with openai=True, so its rules hold
(only requests addressed to localhost; the COOP/COEP headers); a request that carries an Origin
must come from a page of the server's own origin. `model` names a package: its folder name in the
models folder, or a catalog name or alias; OpenAI's own names ("gpt-4o-mini",
"text-embedding-3-small") mean the default chat or embedding model, as in the page's llm.chat and
llm.embeddings. A model is loaded at its first request and kept.

OpenAI's names live only here: a chat request becomes one call of the Python API,
Session.prompt_streaming(last message, history=the others, tools=...), on a session that no other
request uses at the same time (idle sessions are pooled per model, so a conversation that grows
request by request computes only its new tokens). Every model call runs on one asyncio loop in a
thread of its own and each backend step in a worker thread, so requests at once interleave token
by token, each with its own answer. A client that closes its connection stops its generation at
the next token (Session's `cancelled`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import queue
import re
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import __version__, catalog
from .errors import (
    AbortedError,
    ContextOverflowError,
    IncompleteOutputError,
    InvalidOptionError,
    InvalidPromptError,
    ModelNotFoundError,
    NomoatError,
    UnsupportedModelError,
    UnsupportedSchemaError,
)
from .package import MANIFEST
from .tool_calls import CallStream, new_call_id, parse_tool_calls

FINGERPRINT = f"nomoat-{__version__}"
MAX_BODY = 32 << 20  # the largest request body read (a long conversation, many texts to embed)
IDLE_SESSIONS = 4  # idle sessions kept per model (each holds its KV cache)
OPENAI_CHAT = re.compile(r"^(gpt-|o\d|chatgpt-|text-|davinci|babbage)", re.I)  # as web/src/openai.js
OPENAI_EMBEDDING = re.compile(r"^text-(embedding|similarity|search)-", re.I)  # as web/src/embeddings.js
DEFAULT_EMBEDDING = "all-MiniLM-L6-v2"


# --- errors, in OpenAI's shape ---------------------------------------------------------------------

class ApiError(Exception):
    """An answer other than 200: {"error": {"message", "type", "param", "code"}}, as OpenAI sends."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


def api_error(e: BaseException, param: str | None = None) -> ApiError:
    """What a failed call answers: nomoat's errors by condition (a request nomoat cannot answer is
    the client's to change: 400), anything else a 500 naming it."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ContextOverflowError):
        return ApiError(400, str(e), param, "context_length_exceeded")
    if isinstance(e, UnsupportedSchemaError):
        return ApiError(400, str(e), "response_format")
    if isinstance(e, UnsupportedModelError) and "tools" in str(e):
        return ApiError(400, str(e), "tools")
    if isinstance(e, (InvalidOptionError, InvalidPromptError, UnsupportedModelError)):
        return ApiError(400, str(e), param)
    if isinstance(e, ModelNotFoundError):
        return ApiError(404, str(e), "model", "model_not_found")
    return ApiError(500, f"{type(e).__name__}: {e}")


# --- reading requests ------------------------------------------------------------------------------

def _number(body: dict, key: str, ok: Callable[[float], bool], what: str, integer: bool = False):
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or not ok(v):
        raise bad(f"{key} must be {what}, got {json.dumps(v)}.", key)
    return v


def _text(content: Any, at: str) -> str:
    """A message's content: a string, a list of text parts, or null (an assistant's tool calls)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and isinstance(part.get("type"), str):
                raise bad(f"{at} has a {part['type']!r} part; nomoat's models take text only: send "
                          "{'type': 'text', 'text': ...} parts.", "messages")
            else:
                raise bad(f"{at}'s content parts must be {{'type': 'text', 'text': str}}.", "messages")
        return "".join(out)
    raise bad(f"{at}'s content must be a string or a list of text parts.", "messages")


def _arguments(a: Any) -> Any:
    """A tool call's arguments as chat templates render them: an object (OpenAI sends JSON text)."""
    if not isinstance(a, str):
        return a if a is not None else {}
    try:
        return json.loads(a)
    except ValueError:
        return a


def chat_messages(messages: Any) -> list[dict]:
    """OpenAI's messages as the Python API's: {role, content: str}; "developer" is "system"; an
    assistant's tool_calls and a tool message's tool_call_id and name are kept for the template."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list of {role, content}.", "messages")
    out = []
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise bad(f"{at} must be {{'role': 'system'|'developer'|'user'|'assistant'|'tool', 'content': ...}}, "
                      f"got role {m.get('role') if isinstance(m, dict) else m!r}.", "messages")
        role = "system" if m["role"] == "developer" else m["role"]
        msg: dict = {"role": role, "content": _text(m.get("content"), at)}
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), dict)
                                                      for c in calls):
                raise bad(f"{at}.tool_calls must be a list of {{id, type: 'function', function: {{name, arguments}}}}.",
                          "messages")
            msg["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                  "function": {"name": c["function"].get("name"),
                                               "arguments": _arguments(c["function"].get("arguments"))}}
                                 for c in calls]
        if m["role"] == "tool":
            msg["tool_call_id"] = m.get("tool_call_id")
            if m.get("name"):
                msg["name"] = m["name"]
        out.append(msg)
    return out


def chat_tool_choice(body: dict, tools: list[dict] | None) -> str:
    """tool_choice as the Python API's: "auto", "none", "required" or a tool's name."""
    choice = body.get("tool_choice")
    if choice is None:
        return "auto"
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise bad("tool_choice 'required' needs tools.", "tool_choice")
        return choice
    f = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = f.get("name") if isinstance(f, dict) else None
    if not isinstance(name, str):
        raise bad("tool_choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}.",
                  "tool_choice")
    if not tools or name not in [t["function"]["name"] for t in tools]:
        raise bad(f"tool_choice names {name!r}, which is not one of tools.", "tool_choice")
    return name


def chat_tools(body: dict) -> list[dict] | None:
    """The tool definitions (described to the model, its calls grammar-constrained by them), or None."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad("tools must be a list of {type: 'function', function: {name, description, parameters}}.", "tools")
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        f = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(f, dict) \
                or not isinstance(f.get("name"), str):
            raise bad(f"tools[{i}] must be {{type: 'function', function: {{name, description, parameters}}}}.", "tools")
        out.append({"type": "function", "function": {"name": f["name"], "description": f.get("description") or "",
                                                     "parameters": f.get("parameters") or {"type": "object",
                                                                                           "properties": {}}}})
    from .constrain.toolcall import check_tools

    try:
        check_tools(out)  # a schema nomoat cannot enforce: a 400 before anything runs
    except NomoatError as e:
        raise ApiError(400, str(e), "tools") from e
    return out


def response_constraint(rf: Any) -> dict | None:
    """response_format as the Python API's response_constraint (a JSON Schema), checked now: a
    schema nomoat cannot enforce is a 400 before anything runs."""
    if rf is None:
        return None
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind == "json_schema":
        schema = rf.get("json_schema", {}).get("schema") if isinstance(rf.get("json_schema"), dict) else None
        if not isinstance(schema, dict):
            raise bad("response_format.json_schema.schema must be a JSON Schema object.", "response_format")
        from .constrain import compile_constraint

        try:
            compile_constraint(schema)
        except NomoatError as e:
            raise ApiError(400, str(e), "response_format") from e
        return schema
    if kind == "json_object":
        return {"type": "object"}
    if kind == "text":
        return None
    raise bad(f"response_format.type must be 'text', 'json_schema' or 'json_object', got {json.dumps(kind)}.",
              "response_format")


CHAT_FIELDS = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
               "response_format", "tools", "tool_choice", "stream", "stream_options",
               "top_k", "min_p", "repetition_penalty"}  # the last three: nomoat's, as vLLM and llama.cpp take them
IGNORED = {"metadata", "store", "user", "service_tier", "parallel_tool_calls", "prompt_cache_key",
           "safety_identifier", "reasoning_effort", "verbosity"}  # change nothing in a local model's answer
ONLY = {"n": (1,), "frequency_penalty": (0,), "presence_penalty": (0,), "logprobs": (False,), "top_logprobs": (0,),
        "logit_bias": ({},), "modalities": (["text"],), "audio": (), "prediction": (), "web_search_options": (),
        "functions": (), "function_call": ()}  # taken only at these values (or null)
WHY = {"n": "make n requests instead", "functions": "use tools", "function_call": "use tools and tool_choice"}


@dataclass
class ChatRequest:
    model: str | None
    messages: list[dict]
    options: dict  # Session.prompt_streaming's sampling options
    constraint: dict | None  # response_format as a response_constraint
    tools: list[dict] | None
    stream: bool
    include_usage: bool
    tool_choice: str = "auto"


def chat_request(body: dict) -> ChatRequest:
    """A chat completion request, checked: each bad field is a 400 that names it and the fix."""
    for key in body:
        if key not in CHAT_FIELDS and key not in IGNORED and key not in ONLY:
            raise bad(f"Unrecognized request argument supplied: {key}. nomoat takes "
                      f"{', '.join(sorted(CHAT_FIELDS))}.", key)
        if key in ONLY and body[key] is not None and body[key] not in ONLY[key]:
            raise bad(f"{key}={json.dumps(body[key])} is not supported by nomoat ("
                      f"{WHY.get(key, 'leave it out')}).", key)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("model must be a string: a package's name (GET /v1/models lists them).", "model")
    options: dict = {"temperature": _number(body, "temperature", lambda v: 0 <= v <= 2, "a number from 0 to 2")}
    if options["temperature"] is None:
        options["temperature"] = 1.0  # OpenAI's default
    mt = _number(body, "max_completion_tokens", lambda v: v >= 1, "an integer >= 1", True)
    mt = mt if mt is not None else _number(body, "max_tokens", lambda v: v >= 1, "an integer >= 1", True)
    seed = _number(body, "seed", lambda v: True, "an integer", True)
    for key, value in (("max_tokens", mt), ("seed", None if seed is None else seed & 0xFFFFFFFF),
                       ("top_p", _number(body, "top_p", lambda v: 0 < v <= 1, "a number in (0, 1]")),
                       ("top_k", _number(body, "top_k", lambda v: v >= 0, "an integer >= 0 (0 = off)", True)),
                       ("min_p", _number(body, "min_p", lambda v: 0 <= v < 1, "a number in [0, 1)")),
                       ("repetition_penalty", _number(body, "repetition_penalty", lambda v: v > 0, "a number > 0"))):
        if value is not None:
            options[key] = value
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
            raise bad("stop must be a non-empty string or a list of up to 4 of them.", "stop")
        options["stop"] = tuple(stops)
    stream, so = body.get("stream") or False, body.get("stream_options")
    if not isinstance(stream, bool):
        raise bad("stream must be true or false.", "stream")
    if so is not None and (not isinstance(so, dict) or not stream):
        raise bad("stream_options is an object ({include_usage: true}), only with stream: true.", "stream_options")
    tools, constraint = chat_tools(body), response_constraint(body.get("response_format"))
    if tools and constraint is not None:
        raise bad("give tools or a response_format, not both.", "response_format")
    return ChatRequest(model, chat_messages(body.get("messages")), options, constraint, tools, stream,
                       bool(so and so.get("include_usage")), chat_tool_choice(body, tools))


def embedding_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, list) or not texts:
        raise bad("input must be a string or a non-empty list of strings.", "input")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            what = "token ids are not taken; send the text" if isinstance(t, (int, list)) else "give a string"
            raise bad(f"input[{i}] is {type(t).__name__}, not a string: {what}.", "input")
    return texts


# --- models: found by name, loaded once, with their idle sessions -----------------------------------

class Models:
    """The models folder's packages: resolved by name, each loaded once, at its first request."""

    def __init__(self, folder: Path, index: Callable[[Path], dict], threads: int | None = None) -> None:
        self.folder, self.threads = folder, threads
        self.index = index  # serve.model_index: the folder's valid packages, as /models/index.json lists them
        self._loaded: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.idle: dict[str, list] = {}  # name → sessions no request is using (touched only on the engine loop)

    def kinds(self) -> dict[str, str]:
        """{package name: "llm" | "embedding"} of the valid packages in the folder (serve.model_index)."""
        return {e["name"]: e["kind"] for e in self.index(self.folder)["models"]}

    def resolve(self, asked: str | None, kind: str) -> str:
        """The package a request's `model` names: a folder in the models folder, a catalog name or
        alias, or (None, an OpenAI name) the default chat or embedding model; else a 404, or a 400
        for a package of the other kind (nothing is loaded for either)."""
        kinds = self.kinds()
        names = list(kinds)
        openai = OPENAI_EMBEDDING if kind == "embedding" else OPENAI_CHAT
        default = DEFAULT_EMBEDDING if kind == "embedding" else catalog.DEFAULT.name
        want = default if asked is None or openai.match(asked) else asked
        found = catalog.find(want)
        for name in (want, found.name if found else None):
            if name in kinds and kinds[name] != kind:
                raise bad(f"{name} is an embedding model; POST /v1/embeddings, or name a chat model." if kind == "llm"
                          else f"{name} is a chat model; embeddings come from an embedding model (e.g. "
                               f"{DEFAULT_EMBEDDING}).", "model")
            if name in kinds:
                return name
        fix = (f"convert it first: nomoat convert --model {found.name}" if found else
               f"use one of them ({', '.join(names) or 'none yet'}), or convert one: nomoat convert --model NAME")
        raise ApiError(404, f"The model {want!r} does not exist in {self.folder}; {fix}.", "model", "model_not_found")

    def get(self, name: str) -> Any:
        """The loaded model (Model or Embedder) of package `name`, loaded at the first call."""
        from .model import load

        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._loaded:
                self._loaded[name] = load(self.folder / name, threads=self.threads)
            return self._loaded[name]

    def listing(self) -> list[dict]:
        out = []
        for name in self.kinds():
            try:
                created = int((self.folder / name / MANIFEST).stat().st_mtime)
            except OSError:
                continue
            out.append({"id": name, "object": "model", "created": created, "owned_by": "nomoat"})
        return out

    def take(self, name: str, model) -> Any:
        """An idle session of `model`, or a new one (on the engine loop: no lock needed)."""
        idle = self.idle.setdefault(name, [])
        return idle.pop() if idle else model.session()

    def give_back(self, name: str, session, reusable: bool) -> None:
        idle = self.idle.setdefault(name, [])
        if reusable and len(idle) < IDLE_SESSIONS:
            idle.append(session)
        else:
            session.close()


# --- the engine loop -------------------------------------------------------------------------------

class Engine:
    """One asyncio loop, in a thread of its own, where every model call runs (backend steps go to
    its worker threads, so calls interleave)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nomoat-openai", daemon=True)
        self.thread.start()

    def run(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Answer:
    text: str
    stats: Any  # generate.Stats
    incomplete: bool  # a response_format answer (or a tool call) that ran out of tokens first
    calls: list[dict]  # the answer's tool calls: [{"id", "name", "arguments": JSON text}]


async def answer(models: Models, name: str, model, req: ChatRequest, put: Callable[[str], None],
                 cancelled: Callable[[], bool]) -> Answer:
    """The Python API's answer to `req`, each piece also handed to put() as it comes."""
    session = models.take(name, model)
    reusable, parts, incomplete = False, [], False
    try:
        options = {"max_tokens": model.context_window, **req.options}  # OpenAI's default: to the end of the context
        pieces = session.prompt_streaming(req.messages[-1:], req.constraint, history=req.messages[:-1],
                                          tools=req.tools, tool_choice=req.tool_choice, keep_partial=False,
                                          cancelled=cancelled, **options)
        try:
            async with contextlib.aclosing(pieces):
                async for piece in pieces:
                    parts.append(piece)
                    put(piece)
        except IncompleteOutputError:
            incomplete = True  # OpenAI's answer to this: finish_reason "length", the JSON cut short
        reusable = True
        return Answer("".join(parts), session.last, incomplete, list(session.last_tool_calls))
    except NomoatError:
        reusable = True  # refused or aborted between steps: the session is whole
        raise
    finally:
        models.give_back(name, session, reusable)


# --- answers, in OpenAI's shape ---------------------------------------------------------------------

def usage(prompt: int, completion: int, cached: int | None = None) -> dict:
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def timings(stats) -> dict:
    """nomoat's addition, as in the page: time to first token, tokens/s, prompt tokens reused."""
    return {"ttft_ms": stats.ttft_s * 1000, "prefill_tokens_per_s": stats.prefill_tps,
            "decode_tokens_per_s": stats.decode_tps, "reused_tokens": stats.reused_tokens}


def split_calls(a: Answer, req: ChatRequest) -> tuple[str, list[dict], str]:
    """(content, tool_calls, finish_reason) of an answer."""
    content = parse_tool_calls(a.text)[0] if req.tools else a.text
    shaped = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
              for c in a.calls]
    finish = "tool_calls" if shaped else "length" if a.incomplete or a.stats.finish_reason == "length" else "stop"
    return content, shaped, finish


# --- HTTP -------------------------------------------------------------------------------------------

DONE = object()  # the end of a stream of pieces


def gone(sock: socket.socket) -> bool:
    """Whether the client has closed its side of the connection (an end of file waits to be read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class OpenAIApi:
    """The /v1/ routes of serve.Handler: handle(handler) answers one request."""

    def __init__(self, folder: Path, index: Callable[[Path], dict], threads: int | None = None) -> None:
        self.models = Models(folder, index, threads)
        self.engine = Engine()

    def close(self) -> None:
        self.engine.close()

    @staticmethod
    def owns(path: str) -> bool:
        url = unquote(urlsplit(path).path)
        return url == "/v1" or url.startswith("/v1/")

    def handle(self, h) -> None:
        url = unquote(urlsplit(h.path).path).rstrip("/")
        try:
            origin = h.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() != (h.headers.get("Host") or "").lower():
                raise ApiError(403, f"nomoat's OpenAI API answers programs and pages of its own origin, not {origin}.")
            routes = {("GET", "/v1/models"): self.list_models, ("POST", "/v1/chat/completions"): self.chat,
                      ("POST", "/v1/embeddings"): self.embeddings}
            if (h.command, url) in routes:
                routes[h.command, url](h)
            elif h.command == "GET" and url.startswith("/v1/models/"):
                self.one_model(h, url[len("/v1/models/"):])
            elif any(path == url for _, path in routes):
                raise ApiError(405, f"{url} takes {'GET' if url == '/v1/models' else 'POST'}, not {h.command}.")
            else:
                raise ApiError(404, f"nomoat serves /v1/chat/completions, /v1/embeddings and /v1/models; not {url}.",
                               code="unknown_url")
        except ApiError as e:
            self.send_json(h, e.body(), e.status)

    # --- plumbing
    def send_json(self, h, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(ConnectionError):
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

    def read_json(self, h) -> dict:
        if h.headers.get("Transfer-Encoding"):
            raise ApiError(411, "Send the request body with a Content-Length (no Transfer-Encoding).")
        try:
            n = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            raise bad("Content-Length must be a number of bytes.") from None
        if n > MAX_BODY:
            raise ApiError(413, f"The request body is {n} bytes; nomoat reads at most {MAX_BODY}.")
        try:
            body = json.loads(h.rfile.read(n).decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise bad(f"The request body must be a JSON object (UTF-8): {e}.") from None
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object, e.g. {\"model\": ..., \"messages\": [...]}.")
        return body

    def loaded(self, asked: Any, kind: str) -> tuple[str, Any]:
        if asked is not None and not isinstance(asked, str):
            raise bad("model must be a string: a package's name (GET /v1/models lists them).", "model")
        name = self.models.resolve(asked, kind)
        try:
            return name, self.models.get(name)
        except NomoatError as e:
            raise api_error(e, "model") from e

    # --- routes
    def list_models(self, h) -> None:
        self.send_json(h, {"object": "list", "data": self.models.listing()})

    def one_model(self, h, name: str) -> None:
        found = [m for m in self.models.listing() if m["id"] == name]
        if not found:
            raise ApiError(404, f"The model {name!r} does not exist in {self.models.folder} (GET /v1/models lists "
                                "them).", "model", "model_not_found")
        self.send_json(h, found[0])

    def embeddings(self, h) -> None:
        body = self.read_json(h)
        for key in body:
            if key not in ("model", "input", "encoding_format", "dimensions", "user", "truncate"):
                raise bad(f"Unrecognized request argument supplied: {key}. nomoat takes model, input, "
                          "encoding_format, dimensions, user and truncate.", key)
        texts = embedding_texts(body.get("input"))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise bad(f"encoding_format must be 'float' or 'base64', got {json.dumps(fmt)}.", "encoding_format")
        truncate = body.get("truncate", False)
        if not isinstance(truncate, bool):
            raise bad("truncate (nomoat's) must be true or false.", "truncate")
        name, model = self.loaded(body.get("model"), "embedding")
        if body.get("dimensions") not in (None, model.dimensions):
            raise bad(f"{name} makes vectors of {model.dimensions} dimensions; leave dimensions out.", "dimensions")
        try:
            vectors, tokens = self.engine.run(model.embed_counted(texts, truncate=truncate)).result()
        except NomoatError as e:
            raise api_error(e, "input") from e
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if fmt == "base64" else v}
                for i, v in enumerate(vectors)]
        self.send_json(h, {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": tokens,
                                                                                     "total_tokens": tokens}})

    def chat(self, h) -> None:
        req = chat_request(self.read_json(h))
        name, model = self.loaded(req.model, "llm")
        stopped = threading.Event()  # set when writing to the client fails
        pieces: queue.Queue = queue.Queue()
        sock = h.connection
        job = self.engine.run(answer(self.models, name, model, req, pieces.put,
                                     lambda: stopped.is_set() or gone(sock)))
        job.add_done_callback(lambda _: pieces.put(DONE))
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not req.stream:
            try:
                a = job.result()
            except AbortedError:
                return  # the client left
            except Exception as e:
                raise api_error(e, "messages") from e
            content, calls, finish = split_calls(a, req)
            message = {"role": "assistant", "content": None if calls and not content else content, "refusal": None}
            if calls:
                message["tool_calls"] = calls
            self.send_json(h, {
                "id": cid, "object": "chat.completion", "created": created, "model": name,
                "system_fingerprint": FINGERPRINT,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage(a.stats.prompt_tokens, a.stats.completion_tokens, a.stats.reused_tokens),
                "timings": timings(a.stats)})
            return
        first = pieces.get()  # the headers wait for the first piece: a refused request is still a 400
        if first is DONE and job.exception() is not None:
            if isinstance(job.exception(), AbortedError):
                return
            raise api_error(job.exception(), "messages")
        self.stream(h, req, name, cid, created, first, pieces, job, stopped)

    def stream(self, h, req: ChatRequest, name: str, cid: str, created: int, item, pieces: queue.Queue,
               job: concurrent.futures.Future, stopped: threading.Event) -> None:
        """Server-sent events: a role chunk, content deltas as they come, tool_calls deltas as each call
        is written (OpenAI's shape: index, id, type and the name first, then arguments chunks; tool_calls.
        CallStream splits the answer), the finish_reason, usage (stream_options.include_usage), [DONE]."""

        def event(delta: dict | None, finish: str | None = None, **extra) -> None:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                     "system_fingerprint": FINGERPRINT,
                     "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                          "finish_reason": finish}], **extra}
            if req.include_usage:
                chunk.setdefault("usage", None)
            h.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            event({"role": "assistant", "content": ""})
            split, ids = CallStream(), []
            while item is not DONE:
                for kind, *rest in (split.push(item) if req.tools else [("text", item)]):
                    if kind == "text":
                        event({"content": rest[0]})
                    elif rest[0] >= len(ids):  # a call's first delta: index, id, type, name
                        ids.append(new_call_id())
                        event({"tool_calls": [{"index": rest[0], "id": ids[-1], "type": "function",
                                               "function": {"name": rest[1], "arguments": rest[2]}}]})
                    else:
                        event({"tool_calls": [{"index": rest[0], "function": {"arguments": rest[2]}}]})
                item = pieces.get()
            if job.exception() is not None:
                e = api_error(job.exception(), "messages")
                h.wfile.write(b"data: " + json.dumps(e.body()).encode() + b"\n\n")
                return
            a = job.result()
            _, calls, finish = split_calls(a, req)
            event({}, finish, timings=timings(a.stats))
            if req.include_usage:
                event(None, usage=usage(a.stats.prompt_tokens, a.stats.completion_tokens, a.stats.reused_tokens))
            h.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            stopped.set()  # the client left: its generation stops at the next token


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")
