"""Lossless recording of an avatar provider's output, replayed by :class:`RecordedProvider`.

:class:`ProviderRecorder` captures every :class:`OutputFrame` a provider yields from
``audio_frames()`` and ``video_frames()`` with its arrival time, plus the provider's events. Use it
as a tap (``recorder.wrap(provider)`` goes into the ``AvatarSession`` in place of the provider) or
feed it explicitly (``await recorder.write_audio(frame, arrival)``). Through the tap, a frame's
arrival is the moment the consumer (the session) took it from the provider's iterator. Frames are
encoded on one worker thread and streamed to disk; at most ``max_pending_bytes`` of frames wait
for it (then the writer waits: the tap slows the live path rather than drop a frame).

Recording format, version 1: two files.

``<name>.mkv`` -- a Matroska file any PyAV/FFmpeg reader opens:

- at most one video stream: codec ``ffv1`` (level 3, every frame a keyframe), pixel format
  ``yuv420p``, the recording's single frame size. The planes are the frames' exact I420 planes
  (odd sizes allowed; chroma is ``ceil(w/2) x ceil(h/2)``). Non-I420 input is stored as its I420
  conversion (what a ``VideoSource`` publishes anyway).
- at most one audio stream: codec ``pcm_s16le``, one packet per recorded frame holding its exact
  interleaved int16 samples, at the recording's single sample rate and channel count.
- packet pts/dts = the frame's arrival time in milliseconds since the recording started (Matroska
  stores timestamps in ms); the exact microsecond arrival is in the sidecar.

``<name>.mkv.jsonl`` -- the sidecar (see :func:`sidecar_path`), UTF-8 JSON Lines, one object
per line:

1. header: ``{"format": "livekit-avsync-recording", "version": 1, "label": str, "sync_mode":
   "auto"|"timestamps"|"arrival", "video_lag": float, "media": "<name>.mkv", "created": ISO-8601
   UTC}``
2. one record per frame or event, in the order recorded; ``t_us`` is the arrival time in integer
   microseconds since the recording started, non-decreasing per kind:

   - ``{"kind": "audio", "t_us": int, "ts": float|null, "gen": int|null, "speech": bool|null}``
   - ``{"kind": "video", "t_us": int, "ts": float|null, "gen": int|null}``
   - ``{"kind": "event", "t_us": int, "event": "playback_started"}``
   - ``{"kind": "event", "t_us": int, "event": "playback_finished", "playback_position": float,
     "interrupted": bool}``
   - ``{"kind": "event", "t_us": int, "event": "disconnected", "reason": str}``

   The n-th ``audio`` (``video``) record describes the n-th packet of the audio (video) stream.
   ``ts``/``gen``/``speech`` are the :class:`OutputFrame` fields (floats round-trip exactly).
3. last line, written on close: ``{"kind": "end", "duration_us": int, "audio": {"frames": int,
   "sample_rate": int, "channels": int}|null, "video": {"frames": int, "width": int, "height":
   int}|null, "error": str|null}``. ``duration_us`` is where the recording ends: the latest of
   the last audio arrival plus that frame's duration, the last video arrival plus the mean video
   frame interval, and the last event (a looping replay starts over there). ``error`` says why
   the recording stopped early, if it did. Without the end line (the recorder was never closed)
   a recording is rejected as unfinished.

Limits: one video size and one audio format per recording; a change is rejected with a
:class:`ProviderError` (the tap keeps the live session running but the recording is marked
failed). If one kind of output has not appeared yet, the other kind's packets are spooled to a
temporary file next to the recording until the container header can be written. A recording
without any frame has no media file, only its sidecar.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import os
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import av
import numpy as np
from livekit import rtc

from ..media.convert import audio_to_rtc, video_to_i420
from .base import AvatarProvider, OutputFrame, PlaybackFinished, ProviderError

if TYPE_CHECKING:
    from ..sync.aligner import SyncMode

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ProviderRecorder", "sidecar_path"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "livekit-avsync-recording"
FORMAT_VERSION = 1
MEDIA_TIME_BASE = Fraction(1, 1000)
"""Matroska stores packet timestamps in milliseconds."""

RECORDED_EVENTS = ("playback_started", "playback_finished", "disconnected")

_MUXER_OPTIONS = {
    # Packets are muxed in arrival order already: never hold one back waiting for the other
    # stream (the default holds up to 10 s of video when audio pauses).
    "max_interleave_delta": "1",
    # Bound the cluster the muxer assembles in memory.
    "cluster_size_limit": str(2 << 20),
    "cluster_time_limit": "1000",
}
_FFV1_OPTIONS = {"level": "3"}
_SPOOL_RECORD = struct.Struct("<BqI")  # stream (0 audio, 1 video), pts in ms, payload size
_BATCH = 32  # items handed to the worker thread at once


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Path of the JSON Lines sidecar that goes with the recording's media file ``path``."""
    media = Path(path)
    return media.with_name(media.name + ".jsonl")


@dataclass(slots=True)
class _Item:
    """One thing to record, as handed to the worker thread."""

    kind: Literal["audio", "video", "event"]
    t_us: int
    size: int  # bytes it holds in memory while queued
    frame: OutputFrame | None = None
    event: dict[str, Any] | None = None


class _MediaSink:
    """Writes one recording (Matroska media + JSON Lines sidecar). Used from one thread only."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self._path = path
        path.unlink(missing_ok=True)  # an empty recording has no media: leave no stale one
        self._sidecar: IO[str] = open(sidecar_path(path), "w", encoding="utf-8")
        self._write_line(header)
        self._container = av.open(
            str(path), "w", format="matroska", container_options=dict(_MUXER_OPTIONS)
        )
        self._container.metadata["title"] = f"{FORMAT_NAME} v{FORMAT_VERSION}"
        self._container.metadata["comment"] = (
            f"packet pts = arrival time (ms); frame metadata in {sidecar_path(path).name}"
        )
        self._audio: av.audio.stream.AudioStream | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio_format: tuple[int, int] | None = None
        self._video_size: tuple[int, int] | None = None
        self._spool: IO[bytes] | None = None
        self._header_written = False
        self._counts = {"audio": 0, "video": 0}
        self._duration_us = 0  # end of the last audio frame or event
        self._video_span = (0, 0)  # arrival of the first and the last video frame

    def write(self, item: _Item) -> None:
        if item.kind == "event":
            assert item.event is not None
            self._write_line({"kind": "event", "t_us": item.t_us, **item.event})
            self._duration_us = max(self._duration_us, item.t_us)
            return
        assert item.frame is not None
        if item.kind == "audio":
            self._write_audio(item.frame, item.t_us)
        else:
            self._write_video(item.frame, item.t_us)
        self._counts[item.kind] += 1

    def _write_audio(self, out: OutputFrame, t_us: int) -> None:
        frame = audio_to_rtc(out.frame)  # type: ignore[arg-type]
        channels, samples = frame.num_channels, frame.samples_per_channel
        data = frame.data.cast("B")[: samples * channels * 2].tobytes()
        if self._audio is None:
            self._audio = self._container.add_stream("pcm_s16le", rate=frame.sample_rate)
            self._audio.codec_context.layout = av.AudioLayout(f"{channels}c")
            self._audio.codec_context.format = "s16"
            self._audio.metadata["title"] = "provider audio (pts = arrival ms)"
            self._audio_format = (frame.sample_rate, channels)
            self._streams_changed()
        self._mux(0, data, _ms(t_us))
        self._write_line(
            {
                "kind": "audio",
                "t_us": t_us,
                "ts": _float_or_none(out.timestamp),
                "gen": _int_or_none(out.generation),
                "speech": None if out.speech is None else bool(out.speech),
            }
        )
        self._duration_us = max(self._duration_us, t_us + samples * 1_000_000 // frame.sample_rate)

    def _write_video(self, out: OutputFrame, t_us: int) -> None:
        frame = video_to_i420(out.frame)  # type: ignore[arg-type]  # the provider's own size
        if self._video is None:
            self._video = self._container.add_stream("ffv1", options=dict(_FFV1_OPTIONS))
            ctx = self._video.codec_context
            ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, "yuv420p"
            ctx.time_base = MEDIA_TIME_BASE
            ctx.gop_size = 1  # every frame a keyframe: a replay can skip without decoding
            self._video.metadata["title"] = "provider video (pts = arrival ms)"
            self._video_size = (frame.width, frame.height)
            self._streams_changed()
        av_frame = _i420_to_av(frame)
        av_frame.pts = _ms(t_us)
        av_frame.time_base = MEDIA_TIME_BASE
        for packet in self._video.encode(av_frame):
            self._mux(1, bytes(packet), packet.pts if packet.pts is not None else _ms(t_us))
        self._write_line(
            {
                "kind": "video",
                "t_us": t_us,
                "ts": _float_or_none(out.timestamp),
                "gen": _int_or_none(out.generation),
            }
        )
        self._video_span = (self._video_span[0] if self._counts["video"] else t_us, t_us)

    def _streams_changed(self) -> None:
        """Both kinds known: write the header now; otherwise spool until they are."""
        if self._audio is not None and self._video is not None:
            self._flush_spool()
        elif self._spool is None:
            self._spool = tempfile.TemporaryFile(dir=self._path.parent, prefix=".spool-")

    def _mux(self, stream_id: int, data: bytes, pts: int) -> None:
        if self._spool is not None and not self._header_written:
            self._spool.write(_SPOOL_RECORD.pack(stream_id, pts, len(data)))
            self._spool.write(data)
            return
        self._mux_now(stream_id, data, pts)

    def _mux_now(self, stream_id: int, data: bytes, pts: int) -> None:
        stream = self._audio if stream_id == 0 else self._video
        assert stream is not None
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = MEDIA_TIME_BASE
        packet.stream = stream
        packet.is_keyframe = True
        self._container.mux(packet)
        self._header_written = True

    def _flush_spool(self) -> None:
        spool, self._spool = self._spool, None
        if spool is None:
            return
        with spool:
            spool.seek(0)
            while head := spool.read(_SPOOL_RECORD.size):
                stream_id, pts, size = _SPOOL_RECORD.unpack(head)
                self._mux_now(stream_id, spool.read(size), pts)

    def close(self, error: str | None) -> None:
        """Finish both files; always writes the end line, naming ``error`` if there was one."""
        try:
            if self._video is not None:
                for packet in self._video.encode(None):
                    self._mux(1, bytes(packet), packet.pts or 0)
            self._flush_spool()
            self._container.close()
        except Exception as exc:
            logger.exception("recording %s: could not finish the media file", self._path)
            error = error or f"could not finish the media file: {exc}"
        finally:
            self._write_line(
                {
                    "kind": "end",
                    "duration_us": self._duration(),
                    "audio": None
                    if self._audio_format is None
                    else {
                        "frames": self._counts["audio"],
                        "sample_rate": self._audio_format[0],
                        "channels": self._audio_format[1],
                    },
                    "video": None
                    if self._video_size is None
                    else {
                        "frames": self._counts["video"],
                        "width": self._video_size[0],
                        "height": self._video_size[1],
                    },
                    "error": error,
                }
            )
            self._sidecar.close()

    def _duration(self) -> int:
        """Where the recording ends: after its last audio frame, event, or video frame (which
        lasts the mean video frame interval)."""
        first, last = self._video_span
        frames = self._counts["video"]
        video_end = last + (last - first) // (frames - 1) if frames > 1 else last
        return max(self._duration_us, video_end)

    def _write_line(self, record: dict[str, Any]) -> None:
        self._sidecar.write(json.dumps(record, separators=(",", ":")) + "\n")


class ProviderRecorder:
    """Records a provider's output frames and events to a lossless, replayable file.

    ``label``/``sync_mode``/``video_lag`` describe the recorded provider in the header; a
    :meth:`wrap`-ped provider supplies its own. Arrival times are seconds since the recording
    started: the wrapped provider's ``start()``, or the first write without an explicit
    ``arrival``. Use ``async with`` or call :meth:`aclose` to finalise the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        label: str = "recording",
        sync_mode: SyncMode = "auto",
        video_lag: float = 0.0,
        max_pending_bytes: int = 64 << 20,
    ) -> None:
        self._path = Path(path)
        if self._path.is_dir():
            raise ProviderError(f"recording path {self._path} is a directory")
        if not self._path.parent.is_dir():
            raise ProviderError(f"recording path {self._path}: directory does not exist")
        if max_pending_bytes <= 0:
            raise ValueError(f"max_pending_bytes must be > 0, got {max_pending_bytes}")
        self._describe: Callable[[], tuple[str, str, float]] = lambda: (
            label,
            sync_mode,
            video_lag,
        )
        self._max_pending = max_pending_bytes
        self._origin: float | None = None
        self._last_us: dict[str, int] = {}
        self._audio_format: tuple[int, int] | None = None
        self._video_size: tuple[int, int] | None = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._pending = 0
        self._drained = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sink: _MediaSink | None = None
        self._header: dict[str, Any] | None = None
        self._error: ProviderError | None = None
        self._closed = False
        self.frames_recorded = {"audio": 0, "video": 0}
        """Frames accepted so far, per kind."""

    @property
    def path(self) -> Path:
        """The media file (the sidecar is :func:`sidecar_path` of it)."""
        return self._path

    @property
    def error(self) -> ProviderError | None:
        """Why the recording failed, or None while it is healthy."""
        return self._error

    def wrap(self, provider: AvatarProvider) -> AvatarProvider:
        """Return a provider that forwards everything to ``provider`` and records its output."""
        if self._header is not None:
            raise ProviderError("wrap() must be called before anything is recorded")
        self._describe = lambda: (provider.label, provider.sync_mode, provider.video_lag)
        return _RecordingTap(provider, self)

    def mark_start(self) -> None:
        """Start the recording clock now, unless it already runs."""
        if self._origin is None:
            self._origin = time.monotonic()

    async def write_audio(self, frame: OutputFrame, arrival: float | None = None) -> None:
        """Record one audio frame that arrived ``arrival`` s after the start (None: now)."""
        audio = frame.frame
        if isinstance(audio, rtc.AudioFrame):
            fmt = (audio.sample_rate, audio.num_channels)
            size = len(audio.data) * 2
        elif isinstance(audio, av.AudioFrame):
            fmt = (audio.sample_rate, len(audio.layout.channels))
            size = audio.samples * fmt[1] * 2
        else:
            raise TypeError(f"expected an audio frame, got {type(audio).__name__}")
        self._check_open()
        if self._audio_format is None:
            self._audio_format = fmt
        elif fmt != self._audio_format:
            (rate, channels) = self._audio_format
            raise self._set_error(
                ProviderError(
                    f"recording {self._path}: audio format changed from {rate} Hz/{channels} ch "
                    f"to {fmt[0]} Hz/{fmt[1]} ch; a recording holds one audio format"
                )
            )
        t_us = self._arrival_us("audio", arrival)
        await self._enqueue(_Item("audio", t_us, size, frame=frame))

    async def write_video(self, frame: OutputFrame, arrival: float | None = None) -> None:
        """Record one video frame that arrived ``arrival`` s after the start (None: now)."""
        video = frame.frame
        if not isinstance(video, (rtc.VideoFrame, av.VideoFrame)):
            raise TypeError(f"expected a video frame, got {type(video).__name__}")
        self._check_open()
        size = (video.width, video.height)
        if self._video_size is None:
            self._video_size = size
        elif size != self._video_size:
            (width, height) = self._video_size
            raise self._set_error(
                ProviderError(
                    f"recording {self._path}: video size changed from {width}x{height} to "
                    f"{size[0]}x{size[1]}; a recording holds one video size"
                )
            )
        t_us = self._arrival_us("video", arrival)
        await self._enqueue(_Item("video", t_us, size[0] * size[1] * 3 // 2, frame=frame))

    async def write_event(self, event: str, *args: Any, arrival: float | None = None) -> None:
        """Record a provider event (``playback_started``, ``playback_finished``, ``disconnected``)
        with the arguments the provider emitted it with."""
        self._record_event(event, args, arrival)

    def _record_event(self, event: str, args: tuple[Any, ...], arrival: float | None) -> None:
        fields: dict[str, Any] = {"event": event}
        if event == "playback_finished":
            if len(args) != 1 or not isinstance(args[0], PlaybackFinished):
                raise ValueError("playback_finished takes one PlaybackFinished argument")
            fields["playback_position"] = float(args[0].playback_position)
            fields["interrupted"] = bool(args[0].interrupted)
        elif event == "disconnected":
            fields["reason"] = str(args[0]) if args else ""
        elif event != "playback_started":
            raise ValueError(f"cannot record event {event!r}; recorded: {RECORDED_EVENTS}")
        self._check_open()
        self._put(_Item("event", self._arrival_us("event", arrival), 0, event=fields))

    def _arrival_us(self, kind: str, arrival: float | None) -> int:
        if arrival is None:
            self.mark_start()
            assert self._origin is not None
            arrival = time.monotonic() - self._origin
        if not arrival >= 0:  # also catches NaN
            raise ValueError(f"arrival must be >= 0 s, got {arrival}")
        t_us = round(arrival * 1_000_000)
        last = self._last_us.get(kind, -1)
        if t_us < last:
            raise ValueError(
                f"{kind} arrival {arrival:.6f} s is before the previous {kind} record "
                f"({last / 1e6:.6f} s); arrivals must not go back"
            )
        self._last_us[kind] = t_us
        return t_us

    async def _enqueue(self, item: _Item) -> None:
        while self._pending > self._max_pending and self._error is None:
            self._drained.clear()
            await self._drained.wait()
        self._check_open()
        self.frames_recorded[item.kind] += 1
        self._put(item)

    def _put(self, item: _Item | None) -> None:
        self._ensure_writer()
        if item is not None:
            self._pending += item.size
        self._queue.put_nowait(item)

    def _ensure_writer(self) -> None:
        if self._writer is not None:
            return
        label, sync_mode, video_lag = self._describe()
        self._header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "label": str(label),
            "sync_mode": str(sync_mode),
            "video_lag": float(video_lag),
            "media": self._path.name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="avsync-recorder")
        self._writer = asyncio.create_task(self._write_loop(), name="avsync-recorder")

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ProviderError(f"recording {self._path} is closed")

    async def _write_loop(self) -> None:
        """Hand queued items to the worker thread in batches until the closing ``None``."""
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            items = [item for item in batch if item is not None]
            done = len(items) < len(batch)
            try:
                if self._error is None:
                    await loop.run_in_executor(self._executor, self._write_batch, items)
            except Exception as exc:
                self._set_error(exc)
            finally:
                self._pending -= sum(item.size for item in items)
                self._drained.set()

    def _write_batch(self, items: list[_Item]) -> None:
        if self._sink is None:
            assert self._header is not None
            self._sink = _MediaSink(self._path, self._header)
        for item in items:
            self._sink.write(item)

    def _set_error(self, exc: BaseException) -> ProviderError:
        """Mark the recording failed (the first error wins), log it once, and return it."""
        if self._error is not None:
            return self._error
        if isinstance(exc, ProviderError):
            error = exc
        else:
            error = ProviderError(f"recording {self._path} failed: {exc}")
            error.__cause__ = exc
        self._error = error
        self._drained.set()
        logger.error("%s; the rest of the output is not recorded", error, exc_info=exc)
        return error

    async def aclose(self) -> None:
        """Finish the files (trailer, end line) and stop the worker thread. Idempotent.

        Raises the :class:`ProviderError` that stopped the recording, if one did; the files are
        finalised anyway, with the error in the end line.
        """
        if not self._closed:
            self._closed = True
            self._put(None)  # an empty recording still gets its sidecar
            assert self._writer is not None and self._executor is not None
            try:
                await asyncio.shield(self._writer)
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._finish_files)
            except Exception as exc:
                self._set_error(exc)
            finally:
                self._executor.shutdown(wait=True)
        if self._error is not None:
            raise self._error

    def _finish_files(self) -> None:
        if self._sink is None:
            self._write_batch([])
        assert self._sink is not None
        self._sink.close(None if self._error is None else str(self._error))

    async def __aenter__(self) -> ProviderRecorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _RecordingTap(AvatarProvider):
    """A provider that forwards to another one and records everything it outputs.

    Recording failures never break the live session: they are logged, the recording stops, and
    :meth:`aclose` raises them after the wrapped provider is closed.
    """

    def __init__(self, inner: AvatarProvider, recorder: ProviderRecorder) -> None:
        super().__init__()
        self._inner = inner
        self._recorder = recorder
        self._closed = False
        for event in ("ready", *RECORDED_EVENTS):
            inner.on(event, functools.partial(self._forward, event))

    @property  # type: ignore[override]
    def label(self) -> str:
        return self._inner.label

    @property  # type: ignore[override]
    def sync_mode(self) -> SyncMode:
        return self._inner.sync_mode

    @property  # type: ignore[override]
    def video_lag(self) -> float:
        return self._inner.video_lag

    @property
    def generation(self) -> int:
        return self._inner.generation

    def _forward(self, event: str, *args: Any) -> None:
        if event != "ready" and not self._closed:
            try:
                self._recorder._record_event(event, args, None)
            except ProviderError:
                pass  # logged by the recorder, raised again by aclose()
            except (TypeError, ValueError) as exc:
                self._recorder._set_error(exc)
        self.emit(event, *args)  # type: ignore[arg-type]

    async def start(self, *, room: rtc.Room | None = None) -> None:
        self._recorder.mark_start()
        await self._inner.start(room=room)

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        await self._inner.push_audio(frame)

    async def end_turn(self) -> None:
        await self._inner.end_turn()

    async def interrupt(self) -> None:
        await self._inner.interrupt()

    async def audio_frames(self) -> AsyncIterator[OutputFrame]:
        async for out in self._inner.audio_frames():
            await self._record(self._recorder.write_audio, out)
            yield out

    async def video_frames(self) -> AsyncIterator[OutputFrame]:
        async for out in self._inner.video_frames():
            await self._record(self._recorder.write_video, out)
            yield out

    async def _record(self, write: Callable[..., Any], out: OutputFrame) -> None:
        if self._recorder.error is not None or self._closed:
            return
        try:
            await write(out)
        except ProviderError:
            pass  # logged by the recorder, raised again by aclose()
        except (TypeError, ValueError) as exc:
            self._recorder._set_error(exc)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            await self._recorder.aclose()


def _i420_to_av(frame: rtc.VideoFrame) -> av.VideoFrame:
    """Copy an I420 ``rtc.VideoFrame`` into a new yuv420p ``av.VideoFrame`` (respecting strides)."""
    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2
    data = np.frombuffer(frame.data, dtype=np.uint8)
    if data.size < w * h + 2 * cw * ch:
        raise ValueError(f"I420 frame {w}x{h} holds {data.size} bytes, too few for its planes")
    out = av.VideoFrame(w, h, "yuv420p")
    offset = 0
    for plane, (pw, ph) in zip(out.planes, ((w, h), (cw, ch), (cw, ch)), strict=True):
        dst = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        dst[:ph, :pw] = data[offset : offset + pw * ph].reshape(ph, pw)
        offset += pw * ph
    return out


def _ms(t_us: int) -> int:
    return (t_us + 500) // 1000


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: int | None) -> int | None:
    return None if value is None else int(value)
