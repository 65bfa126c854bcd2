"""livekit-agents integration: AvatarSession and its AgentSession audio output."""

from .audio_output import AvatarAudioOutput
from .avatar_session import AvatarSession

__all__ = ["AvatarAudioOutput", "AvatarSession"]
