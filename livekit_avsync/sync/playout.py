"""A model of what the AudioSource plays, and when: the master clock of the synchronizer.

Every chunk handed to the native source is recorded with the wall time it starts and ends playing
(it starts when everything handed before it has played). From that record the model answers which
media time is playing now (the playhead), when a given media time plays, how much is still queued,
and how much audio has really been played.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["AudioPlayout", "PlayedSegment"]

_EMIT_WINDOW = 30  # emission reports (~300 ms of 10 ms ticks) whose best one judges the model
_EARLY_S = 0.02  # even the best report of a window this much after the model: it runs early
_LATE_S = -0.01  # a report this much before the model's time: it runs late (else impossible)
_PHASE_S = 0.003  # where a right model has a report: within a tick of it, plus the delivery


@dataclass(slots=True)
class PlayedSegment:
    """One chunk handed to the source: media range [media_start, media_end) and its wall times."""

    media_start: float
    media_end: float
    wall_start: float
    wall_end: float
    quiet: bool
    raw_offset: float  # session media time minus the producer's own timestamp

    def media_at(self, wall: float) -> float:
        span = self.wall_end - self.wall_start
        if span <= 0:
            return self.media_end
        frac = min(max((wall - self.wall_start) / span, 0.0), 1.0)
        return self.media_start + frac * (self.media_end - self.media_start)

    def wall_at(self, media: float) -> float:
        span = self.media_end - self.media_start
        if span <= 0:
            return self.wall_start
        frac = min(max((media - self.media_start) / span, 0.0), 1.0)
        return self.wall_start + frac * (self.wall_end - self.wall_start)


class AudioPlayout:
    """Playout timeline of the native audio queue, on wall time from an injected clock.

    ``latency`` is the constant delay between a chunk starting to play in the model and it leaving
    the source (measured ~3 ms in loopback). History older than ``history`` seconds is pruned so
    memory stays flat.
    """

    def __init__(self, *, latency: float = 0.0, history: float = 2.0) -> None:
        self._latency = latency
        self._history = history
        self._segments: deque[PlayedSegment] = deque()
        self._play_end = 0.0  # wall time the last handed chunk finishes
        self._handed = 0.0  # seconds of audio handed over, ever
        self._discarded = 0.0  # seconds handed over but cleared before they played
        self._cleared = False  # the next gap follows a clear, not an underrun
        self._detached = False  # cleared: the clock is undefined until the next chunk is handed
        self.underruns = 0
        self.corrections = 0  # times the model was moved to what the source was seen to emit
        self._best_report = float("inf")  # smallest (report - model) time in this window...
        self._reports = 0  # ...of this many reports

    def hand(
        self,
        now: float,
        media_start: float,
        media_end: float,
        duration: float,
        *,
        quiet: bool = False,
        raw_offset: float = 0.0,
    ) -> PlayedSegment:
        """Record a chunk of ``duration`` seconds handed to the source at ``now``."""
        start = now + self._latency
        if self._segments and self._play_end > start:
            start = self._play_end
        elif self._segments and not self._cleared and 0.005 < start - self._play_end < 1.0:
            self.underruns += 1  # the queue ran dry mid-stream
        self._cleared = False
        self._detached = False
        seg = PlayedSegment(media_start, media_end, start, start + duration, quiet, raw_offset)
        self._segments.append(seg)
        self._play_end = seg.wall_end
        self._handed += duration
        while len(self._segments) > 1 and self._segments[0].wall_end < now - self._history:
            self._segments.popleft()
        return seg

    @property
    def live(self) -> bool:
        """Audio defines the clock: handed over, and not cleared since.

        After a clear the playhead must not run on from what was dropped, or media pushed after
        the clear would be timed (and waited for) as if the dropped media still played first.
        """
        return bool(self._segments) and not self._detached

    @property
    def never_handed(self) -> bool:
        """No audio has been handed over yet: the clock is still undefined."""
        return self._handed == 0.0 and not self._segments

    def queued(self, now: float) -> float:
        """Seconds handed over that have not played yet."""
        return max(0.0, self._play_end - now)

    def played(self, now: float) -> float:
        """Seconds of audio that have really played out since creation."""
        return self._handed - self._discarded - self.queued(now)

    def current(self, now: float) -> PlayedSegment | None:
        """The segment playing at ``now``, or None when the source is silent."""
        for seg in reversed(self._segments):
            if seg.wall_start <= now < seg.wall_end:
                return seg
            if seg.wall_end <= now:
                return None
        return None

    def loud_between(self, media_start: float, media_end: float) -> bool | None:
        """Whether audio over media ``[media_start, media_end)`` is loud; None if none covers it.

        A range, not a point: a video frame's interval judged whole cannot fall into a float
        crack between two chunks, or onto the quiet chunk just before its speech starts.
        """
        covered = False
        for seg in reversed(self._segments):
            if seg.media_end <= media_start:
                break
            if seg.media_start < media_end:
                if not seg.quiet:
                    return True
                covered = True
        return False if covered else None

    def playhead(self, now: float) -> float | None:
        """Media time playing at ``now``; after the last chunk it runs on at real-time rate."""
        if not self._segments:
            return None
        for seg in reversed(self._segments):
            if seg.wall_start <= now:
                if now < seg.wall_end:
                    return seg.media_at(now)
                return seg.media_end + (now - seg.wall_end)
        first = self._segments[0]
        return first.media_start - (first.wall_start - now)

    def wall_time_of(self, media: float) -> float | None:
        """Wall time at which ``media`` plays (or played), following the audio when it covers it."""
        if not self._segments:
            return None
        last = self._segments[-1]
        if media >= last.media_end:
            return last.wall_end + (media - last.media_end)
        for seg in reversed(self._segments):
            if seg.media_start <= media < seg.media_end:
                return seg.wall_at(media)
            if seg.media_end <= media:
                # in a gap between chunks: it plays when the next chunk starts
                return seg.wall_end
        first = self._segments[0]
        return first.wall_start - (first.media_start - media)

    def raw_offset_at(self, now: float) -> float:
        seg = self.current(now)
        if seg is None and self._segments:
            seg = self._segments[-1]
        return seg.raw_offset if seg else 0.0

    def landed(self, seg: PlayedSegment, now: float) -> float:
        """``seg``'s chunk only reached the source at ``now`` (its capture was slow): it cannot
        have started before then. Moves it and every later chunk on; returns by how much.

        Without this the model would stay ahead of what is heard for good after one such
        hiccup (the source ran dry and played the chunk late), and video would lead the sound.
        """
        delta = now + self._latency - seg.wall_start
        if delta <= 0 or not self._shift_from(seg, delta):
            return 0.0
        self.underruns += 1  # the source ran dry before it
        return delta

    def emitted(self, seg: PlayedSegment, offset: float, now: float) -> float:
        """The source's own track showed, at ``now``, the audio ``offset`` s into ``seg``
        (the first sample of a 10 ms tick). Moves the model to it when it is off; returns the
        move (+ later).

        A report comes at or after its emission (it is delivered through the event loop), so
        one report earlier than the model proves the model late; a model early shows as every
        report of a window coming late, which a slow loop alone does not do (its backlog
        arrives in a burst). Without this, a source whose ticks fell behind (its native thread
        starved on a busy machine) leaves the model, and so the video, ahead of the sound. A
        chunk seen sooner than modelled also shortens ``latency``, which placed it.
        """
        if self._detached or offset > seg.wall_end - seg.wall_start:
            return 0.0
        lag = now - (seg.wall_start + offset)
        if lag >= _LATE_S:
            self._best_report = min(self._best_report, lag)
            self._reports += 1
            if self._reports < _EMIT_WINDOW:
                return 0.0
            lag, self._best_report, self._reports = self._best_report, float("inf"), 0
            if lag <= _EARLY_S:
                return 0.0
        delta = lag - _PHASE_S
        if not self._shift_from(seg, delta):
            return 0.0
        if delta < 0:  # a chunk played sooner than modelled: the latency estimate is too long
            self._latency = max(0.0, self._latency + delta)
        self.corrections += 1
        return delta

    def _shift_from(self, seg: PlayedSegment, delta: float) -> bool:
        """Move ``seg`` and every later segment by ``delta`` s; False if ``seg`` is gone."""
        for i in range(len(self._segments) - 1, -1, -1):
            if self._segments[i] is seg:
                break
        else:
            return False
        for k in range(i, len(self._segments)):
            self._segments[k].wall_start += delta
            self._segments[k].wall_end += delta
        self._play_end += delta
        self._best_report, self._reports = float("inf"), 0  # judged on the new model next
        return True

    def rewind(self, now: float) -> list[PlayedSegment]:
        """Take back the segments that have not started playing (a pause), newest last."""
        taken: list[PlayedSegment] = []
        while self._segments and self._segments[-1].wall_start >= now:
            taken.append(self._segments.pop())
        taken.reverse()
        for seg in taken:
            self._handed -= seg.wall_end - seg.wall_start
        self._play_end = self._segments[-1].wall_end if self._segments else now
        self._cleared = True
        self._best_report, self._reports = float("inf"), 0
        return taken

    def unhand(self, seconds: float) -> None:
        """Correct what a :meth:`rewind` took back: ``seconds`` more (or, if negative, fewer) of
        the audio handed had not played (a pause measured exactly what the source emitted)."""
        self._handed -= seconds

    def clear(self, now: float) -> None:
        """Everything not yet played is dropped (the source's queue was cleared at ``now``)."""
        self._discarded += self.queued(now)
        while self._segments and self._segments[-1].wall_start >= now:
            self._segments.pop()
        if self._segments and self._segments[-1].wall_end > now:
            seg = self._segments[-1]
            seg.media_end = seg.media_at(now)
            seg.wall_end = now
        self._play_end = min(self._play_end, now)
        self._cleared = True
        self._detached = True
        self._best_report, self._reports = float("inf"), 0
