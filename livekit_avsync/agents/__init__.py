"""livekit-agents integration: AvatarSession, its AgentSession audio output, and a worker load
function that counts the worker's own avatars."""

from .audio_output import AvatarAudioOutput
from .avatar_session import AvatarSession
from .worker_load import ProcessTreeLoad

__all__ = ["AvatarAudioOutput", "AvatarSession", "ProcessTreeLoad"]
