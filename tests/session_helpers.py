"""Small helpers shared by the tests that drive a real AgentSession through an AvatarSession."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest
from livekit import rtc


async def as_stream(frames: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    """Frames as the audio stream ``session.say(..., audio=...)`` takes."""
    for frame in frames:
        yield frame


async def closed(aw: Awaitable[None], what: str) -> None:
    """Close something; fail (instead of hanging) if it does not finish within 5 s.

    ``asyncio.wait`` is used rather than ``wait_for``: on Python 3.11 ``wait_for`` returns
    normally when the cancelled awaitable swallows its cancellation, hiding the hang.
    """
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=5)
    if not done:
        task.cancel()
        pytest.fail(f"closing {what} did not finish within 5 s")
    task.result()
