"""Shared fixtures: real LiveKit sources read back through loopback streams."""

from __future__ import annotations

import asyncio

import pytest


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
