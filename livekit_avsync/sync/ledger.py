"""Which samples handed to the audio source have really played, to the sample. Pure.

The native ``AudioSource`` plays its queue in 10 ms ticks whose phase it does not report, so a
model on wall time is up to a tick wrong about what had played when the queue is cleared (a
pause). The ledger instead follows what the source *emitted*, as read back from its own track:
every chunk handed is recorded in order; every frame read back must be the next samples of what
was handed, and confirms them. A clear ends the current *run* (what was still queued is gone);
frames read afterwards that still match that run are late reports of audio that did play before
the clear. A pause takes back the run's unconfirmed samples exactly, once its reports are in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

__all__ = ["PlayedLedger", "Unplayed"]

T = TypeVar("T")

_MAX_HELD_S = 10.0  # a run holding more than this unconfirmed has lost its reader: give up on it


@dataclass(slots=True)
class Unplayed(Generic[T]):
    """A handed chunk (``tag``) whose samples from ``offset`` on never played."""

    tag: T
    offset: int


@dataclass(slots=True)
class _Run(Generic[T]):
    entries: deque[tuple[T, np.ndarray]] = field(default_factory=deque)  # flat interleaved
    head: int = 0  # samples of entries[0] already confirmed
    held: int = 0  # samples handed and not yet confirmed
    closed: bool = False
    lost: bool = False  # a report did not match: this run can no longer be followed

    def matches(self, data: np.ndarray) -> bool:
        need, pos, i = data.size, 0, 0
        if need > self.held:
            return False
        offset = self.head
        while pos < need:
            samples = self.entries[i][1]
            take = min(samples.size - offset, need - pos)
            if not np.array_equal(samples[offset : offset + take], data[pos : pos + take]):
                return False
            pos += take
            offset = 0
            i += 1
        return True

    def confirm(self, count: int) -> None:
        self.held -= count
        while count:
            size = self.entries[0][1].size
            take = min(size - self.head, count)
            count -= take
            self.head += take
            if self.head == size:
                self.entries.popleft()
                self.head = 0


class PlayedLedger(Generic[T]):
    """Follows a source's queue from the frames it emits; ``T`` tags each chunk handed.

    ``channels`` is the interleaving of everything handed and reported. Without reports (no
    reader) nothing is confirmed: :meth:`take_back` then says None and the caller falls back to
    its own estimate.
    """

    def __init__(self, rate: int, channels: int) -> None:
        self._rate = rate
        self._channels = channels
        self._runs: deque[_Run[T]] = deque([_Run()])
        self.reported = 0  # samples per channel confirmed as played, ever
        self.unmatched = 0  # frames read back that matched nothing handed
        self._silent_after_close = 0  # silence ticks read since the last clear or pause

    @property
    def _current(self) -> _Run[T]:
        return self._runs[-1]

    def hand(self, tag: T, samples: np.ndarray) -> None:
        """``samples`` (any shape, interleaved int16) were handed to the source, after the rest."""
        run = self._current
        if run.lost:
            return
        flat = samples.reshape(-1)
        run.entries.append((tag, flat))
        run.held += flat.size
        if run.held > _MAX_HELD_S * self._rate * self._channels:
            run.lost = True  # no reports come: stop holding audio for them
            run.entries.clear()
            run.held = 0

    def report(self, data: np.ndarray) -> tuple[T, int] | None:
        """A frame the source emitted (interleaved int16, read back from its track); returns
        the chunk (tag) and the sample in it where the frame began, if it matched what was handed.

        The source emits a frame of silence on every tick that finds less than 10 ms queued
        (before a capture lands, after a clear): a silent frame that is not the next samples
        handed is such a tick and changes nothing. (Handed digital silence is ambiguous with it;
        being wrong there at worst loses track of the run, and the caller then estimates.)
        """
        data = data.reshape(-1)
        while self._runs:
            run = self._runs[0]
            if not run.lost and run.matches(data):
                began = (run.entries[0][0], run.head // self._channels)
                run.confirm(data.size)
                self.reported += data.size // self._channels
                return began
            if not data.any():
                self._silent_after_close += 1
                return None
            if len(self._runs) == 1:
                if not run.lost and run.held:
                    run.lost = True  # the source played something else: stop following
                    run.entries.clear()
                    run.held = 0
                self.unmatched += 1
                return None
            self._runs.popleft()  # an older run is over: the rest of it was cleared unplayed
        return None

    def clear(self) -> None:
        """The source's queue was cleared: what the current run still held is gone."""
        self._close()

    def pause(self) -> None:
        """The queue was cleared for a pause: its unplayed samples are taken back later."""
        self._close()

    def settled(self, ticks: int = 3) -> bool:
        """The reports of the run the last clear or pause closed are all in: ``ticks`` silence
        ticks came since (the emptied source plays silence, and its frames arrive in order)."""
        return self._silent_after_close >= ticks

    def recleared(self) -> None:
        """The queue was cleared again (a capture in flight at the pause landed after it): the
        reports of what it played before this clear are awaited too."""
        self._silent_after_close = 0

    def _close(self) -> None:
        self._silent_after_close = 0
        run = self._current
        run.closed = True
        self._runs.append(_Run())
        while len(self._runs) > 2 and (self._runs[0].lost or not self._runs[0].held):
            self._runs.popleft()

    def take_back(self) -> list[Unplayed[T]] | None:
        """The chunks (from which sample) that never played of the run the last pause closed,
        in order, once its late reports are in; None if that run could not be followed.

        Call it once the reader has caught up (some tens of ms after the pause); the run is
        forgotten afterwards.
        """
        if len(self._runs) < 2:
            return []
        run = self._runs[-2]
        del self._runs[-2]
        if run.lost:
            return None
        out = [Unplayed(tag, 0) for tag, _ in run.entries]
        if out:
            out[0].offset = run.head // self._channels
        return out
