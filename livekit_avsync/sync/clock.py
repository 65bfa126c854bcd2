"""Clocks the scheduling core runs on: the real monotonic clock, or a fake one for tests."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "MonotonicClock"]


class Clock(Protocol):
    """Anything with ``now()`` in seconds on a monotonic scale."""

    def now(self) -> float: ...


class MonotonicClock:
    """``time.monotonic()``: the clock ``rtc.AudioSource`` itself uses for its queue estimate."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to, for deterministic tests of the core."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        return self._now
