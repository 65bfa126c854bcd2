"""Timestamps for the frames handed to the VideoSource, and the rate they really leave at. Pure.

A frame is stamped with the media time playing when it leaves, so a receiver sees the same
clock as the audio; where no clock is defined, or the media time jumped (an interrupt, a new
timeline), the stamps carry on by the wall time elapsed instead. Stamps always increase.
"""

from __future__ import annotations

from collections import deque

__all__ = ["FrameStamper"]

_JUMP_US = 500_000  # media time this far from the wall time elapsed: a jump, not drift
_MIN_STEP_US = 1000


class FrameStamper:
    """Stamps (µs) of successive video frames; keeps the last second of send times."""

    def __init__(self, fps: float) -> None:
        self._last_us = -1
        self._last_at = 0.0
        self._base: float | None = None
        self._sends: deque[float] = deque(maxlen=max(2, int(fps)))

    def stamp(self, media: float | None, now: float) -> int:
        """The timestamp of a frame leaving at clock time ``now`` while ``media`` plays."""
        wall_us = self._last_us + int((now - self._last_at) * 1e6)
        if media is None:
            ts_us = wall_us
        else:
            if self._base is None:
                self._base = media
            ts_us = int((media - self._base) * 1e6)
            if self._last_us >= 0 and abs(ts_us - wall_us) > _JUMP_US:
                self._base = media - wall_us / 1e6  # a jump: carry on from the last stamp
                ts_us = wall_us
        ts_us = max(ts_us, self._last_us + _MIN_STEP_US)
        self._last_us = ts_us
        self._last_at = now
        self._sends.append(now)
        return ts_us

    def reset_rate(self) -> None:
        self._sends.clear()

    @property
    def fps(self) -> float:
        """Frames per second stamped over the last second (0 before two frames)."""
        t = self._sends
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])
