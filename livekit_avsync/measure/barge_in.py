"""Barge-in as a real viewer sees it: the user speaks over the avatar in the room, and the viewer's
own record says when the avatar's speech and open mouth stopped and when its reply began.

:func:`speak_into_room` publishes a microphone track and plays a clip into it in real time (the
user's voice, heard by the agent's VAD). :func:`barge_in_figures` reads a
:class:`~.viewer.ViewerLog` recorded by the same participant's :class:`~.room.RoomViewer`. All
times are ``time.monotonic()``, the capture's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from livekit import rtc

from ..providers.face import FaceRenderer
from .analysis import SyncReport
from .bursts import AudioBurst
from .loopback import MediaCapture
from .room import RoomViewer
from .spec import AVATAR_SPEC, MarkerSpec
from .viewer import ViewerLog

__all__ = [
    "BargeIn",
    "BargeInTurn",
    "BargeInViewer",
    "barge_in_figures",
    "barge_in_turn",
    "speak_into_room",
]

_TURN_SEEN_S = 8.0  # a viewer that missed a turn's start heard it within this much of it
_BURST_EDGE_S = 0.015  # a burst's sound may start this early and end this late at a viewer
_MIN_RUN_S = 0.02  # speech is sustained: shorter runs of loud milliseconds are codec artefacts
_RUN_GAP_S = 0.005  # loud milliseconds this close belong to one run

_FRAME_S = 0.01
_SPEECH_PEAK = 0.14  # an avatar speaking under markers peaks at this fraction of the burst level
_LOUD = 32768.0 * 10 ** (-40 / 20)  # a user frame this loud counts as speech onset
_REPLY_SPAN_S = 5.0  # how long after its start the reply is looked at


@dataclass(frozen=True)
class BargeIn:
    """What the viewer saw of one barge-in (seconds; times on ``time.monotonic()``)."""

    onset: float  # the user's first loud sample went into the microphone
    user_end: float  # the user's last sample went in
    interrupt: float | None  # the agent flushed the avatar (from the worker, if known)
    speech_end: float | None  # the avatar's speech last sounded at the viewer, before the reply
    mouth_closed: float | None  # the first closed-mouth frame after that was on screen
    reply_start: float | None  # the avatar's next turn first sounded at the viewer
    reply_seconds: float  # sound of that turn (first to last loud ms within 5 s)
    stale_seconds: float  # avatar speech heard after interrupt + grace and before the reply

    @property
    def silence_after_interrupt(self) -> float | None:
        """Interrupt -> the avatar's audio silent at the viewer."""
        if self.interrupt is None or self.speech_end is None:
            return None
        return max(0.0, self.speech_end - self.interrupt)

    @property
    def mouth_after_interrupt(self) -> float | None:
        """Interrupt -> the face no longer speaking at the viewer."""
        if self.interrupt is None or self.mouth_closed is None:
            return None
        return max(0.0, self.mouth_closed - self.interrupt)

    @property
    def silence_after_onset(self) -> float | None:
        """The user's speech onset -> the avatar's audio silent at the viewer."""
        return None if self.speech_end is None else self.speech_end - self.onset


async def speak_into_room(
    room: rtc.Room,
    samples: np.ndarray,
    sample_rate: int,
    *,
    then_silence: float = 1.5,
    track_name: str = "user-mic",
) -> tuple[float, float]:
    """Publish a microphone track in ``room`` and play int16 mono ``samples`` into it in real
    time, then ``then_silence`` seconds of silence (a microphone keeps sending: the agent's VAD
    hears the user stop only in what follows).

    Returns ``(onset, end)``: when the first loud frame and the last speech frame went in. The
    track stays published until the room disconnects.
    """
    source = rtc.AudioSource(sample_rate, 1, queue_size_ms=50)
    track = rtc.LocalAudioTrack.create_audio_track(track_name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    step = round(sample_rate * _FRAME_S)
    onset: float | None = None
    for start in range(0, len(samples), step):
        part = np.ascontiguousarray(samples[start : start + step], dtype=np.int16)
        if onset is None and part.size and np.abs(part.astype(np.int32)).max() >= _LOUD:
            onset = time.monotonic()
        await source.capture_frame(rtc.AudioFrame(part.tobytes(), sample_rate, 1, len(part)))
    end = time.monotonic()
    quiet = rtc.AudioFrame(bytes(2 * step), sample_rate, 1, step)
    for _ in range(round(then_silence / _FRAME_S)):
        await source.capture_frame(quiet)
    return (end if onset is None else onset), end


def barge_in_figures(
    log: ViewerLog,
    onset: float,
    user_end: float,
    *,
    interrupt: float | None = None,
    grace: float = 0.1,
    bursts: Sequence[AudioBurst] = (),
    spec: MarkerSpec = AVATAR_SPEC,
) -> BargeIn:
    """Figures of a barge-in from the viewer's log (call once the reply has played).

    The avatar's reply cannot start before the user has finished (the agent waits for the end
    of the user's turn), so speech heard between ``onset`` and ``user_end`` belongs to the cut
    turn and speech after ``user_end`` to the reply. ``grace`` is how long after ``interrupt``
    speech may still arrive (the transport's own latency) before it counts as stale. Sound
    within a detected marker burst (``bursts``, of ``spec``) is marker audio even where a codec
    smeared its edges past the viewer log's tone test, and only sustained sound (runs of at least
    20 ms) is speech: a codec's ringing after a burst is shorter.
    """
    speech = _sustained(_outside_bursts(log.speech_times(), bursts, spec))
    cut = speech[(speech >= onset) & (speech < user_end)]
    speech_end = float(cut.max()) + 0.001 if cut.size else None
    after = speech[speech >= user_end]
    reply_start = float(after.min()) if after.size else None
    reply_seconds = 0.0
    if reply_start is not None:
        reply = after[after < reply_start + _REPLY_SPAN_S]
        reply_seconds = float(reply.max() + 0.001 - reply_start)
    mouth_closed = None
    base = interrupt if interrupt is not None else speech_end
    if base is not None:
        mouth_closed = base + log.mouth_tail(base, user_end)
    stale = 0.0
    if interrupt is not None:
        until = reply_start if reply_start is not None else np.inf
        stale = 0.001 * float(np.count_nonzero((speech > interrupt + grace) & (speech < until)))
    return BargeIn(
        onset=onset,
        user_end=user_end,
        interrupt=interrupt,
        speech_end=speech_end,
        mouth_closed=mouth_closed,
        reply_start=reply_start,
        reply_seconds=reply_seconds,
        stale_seconds=stale,
    )


def _outside_bursts(
    times: np.ndarray, bursts: Sequence[AudioBurst], spec: MarkerSpec
) -> np.ndarray:
    """The loud-millisecond ``times`` that are not within a burst's own span."""
    if not bursts or times.size == 0:
        return times
    onsets = np.sort(np.fromiter((b.time for b in bursts), dtype=np.float64))
    i = np.searchsorted(onsets, times + _BURST_EDGE_S, side="right") - 1
    since = times - onsets[np.clip(i, 0, None)]
    inside = (i >= 0) & (since <= spec.burst_ms / 1000 + _BURST_EDGE_S)
    return times[~inside]


def _sustained(times: np.ndarray) -> np.ndarray:
    """The loud-millisecond ``times`` that belong to runs of at least 20 ms."""
    if times.size == 0:
        return times
    breaks = np.flatnonzero(np.diff(times) > 0.001 + _RUN_GAP_S) + 1
    runs = np.split(times, breaks)
    keep = [run for run in runs if run[-1] + 0.001 - run[0] >= _MIN_RUN_S]
    return np.concatenate(keep) if keep else times[:0]


class BargeInViewer(Protocol):
    """What watches a barge-in: a :class:`~.room.RoomViewer`, or a browser page."""

    @property
    def capture(self) -> MediaCapture: ...

    async def start(self, timeout: float = ...) -> None: ...

    async def aclose(self) -> None: ...

    def synced_report(self, since: float | None = ..., until: float | None = ...) -> SyncReport:
        """Markers seen in [since, until] as a receiver that lip-syncs the stream shows them."""
        ...


@dataclass(frozen=True)
class BargeInTurn:
    """One barge-in turn: the viewer's figures, the reply's lip-sync (as a lip-syncing receiver
    shows it), and the interrupts the agent reported after the user's onset."""

    figures: BargeIn
    reply: SyncReport | None
    interrupts: int
    speech_start: float | None = None
    """When the avatar's (first) speech first sounded at the viewer (``time.monotonic()``)."""


async def barge_in_turn(
    room: rtc.Room,
    voice: np.ndarray,
    voice_rate: int,
    *,
    interrupt_times: Callable[[], list[float]],
    face: FaceRenderer,
    spec: MarkerSpec = AVATAR_SPEC,
    barge_after: float = 4.5,
    reply_wait: float = 3.0,
    join_timeout: float = 60.0,
    viewer: Callable[[ViewerLog], BargeInViewer] | None = None,
    turn_starts: Callable[[], list[float]] | None = None,
) -> BargeInTurn:
    """In ``room`` (connected, as the user), wait for the agent's avatar to start speaking, speak
    ``voice`` over it ``barge_after`` s in, let the reply play, and measure.

    ``interrupt_times()`` returns the wall times (``time.time()``) at which the agent flushed
    the avatar so far (a worker's log); ``face`` draws the avatar (for its closed mouth).
    ``viewer(log)`` makes the viewer that watches (feeding ``log``); by default the user's own
    :class:`~.room.RoomViewer` in ``room`` (a browser page: :mod:`.browser`). ``turn_starts()``
    returns the wall times at which the agent began to speak (a worker's log): a viewer that
    came up in the middle of the speech then still barges in ``barge_after`` s into it, not
    that long after it first heard it (when the speech may be over).
    """
    wall_to_mono = time.time() - time.monotonic()  # worker logs are on wall time
    log = ViewerLog(
        face, marker_tones=spec.frequencies, marker_peak=spec.burst_level * 2 * _SPEECH_PEAK
    )
    watching = (
        RoomViewer(room, spec=spec, on_video=log.on_video, on_audio=log.on_audio)
        if viewer is None
        else viewer(log)
    )
    await watching.start(timeout=join_timeout)
    try:
        capture = watching.capture
        await capture.wait_until(lambda: log.speech_times().size > 0, timeout=join_timeout)
        speech_start = float(log.speech_times()[0])
        began = speech_start
        if turn_starts is not None:
            starts = [t - wall_to_mono for t in turn_starts()]
            # this turn's: at most _TURN_SEEN_S before the viewer heard it (not an older turn's)
            earlier = [t for t in starts if speech_start - _TURN_SEEN_S <= t <= speech_start]
            began = min(began, max(earlier, default=began))
        await asyncio.sleep(max(0.0, began + barge_after - time.monotonic()))
        before = len(interrupt_times())
        onset, user_end = await speak_into_room(room, voice, voice_rate)
        await asyncio.sleep(reply_wait)
    finally:
        await watching.aclose()
    after = [t - wall_to_mono for t in interrupt_times()[before:]]
    interrupt = after[0] if after else None
    figures = barge_in_figures(
        log,
        onset,
        user_end,
        interrupt=interrupt,
        grace=0.25,
        bursts=capture.audio_bursts,
        spec=spec,
    )
    reply = None
    if figures.reply_start is not None:
        reply = watching.synced_report(since=figures.reply_start, until=figures.reply_start + 3.0)
    return BargeInTurn(figures, reply, len(after), speech_start)
