"""Places every frame on one session media timeline, in either synchronisation mode.

``timestamps``: audio and video carry timestamps on one provider clock; session time is that clock,
re-based on discontinuities (a reset or a leap that arrival times do not explain) so both streams
continue smoothly, and sharing one re-base when both streams jump together.

``auto``: ``timestamps`` when the first frame carries a timestamp, unless the first frames of the
two streams show unrelated clocks (their timestamps differ from their arrival times by more than
``FOREIGN_CLOCK_S`` apart): then ``arrival``, as ``rtc.AVSynchronizer`` callers may pass
timestamps "for logging" only.

``arrival``: the streams' clocks are unrelated (two WebRTC tracks) or absent. Audio is laid end to
end from its arrival time; a video frame belongs to the audio that had arrived by the time it did,
so its session time is the end of the audio pushed so far (its arrival time when none is queued)
plus ``av_offset`` (negative when the provider's video arrives after its audio). When a stream
does carry timestamps of its own clock, its arrival times are de-jittered first: each frame counts
as arriving at its timestamp plus the smallest transit delay seen on that stream recently, the way
a jitter buffer estimates delay, so network jitter does not turn into lip-sync error.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FOREIGN_CLOCK_S", "Aligner", "AlignerState", "SyncMode"]

SyncMode = Literal["auto", "timestamps", "arrival"]

_BACKWARD_JUMP = 0.5  # s: a step back larger than this is a new timeline, smaller is jitter
_TRANSIT_WINDOW = 2.0  # s of history for the smallest-transit (de-jitter) estimate
FOREIGN_CLOCK_S = 3.0
"""s: in ``auto``, first audio and first video whose (timestamp - arrival) differ by more than
this are on unrelated clocks. A provider's lag or burst lead (well under a second) stays inside."""


@dataclass(slots=True)
class _Stream:
    raw_end: float | None = None  # producer timestamp where the stream last ended
    session_end: float | None = None
    arrival: float = 0.0
    offset: float = 0.0  # session = raw + offset
    transits: deque[tuple[float, float]] = field(default_factory=deque)  # (arrival, transit)

    def dejittered(self, raw: float | None, arrival: float) -> float:
        """Arrival time with jitter removed, from the stream's own timestamps when it has them."""
        if raw is None:
            return arrival
        transit = arrival - raw
        q = self.transits
        if q and (transit < q[0][1] - 5.0 or transit > q[0][1] + 5.0):
            q.clear()  # the stream's clock jumped: start the estimate again
        while q and q[-1][1] >= transit:
            q.pop()  # monotonic deque: q[0] holds the window minimum
        q.append((arrival, transit))
        while q[0][0] < arrival - _TRANSIT_WINDOW:
            q.popleft()
        return raw + q[0][1]


AlignerState = tuple[object, ...]
"""An opaque snapshot from :meth:`Aligner.checkpoint`."""


class Aligner:
    """Maps (timestamp, arrival time) of each pushed frame to session media time. Pure.

    A frame that is then dropped (the stale-tail gate) is taken back with :meth:`restore`, so
    dropped media never moves the timeline.
    """

    def __init__(
        self,
        *,
        mode: SyncMode = "auto",
        av_offset: float = 0.0,
        jump_threshold: float = 2.0,
        video_interval: float = 1 / 30,
    ) -> None:
        if mode not in ("auto", "timestamps", "arrival"):
            raise ValueError(f"sync_mode must be 'auto', 'timestamps' or 'arrival', not {mode!r}")
        if jump_threshold <= 0:
            raise ValueError("jump_threshold must be positive")
        self.requested_mode: SyncMode = mode
        self.mode: SyncMode = mode
        self.av_offset = av_offset
        self.jump_threshold = jump_threshold
        self._nominal_interval = video_interval
        self._audio = _Stream()
        self._video = _Stream()
        self._video_interval = video_interval
        self._pending_rebase: tuple[float, float] | None = None  # (offset, arrival) of a jump
        self.missing_timestamps = 0
        self.non_monotonic = 0
        self.jumps = 0
        self.foreign_clocks = False  # auto mode found the two streams' clocks unrelated
        self._first: tuple[str, float] | None = None  # (stream, timestamp - arrival) of frame 1
        self._foreign_first = False  # this stream's first frame is far off the other's clock
        self._shift = 0.0  # arrival mode: session = arrival-based time + shift (see _go_arrival)

    def checkpoint(self) -> AlignerState:
        """Snapshot of the timeline, to :meth:`restore` when the frame just aligned is dropped."""
        a, v = self._audio, self._video
        return (
            (a.raw_end, a.session_end, a.arrival, a.offset),
            (v.raw_end, v.session_end, v.arrival, v.offset),
            self._pending_rebase,
            self.jumps,
            self.non_monotonic,
            self.missing_timestamps,
            (self.mode, self._shift, self.foreign_clocks, self._first),
        )

    def restore(self, state: AlignerState) -> None:
        """Undo what frames aligned since ``state`` did to the timeline (de-jitter history stays:
        a dropped frame's transit time is still a fair observation of the network)."""
        sa, sv, self._pending_rebase, self.jumps, self.non_monotonic, self.missing_timestamps, m = (
            state  # type: ignore[assignment]
        )
        self.mode, self._shift, self.foreign_clocks, self._first = m  # type: ignore[misc]
        for stream, saved in ((self._audio, sa), (self._video, sv)):
            stream.raw_end, stream.session_end, stream.arrival, stream.offset = saved  # type: ignore[misc]

    def rewind_to(self, media: float | None) -> None:
        """An interrupt dropped everything not yet played: in ``arrival`` mode the next frames
        continue from ``media`` (the session time playing now), not after the dropped ones."""
        if self.mode != "arrival" or media is None:
            return
        for s in (self._audio, self._video):
            if s.session_end is not None and s.session_end > media - self._shift:
                s.session_end = media - self._shift

    def reset(self) -> None:
        """Forget both timelines: the next frames start a new one (mode is decided again)."""
        self._audio = _Stream(session_end=self._audio.session_end, arrival=self._audio.arrival)
        self._video = _Stream(session_end=self._video.session_end, arrival=self._video.arrival)
        self._video_interval = self._nominal_interval
        self._pending_rebase = None
        self.mode = self.requested_mode
        self._first = None
        self._foreign_first = False
        self._shift = 0.0

    @property
    def audio_end(self) -> float | None:
        """Session time where the audio pushed so far ends."""
        return self._audio.session_end

    def _resolve(self, stream: str, timestamp: float | None, arrival: float) -> SyncMode:
        if self.mode == "auto":
            self.mode = "timestamps" if timestamp is not None else "arrival"
        if self.mode == "timestamps" and timestamp is not None:
            if self._first is None:
                self._first = (stream, timestamp - arrival)
            elif self._first[0] != stream:
                lead = self._first[1]
                self._first = (stream, lead)  # one check, at the other stream's first frame
                if abs((timestamp - arrival) - lead) > FOREIGN_CLOCK_S:
                    if self.requested_mode == "auto":
                        self._go_arrival(arrival)
                    else:
                        self._foreign_first = True  # timestamps was asked for: re-base onto it
        return self.mode

    def _go_arrival(self, arrival: float) -> None:
        """Switch to arrival mode mid-stream: the stream already placed keeps its session times,
        arrival-based times are shifted onto them (a shift fixed at the switch)."""
        self.foreign_clocks = True
        self.mode = "arrival"
        placed = self._audio if self._audio.session_end is not None else self._video
        end = placed.session_end if placed.session_end is not None else 0.0
        self._shift = end - max(placed.arrival, arrival)
        for s in (self._audio, self._video):
            if s.session_end is not None:
                s.session_end -= self._shift
            s.raw_end = None
            s.offset = 0.0

    # -- audio ---------------------------------------------------------------------------------

    def audio(
        self, timestamp: float | None, duration: float, arrival: float
    ) -> tuple[float, float, float]:
        """Session (start, end) of an audio frame whose *end* is ``timestamp``, and its offset."""
        s = self._audio
        if self._resolve("audio", timestamp, arrival) == "arrival":
            # an audio frame can only leave once complete: judge its transit from its end time
            begin = s.dejittered(timestamp, arrival) - (duration if timestamp is not None else 0.0)
            start = begin
            if s.session_end is not None and (timestamp is None or begin < s.session_end - 0.1):
                # untimed audio is laid end to end; timed audio keeps its de-jittered label (a
                # slightly overlapping label is fine: playout stays contiguous regardless)
                start = max(s.session_end, begin)
            s.session_end, s.arrival = start + duration, arrival
            return start + self._shift, start + duration + self._shift, 0.0
        if timestamp is None:
            self.missing_timestamps += 1
            raw_start = s.raw_end if s.raw_end is not None else 0.0
        else:
            raw_start = timestamp - duration
        if s.raw_end is None:
            if self._foreign_first and s.session_end is None:
                self._foreign_first = False  # carry on the video's timeline, not its clock
                s.offset = self._rebase(raw_start, s, arrival, self._continuation(s, arrival))
            elif s.session_end is None:
                s.offset = self._video.offset  # first audio: on the same clock as the video
            else:
                s.offset = self._rebase(
                    raw_start, s, arrival, self._continuation(s, arrival, duration)
                )
        else:
            step = raw_start - s.raw_end
            if step < -_BACKWARD_JUMP or step > (arrival - s.arrival) + self.jump_threshold:
                s.offset = self._rebase(
                    raw_start, s, arrival, self._continuation(s, arrival, duration)
                )
            elif step < -0.005:
                self.non_monotonic += 1
                raw_start = s.raw_end  # overlapping audio: lay it after what came before
        start = raw_start + s.offset
        if s.session_end is not None and start < s.session_end:
            start = s.session_end if start > s.session_end - 0.005 else start
        s.raw_end, s.session_end, s.arrival = raw_start + duration, start + duration, arrival
        return start, start + duration, s.offset

    # -- video ---------------------------------------------------------------------------------

    def video(self, timestamp: float | None, arrival: float) -> tuple[float, float]:
        """Session time of a video frame presented at ``timestamp``, and its offset."""
        v = self._video
        if self._resolve("video", timestamp, arrival) == "arrival":
            base = v.dejittered(timestamp, arrival)
            if timestamp is None and self._audio.session_end is not None:
                base = max(base, self._audio.session_end)
            ts = base + self.av_offset
            if v.session_end is not None and ts < v.session_end:
                ts = v.session_end  # never present a frame before the one before it
            v.session_end, v.arrival = ts, arrival
            return ts + self._shift, 0.0
        if timestamp is None:
            self.missing_timestamps += 1
            raw = (v.raw_end + self._video_interval) if v.raw_end is not None else 0.0
        else:
            raw = timestamp
        if v.raw_end is None:
            if self._foreign_first and v.session_end is None:
                self._foreign_first = False  # carry on the audio's timeline, not its clock
                v.offset = self._rebase(raw, v, arrival, self._continuation(v, arrival))
            elif v.session_end is None:
                v.offset = self._audio.offset  # first video: on the same clock as the audio
            else:
                v.offset = self._rebase(raw, v, arrival, self._continuation(v, arrival))
        else:
            step = raw - v.raw_end
            if step < -_BACKWARD_JUMP or step > (arrival - v.arrival) + self.jump_threshold:
                v.offset = self._rebase(raw, v, arrival, self._continuation(v, arrival))
            elif step <= 0:
                self.non_monotonic += 1
                raw = v.raw_end  # shown no earlier than the frame before it
            elif step < 4 * self._video_interval:
                self._video_interval += 0.1 * (step - self._video_interval)
        v.raw_end, v.session_end, v.arrival = raw, raw + v.offset, arrival
        return raw + v.offset, v.offset

    # -- discontinuities -----------------------------------------------------------------------

    def _continuation(self, s: _Stream, arrival: float, duration: float = 0.0) -> float:
        """Session time at which a stream that jumped should carry on.

        A video frame follows the previous one by a frame interval; an audio frame of
        ``duration`` follows the previous audio directly. Any extra time that passed between their
        arrivals is kept as a gap.
        """
        if s.session_end is None:
            other = self._audio if s is self._video else self._video
            return other.session_end if other.session_end is not None else 0.0
        step = self._video_interval if s is self._video else duration
        gap = max(0.0, arrival - s.arrival - step)
        return s.session_end + (step if s is self._video else 0.0) + gap

    def _rebase(self, raw: float, s: _Stream, arrival: float, continuation: float) -> float:
        """New offset for a stream that jumped; shared with the other stream if it jumps too."""
        self.jumps += 1
        if self._pending_rebase is not None:
            offset, when = self._pending_rebase
            if (
                abs(arrival - when) < self.jump_threshold
                and abs(raw + offset - continuation) < self.jump_threshold
            ):
                self._pending_rebase = None
                return offset  # the other stream jumped the same way: keep their common clock
        offset = continuation - raw
        self._pending_rebase = (offset, arrival)
        return offset
