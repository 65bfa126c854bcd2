"""Shared fixtures: the leak check, and the real LiveKit server of the end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import e2e_server
import pytest


def pytest_configure(config: pytest.Config) -> None:
    e2e_server.prepare()  # before any thread: it may move this process into a private netns


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = e2e_server.unavailable()
    if reason is not None:
        terminalreporter.write_line(f"e2e tests skipped: {reason}")


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
