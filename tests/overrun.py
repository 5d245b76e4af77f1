"""A test that runs past its limit fails with a report of where it stood, instead of holding the run
until CI's own limit ends it with nothing said.

Playwright's sync API waits without a limit in page.evaluate(); a promise that never settles in a
page would hold the whole suite. When a test (its fixtures included) runs past LIMIT_S, this
watchdog thread reports, for every open page and each of its iframes: the URL, the visible text,
the Web Locks held and waited for, llm.timeline()'s open and last spans (the worker's start-up
stages, or "no answer" when the worker's thread is busy or blocked), and whether
each worker still runs JavaScript at all. Python's own stacks follow. Then it closes those pages,
so that the stuck call raises in the test (which fails) and the run goes on to the next one.

The calls go to Playwright's event loop from this thread (run_coroutine_threadsafe on the pages'
async objects): the test's thread is blocked in that loop, which keeps running them.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import io
import json
import os
import tempfile
import threading

LIMIT_S = float(os.environ.get("NOMOAT_TEST_LIMIT_S", "300"))
ASK_S = 10  # each question to a page or worker

PAGE_STATE = """async () => {
  const t = (p) => Promise.race([p, new Promise((r) => setTimeout(() => r("no answer in 5 s"), 5000))]);
  const llm = /** @type {any} */ (window).llm;
  const spans = llm?.timeline ? await t(llm.timeline().catch((e) => "error: " + e)) : "no llm.timeline";
  return {
    text: (document.body?.innerText || "").slice(-600),
    iframes: document.querySelectorAll("iframe").length,
    locks: navigator.locks ? await t(navigator.locks.query()) : "no Web Locks",
    open: Array.isArray(spans) ? spans.filter((s) => s.end === null) : spans,
    last: Array.isArray(spans) ? spans.slice(-6) : [],
  };
}"""


def _ask(obj, expression: str):
    try:
        return asyncio.run_coroutine_threadsafe(obj._impl_obj.evaluate(expression, None), obj._loop).result(ASK_S)
    except Exception as e:  # noqa: BLE001 (a report: whatever happened is the answer)
        return f"no answer: {type(e).__name__}: {str(e)[:200]}"


def _open_pages() -> list:
    try:
        from playwright.sync_api import Page
    except ImportError:
        return []
    return [o for o in gc.get_objects() if isinstance(o, Page) and not o.is_closed()]


def report_and_unblock(nodeid: str) -> str:
    """The report of where the test stood; the pages are closed after it is taken."""
    out = io.StringIO()
    out.write(f"\n=== watchdog: {nodeid} ran past {LIMIT_S:.0f} s ===\n")
    pages = _open_pages()
    for page in pages:
        for frame in page.frames:  # the page, then its iframes (each may have an llm of its own)
            out.write(f"--- {'page' if frame == page.main_frame else 'iframe'} {frame.url}\n")
            out.write(json.dumps(_ask(frame, PAGE_STATE), default=str)[:4000] + "\n")
        for w in page.workers:
            alive = _ask(w, "() => 'runs JavaScript'")
            out.write(f"    worker {w.url}: {alive}\n")
    out.write("--- Python's threads\n")
    out.write(_stacks())
    for page in pages:
        closing = page._impl_obj.close(run_before_unload=False, reason="the watchdog closed it")
        try:
            asyncio.run_coroutine_threadsafe(closing, page._loop).result(ASK_S)
        except Exception as e:  # noqa: BLE001
            out.write(f"could not close {page.url}: {e}\n")
    out.write("=== watchdog: pages closed; the test fails and the run goes on ===\n")
    return out.getvalue()


def _stacks() -> str:
    with tempfile.TemporaryFile("w+") as f:  # faulthandler writes to a real file
        faulthandler.dump_traceback(file=f, all_threads=True)
        f.seek(0)
        return f.read()


class Watchdog:
    """One timer per test: armed when the test's setup starts, disarmed when its teardown ends.
    The report goes to the terminal at once, past pytest's capture (`say`)."""

    def __init__(self, say) -> None:
        self.timer: threading.Timer | None = None
        self.say = say

    def fire(self, nodeid: str) -> None:
        self.say(report_and_unblock(nodeid))

    def arm(self, nodeid: str) -> None:
        self.disarm()
        self.timer = threading.Timer(LIMIT_S, self.fire, args=(nodeid,))
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer:
            self.timer.cancel()
            self.timer = None
