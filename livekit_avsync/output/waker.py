"""Sleep until a deadline or a nudge: how the synchronizer's loops wait, on the injected clock."""

from __future__ import annotations

import asyncio
import math

from ..sync.clock import Clock

__all__ = ["Waker"]


class Waker:
    """Lets one loop sleep until a deadline or a nudge, with one future and one timer per sleep.

    Cheaper than a Task around ``Event.wait`` per sleep, and cancellation-safe: the loop awaits a
    plain future. A nudge while the loop is awake is dropped; loops decide synchronously before
    they sleep, so there is nothing to miss.
    """

    __slots__ = ("_clock", "_fut", "deadline")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._fut: asyncio.Future[None] | None = None
        self.deadline = math.inf  # clock time the current sleep ends (inf: awake or idle)

    @property
    def idle(self) -> bool:
        """Asleep with no deadline: only a wake-up gets the loop going again."""
        return self._fut is not None and self.deadline == math.inf

    def wake(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def sleep(self, timeout: float | None) -> None:
        """Sleep up to ``timeout`` seconds (None: until woken)."""
        if timeout is not None and timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        fut = self._fut = loop.create_future()
        timer = loop.call_later(timeout, _resolve, fut) if timeout is not None else None
        self.deadline = self._clock.now() + timeout if timeout is not None else math.inf
        try:
            await fut
        finally:
            self._fut = None
            self.deadline = math.inf
            if timer is not None:
                timer.cancel()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
