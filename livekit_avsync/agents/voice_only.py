"""The voice-only fallback: the agent's speech played as it is, with no face.

When the avatar provider fails or leaves mid-session, :class:`~livekit_avsync.AvatarSession`
(by default) swaps the provider for a :class:`VoiceOnly` one: it hands the TTS audio straight
back as output, so the same synchronizer, playback accounting and barge-in keep working and the
agent keeps talking. It produces no video (the session unpublishes the video track).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from livekit import rtc

from ..providers.base import AvatarProvider, OutputFrame, drain_output

__all__ = ["VoiceOnly"]


class VoiceOnly(AvatarProvider):
    """A provider that echoes the agent's speech as its output audio, flagged as speech."""

    label = "voice-only"
    sync_mode = "arrival"

    def __init__(self, *, replaces: str) -> None:
        super().__init__()
        self.replaces = replaces
        self._audio: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._closed = asyncio.Event()

    async def start(self, *, room: rtc.Room | None = None) -> None:
        self.emit("ready")

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        if not self._closed.is_set():
            self._audio.put_nowait(OutputFrame(frame, None, self.generation, speech=True))

    async def end_turn(self) -> None:
        return None

    async def interrupt(self) -> None:
        self._bump_generation()
        while not self._audio.empty():  # the interrupted turn's speech never plays
            if self._audio.get_nowait() is None:
                self._audio.put_nowait(None)
                break

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        return drain_output(self._audio)

    async def _no_video(self) -> AsyncIterator[OutputFrame]:
        await self._closed.wait()
        return
        yield  # an async generator that never yields

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        return self._no_video()

    async def aclose(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._audio.put_nowait(None)
