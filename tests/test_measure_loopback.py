"""LoopbackCapture on real rtc sources: marker media pushed by hand is measured back."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable

import pytest
from livekit import rtc
from sync_helpers import open_sources

from livekit_avsync.measure import (
    DEFAULT_SPEC,
    CaptureError,
    LoopbackCapture,
    marker_audio_frame,
    marker_video_frame,
)

SR = 48000
CHUNK = SR // 100  # 10 ms
W, H = 320, 180


@pytest.fixture
async def sources() -> AsyncIterator[tuple[rtc.AudioSource, rtc.VideoSource]]:
    async with open_sources(SR, W, H, queue_size_ms=50) as pair:
        yield pair


async def _play(
    audio: rtc.AudioSource,
    video: rtc.VideoSource | None,
    duration: float,
    video_shift_ms: Callable[[int], float] = lambda n: 0.0,
    start_sample: int = 0,
) -> float:
    """Push marker audio in 10 ms chunks, and each marker frame when its media time plays,
    shifted by ``video_shift_ms(n)``. A chunk starts playing when it is handed over or, if
    audio is still queued, when the previous chunk ends (so a stall of this producer that
    drains the queue moves the rest of the audio, and the video follows). Returns the wall time
    the first chunk was handed over."""
    starts: list[float] = []  # wall time each chunk starts playing
    handed = asyncio.Event()

    async def push_audio() -> None:
        for pos in range(start_sample, start_sample + round(duration * SR), CHUNK):
            frame = marker_audio_frame(pos, CHUNK, sample_rate=SR)
            now = time.monotonic()
            starts.append(max(now, starts[-1] + CHUNK / SR) if starts else now)
            handed.set()
            await audio.capture_frame(frame)

    async def push_video() -> None:
        assert video is not None
        fps = DEFAULT_SPEC.fps
        first_frame = round(start_sample / SR * fps)
        for n in range(first_frame, first_frame + round(duration * fps)):
            media = n / fps - start_sample / SR  # seconds into this play
            chunk = int(media * SR) // CHUNK
            while len(starts) <= chunk:
                handed.clear()
                await handed.wait()
            due = starts[chunk] + media - chunk * CHUNK / SR + video_shift_ms(n) / 1000
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            video.capture_frame(marker_video_frame(n, W, H))

    await asyncio.gather(push_audio(), *([push_video()] if video is not None else []))
    return starts[0]


async def test_measures_hand_placed_markers_and_a_known_video_shift(
    sources: tuple[rtc.AudioSource, rtc.VideoSource],
) -> None:
    audio, video = sources
    # markers 0-4 in place, markers 5-9 with the video 80 ms late
    async with LoopbackCapture.from_sources(audio, video) as capture:
        await asyncio.sleep(0.05)
        await _play(audio, video, 5.0, lambda n: 0.0 if n < 75 else 80.0)
        await capture.wait_for_bursts(10, timeout=2.0)
        await capture.wait_for_frame(149, timeout=2.0)
        report = capture.analyze()
        continuity = capture.frame_continuity()
    assert report.paired == 10, report.summary()
    assert [m.marker for m in report.offsets] == list(range(10))
    in_place = [m.offset_ms for m in report.offsets[:5]]
    shifted = [m.offset_ms for m in report.offsets[5:]]
    # the producer places frames with asyncio.sleep: a few ms of its own jitter under CPU load
    assert all(abs(x) < 15 for x in in_place), in_place
    assert max(in_place) - min(in_place) < 8, in_place
    shift = statistics.median(shifted) - statistics.median(in_place)
    assert shift == pytest.approx(80, abs=5), (in_place, shifted)
    assert continuity.missing == [] and continuity.reordered == 0
    assert (continuity.lowest, continuity.highest) == (0, 149)


async def test_audio_tail_after_a_clear_versus_letting_the_queue_play_out(
    sources: tuple[rtc.AudioSource, rtc.VideoSource],
) -> None:
    audio, _ = sources
    async with LoopbackCapture.from_sources(audio) as capture:
        await asyncio.sleep(0.05)
        first = await _play(audio, None, 0.5)
        stopped = time.monotonic()  # 50 ms are still queued: they play out
        await asyncio.sleep(0.25)
        await _play(audio, None, 0.5, start_sample=round(0.5 * SR))
        cleared = time.monotonic()
        audio.clear_queue()  # the queued audio is dropped
        await asyncio.sleep(0.25)
        played_out = capture.audio_tail(stopped)
        after_clear = capture.audio_tail(cleared)
        assert capture.first_sound() == pytest.approx(first, abs=0.02)
        assert capture.last_sound() == pytest.approx(cleared + after_clear)
        assert capture.audio_seconds > 1.0
    assert 0.035 < played_out < 0.075, played_out
    assert after_clear < 0.025, after_clear
    assert capture.audio_tail(time.monotonic()) == 0.0


async def test_video_queries_hooks_and_failures(
    sources: tuple[rtc.AudioSource, rtc.VideoSource],
) -> None:
    audio, video = sources
    seen: list[tuple[float, int | None]] = []

    def on_video(frame: rtc.VideoFrame, t: float, code: object) -> None:
        assert frame.width == W
        seen.append((t, None if code is None else code.frame))  # type: ignore[attr-defined]
        if len(seen) >= 3 and code is not None and code.frame == 99:  # type: ignore[attr-defined]
            raise RuntimeError("hook broke")

    capture = LoopbackCapture.from_sources(audio, video, on_video=on_video)
    await capture.start()
    await capture.start()  # idempotent
    video.capture_frame(marker_video_frame(7, W, H, turn=2))
    arrival = await capture.wait_for_frame(7, turn=2, timeout=2.0)
    mark = time.monotonic()
    video.capture_frame(marker_video_frame(8, W, H))
    await capture.wait_for_frame(8, timeout=2.0)
    assert [v.frame for v in capture.video_after(mark)] == [8]
    assert (arrival.frame, arrival.turn) == (7, 2)
    assert (arrival.time, 7) in seen
    assert [o.frame for o in capture.video_observations()] == [7, 8]

    video.capture_frame(marker_video_frame(99, W, H))
    with pytest.raises(CaptureError, match="hook broke"):
        await capture.wait_until(lambda: False, timeout=2.0)
    await capture.aclose()
    await capture.aclose()  # idempotent, the failure was already reported
    with pytest.raises(RuntimeError, match="closed"):
        await capture.start()


async def test_failure_not_yet_seen_is_raised_by_aclose(
    sources: tuple[rtc.AudioSource, rtc.VideoSource],
) -> None:
    audio, _ = sources

    def on_audio(frame: rtc.AudioFrame, t: float) -> None:
        raise ValueError("audio hook broke")

    capture = LoopbackCapture.from_sources(audio, on_audio=on_audio)
    await capture.start()
    await asyncio.sleep(0.1)
    with pytest.raises(CaptureError, match="audio hook broke"):
        await capture.aclose()


def test_rejects_tracks_of_the_wrong_kind() -> None:
    source = rtc.VideoSource(W, H)
    track = rtc.LocalVideoTrack.create_video_track("v", source)
    with pytest.raises(ValueError, match="audio track"):
        LoopbackCapture(track)
