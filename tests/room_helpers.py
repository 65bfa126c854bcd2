"""Helpers of the end-to-end tests: tokens, rooms and server API calls on the e2e server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from e2e_server import ServerInfo
from livekit import api, rtc

from livekit_avsync.devserver import WorkerProcess
from livekit_avsync.measure import LoopbackCapture
from livekit_avsync.measure.room import RoomViewer
from livekit_avsync.measure.room_bench import RoomServer


def unique_room(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def token(server: ServerInfo, room: str, identity: str) -> str:
    return RoomServer(server.url, server.api_key, server.api_secret).token(room, identity)


@contextlib.asynccontextmanager
async def joined(server: ServerInfo, room: str, identity: str) -> AsyncIterator[rtc.Room]:
    """A connected ``rtc.Room`` as ``identity``; disconnected on exit."""
    lk_room = rtc.Room()
    await lk_room.connect(server.url, token(server, room, identity))
    try:
        yield lk_room
    finally:
        await lk_room.disconnect()


@contextlib.asynccontextmanager
async def server_api(server: ServerInfo) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)
    try:
        yield client
    finally:
        await client.aclose()


async def track_streams(server: ServerInfo, room: str, identity: str) -> dict[int, str]:
    """``{TrackSource: stream}`` of a participant's published tracks, from the server API."""
    async with server_api(server) as client:
        listing = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    for participant in listing.participants:
        if participant.identity == identity:
            return {track.source: track.stream for track in participant.tracks}
    raise AssertionError(f"{identity} is not in room {room}")


async def wait_bursts_since(
    capture: LoopbackCapture, since: float, count: int, timeout: float
) -> None:
    """Wait until ``count`` marker bursts were heard at or after ``since``."""
    await capture.wait_until(
        lambda: sum(b.time >= since for b in capture.audio_bursts) >= count, timeout=timeout
    )


async def agent_joins(
    server: ServerInfo, room: rtc.Room, *workers: WorkerProcess, **hooks: object
) -> RoomViewer:
    """The agent dispatched into ``room``, captured (worker and server logs in the error if not)."""
    viewer = RoomViewer(room, **hooks)  # type: ignore[arg-type]
    try:
        await viewer.start(timeout=60)
    except TimeoutError as exc:
        server_log = "(external server)"
        if server.local is not None:
            lines = server.local.log_path.read_text(errors="replace").splitlines()
            server_log = "\n".join(ln for ln in lines if "agent" in ln.lower())[-6000:]
        logs = "\n".join(f"worker log:\n{w.tail(30)}" for w in workers)
        raise AssertionError(f"{exc}; {logs}\nserver log:\n{server_log}") from None
    return viewer
