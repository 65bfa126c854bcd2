"""The keyless example worker as a user runs it (``python examples/local_avatar_agent.py start``)
on a real LiveKit server, seen by a real participant: dispatch, one stream, lip-sync, barge-in
by the user's own voice, leaving with the user or the room, and SIGTERM.

The worker runs with ``AVSYNC_MARKERS=1`` (its LocalAvatar stamps measurement markers) at
640x360, with the production load settings (threshold 0.7, the server's target load 0.7): its
load is its own processes' CPU (ProcessTreeLoad), so the busy core these tests must survive
does not mark it full. Bounds are for a busy machine; the benchmark reports the real figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from e2e_server import ServerInfo
from livekit import api, rtc
from room_helpers import (
    agent_joins,
    joined,
    server_api,
    track_streams,
    unique_room,
    wait_bursts_since,
)

from livekit_avsync.demo.clip import REPLY, load_clip
from livekit_avsync.devserver import WorkerProcess
from livekit_avsync.measure.barge_in import barge_in_turn
from livekit_avsync.providers.face import FaceRenderer

WIDTH, HEIGHT = 640, 360
SKEW_P95_MS = 40.0
WARMUP_S = 2.0  # the subscriber's jitter buffer settles in its first second
REPLY_SECONDS = load_clip(REPLY).duration


@pytest.fixture(scope="module")
def worker(livekit_server: ServerInfo) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        livekit_server.env(),
        "local_avatar_agent.py",
        AVSYNC_MARKERS="1",
        AVSYNC_VIDEO_SIZE=f"{WIDTH}x{HEIGHT}",
    )
    try:
        process.wait_for("registered worker", timeout=90)
        yield process
    finally:
        process.close()


async def participants(server: ServerInfo, room: str) -> list[str]:
    async with server_api(server) as client:
        listing = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.identity for p in listing.participants]


async def wait_gone(server: ServerInfo, room: str, identity: str, timeout: float) -> float:
    start = time.monotonic()
    while identity in await participants(server, room):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{identity} still in {room} {timeout:g} s later")
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def test_dispatched_agent_publishes_one_stream_in_sync_and_leaves_with_the_user(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    mark = worker.mark()
    room_name = unique_room("worker")
    async with joined(livekit_server, room_name, "user") as room:
        viewer = await agent_joins(
            livekit_server, room, worker
        )  # the agent joins by automatic dispatch
        assert viewer.participant is not None
        agent = viewer.participant.identity
        assert viewer.participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        assert await track_streams(livekit_server, room_name, agent) == {
            rtc.TrackSource.SOURCE_MICROPHONE: "avatar",
            rtc.TrackSource.SOURCE_CAMERA: "avatar",
        }
        await asyncio.sleep(WARMUP_S)
        since = time.monotonic()
        await wait_bursts_since(viewer.capture, since, 20, timeout=40)  # greeting, then idle
        report, raw = viewer.synced_report(since), viewer.raw_report(since)
        await viewer.aclose()
        assert report.paired >= 15, report.summary()
        assert report.p95_abs_ms is not None and report.p95_abs_ms <= SKEW_P95_MS, (
            f"synced: {report.summary()}; raw: {raw.summary()}"
        )
    left = await wait_gone(livekit_server, room_name, agent, timeout=15)
    assert left < 15
    assert worker.problems(since=mark) == [], worker.tail()


async def test_deleting_the_room_ends_the_job_cleanly(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    mark = worker.mark()
    room_name = unique_room("delete")
    async with joined(livekit_server, room_name, "user") as room:
        viewer = await agent_joins(livekit_server, room, worker)
        job_ends_before = len(worker.record_times("process exiting"))
        async with server_api(livekit_server) as client:
            await client.room.delete_room(api.DeleteRoomRequest(room=room_name))
        await viewer.aclose()
    deadline = time.monotonic() + 15
    while len(worker.record_times("process exiting")) <= job_ends_before:
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.2)
    assert worker.problems(since=mark) == [], worker.tail()


async def test_the_users_voice_cuts_the_avatar_and_its_reply_plays_in_sync(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    mark = worker.mark()
    voice = load_clip(REPLY, sample_rate=48000)  # the user says: "Oh, sorry! Go ahead."
    async with joined(livekit_server, unique_room("barge-in"), "user") as room:
        turn = await barge_in_turn(
            room,
            voice.samples,
            voice.sample_rate,
            interrupt_times=lambda: worker.record_times("avatar interrupted"),
            turn_starts=lambda: worker.record_times("saying"),
            face=FaceRenderer(WIDTH, HEIGHT),
        )
    figures = turn.figures
    assert turn.interrupts >= 1, f"the agent was never interrupted:\n{worker.tail()}"
    assert figures.interrupt is not None
    assert 0 < figures.interrupt - figures.onset < 2.0, figures  # VAD + min duration (0.5 s)
    assert figures.silence_after_interrupt is not None, figures
    assert figures.silence_after_interrupt <= 0.25, figures
    assert figures.mouth_after_interrupt is not None and figures.mouth_after_interrupt <= 0.3
    assert figures.stale_seconds == 0.0, figures  # nothing of the cut greeting afterwards
    assert figures.reply_start is not None, figures
    assert figures.reply_seconds <= REPLY_SECONDS + 0.5, figures  # the reply, not the greeting
    reply = turn.reply
    assert reply is not None and reply.paired >= 3, reply
    assert reply.p95_abs_ms is not None and reply.p95_abs_ms <= SKEW_P95_MS, reply.summary()
    assert worker.problems(since=mark) == [], worker.tail()


async def test_worker_exits_promptly_on_sigterm(worker: WorkerProcess) -> None:
    # the users have left: every job the worker runs ends (bounded), then it is idle. The count
    # is the worker's own (its /worker page), not its job requests: the server may offer a room
    # again, and a request it never assigns starts no job (livekit-agents drops it after its
    # assignment timeout, a warning)
    deadline = time.monotonic() + 20
    while (running := await worker.active_jobs()) > 0:
        assert time.monotonic() < deadline, (
            f"{running} job(s) did not end ({len(worker.record_times('received job request'))}"
            f" requests, {len(worker.record_times('received assignment'))} assigned):\n"
            f"{worker.tail()}"
        )
        await asyncio.sleep(0.2)
    mark = worker.mark()
    assert worker.terminate(timeout=10) < 10
    assert worker.process.returncode == 0, worker.tail()
    assert worker.problems(since=mark) == [], worker.tail()
