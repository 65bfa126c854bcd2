"""Shared fixtures: the leak check, and the real LiveKit server of the end-to-end tests."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Generator, Iterator

import e2e_server
import pytest


def pytest_configure(config: pytest.Config) -> None:
    e2e_server.prepare()  # before any thread: it may move this process into a private netns


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = e2e_server.unavailable()
    if reason is not None:
        terminalreporter.write_line(f"e2e tests skipped: {reason}")


_AST_RACE = "AST constructor recursion depth mismatch"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report a failure even when CPython 3.11's AST race hits pytest's traceback formatting.

    ``ast.parse`` keeps its recursion depth per interpreter, not per call (CPython gh-106905):
    when another parse runs in between (another thread's, or a finalizer's that logs a traceback
    from a garbage collection inside the parse: 3.11's traceback carets parse too), the outer
    parse raises ``SystemError``, and pytest, formatting a failure, dies with INTERNALERROR and
    hides which test failed (seen twice in CI, on 3.11.7). It is momentary: format it again.
    """
    try:
        return (yield)
    except SystemError as exc:
        if _AST_RACE not in str(exc):
            raise
    for _ in range(4):
        try:
            return pytest.TestReport.from_item_and_call(item, call)
        except SystemError as exc:
            if _AST_RACE not in str(exc):
                raise
    return pytest.TestReport.from_item_and_call(item, call)  # the fifth try raises what it meets


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[e2e_server.ServerInfo]:
    """A real LiveKit server (see ``e2e_server``); stopped when the session ends."""
    info = e2e_server.start()
    yield info
    if info.local is not None:
        info.local.stop()


@pytest.fixture
async def no_leaked_tasks():
    """Fails the test if it leaves asyncio tasks of its own running."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0.05)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"tasks still running: {[t.get_name() for t in leaked]}"


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect each test's garbage right after it, at a moment that holds no lock.

    livekit-rtc's ``AudioStream.__del__`` takes the FFI queue's lock, and the FFI thread logs
    under that lock while a subscriber's event loop is closed (an earlier test's). When the
    cyclic collector ran a stream's ``__del__`` inside a logging call of the main thread, both
    threads waited for each other's lock and the suite hung (seen once in CI). Collecting here
    runs those finalizers outside any logging call and removes the closed loops' subscribers.
    """
    yield
    gc.collect()
