"""Counters and gauges the synchronizer reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SyncStats"]


@dataclass(frozen=True, slots=True)
class SyncStats:
    """A snapshot of the synchronizer's state; ``AVSynchronizer.stats`` builds a fresh one."""

    mode: str
    epoch: int
    audio_frames_in: int
    video_frames_in: int
    audio_chunks_out: int
    video_frames_out: int
    video_repeated: int
    video_dropped_late: int
    audio_dropped_stale: int
    video_dropped_stale: int
    audio_cleared_ms: float
    """Audio discarded by ``clear_queue()``: queued, or handed to the source but not yet played."""
    video_cleared: int
    """Queued video frames discarded by ``clear_queue()`` before they were shown."""
    audio_underruns: int
    timestamps_missing: int
    timestamps_non_monotonic: int
    timestamp_jumps: int
    audio_queue_ms: float
    video_queue_ms: float
    av_offset_ms: float
    """Smoothed lateness of video against the audio clock when frames leave (+ = video late)."""
    playback_position: float
    """Seconds of audio that have really played out through the AudioSource."""
    waits_given_up: int = 0
    """Pushes and ``wait_for_playout()`` calls that outlived the media they waited for (each
    logged): they returned instead of hanging."""
    foreign_clocks: bool = False
    """``auto`` mode found the audio and video timestamps on unrelated clocks (now ``arrival``)."""

    pauses_exact: int = 0
    """Pauses whose unplayed audio was taken back to the sample (the source's own report)."""
    pauses_estimated: int = 0
    """Pauses where that report could not be trusted and the playout model decided (to ~10 ms)."""
    playout_corrections: int = 0
    """Times the playout model was moved to what the source was seen to emit (its ticks fell
    behind the model, e.g. starved on a busy machine, or ran ahead of it)."""
    audio_emitted: float | None = None
    """Seconds of handed audio the source was seen to emit (its own track read back), None
    without that reader: ``playback_position`` running ahead of it means the model is early."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
