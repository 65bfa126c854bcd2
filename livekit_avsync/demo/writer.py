"""Write what a viewer saw and heard to an MP4 (H.264 + AAC), timed by when it arrived.

Frames are handed over from the event loop (copied, so the hooks stay quick) and encoded by one
worker thread; PyAV releases the GIL while encoding, so the event loop keeps its timing. Video
frames are stamped with their arrival time, audio is placed at its arrival time (silence fills
real gaps), so the file's audio/video offset is the one the viewer experienced. Audio that arrives
in a clump (its reader was held up) is spread back over the time it really played: a frame ends
no later than the next one starts. Time zero is the first video frame's arrival; audio from
before it is left out.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from livekit import rtc

__all__ = ["Mp4Writer", "WriterError"]

logger = logging.getLogger("livekit_avsync.demo")

_VIDEO_TIME_BASE = Fraction(1, 90000)
_GAP_S = 0.005  # audio arriving this much later than the previous frame's end is a real gap
_OVERLAP_S = 0.02  # audio placed this much before the previous frame's end drops the overlap
_HOLD_S = 0.3  # audio is placed once this much newer audio has arrived


class WriterError(RuntimeError):
    """The MP4 could not be written (the original exception is the ``__cause__``)."""


@dataclass(slots=True)
class _Video:
    data: bytes
    pts: int


@dataclass(slots=True)
class _Audio:
    samples: np.ndarray  # int16 mono
    position: int  # sample index on the file's clock


class Mp4Writer:
    """An MP4 of I420 video at ``width`` x ``height`` and mono audio at ``sample_rate``.

    Call :meth:`add_video` / :meth:`add_audio` with each frame and its arrival time (seconds on
    one clock), then :meth:`close` (blocking; run it in a thread from async code). A failure of
    the worker is raised by :meth:`check` and :meth:`close` as :class:`WriterError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        sample_rate: int = 48000,
        crf: int = 23,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"video size must be even and positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.sample_rate = width, height, sample_rate
        self._fps = fps
        self._crf = crf
        self._t0: float | None = None
        self._last_pts = -1
        self._next_sample: int | None = None
        self._held: deque[tuple[float, np.ndarray]] = deque()  # (start, mono) not yet placed
        self._queue: queue.SimpleQueue[_Video | _Audio | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closed = False
        self.video_frames = 0
        self.audio_samples = 0
        self._thread = threading.Thread(target=self._work, name="demo-mp4-writer", daemon=True)
        self._thread.start()

    @property
    def start_time(self) -> float | None:
        """Arrival time of the first video frame: time zero of the file (None before it)."""
        return self._t0

    @property
    def duration(self) -> float:
        """Seconds of audio placed in the file so far."""
        return 0.0 if self._next_sample is None else self._next_sample / self.sample_rate

    def add_video(self, frame: rtc.VideoFrame, t: float) -> None:
        """Queue a frame shown from time ``t`` (I420 of the writer's size)."""
        if self._closed:
            return
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError(
                f"video frame is {frame.width}x{frame.height}, the file {self.width}x{self.height}"
            )
        if frame.type != rtc.VideoBufferType.I420:
            frame = frame.convert(rtc.VideoBufferType.I420)
        if self._t0 is None:
            self._t0 = t
        pts = max(round((t - self._t0) / _VIDEO_TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        self.video_frames += 1
        self._queue.put(_Video(bytes(frame.data), pts))

    def add_audio(self, frame: rtc.AudioFrame, t: float) -> None:
        """Queue audio whose first sample played at time ``t`` (int16, mixed down to mono)."""
        if self._closed:
            return
        if frame.sample_rate != self.sample_rate:
            raise ValueError(f"audio is {frame.sample_rate} Hz, the file {self.sample_rate} Hz")
        samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        if frame.num_channels > 1:
            mono = np.rint(samples.mean(axis=1)).astype(np.int16)
        else:
            mono = samples[:, 0].copy()
        held = self._held
        held.append((t, mono))
        later = t
        for i in range(len(held) - 2, -1, -1):  # a frame ends before the next one starts
            start, pcm = held[i]
            latest = later - len(pcm) / self.sample_rate
            if start <= latest:
                break
            held[i] = (latest, pcm)
            later = latest
        while held and held[0][0] < t - _HOLD_S:
            self._place(*held.popleft())

    def _place(self, start: float, samples: np.ndarray) -> None:
        """Put audio that played from ``start`` at its position in the file."""
        if self._t0 is None:
            return  # before the first picture
        at = round((start - self._t0) * self.sample_rate)
        if self._next_sample is None:
            if at + len(samples) <= 0:
                return
            samples, at = samples[max(0, -at) :], max(0, at)
            self._next_sample = at
        if at - self._next_sample > _GAP_S * self.sample_rate:
            self._next_sample = at  # nothing played in between: the worker pads with silence
        elif self._next_sample - at > _OVERLAP_S * self.sample_rate:
            samples = samples[self._next_sample - at :]  # keep the picture's timing
        if len(samples) == 0:
            return
        self._queue.put(_Audio(samples, self._next_sample))
        self._next_sample += len(samples)
        self.audio_samples += len(samples)

    def check(self) -> None:
        """Raise :class:`WriterError` if the worker has failed."""
        if self._error is not None:
            raise WriterError(f"writing {self.path} failed: {self._error!r}") from self._error

    def close(self) -> None:
        """Encode what is queued, finish the file and stop the worker. Idempotent; blocks."""
        if not self._closed:
            while self._held:
                self._place(*self._held.popleft())
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        self.check()

    # -- worker thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._encode_all()
        except BaseException as exc:  # kept and raised by check()/close(), never lost
            logger.error("MP4 writer failed", exc_info=exc)
            self._error = exc
            while self._queue.get() is not None:  # drain, so producers are never held up
                pass

    def _encode_all(self) -> None:
        with av.open(
            os.fspath(self.path), "w", format="mp4", options={"movflags": "+faststart"}
        ) as out:
            video = out.add_stream("libx264", rate=Fraction(self._fps).limit_denominator(1001))
            video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
            video.time_base = _VIDEO_TIME_BASE
            video.codec_context.time_base = _VIDEO_TIME_BASE  # keep arrival-time pts exact
            video.options = {"preset": "veryfast", "crf": str(self._crf)}
            audio = out.add_stream("aac", rate=self.sample_rate)
            audio.layout = "mono"
            chunk = audio.codec_context.frame_size or 1024
            pending = np.zeros(0, np.int16)  # audio not yet encoded, starting at `written`
            written = 0
            while (item := self._queue.get()) is not None:
                if isinstance(item, _Video):
                    out.mux(video.encode(self._video_frame(item)))
                    continue
                if item.position > written + len(pending):  # a gap: play silence
                    pending = np.concatenate(
                        (pending, np.zeros(item.position - written - len(pending), np.int16))
                    )
                pending = np.concatenate((pending, item.samples))
                while len(pending) >= chunk:
                    out.mux(audio.encode(self._audio_frame(pending[:chunk], written)))
                    pending, written = pending[chunk:], written + chunk
            if len(pending):
                out.mux(audio.encode(self._audio_frame(pending, written)))
            out.mux(video.encode(None))
            out.mux(audio.encode(None))

    def _video_frame(self, item: _Video) -> av.VideoFrame:
        w, h = self.width, self.height
        packed = np.frombuffer(item.data, np.uint8, count=w * h * 3 // 2).reshape(-1, w)
        frame = av.VideoFrame.from_ndarray(packed, format="yuv420p")
        frame.pts, frame.time_base = item.pts, _VIDEO_TIME_BASE
        return frame

    def _audio_frame(self, samples: np.ndarray, position: int) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts, frame.time_base = position, Fraction(1, self.sample_rate)
        return frame
