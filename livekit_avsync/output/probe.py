"""Reads back what an ``rtc.AudioSource`` really emits, so a pause can take back to the sample.

The source plays its queue in 10 ms ticks and reports neither their phase nor what a clear
dropped. A private local track of the source, read with ``rtc.AudioStream`` at the source's own
rate and channel count (so the samples come back untouched), reports every emitted frame to a
:class:`~livekit_avsync.sync.ledger.PlayedLedger`. The track is never published; the reader
costs one small event per 10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
from livekit import rtc

from ..background import TaskOwner, owned_task
from ..sync.ledger import PlayedLedger

__all__ = ["SourceProbe"]

logger = logging.getLogger("livekit_avsync")

T = TypeVar("T")


class SourceProbe(Generic[T]):
    """The reader of one source's emitted audio; :meth:`aclose` ends it.

    ``on_emitted(tag, sample)`` is called for every frame that matched what was handed: the
    chunk and the sample in it where the frame began, as it is read (so, when it was emitted
    or a little later).
    """

    def __init__(
        self,
        source: rtc.AudioSource,
        ledger: PlayedLedger[T],
        *,
        owner: TaskOwner,
        on_emitted: Callable[[T, int], Any] | None = None,
    ) -> None:
        self._ledger = ledger
        self._on_emitted = on_emitted
        track = rtc.LocalAudioTrack.create_audio_track("avsync-playout-probe", source)
        # opened now, before the first capture, so no emitted frame is missed
        self._stream = rtc.AudioStream(
            track, sample_rate=source.sample_rate, num_channels=source.num_channels
        )
        self.alive = True
        self._task = owned_task(owner, self._read(), name="avsync-playout-probe")

    async def _read(self) -> None:
        try:
            async for event in self._stream:
                began = self._ledger.report(np.frombuffer(event.frame.data, dtype=np.int16))
                if began is not None and self._on_emitted is not None:
                    self._on_emitted(*began)
        except asyncio.CancelledError:
            raise
        except Exception:
            # pauses fall back to the playout model; the synchronizer itself carries on
            logger.exception("AVSynchronizer: the playout probe failed; pauses are estimated")
        finally:
            self.alive = False

    async def aclose(self) -> None:
        self.alive = False
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._stream.aclose()
