"""The Python end of nomoat's browser worker (Pyodide only; web/src/worker.mjs calls it).

Sessions live here by id. Every call carries the page's request id (its last argument). A call
that fails records its error as plain data — {name, message, extra}: the DOMException name the
Prompt API uses (errors.NomoatError.dom_name) — which worker.mjs takes with failure(request_id)
when the call rejects; nothing is parsed out of exception text. abort(request_id) makes a running
prompt or append stop at its next prefill chunk or token.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

from . import _compat
from .errors import ContextOverflowError, InvalidOptionError, NomoatError, UnsupportedModelError
from .model import load_web
from .session import Session
from .tool_calls import CallStream

_models: dict[tuple[str, str], asyncio.Task] = {}  # (url, device) → the load, shared by concurrent create()s
_embedders: dict[tuple[str, str], asyncio.Task] = {}  # (url, device) → an embedding model's load, as _models
_sessions: dict[int, Session] = {}
_ids = iter(range(1, 1 << 62))
_failures: dict[int, dict] = {}  # request id → how it failed, until worker.mjs takes it (failure())
_running: set[int] = set()  # request ids of the calls under way
_aborted: set[int] = set()  # those of them the page aborted
_finished: dict[int, int] = {}  # session id → its latest prompt or append (request id), done and kept


class CallFailed(Exception):
    """Raised out of this module when a call fails; the error itself is in _failures."""


def _describe(e: BaseException) -> dict:
    js_error = getattr(e, "js_error", None)  # a JS error that passed through Python keeps its name
    if js_error is not None:
        extra = {k: getattr(js_error, k) for k in ("requested", "contextWindow")
                 if getattr(js_error, k, None) is not None}
        return {"name": str(js_error.name), "message": str(js_error.message), "extra": extra}
    if isinstance(e, NomoatError):
        name = e.dom_name
    elif isinstance(e, (TypeError, ValueError, KeyError)):
        name = "TypeError"
    else:
        name = "OperationError"
    extra = {"requested": e.requested, "contextWindow": e.context_window} if isinstance(e, ContextOverflowError) else {}
    return {"name": name, "message": str(e) or type(e).__name__, "extra": extra}


def _failed(e: BaseException, request_id: int) -> CallFailed:
    _failures[request_id] = _describe(e)
    return CallFailed(f"request {request_id} failed: see failure({request_id})")


def failure(request_id: int) -> dict | None:
    """How request `request_id` failed ({name, message, extra}), once; None if it did not fail here."""
    return _failures.pop(request_id, None)


def abort(request_id: int) -> None:
    """The page aborted `request_id` (and has already rejected it): a running prompt or append stops at
    its next prefill chunk or token; one that already finished is dropped from its session's history."""
    if request_id in _running:
        _aborted.add(request_id)
    for sid, rid in list(_finished.items()):
        if rid == request_id:
            del _finished[sid]
            undo_last(sid)


def _kept(sid: int, request_id: int) -> None:
    """A prompt or append of `sid` finished and joined the history — unless it was aborted meanwhile."""
    if request_id in _aborted:
        undo_last(sid)
    else:
        _finished[sid] = request_id


def _cancelled(request_id: int) -> Callable[[], bool]:
    return lambda: request_id in _aborted


def _calls(fn):
    """Errors of `fn` (whose last argument is the request id, as worker.mjs calls it) become
    failure() records."""

    @functools.wraps(fn)
    async def wrapper(*args):
        request_id = args[-1]
        _running.add(request_id)
        try:
            return await fn(*args)
        except Exception as e:
            raise _failed(e, request_id) from e
        finally:
            _running.discard(request_id)
            _aborted.discard(request_id)

    return wrapper


def _session(sid: int) -> Session:
    try:
        return _sessions[sid]
    except KeyError:
        raise NomoatError(f"Session {sid} was destroyed; create a new one.") from None


@_calls
async def create(model_url: str, device: str, options: dict, request_id: int) -> dict:
    """Load (once per URL and device) and open a session. options: system, initial_prompts
    ([{role, content}], tool messages too), tools ([{type: "function", function: {name, description,
    parameters}}]: checked and compiled now), and the sampling options in snake_case."""
    model = await _shared_load(_models, (model_url, device), lambda: load_web(model_url, device, request_id))
    if not hasattr(model, "session"):
        raise UnsupportedModelError(f"{model_url} is an embedding model: it makes vectors, not answers. "
                                    "Use llm.embeddings.create({model, input}), or a chat model in llm.create().")
    opts = dict(options)
    messages = opts.pop("initial_prompts", None)
    tools = opts.pop("tools", None)
    session = model.session(system=opts.pop("system", None), messages=messages,
                            tools=[dict(t) for t in tools] if tools else None, **opts)
    if session.context_usage > model.context_window:
        raise ContextOverflowError(
            f"The initial prompts take {session.context_usage} tokens; the context window is {model.context_window}. "
            "Shorten them.", requested=session.context_usage, context_window=model.context_window)
    sid = next(_ids)
    _sessions[sid] = session
    return {"session": sid, "context_window": model.context_window, "context_usage": session.context_usage,
            "threads": int(getattr(model.backend.engine, "threads", 1) or 1)}


async def _shared_load(loads: dict[tuple[str, str], asyncio.Task], key: tuple[str, str], start):
    """The load of `key`, started once (start()) and shared by concurrent calls; a failed one is
    tried again by the next call."""
    if key not in loads:
        loads[key] = asyncio.ensure_future(start())
    try:
        return await loads[key]
    except BaseException:
        loads.pop(key, None)
        raise


@_calls
async def embed(model_url: str, device: str, texts, options: dict, request_id: int) -> dict:
    """llm.embeddings.create (web/src/embeddings.js): the sentence embeddings of `texts` (strings,
    checked in the page), batched by embed.Embedder. options: truncate (cut an input past the
    model's limit instead of refusing it). Returns {vectors: every vector's float32s, row after
    row (a Float32Array in JS), dimensions, prompt_tokens}."""
    from .embed import load_web_embedder

    embedder = await _shared_load(_embedders, (model_url, device),
                                  lambda: load_web_embedder(model_url, device, request_id))
    opts = dict(options)
    truncate = opts.pop("truncate", False)
    if opts or not isinstance(truncate, bool):
        raise InvalidOptionError(f"embed takes the option truncate (true or false), not {sorted(opts) or truncate!r}.")
    vectors, tokens = await embedder.embed_counted([str(t) for t in texts], truncate=truncate,
                                                   cancelled=_cancelled(request_id))
    flat = array.array("f")
    for v in vectors:
        flat.extend(v)
    return {"vectors": flat, "dimensions": embedder.dimensions, "prompt_tokens": tokens}


def _messages(prompt) -> str | list[dict]:
    """A prompt from JS: a string, or canonical messages [{role, content, prefix?}] (session.js)."""
    return prompt if isinstance(prompt, str) else [dict(m) for m in prompt]


def _overflow_hook(on_event):
    if on_event is None:
        return None
    return lambda dropped: on_event(_compat.to_js({"type": "contextoverflow", "dropped": dropped}))


async def _stream(sid: int, request_id: int, start: Callable[[Session], AsyncIterator[str]]) -> AsyncIterator[str]:
    """The pieces of start(session), closed here however the caller stops (the session's queue is
    released at once, not when a generator is collected)."""
    _running.add(request_id)
    _finished.pop(sid, None)
    try:
        async with contextlib.aclosing(start(_session(sid))) as pieces:
            async for piece in pieces:
                yield piece
        _kept(sid, request_id)
    except Exception as e:
        raise _failed(e, request_id) from e
    finally:
        _running.discard(request_id)
        _aborted.discard(request_id)


def prompt_streaming(sid: int, prompt, options: dict, on_event, request_id: int) -> AsyncIterator[str]:
    """Stream an answer. An exchange the page aborts is dropped from the history (the Prompt API's
    abort); on_event(JS object) hears contextoverflow. With tools, only the answer's text streams:
    its calls are in stats() (tool_calls), for session.js's tool loop."""
    return _stream(sid, request_id, lambda s: _text_only(s, s.prompt_streaming(
        _messages(prompt), keep_partial=False, on_overflow=_overflow_hook(on_event), cancelled=_cancelled(request_id),
        **dict(options))))


async def _text_only(session: Session, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """The text of an answer, without its tool-call blocks (when the session has tools)."""
    if not session.tools:
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece
        return
    split = CallStream()
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            for event in split.push(piece):
                if event[0] == "text" and event[1]:
                    yield event[1]


@_calls
async def append(sid: int, prompt, on_event, request_id: int) -> int:
    session = _session(sid)
    _finished.pop(sid, None)
    await session.append(_messages(prompt), on_overflow=_overflow_hook(on_event), cancelled=_cancelled(request_id))
    _kept(sid, request_id)
    return session.context_usage


@_calls
async def measure(sid: int, prompt, options: dict, request_id: int) -> int:
    return _session(sid).measure(_messages(prompt), **dict(options))


@_calls
async def clone(sid: int, request_id: int) -> dict:
    other = await _session(sid).clone_when_idle()
    new = next(_ids)
    _sessions[new] = other
    return {"session": new, "context_window": other.context_window, "context_usage": other.context_usage}


def complete_streaming(sid: int, messages, options: dict, tools, request_id: int) -> AsyncIterator[str]:
    """OpenAI-style: answer the whole conversation `messages` on session `sid`, whose history is
    replaced by it. The session's KV cache still holds the last request's tokens, so a conversation
    that grows request by request only computes its new tokens."""
    msgs = [dict(m) for m in messages]
    return _stream(sid, request_id, lambda s: _text_only(s, s.prompt_streaming(
        msgs[-1:], keep_partial=False, history=msgs[:-1], tools=[dict(t) for t in tools] if tools else None,
        cancelled=_cancelled(request_id), **dict(options))))


def completion(sid: int) -> dict:
    """The last answer of a completion session: stats, its text split into content and tool calls."""
    s = _session(sid)
    out = stats(sid)
    text = s.messages[-1]["content"] if s.messages and s.messages[-1]["role"] == "assistant" else ""
    out["content"] = text
    return out


def stats(sid: int) -> dict:
    s = _session(sid)
    out = s.last.to_dict() if s.last else {}
    out["context_usage"] = s.context_usage  # the one definition: the conversation as the template renders it
    out["tool_calls"] = [dict(c) for c in s.last_tool_calls]  # [{id, name, arguments: JSON text}]
    return out


def resources() -> dict:
    """What this worker holds (llm.resources()): sessions, calls running, JS objects Python owns."""
    from .backends.ort_web import WebSampler, WebState

    return {"sessions": len(_sessions), "running": len(_running), "handles": WebState.live + WebSampler.live}


def undo_last(sid: int) -> None:
    """The page aborted a prompt or append of `sid` that had already finished here: drop it."""
    session = _sessions.get(sid)
    if session is not None:
        session.undo_last()


def close_session(sid: int) -> None:
    """(Not named destroy: PyProxy.destroy() would shadow it when JS calls api.destroy.)"""
    _finished.pop(sid, None)
    session = _sessions.pop(sid, None)
    if session is not None:
        session.close()


def tokenize(sid: int, texts: list[str]) -> list[list[int]]:
    tok = _session(sid).model.tokenizer
    return [tok.encode(t) for t in texts]
