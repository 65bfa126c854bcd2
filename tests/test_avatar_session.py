"""AvatarSession on a real AgentSession with the LocalAvatar; media read back through loopback.

The AgentSession is livekit-agents' own: speech enters through ``session.say(text, audio=...)``
(the path TTS audio takes), barge-in through ``session.interrupt()``. Only publishing uses the
room stand-in; everything that plays goes through real ``rtc`` sources and streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.io import PlaybackFinishedEvent
from room_stand_in import RoomStandIn
from session_helpers import as_stream

from livekit_avsync import AvatarSession, LocalAvatar, ProviderFailedEvent
from livekit_avsync.measure import LoopbackCapture
from livekit_avsync.providers.base import AvatarProvider, OutputFrame
from livekit_avsync.providers.face import FaceRenderer

W, H, FPS, SR = 160, 120, 25, 24000
TONE_HZ = 440


def tone_frames(seconds: float, *, rate: int = 16000) -> list[rtc.AudioFrame]:
    """TTS-like speech: a loud tone at another rate than the avatar's, in 20 ms frames."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    samples = (9000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
    step = rate // 50
    return [
        rtc.AudioFrame(samples[i : i + step].tobytes(), rate, 1, len(samples[i : i + step]))
        for i in range(0, n, step)
    ]


@dataclass
class Harness:
    room: RoomStandIn
    session: AgentSession
    avatar: AvatarSession
    capture: LoopbackCapture
    closed_mouth: np.ndarray
    mouth: tuple[slice, slice]
    finished: list[PlaybackFinishedEvent] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    speaking_frames: list[tuple[float, bool]] = field(default_factory=list)

    def on_video(self, frame: rtc.VideoFrame, t: float, code: object) -> None:
        y = np.frombuffer(frame.data, np.uint8)[: W * H].reshape(H, W)
        diff = np.abs(y[self.mouth].astype(np.int16) - self.closed_mouth).mean()
        self.speaking_frames.append((t, bool(diff > 4.0)))

    def speaking_after(self, t: float) -> list[float]:
        return [ts for ts, speaking in self.speaking_frames if ts > t and speaking]

    def first_speaking(self) -> float | None:
        return next((ts for ts, speaking in self.speaking_frames if speaking), None)


def avatar_with(provider: AvatarProvider) -> AvatarSession:
    """An AvatarSession sized for these tests' small, low-rate media."""
    return AvatarSession(
        provider=provider, video_width=W, video_height=H, video_fps=FPS, audio_sample_rate=SR
    )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    room = RoomStandIn()
    session = AgentSession()
    avatar = avatar_with(LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR, latency=0.05))
    await avatar.start(session, room)  # type: ignore[arg-type]
    await session.start(Agent(instructions="test"))
    pubs = list(room.local_participant.published.values())
    audio_track = next(p.track for p in pubs if isinstance(p.track, rtc.LocalAudioTrack))
    video_track = next(p.track for p in pubs if isinstance(p.track, rtc.LocalVideoTrack))
    face = FaceRenderer(W, H)
    x0, y0, x1, y1 = face.mouth_box
    mouth = (slice(y0, y1), slice(x0, x1))
    closed = np.frombuffer(face.render(0.0).data, np.uint8)[: W * H].reshape(H, W)[mouth]
    h = Harness(room, session, avatar, None, closed.astype(np.int16), mouth)  # type: ignore[arg-type]
    h.capture = LoopbackCapture(audio_track, video_track, sample_rate=SR, on_video=h.on_video)
    await h.capture.start()
    output = avatar.audio_output
    output.on("playback_finished", h.finished.append)
    output.on("playback_started", lambda ev: h.started.append(ev.created_at))
    await asyncio.sleep(0.3)  # idle frames flow first
    yield h
    await h.capture.aclose()
    await session.aclose()
    await avatar.aclose()


def _now_wall_to_mono(created_at: float) -> float:
    """Convert a time.time() stamp to the monotonic clock the capture uses."""
    return created_at - time.time() + time.monotonic()


async def test_speech_reaches_provider_and_plays_lip_synced(harness: Harness) -> None:
    h = harness
    handle = h.session.say("hello there", audio=as_stream(tone_frames(1.2)))
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    await asyncio.sleep(0.2)
    first = h.capture.first_sound()
    last = h.capture.last_sound()
    assert first is not None and last is not None, "the speech never reached the audio track"
    assert last - first == pytest.approx(1.2, abs=0.05)
    # the mouth opens when the speech is heard: within two frames of the first loud audio
    mouth_open = h.first_speaking()
    assert mouth_open is not None
    assert abs(mouth_open - first) <= 2 / FPS
    # truthful playback reporting
    assert len(h.finished) == 1 and not h.finished[0].interrupted
    assert h.finished[0].playback_position == pytest.approx(last - first, abs=0.02)
    assert h.started and abs(_now_wall_to_mono(h.started[0]) - first) <= 0.03
    # finished only after the audio really played, not when the last frame was pushed
    assert handle.done()
    message = [i for i in h.session.history.items if i.type == "message"][-1]
    assert message.interrupted is False


async def test_barge_in_stops_audio_and_video_at_once(harness: Harness) -> None:
    h = harness
    h.session.say("a long answer", audio=as_stream(tone_frames(3.0)), allow_interruptions=True)
    await h.capture.wait_until(lambda: h.capture.first_sound() is not None, timeout=5)
    await asyncio.sleep(0.8)
    cleared_at = time.monotonic()
    h.session.interrupt()
    await asyncio.sleep(0.6)
    tail = h.capture.audio_tail(cleared_at)
    assert tail <= 0.02, f"audio played {tail * 1000:.0f} ms after the interrupt"
    late = [t for t in h.speaking_after(cleared_at + 1 / FPS)]
    assert not late, f"speaking frames {len(late)} after the interrupt"
    last = h.capture.last_sound()
    assert last is not None and last <= cleared_at + 0.02
    assert len(h.finished) == 1 and h.finished[0].interrupted
    heard = (last or cleared_at) - h.capture.first_sound()  # type: ignore[operator]
    assert h.finished[0].playback_position == pytest.approx(heard, abs=0.02)
    # nothing of the interrupted turn comes out later, including the provider's in-flight frames
    await asyncio.sleep(0.5)
    assert h.capture.last_sound() == last
    assert not h.speaking_after(cleared_at + 1 / FPS)


async def test_pause_and_resume(harness: Harness) -> None:
    h = harness
    handle = h.session.say("paused answer", audio=as_stream(tone_frames(1.5)))
    await h.capture.wait_until(lambda: h.capture.first_sound() is not None, timeout=5)
    await asyncio.sleep(0.5)
    output = h.avatar.audio_output
    paused_at = time.monotonic()
    output.pause()
    await asyncio.sleep(0.6)
    assert h.capture.audio_tail(paused_at) <= 0.02
    assert not h.speaking_after(paused_at + 1 / FPS)
    output.resume()
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    await asyncio.sleep(0.2)
    # all of the speech played: 1.5 s of sound, plus the 0.6 s pause in the middle
    first, last = h.capture.first_sound(), h.capture.last_sound()
    assert first is not None and last is not None
    assert last - first == pytest.approx(1.5 + 0.6, abs=0.08)
    assert h.finished and not h.finished[0].interrupted
    assert h.finished[0].playback_position == pytest.approx(1.5, abs=0.03)
    assert h.speaking_after(paused_at + 0.6)  # the mouth moves again after resume


async def test_close_unpublishes_while_connected_and_leaves_no_task() -> None:
    before = set(asyncio.all_tasks())
    room = RoomStandIn()
    session = AgentSession()
    avatar = avatar_with(LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR))
    await avatar.start(session, room)  # type: ignore[arg-type]
    pubs = list(room.local_participant.published.values())
    assert {p.options.source for p in pubs} == {
        rtc.TrackSource.SOURCE_MICROPHONE,
        rtc.TrackSource.SOURCE_CAMERA,
    }
    assert {p.options.stream for p in pubs} == {"avatar"}
    await asyncio.sleep(0.2)
    await avatar.aclose()
    assert not room.local_participant.published
    assert sorted(room.local_participant.unpublished) == sorted(p.sid for p in pubs)
    await avatar.aclose()  # idempotent
    await asyncio.sleep(0.05)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert not leaked, [t.get_name() for t in leaked]


async def test_a_room_disconnect_closes_the_session_without_waiting_on_the_gone_room() -> None:
    """After a disconnect the tracks went with the connection; a real server never answers an
    unpublish then (the e2e tests saw the job hang on it), so none is sent."""
    before = set(asyncio.all_tasks())
    room = RoomStandIn()
    session = AgentSession()
    avatar = avatar_with(LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR))
    await avatar.start(session, room)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    await room.disconnect()  # a room disconnect closes the avatar session
    for _ in range(100):
        if not [t for t in asyncio.all_tasks() - before if not t.done()]:
            break
        await asyncio.sleep(0.02)
    assert room.local_participant.unpublished == []
    leaked = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert not leaked, [t.get_name() for t in leaked]


class DeafAvatar(LocalAvatar):
    """A provider that silently drops the speech it is given (a broken remote)."""

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        return None


async def test_a_turn_the_provider_drops_still_finishes() -> None:
    session = AgentSession()
    avatar = avatar_with(DeafAvatar(width=W, height=H, fps=FPS, sample_rate=SR))
    await avatar.start(session, None)
    await session.start(Agent(instructions="test"))
    finished: list[PlaybackFinishedEvent] = []
    avatar.audio_output.on("playback_finished", finished.append)
    handle = session.say("lost", audio=as_stream(tone_frames(0.2)))
    await asyncio.wait_for(handle.wait_for_playout(), 8)
    assert len(finished) == 1 and finished[0].playback_position == 0.0
    await session.aclose()
    await avatar.aclose()


class FiniteAvatar(AvatarProvider):
    """A provider whose output is 0.6 s of speech and video, then ends (a finished recording)."""

    label = "finite"
    sync_mode = "timestamps"

    async def start(self, *, room: rtc.Room | None = None) -> None:
        self.emit("ready")

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        pass

    async def end_turn(self) -> None:
        pass

    async def interrupt(self) -> None:
        self._bump_generation()

    async def audio_frames(self) -> AsyncIterator[OutputFrame]:
        for k, frame in enumerate(tone_frames(0.6, rate=SR)):
            yield OutputFrame(frame, (k + 1) * frame.samples_per_channel / SR, speech=True)

    async def video_frames(self) -> AsyncIterator[OutputFrame]:
        renderer = FaceRenderer(W, H)
        for n in range(round(0.6 * FPS)):
            yield OutputFrame(renderer.render(0.5), n / FPS)

    async def aclose(self) -> None:
        pass


async def test_a_provider_whose_output_ends_is_played_out_then_the_voice_goes_on_alone() -> None:
    """Default ``on_provider_failure="voice_only"``: all of the provider's output plays, then the
    video track goes and the audio track stays, with an event saying why."""
    room = RoomStandIn()
    avatar = avatar_with(FiniteAvatar())
    failures: list[ProviderFailedEvent] = []
    avatar.on("provider_failed", failures.append)
    await avatar.start(AgentSession(), room)  # type: ignore[arg-type]
    sync = avatar.synchronizer
    for _ in range(200):
        if failures:
            break
        stats = sync.stats
        await asyncio.sleep(0.02)
    assert [f.action for f in failures] == ["voice_only"] and "ended" in failures[0].reason
    assert stats.audio_frames_in == len(tone_frames(0.6, rate=SR))
    assert stats.playback_position == pytest.approx(0.6, abs=0.03)  # the last frames too
    sources = {p.options.source for p in room.local_participant.published.values()}
    assert sources == {rtc.TrackSource.SOURCE_MICROPHONE} and avatar.voice_only
    await avatar.aclose()
    assert not room.local_participant.published


async def test_a_provider_whose_output_ends_ends_the_session_when_asked() -> None:
    room, session = RoomStandIn(), AgentSession()
    avatar = AvatarSession(
        provider=FiniteAvatar(),
        video_width=W,
        video_height=H,
        video_fps=FPS,
        audio_sample_rate=SR,
        on_provider_failure="end_session",
    )
    failures: list[ProviderFailedEvent] = []
    avatar.on("provider_failed", failures.append)
    await avatar.start(session, room)  # type: ignore[arg-type]
    await session.start(Agent(instructions="test"))
    session_closed = asyncio.Event()
    session.on("close", lambda _: session_closed.set())
    await asyncio.wait_for(session_closed.wait(), 10)
    for _ in range(200):  # and the avatar closes with it: unpublished
        if not room.local_participant.published:
            break
        await asyncio.sleep(0.02)
    assert not room.local_participant.published
    assert [f.action for f in failures] == ["end_session"]
    await avatar.aclose()
