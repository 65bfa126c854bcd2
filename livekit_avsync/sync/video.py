"""Video output pacing: which frame leaves when, given when each media time plays.

A frame leaves when its due time (the wall time its media time plays, from the audio clock) comes.
When several are due at once the newest leaves and the rest count as dropped late; when none is due
for a frame period the last one is repeated so receivers never stall. A repeat is skipped when the
next real frame is due within half a period, so content slower than the output rate (25 fps into
30) leaves at its own time instead of jittering against a fixed grid.

The rate cap is a credit (token bucket): credit accrues at the output rate up to ``_BURST`` frames
and every send spends one, so the average rate never exceeds ``fps`` while each frame still leaves
at its own due time. A fixed send grid would not do: one late wake-up would move the grid, and
every later frame would stay late by the same amount for good.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Decision", "QueuedFrame", "VideoScheduler"]

_DUE_SLACK = 0.002  # s: a frame due this close to now leaves now (timers fire a little late)
_BURST = 2.0  # frames of rate credit that may accrue (lets a frame follow a repeat on time)
_MIN_GAP = 0.5  # periods between any two sends


@dataclass(slots=True)
class QueuedFrame:
    """A video frame waiting in the queue, at session media time ``ts``."""

    ts: float
    frame: Any
    raw_ts: float | None = None


@dataclass(slots=True)
class Decision:
    """What the output loop should do now: send a frame, repeat the last one, or wait."""

    action: Literal["send", "repeat", "wait"]
    frame: QueuedFrame | None = None
    dropped: int = 0
    wake_at: float = 0.0


class VideoScheduler:
    """Pure pacing logic; the synchronizer's output loop runs it on the real clock."""

    def __init__(self, fps: float) -> None:
        if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"video_fps must be positive, got {fps!r}")
        self.period = 1.0 / fps
        self._queue: deque[QueuedFrame] = deque()
        self.last: QueuedFrame | None = None
        self._last_sent_at: float | None = None
        self._credit = _BURST
        self._credit_at = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, item: QueuedFrame) -> None:
        if self._queue and item.ts < self._queue[-1].ts:
            item.ts = self._queue[-1].ts  # keep presentation order; the aligner counts these
        self._queue.append(item)

    def clear(self) -> int:
        """Drop every queued frame; returns how many."""
        n = len(self._queue)
        self._queue.clear()
        return n

    def newest_ts(self) -> float | None:
        return self._queue[-1].ts if self._queue else None

    def oldest_ts(self) -> float | None:
        return self._queue[0].ts if self._queue else None

    def reset_pacing(self) -> None:
        self._last_sent_at = None
        self._credit = _BURST

    def _credit_now(self, now: float) -> float:
        if self._last_sent_at is None:
            return _BURST
        return min(_BURST, self._credit + (now - self._credit_at) / self.period)

    def send_wait(self, now: float) -> float:
        """Seconds until the rate cap lets a frame leave (0: now); for frames sent outside
        :meth:`decide`, such as the rest frame at an interrupt."""
        last = self._last_sent_at
        if last is None:
            return 0.0
        credit = self._credit_now(now)
        need = (1.0 - credit) * self.period if credit < 1.0 - 1e-9 else 0.0
        return max(last + _MIN_GAP * self.period - now, need, 0.0)

    def mark_sent(self, now: float) -> None:
        """A frame left outside :meth:`decide`: it spends rate credit like any other."""
        self._mark_sent(now)

    def _mark_sent(self, now: float) -> None:
        self._credit = self._credit_now(now) - 1.0
        self._credit_at = now
        self._last_sent_at = now

    def decide(self, now: float, due_of: Callable[[float], float]) -> Decision:
        """Next step at wall time ``now``; ``due_of(ts)`` is the wall time media ``ts`` plays."""
        period = self.period
        last = self._last_sent_at
        q = self._queue
        if last is not None and now < last + _MIN_GAP * period:
            nearest = min(due_of(q[0].ts), last + period) if q else last + period
            return Decision("wait", wake_at=max(last + _MIN_GAP * period, nearest))
        credit = self._credit_now(now)
        if q and due_of(q[0].ts) <= now + _DUE_SLACK:
            if credit < 1.0 - 1e-9:
                return Decision("wait", wake_at=now + max((1.0 - credit) * period, 0.0005))
            chosen = q.popleft()
            dropped = 0
            while q and due_of(q[0].ts) <= now + _DUE_SLACK:
                chosen = q.popleft()
                dropped += 1
            self.last = chosen
            self._mark_sent(now)
            return Decision("send", frame=chosen, dropped=dropped)
        next_due = due_of(q[0].ts) if q else None
        if self.last is None:
            return Decision("wait", wake_at=next_due if next_due is not None else now + period)
        grid = (last if last is not None else now) + period
        quiet_slot = next_due is None or next_due > now + period / 2
        if now >= grid and quiet_slot and credit >= 1.0 - 1e-9:
            self._mark_sent(now)
            return Decision("repeat", frame=self.last)
        wake = grid if now < grid else now + period / 2
        if next_due is not None:
            wake = min(wake, next_due)
        return Decision("wait", wake_at=max(wake, now + 0.0005))
