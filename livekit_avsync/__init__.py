"""livekit-avsync: lip-synced avatar audio and video for LiveKit agents."""

from .agents import AvatarAudioOutput, AvatarSession, ProviderFailedEvent, SyncMetrics
from .output import AVSynchronizer
from .providers import (
    AvatarProvider,
    LocalAvatar,
    OutputFrame,
    ProviderError,
    ProviderRecorder,
    RecordedProvider,
)
from .sync import SyncMode, SyncStats

__all__ = [
    "AVSynchronizer",
    "AvatarAudioOutput",
    "AvatarProvider",
    "AvatarSession",
    "LocalAvatar",
    "OutputFrame",
    "ProviderError",
    "ProviderFailedEvent",
    "ProviderRecorder",
    "RecordedProvider",
    "SyncMetrics",
    "SyncMode",
    "SyncStats",
]
__version__ = "0.1.0"
