"""Frame conversion between PyAV and LiveKit, without pixel or sample loops in Python.

Video: ``yuv420p`` is moved plane by plane into an I420 ``rtc.VideoFrame`` (row padding stripped
with one numpy slice); every other PyAV pixel format goes through PyAV's own ``reformat``. Audio:
any PyAV sample format becomes interleaved int16 with one vectorised numpy expression.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from livekit import rtc

__all__ = [
    "AudioLike",
    "SpeechResampler",
    "VideoLike",
    "audio_to_rtc",
    "av_frame_time",
    "check_audio_frame",
    "i420_frame",
    "to_mono",
    "video_to_rtc",
]

AudioLike = rtc.AudioFrame | av.AudioFrame
VideoLike = rtc.VideoFrame | av.VideoFrame

_I420 = rtc.VideoBufferType.I420


def av_frame_time(frame: av.AudioFrame | av.VideoFrame) -> float | None:
    """Presentation time of a PyAV frame in seconds, or None without ``pts``/``time_base``."""
    if frame.pts is None:
        return None
    time_base = frame.time_base
    if time_base is None:
        if isinstance(frame, av.AudioFrame) and frame.sample_rate:
            time_base = Fraction(1, frame.sample_rate)
        else:
            return None
    return float(frame.pts * time_base)


def _plane_bytes(plane: av.video.plane.VideoPlane, width: int, height: int) -> bytes:
    """Copy one plane, dropping the row padding PyAV keeps for alignment."""
    if plane.line_size == width:
        return bytes(plane)
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:height, :width]
    return rows.tobytes()


def video_to_rtc(frame: VideoLike) -> rtc.VideoFrame:
    """Return an ``rtc.VideoFrame`` for ``frame``.

    ``rtc.VideoFrame`` passes through unchanged (VideoSource accepts all its buffer types).
    ``av.VideoFrame`` in yuv420p is moved into I420 plane by plane; other pixel formats are
    converted to yuv420p by PyAV first. Raises ``ValueError`` for empty frames and ``TypeError``
    for anything that is not a video frame.
    """
    if isinstance(frame, rtc.VideoFrame):
        if frame.width <= 0 or frame.height <= 0:
            raise ValueError(f"video frame is empty ({frame.width}x{frame.height})")
        return frame
    if not isinstance(frame, av.VideoFrame):
        raise TypeError(f"expected rtc.VideoFrame or av.VideoFrame, got {type(frame).__name__}")
    width, height = frame.width, frame.height
    if width <= 0 or height <= 0:
        raise ValueError(f"video frame is empty ({width}x{height})")
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        try:
            frame = frame.reformat(format="yuv420p")
        except (ValueError, av.FFmpegError) as exc:
            raise ValueError(
                f"unsupported pixel format {frame.format.name!r}: PyAV cannot convert it to yuv420p"
            ) from exc
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y, u, v = frame.planes
    data = b"".join(
        (_plane_bytes(y, width, height), _plane_bytes(u, cw, ch), _plane_bytes(v, cw, ch))
    )
    return rtc.VideoFrame(width, height, _I420, data)


def i420_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> rtc.VideoFrame:
    """Build an I420 ``rtc.VideoFrame`` from three uint8 planes (Y full size, U/V half size)."""
    height, width = y.shape
    if u.shape != ((height + 1) // 2, (width + 1) // 2) or v.shape != u.shape:
        raise ValueError(f"chroma planes {u.shape}/{v.shape} do not match luma {y.shape} for I420")
    data = np.concatenate((y.ravel(), u.ravel(), v.ravel())).astype(np.uint8, copy=False)
    return rtc.VideoFrame(width, height, _I420, data.tobytes())


def audio_to_rtc(frame: AudioLike) -> rtc.AudioFrame:
    """Return an interleaved int16 ``rtc.AudioFrame`` for ``frame``.

    ``rtc.AudioFrame`` passes through; ``av.AudioFrame`` of any sample format (packed or planar,
    int or float) is converted with numpy. Raises ``TypeError`` for anything else.
    """
    if isinstance(frame, rtc.AudioFrame):
        return frame
    if not isinstance(frame, av.AudioFrame):
        raise TypeError(f"expected rtc.AudioFrame or av.AudioFrame, got {type(frame).__name__}")
    channels = len(frame.layout.channels)
    if frame.samples == 0:
        raise ValueError("audio frame is empty (0 samples)")
    if frame.sample_rate <= 0 or channels <= 0:
        raise ValueError(
            f"audio frame has no sample rate or channels ({frame.sample_rate} Hz, {channels} ch)"
        )
    samples = frame.to_ndarray()
    if frame.format.is_planar:
        samples = samples.T  # (channels, n) -> (n, channels)
    else:
        samples = samples.reshape(-1, channels)
    if samples.dtype.kind == "f":
        samples = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
    elif samples.dtype == np.int32:
        samples = (samples >> 16).astype(np.int16)
    elif samples.dtype == np.uint8:
        samples = ((samples.astype(np.int16) - 128) << 8).astype(np.int16)
    elif samples.dtype != np.int16:
        raise ValueError(f"unsupported audio sample format {frame.format.name!r}")
    samples = np.ascontiguousarray(samples)
    return rtc.AudioFrame(samples.tobytes(), frame.sample_rate, channels, samples.shape[0])


def check_audio_frame(frame: rtc.AudioFrame) -> None:
    """Raise a clear error unless ``frame`` is an ``rtc.AudioFrame`` with a rate and channels."""
    if not isinstance(frame, rtc.AudioFrame):
        raise TypeError(f"expected rtc.AudioFrame, got {type(frame).__name__}")
    if frame.sample_rate <= 0 or frame.num_channels <= 0:
        raise ValueError(
            f"audio frame has no sample rate or channels "
            f"({frame.sample_rate} Hz, {frame.num_channels} ch)"
        )


class SpeechResampler:
    """A turn's speech as mono int16 PCM at one ``rate``, from frames of any rate and channels.

    The ``rtc.AudioResampler`` is made on demand and kept while the input rate stays; its buffered
    tail comes out on :meth:`flush` (the turn's end, or a rate change mid-turn) and is thrown away
    by :meth:`drop` (an interrupt: that tail belongs to the cut turn).
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler: rtc.AudioResampler | None = None
        self._input_rate = 0

    def push(self, frame: rtc.AudioFrame) -> bytes:
        mono = to_mono(frame)
        head = b""
        if self._resampler is not None and self._input_rate != mono.sample_rate:
            head = self.flush()  # the input rate changed mid-turn
        if mono.sample_rate == self.rate:
            return head + bytes(mono.data)
        if self._resampler is None:
            self._resampler = rtc.AudioResampler(mono.sample_rate, self.rate, num_channels=1)
            self._input_rate = mono.sample_rate
        return head + b"".join(bytes(out.data) for out in self._resampler.push(mono))

    def flush(self) -> bytes:
        resampler, self._resampler = self._resampler, None
        if resampler is None:
            return b""
        return b"".join(bytes(out.data) for out in resampler.flush())

    def drop(self) -> None:
        self._resampler = None


def to_mono(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    """Average the channels of an interleaved int16 frame (a no-op for mono)."""
    if frame.num_channels == 1:
        return frame
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = np.round(samples.mean(axis=1)).astype(np.int16)
    return rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, mono.shape[0])
