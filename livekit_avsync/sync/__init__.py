"""The pure synchronisation core: scheduling on an injected clock, no LiveKit I/O."""

from .aligner import Aligner, SyncMode
from .audio_queue import AudioChunk, AudioQueue
from .clock import Clock, FakeClock, MonotonicClock
from .gate import StaleGate
from .ledger import PlayedLedger
from .playout import AudioPlayout
from .stamps import FrameStamper
from .stats import SyncStats
from .video import Decision, QueuedFrame, VideoScheduler

__all__ = [
    "Aligner",
    "AudioChunk",
    "AudioPlayout",
    "AudioQueue",
    "Clock",
    "Decision",
    "FakeClock",
    "FrameStamper",
    "MonotonicClock",
    "PlayedLedger",
    "QueuedFrame",
    "StaleGate",
    "SyncMode",
    "SyncStats",
    "VideoScheduler",
]
