"""Frame conversion between PyAV and LiveKit, without pixel or sample loops in Python.

Video: everything becomes an I420 ``rtc.VideoFrame`` with even sides (what libwebrtc takes
without aborting): I420 planes are moved with numpy slices, every other ``rtc`` type and PyAV
pixel format goes through PyAV's own ``reformat``. Audio:
any PyAV sample format becomes interleaved int16 with one vectorised numpy expression.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from livekit import rtc

from .validate import (
    InvalidFrame,
    check_audio_frame,
    check_av_audio_frame,
    check_video_frame,
    declared_samples,
    plane_layout,
)

__all__ = [
    "MIN_VIDEO_SIDE",
    "AudioLike",
    "InvalidFrame",
    "SpeechResampler",
    "VideoLike",
    "audio_to_rtc",
    "av_frame_time",
    "check_audio_frame",
    "i420_frame",
    "to_mono",
    "video_to_i420",
    "video_to_rtc",
]

AudioLike = rtc.AudioFrame | av.AudioFrame
VideoLike = rtc.VideoFrame | av.VideoFrame

_T = rtc.VideoBufferType
_I420 = _T.I420


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


MIN_VIDEO_SIDE = 16
"""Smallest width/height handed to a VideoSource. libwebrtc aborts the process on I420 frames
under 4x4 (``Check failed: width > 0`` once it halves them) and its adapter may scale a frame
down further when a real track is encoded; smaller frames are padded up to this."""

_AV_FORMATS = {
    _T.RGBA: "rgba",
    _T.ABGR: "abgr",
    _T.ARGB: "argb",
    _T.BGRA: "bgra",
    _T.RGB24: "rgb24",
    _T.I422: "yuv422p",
    _T.I444: "yuv444p",
    _T.I010: "yuv420p10le",
    _T.NV12: "nv12",
}


def video_to_rtc(frame: VideoLike) -> rtc.VideoFrame:
    """Return the I420 ``rtc.VideoFrame`` a ``VideoSource`` can safely take for ``frame``.

    :func:`video_to_i420` (validation, then conversion plane by plane), then odd sides padded
    to even and sides under :data:`MIN_VIDEO_SIDE` padded up to it, repeating the last
    row/column (no content is cropped). libwebrtc aborts the process on NV12, on I010 and on
    tiny I420 frames, so nothing else is ever handed to it. Even-sided I420 of at least
    :data:`MIN_VIDEO_SIDE` passes through unchanged.
    """
    frame = video_to_i420(frame)
    width, height = frame.width, frame.height
    if _padded_size(width, height) == (width, height):
        return frame
    y, u, v = _rtc_planes(frame)
    return i420_frame(*_pad_planes(y, u, v, width, height))


def video_to_i420(frame: VideoLike) -> rtc.VideoFrame:
    """An I420 ``rtc.VideoFrame`` of ``frame``'s own size (what the recorder stores).

    Validated first (:func:`~livekit_avsync.media.validate.check_video_frame`): a short buffer,
    an unknown type or a bad size raises :class:`InvalidFrame` (a ``ValueError``) naming the
    field; anything that is not a video frame raises ``TypeError``. I420 passes through, I420A
    drops its alpha plane, every other ``rtc`` type (NV12, I422, I444, I010, RGB and RGBA
    orders) and every PyAV pixel format is converted to yuv420p by PyAV, plane by plane.
    """
    check_video_frame(frame)
    if isinstance(frame, rtc.VideoFrame):
        if frame.type == _I420:
            return frame
        if frame.type == _T.I420A:
            y, u, v = _rtc_planes(frame)[:3]  # the alpha plane is simply left behind
        else:
            y, u, v = _yuv420_planes(_rtc_to_av(frame))
    else:
        y, u, v = _yuv420_planes(frame)
    return i420_frame(y, u, v)


def _padded_size(width: int, height: int) -> tuple[int, int]:
    return max(MIN_VIDEO_SIDE, width + width % 2), max(MIN_VIDEO_SIDE, height + height % 2)


def _rtc_planes(frame: rtc.VideoFrame) -> list[np.ndarray]:
    """Views of the planes packed in an ``rtc.VideoFrame``'s buffer, each (rows, row_bytes)."""
    data = np.frombuffer(frame.data, dtype=np.uint8)
    planes, offset = [], 0
    for row_bytes, rows in plane_layout(frame.type, frame.width, frame.height):
        size = row_bytes * rows
        planes.append(data[offset : offset + size].reshape(rows, row_bytes))
        offset += size
    return planes


def _rtc_to_av(frame: rtc.VideoFrame) -> av.VideoFrame:
    """Move an ``rtc.VideoFrame``'s planes into an ``av.VideoFrame`` of the matching format."""
    out = av.VideoFrame(frame.width, frame.height, _AV_FORMATS[frame.type])
    for plane, src in zip(out.planes, _rtc_planes(frame), strict=True):
        rows, row_bytes = src.shape
        dst = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        dst[:rows, :row_bytes] = src
    return out


def _yuv420_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V of a PyAV frame in yuv420p (converted by PyAV if needed), row padding dropped."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        try:
            frame = frame.reformat(format="yuv420p")
        except (ValueError, av.FFmpegError) as exc:
            raise InvalidFrame(
                "video.format",
                f"pixel format {frame.format.name!r}: PyAV cannot convert it to yuv420p",
            ) from exc
    width, height = frame.width, frame.height
    sizes = ((width, height), ((width + 1) // 2, (height + 1) // 2))
    y, u, v = (
        np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:h, :w]
        for plane, (w, h) in zip(frame.planes, (sizes[0], sizes[1], sizes[1]), strict=True)
    )
    return y, u, v


def _pad_planes(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad I420 planes to even sides of at least MIN_VIDEO_SIDE, repeating the edge."""
    pw, ph = _padded_size(width, height)
    if (pw, ph) == (width, height):
        return y, u, v
    y = np.pad(y, ((0, ph - height), (0, pw - width)), mode="edge")
    cw, ch = pw // 2, ph // 2
    u, v = (np.pad(c, ((0, ch - c.shape[0]), (0, cw - c.shape[1])), mode="edge") for c in (u, v))
    return y, u, v


def i420_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> rtc.VideoFrame:
    """Build an I420 ``rtc.VideoFrame`` from three uint8 planes (Y full size, U/V half size)."""
    height, width = y.shape
    if u.shape != ((height + 1) // 2, (width + 1) // 2) or v.shape != u.shape:
        raise ValueError(f"chroma planes {u.shape}/{v.shape} do not match luma {y.shape} for I420")
    data = np.concatenate((y.ravel(), u.ravel(), v.ravel())).astype(np.uint8, copy=False)
    return rtc.VideoFrame(width, height, _I420, data.tobytes())


def audio_to_rtc(frame: AudioLike) -> rtc.AudioFrame:
    """Return an interleaved int16 ``rtc.AudioFrame`` for ``frame``.

    Validated first (``InvalidFrame`` naming the field, ``TypeError`` for a non-audio object).
    ``rtc.AudioFrame`` passes through, cut to its declared samples if its buffer is longer;
    ``av.AudioFrame`` of any sample format (packed or planar, int or float) is converted with
    numpy.
    """
    if isinstance(frame, rtc.AudioFrame):
        check_audio_frame(frame)
        if frame.data.nbytes == frame.samples_per_channel * frame.num_channels * 2:
            return frame
        samples = declared_samples(frame)  # the buffer is longer than the frame: cut it
        return rtc.AudioFrame(
            samples.tobytes(), frame.sample_rate, frame.num_channels, samples.shape[0]
        )
    if not isinstance(frame, av.AudioFrame):
        raise TypeError(f"expected rtc.AudioFrame or av.AudioFrame, got {type(frame).__name__}")
    check_av_audio_frame(frame)
    channels = len(frame.layout.channels)
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
    samples = declared_samples(frame)
    if frame.num_channels == 1:
        return audio_to_rtc(frame)  # exactly the declared samples
    mono = np.round(samples.mean(axis=1)).astype(np.int16)
    return rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, mono.shape[0])
