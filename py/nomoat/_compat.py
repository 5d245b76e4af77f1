"""Pyodide or CPython, decided once. Nothing else in nomoat asks which world it runs in."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

IS_PYODIDE = sys.platform == "emscripten"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel, JupyterLite's Pyodide kernel), not a terminal IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


_runtime = None


async def js_runtime():
    """nomoat's JS runtime (web/src/runtime.mjs) as the module `nomoat_js`.

    nomoat's own worker registers it before Python runs. Any other Pyodide host (a JupyterLite
    kernel) gets it loaded here from the runtime files' URL: $NOMOAT_ASSETS (os.environ), else
    "nomoat/" next to the page that started this Python. Download progress goes to stdout."""
    global _runtime
    if _runtime is not None:
        return _runtime
    try:
        import nomoat_js  # registered by nomoat's worker

        _runtime = nomoat_js
        return _runtime
    except ImportError:
        pass
    import os

    import js
    import pyodide_js
    from pyodide.code import run_js

    base = str(js.URL.new(os.environ.get("NOMOAT_ASSETS", "nomoat/"), js.location.href).href)
    if not base.endswith("/"):
        base += "/"
    module = await run_js(f"import({base + 'runtime.mjs'!r})")
    assets = {"ort": base + "ort/", "pyodide": base + "pyodide/"}
    _runtime = module.createRuntime(to_js({"assets": assets, "progress": _print_progress}))
    pyodide_js.registerJsModule("nomoat_js", _runtime)
    return _runtime


def default_model_url() -> str:
    """Browser: $NOMOAT_MODEL (os.environ), else the default model next to the runtime files."""
    import os

    return os.environ.get("NOMOAT_MODEL") or model_url("SmolLM2-135M-Instruct")


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a bare model name, as web/src/llm.js's MODEL_NAME


def model_url(model: str) -> str:
    """Browser: a bare model name ("all-MiniLM-L6-v2") is models/NAME/ next to the runtime files
    ($NOMOAT_ASSETS, else "nomoat/" next to the page), as llm.js's modelURL; a URL is kept as given."""
    import os

    import js

    if not MODEL_NAME.fullmatch(model):
        return model
    assets = js.URL.new(os.environ.get("NOMOAT_ASSETS", "nomoat/"), js.location.href)
    return str(js.URL.new(f"models/{model}/", assets).href)


def _print_progress(request_id, p) -> None:
    if p.stage == "download" and p.total:
        print(f"\rnomoat: downloading the model {p.loaded / 2**20:.0f} / {p.total / 2**20:.0f} MB", end="",
              flush=True)
        if p.loaded >= p.total:
            print()


_from_entries = None  # JS's Object.fromEntries from nomoat's runtime, on first use (never in a snapshot)


def _object_from_entries():
    """JS's Object.fromEntries from nomoat's JS runtime (`nomoat_js.fromEntries`), not through Python's
    `js` module: in the worker that makes Python's memory snapshot (Pyodide's snapshot-making mode) `js` is
    a Proxy that wraps every object read through it anew, which made each to_js ~0.16 ms slower and that
    page's decode ~18 % slower than a page restored from the snapshot (and `run_js` would need eval, which
    an extension's Content Security Policy refuses). Before the runtime exists (JupyterLite makes it with
    to_js) `js` is plain Pyodide's."""
    global _from_entries
    if _from_entries is None:
        try:
            import nomoat_js

            _from_entries = nomoat_js.fromEntries
        except (ImportError, AttributeError):
            from js import Object

            return Object.fromEntries
    return _from_entries


def to_js(value):
    """A Python list/dict as a JS array/object (plain objects, not Maps)."""
    from pyodide.ffi import to_js as _to_js

    return _to_js(value, dict_converter=_object_from_entries())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code (CPython only). Where this thread
    already runs an event loop (Jupyter, a test harness), it runs on a helper thread's loop."""
    if IS_PYODIDE:
        raise RuntimeError("In the browser, await the async API instead of the *_sync wrappers.")
    if not _loop_running():
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def iter_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from synchronous code, one item at a time (CPython only)."""
    if IS_PYODIDE:
        raise RuntimeError("In the browser, use 'async for' instead of the *_sync wrappers.")
    loop = asyncio.new_event_loop()
    thread = None
    if _loop_running():  # this thread's loop is busy: give ours a thread of its own
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

    def run(coro):
        if thread is None:
            return loop.run_until_complete(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    try:
        while True:
            try:
                yield run(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        run(agen.aclose())
        if thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        loop.close()
