"""Checks run on every frame at the edge, before anything reaches native code.

The LiveKit FFI trusts a frame's declared size and type: a short buffer is read past its end
(SIGSEGV), an unknown type or NV12 panics the native side, and an audio frame with no rate
fails with ``null pointer``. These checks reject such frames with an :class:`InvalidFrame`
(a ``ValueError``) naming the field, cheaply (lengths and ranges, no pixel or sample copies).
"""

from __future__ import annotations

import av
import numpy as np
from livekit import rtc

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MAX_VIDEO_SIDE",
    "MIN_SAMPLE_RATE",
    "InvalidFrame",
    "check_audio_frame",
    "check_av_audio_frame",
    "check_frame",
    "check_source_open",
    "check_video_frame",
    "declared_samples",
    "plane_layout",
]

_T = rtc.VideoBufferType
MAX_VIDEO_SIDE = 16384
"""Largest width or height accepted (libwebrtc's own limit is lower for encoding anyway)."""
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
MAX_CHANNELS = 8
_AV_SAMPLE_FORMATS = {"s16", "s16p", "s32", "s32p", "flt", "fltp", "dbl", "dblp", "u8", "u8p"}


class InvalidFrame(ValueError):
    """A frame that cannot be played; ``field`` names what is wrong (``"video.data"``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def plane_layout(buffer_type: int, width: int, height: int) -> list[tuple[int, int]]:
    """``(row_bytes, rows)`` of each plane, packed one after another as ``rtc.VideoFrame`` holds
    them (the layout ``livekit.rtc`` hands to the FFI). Raises :class:`InvalidFrame` for a type
    value that is not a ``VideoBufferType``."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if buffer_type in (_T.RGBA, _T.ABGR, _T.ARGB, _T.BGRA):
        return [(4 * width, height)]
    if buffer_type == _T.RGB24:
        return [(3 * width, height)]
    if buffer_type == _T.I420:
        return [(width, height), (cw, ch), (cw, ch)]
    if buffer_type == _T.I420A:
        return [(width, height), (cw, ch), (cw, ch), (width, height)]
    if buffer_type == _T.I422:
        return [(width, height), (cw, height), (cw, height)]
    if buffer_type == _T.I444:
        return [(width, height)] * 3
    if buffer_type == _T.I010:
        return [(2 * width, height), (2 * cw, ch), (2 * cw, ch)]
    if buffer_type == _T.NV12:
        return [(width, height), (2 * cw, ch)]
    raise InvalidFrame("video.type", f"{buffer_type!r} is not an rtc.VideoBufferType")


def _check_size(width: object, height: object) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidFrame(f"video.{name}", f"must be an int, got {type(value).__name__}")
        if not 0 < value <= MAX_VIDEO_SIDE:
            raise InvalidFrame(f"video.{name}", f"must be 1..{MAX_VIDEO_SIDE}, got {value}")


def check_video_frame(frame: rtc.VideoFrame | av.VideoFrame) -> None:
    """Raise :class:`InvalidFrame` unless ``frame`` can be converted and published.

    For ``rtc.VideoFrame``: size in range, a known buffer type, and a buffer at least as long
    as that type's planes. ``TypeError`` for anything that is not a video frame.
    """
    if isinstance(frame, av.VideoFrame):
        _check_size(frame.width, frame.height)
        return
    if not isinstance(frame, rtc.VideoFrame):
        raise TypeError(f"expected rtc.VideoFrame or av.VideoFrame, got {type(frame).__name__}")
    _check_size(frame.width, frame.height)
    if not isinstance(frame.type, int) or isinstance(frame.type, bool):
        raise InvalidFrame("video.type", f"must be an rtc.VideoBufferType, got {frame.type!r}")
    need = sum(row * rows for row, rows in plane_layout(frame.type, frame.width, frame.height))
    have = frame.data.nbytes
    if have < need:
        name = _T.Name(frame.type)
        raise InvalidFrame(
            "video.data",
            f"{name} {frame.width}x{frame.height} needs {need} bytes, the buffer holds {have}",
        )


def _check_rate_and_channels(rate: object, channels: object) -> None:
    if not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidFrame(
            "audio.sample_rate", f"must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, got {rate!r}"
        )
    if not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise InvalidFrame("audio.num_channels", f"must be 1..{MAX_CHANNELS}, got {channels!r}")


def check_av_audio_frame(frame: av.AudioFrame) -> None:
    """Raise :class:`InvalidFrame` unless the PyAV frame has a usable rate, channel count,
    sample count and a sample format we convert."""
    _check_rate_and_channels(frame.sample_rate, len(frame.layout.channels))
    if frame.samples <= 0:
        raise InvalidFrame("audio.samples", f"the frame is empty ({frame.samples} samples)")
    if frame.format.name not in _AV_SAMPLE_FORMATS:
        raise InvalidFrame("audio.format", f"sample format {frame.format.name!r} unsupported")


def check_audio_frame(frame: rtc.AudioFrame) -> None:
    """Raise :class:`InvalidFrame` unless ``frame`` has a usable rate, channel count and sample
    count, and a buffer holding every declared sample. ``TypeError`` for anything that is not
    an ``rtc.AudioFrame`` (what providers' ``push_audio`` takes)."""
    if not isinstance(frame, rtc.AudioFrame):
        raise TypeError(f"expected rtc.AudioFrame, got {type(frame).__name__}")
    _check_rate_and_channels(frame.sample_rate, frame.num_channels)
    n = frame.samples_per_channel
    if not isinstance(n, int) or n <= 0:
        raise InvalidFrame("audio.samples_per_channel", f"the frame is empty ({n!r} samples)")
    need = n * frame.num_channels * 2
    have = frame.data.nbytes
    if have < need:
        raise InvalidFrame(
            "audio.data",
            f"{n} samples x {frame.num_channels} ch of int16 need {need} bytes, got {have}",
        )


def check_frame(frame: object) -> None:
    """Validate any frame ``AVSynchronizer.push`` takes; ``TypeError`` for anything else."""
    if isinstance(frame, av.AudioFrame):
        check_av_audio_frame(frame)
    elif isinstance(frame, rtc.AudioFrame):
        check_audio_frame(frame)
    elif isinstance(frame, (rtc.VideoFrame, av.VideoFrame)):
        check_video_frame(frame)
    else:
        raise TypeError(
            "expected rtc.AudioFrame, rtc.VideoFrame, av.AudioFrame or av.VideoFrame, "
            f"got {type(frame).__name__}"
        )


def declared_samples(frame: rtc.AudioFrame) -> np.ndarray:
    """The frame's declared samples only, as an (n, channels) int16 view of its buffer.

    ``rtc.AudioFrame`` accepts a buffer longer than ``samples_per_channel`` declares; the
    surplus is not part of the frame and must never be played.
    """
    check_audio_frame(frame)
    n, channels = frame.samples_per_channel, frame.num_channels
    data = np.frombuffer(frame.data, dtype=np.int16, count=n * channels)
    return data.reshape(n, channels)


def check_source_open(source: rtc.AudioSource | rtc.VideoSource, name: str) -> None:
    """Raise a clear ``RuntimeError`` if ``source`` was closed (its FFI handle released):
    capturing into it would fail deep in the FFI with a bare ``AssertionError``."""
    handle = getattr(source, "_ffi_handle", None)
    if handle is not None and getattr(handle, "disposed", False):
        raise RuntimeError(f"the {name} was closed: close the AVSynchronizer before its sources")
