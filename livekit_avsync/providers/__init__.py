"""Avatar providers, one per module, behind the :class:`AvatarProvider` protocol.

``AnamAvatar`` (extra ``[anam]``) and ``LemonSliceAvatar`` are imported from their own modules so
the SDKs they need are only loaded when used.
"""

from .base import (
    AvatarProvider,
    OutputFrame,
    PlaybackFinished,
    ProviderDisconnected,
    ProviderError,
    ProviderTimeout,
)
from .local import LocalAvatar
from .recorded import RecordedProvider
from .recorder import ProviderRecorder

__all__ = [
    "AvatarProvider",
    "LocalAvatar",
    "OutputFrame",
    "PlaybackFinished",
    "ProviderDisconnected",
    "ProviderError",
    "ProviderRecorder",
    "ProviderTimeout",
    "RecordedProvider",
]
