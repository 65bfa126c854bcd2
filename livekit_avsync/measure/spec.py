"""The marker timeline shared by the video code, the audio bursts and the analysis.

Video frame ``n`` shows media time ``n / fps``. Every ``burst_every`` frames there is a *marker*:
marker ``k`` is video frame ``k * burst_every`` and an audio tone burst starting at media time
``k * burst_every / fps``, whose frequency ``frequencies[k % len(frequencies)]`` identifies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["AVATAR_SPEC", "DEFAULT_SPEC", "MarkerSpec", "avatar_spec"]

_DEFAULT_FREQUENCIES = (500.0, 700.0, 900.0, 1100.0, 1300.0, 1500.0, 1700.0, 1900.0)


@dataclass(frozen=True, slots=True)
class MarkerSpec:
    """Timing and shape of marker media.

    ``fps``: video frame rate. ``burst_every``: video frames between two markers (default 15 at
    30 fps = one marker every 0.5 s). ``burst_ms``: length of each tone burst. ``burst_level`` /
    ``bed_level``: amplitudes (fraction of full scale) of the bursts and of a quiet continuous
    tone (``bed_hz``) under them, so marker audio is never silent while it plays and an audio tail
    can be measured to the sample; set ``bed_level=0`` for silence between bursts.
    ``frequencies``: the burst tones; their number is the code modulus ``M``.
    """

    fps: float = 30.0
    burst_every: int = 15
    burst_ms: float = 80.0
    burst_level: float = 0.5
    bed_level: float = 0.02
    bed_hz: float = 150.0
    frequencies: tuple[float, ...] = _DEFAULT_FREQUENCIES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        if self.burst_every < 1:
            raise ValueError(f"burst_every must be >= 1 video frame, got {self.burst_every!r}")
        if len(self.frequencies) < 2:
            raise ValueError("frequencies needs at least two tones to tell markers apart")
        if len(set(self.frequencies)) != len(self.frequencies):
            raise ValueError("frequencies must be distinct")
        if not 0 < self.burst_ms < 1000 * self.period * 0.8:
            raise ValueError(
                f"burst_ms={self.burst_ms} must be positive and shorter than 80% of the "
                f"marker period ({1000 * self.period:.0f} ms)"
            )
        if not 0 < self.burst_level <= 1 or not 0 <= self.bed_level <= self.burst_level / 8:
            raise ValueError(
                "levels must satisfy 0 < burst_level <= 1 and 0 <= bed_level <= burst_level / 8"
            )
        if self.bed_level and not 0 < self.bed_hz < min(self.frequencies) / 2:
            raise ValueError("bed_hz must be positive and well below the burst frequencies")

    @property
    def period(self) -> float:
        """Seconds between two markers."""
        return self.burst_every / self.fps

    @property
    def modulus(self) -> int:
        """Number of distinct burst codes (``M``)."""
        return len(self.frequencies)

    def marker_time(self, k: int) -> float:
        """Media time (s) of marker ``k``: its video frame and the onset of its burst."""
        return k * self.period

    def code_of(self, k: int) -> int:
        """Audio code of marker ``k``."""
        return k % self.modulus


DEFAULT_SPEC = MarkerSpec()

AVATAR_SPEC = MarkerSpec(bed_level=0.0)
"""Markers for an avatar's own output: silence between the bursts, so the avatar's speech and its
silence after a barge-in can be heard apart from the markers."""


def avatar_spec(fps: float) -> MarkerSpec:
    """:data:`AVATAR_SPEC` at another frame rate, a marker about every half second."""
    if fps == AVATAR_SPEC.fps:
        return AVATAR_SPEC
    return replace(AVATAR_SPEC, fps=fps, burst_every=max(1, round(fps / 2)))
