"""A provider that fails mid-session: by default the agent keeps talking, audio only (the video
track goes, an event says why); with ``on_provider_failure="end_session"`` the AgentSession is
shut down cleanly. Either way nothing is spoken into a closed output and nothing hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.io import PlaybackFinishedEvent
from room_stand_in import RoomStandIn
from session_helpers import as_stream, closed
from test_avatar_session import FPS, SR, H, W, tone_frames

from livekit_avsync import AvatarSession, LocalAvatar, ProviderFailedEvent
from livekit_avsync.measure import LoopbackCapture
from livekit_avsync.providers.base import OutputFrame, ProviderDisconnected


class FailingAvatar(LocalAvatar):
    """A LocalAvatar whose connection drops when the test says so: its audio stream raises."""

    def __init__(self) -> None:
        super().__init__(width=W, height=H, fps=FPS, sample_rate=SR, latency=0.05)
        self.fail = asyncio.Event()

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        return self._until_failure(super().audio_frames())

    async def _until_failure(
        self, frames: AsyncIterator[OutputFrame]
    ) -> AsyncIterator[OutputFrame]:
        async for item in frames:
            if self.fail.is_set():
                raise ProviderDisconnected("local: the avatar service dropped the connection")
            yield item


def avatar_with(provider: LocalAvatar, **options: str) -> AvatarSession:
    return AvatarSession(
        provider=provider,
        video_width=W,
        video_height=H,
        video_fps=FPS,
        audio_sample_rate=SR,
        **options,  # type: ignore[arg-type]
    )


async def _started(
    **options: str,
) -> tuple[RoomStandIn, AgentSession, AvatarSession, FailingAvatar]:
    room, session, provider = RoomStandIn(), AgentSession(), FailingAvatar()
    avatar = avatar_with(provider, **options)
    await avatar.start(session, room)  # type: ignore[arg-type]
    await session.start(Agent(instructions="test"))
    return room, session, avatar, provider


def test_the_choice_is_checked() -> None:
    with pytest.raises(ValueError, match="on_provider_failure"):
        avatar_with(LocalAvatar(width=W, height=H), on_provider_failure="retry")


async def test_by_default_the_agent_keeps_talking_with_audio_only() -> None:
    room, session, avatar, provider = await _started()
    failures: list[ProviderFailedEvent] = []
    avatar.on("provider_failed", failures.append)
    finished: list[PlaybackFinishedEvent] = []
    avatar.audio_output.on("playback_finished", finished.append)
    pubs = list(room.local_participant.published.values())
    audio = next(p for p in pubs if isinstance(p.track, rtc.LocalAudioTrack))
    capture = LoopbackCapture(audio.track, None, sample_rate=SR)  # type: ignore[arg-type]
    await capture.start()
    try:
        # the provider drops in the middle of a turn
        handle = session.say("cut short", audio=as_stream(tone_frames(3.0)))
        await capture.wait_until(lambda: capture.first_sound() is not None, timeout=10)
        await asyncio.sleep(0.5)
        failed_at = time.monotonic()
        provider.fail.set()
        await asyncio.wait_for(handle.wait_for_playout(), 10)  # the turn ends, not hangs
        for _ in range(200):
            if failures:
                break
            await asyncio.sleep(0.02)
        [failure] = failures
        assert failure.action == "voice_only" and failure.provider == "local"
        assert isinstance(failure.error, ProviderDisconnected)
        assert avatar.voice_only and finished[-1].interrupted
        # the face is gone, the voice stays
        assert [p.sid for p in room.local_participant.published.values()] == [audio.sid]
        assert capture.audio_tail(failed_at, max_gap=0.05) <= 0.3  # the cut turn stopped
        # the next turn is heard in full, on the same audio track
        since = time.monotonic()
        handle = session.say("still here", audio=as_stream(tone_frames(1.0)))
        await asyncio.wait_for(handle.wait_for_playout(), 10)
        await asyncio.sleep(0.2)
        first, last = capture.first_sound(after=since), capture.last_sound(after=since)
        assert first is not None and last is not None
        assert 1.0 - 0.06 <= last - first <= 1.0 + 0.4  # all of it (a busy machine adds gaps)
        assert not finished[-1].interrupted
        assert finished[-1].playback_position == pytest.approx(1.0, abs=0.03)
        # barge-in still stops it at once
        session.say("long", audio=as_stream(tone_frames(3.0)), allow_interruptions=True)
        since = time.monotonic()
        await capture.wait_until(lambda: capture.first_sound(after=since) is not None, 10)
        await asyncio.sleep(0.3)
        cleared_at = time.monotonic()
        session.interrupt()
        await asyncio.sleep(0.4)
        assert capture.audio_tail(cleared_at) <= 0.03
    finally:
        await capture.aclose()
        await closed(session.aclose(), "the AgentSession")
        await closed(avatar.aclose(), "the AvatarSession")
    assert not room.local_participant.published


async def test_end_session_shuts_the_agent_session_down_cleanly() -> None:
    before = set(asyncio.all_tasks())
    room, session, avatar, provider = await _started(on_provider_failure="end_session")
    failures: list[ProviderFailedEvent] = []
    avatar.on("provider_failed", failures.append)
    session_closed = asyncio.Event()
    session.on("close", lambda _: session_closed.set())
    handle = session.say("cut short", audio=as_stream(tone_frames(2.0)))
    await asyncio.sleep(0.6)
    provider.fail.set()
    await asyncio.wait_for(session_closed.wait(), 10)
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    [failure] = failures
    assert failure.action == "end_session" and isinstance(failure.error, ProviderDisconnected)
    for _ in range(200):
        if not room.local_participant.published:
            break
        await asyncio.sleep(0.02)
    assert not room.local_participant.published
    await closed(avatar.aclose(), "the AvatarSession")
    await asyncio.sleep(0.1)
    leaked = [t.get_name() for t in asyncio.all_tasks() - before if not t.done()]
    assert not [n for n in leaked if n.startswith("avsync")], leaked
