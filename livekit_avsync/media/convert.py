"""Frame conversion between PyAV and LiveKit, without pixel or sample loops in Python.

Video: everything becomes an I420 ``rtc.VideoFrame`` with even sides (what libwebrtc takes
without aborting): I420 planes are moved with numpy slices, every other ``rtc`` type and PyAV
pixel format goes through PyAV's own ``reformat``. Audio conversion lives in :mod:`.audio`
(re-exported here).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from livekit import rtc

from .audio import AudioConverter, AudioLike, SpeechResampler, audio_to_rtc
from .validate import InvalidFrame, check_audio_frame, check_video_frame, plane_layout

__all__ = [
    "MIN_VIDEO_SIDE",
    "AudioConverter",
    "AudioLike",
    "InvalidFrame",
    "SpeechResampler",
    "VideoLike",
    "audio_to_rtc",
    "av_frame_time",
    "check_audio_frame",
    "i420_frame",
    "video_to_i420",
    "video_to_rtc",
]

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
