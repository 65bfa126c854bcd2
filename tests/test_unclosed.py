"""Objects left running when their event loop ends: one clear warning naming the object and the
fix instead of asyncio's "Task was destroyed but it is pending!" per task; ``async with`` closes."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

import pytest
from livekit import rtc
from sync_helpers import RATE, H, W, tone

from livekit_avsync import AVSynchronizer
from livekit_avsync.background import TaskOwner, owned_task


class _Worker(TaskOwner):
    """A minimal owner: one task waiting on a future only it holds (collectable once the loop
    is gone, as an owner whose tasks wait on its own events is)."""

    def __init__(self) -> None:
        super().__init__()
        self._stop = asyncio.get_running_loop().create_future()
        owned_task(self, self._run(), name="worker-run")

    async def _run(self) -> None:
        await self._stop


def _close_loop_without_cancelling(make: type) -> None:
    loop = asyncio.new_event_loop()

    async def main() -> None:
        make()
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    loop.close()


def test_an_owner_left_running_warns_once_and_asyncio_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="asyncio"),
        warnings.catch_warnings(record=True) as w,
    ):
        warnings.simplefilter("always")
        _close_loop_without_cancelling(_Worker)
        gc.collect()
    ours = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert len(ours) == 1, [str(x.message) for x in w]
    assert ours[0].startswith("_Worker was never closed and its tasks (worker-run)")
    assert "await aclose()" in ours[0]
    assert not [r for r in caplog.records if "Task was destroyed" in r.getMessage()]


async def test_async_with_closes_it_and_nothing_is_reported() -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        async with AVSynchronizer(
            audio_source=rtc.AudioSource(RATE, 1), video_source=rtc.VideoSource(W, H), video_fps=30
        ) as sync:
            await sync.push(tone())
        with pytest.raises(RuntimeError):
            await sync.push(tone())  # closed on leaving the block
        del sync
        gc.collect()
    assert not [x for x in w if issubclass(x.category, ResourceWarning)]
