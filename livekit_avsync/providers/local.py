"""LocalAvatar: an in-process talking face that needs no keys and no network.

It behaves like a real-time streaming provider. Once started it runs one media clock and, every
frame period, emits a video frame stamped ``n / fps`` and the audio of the same media range (in
~10 ms frames, each stamped with its *end* time, as ``rtc.AVSynchronizer`` expects): the turn's
speech when there is some, silence otherwise. Speech pushed with :meth:`LocalAvatar.push_audio`
(any rate, any channel count) is converted by the one audio path
(:mod:`livekit_avsync.media.audio`) and enters the output ``latency`` seconds after it was
pushed; the face's mouth follows its loudness.

Knobs let it stand in for a remote provider in tests and the benchmark: separate audio/video
delivery delays, per-frame jitter, a drifting media clock, no timestamps at all, and bursts of
speech delivered faster than real time. See :class:`LocalAvatar`.

With ``markers=MarkerSpec(...)`` the output also carries the measurement markers of
:mod:`livekit_avsync.measure` (frame numbers in the picture, tone bursts in the sound, on the
avatar's own media clock), so the lip-sync of the real face can be measured end to end.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from livekit import rtc

from ..measure.bursts import marker_audio_samples
from ..measure.markers import MAX_FRAME_NUMBER, stamp_marker
from ..measure.spec import MarkerSpec
from ..media.audio import AudioConverter
from ..media.convert import check_audio_frame, i420_frame
from .base import AvatarProvider, OutputFrame, PlaybackFinished, ProviderError
from .face import FaceRenderer

__all__ = ["LocalAvatar"]

logger = logging.getLogger(__name__)

_AUDIO_FRAME_S = 0.01  # audio is delivered in frames of about this length, as WebRTC does
_QUIET_DB, _LOUD_DB = -50.0, -14.0  # loudness mapped to a closed ... fully open mouth
_ATTACK, _RELEASE = 0.7, 0.4  # per-frame smoothing of the mouth opening (opening, closing)
_BLINK_EVERY, _BLINK_FOR = 4.0, 0.15  # s of media time

Kind = Literal["audio", "video"]
_ORDER: dict[Kind, int] = {"video": 0, "audio": 1}  # same instant: the picture goes first


@dataclass(slots=True)
class _End:
    """Marks the end of an output stream (``error`` set when the provider failed)."""

    error: ProviderError | None = None


@dataclass(slots=True)
class _Turn:
    """One turn's speech at the output format, waiting to be played."""

    chunks: deque[tuple[float, np.ndarray]] = field(default_factory=deque)  # (available_at, pcm)
    head: int = 0  # samples of chunks[0] already played
    converter: AudioConverter | None = None  # to the output format, for this turn
    ended: bool = False
    started: bool = False
    played: int = 0  # samples per channel emitted so far


class _SpeechQueue:
    """Turns of speech converted to the output format, taken out frame by frame. No I/O.

    ``push`` converts and stores a frame that becomes playable at ``available_at``; ``take``
    fills one output period from what is playable, and reports the turn events that caused.
    """

    def __init__(self, sample_rate: int, num_channels: int) -> None:
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.turns: deque[_Turn] = deque()

    def push(self, frame: rtc.AudioFrame, available_at: float) -> None:
        if not self.turns or self.turns[-1].ended:
            self.turns.append(_Turn())
        turn = self.turns[-1]
        for pcm in self._convert(turn, frame):
            if len(pcm):
                turn.chunks.append((available_at, pcm))

    def end_turn(self, available_at: float) -> None:
        """The open turn gets no more speech: flush its resampler, let it play out."""
        if not self.turns or self.turns[-1].ended:
            return
        turn = self.turns[-1]
        for pcm in self._flush(turn):
            if len(pcm):
                turn.chunks.append((available_at, pcm))
        turn.ended = True

    def clear(self) -> PlaybackFinished | None:
        """Drop every turn; the one at the front is reported as interrupted where it was."""
        first = self.turns[0] if self.turns else None
        self.turns.clear()
        if first is None:
            return None
        return PlaybackFinished(first.played / self.sample_rate, interrupted=True)

    def ready(self, count: int, now: float) -> bool:
        """Whether the front turn can fill ``count`` samples (or its whole rest) right now."""
        if not self.turns:
            return False
        turn = self.turns[0]
        have = -turn.head
        for available_at, pcm in turn.chunks:
            if available_at > now:
                return False
            have += len(pcm)
            if have >= count:
                return True
        return turn.ended and have > 0

    def next_available(self, now: float) -> float | None:
        """When the front turn's next not-yet-playable speech becomes playable, if any."""
        if self.turns:
            for available_at, _ in self.turns[0].chunks:
                if available_at > now:
                    return available_at
        return None

    def take(
        self, count: int, now: float
    ) -> tuple[np.ndarray, int, list[tuple[str, PlaybackFinished | None]]]:
        """``count`` samples of output: playable speech first, silence after it.

        Returns (samples (count, channels) int16, how many leading samples are speech, events).
        Speech of consecutive turns follows on directly; when speech runs short the rest of the
        period is silence (an underrun), and the turn resumes in a later period. A turn starts
        only once it can fill the rest of the period (or is complete): its first frames, pushed
        a moment apart, must not open the turn with a gap.
        """
        out = np.zeros((count, self.num_channels), dtype=np.int16)
        filled = 0
        events: list[tuple[str, PlaybackFinished | None]] = []
        while self.turns:
            turn = self.turns[0]
            if not turn.started and turn.chunks and not self.ready(count - filled, now):
                break
            while filled < count and turn.chunks and turn.chunks[0][0] <= now:
                pcm = turn.chunks[0][1]
                n = min(count - filled, len(pcm) - turn.head)
                out[filled : filled + n] = pcm[turn.head : turn.head + n]
                if not turn.started:
                    turn.started = True
                    events.append(("playback_started", None))
                filled += n
                turn.head += n
                turn.played += n
                if turn.head == len(pcm):
                    turn.chunks.popleft()
                    turn.head = 0
            if not (turn.ended and not turn.chunks):
                break
            self.turns.popleft()
            if not turn.started:
                events.append(("playback_started", None))
            events.append(
                ("playback_finished", PlaybackFinished(turn.played / self.sample_rate, False))
            )
        return out, filled, events

    # -- conversion ----------------------------------------------------------------------------

    def _convert(self, turn: _Turn, frame: rtc.AudioFrame) -> list[np.ndarray]:
        """One frame at the output format (the one conversion path, media.audio)."""
        if turn.converter is None:
            turn.converter = AudioConverter(self.sample_rate, self.num_channels)
        return [turn.converter.push(frame)]

    def _flush(self, turn: _Turn) -> list[np.ndarray]:
        return [] if turn.converter is None else [turn.converter.flush()]


class LocalAvatar(AvatarProvider):
    """An in-process avatar: a drawn face whose mouth follows the speech, in real time.

    Output: ``width`` x ``height`` I420 video at ``fps`` and ``sample_rate`` Hz int16 audio with
    ``num_channels`` channels, on one media clock, from :meth:`start` until :meth:`aclose`.

    Simulation knobs (all default to an ideal provider):

    - ``latency``: seconds from ``push_audio()`` until that speech can enter the output.
    - ``audio_delay`` / ``video_delay``: extra delivery delay of each stream (separate paths);
      :attr:`video_lag` is ``video_delay - audio_delay``.
    - ``jitter``: random extra delivery delay per frame, uniform in [0, jitter] s, order kept per
      stream; ``rng_seed`` makes it repeatable.
    - ``clock_drift``: the media clock runs ``1 + clock_drift`` times as fast as wall time.
    - ``timestamps``: False delivers frames without timestamps (unrelated clocks); then
      :attr:`sync_mode` is ``"arrival"`` instead of ``"timestamps"``.
    - ``burst``: while speech is ready, frames are produced (and delivered) up to this many
      seconds ahead of the media clock: a turn arrives in a burst, then stays that far ahead.
      Idle frames are always produced in real time, so output pauses until the clock catches up.
    - ``tag_generations``: False leaves :attr:`OutputFrame.generation` None.

    ``markers`` (a :class:`~livekit_avsync.measure.MarkerSpec` with ``fps`` equal to ``fps``)
    stamps each video frame's number on the media clock into the top quarter of its picture and
    mixes the marker tone bursts into the audio at their media times, so the output can be
    measured with :class:`~livekit_avsync.measure.LoopbackCapture` or ``measure_file``. Frame
    numbers wrap after about 65,000 frames at a multiple of ``burst_every * modulus``, which keeps
    every marker's audio code. The mouth still follows the speech alone. Speech peaks should stay
    under a fifth of ``markers.burst_level``, or bursts under loud speech are not detected.

    Delivery queues hold ``max_queue_s`` seconds per stream; when a consumer stops reading, the
    oldest frames are dropped (counted in :attr:`dropped_frames`), never the producer blocked:
    a real-time provider cannot be paused. ``renderer`` replaces the face (a
    :class:`~livekit_avsync.providers.face.FaceRenderer`, or a subclass, of the same size).
    """

    label = "local"
    sync_mode = "timestamps"
    video_lag = 0.0

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 25.0,
        sample_rate: int = 24000,
        num_channels: int = 1,
        latency: float = 0.05,
        audio_delay: float = 0.0,
        video_delay: float = 0.0,
        jitter: float = 0.0,
        rng_seed: int | None = None,
        clock_drift: float = 0.0,
        timestamps: bool = True,
        burst: float = 0.0,
        tag_generations: bool = True,
        max_queue_s: float = 5.0,
        renderer: FaceRenderer | None = None,
        markers: MarkerSpec | None = None,
    ) -> None:
        super().__init__()
        if not (_finite(fps) and 0 < fps <= 240):
            raise ValueError(f"fps must be a number in (0, 240], got {fps!r}")
        if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 192_000):
            raise ValueError(f"sample_rate must be an int in [8000, 192000], got {sample_rate!r}")
        if num_channels not in (1, 2):
            raise ValueError(f"num_channels must be 1 or 2, got {num_channels!r}")
        for name, value in (
            ("latency", latency),
            ("audio_delay", audio_delay),
            ("video_delay", video_delay),
            ("jitter", jitter),
            ("burst", burst),
        ):
            if not (_finite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 seconds, got {value!r}")
        if not (_finite(clock_drift) and -0.5 < clock_drift < 0.5):
            raise ValueError(f"clock_drift must be in (-0.5, 0.5), got {clock_drift!r}")
        if not (_finite(max_queue_s) and max_queue_s > 0):
            raise ValueError(f"max_queue_s must be a finite number > 0, got {max_queue_s!r}")
        if renderer is None:
            renderer = FaceRenderer(width, height)
        elif (renderer.width, renderer.height) != (width, height):
            raise ValueError(
                f"renderer draws {renderer.width}x{renderer.height} but the avatar is "
                f"{width}x{height}"
            )
        if markers is not None:
            _check_markers(markers, fps, sample_rate, renderer)
        self._renderer = renderer
        self._markers = markers
        self._marker_wrap = 0 if markers is None else _marker_wrap(markers)
        self._fps = float(fps)
        self._rate = sample_rate
        self._channels = num_channels
        self._latency = float(latency)
        self._delay: dict[Kind, float] = {"audio": float(audio_delay), "video": float(video_delay)}
        self._jitter = float(jitter)
        self._rng = random.Random(rng_seed)
        self._speed = 1.0 + float(clock_drift)
        self._timestamps = bool(timestamps)
        self._burst = float(burst)
        self._tag = bool(tag_generations)
        self.sync_mode = "timestamps" if timestamps else "arrival"
        self.video_lag = float(video_delay) - float(audio_delay)

        per_frame = self._rate / self._fps
        self._audio_parts = max(1, round(per_frame / (self._rate * _AUDIO_FRAME_S)))
        self._queues: dict[Kind, asyncio.Queue[OutputFrame | _End]] = {
            "audio": asyncio.Queue(max(1, math.ceil(max_queue_s * self._fps * self._audio_parts))),
            "video": asyncio.Queue(max(1, math.ceil(max_queue_s * self._fps))),
        }
        self._dropped: dict[Kind, int] = {"audio": 0, "video": 0}
        self._in_flight: list[tuple[float, int, int, Kind, OutputFrame]] = []  # heap
        self._last_delivery: dict[Kind, float] = {"audio": -math.inf, "video": -math.inf}
        self._seq = 0
        self._speech = _SpeechQueue(sample_rate, num_channels)
        self._next_frame = 0
        self._mouth = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0: float | None = None  # loop time of media time 0
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: ProviderError | None = None
        self._started = False
        self._closed = False

    # -- properties ----------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self._renderer.width

    @property
    def height(self) -> int:
        return self._renderer.height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def renderer(self) -> FaceRenderer:
        """The face being drawn (its :attr:`~FaceRenderer.mouth_box` locates the mouth)."""
        return self._renderer

    @property
    def frames_produced(self) -> int:
        """Video frames produced so far (the audio covers the same media time)."""
        return self._next_frame

    @property
    def media_time(self) -> float:
        """Seconds on the avatar's media clock since :meth:`start` (0 before it)."""
        if self._loop is None or self._t0 is None:
            return 0.0
        return (self._loop.time() - self._t0) * self._speed

    @property
    def dropped_frames(self) -> dict[str, int]:
        """Frames dropped per stream because the consumer did not read them in time."""
        return dict(self._dropped)

    # -- AvatarProvider ------------------------------------------------------------------------

    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Start the output clock (``room`` is ignored); emits ``ready``."""
        if self._closed:
            raise ProviderError("LocalAvatar is closed")
        if self._started:
            raise ProviderError("LocalAvatar.start() was already called")
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._task = asyncio.create_task(self._run(), name="local-avatar-output")
        self._emit("ready")

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Queue one frame of the current turn's speech (any rate, any channel count)."""
        self._check_usable()
        check_audio_frame(frame)
        if frame.samples_per_channel == 0:
            return
        self._speech.push(frame, asyncio.get_running_loop().time() + self._latency)
        self._wake()

    async def end_turn(self) -> None:
        """The turn's speech is complete: it plays to the end, then ``playback_finished``."""
        self._check_usable()
        self._speech.end_turn(asyncio.get_running_loop().time() + self._latency)
        self._wake()

    async def interrupt(self) -> None:
        """Discard all buffered speech now and bump the generation.

        Frames already produced (in flight or queued) are still delivered, with the old
        generation. If a turn was under way (speech pushed and not finished), emits
        ``playback_finished`` with ``interrupted=True`` and the seconds of it that were output.
        """
        self._bump_generation()
        if self._closed:
            return
        if self._error is not None:
            raise self._error
        finished = self._speech.clear()
        self._mouth = 0.0  # an interrupted face stops talking at once, it does not ease shut
        if finished is not None:
            self._emit("playback_finished", finished)
        self._wake()

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        """Audio at ``sample_rate``/``num_channels`` in ~10 ms frames, until closed."""
        return self._read("audio")

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        """I420 video frames at ``fps``, speaking and idle, until closed."""
        return self._read("video")

    async def aclose(self) -> None:
        """Stop the output task, drop everything queued, end the iterators. Idempotent."""
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._task = None
        self._speech.clear()
        self._in_flight.clear()
        for queue in self._queues.values():
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(_End(self._error))

    # -- output loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                self._produce_due(now)
                self._deliver_due(now)
                waiter = self._waiter = loop.create_future()
                timer = loop.call_at(self._next_wake(now), _resolve, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _produce_due(self, now: float) -> None:
        """Produce every frame whose time has come (earlier while bursting speech)."""
        while True:
            n = self._next_frame
            lead = 0.0
            if self._burst > 0 and self._speech.ready(self._samples(n, n + 1), now):
                lead = self._burst
            if self._wall_time(n / self._fps - lead) > now:
                return
            self._produce(n, now, lead)
            self._next_frame = n + 1

    def _produce(self, n: int, now: float, lead: float) -> None:
        """Frame ``n``: its audio period from the speech queue, the face, scheduled delivery."""
        s0 = self._samples(0, n)
        count = self._samples(n, n + 1)
        pcm, speech, events = self._speech.take(count, now)
        generation = self._generation if self._tag else None
        self._mouth = _smoothed(self._mouth, _loudness(pcm))
        media_t = n / self._fps
        blink = media_t % _BLINK_EVERY >= _BLINK_EVERY - _BLINK_FOR
        frame = self._picture(n, blink)
        stamp = media_t if self._timestamps else None
        if self._markers is not None:
            pcm = _mixed(pcm, self._marker_audio(s0, count))
        video = OutputFrame(frame, stamp, generation)
        self._schedule("video", video, self._wall_time(media_t - lead), now)
        parts = self._audio_parts
        for i in range(parts):
            a, b = (count * i) // parts, (count * (i + 1)) // parts
            chunk = np.ascontiguousarray(pcm[a:b])
            audio = rtc.AudioFrame(chunk.tobytes(), self._rate, self._channels, b - a)
            end = (s0 + b) / self._rate if self._timestamps else None
            item = OutputFrame(audio, end, generation, a < speech)
            self._schedule("audio", item, self._wall_time((s0 + a) / self._rate - lead), now)
        for event, arg in events:
            if arg is None:
                self._emit(event)
            else:
                self._emit(event, arg)

    def _picture(self, n: int, blink: bool) -> rtc.VideoFrame:
        """The face for frame ``n``; with markers, a copy of its planes stamped with ``n``."""
        if self._markers is None:
            return self._renderer.render(self._mouth, blink)
        y, u, v = self._renderer.planes(self._mouth, blink)
        y = y.copy()  # the renderer's planes are cached: never draw on them
        stamp_marker(y, n % self._marker_wrap)
        return i420_frame(y, u, v)

    def _marker_audio(self, start: int, count: int) -> np.ndarray:
        """Marker audio for output samples ``[start, start + count)`` of the media clock."""
        assert self._markers is not None
        return marker_audio_samples(
            start,
            count,
            sample_rate=self._rate,
            num_channels=self._channels,
            spec=self._markers,
        )

    def _schedule(self, kind: Kind, item: OutputFrame, due: float, now: float) -> None:
        """Deliver ``item`` at its due time plus the stream's delay and jitter, in order."""
        at = max(due, now) + self._delay[kind]
        if self._jitter:
            at += self._rng.uniform(0.0, self._jitter)
        at = max(at, self._last_delivery[kind])
        self._last_delivery[kind] = at
        self._seq += 1
        heapq.heappush(self._in_flight, (at, _ORDER[kind], self._seq, kind, item))

    def _deliver_due(self, now: float) -> None:
        heap = self._in_flight
        while heap and heap[0][0] <= now:
            _, _, _, kind, item = heapq.heappop(heap)
            queue = self._queues[kind]
            if queue.full():
                queue.get_nowait()
                self._dropped[kind] += 1
            queue.put_nowait(item)

    def _next_wake(self, now: float) -> float:
        wake = self._wall_time(self._next_frame / self._fps)
        if self._in_flight:
            wake = min(wake, self._in_flight[0][0])
        if self._burst > 0:
            pending = self._speech.next_available(now)
            if pending is not None:
                wake = min(wake, pending)
        return wake

    def _wall_time(self, media_t: float) -> float:
        assert self._t0 is not None
        return self._t0 + media_t / self._speed

    def _samples(self, n0: int, n1: int) -> int:
        """Output samples per channel between the starts of frames ``n0`` and ``n1``."""
        return round(n1 * self._rate / self._fps) - round(n0 * self._rate / self._fps)

    # -- plumbing ------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ProviderError("LocalAvatar is closed")
        if not self._started:
            raise ProviderError("call LocalAvatar.start() first")

    def _emit(self, event: str, *args: Any) -> None:
        """Emit to listeners; a failing listener is logged and never stops the output."""
        try:
            self.emit(event, *args)  # type: ignore[arg-type]
        except Exception:
            logger.exception("a %r listener of LocalAvatar failed", event)

    def _fail(self, exc: Exception) -> None:
        error = ProviderError(f"LocalAvatar output failed: {exc!r}")
        error.__cause__ = exc
        self._error = error
        logger.error("%s", error, exc_info=exc)
        self._in_flight.clear()
        for queue in self._queues.values():
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(_End(error))
        self._emit("disconnected", str(error))

    async def _read(self, kind: Kind) -> AsyncIterator[OutputFrame]:
        queue = self._queues[kind]
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                queue.put_nowait(item)  # later readers end too
                if item.error is not None:
                    raise item.error
                return
            yield item


def _loudness(pcm: np.ndarray) -> float:
    """Mouth target in [0, 1] from the RMS level of one frame period of output audio."""
    if pcm.size == 0:
        return 0.0
    rms = math.sqrt(float(np.mean(np.square(pcm, dtype=np.float64))))
    if rms <= 0:
        return 0.0
    db = 20.0 * math.log10(rms / 32768.0)
    return min(1.0, max(0.0, (db - _QUIET_DB) / (_LOUD_DB - _QUIET_DB)))


def _smoothed(level: float, target: float) -> float:
    """Opens quickly, closes a little slower; snaps shut once nearly closed and silent."""
    level += (target - level) * (_ATTACK if target > level else _RELEASE)
    return 0.0 if target == 0.0 and level < 0.03 else level


def _check_markers(markers: MarkerSpec, fps: float, rate: int, renderer: FaceRenderer) -> None:
    """Raise ValueError unless ``markers`` can be carried by this avatar's output."""
    if not isinstance(markers, MarkerSpec):
        raise ValueError(f"markers must be a MarkerSpec, got {type(markers).__name__}")
    if not math.isclose(markers.fps, fps, rel_tol=1e-9):
        raise ValueError(f"markers.fps={markers.fps} must equal the avatar's fps={fps}")
    if _marker_wrap(markers) == 0:
        raise ValueError("markers.burst_every is too large for the 16-bit frame numbers")
    marker_audio_samples(0, 1, sample_rate=rate, spec=markers)  # raises if the rate is too low
    stamp_marker(np.zeros((renderer.height, renderer.width), np.uint8), 0)  # ... or frames tiny


def _marker_wrap(markers: MarkerSpec) -> int:
    """Frame numbers wrap at the largest multiple of one code cycle that fits the marker."""
    cycle = markers.burst_every * markers.modulus
    return (MAX_FRAME_NUMBER + 1) // cycle * cycle


def _mixed(speech: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Speech plus marker audio (both int16 of one shape), clipped to the int16 range."""
    total = speech.astype(np.int32) + markers
    return np.clip(total, -32768, 32767).astype(np.int16)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
