"""The sync figures an AvatarSession reports at a fixed cadence, to watch a deployment.

livekit-agents' ``AvatarMetrics`` (join time, playback latency per turn) go out through
``metrics_collected`` on the AvatarSession and the AgentSession, as avatar plugins do. The
synchronizer's own figures do not fit that type (``MetricsCollectedEvent.metrics`` only takes
livekit-agents' metric classes), so they are a ``sync_metrics`` event of the AvatarSession: one
:class:`SyncMetrics` every ``metrics_interval`` seconds, and a last one when the session closes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..sync.stats import SyncStats

__all__ = ["SyncMetrics", "SyncMetricsWindow"]


@dataclass(frozen=True, slots=True)
class SyncMetrics:
    """What the synchronizer did over one reporting interval (counts are for the interval).

    ``av_offset_ms`` is the smoothed video lateness against the audio clock when frames leave
    (+ = video late), at the end of the interval.
    """

    timestamp: float
    """``time.time()`` at the end of the interval."""
    interval: float
    """Seconds this report covers."""
    provider: str
    av_offset_ms: float
    video_frames_out: int
    video_repeated: int
    video_dropped_late: int
    audio_dropped_stale: int
    video_dropped_stale: int
    audio_underruns: int
    interrupts: int
    interrupt_audio_cleared_ms: float
    """Audio that interrupts discarded (queued, or handed to the source but not yet played)."""
    interrupt_video_cleared: int
    """Queued video frames that interrupts discarded before they were shown."""
    audio_queue_ms: float
    video_queue_ms: float
    actual_fps: float
    final: bool = False
    """The last report, sent when the session closes."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_COUNTS = (
    "video_frames_out",
    "video_repeated",
    "video_dropped_late",
    "audio_dropped_stale",
    "video_dropped_stale",
    "audio_underruns",
)


class SyncMetricsWindow:
    """Turns successive :class:`SyncStats` snapshots into per-interval :class:`SyncMetrics`."""

    def __init__(self, provider: str, first: SyncStats, now: float | None = None) -> None:
        self._provider = provider
        self._last = first
        self._since = time.monotonic() if now is None else now

    def report(
        self, stats: SyncStats, *, fps: float, final: bool = False, now: float | None = None
    ) -> SyncMetrics:
        now = time.monotonic() if now is None else now
        last, self._last = self._last, stats
        interval, self._since = now - self._since, now
        counts = {name: getattr(stats, name) - getattr(last, name) for name in _COUNTS}
        return SyncMetrics(
            timestamp=time.time(),
            interval=interval,
            provider=self._provider,
            av_offset_ms=stats.av_offset_ms,
            interrupts=stats.epoch - last.epoch,
            interrupt_audio_cleared_ms=stats.audio_cleared_ms - last.audio_cleared_ms,
            interrupt_video_cleared=stats.video_cleared - last.video_cleared,
            audio_queue_ms=stats.audio_queue_ms,
            video_queue_ms=stats.video_queue_ms,
            actual_fps=fps,
            final=final,
            **counts,
        )
