"""The agent's speech to Anam: turns converted to its passthrough input format and sent through
the SDK's agent audio input stream (one ``end_sequence()`` per turn, interrupts voiding the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from livekit import rtc
from livekit.agents.utils.audio import AudioByteStream

from ..media.convert import SpeechResampler
from .anam_errors import AnamTimeout

__all__ = ["SPEECH_SAMPLE_RATE", "SpeechTurns"]

SPEECH_SAMPLE_RATE = 24000
"""Rate of the speech we send to Anam (the rate its SDK recommends for passthrough)."""


class SpeechTurns:
    """The agent's speech in Anam's input format, sent turn by turn through one SDK stream.

    Per turn: channels averaged to mono with numpy, the rate converted by an
    ``rtc.AudioResampler`` created for that turn (its tail is sent at the turn's end and dropped
    at an interrupt), re-chunked by ``AudioByteStream`` into ``chunk_samples`` chunks. Sends are
    serialised by a lock; ``epoch`` (bumped by :meth:`drop_turn`) voids calls made before it.
    """

    def __init__(self, stream: Any, *, chunk_samples: int, timeout: float) -> None:
        self._stream = stream
        self._chunk_samples = chunk_samples
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.epoch = 0
        self._resampler = SpeechResampler(SPEECH_SAMPLE_RATE)
        self._chunker = self._new_chunker()
        self._open = False  # chunks of this turn went out, its end_sequence did not yet
        self._end_owed = False  # an interrupted sequence still has to be ended

    async def push(self, frame: rtc.AudioFrame, epoch: int) -> None:
        async with self._lock:
            if epoch != self.epoch:
                return
            await self._settle_locked()
            await self._send_chunks(self._chunker.push(self._resampler.push(frame)), epoch)

    async def end(self, epoch: int) -> None:
        async with self._lock:
            if epoch != self.epoch:
                return
            await self._settle_locked()
            chunks = self._chunker.push(self._resampler.flush()) + self._chunker.flush()
            await self._send_chunks(chunks, epoch)
            if epoch != self.epoch:
                return
            self._chunker = self._new_chunker()
            if self._open:
                self._open = False
                await self._timed(self._stream.end_sequence(), "ending the speech sequence")

    def drop_turn(self) -> None:
        """Interrupt: void pending calls and forget the turn's buffered audio (no flush)."""
        self.epoch += 1
        self._resampler.drop()
        self._chunker = self._new_chunker()
        if self._open:
            self._open = False
            self._end_owed = True

    async def settle(self) -> None:
        """Close an interrupted sequence with ``end_sequence()`` if it is still open."""
        async with self._lock:
            await self._settle_locked()

    async def _settle_locked(self) -> None:
        if self._end_owed:
            self._end_owed = False
            await self._timed(self._stream.end_sequence(), "ending the interrupted sequence")

    async def _send_chunks(self, chunks: list[rtc.AudioFrame], epoch: int) -> None:
        for chunk in chunks:
            if epoch != self.epoch:
                return  # interrupted while sending: the rest belongs to the dropped turn
            self._open = True
            await self._timed(self._stream.send_audio_chunk(bytes(chunk.data)), "sending speech")

    async def _timed(self, aw: Awaitable[None], what: str) -> None:
        try:
            await asyncio.wait_for(aw, self._timeout)
        except asyncio.TimeoutError:
            raise AnamTimeout(f"{what} took more than {self._timeout:g} s") from None

    def _new_chunker(self) -> AudioByteStream:
        return AudioByteStream(SPEECH_SAMPLE_RATE, 1, samples_per_channel=self._chunk_samples)
