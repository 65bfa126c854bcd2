"""Send the agent's speech to a remote avatar with the livekit-agents data-stream avatar protocol.

One LiveKit byte stream per turn on topic ``lk.audio_stream`` to the avatar's identity, carrying
int16 PCM with ``sample_rate``/``num_channels`` attributes; closing the stream ends the turn.
An interruption abandons the open stream and calls the avatar's ``lk.clear_buffer`` RPC. This is
what avatar workers built on livekit-agents' ``DataStreamAudioReceiver`` (e.g. LemonSlice) read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from livekit import rtc

from ..media.convert import SpeechResampler, check_audio_frame
from .base import ProviderError

__all__ = [
    "AUDIO_STREAM_TOPIC",
    "RPC_CLEAR_BUFFER",
    "RPC_PLAYBACK_FINISHED",
    "RPC_PLAYBACK_STARTED",
    "DataStreamSpeechSender",
]

logger = logging.getLogger(__name__)

AUDIO_STREAM_TOPIC = "lk.audio_stream"
RPC_CLEAR_BUFFER = "lk.clear_buffer"
RPC_PLAYBACK_STARTED = "lk.playback_started"
RPC_PLAYBACK_FINISHED = "lk.playback_finished"

_CLOSE_TIMEOUT = 2.0


class DataStreamSpeechSender:
    """Streams speech turns to one avatar participant, converted to ``sample_rate`` mono int16.

    Any input rate and channel count is accepted: channels are averaged with numpy, and the rate
    is converted by an ``rtc.AudioResampler`` that lives for one turn (so its filter state spans
    the turn's frames and its tail is flushed at :meth:`end_turn`). Methods are coroutine-safe:
    :meth:`clear` may run while a :meth:`push` is in flight and wins; that push's audio is dropped.
    """

    def __init__(
        self,
        local_participant: rtc.LocalParticipant,
        destination_identity: str,
        *,
        sample_rate: int = 16000,
        rpc_timeout: float = 2.0,
    ) -> None:
        if sample_rate <= 0:
            raise ProviderError(f"sample_rate must be positive, got {sample_rate}")
        self._participant = local_participant
        self._destination = destination_identity
        self._sample_rate = sample_rate
        self._rpc_timeout = rpc_timeout
        self._lock = asyncio.Lock()
        self._writer: rtc.ByteStreamWriter | None = None
        self._resampler = SpeechResampler(sample_rate)
        self._turn = 0
        self._clearing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM sent to the avatar (mono)."""
        return self._sample_rate

    async def push(self, frame: rtc.AudioFrame) -> None:
        """Send one frame of the current turn, opening the turn's byte stream on its first frame."""
        check_audio_frame(frame)
        if self._closed:
            raise ProviderError("speech sender is closed")
        if self._clearing is not None and not self._clearing.done():
            # the avatar must see the clear before the next turn's stream, or it clears that one
            await asyncio.shield(self._clearing)
        async with self._lock:
            turn = self._turn
            pcm = self._resampler.push(frame)
            if self._writer is None:
                writer = await self._open_stream()
                if turn != self._turn:  # cleared while the stream was opening
                    await _close_quietly(writer, reason="interrupted")
                    return
                self._writer = writer
            if not pcm:
                return
            writer = self._writer
            try:
                await writer.write(pcm)
            except Exception as exc:
                if turn != self._turn:
                    return  # clear() abandoned this stream mid-write; its audio is void anyway
                raise ProviderError(f"sending speech to the avatar failed: {exc}") from exc

    async def end_turn(self) -> None:
        """Flush the resampler tail and close the turn's stream (the avatar's end of segment)."""
        async with self._lock:
            writer, self._writer = self._writer, None
            tail = self._resampler.flush()
            if writer is None:
                return
            try:
                if tail:
                    await writer.write(tail)
                await writer.aclose()
            except Exception as exc:
                raise ProviderError(f"closing the speech stream failed: {exc}") from exc

    async def clear(self) -> None:
        """Abandon the current turn: close its stream and ask the avatar to drop buffered speech.

        The RPC is bounded by ``rpc_timeout``; its failure is logged, not raised, because an
        interruption must never fail the session.
        """
        self._turn += 1
        writer, self._writer = self._writer, None
        self._resampler.drop()
        self._clearing = asyncio.ensure_future(self._clear_remote(writer))
        await asyncio.shield(self._clearing)

    async def aclose(self) -> None:
        """Close any open stream and stop a pending clear. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._turn += 1
        writer, self._writer = self._writer, None
        if self._clearing is not None and not self._clearing.done():
            self._clearing.cancel()
            await asyncio.gather(self._clearing, return_exceptions=True)
        if writer is not None:
            await _close_quietly(writer, reason="closed")

    async def _clear_remote(self, writer: rtc.ByteStreamWriter | None) -> None:
        if writer is not None:
            await _close_quietly(writer, reason="interrupted")
        try:
            await asyncio.wait_for(
                self._participant.perform_rpc(
                    destination_identity=self._destination,
                    method=RPC_CLEAR_BUFFER,
                    payload="",
                    response_timeout=self._rpc_timeout,
                ),
                self._rpc_timeout + 1.0,
            )
        except asyncio.TimeoutError:
            logger.warning(
                "avatar did not answer %s within %g s", RPC_CLEAR_BUFFER, self._rpc_timeout
            )
        except Exception as exc:
            logger.warning("avatar %s call failed: %s", RPC_CLEAR_BUFFER, exc)

    async def _open_stream(self) -> rtc.ByteStreamWriter:
        try:
            return await self._participant.stream_bytes(
                f"AUDIO_{uuid.uuid4().hex[:12]}",
                topic=AUDIO_STREAM_TOPIC,
                destination_identities=[self._destination],
                attributes={"sample_rate": str(self._sample_rate), "num_channels": "1"},
            )
        except Exception as exc:
            raise ProviderError(f"cannot open the speech stream to the avatar: {exc}") from exc


async def _close_quietly(writer: rtc.ByteStreamWriter, *, reason: str) -> None:
    """Close an abandoned stream; failures only matter to the log (the turn is void anyway)."""
    try:
        await asyncio.wait_for(writer.aclose(reason=reason), _CLOSE_TIMEOUT)
    except Exception as exc:
        logger.debug("closing an abandoned speech stream failed: %s", exc)
