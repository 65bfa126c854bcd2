"""The events an AvatarSession emits beyond livekit-agents' ``metrics_collected``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AvatarEvent", "OnProviderFailure", "ProviderFailedEvent"]

OnProviderFailure = Literal["voice_only", "end_session"]
"""What an AvatarSession does when its provider fails or leaves mid-session."""

AvatarEvent = Literal["provider_failed", "sync_metrics"]


@dataclass(frozen=True, slots=True)
class ProviderFailedEvent:
    """The ``provider_failed`` event: the provider failed or left, and what was done about it."""

    provider: str
    reason: str
    error: BaseException | None
    action: OnProviderFailure
    """``"voice_only"``: the agent goes on speaking, audio only (the video track is
    unpublished); ``"end_session"``: the AgentSession is shut down."""
