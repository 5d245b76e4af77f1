"""The Python end of nomoat's browser worker (Pyodide only; web/src/worker.mjs calls it).

Sessions live here by id. Errors leave as `nomoat-error {json}` so the JS side can rebuild
them as the DOMException names the Prompt API uses (errors.NomoatError.dom_name).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator

from .errors import ContextOverflowError, NomoatError
from .model import Model, load_web
from .session import Session

_models: dict[tuple[str, str], Model] = {}
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
        _models[key] = await load_web(model_url, device, request_id)
    model = _models[key]
    opts = dict(options)
    messages = opts.pop("initial_prompts", None)
    session = model.session(system=opts.pop("system", None), messages=messages, **opts)
    sid = next(_ids)
    _sessions[sid] = session
    return {"session": sid, "context_window": model.context_window, "context_usage": session.context_usage}


async def prompt_streaming(sid: int, text: str, options: dict) -> AsyncIterator[str]:
    session = _session(sid)
    try:
        async for piece in session.prompt_streaming(text, **dict(options)):
            yield piece
    except Exception as e:
        raise _as_dom_error(e) from e


def stats(sid: int) -> dict:
    s = _session(sid)
    out = s.last.to_dict() if s.last else {}
    out["context_usage"] = s.context_usage  # the one definition: the conversation as the template renders it
    return out


def close_session(sid: int) -> None:
    """(Not named destroy: PyProxy.destroy() would shadow it when JS calls api.destroy.)"""
    _sessions.pop(sid, None)


def tokenize(sid: int, texts: list[str]) -> list[list[int]]:
    tok = _session(sid).model.tokenizer
    return [tok.encode(t) for t in texts]
