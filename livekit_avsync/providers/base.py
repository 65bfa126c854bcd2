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

from ..media.convert import AudioLike, VideoLike

if TYPE_CHECKING:
    from ..sync.aligner import SyncMode

__all__ = [
    "AvatarProvider",
    "OutputFrame",
    "PlaybackFinished",
    "ProviderDisconnected",
    "ProviderError",
    "ProviderEvent",
    "ProviderTimeout",
    "drain_output",
    "setting",
]

ProviderEvent = Literal["ready", "playback_started", "playback_finished", "disconnected"]
"""Events a provider emits: ``ready`` (no args), ``playback_started`` (no args),
``playback_finished`` (:class:`PlaybackFinished`), ``disconnected`` (reason: str)."""


class ProviderError(RuntimeError):
    """A provider failed: bad configuration, a rejected request, a lost connection."""


class ProviderTimeout(ProviderError, TimeoutError):
    """A provider did not answer in time (connect, session ready, avatar join...)."""


class ProviderDisconnected(ProviderError):
    """The provider's connection closed; the session cannot continue."""


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

    Raises :class:`ProviderError` naming both the argument and the variable when a required
    setting is missing. The value itself is never included in messages or logs.
    """
    if value:
        return value
    found = os.environ.get(env)
    if found:
        return found
    if required:
        raise ProviderError(f"{what} is required: pass it as an argument or set {env}")
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
