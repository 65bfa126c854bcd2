"""AvatarSession as a livekit-agents avatar plugin on a real LiveKit server, in either start
order, with the AgentSession's own RoomIO (and its TranscriptSynchronizer): the room is
connected only after ``avatar.start`` (as ``session.start`` does in a job) or before it (RoomIO
has published its own agent audio track, which must go); the user receives the avatar's two
tracks and a transcription that follows what the avatar played, cut where it was interrupted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest
from e2e_server import ServerInfo
from livekit import rtc
from livekit.agents import Agent, AgentSession
from room_helpers import joined, token, track_streams, unique_room
from session_helpers import as_stream

from livekit_avsync import AvatarSession, LocalAvatar
from livekit_avsync.measure.room import RoomViewer

W, H, FPS, SR = 320, 180, 25, 24000
FULL = "one two three four five six seven eight nine ten"
LONG = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango"
)


def tone(seconds: float) -> list[rtc.AudioFrame]:
    n, step = int(seconds * SR), SR // 50
    samples = (9000 * np.sin(2 * np.pi * 440 * np.arange(n) / SR)).astype(np.int16)
    return [
        rtc.AudioFrame(samples[i : i + step].tobytes(), SR, 1, len(samples[i : i + step]))
        for i in range(0, n, step)
    ]


@dataclass
class Transcripts:
    """The agent's transcription text streams (``lk.transcription``) as the user receives them."""

    segments: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    finals: dict[str, bool] = field(default_factory=dict)  # streams that have closed
    tracks: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def handler(self, reader: rtc.TextStreamReader, identity: str) -> None:
        if identity != "agent":
            return
        task = asyncio.create_task(self._read(reader))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self, reader: rtc.TextStreamReader) -> None:
        attrs = reader.info.attributes or {}
        seg = attrs.get("lk.segment_id", reader.info.stream_id)
        self.tracks[seg] = attrs.get("lk.transcribed_track_id", "")
        chunks = self.segments.setdefault(seg, [])
        async for chunk in reader:
            chunks.append((time.monotonic(), chunk))
        self.finals[seg] = True  # the stream closed: the segment is complete

    def text(self, seg: str) -> str:
        return "".join(c for _, c in self.segments[seg]).strip()

    async def wait_segments(self, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [s for s in self.segments if s in self.finals]
            if len(done) >= count:
                return done
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.finals)} transcripts arrived, {count} expected")


async def _until(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("order", ["before", "after"])
async def test_either_order_on_a_real_server_transcript_follows_the_avatar(
    livekit_server: ServerInfo, order: Literal["before", "after"]
) -> None:
    room_name = unique_room(f"plugin-{order}")
    async with joined(livekit_server, room_name, "user") as user_room:
        transcripts = Transcripts()
        user_room.register_text_stream_handler("lk.transcription", transcripts.handler)
        agent_room = rtc.Room()
        session = AgentSession()
        provider = LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR, latency=0.05)
        avatar = AvatarSession(provider=provider, video_width=W, video_height=H, video_fps=FPS)
        viewer = RoomViewer(user_room, identity="agent", sample_rate=SR)
        agent_token = token(livekit_server, room_name, "agent")
        try:
            if order == "before":
                await avatar.start(session, room=agent_room)  # returns: the room is not connected
                assert not agent_room.isconnected() and not avatar.publications
                await session.start(agent=Agent(instructions="test"), room=agent_room)
                await agent_room.connect(livekit_server.url, agent_token)
            else:
                await agent_room.connect(livekit_server.url, agent_token)
                await session.start(agent=Agent(instructions="test"), room=agent_room)

                async def roomio_published() -> bool:
                    return bool(await track_streams(livekit_server, room_name, "agent"))

                await _until(roomio_published, 20, "RoomIO's own audio track")
                await avatar.start(session, room=agent_room)
            # the TranscriptSynchronizer RoomIO built is in front; the avatar is the tail
            chain, out = [], session.output.audio
            while out is not None:
                chain.append(out)
                out = out.next_in_chain
            assert "TranscriptSynchronizer" in [o.label for o in chain]
            assert chain[-1] is avatar.audio_output

            # the agent has the avatar's two tracks only: RoomIO's audio track is gone
            async def only_avatar_tracks() -> bool:
                streams = await track_streams(livekit_server, room_name, "agent")
                return streams == {
                    rtc.TrackSource.SOURCE_MICROPHONE: "avatar",
                    rtc.TrackSource.SOURCE_CAMERA: "avatar",
                }

            await _until(only_avatar_tracks, 20, "the avatar's tracks alone")

            def user_sees_two() -> bool:
                seen = user_room.remote_participants.get("agent")
                return seen is not None and len(seen.track_publications) == 2

            await _until(user_sees_two, 20, "the user to see two agent tracks")
            await viewer.start(timeout=20)
            await asyncio.sleep(1.0)  # jitter buffers settle
            capture = viewer.capture
            audio_sid = next(
                p.sid for p in avatar.publications if p.kind == rtc.TrackKind.KIND_AUDIO
            )

            # a whole turn: all of its words, paced over what the user heard
            said_at = time.monotonic()
            handle = session.say(FULL, audio=as_stream(tone(2.0)))
            await asyncio.wait_for(handle.wait_for_playout(), 20)
            [seg] = await transcripts.wait_segments(1, 10)
            await asyncio.sleep(0.5)
            first, last = capture.first_sound(after=said_at), capture.last_sound(after=said_at)
            assert first is not None and last is not None
            assert 2.0 - 0.15 <= last - first <= 2.0 + 0.8  # all of it (a busy machine adds gaps)
            assert transcripts.text(seg) == FULL
            assert transcripts.tracks[seg] == audio_sid  # the words are the avatar track's
            times = [t for t, c in transcripts.segments[seg] if c.strip()]
            # words start when the sound does (text is not delayed by the jitter buffer: slack)
            assert times[0] >= first - 0.4, f"words {first - times[0]:.2f} s before the sound"
            assert times[-1] - times[0] >= 0.5 * (last - first), "words not paced by playout"

            # an interrupted turn: the user gets the words up to where it was cut
            since = time.monotonic()
            session.say(LONG, audio=as_stream(tone(4.0)), allow_interruptions=True)
            await capture.wait_until(lambda: capture.first_sound(after=since) is not None, 10)
            await asyncio.sleep(1.5)
            session.interrupt()
            done = await transcripts.wait_segments(2, 10)
            await asyncio.sleep(0.5)
            cut = next(s for s in done if s != seg)
            heard_from, heard_to = capture.first_sound(after=since), capture.last_sound(after=since)
            assert heard_from is not None and heard_to is not None
            heard = (heard_to - heard_from) / 4.0
            got = transcripts.text(cut)
            assert LONG.startswith(got) and got != LONG, got
            share = len(got.split()) / len(LONG.split())
            assert abs(share - heard) <= 0.25, f"{share:.0%} of the words for {heard:.0%} heard"
            # the session's record of the turn: the same words (the user may have one more: a
            # word is sent halfway through its time)
            message = [i for i in session.history.items if i.type == "message"][-1]
            recorded = (message.text_content or "").strip()
            assert message.interrupted and got.startswith(recorded), (recorded, got)
            assert len(got.split()) - len(recorded.split()) <= 1, (recorded, got)
        finally:
            await viewer.aclose()
            await session.aclose()
            await avatar.aclose()
            await agent_room.disconnect()
            for task in list(transcripts.tasks):
                task.cancel()
