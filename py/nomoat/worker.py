"""The Python end of nomoat's browser worker (Pyodide only; web/src/worker.mjs calls it).

Sessions live here by id. Errors leave as `nomoat-error {json}` so the JS side can rebuild
them as the DOMException names the Prompt API uses (errors.NomoatError.dom_name).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator

from . import _compat
from .errors import ContextOverflowError, NomoatError
from .model import load_web
from .session import Session
from .tool_calls import parse_tool_calls

_models: dict[tuple[str, str], asyncio.Task] = {}  # (url, device) → the load, shared by concurrent create()s
_sessions: dict[int, Session] = {}
_ids = iter(range(1, 1 << 62))


def _as_dom_error(e: BaseException) -> RuntimeError:
    js_error = getattr(e, "js_error", None)  # a JS error that passed through Python keeps its name
    if js_error is not None:
        info = {"name": str(js_error.name), "message": str(js_error.message), "extra": {}}
        return RuntimeError("nomoat-error " + json.dumps(info))
    if isinstance(e, NomoatError):
        name = e.dom_name
    elif isinstance(e, (TypeError, ValueError, KeyError)):
        name = "TypeError"
    else:
        name = "OperationError"
    extra = {}
    if isinstance(e, ContextOverflowError):
        extra = {"requested": e.requested, "contextWindow": e.context_window}
    info = {"name": name, "message": str(e) or type(e).__name__, "extra": extra}
    return RuntimeError("nomoat-error " + json.dumps(info))


def _dom_errors(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except Exception as e:
            raise _as_dom_error(e) from e

    return wrapper


def _session(sid: int) -> Session:
    try:
        return _sessions[sid]
    except KeyError:
        raise _as_dom_error(NomoatError(f"Session {sid} was destroyed; create a new one.")) from None


@_dom_errors
async def create(model_url: str, device: str, options: dict, request_id: int | None = None) -> dict:
    """Load (once per URL and device) and open a session. options: system, initial_prompts
    ([{role, content}]), and the sampling options in snake_case."""
    key = (model_url, device)
    if key not in _models:
        _models[key] = asyncio.ensure_future(load_web(model_url, device, request_id))
    try:
        model = await _models[key]
    except BaseException:
        _models.pop(key, None)  # a failed load is tried again by the next create()
        raise
    opts = dict(options)
    messages = opts.pop("initial_prompts", None)
    session = model.session(system=opts.pop("system", None), messages=messages, **opts)
    if session.context_usage > model.context_window:
        raise ContextOverflowError(
            f"The initial prompts take {session.context_usage} tokens; the context window is {model.context_window}. "
            "Shorten them.", requested=session.context_usage, context_window=model.context_window)
    sid = next(_ids)
    _sessions[sid] = session
    return {"session": sid, "context_window": model.context_window, "context_usage": session.context_usage,
            "threads": int(getattr(model.backend.engine, "threads", 1) or 1)}


def _messages(prompt) -> str | list[dict]:
    """A prompt from JS: a string, or canonical messages [{role, content, prefix?}] (session.js)."""
    return prompt if isinstance(prompt, str) else [dict(m) for m in prompt]


def _overflow_hook(on_event):
    if on_event is None:
        return None
    return lambda dropped: on_event(_compat.to_js({"type": "contextoverflow", "dropped": dropped}))


async def prompt_streaming(sid: int, prompt, options: dict, on_event=None) -> AsyncIterator[str]:
    """Stream an answer. An exchange the page aborts is dropped from the history (the Prompt API's
    abort); on_event(JS object) hears contextoverflow."""
    session = _session(sid)
    try:
        async for piece in session.prompt_streaming(_messages(prompt), keep_partial=False,
                                                    on_overflow=_overflow_hook(on_event), **dict(options)):
            yield piece
    except Exception as e:
        raise _as_dom_error(e) from e


@_dom_errors
async def append(sid: int, prompt, on_event=None) -> int:
    session = _session(sid)
    await session.append(_messages(prompt), on_overflow=_overflow_hook(on_event))
    return session.context_usage


@_dom_errors
async def measure(sid: int, prompt, options: dict) -> int:
    return _session(sid).measure(_messages(prompt), **dict(options))


@_dom_errors
async def clone(sid: int) -> dict:
    other = await _session(sid).clone_when_idle()
    new = next(_ids)
    _sessions[new] = other
    return {"session": new, "context_window": other.context_window, "context_usage": other.context_usage}


async def complete_streaming(sid: int, messages, options: dict, tools=None) -> AsyncIterator[str]:
    """OpenAI-style: answer the whole conversation `messages` on session `sid`, whose history is
    replaced by it. The session's KV cache still holds the last request's tokens, so a conversation
    that grows request by request only computes its new tokens."""
    session = _session(sid)
    try:
        msgs = [dict(m) for m in messages]
        async for piece in session.prompt_streaming(msgs[-1:], keep_partial=False, history=msgs[:-1],
                                                    tools=[dict(t) for t in tools] if tools else None,
                                                    **dict(options)):
            yield piece
    except Exception as e:
        raise _as_dom_error(e) from e


def completion(sid: int) -> dict:
    """The last answer of a completion session: stats, its text split into content and tool calls."""
    s = _session(sid)
    out = stats(sid)
    text = s.messages[-1]["content"] if s.messages and s.messages[-1]["role"] == "assistant" else ""
    out["content"], out["tool_calls"] = parse_tool_calls(text) if s.tools else (text, [])
    return out


def stats(sid: int) -> dict:
    s = _session(sid)
    out = s.last.to_dict() if s.last else {}
    out["context_usage"] = s.context_usage  # the one definition: the conversation as the template renders it
    return out


def undo_last(sid: int) -> None:
    """The page aborted a prompt or append of `sid` that had already finished here: drop it."""
    session = _sessions.get(sid)
    if session is not None:
        session.undo_last()


def close_session(sid: int) -> None:
    """(Not named destroy: PyProxy.destroy() would shadow it when JS calls api.destroy.)"""
    session = _sessions.pop(sid, None)
    if session is not None:
        session.close()


def tokenize(sid: int, texts: list[str]) -> list[list[int]]:
    tok = _session(sid).model.tokenizer
    return [tok.encode(t) for t in texts]
