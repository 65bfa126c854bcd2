"""Read back what local audio/video tracks play, on wall time, and measure it with the markers.

``rtc.AudioStream`` / ``rtc.VideoStream`` on a *local* track return exactly what its source
emits, with no room and no server: the test bench for anything that drives ``rtc.AudioSource`` /
``rtc.VideoSource``. :class:`LoopbackCapture` records, on ``time.monotonic()``:

- every video frame's arrival and decoded marker (never the pixels);
- every audio burst onset (to ~1 ms), and per 10 ms audio frame its start time and the first
  and last non-silent sample, so "how much audio played after T" is answered to the sample.

Timing convention: a video frame is shown when it arrives; the first sample of a 10 ms audio frame
plays when the frame arrives, the rest follow at the sample rate. Audio arrival times are
smoothed (a frame cannot start before the previous one ends; late reads caused by the event loop
are pulled back onto the stream's real-time grid), so jitter of the Python loop does not show up
as audio jitter. Memory grows only by a few numbers per frame (about 2 MB for 10 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from array import array
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2 as proto_ffi
from livekit.rtc._proto import video_frame_pb2 as proto_video_frame

from .analysis import (
    FrameContinuity,
    SyncReport,
    VideoObservation,
    analyze_sync,
    first_appearances,
    frame_continuity,
)
from .bursts import AudioBurst, BurstDetector, loud_mask
from .markers import MAX_TURN, MarkerCode, read_marker
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = ["CaptureError", "LoopbackCapture", "MediaCapture", "VideoArrival"]

logger = logging.getLogger("livekit_avsync.measure")

_MAX_LATE_S = 0.0005  # a frame read later than its slot moves the audio clock by at most this...
_JUMP_S = 0.05  # ...unless it is this late: then the stream really jumped and we follow it

VideoHook = Callable[[rtc.VideoFrame, float, MarkerCode | None], None]
AudioHook = Callable[[rtc.AudioFrame, float], None]


class CaptureError(RuntimeError):
    """A capture reader task failed (the original exception is the ``__cause__``)."""


class VideoArrival(NamedTuple):
    """A video frame read back at wall ``time``; ``frame``/``turn`` are None without a marker."""

    time: float
    frame: int | None
    turn: int | None


_VIDEO_QUEUE_FRAMES = 600  # 20 s at 30 fps: the reader may fall far behind, nothing is lost


class _CaptureVideoStream(rtc.VideoStream):
    """``rtc.VideoStream`` whose native frame queue is deep.

    The SDK leaves the native queue at its default, which drops the oldest frame as soon as the
    Python reader falls behind ("native video stream queue overflow"): on a busy machine the
    instrument then lost frames the synchronizer did send, and frame-accounting checks failed
    for the measurement's sake. Same request as the SDK's, plus ``queue_size_frames``.
    """

    def _create_owned_stream(self) -> Any:
        assert self._track is not None
        req = proto_ffi.FfiRequest()
        new = req.new_video_stream
        new.track_handle = self._track._ffi_handle.handle
        new.type = proto_video_frame.VideoStreamType.VIDEO_STREAM_NATIVE
        if self._format is not None:
            new.format = self._format
        new.normalize_stride = True
        new.queue_size_frames = _VIDEO_QUEUE_FRAMES
        return FfiClient.instance.request(req).new_video_stream.stream


class MediaCapture:
    """What a viewer played, on ``time.monotonic()``, and the queries on it.

    :class:`LoopbackCapture` feeds it from rtc streams; anything else that knows what was shown
    and heard when (a browser page: :mod:`livekit_avsync.measure.browser`) feeds it through
    :meth:`record_video` and :meth:`record_audio`, and gets the same analysis.
    ``on_video(frame, time, code)`` and ``on_audio(frame, time)`` hooks are called for every
    frame recorded (e.g. to write the output to a file); they must be quick.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        spec: MarkerSpec = DEFAULT_SPEC,
        silence_dbfs: float = -50.0,
        on_video: VideoHook | None = None,
        on_audio: AudioHook | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self._spec = spec
        self._silence_dbfs = silence_dbfs
        self._on_video = on_video
        self._on_audio = on_audio
        self._detector = BurstDetector(sample_rate, spec=spec)
        # per audio frame: start (wall s), duration (s), first/last loud sample offset (s or -1)
        self._a_start = array("d")
        self._a_dur = array("d")
        self._a_first = array("d")
        self._a_last = array("d")
        self._video: list[VideoArrival] = []
        self._first_seen: dict[tuple[int, int], VideoArrival] = {}  # (turn, frame) -> first
        self._failure: BaseException | None = None
        self._failure_raised = False
        self._changed = asyncio.Event()
        # how analyze() reads video by default: a room viewer sets a receiver's sync delay and
        # lets dropped frames be stood in for (see RoomViewer); local tracks need neither
        self.video_delay: float | Callable[[float], float] = 0.0
        self.frame_slack = 0

    def record_audio(self, frame: rtc.AudioFrame, arrival: float) -> None:
        """Record an audio frame whose first sample played at ``arrival`` (the audio reader's
        own entry; a capture fed by something else calls it directly, frames in order)."""
        samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        duration = frame.samples_per_channel / frame.sample_rate
        start = arrival
        if self._a_start:
            slot = self._a_start[-1] + self._a_dur[-1]  # where this frame belongs on the grid
            if slot <= arrival < slot + _JUMP_S:
                start = min(arrival, slot + _MAX_LATE_S)
        loud = np.flatnonzero(loud_mask(samples, self._silence_dbfs))
        self._a_start.append(start)
        self._a_dur.append(duration)
        self._a_first.append(loud[0] / frame.sample_rate if loud.size else -1.0)
        self._a_last.append((loud[-1] + 1) / frame.sample_rate if loud.size else -1.0)
        self._detector.feed(samples, start)
        if self._on_audio is not None:
            self._on_audio(frame, start)
        self._notify()

    def record_video(
        self, now: float, code: MarkerCode | None, frame: rtc.VideoFrame | None = None
    ) -> None:
        """Record a video frame shown at ``now`` carrying ``code`` (the video reader's own entry;
        a capture fed by something else calls it directly). The ``on_video`` hook sees ``frame``
        when there is one."""
        if code is None:
            self._video.append(VideoArrival(now, None, None))
        else:
            arrival = VideoArrival(now, code.frame, code.turn)
            self._video.append(arrival)
            self._first_seen.setdefault((code.turn, code.frame), arrival)
        if self._on_video is not None and frame is not None:
            self._on_video(frame, now, code)
        self._notify()

    def _fail(self, exc: BaseException, which: str) -> None:
        logger.error("loopback %s reader failed", which, exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _raise_failure(self) -> None:
        if self._failure is not None and not self._failure_raised:
            self._failure_raised = True
            raise CaptureError(f"capture reader failed: {self._failure!r}") from self._failure

    def check(self) -> None:
        """Raise :class:`CaptureError` if a reader has failed."""
        self._raise_failure()

    # waiting ---------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked after every frame read); TimeoutError else."""

        async def poll() -> None:
            while True:
                self._raise_failure()
                if predicate():
                    return
                await self._changed.wait()

        await asyncio.wait_for(poll(), timeout)

    async def wait_for_frame(
        self, frame: int, *, turn: int | None = None, timeout: float = 5.0
    ) -> VideoArrival:
        """Wait for the first arrival of marker frame ``frame`` (of any turn unless given)."""

        def first() -> VideoArrival | None:
            if turn is not None:
                return self._first_seen.get((turn, frame))
            seen = [self._first_seen.get((t, frame)) for t in range(MAX_TURN + 1)]
            return min((v for v in seen if v is not None), default=None)

        await self.wait_until(lambda: first() is not None, timeout)
        found = first()
        assert found is not None
        return found

    async def wait_for_bursts(self, count: int, timeout: float = 5.0) -> list[AudioBurst]:
        """Wait until at least ``count`` audio bursts have been detected; return all of them."""
        await self.wait_until(lambda: len(self._detector.bursts) >= count, timeout)
        return list(self._detector.bursts)

    # results ---------------------------------------------------------------------------------

    @property
    def video_arrivals(self) -> list[VideoArrival]:
        """Every video frame read, in order (a copy)."""
        self._raise_failure()
        return list(self._video)

    def video_observations(self) -> list[VideoObservation]:
        """First arrival of each marker frame, in time order (input of the analysis)."""
        self._raise_failure()
        return first_appearances(
            VideoObservation(v.time, v.frame, v.turn) for v in self._first_seen.values()
        )

    def video_after(self, t: float, *, turn: int | None = None) -> list[VideoArrival]:
        """Video frames that arrived after wall time ``t`` (only markers of ``turn`` if given)."""
        self._raise_failure()
        return [v for v in self._video if v.time > t and (turn is None or v.turn == turn)]

    def frame_continuity(self, since: float | None = None) -> FrameContinuity:
        """Missing, repeated and reordered marker frames (optionally only after ``since``)."""
        self._raise_failure()
        return frame_continuity([v.frame for v in self._video if since is None or v.time > since])

    @property
    def audio_bursts(self) -> list[AudioBurst]:
        """Burst onsets detected so far (a copy; bursts within 45 ms of the end come later)."""
        self._raise_failure()
        return list(self._detector.bursts)

    def analyze(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        max_offset: float | None = None,
        video_delay: float | Callable[[float], float] | None = None,
        frame_slack: int | None = None,
        where: Callable[[VideoObservation], bool] | None = None,
    ) -> SyncReport:
        """Pair the markers seen (optionally only within wall times [since, until]).

        ``video_delay`` (seconds, or a function of a frame's arrival time) shows frames that much
        later: the report of a receiver that holds video back by it (see
        :meth:`~.room.RoomViewer.synced_report`). ``frame_slack``: see
        :func:`~.analysis.analyze_sync` (for video that went through an encoder). Both default
        to the capture's :attr:`video_delay` / :attr:`frame_slack`. ``where`` keeps only the
        video observations it accepts (e.g. one turn's).
        """
        if video_delay is None:
            video_delay = self.video_delay
        if frame_slack is None:
            frame_slack = self.frame_slack
        self._raise_failure()

        def within(t: float) -> bool:
            return (since is None or t >= since) and (until is None or t <= until)

        delay = video_delay if callable(video_delay) else (lambda _t, d=video_delay: d)
        video = [
            dataclasses.replace(o, time=o.time + delay(o.time))
            for o in self.video_observations()
            if within(o.time) and (where is None or where(o))
        ]
        audio = [b for b in self._detector.bursts if within(b.time)]
        return analyze_sync(
            video, audio, spec=self._spec, max_offset=max_offset, frame_slack=frame_slack
        )

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio read back so far (silent or not)."""
        return float(sum(self._a_dur))

    def _loud_span(self) -> tuple[np.ndarray, np.ndarray]:
        start = np.array(self._a_start, dtype=np.float64)
        first = np.array(self._a_first, dtype=np.float64)
        last = np.array(self._a_last, dtype=np.float64)
        loud = first >= 0
        return start[loud] + first[loud], start[loud] + last[loud]

    def first_sound(self, after: float | None = None) -> float | None:
        """Wall time of the first non-silent sample at or after ``after`` (None: none yet)."""
        self._raise_failure()
        begins, ends = self._loud_span()
        if after is not None:
            keep = ends > after
            begins, ends = np.maximum(begins[keep], after), ends[keep]
        return float(begins[0]) if begins.size else None

    def last_sound(self, after: float | None = None) -> float | None:
        """Wall time at which the last non-silent sample (after ``after``) finished playing."""
        self._raise_failure()
        _, ends = self._loud_span()
        if after is not None:
            ends = ends[ends > after]
        return float(ends[-1]) if ends.size else None

    def audio_tail(self, t: float, *, max_gap: float = 0.05) -> float:
        """Seconds the sound playing at wall time ``t`` (e.g. a clear) went on after it.

        The sound ends at the first silence longer than ``max_gap``; 0 if it was silent at ``t``.
        """
        self._raise_failure()
        begins, ends = self._loud_span()
        keep = ends > t
        begins, ends = begins[keep], ends[keep]
        if begins.size == 0 or begins[0] - t > max_gap:
            return 0.0
        gaps = np.flatnonzero(begins[1:] - ends[:-1] > max_gap)
        last = int(gaps[0]) if gaps.size else ends.size - 1
        return float(ends[: last + 1].max()) - t

    def finish(self) -> None:
        """No more media comes: report the bursts still waiting for their analysis window."""
        self._detector.flush()


class LoopbackCapture(MediaCapture):
    """Records what a local audio track and (optionally) a local video track play.

    Use ``async with LoopbackCapture.from_sources(audio_source, video_source) as cap:`` (or
    :meth:`start` / :meth:`aclose`), drive the sources, then query. ``on_video(frame, time, code)``
    and ``on_audio(frame, time)`` hooks are called for every frame read (e.g. to write the output
    to a file); they must be quick. A failure in a reader or a hook stops that reader and is
    raised as :class:`CaptureError` by the next query or by :meth:`aclose`.
    """

    def __init__(
        self,
        audio_track: rtc.Track,
        video_track: rtc.Track | None = None,
        *,
        sample_rate: int = 48000,
        spec: MarkerSpec = DEFAULT_SPEC,
        silence_dbfs: float = -50.0,
        on_video: VideoHook | None = None,
        on_audio: AudioHook | None = None,
    ) -> None:
        if audio_track is None or audio_track.kind != rtc.TrackKind.KIND_AUDIO:
            raise ValueError("audio_track must be an audio track")
        if video_track is not None and video_track.kind != rtc.TrackKind.KIND_VIDEO:
            raise ValueError("video_track must be a video track")
        super().__init__(
            sample_rate=sample_rate,
            spec=spec,
            silence_dbfs=silence_dbfs,
            on_video=on_video,
            on_audio=on_audio,
        )
        self._audio_track = audio_track
        self._video_track = video_track
        self._streams: list[rtc.AudioStream | rtc.VideoStream] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = self._closed = False

    @classmethod
    def from_sources(
        cls,
        audio_source: rtc.AudioSource,
        video_source: rtc.VideoSource | None = None,
        *,
        sample_rate: int = 48000,
        spec: MarkerSpec = DEFAULT_SPEC,
        silence_dbfs: float = -50.0,
        on_video: VideoHook | None = None,
        on_audio: AudioHook | None = None,
    ) -> LoopbackCapture:
        """Wrap sources into local tracks and capture those (keywords as for the constructor)."""
        audio = rtc.LocalAudioTrack.create_audio_track("avsync-capture-audio", audio_source)
        video = (
            rtc.LocalVideoTrack.create_video_track("avsync-capture-video", video_source)
            if video_source is not None
            else None
        )
        return cls(
            audio,
            video,
            sample_rate=sample_rate,
            spec=spec,
            silence_dbfs=silence_dbfs,
            on_video=on_video,
            on_audio=on_audio,
        )

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the streams and start reading (idempotent)."""
        if self._closed:
            raise RuntimeError("LoopbackCapture is closed")
        if self._started:
            return
        self._started = True
        audio = rtc.AudioStream(self._audio_track, sample_rate=self._sample_rate, num_channels=1)
        self._streams.append(audio)
        self._tasks.append(asyncio.create_task(self._read_audio(audio), name="capture-audio"))
        if self._video_track is not None:
            video = _CaptureVideoStream(self._video_track, format=rtc.VideoBufferType.I420)
            self._streams.append(video)
            self._tasks.append(asyncio.create_task(self._read_video(video), name="capture-video"))

    async def aclose(self) -> None:
        """Stop reading and close the streams (idempotent); raises a reader failure not seen yet."""
        if not self._closed:
            self._closed = True
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for stream in self._streams:
                await stream.aclose()
            self.finish()
        self._raise_failure()

    async def __aenter__(self) -> LoopbackCapture:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # readers ---------------------------------------------------------------------------------

    async def _read_audio(self, stream: rtc.AudioStream) -> None:
        try:
            async for event in stream:
                self.record_audio(event.frame, time.monotonic())
        except Exception as exc:
            self._fail(exc, "audio")

    async def _read_video(self, stream: rtc.VideoStream) -> None:
        try:
            async for event in stream:
                self.record_video(time.monotonic(), read_marker(event.frame), event.frame)
        except Exception as exc:
            self._fail(exc, "video")
