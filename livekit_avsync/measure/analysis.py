"""Pair video markers with audio bursts and summarise the audio/video offset.

Video frame ``k * burst_every`` is marker ``k``; the audio burst of marker ``k`` carries code
``k % M``. Each video marker is paired with the nearest unused burst of its code within
``max_offset`` (closest pairs first), so bursts or frames lost to an interrupt leave markers
unpaired instead of shifting the pairing. Offsets are ``video_time - audio_time`` in seconds:
positive means the video is late.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .bursts import AudioBurst
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = [
    "DRIFT_MIN_SPAN_S",
    "Drift",
    "FrameContinuity",
    "MarkerOffset",
    "SyncReport",
    "VideoObservation",
    "analyze_sync",
    "estimate_drift",
    "first_appearances",
    "frame_continuity",
]


DRIFT_MIN_SPAN_S = 55.0
"""Markers must span this long (a run of about a minute) before a drift figure is given: on
shorter runs jitter-buffer moves dominate the slope (seen: +73.7 and -107.5 ms/min on 10 s runs
of one and the same path)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """Least-squares slope of the offset over time, with its 95 % confidence half-width."""

    ms_per_min: float
    ci95_ms_per_min: float
    span_s: float  # time the fitted markers cover

    def __str__(self) -> str:
        return f"{self.ms_per_min:+.1f} \u00b1 {self.ci95_ms_per_min:.1f} ms/min"


def estimate_drift(
    times_s: Sequence[float] | np.ndarray,
    offsets_ms: Sequence[float] | np.ndarray,
    *,
    min_span_s: float = DRIFT_MIN_SPAN_S,
) -> Drift | None:
    """The offset's drift, or None with fewer than 3 points or a span under ``min_span_s``.

    The interval is the slope's standard error times 1.96; offsets are correlated over a few
    markers, so read it as a lower bound on the uncertainty.
    """
    t = np.asarray(times_s, dtype=np.float64)
    y = np.asarray(offsets_ms, dtype=np.float64)
    if t.shape != y.shape:
        raise ValueError(f"times and offsets differ in length: {t.size} vs {y.size}")
    if t.size < 3 or float(np.ptp(t)) < min_span_s:
        return None
    t = t - t.mean()
    slope, intercept = np.polyfit(t, y, 1)
    residual = y - (slope * t + intercept)
    stderr = np.sqrt(float(residual @ residual) / (t.size - 2) / float(t @ t))
    return Drift(float(slope * 60.0), float(1.96 * stderr * 60.0), float(np.ptp(t)))


@dataclass(frozen=True, slots=True)
class VideoObservation:
    """A marker frame seen at ``time`` (s): its frame number and turn id."""

    time: float
    frame: int
    turn: int = 0


@dataclass(frozen=True, slots=True)
class MarkerOffset:
    """One paired marker: when its video frame and its audio burst were seen (s)."""

    marker: int
    turn: int
    video_time: float
    audio_time: float

    @property
    def offset(self) -> float:
        """``video_time - audio_time`` in seconds (positive: video late)."""
        return self.video_time - self.audio_time

    @property
    def offset_ms(self) -> float:
        return 1000.0 * self.offset


@dataclass(slots=True)
class SyncReport:
    """Offsets of all paired markers and their summary (``None`` where there are too few)."""

    offsets: list[MarkerOffset]
    video_markers: int  # marker frames seen in the video
    audio_bursts: int  # bursts detected in the audio
    unpaired_video: list[int] = field(default_factory=list)  # markers without a burst
    unpaired_audio: list[float] = field(default_factory=list)  # times of bursts without video
    p50_abs_ms: float | None = None
    p95_abs_ms: float | None = None
    max_abs_ms: float | None = None
    mean_ms: float | None = None
    drift_ms_per_min: float | None = None  # see estimate_drift; None on short runs
    drift_ci95_ms_per_min: float | None = None

    @property
    def paired(self) -> int:
        return len(self.offsets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the summary plus one entry per marker (times in s, offsets in ms)."""
        data = asdict(self)
        data["paired"] = self.paired
        data["offsets"] = [
            {
                "marker": m.marker,
                "turn": m.turn,
                "video_time": m.video_time,
                "audio_time": m.audio_time,
                "offset_ms": m.offset_ms,
            }
            for m in self.offsets
        ]
        return data

    def summary(self) -> str:
        """One line: pair count, p50/p95/max of |offset|, mean and drift."""
        if not self.offsets:
            return (
                f"no markers paired ({self.video_markers} video markers, "
                f"{self.audio_bursts} audio bursts)"
            )
        drift = (
            "n/a (run under a minute)"
            if self.drift_ms_per_min is None
            else str(Drift(self.drift_ms_per_min, self.drift_ci95_ms_per_min or 0.0, 0.0))
        )
        return (
            f"{self.paired} markers: |offset| p50 {self.p50_abs_ms:.1f} ms, "
            f"p95 {self.p95_abs_ms:.1f} ms, max {self.max_abs_ms:.1f} ms; "
            f"mean {self.mean_ms:+.1f} ms; drift {drift}"
        )


VideoLike = VideoObservation | tuple[float, int] | tuple[float, int, int]
BurstLike = AudioBurst | tuple[float, int | None]


def _video(obs: VideoLike) -> VideoObservation:
    if isinstance(obs, VideoObservation):
        return obs
    return VideoObservation(float(obs[0]), int(obs[1]), int(obs[2]) if len(obs) > 2 else 0)


def _burst(burst: BurstLike) -> tuple[float, int | None]:
    if isinstance(burst, AudioBurst):
        return burst.time, burst.code
    return float(burst[0]), None if burst[1] is None else int(burst[1])


def first_appearances(video: Iterable[VideoLike]) -> list[VideoObservation]:
    """The earliest observation of each (turn, frame number), in time order."""
    first: dict[tuple[int, int], VideoObservation] = {}
    for item in video:
        obs = _video(item)
        key = (obs.turn, obs.frame)
        if key not in first or obs.time < first[key].time:
            first[key] = obs
    return sorted(first.values(), key=lambda o: o.time)


def _marker_frames(
    frames: Sequence[VideoObservation], spec: MarkerSpec, slack: int
) -> list[VideoObservation]:
    """Per (turn, marker): its frame's first appearance, else the first of up to ``slack`` frames
    after it, time taken back by its distance in frame periods (and numbered as the marker)."""
    best: dict[tuple[int, int], tuple[int, VideoObservation]] = {}
    for obs in frames:
        marker, late = divmod(obs.frame, spec.burst_every)
        if late > slack:
            continue
        key = (obs.turn, marker)
        if key not in best or late < best[key][0]:
            best[key] = (late, obs)
    out = [
        VideoObservation(obs.time - late / spec.fps, marker * spec.burst_every, obs.turn)
        for (_, marker), (late, obs) in best.items()
    ]
    return sorted(out, key=lambda o: o.time)


def analyze_sync(
    video: Iterable[VideoLike],
    audio: Iterable[BurstLike],
    *,
    spec: MarkerSpec = DEFAULT_SPEC,
    max_offset: float | None = None,
    frame_slack: int = 0,
) -> SyncReport:
    """Pair marker frames with bursts and summarise the offsets.

    ``video``: observations ``(time, frame[, turn])`` or :class:`VideoObservation` (repeats are
    fine: the first appearance of each frame counts). ``audio``: ``(time, code)`` or
    :class:`AudioBurst`. ``max_offset`` (s) bounds a pairing; by default half the time after
    which a burst code repeats (2 s with the default spec), which is also the largest offset
    that can be measured unambiguously. ``frame_slack``: where a marker frame never arrived
    (a video encoder under load drops frames), the first of the next ``frame_slack`` frames
    stands in for it, its time taken back by its distance in frame periods, which keeps its
    offset that frame's own.
    """
    limit = spec.period * spec.modulus / 2 if max_offset is None else max_offset
    if not limit > 0:
        raise ValueError(f"max_offset must be positive, got {max_offset}")
    if not (isinstance(frame_slack, int) and 0 <= frame_slack < spec.burst_every):
        raise ValueError(
            f"frame_slack must be an int in [0, {spec.burst_every}), got {frame_slack}"
        )
    markers = _marker_frames(first_appearances(video), spec, frame_slack)
    bursts = sorted(_burst(b) for b in audio)
    burst_times = np.array([t for t, _ in bursts], dtype=np.float64)

    candidates: list[tuple[float, int, int]] = []  # (|dt|, marker index, burst index)
    for vi, obs in enumerate(markers):
        code = spec.code_of(obs.frame // spec.burst_every)
        lo, hi = np.searchsorted(burst_times, [obs.time - limit, obs.time + limit], side="left")
        for ai in range(int(lo), int(hi)):
            if bursts[ai][1] == code:
                candidates.append((abs(obs.time - bursts[ai][0]), vi, ai))
    candidates.sort()
    used_video: set[int] = set()
    used_audio: set[int] = set()
    pairs: list[MarkerOffset] = []
    for _, vi, ai in candidates:
        if vi in used_video or ai in used_audio:
            continue
        used_video.add(vi)
        used_audio.add(ai)
        obs = markers[vi]
        pairs.append(MarkerOffset(obs.frame // spec.burst_every, obs.turn, obs.time, bursts[ai][0]))
    pairs.sort(key=lambda m: m.audio_time)

    report = SyncReport(
        offsets=pairs,
        video_markers=len(markers),
        audio_bursts=len(bursts),
        unpaired_video=[
            m.frame // spec.burst_every for i, m in enumerate(markers) if i not in used_video
        ],
        unpaired_audio=[t for i, (t, _) in enumerate(bursts) if i not in used_audio],
    )
    if pairs:
        offsets = np.array([m.offset for m in pairs]) * 1000.0
        magnitude = np.abs(offsets)
        report.p50_abs_ms = float(np.percentile(magnitude, 50))
        report.p95_abs_ms = float(np.percentile(magnitude, 95))
        report.max_abs_ms = float(magnitude.max())
        report.mean_ms = float(offsets.mean())
        drift = estimate_drift([m.audio_time for m in pairs], offsets)
        if drift is not None:
            report.drift_ms_per_min = drift.ms_per_min
            report.drift_ci95_ms_per_min = drift.ci95_ms_per_min
    return report


@dataclass(frozen=True, slots=True)
class FrameContinuity:
    """How a sequence of frame numbers (in arrival order) deviates from 0, 1, 2, ..."""

    lowest: int | None
    highest: int | None
    distinct: int
    missing: list[int]  # numbers between lowest and highest never seen
    repeated: int  # arrivals of a number already seen
    reordered: int  # first arrivals of a number smaller than one already seen


def frame_continuity(frames: Sequence[int | None]) -> FrameContinuity:
    """Count missing, repeated and out-of-order frame numbers; ``None`` entries are skipped."""
    seen: set[int] = set()
    repeated = reordered = 0
    highest: int | None = None
    for n in frames:
        if n is None:
            continue
        if n in seen:
            repeated += 1
            continue
        if highest is not None and n < highest:
            reordered += 1
        seen.add(n)
        highest = n if highest is None else max(highest, n)
    if not seen:
        return FrameContinuity(None, None, 0, [], repeated, reordered)
    lo, hi = min(seen), max(seen)
    missing = sorted(set(range(lo, hi + 1)) - seen)
    return FrameContinuity(lo, hi, len(seen), missing, repeated, reordered)
