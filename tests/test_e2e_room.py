"""AvatarSession on a real LiveKit server: published tracks, their stream, lip-sync at a
real subscriber (markers through the SFU, decoded after VP8/Opus), and clean unpublishing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from e2e_server import ServerInfo
from livekit import rtc
from livekit.agents import AgentSession
from room_helpers import joined, track_streams, unique_room, wait_bursts_since

from livekit_avsync import AvatarSession, LocalAvatar
from livekit_avsync.measure import AVATAR_SPEC
from livekit_avsync.measure.room import RoomViewer

FPS = AVATAR_SPEC.fps


async def test_avatar_tracks_share_one_stream_and_arrive_in_sync(
    livekit_server: ServerInfo,
) -> None:
    room_name = unique_room("avatar")
    async with (
        joined(livekit_server, room_name, "agent") as agent_room,
        joined(livekit_server, room_name, "viewer") as viewer_room,
    ):
        provider = LocalAvatar(width=640, height=360, fps=FPS, markers=AVATAR_SPEC)
        avatar = AvatarSession(provider=provider, video_width=640, video_height=360, video_fps=FPS)
        session = AgentSession()
        await avatar.start(session, room=agent_room)
        viewer = RoomViewer(viewer_room, identity="agent")
        try:
            await viewer.start(timeout=20)
            streams = await track_streams(livekit_server, room_name, "agent")
            assert streams == {
                rtc.TrackSource.SOURCE_MICROPHONE: "avatar",
                rtc.TrackSource.SOURCE_CAMERA: "avatar",
            }
            await asyncio.sleep(2.0)  # the receiver's jitter buffers settle
            since = time.monotonic()
            # the idle avatar's own markers: 20 bursts ~ 10 s of media through the SFU
            await wait_bursts_since(viewer.capture, since, 20, timeout=40)
            report, raw = viewer.synced_report(since), viewer.raw_report(since)
            assert report.paired >= 15, f"synced: {report.summary()}; raw: {raw.summary()}"
            assert report.p95_abs_ms is not None and report.p95_abs_ms <= 40.0, (
                f"synced: {report.summary()}; raw: {raw.summary()}"
            )
        finally:
            await viewer.aclose()
            await avatar.aclose()
            await session.aclose()
        # unpublished: the viewer sees the tracks go
        await asyncio.sleep(0.5)
        remaining = viewer_room.remote_participants.get("agent")
        assert remaining is None or not remaining.track_publications


async def test_the_live_meter_measures_a_room_from_the_command_line(
    livekit_server: ServerInfo, tmp_path: Path
) -> None:
    """``livekit-avsync measure --room`` as a user runs it: env keys, hidden viewer, JSON."""
    room_name = unique_room("meter")
    out = tmp_path / "room.json"
    async with joined(livekit_server, room_name, "agent") as agent_room:
        provider = LocalAvatar(width=640, height=360, fps=FPS, markers=AVATAR_SPEC)
        avatar = AvatarSession(provider=provider, video_width=640, video_height=360, video_fps=FPS)
        session = AgentSession()
        await avatar.start(session, room=agent_room)
        try:
            env = {**os.environ, **livekit_server.env()}
            meter = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "livekit_avsync.cli.main", "measure", "--room", room_name,
                "--identity", "agent", "--seconds", "8", "--json", str(out),
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert meter.stdout is not None
            first = await asyncio.wait_for(meter.stdout.readline(), timeout=60)
            assert first.startswith(b"measuring agent in"), first
            # it is in the room now, measuring, and hidden: the avatar's side never sees it
            assert not agent_room.remote_participants
            rest, stderr = await asyncio.wait_for(meter.communicate(), timeout=90)
            stdout = first + rest
            assert meter.returncode == 0, stderr.decode()
        finally:
            await avatar.aclose()
            await session.aclose()
    text = stdout.decode()
    assert "as a lip-syncing receiver plays it:" in text and "raw at this subscriber:" in text
    data = json.loads(out.read_text())
    assert data["synced"]["paired"] >= 8, text
    assert data["synced"]["p95_abs_ms"] <= 40.0, text
