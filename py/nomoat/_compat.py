"""Pyodide or CPython, decided once. Nothing else in nomoat asks which world it runs in."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

T = TypeVar("T")

IS_PYODIDE = sys.platform == "emscripten"


def default_backend() -> str:
    return "ort_web" if IS_PYODIDE else "ort_native"


def js_runtime():
    """The worker's JS side (web/src/worker.mjs registers it as the module `nomoat_js`)."""
    import nomoat_js  # only exists inside nomoat's worker

    return nomoat_js


def to_js(value):
    """A Python list/dict as a JS array/object (plain objects, not Maps)."""
    from js import Object
    from pyodide.ffi import to_js as _to_js

    return _to_js(value, dict_converter=Object.fromEntries)


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code (CPython only)."""
    if IS_PYODIDE:
        raise RuntimeError("In the browser, await the async API instead of the *_sync wrappers.")
    return asyncio.run(coro)


def iter_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from synchronous code, one item at a time (CPython only)."""
    if IS_PYODIDE:
        raise RuntimeError("In the browser, use 'async for' instead of the *_sync wrappers.")
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(agen.aclose())
        loop.close()
