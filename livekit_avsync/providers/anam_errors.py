"""Anam's errors: the provider's :class:`~.base.ProviderError` family, named for Anam."""

from __future__ import annotations

from .base import ProviderConfigError, ProviderDisconnected, ProviderError, ProviderTimeout

__all__ = ["AnamConfigError", "AnamDisconnected", "AnamProviderError", "AnamTimeout"]


class AnamProviderError(ProviderError):
    """An Anam failure (the catchable base is :class:`ProviderError`)."""

    provider = "Anam"


class AnamConfigError(AnamProviderError, ProviderConfigError):
    """Anam is configured wrongly (missing key or avatar, bad options, no SDK)."""


class AnamTimeout(AnamProviderError, ProviderTimeout):
    """Anam did not connect, get ready, send media or answer in time."""


class AnamDisconnected(AnamProviderError, ProviderDisconnected):
    """The Anam session ended: its connection closed or its media died."""
