"""Record a LocalAvatar session through the AvatarSession, then replay the recording through it.

The live session runs a real AgentSession whose speech (``session.say(text, audio=...)``) drives a
LocalAvatar wrapped by ``ProviderRecorder.wrap``; one turn is barged in on, the next plays out.
The avatar carries measurement markers (``LocalAvatar(markers=...)``: frame numbers stamped into
the face, tone bursts mixed into its sound, on its own media clock), so what comes out of the
avatar's sources is measured for lip-sync both live and in the replay. A pass-through wrapper
around each provider keeps every frame the session took from it, so the replay's frames are
compared with the live ones sample for sample and plane for plane.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession
from session_helpers import as_stream, closed

from livekit_avsync import AvatarSession, LocalAvatar
from livekit_avsync.measure import LoopbackCapture, MarkerSpec, SyncReport
from livekit_avsync.providers.base import AvatarProvider, OutputFrame
from livekit_avsync.providers.recorded import RecordedProvider
from livekit_avsync.providers.recorder import ProviderRecorder, sidecar_path

W, H, FPS, SR = 160, 120, 25.0, 24000
SPEC = MarkerSpec(fps=FPS, burst_every=10)  # a marker every 0.4 s
MAX_SKEW_MS = 40.0  # |video - audio| p95: within one frame period
# speech plus the markers' bed tone must stay under a fifth of the burst level (0.5 full scale),
# or bursts under speech are not detected: 2000 + 0.02 * 32767 < 0.1 * 32767
SPEECH_LEVEL = 2000


@dataclass(frozen=True)
class Taken:
    """One frame as the session took it from a provider: metadata and exact content."""

    timestamp: float | None
    generation: int | None
    speech: bool | None
    content: bytes  # interleaved int16 samples, or the I420 planes


def content_of(frame: Any) -> bytes:
    if isinstance(frame, rtc.AudioFrame):
        return bytes(frame.data)
    assert isinstance(frame, rtc.VideoFrame) and frame.type == rtc.VideoBufferType.I420
    return bytes(frame.data)


class Keeper(AvatarProvider):
    """Passes a provider through unchanged and keeps every frame handed out by its iterators."""

    def __init__(self, inner: AvatarProvider) -> None:
        super().__init__()
        self.inner = inner
        self.audio: list[Taken] = []
        self.video: list[Taken] = []
        for event in ("ready", "playback_started", "playback_finished", "disconnected"):
            inner.on(event, lambda *args, _event=event: self.emit(_event, *args))

    @property  # type: ignore[override]
    def label(self) -> str:
        return self.inner.label

    @property  # type: ignore[override]
    def sync_mode(self) -> Any:
        return self.inner.sync_mode

    @property  # type: ignore[override]
    def video_lag(self) -> float:
        return self.inner.video_lag

    @property
    def generation(self) -> int:
        return self.inner.generation

    async def start(self, *, room: rtc.Room | None = None) -> None:
        await self.inner.start(room=room)

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        await self.inner.push_audio(frame)

    async def end_turn(self) -> None:
        await self.inner.end_turn()

    async def interrupt(self) -> None:
        await self.inner.interrupt()

    async def audio_frames(self) -> AsyncIterator[OutputFrame]:
        async for out in self.inner.audio_frames():
            self.audio.append(
                Taken(out.timestamp, out.generation, out.speech, content_of(out.frame))
            )
            yield out

    async def video_frames(self) -> AsyncIterator[OutputFrame]:
        async for out in self.inner.video_frames():
            self.video.append(Taken(out.timestamp, out.generation, None, content_of(out.frame)))
            yield out

    async def aclose(self) -> None:
        await self.inner.aclose()


def speech(seconds: float, *, rate: int = 16000) -> list[rtc.AudioFrame]:
    """TTS-like speech at another rate than the avatar's: a quiet 440 Hz tone, 20 ms frames."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (SPEECH_LEVEL * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    step = rate // 50
    return [
        rtc.AudioFrame(samples[i : i + step].tobytes(), rate, 1, len(samples[i : i + step]))
        for i in range(0, len(samples), step)
    ]


def capture_of(avatar: AvatarSession) -> LoopbackCapture:
    """Reads back what the avatar's sources play (what would be published)."""
    return LoopbackCapture(
        rtc.LocalAudioTrack.create_audio_track("a", avatar.audio_source),
        rtc.LocalVideoTrack.create_video_track("v", avatar.video_source),
        sample_rate=SR,
        spec=SPEC,
    )


def avatar_session(provider: AvatarProvider) -> AvatarSession:
    return AvatarSession(
        provider=provider, video_width=W, video_height=H, video_fps=FPS, audio_sample_rate=SR
    )


def speech_spans(frames: list[Taken]) -> list[tuple[float, float]]:
    """(start, end) media times of each run of speech-flagged audio."""
    spans: list[tuple[float, float]] = []
    start = None
    for item in frames:
        assert item.timestamp is not None
        begin = item.timestamp - len(item.content) / 2 / SR
        if item.speech and start is None:
            start = begin
        elif not item.speech and start is not None:
            spans.append((start, begin))
            start = None
    return spans


def check_sync(name: str, report: SyncReport, *, at_least: int) -> None:
    print(f"{name}: {report.summary()}")
    assert report.paired >= at_least, report.summary()
    assert report.p95_abs_ms is not None and report.p95_abs_ms <= MAX_SKEW_MS, report.summary()


async def record_session(path: Path) -> tuple[Keeper, SyncReport]:
    """Live: a barged-in turn and a complete one; returns what the session took and the sync."""
    live = Keeper(
        ProviderRecorder(path).wrap(
            LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR, latency=0.05, markers=SPEC)
        )
    )
    session = AgentSession()
    avatar = avatar_session(live)
    await avatar.start(session)
    await session.start(Agent(instructions="test"))
    capture = capture_of(avatar)
    await capture.start()
    await asyncio.sleep(0.4)

    session.say("a long answer", audio=as_stream(speech(2.0)), allow_interruptions=True)
    await asyncio.sleep(0.9)
    session.interrupt()
    await asyncio.sleep(0.4)
    handle = session.say("the next answer", audio=as_stream(speech(1.2)))
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    await asyncio.sleep(0.4)

    report = capture.analyze()
    await capture.aclose()
    await closed(avatar.aclose(), "the live AvatarSession")  # finalises the recording too
    await closed(session.aclose(), "the live AgentSession")
    return live, report


async def test_a_recorded_session_replays_identically_and_in_sync(tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    path = tmp_path / "session.mkv"
    live, live_sync = await record_session(path)
    check_sync("live (recording)", live_sync, at_least=8)
    # the recording holds both turns: the cut one, and the next one in a new generation
    spans = speech_spans(live.audio)
    assert len(spans) == 2, spans
    assert 0.7 < spans[0][1] - spans[0][0] < 1.1  # cut at the barge-in, ~0.9 s in
    assert abs((spans[1][1] - spans[1][0]) - 1.2) < 0.03
    assert {t.generation for t in live.audio} == {0, 1}

    recording = RecordedProvider(path)
    replay = Keeper(recording)
    session = AgentSession()
    avatar = avatar_session(replay)
    await avatar.start(session)
    assert (replay.sync_mode, replay.label) == ("timestamps", "recorded:local")
    capture = capture_of(avatar)
    await capture.start()
    started = time.monotonic()
    await asyncio.wait_for(recording.wait_done(), 15)
    replayed_for = time.monotonic() - started
    await asyncio.sleep(0.3)
    replay_sync = capture.analyze()
    continuity = capture.frame_continuity()
    await capture.aclose()
    await closed(avatar.aclose(), "the replay AvatarSession")
    await closed(session.aclose(), "the replay AgentSession")

    # identical in content: the frames the replay handed to the session are the live ones,
    # with the same timestamps, generations and speech flags, sample for sample, plane for plane
    for kind, recorded, replayed in (
        ("audio", live.audio, replay.audio),
        ("video", live.video, replay.video),
    ):
        assert replayed == recorded[: len(replayed)], f"replayed {kind} differs from the live one"
        missing = len(recorded) - len(replayed)
        print(f"{kind}: {len(recorded)} frames recorded, {len(replayed)} replayed")
        # the replay session plays the recording out to its end before it closes itself
        assert missing == 0, f"{missing} {kind} frames lost"
    # in real time, and in sync: every marker of the replay pairs with its audio burst
    recorded_for = recording_duration(path)
    print(f"recording lasts {recorded_for:.3f} s, replay took {replayed_for:.3f} s; {continuity}")
    assert replayed_for == pytest.approx(recorded_for, abs=0.1)
    check_sync("replay", replay_sync, at_least=8)
    assert not replay_sync.unpaired_audio, replay_sync.unpaired_audio
    # every frame shown once, in order (one or two may be dropped as late on a busy machine)
    assert not continuity.reordered and len(continuity.missing) <= 2, continuity

    await asyncio.sleep(0.1)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert not leaked, [t.get_name() for t in leaked]


def recording_duration(path: Path) -> float:
    """The recording's length, from the end line of its sidecar (``duration_us``)."""
    end = json.loads(sidecar_path(path).read_text(encoding="utf-8").splitlines()[-1])
    assert end["kind"] == "end" and end["error"] is None, end
    return end["duration_us"] / 1e6
