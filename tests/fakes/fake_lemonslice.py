"""A fake LemonSlice: its sessions REST API on 127.0.0.1 and an avatar worker on a FakeRoom.

The service checks what the real API documents (``POST /api/liveai/sessions`` with ``X-API-Key``
and a JSON body; ``POST /api/liveai/sessions/{id}/control`` with ``{"event": "terminate"}``) and
answers per ``mode``: ``ok``, ``reject`` (400 with a JSON error), ``unavailable`` (503), ``hang``.
On success it can launch :class:`FakeAvatarWorker` into the room named by the posted token: the
worker speaks the livekit-agents data-stream avatar protocol (``lk.audio_stream`` byte streams,
``lk.clear_buffer`` RPC) and publishes real audio (a sine tone) and video (flat I420 frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web
from livekit import rtc

from .fake_livekit import FakeByteStreamReader, FakeLiveKitServer, FakeRoom

SESSIONS_PATH = "/api/liveai/sessions"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeLemonSliceService:
    """The REST side; ``url`` is the sessions endpoint once :meth:`start` ran."""

    def __init__(self, api_key: str, *, on_session: Callable[[str, str, str], Any] | None = None):
        self.api_key = api_key
        self.mode = "ok"
        self.requests: list[Request] = []
        self.on_session = on_session
        self.terminated: list[str] = []
        self.created: list[str] = []
        self.create_delay = 0.0
        """Seconds the create request takes before it answers (a slow, but working, service)."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._hang = asyncio.Event()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(SESSIONS_PATH, self._create)
        app.router.add_post(SESSIONS_PATH + "/{session_id}/control", self._control)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{SESSIONS_PATH}"
        return self.url

    async def close(self) -> None:
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> Any:
        text = await request.text()
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = text
        self.requests.append(Request(request.method, request.path, dict(request.headers), body))
        return body

    def _refusal(self, request: web.Request, body: Any) -> web.Response | None:
        if request.headers.get("X-API-Key") != self.api_key:
            return web.json_response({"error": "Invalid API key"}, status=401)
        if request.content_type != "application/json" or not isinstance(body, dict):
            return web.json_response({"error": "expected a JSON object"}, status=415)
        return None

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        if self.mode == "hang":
            await self._hang.wait()
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if self.mode == "reject":
            return web.json_response({"error": "agent_id 'nope' does not exist"}, status=400)
        if self.mode == "unavailable":
            return web.Response(text="upstream overloaded", status=503)
        has_id, has_url = "agent_id" in body, "agent_image_url" in body
        props = body.get("properties") or {}
        if has_id == has_url or body.get("transport_type") != "livekit" or not props:
            return web.json_response({"error": "invalid session request"}, status=422)
        session_id = f"livekit-{uuid.uuid4()}"
        self.created.append(session_id)
        if self.on_session is not None:
            self.on_session(session_id, props["livekit_url"], props["livekit_token"])
        return web.json_response({"session_id": session_id})

    async def _control(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        if body != {"event": "terminate"}:
            return web.json_response({"error": "unknown event"}, status=400)
        self.terminated.append(request.match_info["session_id"])
        return web.json_response({"success": True})


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
