"""livekit-avsync: lip-synced avatar audio and video for LiveKit agents."""

from .output import AVSynchronizer
from .sync import SyncMode, SyncStats

__all__ = ["AVSynchronizer", "SyncMode", "SyncStats"]
__version__ = "0.1.0"
