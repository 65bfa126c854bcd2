"""AVSynchronizer public API on real ``rtc.AudioSource`` / ``rtc.VideoSource``: input validation,
frame types, epochs, close semantics, error surfacing and stats."""

from __future__ import annotations

import asyncio
import gc
import inspect
import math
import time
import warnings
from collections.abc import AsyncIterator
from fractions import Fraction

import av
import numpy as np
import pytest
from livekit import rtc
from sync_helpers import RATE, H, W, gray, open_sources, tone

from livekit_avsync.output import AVSynchronizer


@pytest.fixture
async def sources() -> AsyncIterator[tuple[rtc.AudioSource, rtc.VideoSource]]:
    async with open_sources() as pair:
        yield pair


@pytest.fixture
async def sync(sources: tuple[rtc.AudioSource, rtc.VideoSource]) -> AsyncIterator[AVSynchronizer]:
    audio, video = sources
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    yield s
    await s.aclose()


async def push_speech(
    s: AVSynchronizer, seconds: float, *, t0: float = 0.0, with_video: bool = True
) -> None:
    """Push ``seconds`` of 20 ms audio frames and 30 fps video, timestamps from ``t0``."""
    n = round(seconds / 0.02)
    next_video = 0
    for k in range(n):
        end = t0 + (k + 1) * 0.02
        while with_video and t0 + next_video / 30 < end:
            await s.push(gray(), t0 + next_video / 30)
            next_video += 1
        await s.push(tone(20), end)


# -- constructor ---------------------------------------------------------------------------------


async def test_constructor_rejects_wrong_source_types(sources) -> None:
    audio, video = sources
    with pytest.raises(TypeError, match="audio_source"):
        AVSynchronizer(audio_source=video, video_source=video, video_fps=30)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="video_source"):
        AVSynchronizer(audio_source=audio, video_source=object(), video_fps=30)  # type: ignore[arg-type]


@pytest.mark.parametrize("fps", [0, -30, math.nan, math.inf])
async def test_constructor_rejects_bad_fps(sources, fps: float) -> None:
    audio, video = sources
    with pytest.raises(ValueError, match="video_fps"):
        AVSynchronizer(audio_source=audio, video_source=video, video_fps=fps)


async def test_constructor_rejects_bad_sync_mode(sources) -> None:
    audio, video = sources
    with pytest.raises(ValueError, match="sync_mode"):
        AVSynchronizer(audio_source=audio, video_source=video, video_fps=30, sync_mode="pts")  # type: ignore[arg-type]


async def test_constructor_accepts_rtc_avsynchronizer_keywords(sources) -> None:
    audio, video = sources
    theirs = set(inspect.signature(rtc.AVSynchronizer.__init__).parameters) - {"self"}
    ours = set(inspect.signature(AVSynchronizer.__init__).parameters)
    assert theirs <= ours
    s = AVSynchronizer(
        audio_source=audio,
        video_source=video,
        video_fps=30,
        video_queue_size_ms=100,
        _max_delay_tolerance_ms=300,
    )
    assert s.epoch == 0
    assert s.sync_mode == "auto"
    await s.aclose()


# -- push validation -----------------------------------------------------------------------------


async def test_push_rejects_wrong_type(sync: AVSynchronizer) -> None:
    with pytest.raises(TypeError, match="bytes"):
        await sync.push(b"\x00" * 960)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ndarray"):
        await sync.push(np.zeros(960, dtype=np.int16))  # type: ignore[arg-type]


async def test_push_rejects_empty_audio(sync: AVSynchronizer) -> None:
    with pytest.raises(ValueError, match="empty"):
        await sync.push(rtc.AudioFrame(b"", RATE, 1, 0))
    assert sync.stats.audio_frames_in == 0


async def test_push_rejects_empty_av_audio_with_a_clear_message(sync: AVSynchronizer) -> None:
    empty_av = av.AudioFrame(format="fltp", layout="stereo", samples=0)
    empty_av.sample_rate = RATE
    with pytest.raises(ValueError, match="empty"):
        await sync.push(empty_av)
    assert sync.stats.audio_frames_in == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_push_rejects_non_finite_timestamp(sync: AVSynchronizer, bad: float) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        await sync.push(tone(20), bad)
    with pytest.raises(ValueError, match="timestamp"):
        await sync.push(gray(), bad)
    assert sync.stats.audio_frames_in == 0
    assert sync.stats.video_frames_in == 0


# -- PyAV frames ---------------------------------------------------------------------------------


def av_audio(ms: int, *, rate: int = RATE, pts: int | None = None) -> av.AudioFrame:
    n = rate * ms // 1000
    t = np.arange(n) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(np.stack((wave, wave)), format="fltp", layout="stereo")
    frame.sample_rate = rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
    return frame


def av_video(fmt: str, *, pts: int | None = None) -> av.VideoFrame:
    if fmt == "rgb24":
        frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 90, dtype=np.uint8), format="rgb24")
    else:
        frame = av.VideoFrame(W, H, fmt)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, 30)
    return frame


async def test_av_frames_are_accepted_and_timed_by_pts(sync: AVSynchronizer) -> None:
    # 200 ms of fltp stereo audio and 6 video frames (yuv420p and rgb24), timed only by pts
    for k in range(10):
        await sync.push(av_audio(20, pts=k * 960))
    for j in range(6):
        await sync.push(av_video("yuv420p" if j % 2 == 0 else "rgb24", pts=j))
    assert sync.sync_mode == "timestamps"
    await sync.wait_for_playout()
    st = sync.stats
    assert st.audio_frames_in == 10
    assert st.video_frames_in == 6
    assert st.timestamps_missing == 0
    assert st.video_frames_out >= 1
    assert sync.last_video_time == pytest.approx(5 / 30)
    assert sync.playback_position == pytest.approx(0.2, abs=0.005)


async def test_av_video_pts_sets_last_video_time(sync: AVSynchronizer) -> None:
    await sync.push(av_video("yuv420p", pts=90))  # 3.0 s at time_base 1/30
    await sync.wait_for_playout()
    assert sync.last_video_time == pytest.approx(3.0)
    assert sync.stats.video_frames_out >= 1


async def test_audio_of_another_rate_and_layout_is_resampled(sync: AVSynchronizer) -> None:
    before = sync.playback_position
    for k in range(25):  # 500 ms at 16 kHz stereo into a 48 kHz mono source
        await sync.push(tone(20, rate=16000, channels=2), (k + 1) * 0.02)
    await sync.wait_for_playout()
    assert sync.playback_position - before == pytest.approx(0.5, abs=0.02)
    assert sync.stats.audio_frames_in == 25


# -- epochs and interrupts -----------------------------------------------------------------------


async def test_clear_queue_bumps_epoch_and_drops_stale_frames(sync: AVSynchronizer) -> None:
    assert sync.epoch == 0
    await push_speech(sync, 0.2)
    await sync.clear_queue()
    assert sync.epoch == 1
    await sync.push(tone(20), 0.5, epoch=0)
    await sync.push(gray(), 0.5, epoch=0)
    st = sync.stats
    assert st.audio_dropped_stale == 1
    assert st.video_dropped_stale == 1
    assert st.epoch == 1
    in_before = (st.audio_frames_in, st.video_frames_in)
    # frames of the current epoch are taken
    await sync.push(tone(20), 10.02, epoch=1)
    await sync.push(gray(), 10.0, epoch=1)
    st = sync.stats
    assert (st.audio_frames_in, st.video_frames_in) == (in_before[0] + 1, in_before[1] + 1)
    assert st.audio_dropped_stale == 1
    assert st.video_dropped_stale == 1
    await sync.clear_queue()
    assert sync.epoch == 2


async def test_clear_queue_stops_audio_at_once(sync: AVSynchronizer) -> None:
    await push_speech(sync, 0.4, with_video=False)
    await asyncio.sleep(0.1)
    await sync.clear_queue()
    played = sync.playback_position
    assert sync.stats.audio_queue_ms == pytest.approx(0.0, abs=10.0)
    await asyncio.sleep(0.15)
    assert sync.playback_position == pytest.approx(played, abs=0.011)
    assert played < 0.3


# -- close and failure ---------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_leaves_no_task(sources) -> None:
    audio, video = sources
    before = asyncio.all_tasks()
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    await push_speech(s, 0.1)
    started = asyncio.all_tasks() - before
    assert len(started) >= 2  # the audio and video loops
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await s.aclose()  # before the loops ever ran: nothing may be left un-awaited
        await s.aclose()
        started.clear()
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert not (asyncio.all_tasks() - before)
    with pytest.raises(RuntimeError, match="closed"):
        await s.push(tone(20), 1.0)
    with pytest.raises(RuntimeError, match="closed"):
        await s.push(gray(), 1.0)
    with pytest.raises(RuntimeError, match="closed"):
        await s.clear_queue()
    with pytest.raises(RuntimeError, match="closed"):
        await s.wait_for_playout()


async def test_background_failure_surfaces_on_next_call(sources, monkeypatch) -> None:
    audio, video = sources

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("camera exploded")

    monkeypatch.setattr(video, "capture_frame", broken)
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    await s.push(gray(), 0.0)  # video only: sent once audio had its chance to start (0.4 s)
    await asyncio.sleep(0.5)
    with pytest.raises(RuntimeError, match="camera exploded"):
        await s.push(gray(), 1 / 30)
    with pytest.raises(RuntimeError, match="camera exploded"):
        await s.wait_for_playout()
    await s.aclose()


async def test_background_failure_wakes_a_waiting_wait_for_playout(sources, monkeypatch) -> None:
    audio, video = sources
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    await push_speech(s, 0.1, with_video=False)

    async def broken(frame: rtc.AudioFrame) -> None:
        raise OSError("audio device gone")

    monkeypatch.setattr(audio, "capture_frame", broken)
    await push_speech(s, 0.3, t0=0.1, with_video=False)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="audio device gone"):
        await asyncio.wait_for(s.wait_for_playout(), 2.0)
    assert time.monotonic() - t0 < 0.5
    await s.aclose()


# -- stats and playout ---------------------------------------------------------------------------


async def test_audio_reaches_the_source_in_chunks_of_at_most_20_ms(
    sources: tuple[rtc.AudioSource, rtc.VideoSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long frames are cut (a clear cannot stop the rest of a long frame already handed over),
    and 10 ms frames are paired up (half the hand-offs), with every sample kept in order."""
    audio, video = sources
    handed: list[np.ndarray] = []
    capture = audio.capture_frame

    async def spy(frame: rtc.AudioFrame) -> None:
        handed.append(np.frombuffer(frame.data, dtype=np.int16).copy())
        await capture(frame)

    monkeypatch.setattr(audio, "capture_frame", spy)
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    pushed = [tone(500, freq=300.0)] + [tone(10, freq=500.0 + 10 * k) for k in range(10)]
    end = 0.0
    for frame in pushed:
        end += frame.samples_per_channel / RATE
        await s.push(frame, end)
    await s.wait_for_playout()
    await s.aclose()
    assert [len(c) for c in handed] == [960] * 30  # 500 ms in 25 chunks, 10 x 10 ms in 5
    expected = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in pushed])
    assert np.array_equal(np.concatenate(handed), expected)


async def test_wait_for_playout_returns_after_audio_played_and_stats(sync: AVSynchronizer) -> None:
    t0 = time.monotonic()
    await push_speech(sync, 0.5)
    await sync.wait_for_playout()
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.5 - 0.03
    assert elapsed < 1.5
    st = sync.stats
    assert st.mode == "timestamps"
    assert st.epoch == 0
    assert st.audio_frames_in == 25
    assert st.video_frames_in == 15
    assert st.audio_chunks_out == 25  # 20 ms frames go out as they are
    assert st.video_frames_out + st.video_dropped_late >= 15
    assert st.video_frames_out >= 14
    assert st.audio_dropped_stale == 0
    assert st.video_dropped_stale == 0
    assert st.timestamps_missing == 0
    assert st.timestamps_non_monotonic == 0
    assert st.timestamp_jumps == 0
    assert st.audio_queue_ms == pytest.approx(0.0, abs=1e-6)
    assert st.playback_position == pytest.approx(0.5, abs=0.005)
    assert abs(st.av_offset_ms) < 15.0
    d = st.to_dict()
    assert d["audio_chunks_out"] == 25
    assert d["mode"] == "timestamps"
    assert set(d) >= {"playback_position", "av_offset_ms", "video_repeated", "audio_underruns"}
    assert sync.last_video_time == pytest.approx(14 / 30)
