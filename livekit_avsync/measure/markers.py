"""Video marker frames: a frame number (and a small turn id) drawn as large luma blocks.

The top quarter of the frame is a 3 x 16 grid of black/white blocks. Each bit is a horizontal pair
of blocks (white-black = 1, black-white = 0), so every bit checks itself without a threshold; the
24 bits are the 16-bit frame number, a 4-bit turn id and a 4-bit CRC. Blocks are 1/16 of the width
and 1/12 of the height, so the code survives H.264, scaling and LiveKit. Chroma stays neutral.
Decoding samples a few pixels at the centre of each block with numpy (tens of microseconds).

Below the code, a bar sweeps across the frame once per marker period and a white box flashes on
marker frames (``n % burst_every == 0``), in step with the audio beeps, for people watching.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import av
import numpy as np
from livekit import rtc

from ..media.convert import i420_frame
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = [
    "MAX_FRAME_NUMBER",
    "MAX_TURN",
    "MarkerCode",
    "decode_marker",
    "marker_av_frame",
    "marker_planes",
    "marker_video_frame",
    "read_marker",
    "stamp_marker",
]

MAX_FRAME_NUMBER = 0xFFFF
MAX_TURN = 0xF

_ROWS, _COLS = 3, 16
_BAND = 0.25  # fraction of the height used by the code
_BLACK, _WHITE, _BACKGROUND = 32, 224, 96
_MIN_CONTRAST = 40  # a bit is read only when its two blocks differ by at least this much luma
_CRC_XOR = 0b1010  # keeps the check of an all-zero payload from being all zeros
_SAMPLES_PER_BLOCK = 3  # per axis, spread over the central half of each block
_BIT_WEIGHTS = 1 << np.arange(23, -1, -1, dtype=np.int64)
_DIRECT_Y_TYPES = frozenset(
    {
        rtc.VideoBufferType.I420,
        rtc.VideoBufferType.I420A,
        rtc.VideoBufferType.I422,
        rtc.VideoBufferType.I444,
        rtc.VideoBufferType.NV12,
    }
)


class MarkerCode(NamedTuple):
    """What a marker frame carries: its frame number and turn id."""

    frame: int
    turn: int


def _crc4(payload: int, nbits: int) -> int:
    """CRC-4 (x^4 + x + 1) of the ``nbits`` low bits of ``payload``, msb first."""
    reg = 0
    for i in range(nbits - 1, -1, -1):
        top = ((reg >> 3) & 1) ^ ((payload >> i) & 1)
        reg = ((reg << 1) & 0xF) ^ (0x3 if top else 0)
    return reg ^ _CRC_XOR


def _bits_of(n: int, turn: int) -> np.ndarray:
    """The 24 code bits, msb first: frame number, turn, CRC."""
    payload = (n << 4) | turn
    word = (payload << 4) | _crc4(payload, 20)
    return ((word >> np.arange(23, -1, -1)) & 1).astype(bool)


def _check_size(width: int, height: int) -> None:
    if width < 2 * _COLS or height < 4 * _ROWS or width % 2 or height % 2:
        raise ValueError(
            f"marker frames need an even size of at least {2 * _COLS}x{4 * _ROWS}, "
            f"got {width}x{height}"
        )


def _check_code(n: int, turn: int) -> None:
    if not 0 <= n <= MAX_FRAME_NUMBER:
        raise ValueError(f"frame number must be in 0..{MAX_FRAME_NUMBER}, got {n}")
    if not 0 <= turn <= MAX_TURN:
        raise ValueError(f"turn id must be in 0..{MAX_TURN}, got {turn}")


def _edges(size: int, parts: int) -> np.ndarray:
    return np.round(np.linspace(0, size, parts + 1)).astype(np.intp)


def stamp_marker(y: np.ndarray, n: int, *, turn: int = 0) -> None:
    """Draw the code of frame ``n`` (and ``turn``) into the top quarter of a Y plane, in place.

    Use it to mark frames of any other video (e.g. a local avatar) so they can be measured too.
    """
    if y.ndim != 2 or y.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 Y plane, got {y.dtype} {y.shape}")
    height, width = y.shape
    if width < 2 * _COLS or height < 4 * _ROWS:
        raise ValueError(f"Y plane {width}x{height} is too small for a marker")
    _check_code(n, turn)
    cells = np.empty((_ROWS, _COLS), dtype=np.uint8)
    bits = _bits_of(n, turn).reshape(_ROWS, _COLS // 2)
    cells[:, 0::2] = np.where(bits, _WHITE, _BLACK)
    cells[:, 1::2] = np.where(bits, _BLACK, _WHITE)
    rows = _edges(round(height * _BAND), _ROWS)
    cols = _edges(width, _COLS)
    # expand the 3x16 grid to pixels with index maps (no per-pixel Python loop)
    row_of = np.repeat(np.arange(_ROWS), np.diff(rows))
    col_of = np.repeat(np.arange(_COLS), np.diff(cols))
    y[: rows[-1], :] = cells[np.ix_(row_of, col_of)]


@lru_cache(maxsize=8)
def _background(width: int, height: int) -> np.ndarray:
    plane = np.full((height, width), _BACKGROUND, dtype=np.uint8)
    plane.setflags(write=False)
    return plane


def marker_planes(
    n: int, width: int, height: int, *, turn: int = 0, spec: MarkerSpec = DEFAULT_SPEC
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I420 planes (Y full size, U/V half size, uint8) of marker frame ``n``."""
    _check_size(width, height)
    _check_code(n, turn)
    y = _background(width, height).copy()
    stamp_marker(y, n, turn=turn)
    top = round(height * _BAND) + height // 24
    phase = n % spec.burst_every
    bar_w = max(2, width // 40)
    x = (phase * (width - bar_w)) // max(1, spec.burst_every - 1)
    y[top:, x : x + bar_w] = _WHITE
    if phase == 0:  # marker frame: flash a box, in step with the audio burst
        box = (height - top) // 3
        cy, cx = (top + height) // 2, width // 2
        y[cy - box // 2 : cy + box // 2, cx - box // 2 : cx + box // 2] = _WHITE
    chroma = np.full((height // 2, width // 2), 128, dtype=np.uint8)
    return y, chroma, chroma.copy()


def marker_video_frame(
    n: int, width: int, height: int, *, turn: int = 0, spec: MarkerSpec = DEFAULT_SPEC
) -> rtc.VideoFrame:
    """Marker frame ``n`` as an I420 ``rtc.VideoFrame``."""
    return i420_frame(*marker_planes(n, width, height, turn=turn, spec=spec))


def marker_av_frame(
    n: int, width: int, height: int, *, turn: int = 0, spec: MarkerSpec = DEFAULT_SPEC
) -> av.VideoFrame:
    """Marker frame ``n`` as a yuv420p ``av.VideoFrame`` (no pts set), for writing files."""
    y, u, v = marker_planes(n, width, height, turn=turn, spec=spec)
    packed = np.concatenate((y.ravel(), u.ravel(), v.ravel())).reshape(-1, width)
    return av.VideoFrame.from_ndarray(packed, format="yuv420p")


@lru_cache(maxsize=16)
def _sample_points(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns sampled for each block: the central half of each block."""
    band = height * _BAND
    offsets = (np.arange(_SAMPLES_PER_BLOCK) + 0.5) / _SAMPLES_PER_BLOCK * 0.5 + 0.25
    rows = ((np.arange(_ROWS)[:, None] + offsets) * band / _ROWS).astype(np.intp).ravel()
    cols = ((np.arange(_COLS)[:, None] + offsets) * width / _COLS).astype(np.intp).ravel()
    return rows, cols


def _luma(frame: rtc.VideoFrame | av.VideoFrame | np.ndarray) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        if frame.ndim != 2:
            raise ValueError(f"expected a 2-D Y plane, got shape {frame.shape}")
        return frame
    if isinstance(frame, rtc.VideoFrame):
        if frame.type not in _DIRECT_Y_TYPES:
            frame = frame.convert(rtc.VideoBufferType.I420)
        count = frame.width * frame.height
        return np.frombuffer(frame.data, dtype=np.uint8, count=count).reshape(
            frame.height, frame.width
        )
    if isinstance(frame, av.VideoFrame):
        if frame.format.name not in ("yuv420p", "yuvj420p", "gray"):
            frame = frame.reformat(format="gray")
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        return rows[: frame.height, : frame.width]
    raise TypeError(
        f"expected rtc.VideoFrame, av.VideoFrame or ndarray, got {type(frame).__name__}"
    )


def read_marker(frame: rtc.VideoFrame | av.VideoFrame | np.ndarray) -> MarkerCode | None:
    """Decode the marker of a frame or Y plane; None if it carries no (readable) marker."""
    y = _luma(frame)
    height, width = y.shape
    if width < 2 * _COLS or height < 4 * _ROWS:
        return None
    rows, cols = _sample_points(height, width)
    k = _SAMPLES_PER_BLOCK
    blocks = y[np.ix_(rows, cols)].reshape(_ROWS, k, _COLS, k).mean(axis=(1, 3))
    diff = blocks[:, 0::2] - blocks[:, 1::2]
    if np.abs(diff).min() < _MIN_CONTRAST:
        return None
    word = int((diff.ravel() > 0) @ _BIT_WEIGHTS)
    payload, check = word >> 4, word & 0xF
    if _crc4(payload, 20) != check:
        return None
    return MarkerCode(payload >> 4, payload & 0xF)


def decode_marker(frame: rtc.VideoFrame | av.VideoFrame | np.ndarray) -> int | None:
    """The frame number of a marker frame or Y plane, or None."""
    code = read_marker(frame)
    return None if code is None else code.frame
