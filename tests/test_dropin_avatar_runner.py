"""livekit-agents' AvatarRunner, written for rtc.AVSynchronizer, runs unchanged on ours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    QueueAudioOutput,
    VideoGenerator,
)
from room_stand_in import RoomStandIn

import livekit_avsync

W, H, FPS, SR = 64, 48, 25, 24000


def _frame(n: int) -> rtc.VideoFrame:
    y = np.full((H, W), 16 + (n * 9) % 220, np.uint8)
    uv = np.full((H // 2, W // 2), 128, np.uint8)
    return rtc.VideoFrame(
        W,
        H,
        rtc.VideoBufferType.I420,
        np.concatenate([y.ravel(), uv.ravel(), uv.ravel()]).tobytes(),
    )


class ToneVideoGenerator(VideoGenerator):
    """Interleaved producer like livekit's examples: one video frame, then its 40 ms of audio."""

    def __init__(self) -> None:
        self._audio: asyncio.Queue[rtc.AudioFrame | AudioSegmentEnd] = asyncio.Queue()
        self.cleared = 0

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        await self._audio.put(frame)

    def clear_buffer(self) -> None:
        self.cleared += 1
        while not self._audio.empty():
            self._audio.get_nowait()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        n = 0
        pending = np.zeros(0, np.int16)
        per_frame = SR // FPS
        while True:
            try:
                item = await asyncio.wait_for(self._audio.get(), 0.04)
            except asyncio.TimeoutError:
                item = None
            if isinstance(item, AudioSegmentEnd):
                if pending.size:
                    yield _frame(n)
                    n += 1
                    yield rtc.AudioFrame(pending.tobytes(), SR, 1, pending.size)
                    pending = np.zeros(0, np.int16)
                yield AudioSegmentEnd()
                continue
            if item is not None:
                pending = np.concatenate([pending, np.frombuffer(item.data, np.int16)])
            while pending.size >= per_frame:
                yield _frame(n)
                n += 1
                chunk, pending = pending[:per_frame], pending[per_frame:]
                yield rtc.AudioFrame(chunk.tobytes(), SR, 1, per_frame)
            if item is None:
                yield _frame(n)  # idle frame
                n += 1


@pytest.fixture
def ours_as_rtc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtc, "AVSynchronizer", livekit_avsync.AVSynchronizer)


async def test_avatar_runner_plays_through_our_synchronizer(ours_as_rtc: None) -> None:
    room = RoomStandIn()
    audio_out = QueueAudioOutput(sample_rate=SR)
    gen = ToneVideoGenerator()
    runner = AvatarRunner(
        room,  # type: ignore[arg-type]
        audio_recv=audio_out,
        video_gen=gen,
        _lazy_publish=False,
        options=AvatarOptions(
            video_width=W, video_height=H, video_fps=FPS, audio_sample_rate=SR, audio_channels=1
        ),
    )
    assert isinstance(runner.av_sync, livekit_avsync.AVSynchronizer)
    finished: list[tuple[float, bool]] = []
    audio_out.on(
        "playback_finished", lambda ev: finished.append((ev.playback_position, ev.interrupted))
    )
    await runner.start()
    pubs = list(room.local_participant.published.values())
    assert {p.options.source for p in pubs} == {
        rtc.TrackSource.SOURCE_MICROPHONE,
        rtc.TrackSource.SOURCE_CAMERA,
    }
    audio_track = next(p.track for p in pubs if isinstance(p.track, rtc.LocalAudioTrack))
    video_track = next(p.track for p in pubs if isinstance(p.track, rtc.LocalVideoTrack))
    audio_stream = rtc.AudioStream(audio_track, sample_rate=SR, num_channels=1)
    video_stream = rtc.VideoStream(video_track)
    loud_at: list[float] = []
    frames_at: list[float] = []

    async def read_audio() -> None:
        async for ev in audio_stream:
            if np.abs(np.frombuffer(ev.frame.data, np.int16)).max(initial=0) > 1000:
                loud_at.append(time.monotonic())

    async def read_video() -> None:
        async for _ in video_stream:
            frames_at.append(time.monotonic())

    readers = [asyncio.create_task(read_audio()), asyncio.create_task(read_video())]
    await asyncio.sleep(0.2)

    # one second of tone, pushed faster than real time as TTS does
    t = np.arange(SR) / SR
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    step = SR // 50
    for i in range(0, SR, step):
        await audio_out.capture_frame(rtc.AudioFrame(tone[i : i + step].tobytes(), SR, 1, step))
    audio_out.flush()
    await asyncio.wait_for(audio_out.wait_for_playout(), 5)
    # the runner reports "finished" when the last frame is pushed, not played: let it play out
    await asyncio.wait_for(runner.av_sync.wait_for_playout(), 5)
    await asyncio.sleep(0.1)
    assert finished == [(pytest.approx(1.0, abs=0.05), False)]
    # the tone really played for about a second, and video kept flowing at ~FPS meanwhile
    assert loud_at, "no audio reached the track"
    assert 0.9 <= loud_at[-1] - loud_at[0] + 0.01 <= 1.1
    span = frames_at[-1] - frames_at[0]
    assert len(frames_at) / span == pytest.approx(FPS, rel=0.2)
    assert runner.av_sync.stats.video_frames_out >= FPS

    # barge-in through the runner's own clear_buffer path: it is told, and reports the interruption
    for i in range(0, SR, step):
        await audio_out.capture_frame(rtc.AudioFrame(tone[i : i + step].tobytes(), SR, 1, step))
    await asyncio.sleep(0.3)
    audio_out.clear_buffer()
    await asyncio.sleep(0.3)
    assert gen.cleared == 1
    assert len(finished) == 2 and finished[1][1] is True
    for task in readers:
        task.cancel()
    await runner.aclose()
