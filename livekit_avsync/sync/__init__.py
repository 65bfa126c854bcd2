"""The pure synchronisation core: scheduling on an injected clock, no LiveKit I/O."""

from .aligner import Aligner, SyncMode
from .clock import Clock, FakeClock, MonotonicClock
from .gate import StaleGate
from .playout import AudioPlayout
from .stats import SyncStats
from .video import Decision, QueuedFrame, VideoScheduler

__all__ = [
    "Aligner",
    "AudioPlayout",
    "Clock",
    "Decision",
    "FakeClock",
    "MonotonicClock",
    "QueuedFrame",
    "StaleGate",
    "SyncMode",
    "SyncStats",
    "VideoScheduler",
]
