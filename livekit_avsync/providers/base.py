"""The one small contract every avatar provider implements.

A provider turns the agent's speech into a talking face. The :class:`AvatarSession` drives it:
``start()``, then per turn ``push_audio()`` ... ``end_turn()`` (or ``interrupt()``), and reads the
provider's output from :meth:`AvatarProvider.audio_frames` and :meth:`AvatarProvider.video_frames`
into the :class:`~livekit_avsync.AVSynchronizer`. Two output iterators (not one) because remote
providers deliver audio and video as independent streams; an in-process provider may feed both
from one clock.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from livekit import rtc
from livekit.agents import APIConnectionError, APIError, APIStatusError, APITimeoutError

from ..media.convert import AudioLike, VideoLike

if TYPE_CHECKING:
    from ..sync.aligner import SyncMode

__all__ = [
    "AvatarProvider",
    "OutputFrame",
    "PlaybackFinished",
    "ProviderConfigError",
    "ProviderDisconnected",
    "ProviderError",
    "ProviderEvent",
    "ProviderStatusError",
    "ProviderTimeout",
    "drain_output",
    "end_output",
    "setting",
]

ProviderEvent = Literal["ready", "playback_started", "playback_finished", "disconnected"]
"""Events a provider emits: ``ready`` (no args), ``playback_started`` (no args),
``playback_finished`` (:class:`PlaybackFinished`), ``disconnected`` (reason: str)."""


class ProviderError(APIError, RuntimeError):
    """A provider failed: a rejected request, a lost connection, bad output.

    Part of livekit-agents' ``APIError`` family, as the official plugins' errors are, so
    AgentSession-level handling treats them alike; ``retryable`` says whether trying again (a new
    request or session) can help. The message names the provider (:attr:`provider`) and the cause
    and never a secret; ``str()`` is the message alone (the exception chain, which
    ``APIConnectionError`` would append, may quote a server's echo of a token). Still a
    ``RuntimeError`` for code written against earlier releases.
    """

    provider: str | None = None
    """Name of the provider that failed (subclasses per provider set it), or None."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        retryable: bool | None = None,
        body: object | None = None,
    ) -> None:
        if provider is not None:
            self.provider = provider
        name = self.provider
        if name and not message.startswith(name):
            message = f"{name}: {message}"
        APIError.__init__(
            self,
            message,
            body=body,
            retryable=self._default_retryable() if retryable is None else retryable,
        )

    @classmethod
    def _default_retryable(cls) -> bool:
        return False

    def __str__(self) -> str:
        return self.message


class ProviderConfigError(ProviderError, ValueError):
    """The provider is configured wrongly (a missing key, a bad value): fix it, do not retry.

    Also a ``ValueError``, as livekit-agents plugins raise for bad arguments."""


class ProviderTimeout(ProviderError, APITimeoutError, TimeoutError):
    """A provider did not answer in time (connect, session ready, avatar join...); retryable."""

    @classmethod
    def _default_retryable(cls) -> bool:
        return True


class ProviderDisconnected(ProviderError, APIConnectionError):
    """The provider's connection closed; the session cannot continue (a new one may:
    ``retryable`` is False only when this side closed it)."""

    @classmethod
    def _default_retryable(cls) -> bool:
        return True


class ProviderStatusError(ProviderError, APIStatusError):
    """The provider's API answered with an HTTP error: ``status_code``, and ``retryable`` as
    livekit-agents decides it (5xx, 408, 429 and 499 are; other 4xx are not)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        provider: str | None = None,
        body: object | None = None,
        request_id: str | None = None,
    ) -> None:
        ProviderError.__init__(self, message, provider=provider, body=body)
        probe = APIStatusError("", status_code=status_code)  # livekit-agents' retry rule
        self.retryable = probe.retryable
        self.status_code = status_code
        self.request_id = request_id


@dataclass(slots=True)
class OutputFrame:
    """One frame of provider output.

    ``timestamp`` is seconds on the provider's media clock (audio: the frame's end time, video: its
    presentation time) or None when the provider has none. ``generation`` is the provider's turn
    generation when the frame was produced (see :attr:`AvatarProvider.generation`), or None for
    providers that cannot tell; the session drops frames from an older generation, and the
    synchronizer's stale-tail gate handles the untagged ones. ``speech`` marks audio of the turn.
    """

    frame: AudioLike | VideoLike
    timestamp: float | None = None
    generation: int | None = None
    speech: bool | None = None
    """For audio: True while it carries the turn's speech, False for idle or silence, None when
    the provider cannot tell (the session then judges by loudness)."""


@dataclass(slots=True)
class PlaybackFinished:
    """What a provider reports when it has finished (or abandoned) playing a turn."""

    playback_position: float
    interrupted: bool


class AvatarProvider(ABC, rtc.EventEmitter[ProviderEvent]):
    """Base class of every avatar provider (LocalAvatar, Anam, LemonSlice, RecordedProvider...).

    Subclasses set :attr:`label` and :attr:`sync_mode` and implement the abstract methods.
    ``sync_mode`` tells the synchronizer how to align the two output streams: ``"timestamps"``
    when audio and video timestamps share one media clock, ``"arrival"`` when they come from
    independent streams whose clocks are unrelated (see :class:`~livekit_avsync.AVSynchronizer`).
    """

    label: str = "avatar"
    sync_mode: SyncMode = "auto"
    video_lag: float = 0.0
    """Seconds by which this provider's video typically arrives after its audio (arrival mode)."""

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Turn generation: bumped by every :meth:`interrupt`, so stale output can be recognised."""
        return self._generation

    def _bump_generation(self) -> int:
        self._generation += 1
        return self._generation

    @abstractmethod
    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Connect and start the provider session; raise :class:`ProviderError` on failure.

        ``room`` is the agent's room (providers that open a side room on the same LiveKit server
        use its URL); in-process providers ignore it. Emit ``ready`` once output is flowing.
        """

    @abstractmethod
    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Send one frame of the agent's speech for the current turn (any rate, mono or stereo)."""

    @abstractmethod
    async def end_turn(self) -> None:
        """Mark the end of the current turn's speech: the provider finishes speaking it."""

    @abstractmethod
    async def interrupt(self) -> None:
        """Stop the current turn at once and discard its speech. Bumps :attr:`generation`."""

    @abstractmethod
    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        """The provider's output audio, until the provider closes."""

    @abstractmethod
    def video_frames(self) -> AsyncIterator[OutputFrame]:
        """The provider's output video (speaking and idle), until the provider closes."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop the provider session and release everything it holds. Idempotent."""


def setting(value: str | None, env: str, *, what: str, required: bool = True) -> str | None:
    """A keyword argument with an environment-variable fallback, as livekit-agents plugins do.

    Raises :class:`ProviderConfigError` naming both the argument and the variable when a required
    setting is missing. The value itself is never included in messages or logs.
    """
    if value:
        return value
    found = os.environ.get(env)
    if found:
        return found
    if required:
        raise ProviderConfigError(f"{what} is required: pass it as an argument or set {env}")
    return None


async def drain_output(queue: asyncio.Queue[OutputFrame | None]) -> AsyncIterator[OutputFrame]:
    """A provider's output queue as an iterator: frames until the ``None`` end marker, which is
    left in place so any later reader ends too."""
    while True:
        item = await queue.get()
        if item is None:
            queue.put_nowait(None)
            return
        yield item


def end_output(queue: asyncio.Queue[OutputFrame | None]) -> None:
    """End a closed provider's output: frames nobody read are discarded (a closed session's media
    is not played), then the end marker, so every reader of :func:`drain_output` ends."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
