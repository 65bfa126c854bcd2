"""A stand-in for LemonSlice on this machine: its sessions REST API, and avatars that are played
by livekit-agents' own remote-avatar runtime, for the end-to-end tests and the bench.

:class:`LemonSliceStandIn` serves ``POST /api/liveai/sessions`` and
``POST /api/liveai/sessions/{id}/control`` on 127.0.0.1. For each session it creates, it starts a
:class:`RuntimeAvatar` that joins the LiveKit room with the URL and token the request carried and
runs ``livekit.agents.voice.avatar.AvatarRunner`` with ``DataStreamAudioReceiver`` (which finds
the sender as the room's first agent participant and requires the byte streams' ``sample_rate``
/ ``num_channels`` attributes) and :class:`MarkerFaceGenerator`: our keyless
:class:`~livekit_avsync.providers.local.LocalAvatar` whose mouth follows the speech it received
and whose output carries the measurement markers. The runtime sends ``lk.playback_started`` /
``lk.playback_finished`` and answers ``lk.clear_buffer`` itself, as any LiveKit remote avatar.

What comes from LemonSlice's documentation or the livekit-agents plugin: the two endpoints, the
``X-API-Key`` header, the JSON body (``transport_type: livekit``, ``properties.livekit_url`` /
``livekit_token``, exactly one of ``agent_id`` / ``agent_image_url``, ``idle_timeout``,
``audio_sample_rate`` with its allowed rates), the ``{"session_id": ...}`` answer, the terminate
event, the avatar leaving after ``idle_timeout`` seconds without speech (default 60), and the
data-stream avatar protocol (which the runtime here implements as livekit-agents ships it).
What is assumed: the error bodies and status codes (401 for a wrong key, 422 for a malformed
request, 400 for an unknown agent, 503 when overloaded), that the avatar publishes only while it
speaks audio (the runtime's behaviour; LemonSlice's own avatar may send audio when idle), its
picture and voice (a drawn face, markers), and how fast it joins (at once, unless
``join_delay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)

from ..measure.spec import AVATAR_SPEC, MarkerSpec
from ..providers.base import PlaybackFinished
from ..providers.local import LocalAvatar

__all__ = [
    "SESSIONS_PATH",
    "LemonSliceStandIn",
    "MarkerFaceGenerator",
    "Request",
    "RuntimeAvatar",
]

logger = logging.getLogger(__name__)

SESSIONS_PATH = "/api/liveai/sessions"
AUDIO_SAMPLE_RATES = (16000, 22050, 24000, 44100, 48000)
_DEFAULT_IDLE_TIMEOUT = 60.0
_OUTPUT_RATE = 48000


@dataclass
class Request:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class MarkerFaceGenerator(VideoGenerator):
    """An AvatarRunner video generator: a LocalAvatar fed with the speech the runtime received.

    Its output goes back to the runtime as it is produced (real time): video always, audio only
    while the received speech plays, then an ``AudioSegmentEnd`` once the face has played the
    ended turn, so the runtime's playback position and events are those of the speech.
    ``received_formats`` records the ``(sample_rate, num_channels)`` of every received frame
    (the byte streams' attributes).
    """

    def __init__(self, face: LocalAvatar) -> None:
        self.face = face
        self.received_formats: set[tuple[int, int]] = set()
        self.received_seconds = 0.0
        self.clears = 0
        self.last_audio: float | None = None
        self._out: asyncio.Queue[rtc.AudioFrame | rtc.VideoFrame | AudioSegmentEnd] = (
            asyncio.Queue()
        )
        self._speaking = False
        self._turn_played = False  # the face finished playing a whole (ended) turn
        self._pumps: list[asyncio.Task[None]] = []
        face.on("playback_finished", self._on_face_finished)

    def _on_face_finished(self, event: PlaybackFinished) -> None:
        if not event.interrupted:
            self._turn_played = True

    async def start(self) -> None:
        await self.face.start()
        self._pumps = [
            asyncio.create_task(self._pump_audio(), name="marker-face-audio"),
            asyncio.create_task(self._pump_video(), name="marker-face-video"),
        ]

    async def aclose(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self.face.aclose()

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            await self.face.end_turn()
            return
        self.received_formats.add((frame.sample_rate, frame.num_channels))
        self.received_seconds += frame.duration
        self.last_audio = asyncio.get_running_loop().time()
        await self.face.push_audio(frame)

    async def clear_buffer(self) -> None:
        """The cut turn goes: the face drops it, and its queued audio here is thrown away."""
        self.clears += 1
        await self.face.interrupt()
        kept = []
        while not self._out.empty():
            item = self._out.get_nowait()
            if isinstance(item, rtc.VideoFrame):
                kept.append(item)
        for item in kept:
            self._out.put_nowait(item)
        self._speaking = False
        self._turn_played = False

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrame | rtc.VideoFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.AudioFrame | rtc.VideoFrame | AudioSegmentEnd]:
        while True:
            yield await self._out.get()

    async def _pump_audio(self) -> None:
        async for item in self.face.audio_frames():
            if item.generation is not None and item.generation != self.face.generation:
                continue  # produced before an interrupt
            if item.speech:
                self._speaking = True
                assert isinstance(item.frame, rtc.AudioFrame)
                self._out.put_nowait(item.frame)
            elif self._speaking and self._turn_played:
                # the turn ended and played out (a gap mid-turn, speech arriving late, is not
                # its end: the runtime would report the turn finished while it still speaks)
                self._speaking = self._turn_played = False
                self._out.put_nowait(AudioSegmentEnd())

    async def _pump_video(self) -> None:
        async for item in self.face.video_frames():
            assert isinstance(item.frame, rtc.VideoFrame)
            self._out.put_nowait(item.frame)


class _RecordingReceiver(DataStreamAudioReceiver):
    """livekit-agents' receiver, noting each playback report it sends to the agent."""

    def __init__(self, room: rtc.Room, reports: list[tuple[float, bool]]) -> None:
        super().__init__(room)
        self._reports = reports

    def notify_playback_finished(self, playback_position: float, interrupted: bool) -> None:
        self._reports.append((playback_position, interrupted))
        super().notify_playback_finished(playback_position, interrupted)


class RuntimeAvatar:
    """One stand-in avatar: joins with the posted URL and token and runs livekit-agents'
    AvatarRunner until terminated, kicked, or ``idle_timeout`` seconds pass without speech."""

    def __init__(
        self,
        session_id: str,
        url: str,
        token: str,
        *,
        width: int,
        height: int,
        markers: MarkerSpec = AVATAR_SPEC,
        idle_timeout: float = _DEFAULT_IDLE_TIMEOUT,
        join_delay: float = 0.0,
    ) -> None:
        self.session_id = session_id
        self.room = rtc.Room()
        self.generator = MarkerFaceGenerator(
            LocalAvatar(
                width=width,
                height=height,
                fps=markers.fps,
                sample_rate=_OUTPUT_RATE,
                markers=markers,
                latency=0.0,
            )
        )
        self._options = AvatarOptions(
            video_width=width,
            video_height=height,
            video_fps=markers.fps,
            audio_sample_rate=_OUTPUT_RATE,
            audio_channels=1,
        )
        self._url, self._token = url, token
        self._idle_timeout = idle_timeout
        self._join_delay = join_delay
        self._stop = asyncio.Event()
        self.left_reason: str | None = None
        self.error: BaseException | None = None
        self.playback_reports: list[tuple[float, bool]] = []
        """``(playback_position, interrupted)`` of each ``lk.playback_finished`` it sent."""

    def stop(self, reason: str) -> None:
        """Leave the room (terminated by the API)."""
        if self.left_reason is None:
            self.left_reason = reason
        self._stop.set()

    async def run(self) -> None:
        """Join, play, leave; never raises (an error is kept in :attr:`error` and logged)."""
        runner: AvatarRunner | None = None
        try:
            if self._join_delay:
                await asyncio.sleep(self._join_delay)
            if self._stop.is_set():
                return
            await self.room.connect(self._url, self._token)
            self.room.on("disconnected", lambda *_: self.stop("kicked from the room"))
            await self.generator.start()
            runner = AvatarRunner(
                self.room,
                audio_recv=_RecordingReceiver(self.room, self.playback_reports),
                video_gen=self.generator,
                options=self._options,
            )
            await runner.start()
            await self._until_stopped()
        except Exception as exc:
            self.error = exc
            logger.exception("stand-in LemonSlice avatar %s failed", self.session_id)
        finally:
            if runner is not None:
                with contextlib.suppress(Exception):
                    await runner.aclose()
            await self.generator.aclose()
            with contextlib.suppress(Exception):
                await self.room.disconnect()

    async def _until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        joined = loop.time()
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.25)
            last = self.generator.last_audio or joined
            if self._idle_timeout >= 0 and loop.time() - last >= self._idle_timeout:
                self.stop("idle_timeout")


class LemonSliceStandIn:
    """The REST side; ``url`` is the sessions endpoint once :meth:`start` ran.

    ``mode``: ``ok``, ``reject`` (400 with a JSON error), ``unavailable`` (503), ``error``
    (500), ``hang`` (no answer until closed). ``create_delay`` delays each answer. With
    ``avatars=True`` each created session starts a :class:`RuntimeAvatar` (``width`` x
    ``height``) into the posted room; ``on_session(session_id, url, token)`` is called too.
    """

    def __init__(
        self,
        api_key: str,
        *,
        on_session: Callable[[str, str, str], Any] | None = None,
        avatars: bool = False,
        width: int = 640,
        height: int = 360,
    ) -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.requests: list[Request] = []
        self.on_session = on_session
        self.terminated: list[str] = []
        self.created: list[str] = []
        self.create_delay = 0.0
        self.join_delay = 0.0
        self.avatars: dict[str, RuntimeAvatar] = {}
        self.url = ""
        self._start_avatars = avatars
        self._size = (width, height)
        self._tasks: list[asyncio.Task[None]] = []
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
        """Stop every avatar and the HTTP server."""
        self._hang.set()
        for avatar in self.avatars.values():
            avatar.stop("service closed")
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
        if self.mode == "error":
            return web.Response(text="internal error", status=500)
        problem = _invalid(body)
        if problem:
            return web.json_response({"error": problem}, status=422)
        props = body["properties"]
        session_id = f"livekit-{uuid.uuid4()}"
        self.created.append(session_id)
        if self._start_avatars:
            idle = body.get("idle_timeout")
            avatar = RuntimeAvatar(
                session_id,
                props["livekit_url"],
                props["livekit_token"],
                width=self._size[0],
                height=self._size[1],
                idle_timeout=_DEFAULT_IDLE_TIMEOUT if idle is None else float(idle),
                join_delay=self.join_delay,
            )
            self.avatars[session_id] = avatar
            self._tasks.append(asyncio.create_task(avatar.run(), name=f"avatar-{session_id}"))
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
        session_id = request.match_info["session_id"]
        self.terminated.append(session_id)
        if session_id in self.avatars:
            self.avatars[session_id].stop("terminated")
        return web.json_response({"success": True})


def _invalid(body: dict[str, Any]) -> str | None:
    """Why a session request is malformed, or None."""
    props = body.get("properties")
    if ("agent_id" in body) == ("agent_image_url" in body):
        return "exactly one of agent_id or agent_image_url is required"
    if body.get("transport_type") != "livekit" or not isinstance(props, dict):
        return "transport_type livekit with properties is required"
    if not props.get("livekit_url") or not props.get("livekit_token"):
        return "properties.livekit_url and properties.livekit_token are required"
    rate = body.get("audio_sample_rate")
    if rate is not None and rate not in AUDIO_SAMPLE_RATES:
        return f"audio_sample_rate must be one of {list(AUDIO_SAMPLE_RATES)}"
    return None
