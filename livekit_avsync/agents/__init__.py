"""livekit-agents integration: AvatarSession, its AgentSession audio output, the voice-only
fallback, the sync metrics it reports, and a worker load function that counts the worker's own
avatars."""

from .audio_output import AvatarAudioOutput
from .avatar_session import AvatarSession, OnProviderFailure, ProviderFailedEvent
from .metrics import SyncMetrics
from .voice_only import VoiceOnly
from .worker_load import ProcessTreeLoad

__all__ = [
    "AvatarAudioOutput",
    "AvatarSession",
    "OnProviderFailure",
    "ProcessTreeLoad",
    "ProviderFailedEvent",
    "SyncMetrics",
    "VoiceOnly",
]
