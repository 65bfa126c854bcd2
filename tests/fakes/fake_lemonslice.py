"""A fake LemonSlice for unit tests on the in-memory FakeRoom: the REST service (the stand-in
of :mod:`livekit_avsync.devserver.lemonslice`, whose docstring lists what is documented and what
is assumed) and :class:`FakeAvatarWorker`, a protocol probe.

:class:`FakeAvatarWorker` is no avatar and proves no lip-sync (the end-to-end test
``test_lemonslice_e2e.py`` runs livekit-agents' own AvatarRunner on the real server for that).
From the livekit-agents data-stream protocol: it receives ``lk.audio_stream`` byte streams,
refuses one without ``sample_rate`` / ``num_channels`` attributes as ``DataStreamAudioReceiver``
does (``missing_attributes`` counts them), answers ``lk.clear_buffer``, and its tests call
``lk.playback_started`` / ``lk.playback_finished`` at the relay. Assumed: it finds the relay
through the token's ``lk.publish_on_behalf`` attribute (the runtime finds the first agent), and
it publishes a constant tone and flat frames whatever it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc

from livekit_avsync.devserver.lemonslice import SESSIONS_PATH, LemonSliceStandIn

from .fake_livekit import FakeByteStreamReader, FakeLiveKitServer, FakeRoom

FakeLemonSliceService = LemonSliceStandIn
__all__ = ["SESSIONS_PATH", "FakeAvatarWorker", "FakeLemonSliceService", "ReceivedStream"]
"""The REST half lives in :mod:`livekit_avsync.devserver.lemonslice` (the bench uses it too)."""


@dataclass
class ReceivedStream:
    """One ``lk.audio_stream`` byte stream as the avatar saw it."""

    sender: str
    info: rtc.ByteStreamInfo
    data: bytearray = field(default_factory=bytearray)
    complete: bool = False
    close_reason: str | None = None
    clears_before: int = 0
    """How many ``lk.clear_buffer`` calls the avatar had completed when this stream opened."""


class FakeAvatarWorker:
    """LemonSlice's avatar: joins with the posted token, publishes media, receives speech."""

    TONE_HZ = 300.0
    TONE_AMPLITUDE = 8000
    LUMA = 180
    WIDTH, HEIGHT = 64, 48

    def __init__(self, server: FakeLiveKitServer, url: str, token: str) -> None:
        self.room = FakeRoom(server)
        self._url = url
        self._token = token
        self.streams: list[ReceivedStream] = []
        self.clear_calls: list[str] = []
        self.clears_done = 0
        self.clear_delay = 0.0
        self.relay_identity: str | None = None
        self.missing_attributes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._audio = rtc.AudioSource(48000, 1, queue_size_ms=20)
        self._video = rtc.VideoSource(self.WIDTH, self.HEIGHT)

    async def run(self) -> None:
        """Join, register the protocol handlers, publish audio and video, keep media flowing."""
        await self.room.connect(self._url, self._token)
        self.relay_identity = self.room.local_participant.attributes.get("lk.publish_on_behalf")
        self.room.register_byte_stream_handler("lk.audio_stream", self._on_stream)
        self.room.local_participant.register_rpc_method("lk.clear_buffer", self._on_clear)
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio)
        video = rtc.LocalVideoTrack.create_video_track("avatar-video", self._video)
        self._tasks += [
            asyncio.create_task(self._feed_audio()),
            asyncio.create_task(self._feed_video()),
        ]
        await self.room.local_participant.publish_track(audio)
        await self.room.local_participant.publish_track(video)

    async def playback_started(self) -> str:
        return await self._notify("lk.playback_started", "")

    async def playback_finished(self, position: float, interrupted: bool) -> str:
        payload = json.dumps({"playback_position": position, "interrupted": interrupted})
        return await self._notify("lk.playback_finished", payload)

    async def leave(self) -> None:
        await self.room.disconnect()
        await self.stop_media()

    async def stop_media(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._audio.aclose()
        with contextlib.suppress(Exception):
            await self._video.aclose()

    async def _notify(self, method: str, payload: str) -> str:
        assert self.relay_identity is not None, "token carried no lk.publish_on_behalf"
        return await self.room.local_participant.perform_rpc(
            destination_identity=self.relay_identity, method=method, payload=payload
        )

    def _on_stream(self, reader: FakeByteStreamReader, sender: str) -> None:
        attrs = reader.info.attributes or {}
        if "sample_rate" not in attrs or "num_channels" not in attrs:
            self.missing_attributes += 1  # DataStreamAudioReceiver raises on such a stream
            return
        received = ReceivedStream(sender, reader.info, clears_before=self.clears_done)
        self.streams.append(received)
        self._tasks.append(asyncio.create_task(self._read(reader, received)))

    async def _read(self, reader: FakeByteStreamReader, received: ReceivedStream) -> None:
        async for chunk in reader:
            received.data += chunk
        received.complete = True
        received.close_reason = reader._close_reason

    async def _on_clear(self, data: rtc.RpcInvocationData) -> str:
        self.clear_calls.append(data.caller_identity)
        if self.clear_delay:
            await asyncio.sleep(self.clear_delay)
        self.clears_done += 1
        return "ok"

    async def _feed_audio(self) -> None:
        step = 480
        t = np.arange(step) / 48000
        n = 0
        while True:
            phase = 2 * np.pi * self.TONE_HZ * (t + n * step / 48000)
            samples = (self.TONE_AMPLITUDE * np.sin(phase)).astype(np.int16)
            await self._audio.capture_frame(rtc.AudioFrame(samples.tobytes(), 48000, 1, step))
            n += 1

    async def _feed_video(self) -> None:
        w, h = self.WIDTH, self.HEIGHT
        data = bytes([self.LUMA]) * (w * h) + bytes([128]) * (2 * (w // 2) * (h // 2))
        while True:
            self._video.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, data))
            await asyncio.sleep(0.04)
