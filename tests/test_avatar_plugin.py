"""AvatarSession behaves like a livekit-agents avatar plugin, on a real AgentSession with
livekit-agents' own TranscriptSynchronizer in front (as RoomIO puts it): either start order,
a room connected or not yet, transcripts that follow real playout, playback progress, metrics.

Media are read back from the published tracks through loopback streams; only publishing uses the
room stand-in (the real-server versions are in ``test_e2e_avatar_plugin.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, MetricsCollectedEvent
from livekit.agents.metrics.base import AvatarMetrics
from livekit.agents.voice.io import (
    AudioOutput,
    AudioOutputCapabilities,
    PlaybackProgressedEvent,
    TextOutput,
)
from livekit.agents.voice.transcription import TranscriptSynchronizer
from room_stand_in import RoomStandIn
from session_helpers import as_stream, closed
from test_avatar_session import FPS, SR, H, W, tone_frames

from livekit_avsync import AvatarSession, LocalAvatar, SyncMetrics
from livekit_avsync.measure import LoopbackCapture

Order = Literal["before", "after"]
TEXT = "the quick brown fox jumps over the lazy dog while seven bright stars shine"


class TextSink(TextOutput):
    """Where the TranscriptSynchronizer sends the words, when they are sent."""

    def __init__(self) -> None:
        super().__init__(label="text-sink", next_in_chain=None)
        self.chunks: list[tuple[float, str]] = []

    async def capture_text(self, text: str) -> None:
        self.chunks.append((time.monotonic(), str(text)))

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.chunks)


class Placeholder(AudioOutput):
    """RoomIO's audio output before the avatar takes over (never reached by speech here)."""

    def __init__(self) -> None:
        super().__init__(label="RoomIO", capabilities=AudioOutputCapabilities(pause=True))
        self.frames = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self.frames += 1

    def flush(self) -> None:
        super().flush()

    def clear_buffer(self) -> None:
        pass


@dataclass
class Plugin:
    room: RoomStandIn
    session: AgentSession
    avatar: AvatarSession
    sync: TranscriptSynchronizer
    text: TextSink
    placeholder: Placeholder | None
    capture: LoopbackCapture | None = None
    started: list[float] = field(default_factory=list)
    progressed: list[PlaybackProgressedEvent] = field(default_factory=list)

    async def listen(self) -> LoopbackCapture:
        pubs = list(self.room.local_participant.published.values())
        audio = next(p.track for p in pubs if isinstance(p.track, rtc.LocalAudioTrack))
        video = next(p.track for p in pubs if isinstance(p.track, rtc.LocalVideoTrack))
        self.capture = LoopbackCapture(audio, video, sample_rate=SR)
        await self.capture.start()
        return self.capture


def avatar_with(**options: object) -> AvatarSession:
    provider = LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR, latency=0.05)
    return AvatarSession(
        provider=provider,
        video_width=W,
        video_height=H,
        video_fps=FPS,
        audio_sample_rate=SR,
        **options,  # type: ignore[arg-type]
    )


async def set_up(
    order: Order, room: RoomStandIn, avatar: AvatarSession | None = None, **options: object
) -> Plugin:
    """What RoomIO does, in either order: a TranscriptSynchronizer in front of the voice."""
    avatar = avatar or avatar_with(**options)
    session, text = AgentSession(), TextSink()
    placeholder: Placeholder | None = None
    if order == "before":
        # returns without waiting for the room: the stand-in only connects when told to
        await avatar.start(session, room)  # type: ignore[arg-type]
        assert room.isconnected() or not room.local_participant.published
        voice = session.output.audio
        assert voice is not None
        tr = TranscriptSynchronizer(next_in_chain_audio=voice, next_in_chain_text=text)
        session.output.audio, session.output.transcription = tr.audio_output, tr.text_output
        await session.start(Agent(instructions="test"))
    else:
        placeholder = Placeholder()
        tr = TranscriptSynchronizer(next_in_chain_audio=placeholder, next_in_chain_text=text)
        session.output.audio, session.output.transcription = tr.audio_output, tr.text_output
        await session.start(Agent(instructions="test"))
        await avatar.start(session, room)  # type: ignore[arg-type]
    p = Plugin(room, session, avatar, tr, text, placeholder)
    tr.audio_output.on("playback_started", lambda ev: p.started.append(ev.created_at))
    tr.audio_output.on("playback_progressed", p.progressed.append)
    return p


async def tear_down(p: Plugin) -> None:
    if p.capture is not None:
        await p.capture.aclose()
    await closed(p.session.aclose(), "the AgentSession")
    await closed(p.avatar.aclose(), "the AvatarSession")


def mono(wall: float) -> float:
    return wall - time.time() + time.monotonic()


def chain_of(output: AudioOutput | None) -> list[AudioOutput]:
    chain = []
    while output is not None:
        chain.append(output)
        output = output.next_in_chain
    return chain


@pytest.mark.parametrize("order", ["before", "after"])
async def test_start_returns_while_nobody_subscribes_and_speech_waits_for_a_subscriber(
    order: Order,
) -> None:
    room = RoomStandIn(subscribers=False)  # connected, but no one in it subscribes yet
    p = await asyncio.wait_for(set_up(order, room), 10)  # start() did not wait for a viewer
    try:
        assert len(room.local_participant.published) == 2
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(1.0)))
        await asyncio.sleep(0.5)
        assert not p.started, "speech played to a room where nobody listens yet"
        room.subscribe_all()
        capture = await p.listen()
        await asyncio.wait_for(handle.wait_for_playout(), 15)
        assert len(p.started) == 1 and capture.first_sound() is not None
    finally:
        await tear_down(p)


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "not-connected"])
@pytest.mark.parametrize("order", ["before", "after"])
async def test_either_start_order_keeps_the_chain_and_plays_in_sync_with_the_words(
    order: Order, connected: bool
) -> None:
    room = RoomStandIn(connected=connected)
    p = await set_up(order, room)
    try:
        # installed at the tail: the TranscriptSynchronizer RoomIO put in front is still there
        chain = chain_of(p.session.output.audio)
        assert chain[0] is p.sync.audio_output and chain[-1] is p.avatar.audio_output
        if p.placeholder is not None:
            assert p.placeholder not in chain
        assert bool(room.local_participant.published) == connected
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(2.0)))
        if not connected:
            await asyncio.sleep(0.5)
            assert not p.started, "speech played before the avatar's tracks were published"
            await room.connect()  # what session.start does in a job
            for _ in range(100):
                if len(room.local_participant.published) == 2:
                    break
                await asyncio.sleep(0.02)
        pubs = list(room.local_participant.published.values())
        assert {pub.options.stream for pub in pubs} == {"avatar"} and len(pubs) == 2
        capture = await p.listen()
        await asyncio.wait_for(handle.wait_for_playout(), 15)
        await asyncio.sleep(0.2)
        first, last = capture.first_sound(), capture.last_sound()
        assert first is not None and last is not None
        # all of it played (a busy machine may add gaps, never drop speech)
        assert 2.0 - 0.08 <= last - first <= 2.0 + 0.5
        # playback_started when the first sample really played
        assert len(p.started) == 1 and abs(mono(p.started[0]) - first) <= 0.03
        # the words follow the playout: none before it began, spread over it, all of them
        assert p.text.text.strip() == TEXT
        words = [t for t, chunk in p.text.chunks if chunk.strip()]
        assert words[0] >= first - 0.03, f"first word {first - words[0]:.3f} s before the sound"
        assert words[-1] - words[0] >= 0.5 * (last - first), "the words did not follow the audio"
        assert words[-1] <= last + 0.3
        message = [i for i in p.session.history.items if i.type == "message"][-1]
        assert message.text_content == TEXT and message.interrupted is False
        # progress: one stretch, from the first sample to the last
        assert len(p.progressed) == 1
        run = p.progressed[0]
        assert run.offset == 0.0 and run.duration == pytest.approx(2.0, abs=0.03)
        assert abs(mono(run.started_at) - first) <= 0.03
    finally:
        await tear_down(p)


@pytest.mark.parametrize("order", ["before", "after"])
async def test_an_interrupt_reports_the_transcript_up_to_what_was_heard(order: Order) -> None:
    p = await set_up(order, RoomStandIn())
    try:
        capture = await p.listen()
        words = TEXT.split()
        p.session.say(TEXT, audio=as_stream(tone_frames(3.0)), allow_interruptions=True)
        await capture.wait_until(lambda: capture.first_sound() is not None, timeout=10)
        await asyncio.sleep(1.2)
        p.session.interrupt()
        await asyncio.sleep(0.6)
        first, last = capture.first_sound(), capture.last_sound()
        assert first is not None and last is not None
        heard = (last - first) / 3.0
        message = [i for i in p.session.history.items if i.type == "message"][-1]
        said = (message.text_content or "").strip()
        assert message.interrupted is True
        assert TEXT.startswith(said) and said != TEXT
        share = len(said.split()) / len(words)
        assert abs(share - heard) <= 0.25, f"{share:.0%} of the words for {heard:.0%} heard"
        # the listener got the same words (a word is sent halfway through its time, so the one
        # being spoken at the interrupt may have gone out too)
        sent = p.text.text.strip()
        assert sent.startswith(said) and len(sent.split()) - len(said.split()) <= 1, sent
        # what was heard, as progress: one stretch up to the interrupt
        assert len(p.progressed) == 1
        assert p.progressed[0].duration == pytest.approx(last - first, abs=0.04)
    finally:
        await tear_down(p)


async def test_pause_splits_the_playback_into_stretches_that_add_up() -> None:
    p = await set_up("before", RoomStandIn())
    try:
        capture = await p.listen()
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(1.5)))
        await capture.wait_until(lambda: capture.first_sound() is not None, timeout=10)
        await asyncio.sleep(0.5)
        p.session.output.audio.pause()  # type: ignore[union-attr]
        await asyncio.sleep(0.5)
        p.session.output.audio.resume()  # type: ignore[union-attr]
        await asyncio.wait_for(handle.wait_for_playout(), 10)
        runs = p.progressed  # (an underrun on a busy machine may split a stretch further)
        assert len(runs) >= 2, runs
        for a, b in itertools.pairwise(runs):
            assert b.offset == pytest.approx(a.offset + a.duration, abs=0.01)  # contiguous
        assert runs[0].offset == 0.0
        assert sum(r.duration for r in runs) == pytest.approx(1.5, abs=0.04)
        gaps = [b.started_at - (a.started_at + a.duration) for a, b in itertools.pairwise(runs)]
        assert sum(gaps) >= 0.5 - 0.08, gaps  # the pause is a gap on the wall clock
    finally:
        await tear_down(p)


async def test_metrics_on_the_avatar_and_the_agent_session() -> None:
    avatar = avatar_with(metrics_interval=0.25)
    on_avatar: list[AvatarMetrics] = []
    sync_reports: list[SyncMetrics] = []
    avatar.on("metrics_collected", on_avatar.append)  # before start(), as a user would
    avatar.on("sync_metrics", sync_reports.append)
    p = await set_up("before", RoomStandIn(), avatar)
    on_session: list[MetricsCollectedEvent] = []
    p.session.on("metrics_collected", on_session.append)
    try:
        await asyncio.wait_for(p.avatar.wait_for_join(), 10)
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(1.0)))
        await asyncio.wait_for(handle.wait_for_playout(), 10)
        await asyncio.sleep(0.6)
    finally:
        await tear_down(p)
    joins = [m for m in on_avatar if m.avatar_joined_time is not None]
    assert len(joins) == 1
    join = joins[0]
    assert join.session_started_time is not None
    assert join.session_started_time <= join.avatar_joined_time
    assert join.metadata is not None and join.metadata.model_provider == "local"
    latencies = [m.playback_latency for m in on_avatar if m.playback_latency]
    assert len(latencies) == 1 and 0.0 < latencies[0] < 10.0
    # the same AvatarMetrics reach the AgentSession's metrics_collected (the join came before
    # this test listened there)
    on_agent_session = [e.metrics for e in on_session if isinstance(e.metrics, AvatarMetrics)]
    assert all(m in on_avatar for m in on_agent_session)
    assert [m.playback_latency for m in on_agent_session if m.playback_latency] == latencies
    # sync figures at the cadence, and a last one at close
    assert len(sync_reports) >= 4 and sync_reports[-1].final
    assert not any(r.final for r in sync_reports[:-1])
    for r in sync_reports[:-1]:
        assert r.interval == pytest.approx(0.25, abs=0.2)
    assert sum(r.video_frames_out for r in sync_reports) > 0
    assert all(r.video_dropped_late >= 0 and r.audio_underruns >= 0 for r in sync_reports)


async def test_a_closed_avatar_never_speaks_and_never_hangs_the_session() -> None:
    p = await set_up("before", RoomStandIn())
    try:
        await closed(p.avatar.aclose(), "the AvatarSession")
        before = p.avatar.synchronizer.stats.audio_frames_in
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(0.5)))
        await asyncio.wait_for(handle.wait_for_playout(), 10)  # reported, not hung
        assert p.avatar.synchronizer.stats.audio_frames_in == before  # nothing was forwarded
        handle = p.session.say(TEXT, audio=as_stream(tone_frames(0.5)))  # and again
        await asyncio.wait_for(handle.wait_for_playout(), 10)
    finally:
        await tear_down(p)
