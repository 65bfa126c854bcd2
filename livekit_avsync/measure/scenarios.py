"""Provider-like scenarios that push marker media into a synchronizer and measure what plays.

Each scenario is a *producer*: it pushes marker media (video frame ``n`` at media time ``n / fps``,
audio sample-exact on the same media clock) into any object with the ``rtc.AVSynchronizer`` API
(``await push(frame, timestamp)``, ``await clear_queue()``, ``await wait_for_playout()``,
``await aclose()``), timed like a particular kind of avatar provider. :func:`run_scenario` builds
fresh ``rtc.AudioSource`` / ``rtc.VideoSource``, reads them back with :class:`LoopbackCapture` and
returns a :class:`ScenarioResult`: A/V offset statistics, frame accounting and, for ``interrupt``,
how much of the interrupted turn still came out after ``clear_queue()``.

Video marker turn ids tell speech from idle: ``IDLE_TURN`` (0) marks frames of a quiet avatar,
each speaking turn has its own id (1..15), so "speaking video after an interrupt" is read off the
frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from livekit import rtc

from ..output import AVSynchronizer
from ..sync.aligner import SyncMode
from ..sync.stats import SyncStats
from .analysis import FrameContinuity, SyncReport
from .bursts import marker_audio_frame
from .loopback import LoopbackCapture
from .markers import MAX_TURN, marker_video_frame
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = [
    "IDLE_TURN",
    "IMPLEMENTATIONS",
    "MAX_RUN_SECONDS",
    "SCENARIOS",
    "InterruptMark",
    "InterruptMeasurement",
    "MarkerMedia",
    "ProducerLog",
    "Scenario",
    "ScenarioResult",
    "SyncSettings",
    "SynchronizerLike",
    "audio_gaps",
    "measure_interrupt",
    "produce_barge_in",
    "produce_bursts",
    "produce_interleaved",
    "produce_interrupt",
    "produce_separate",
    "run_scenario",
]

IDLE_TURN = 0
SAMPLE_RATE = 48000
AUDIO_FRAME_S = 0.02  # producers push 20 ms audio frames
AUDIO_QUEUE_MS = 100  # the AudioSource queue depth used by every scenario (as in livekit-agents)
MAX_RUN_SECONDS = 2000.0  # 16-bit marker frame numbers at 30 fps (and a 1 % fast clock)
_TAIL_WAIT_S = 0.25  # after playout: time for the capture to read the last frames and bursts
_PLAYOUT_TIMEOUT_S = 15.0


class SynchronizerLike(Protocol):
    """What a scenario needs from a synchronizer: the ``rtc.AVSynchronizer`` surface."""

    async def push(self, frame: Any, timestamp: float | None = None) -> None: ...

    async def clear_queue(self) -> None: ...

    async def wait_for_playout(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How a scenario wants the synchronizer configured (implementations ignore what they lack)."""

    video_fps: float
    sync_mode: SyncMode = "timestamps"
    av_offset: float = 0.0


Factory = Callable[[rtc.AudioSource, rtc.VideoSource, SyncSettings], SynchronizerLike]


def ours_with(**options: Any) -> Factory:
    """Our synchronizer as the scenario configures it, plus ``options`` (constructor keywords)."""

    def make(audio: rtc.AudioSource, video: rtc.VideoSource, s: SyncSettings) -> SynchronizerLike:
        return AVSynchronizer(
            audio_source=audio,
            video_source=video,
            video_fps=s.video_fps,
            sync_mode=s.sync_mode,
            av_offset=s.av_offset,
            **options,
        )

    return make


_ours = ours_with()


def _rtc(audio: rtc.AudioSource, video: rtc.VideoSource, s: SyncSettings) -> SynchronizerLike:
    return rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=s.video_fps)


IMPLEMENTATIONS: dict[str, Factory] = {"livekit_avsync": _ours, "rtc": _rtc}
"""Synchronizers under test by name: ours, and ``livekit.rtc.AVSynchronizer`` for comparison."""


# -- media ---------------------------------------------------------------------------------------


class MarkerMedia:
    """Marker frames on one media timeline: video by frame number, audio by 20 ms frame index.

    Audio frame ``k`` covers samples ``[k * step, (k + 1) * step)``; speech is marker audio (tone
    bursts over a quiet bed), idle audio is digital silence of the same length.
    """

    def __init__(
        self,
        spec: MarkerSpec = DEFAULT_SPEC,
        *,
        width: int = 320,
        height: int = 180,
        sample_rate: int = SAMPLE_RATE,
        frame_s: float = AUDIO_FRAME_S,
    ) -> None:
        self.spec = spec
        self.width = width
        self.height = height
        self.sample_rate = sample_rate
        self.step = round(frame_s * sample_rate)
        if self.step <= 0 or abs(self.step / sample_rate - frame_s) > 1e-9:
            raise ValueError(f"{frame_s} s is not a whole number of samples at {sample_rate} Hz")
        self._silence = np.zeros(self.step, dtype=np.int16).tobytes()

    @property
    def fps(self) -> float:
        return self.spec.fps

    @property
    def audio_frame_s(self) -> float:
        return self.step / self.sample_rate

    def video(self, n: int, turn: int) -> rtc.VideoFrame:
        return marker_video_frame(n, self.width, self.height, turn=turn, spec=self.spec)

    def video_time(self, n: int) -> float:
        return n / self.spec.fps

    def audio(self, k: int, *, speech: bool) -> rtc.AudioFrame:
        if not speech:
            return rtc.AudioFrame(self._silence, self.sample_rate, 1, self.step)
        return marker_audio_frame(
            k * self.step, self.step, sample_rate=self.sample_rate, spec=self.spec
        )

    def audio_start(self, k: int) -> float:
        return k * self.step / self.sample_rate

    def audio_end(self, k: int) -> float:
        """The timestamp ``rtc.AVSynchronizer`` expects for an audio frame: its end time."""
        return (k + 1) * self.step / self.sample_rate


# -- producer bookkeeping ------------------------------------------------------------------------


@dataclass(slots=True)
class InterruptMark:
    """One ``clear_queue()`` call: when, which turn it cut, and when the next turn was pushed."""

    cleared_at: float
    old_turn: int
    in_flight: range = range(0)  # video frame numbers pushed after the clear, untagged
    next_turn_at: float = math.inf
    next_turn: int | None = None
    idle_at: float | None = None  # when the producer's own idle media began after the clear
    push_blocked: float = 0.0  # s: the longest single push between the clear and the next turn


@dataclass(slots=True)
class ProducerLog:
    """What a producer pushed (wall times on ``time.monotonic()``)."""

    video_frames: int = 0
    audio_frames: int = 0
    media_seconds: float = 0.0
    started_at: float = 0.0
    interrupts: list[InterruptMark] = field(default_factory=list)


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _run_all(*coros: Coroutine[Any, Any, None]) -> None:
    """Run producer tasks together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Timeline:
    """One producer task pushing video frame ``n`` then the audio that starts before ``n + 1``.

    Frame ``n`` is pushed at ``origin + (n / fps) / rate`` (``rate`` > 1: a provider clock running
    fast); a producer held up by backpressure catches up without sleeping.
    """

    def __init__(
        self, sync: SynchronizerLike, media: MarkerMedia, log: ProducerLog, rate: float = 1.0
    ) -> None:
        self.sync, self.media, self.log, self.rate = sync, media, log, rate
        self.frame = 0
        self.audio = 0
        self.origin = time.monotonic()
        log.started_at = self.origin

    async def play(self, seconds: float, *, turn: int, speech: bool) -> None:
        media = self.media
        end = media.video_time(self.frame) + seconds
        while media.video_time(self.frame) < end - 1e-9:
            n = self.frame
            await _sleep_until(self.origin + media.video_time(n) / self.rate)
            await self.sync.push(media.video(n, turn), media.video_time(n))
            self.frame += 1
            self.log.video_frames += 1
            while media.audio_start(self.audio) < media.video_time(n + 1) - 1e-9:
                k = self.audio
                await self.sync.push(media.audio(k, speech=speech), media.audio_end(k))
                self.audio += 1
                self.log.audio_frames += 1
        self.log.media_seconds = media.audio_start(self.audio)


# -- producers -----------------------------------------------------------------------------------


async def produce_interleaved(
    sync: SynchronizerLike, media: MarkerMedia, duration: float, *, rate: float = 1.0
) -> ProducerLog:
    """One task, video frame then its audio, paced at real time (``rate`` x real time)."""
    log = ProducerLog()
    await _Timeline(sync, media, log, rate).play(duration, turn=1, speech=True)
    return log


async def produce_separate(
    sync: SynchronizerLike,
    media: MarkerMedia,
    duration: float,
    *,
    video_lag: float = 0.12,
    jitter: float = 0.02,
    seed: int = 0,
    audio_clock: float | None = 0.0,
    video_clock: float | None = 0.0,
) -> ProducerLog:
    """Audio and video from separate tasks, as two network tracks deliver them.

    Audio frame ``k`` arrives when it is complete plus ``U(0, jitter)``; video frame ``n`` at its
    media time plus ``video_lag`` plus ``U(0, jitter)`` (never before the frame before it). Each
    stream's timestamps are its media time plus ``audio_clock`` / ``video_clock`` (equal: one
    shared clock; different: unrelated clocks; None: no timestamps).
    """
    log = ProducerLog()
    t0 = log.started_at = time.monotonic()
    audio_rng, video_rng = random.Random(seed), random.Random(seed + 1)
    await _push_streams(
        sync,
        media,
        log,
        duration,
        audio_due=lambda k: t0 + media.audio_end(k) + audio_rng.uniform(0, jitter),
        video_due=lambda n: t0 + media.video_time(n) + video_lag + video_rng.uniform(0, jitter),
        audio_ts=lambda k: None if audio_clock is None else audio_clock + media.audio_end(k),
        video_ts=lambda n: None if video_clock is None else video_clock + media.video_time(n),
    )
    return log


async def produce_bursts(
    sync: SynchronizerLike,
    media: MarkerMedia,
    duration: float,
    *,
    burst: float = 1.0,
    burst_span: float = 0.05,
) -> ProducerLog:
    """Audio and video tasks deliver ``burst`` s of media within ``burst_span`` s, then idle until
    real time catches up (a provider that renders faster than real time); one shared clock."""
    log = ProducerLog()
    t0 = log.started_at = time.monotonic()

    def due(media_time: float) -> float:
        index = math.floor(media_time / burst + 1e-9)
        return t0 + index * burst + (media_time - index * burst) / burst * burst_span

    await _push_streams(
        sync,
        media,
        log,
        duration,
        audio_due=lambda k: due(media.audio_start(k)),
        video_due=lambda n: due(media.video_time(n)),
        audio_ts=media.audio_end,
        video_ts=media.video_time,
    )
    return log


async def _push_streams(
    sync: SynchronizerLike,
    media: MarkerMedia,
    log: ProducerLog,
    duration: float,
    *,
    audio_due: Callable[[int], float],
    video_due: Callable[[int], float],
    audio_ts: Callable[[int], float | None],
    video_ts: Callable[[int], float | None],
) -> None:
    """Speech audio and video from two tasks: frame ``k`` / ``n`` pushed with ``*_ts(k)`` at
    clock time ``*_due(k)`` (never before the frame before it)."""
    n_audio = math.ceil(duration / media.audio_frame_s - 1e-9)
    n_video = math.ceil(duration * media.fps - 1e-9)

    async def stream(
        count: int,
        due_of: Callable[[int], float],
        frame_of: Callable[[int], Any],
        ts_of: Callable[[int], float | None],
        counter: str,
    ) -> None:
        due = -math.inf
        for i in range(count):
            due = max(due, due_of(i))
            await _sleep_until(due)
            await sync.push(frame_of(i), ts_of(i))
            setattr(log, counter, getattr(log, counter) + 1)

    await _run_all(
        stream(n_audio, audio_due, lambda k: media.audio(k, speech=True), audio_ts, "audio_frames"),
        stream(n_video, video_due, lambda n: media.video(n, 1), video_ts, "video_frames"),
    )
    log.media_seconds = n_audio * media.audio_frame_s


async def produce_interrupt(
    sync: SynchronizerLike,
    media: MarkerMedia,
    duration: float,
    *,
    speech: float = 1.6,
    in_flight: float = 0.2,
    idle: float = 1.0,
    lead_idle: float = 0.5,
    tail_idle: float = 0.4,
) -> ProducerLog:
    """Idle, then turns of speech each cut by ``clear_queue()``, as a remote avatar delivers them.

    At each interrupt ``in_flight`` s of the old turn were already produced: they are pushed after
    the clear, untagged, at real-time pace (what a provider's network still delivers). Then the
    provider is idle (silent audio, ``IDLE_TURN`` video) for ``idle`` s and the next turn starts.
    The number of interrupts is ``duration`` divided by one cycle (at least one); the last turn
    plays to its end.
    """
    cycle = speech + in_flight + idle
    cycles = max(1, math.floor(duration / cycle + 1e-6))
    log = ProducerLog()
    timeline = _Timeline(sync, media, log)
    await timeline.play(lead_idle, turn=IDLE_TURN, speech=False)
    for c in range(cycles):
        turn = 1 + c % MAX_TURN
        if log.interrupts:
            log.interrupts[-1].next_turn_at = time.monotonic()
            log.interrupts[-1].next_turn = turn
        await timeline.play(speech, turn=turn, speech=True)
        mark = InterruptMark(time.monotonic(), turn)
        await sync.clear_queue()
        log.interrupts.append(mark)
        first = timeline.frame
        await timeline.play(in_flight, turn=turn, speech=True)
        mark.in_flight = range(first, timeline.frame)
        await timeline.play(idle, turn=IDLE_TURN, speech=False)
    last_turn = 1 + cycles % MAX_TURN
    log.interrupts[-1].next_turn_at = time.monotonic()
    log.interrupts[-1].next_turn = last_turn
    await timeline.play(speech, turn=last_turn, speech=True)
    await timeline.play(tail_idle, turn=IDLE_TURN, speech=False)
    return log


class _Pusher:
    """Pushes marker media on one media clock from one task (timestamps, or None if untimed)
    and keeps the longest single push since :meth:`watch` was called."""

    def __init__(self, sync: SynchronizerLike, media: MarkerMedia, log: ProducerLog, timed: bool):
        self.sync, self.media, self.log, self.timed = sync, media, log, timed
        self.frame = self.audio = 0
        self.blocked = 0.0
        self._watch = False
        self._quiet = _near_silence(media)

    def watch(self) -> None:
        self._watch, self.blocked = True, 0.0

    async def _push(self, frame: Any, ts: float) -> None:
        t = time.monotonic()
        await self.sync.push(frame, ts if self.timed else None)
        if self._watch:
            self.blocked = max(self.blocked, time.monotonic() - t)

    async def play(self, seconds: float, *, turn: int, speech: bool, origin: float | None) -> None:
        """``seconds`` of media; paced at real time from wall ``origin`` (None: as fast as the
        synchronizer takes it)."""
        media = self.media
        end = media.video_time(self.frame) + seconds
        while media.video_time(self.frame) < end - 1e-9:
            n = self.frame
            if origin is not None:
                await _sleep_until(origin + media.video_time(n))
            await self._push(media.video(n, turn), media.video_time(n))
            self.frame += 1
            self.log.video_frames += 1
            while media.audio_start(self.audio) < media.video_time(n + 1) - 1e-9:
                k = self.audio
                frame = media.audio(k, speech=True) if speech else self._quiet
                await self._push(frame, media.audio_end(k))
                self.audio += 1
                self.log.audio_frames += 1
        self.log.media_seconds = media.audio_start(self.audio)


def _near_silence(media: MarkerMedia) -> rtc.AudioFrame:
    """A quiet avatar's audio: a 300 Hz hum at about -75 dBFS (not digital silence)."""
    t = np.arange(media.step) / media.sample_rate
    hum = np.round(5.8 * math.sqrt(2) * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    return rtc.AudioFrame(hum.tobytes(), media.sample_rate, 1, media.step)


async def produce_barge_in(
    sync: SynchronizerLike,
    media: MarkerMedia,
    duration: float,
    *,
    timed: bool = True,
    speech: float = 3.0,
    clear_after: float = 2.0,
    in_flight: float = 0.2,
    idle: float = 1.0,
    next_speech: float = 1.2,
) -> ProducerLog:
    """A barge-in with no idle lead-in, on one continuous media clock (or untimed).

    Speech from the very first frame: ``speech`` s pushed as fast as backpressure allows;
    ``clear_queue()`` once ``clear_after`` s have played (wall time since the first push), from a
    second task; then ``in_flight`` s more of the cut turn (untagged) and ``idle`` s of
    near-silent idle media in real time, timestamps continuing; then the next turn.
    ``duration`` is ignored (the shape is fixed).
    """
    log = ProducerLog()
    pusher = _Pusher(sync, media, log, timed)
    cleared, started = asyncio.Event(), asyncio.Event()
    mark = InterruptMark(math.inf, 1)

    async def produce() -> None:
        log.started_at = time.monotonic()
        started.set()
        await pusher.play(speech, turn=1, speech=True, origin=None)
        await cleared.wait()
        origin = mark.cleared_at - media.video_time(pusher.frame)  # real time from the clear
        first = pusher.frame
        await pusher.play(in_flight, turn=1, speech=True, origin=origin)
        mark.in_flight = range(first, pusher.frame)
        mark.idle_at = time.monotonic()
        await pusher.play(idle, turn=IDLE_TURN, speech=False, origin=origin)
        mark.push_blocked = pusher.blocked
        mark.next_turn_at, mark.next_turn = time.monotonic(), 2
        await pusher.play(next_speech, turn=2, speech=True, origin=origin)
        await pusher.play(0.4, turn=IDLE_TURN, speech=False, origin=origin)

    async def interrupt() -> None:
        await started.wait()
        await _sleep_until(log.started_at + clear_after)
        mark.cleared_at = time.monotonic()
        pusher.watch()
        await sync.clear_queue()
        log.interrupts.append(mark)
        cleared.set()

    await _run_all(produce(), interrupt())
    return log


# -- scenarios -----------------------------------------------------------------------------------

Producer = Callable[[SynchronizerLike, MarkerMedia, float, int], Awaitable[ProducerLog]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named producer with the media and synchronizer settings it runs with."""

    name: str
    description: str
    produce: Producer
    duration: float  # default media seconds for the full benchmark
    quick_duration: float  # for tests and ``bench --quick``
    media_fps: float = 30.0
    video_fps: float = 30.0
    sync_mode: SyncMode = "timestamps"
    av_offset: float = 0.0

    @property
    def spec(self) -> MarkerSpec:
        return DEFAULT_SPEC if self.media_fps == DEFAULT_SPEC.fps else MarkerSpec(self.media_fps)

    @property
    def settings(self) -> SyncSettings:
        return SyncSettings(self.video_fps, self.sync_mode, self.av_offset)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "interleaved",
            "one task: video frame then its 20 ms audio, real time, 30 fps",
            lambda sync, media, d, seed: produce_interleaved(sync, media, d),
            20.0,
            4.0,
        ),
        Scenario(
            "separate",
            "audio and video tasks, video 120 ms behind audio, 0-20 ms jitter, one clock",
            lambda sync, media, d, seed: produce_separate(sync, media, d, seed=seed),
            20.0,
            4.0,
        ),
        Scenario(
            "separate_arrival",
            "as separate, but unrelated stream clocks (sync_mode=arrival, av_offset=-0.12)",
            lambda sync, media, d, seed: produce_separate(
                sync, media, d, seed=seed, audio_clock=37.25, video_clock=5021.5
            ),
            20.0,
            4.0,
            sync_mode="arrival",
            av_offset=-0.12,
        ),
        Scenario(
            "bursts",
            "1 s of media delivered in 50 ms, then idle until real time catches up",
            lambda sync, media, d, seed: produce_bursts(sync, media, d),
            20.0,
            4.0,
        ),
        Scenario(
            "fps_mismatch",
            "25 fps media into a 30 fps synchronizer",
            lambda sync, media, d, seed: produce_interleaved(sync, media, d),
            20.0,
            4.0,
            media_fps=25.0,
        ),
        Scenario(
            "drift",
            "provider clock 1 % fast: 1.01 s of media per wall second",
            lambda sync, media, d, seed: produce_interleaved(sync, media, d, rate=1.01),
            60.0,
            6.0,
        ),
        Scenario(
            "interrupt",
            "speech, clear_queue() with 200 ms still in flight, idle, a new turn",
            lambda sync, media, d, seed: produce_interrupt(sync, media, d),
            20.0,
            2.8,
        ),
        Scenario(
            "barge_in",
            "speech from frame 0 pushed ahead, clear at 2 s, 200 ms in flight, -75 dBFS idle; "
            "one continuous clock",
            lambda sync, media, d, seed: produce_barge_in(sync, media, d),
            5.0,
            5.0,
        ),
        Scenario(
            "barge_in_untimed",
            "as barge_in, with untimed pushes (sync_mode=arrival)",
            lambda sync, media, d, seed: produce_barge_in(sync, media, d, timed=False),
            5.0,
            5.0,
            sync_mode="arrival",
        ),
    )
}


# -- measuring -----------------------------------------------------------------------------------


@dataclass(slots=True)
class InterruptMeasurement:
    """What came out after one ``clear_queue()`` (all times in ms after the clear call).

    ``audio_tail_ms``: sound that went on after the clear without a break. ``video_tail_frames``:
    frames of the old turn that arrived after the clear; ``video_tail_ms``: until the first
    non-speaking frame replaced the old turn's face. ``stale_video_frames``: old-turn frames that
    arrived later than ``video_grace`` after the clear; ``in_flight_video_frames``: distinct frames
    pushed after the clear (the in-flight tail) that were shown; ``stale_audio_ms``: sound between
    ``audio_grace`` after the clear and the next turn (idle audio is silent, so it is the old turn).
    ``first_turn``: turn id of the first frame after ``video_grace`` (``IDLE_TURN`` is right).
    ``new_turn_*``: offsets of the next turn's markers.
    """

    cleared_at: float
    old_turn: int
    audio_tail_ms: float
    video_tail_frames: int
    video_tail_ms: float | None
    stale_video_frames: int
    in_flight_video_frames: int
    stale_audio_ms: float
    first_turn: int | None
    audio_grace_ms: float
    video_grace_ms: float
    new_turn: int | None = None
    new_turn_paired: int = 0
    new_turn_p95_ms: float | None = None
    new_turn_mean_ms: float | None = None
    face_back_ms: float | None = None  # first non-speaking frame, after the producer's idle began
    idle_after_ms: float | None = None  # when the producer's idle media began, after the clear
    push_blocked_ms: float = 0.0  # longest single push between the clear and the next turn


def _loud_seconds(capture: LoopbackCapture, start: float, end: float) -> float:
    """Seconds of non-silent audio played within wall times [start, end)."""
    total, t = 0.0, start
    while t < end:
        begin = capture.first_sound(after=t)
        if begin is None or begin >= end:
            break
        span = capture.audio_tail(begin, max_gap=0.001)
        total += min(begin + span, end) - begin
        t = begin + max(span, 1e-4)
    return total


def audio_gaps(
    capture: LoopbackCapture, *, min_gap: float = 0.004, max_gap: float = 0.25
) -> list[float]:
    """Lengths (s) of the silent gaps between ``min_gap`` and ``max_gap`` inside the played audio.

    Marker speech never falls silent (a quiet bed tone runs under the bursts), so such a gap is an
    underrun the listener hears as a click or dropout; longer silences are idle periods.
    """
    gaps: list[float] = []
    begin = capture.first_sound()
    while begin is not None:
        end = begin + capture.audio_tail(begin, max_gap=0.001)
        nxt = capture.first_sound(after=end + 1e-6)
        if nxt is not None and min_gap <= nxt - end <= max_gap:
            gaps.append(nxt - end)
        begin = nxt if nxt is None or nxt > begin else None
    return gaps


def measure_interrupt(
    capture: LoopbackCapture,
    mark: InterruptMark,
    *,
    period: float,
    audio_grace: float = 0.03,
    video_grace: float | None = None,
) -> InterruptMeasurement:
    """Read the audio and video tails of one interrupt off a capture (see the dataclass)."""
    grace_v = period if video_grace is None else video_grace
    t = mark.cleared_at
    arrivals = [v for v in capture.video_after(t) if v.time < mark.next_turn_at]
    old = [v for v in arrivals if v.turn == mark.old_turn]
    last_old = old[-1].time if old else t
    replaced = next(
        (v.time for v in arrivals if v.time >= last_old and v.turn != mark.old_turn), None
    )
    later = [v for v in arrivals if v.time > t + grace_v]
    return InterruptMeasurement(
        cleared_at=t,
        old_turn=mark.old_turn,
        audio_tail_ms=1000 * capture.audio_tail(t),
        video_tail_frames=len(old),
        video_tail_ms=None if replaced is None else 1000 * (replaced - t),
        stale_video_frames=sum(1 for v in old if v.time > t + grace_v),
        in_flight_video_frames=len({v.frame for v in old if v.frame in mark.in_flight}),
        stale_audio_ms=1000 * _loud_seconds(capture, t + audio_grace, mark.next_turn_at),
        first_turn=later[0].turn if later else None,
        audio_grace_ms=1000 * audio_grace,
        video_grace_ms=1000 * grace_v,
        face_back_ms=None
        if replaced is None or mark.idle_at is None
        else 1000 * (replaced - mark.idle_at),
        push_blocked_ms=1000 * mark.push_blocked,
        idle_after_ms=None if mark.idle_at is None else 1000 * (mark.idle_at - t),
    )


def _new_turn_sync(
    measurement: InterruptMeasurement, report: SyncReport, new_turn: int | None
) -> None:
    if new_turn is None:
        return
    offsets = [
        m.offset_ms
        for m in report.offsets
        if m.turn == new_turn and m.video_time > measurement.cleared_at
    ]
    measurement.new_turn = new_turn
    measurement.new_turn_paired = len(offsets)
    if offsets:
        measurement.new_turn_p95_ms = float(np.percentile(np.abs(offsets), 95))
        measurement.new_turn_mean_ms = float(np.mean(offsets))


@dataclass(slots=True)
class ScenarioResult:
    """One scenario run through one synchronizer, measured on the loopback."""

    scenario: str
    implementation: str
    media_seconds: float
    wall_seconds: float
    report: SyncReport
    continuity: FrameContinuity
    video_frames_pushed: int
    video_arrivals: int  # marker frames read back, repeats included
    unmarked_arrivals: int  # frames without a marker (the native track's placeholders)
    stats: SyncStats | None
    interrupts: list[InterruptMeasurement] = field(default_factory=list)
    audio_gaps: list[float] = field(default_factory=list)  # s; see :func:`audio_gaps`

    @property
    def skew_p50_ms(self) -> float | None:
        return self.report.p50_abs_ms

    @property
    def skew_p95_ms(self) -> float | None:
        return self.report.p95_abs_ms

    @property
    def skew_max_ms(self) -> float | None:
        return self.report.max_abs_ms

    @property
    def skew_mean_ms(self) -> float | None:
        return self.report.mean_ms

    @property
    def drift_ms_per_min(self) -> float | None:
        return self.report.drift_ms_per_min

    @property
    def frames_unseen(self) -> int:
        """Frames pushed that never came out of the VideoSource."""
        return self.video_frames_pushed - self.continuity.distinct

    @property
    def dropped_frames(self) -> int:
        """Frames dropped (the synchronizer's counters when it has them, else never seen)."""
        if self.stats is not None:
            st = self.stats
            return st.video_dropped_late + st.video_dropped_stale + st.video_cleared
        return self.frames_unseen

    @property
    def repeated_frames(self) -> int:
        """Frames sent again (the synchronizer's counter when it has one, else seen again)."""
        if self.stats is not None:
            return self.stats.video_repeated
        return self.continuity.repeated

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; per marker only ``[audio time since the first (s), offset (ms)]``."""
        report = self.report.to_dict()
        report.pop("offsets")
        report.pop("unpaired_audio")
        first = self.report.offsets[0].audio_time if self.report.offsets else 0.0
        report["offsets_ms"] = [
            [round(m.audio_time - first, 3), round(m.offset_ms, 2)] for m in self.report.offsets
        ]
        return {
            "scenario": self.scenario,
            "implementation": self.implementation,
            "media_seconds": self.media_seconds,
            "wall_seconds": self.wall_seconds,
            "skew_p50_ms": self.skew_p50_ms,
            "skew_p95_ms": self.skew_p95_ms,
            "skew_max_ms": self.skew_max_ms,
            "skew_mean_ms": self.skew_mean_ms,
            "drift_ms_per_min": self.drift_ms_per_min,
            "video_frames_pushed": self.video_frames_pushed,
            "video_arrivals": self.video_arrivals,
            "unmarked_arrivals": self.unmarked_arrivals,
            "frames_unseen": self.frames_unseen,
            "dropped_frames": self.dropped_frames,
            "repeated_frames": self.repeated_frames,
            "audio_gaps": len(self.audio_gaps),
            "audio_gap_ms": 1000 * sum(self.audio_gaps),
            "continuity": asdict(self.continuity),
            "report": report,
            "stats": None if self.stats is None else self.stats.to_dict(),
            "interrupts": [asdict(m) for m in self.interrupts],
        }


def _speaking_report(capture: LoopbackCapture) -> SyncReport:
    """Offsets of speech markers only (idle frames carry numbers but their audio is silent)."""
    return capture.analyze(where=lambda o: o.turn != IDLE_TURN)


AudioHook = Callable[[rtc.AudioFrame, float], None]
Transport = Callable[
    [rtc.AudioSource, rtc.VideoSource, MarkerSpec, AudioHook | None],
    contextlib.AbstractAsyncContextManager[LoopbackCapture],
]


@contextlib.asynccontextmanager
async def loopback_transport(
    audio: rtc.AudioSource, video: rtc.VideoSource, spec: MarkerSpec, on_audio: AudioHook | None
) -> AsyncIterator[LoopbackCapture]:
    """The sources' own local tracks, read back with no room (the loopback bench)."""
    async with LoopbackCapture.from_sources(audio, video, spec=spec, on_audio=on_audio) as capture:
        yield capture


async def run_scenario(
    scenario: str | Scenario,
    implementation: str = "livekit_avsync",
    *,
    duration: float | None = None,
    quick: bool = False,
    seed: int = 0,
    width: int = 320,
    height: int = 180,
    stale_audio_grace: float = 0.03,
    stale_video_grace: float | None = None,
    observe: Callable[[SynchronizerLike], None] | None = None,
    transport: Transport | None = None,
    factories: Mapping[str, Factory] | None = None,
    on_audio: Callable[[rtc.AudioFrame, float], None] | None = None,
) -> ScenarioResult:
    """Run one scenario through a fresh synchronizer on fresh sources and measure it.

    ``duration`` defaults to the scenario's full (or ``quick``) length. ``stale_video_grace``
    defaults to one output frame period. ``observe(sync)`` is called with the synchronizer once
    it exists (e.g. to sample its stats while the run goes on); ``on_audio(frame, time)`` sees
    every audio frame read back. ``transport(audio, video, spec, on_audio)`` carries the sources
    to the capture that measures them: by default local tracks read back (the loopback bench);
    :func:`~.room_bench.room_transport` goes through a real room. ``factories`` replaces
    :data:`IMPLEMENTATIONS` as the table ``implementation`` is looked up in.
    """
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    table = IMPLEMENTATIONS if factories is None else factories
    if implementation not in table:
        known = ", ".join(table)
        raise ValueError(f"unknown implementation {implementation!r} (known: {known})")
    seconds = duration if duration is not None else (sc.quick_duration if quick else sc.duration)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {seconds!r}")
    if seconds > MAX_RUN_SECONDS:
        raise ValueError(
            f"duration {seconds:g} s is longer than marker frame numbers reach "
            f"({MAX_RUN_SECONDS:g} s)"
        )
    spec = sc.spec
    media = MarkerMedia(spec, width=width, height=height)
    audio = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=AUDIO_QUEUE_MS)
    video = rtc.VideoSource(width, height)
    started = time.monotonic()
    try:
        async with (transport or loopback_transport)(audio, video, spec, on_audio) as capture:
            await asyncio.sleep(0.05)  # the streams are open before the first frame
            sync = table[implementation](audio, video, sc.settings)
            try:
                if observe is not None:
                    observe(sync)
                log = await sc.produce(sync, media, seconds, seed)
                await asyncio.wait_for(sync.wait_for_playout(), _PLAYOUT_TIMEOUT_S)
                await asyncio.sleep(_TAIL_WAIT_S)
                stats = sync.stats if isinstance(sync, AVSynchronizer) else None
            finally:
                await sync.aclose()
                await asyncio.sleep(0)  # rtc.AVSynchronizer cancels its task without awaiting
            report = _speaking_report(capture)
            arrivals = capture.video_arrivals
            period = 1.0 / sc.video_fps
            interrupts = []
            for mark in log.interrupts:
                m = measure_interrupt(
                    capture,
                    mark,
                    period=period,
                    audio_grace=stale_audio_grace,
                    video_grace=stale_video_grace,
                )
                _new_turn_sync(m, report, mark.next_turn)
                interrupts.append(m)
            return ScenarioResult(
                scenario=sc.name,
                implementation=implementation,
                media_seconds=log.media_seconds,
                wall_seconds=time.monotonic() - started,
                report=report,
                continuity=capture.frame_continuity(),
                video_frames_pushed=log.video_frames,
                video_arrivals=sum(a.frame is not None for a in arrivals),
                unmarked_arrivals=sum(a.frame is None for a in arrivals),
                stats=stats,
                interrupts=interrupts,
                audio_gaps=audio_gaps(capture),
            )
    finally:
        await audio.aclose()
        await video.aclose()
