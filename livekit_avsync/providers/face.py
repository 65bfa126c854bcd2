"""FaceRenderer: a simple cartoon face drawn straight into I420 planes with numpy.

Everything that never changes (background, shoulders, head, hair, brows, nose) is drawn once per
resolution. Only two small regions change from frame to frame: the mouth, whose opening follows
the speech loudness, and the eyes, which blink. Both are kept as pre-rendered patches (one per
quantised mouth level, opened and closed eyes) pasted into working planes, so a frame costs two
small copies plus the conversion to an ``rtc.VideoFrame``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from livekit import rtc

from ..media.convert import i420_frame

__all__ = ["MOUTH_LEVELS", "FaceRenderer"]

MOUTH_LEVELS = 24
"""Number of distinct mouth openings above closed (the level is quantised to these steps)."""

_MIN_SIZE = 16
_Rgb = tuple[int, int, int]

_BACKGROUND_TOP: _Rgb = (58, 84, 120)
_BACKGROUND_BOTTOM: _Rgb = (22, 32, 52)
_SHIRT: _Rgb = (48, 110, 96)
_SKIN: _Rgb = (226, 184, 152)
_SKIN_SHADE: _Rgb = (196, 150, 122)
_HAIR: _Rgb = (70, 46, 32)
_EYE_WHITE: _Rgb = (246, 246, 242)
_IRIS: _Rgb = (60, 100, 150)
_PUPIL: _Rgb = (16, 16, 20)
_LIPS: _Rgb = (170, 70, 72)
_MOUTH_INSIDE: _Rgb = (62, 16, 20)
_TEETH: _Rgb = (236, 232, 222)


def _yuv(rgb: _Rgb) -> tuple[float, float, float]:
    """BT.601 limited-range Y'CbCr of an 8-bit RGB colour (what WebRTC assumes for I420)."""
    r, g, b = (c / 255.0 for c in rgb)
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, u, v


@dataclass(frozen=True, slots=True)
class _Box:
    """A pixel rectangle [x0, x1) x [y0, y1) in luma coordinates, with even corners."""

    x0: int
    y0: int
    x1: int
    y1: int

    def luma(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def chroma(self) -> tuple[slice, slice]:
        return slice(self.y0 // 2, (self.y1 + 1) // 2), slice(self.x0 // 2, (self.x1 + 1) // 2)


def _span(centres: np.ndarray, low: float, high: float) -> slice:
    """The index range of the sorted pixel ``centres`` that lie within [low, high]."""
    return slice(
        int(np.searchsorted(centres, low, "left")), int(np.searchsorted(centres, high, "right"))
    )


def _coverage(
    xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, rx: float, ry: float, scale: float
) -> np.ndarray:
    """How much of each pixel (0..1) the ellipse covers, blending over about one pixel."""
    dist = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    return np.clip((1.0 - dist) * min(rx, ry) * scale + 0.5, 0.0, 1.0)


class _Canvas:
    """Three float planes of one region, drawn on with anti-aliased ellipses."""

    def __init__(self, box: _Box, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.box = box
        self.planes = planes
        (ys, xs), (cys, cxs) = box.luma(), box.chroma()
        # pixel centres in luma coordinates, for the full-size and the half-size planes
        self._grids = (
            (
                np.arange(ys.start, ys.stop)[:, None] + 0.5,
                np.arange(xs.start, xs.stop)[None, :] + 0.5,
            ),
            (
                np.arange(cys.start, cys.stop)[:, None] * 2.0 + 1.0,
                np.arange(cxs.start, cxs.stop)[None, :] * 2.0 + 1.0,
            ),
        )

    @classmethod
    def blank(cls, box: _Box, rgb: _Rgb) -> _Canvas:
        y, u, v = _yuv(rgb)
        (ys, xs), (cys, cxs) = box.luma(), box.chroma()
        shape, cshape = (
            (ys.stop - ys.start, xs.stop - xs.start),
            (
                cys.stop - cys.start,
                cxs.stop - cxs.start,
            ),
        )
        return cls(
            box,
            (
                np.full(shape, y, np.float32),
                np.full(cshape, u, np.float32),
                np.full(cshape, v, np.float32),
            ),
        )

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        rgb: _Rgb,
        *,
        only_above: float | None = None,
        inside: tuple[float, float, float, float] | None = None,
    ) -> None:
        """Fill an ellipse, its edge blended over about one pixel.

        ``only_above`` keeps the part above that row; ``inside`` (cx, cy, rx, ry) keeps the part
        inside another ellipse. Only the pixels of the ellipse's bounding box are computed.
        """
        if rx <= 0 or ry <= 0:
            return
        colour = _yuv(rgb)
        for index, plane in enumerate(self.planes):
            ys, xs = self._grids[0 if index == 0 else 1]
            scale = 1.0 if index == 0 else 0.5  # blend width: one pixel of that plane
            rows = _span(ys[:, 0], cy - ry - 2, cy + ry + 2)
            cols = _span(xs[0, :], cx - rx - 2, cx + rx + 2)
            if rows.start >= rows.stop or cols.start >= cols.stop:
                continue
            y, x = ys[rows], xs[:, cols]
            alpha = _coverage(x, y, cx, cy, rx, ry, scale)
            if inside is not None:
                alpha = alpha * _coverage(x, y, *inside, scale)
            if only_above is not None:
                alpha = alpha * np.clip((only_above - y) * scale + 0.5, 0.0, 1.0)
            region = plane[rows, cols]
            region += (colour[index] - region) * alpha.astype(np.float32)

    def to_uint8(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y, u, v = (np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in self.planes)
        return y, u, v


class FaceRenderer:
    """Draws the face at ``width`` x ``height``; :meth:`render` returns an I420 ``rtc.VideoFrame``.

    ``render(mouth, eyes_closed)`` takes the mouth opening in [0, 1] (quantised to
    :data:`MOUTH_LEVELS` steps; 0 is closed) and whether the eyes are shut (a blink). Frames are
    independent copies: the caller may keep them. Raises ``ValueError`` for sizes under 16 pixels.
    """

    def __init__(self, width: int, height: int) -> None:
        if not (isinstance(width, int) and isinstance(height, int)):
            raise ValueError(f"frame size must be integers, got {width!r}x{height!r}")
        if width < _MIN_SIZE or height < _MIN_SIZE:
            raise ValueError(
                f"frame size must be at least {_MIN_SIZE}x{_MIN_SIZE}, got {width}x{height}"
            )
        self._width, self._height = width, height
        unit = float(min(height, width))  # the face scales with the shorter side
        self._cx, self._cy = width / 2.0, height * 0.5
        self._unit = unit
        self._head = (0.31 * unit, 0.40 * unit)
        self._eye_dx, self._eye_y = 0.125 * unit, self._cy - 0.08 * unit
        self._eye_r = (0.062 * unit, 0.038 * unit)
        self._mouth_y = self._cy + 0.19 * unit
        self._mouth_rx = 0.10 * unit
        self._mouth_max = 0.075 * unit  # half-height of the widest-open mouth
        self._mouth_box = self._box(
            self._cx - self._mouth_rx - 3,
            self._mouth_y - self._mouth_max - 0.02 * unit - 3,
            self._cx + self._mouth_rx + 3,
            self._mouth_y + self._mouth_max + 0.02 * unit + 3,
        )
        self._eyes_box = self._box(
            self._cx - self._eye_dx - self._eye_r[0] - 3,
            self._eye_y - self._eye_r[1] - 3,
            self._cx + self._eye_dx + self._eye_r[0] + 3,
            self._eye_y + self._eye_r[1] + 3,
        )
        self._planes = self._draw_static()
        self._mouth_base = self._crop(self._mouth_box)  # kept: the mouth is pasted over it
        self._mouth_patches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._eye_patches = {
            False: self._draw_eyes(closed=False),
            True: self._draw_eyes(closed=True),
        }
        self._shown: tuple[int, bool] | None = None
        self._paste(self._mouth_box, self._mouth_patch(0))
        self._paste(self._eyes_box, self._eye_patches[False])
        self._shown = (0, False)

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def mouth_box(self) -> tuple[int, int, int, int]:
        """The region (x0, y0, x1, y1) that holds the mouth: the only part speech changes."""
        b = self._mouth_box
        return b.x0, b.y0, b.x1, b.y1

    @property
    def eyes_box(self) -> tuple[int, int, int, int]:
        """The region (x0, y0, x1, y1) that holds both eyes: the only part a blink changes."""
        b = self._eyes_box
        return b.x0, b.y0, b.x1, b.y1

    @staticmethod
    def mouth_step(mouth: float) -> int:
        """The quantised mouth level (0 = closed ... :data:`MOUTH_LEVELS`) for ``mouth``."""
        if not mouth > 0.0:  # also catches NaN
            return 0
        return round(min(mouth, 1.0) * MOUTH_LEVELS)

    def planes(
        self, mouth: float = 0.0, eyes_closed: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Y, U, V planes for this mouth opening and eye state (views: copy to keep)."""
        step = self.mouth_step(mouth)
        shown = self._shown
        if shown is None or shown[0] != step:
            self._paste(self._mouth_box, self._mouth_patch(step))
        if shown is None or shown[1] != eyes_closed:
            self._paste(self._eyes_box, self._eye_patches[eyes_closed])
        self._shown = (step, eyes_closed)
        return self._planes

    def render(self, mouth: float = 0.0, eyes_closed: bool = False) -> rtc.VideoFrame:
        """One I420 frame of the face with the mouth ``mouth`` open (0..1)."""
        return i420_frame(*self.planes(mouth, eyes_closed))

    # -- drawing -------------------------------------------------------------------------------

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> _Box:
        """The even-aligned pixel box covering the given rectangle, clipped to the frame."""
        ix0 = max(0, int(np.floor(x0)) & ~1)
        iy0 = max(0, int(np.floor(y0)) & ~1)
        ix1 = min(self._width, (int(np.ceil(x1)) + 1) & ~1)
        iy1 = min(self._height, (int(np.ceil(y1)) + 1) & ~1)
        return _Box(ix0, iy0, ix1, iy1)

    def _draw_static(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h, u = self._width, self._height, self._unit
        cx, cy = self._cx, self._cy
        canvas = _Canvas.blank(_Box(0, 0, w, h), _BACKGROUND_BOTTOM)
        # vertical background gradient, one colour per row
        top, bottom = np.array(_yuv(_BACKGROUND_TOP)), np.array(_yuv(_BACKGROUND_BOTTOM))
        for index, plane in enumerate(canvas.planes):
            rows = plane.shape[0]
            ramp = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
            plane[:] = top[index] + (bottom[index] - top[index]) * ramp
        head_rx, head_ry = self._head
        canvas.ellipse(cx, cy + 0.62 * u, 0.55 * u, 0.30 * u, _SHIRT)  # shoulders
        canvas.ellipse(cx, cy + 0.30 * u, 0.11 * u, 0.20 * u, _SKIN_SHADE)  # neck
        canvas.ellipse(cx, cy - 0.03 * u, head_rx * 1.07, head_ry * 0.98, _HAIR)
        canvas.ellipse(cx - head_rx, cy + 0.02 * u, 0.045 * u, 0.075 * u, _SKIN_SHADE)  # ears
        canvas.ellipse(cx + head_rx, cy + 0.02 * u, 0.045 * u, 0.075 * u, _SKIN_SHADE)
        canvas.ellipse(cx, cy + 0.02 * u, head_rx, head_ry * 0.93, _SKIN)
        canvas.ellipse(
            cx, cy - 0.05 * u, head_rx * 1.02, head_ry * 0.86, _HAIR, only_above=cy - 0.24 * u
        )
        for side in (-1, 1):
            canvas.ellipse(
                cx + side * self._eye_dx, self._eye_y - 0.075 * u, 0.07 * u, 0.014 * u, _HAIR
            )
        canvas.ellipse(cx, cy + 0.07 * u, 0.035 * u, 0.055 * u, _SKIN_SHADE)  # nose
        canvas.ellipse(cx, cy + 0.06 * u, 0.030 * u, 0.050 * u, _SKIN)
        return canvas.to_uint8()

    def _crop(self, box: _Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A float copy of the current planes inside ``box``."""
        y, u, v = self._planes
        (ys, xs), (cys, cxs) = box.luma(), box.chroma()
        return (
            y[ys, xs].astype(np.float32),
            u[cys, cxs].astype(np.float32),
            v[cys, cxs].astype(np.float32),
        )

    def _draw_eyes(self, *, closed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        canvas = _Canvas(self._eyes_box, self._crop(self._eyes_box))
        rx, ry = self._eye_r
        for side in (-1, 1):
            ex = self._cx + side * self._eye_dx
            if closed:
                canvas.ellipse(ex, self._eye_y + 0.2 * ry, rx, 0.16 * ry, _HAIR)
            else:
                canvas.ellipse(ex, self._eye_y, rx, ry, _EYE_WHITE)
                canvas.ellipse(ex, self._eye_y, 0.78 * ry, 0.78 * ry, _IRIS)
                canvas.ellipse(ex, self._eye_y, 0.40 * ry, 0.40 * ry, _PUPIL)
        return canvas.to_uint8()

    def _mouth_patch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        patch = self._mouth_patches.get(step)
        if patch is None:
            patch = self._mouth_patches[step] = self._draw_mouth(step / MOUTH_LEVELS)
        return patch

    def _draw_mouth(self, opening: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        base_y, base_u, base_v = self._mouth_base
        canvas = _Canvas(self._mouth_box, (base_y.copy(), base_u.copy(), base_v.copy()))
        cx, my, rx = self._cx, self._mouth_y, self._mouth_rx
        lip = max(1.5, 0.012 * self._unit)
        if opening <= 0.0:
            canvas.ellipse(cx, my, rx, lip, _LIPS)  # closed: just the lips
        else:
            half = lip + opening * self._mouth_max
            canvas.ellipse(cx, my, rx, half, _LIPS)
            inner_rx, inner_ry = rx - lip, half - lip
            canvas.ellipse(cx, my, inner_rx, inner_ry, _MOUTH_INSIDE)
            if inner_ry > 3 * lip:  # upper teeth once the mouth is well open
                teeth = (cx, my - inner_ry, inner_rx * 0.8, lip * 2.4)
                canvas.ellipse(*teeth, _TEETH, inside=(cx, my, inner_rx, inner_ry))
        return canvas.to_uint8()

    def _paste(self, box: _Box, patch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        y, u, v = self._planes
        (ys, xs), (cys, cxs) = box.luma(), box.chroma()
        y[ys, xs] = patch[0]
        u[cys, cxs] = patch[1]
        v[cys, cxs] = patch[2]
