"""Record a provider's output losslessly and replay it with the original content and timing."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from livekit import rtc

from livekit_avsync.media.convert import i420_frame, video_to_i420
from livekit_avsync.providers import recorded
from livekit_avsync.providers.base import (
    AvatarProvider,
    OutputFrame,
    PlaybackFinished,
    ProviderError,
)
from livekit_avsync.providers.recorded import RecordedProvider
from livekit_avsync.providers.recorder import ProviderRecorder, sidecar_path

RATE = 48_000
AUDIO_S = 0.01


def tone(index: int, speech: bool, channels: int = 1) -> rtc.AudioFrame:
    """10 ms of a 440 Hz tone (speech) or faint noise (idle), continuous across frames."""
    n = int(RATE * AUDIO_S)
    t = (np.arange(n) + index * n) / RATE
    if speech:
        mono = 12_000 * np.sin(2 * np.pi * 440 * t)
    else:
        mono = np.random.default_rng(index).normal(0, 30, n)
    samples = np.repeat(mono.astype(np.int16)[:, None], channels, axis=1)
    return rtc.AudioFrame(samples.tobytes(), RATE, channels, n)


def picture(index: int, width: int, height: int) -> rtc.VideoFrame:
    """An I420 frame whose three planes all change from frame to frame (noise + moving ramp)."""
    rng = np.random.default_rng(1000 + index)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    ramp = (np.arange(width)[None, :] + np.arange(height)[:, None] + 7 * index) % 256
    y = ((ramp + rng.integers(0, 16, (height, width))) % 256).astype(np.uint8)
    u = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    v = np.full((ch, cw), index % 256, dtype=np.uint8)
    return i420_frame(y, u, v)


def planes(frame: rtc.VideoFrame) -> bytes:
    assert frame.type == rtc.VideoBufferType.I420
    return bytes(frame.data)


class SyntheticAvatar(AvatarProvider):
    """A stand-in remote provider: real-time audio (tone while speaking) and moving I420 video,
    each stream on its own jittered schedule, with timestamps, generations and playback events."""

    label = "synthetic"
    sync_mode = "timestamps"
    video_lag = 0.04

    def __init__(
        self, *, duration: float, size: tuple[int, int], fps: float, speech: tuple[float, float]
    ) -> None:
        super().__init__()
        self._duration, self._size, self._fps, self._speech = duration, size, fps, speech
        self._queues: dict[str, asyncio.Queue[OutputFrame | None]] = {
            "audio": asyncio.Queue(),
            "video": asyncio.Queue(),
        }
        self._tasks: list[asyncio.Task[None]] = []
        self.pushed = 0
        self.turns = 0

    async def start(self, *, room: rtc.Room | None = None) -> None:
        t0 = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._run_audio(t0)),
            asyncio.create_task(self._run_video(t0)),
        ]
        self.emit("ready")

    async def _pace(self, due: float) -> None:
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))

    async def _run_audio(self, t0: float) -> None:
        jitter = np.random.default_rng(1).uniform(0, 0.004, 10_000)
        start, end = self._speech
        for i in range(round(self._duration / AUDIO_S)):
            await self._pace(t0 + i * AUDIO_S + jitter[i])
            speech = start <= i * AUDIO_S < end
            if i == round(start / AUDIO_S):
                self.emit("playback_started")
            out = OutputFrame(tone(i, speech), (i + 1) * AUDIO_S, self.generation, speech)
            self._queues["audio"].put_nowait(out)
            if i == round(end / AUDIO_S):
                self.emit("playback_finished", PlaybackFinished(end - start, False))
        self._queues["audio"].put_nowait(None)

    async def _run_video(self, t0: float) -> None:
        jitter = np.random.default_rng(2).uniform(0, 0.008, 10_000)
        for i in range(round(self._duration * self._fps)):
            await self._pace(t0 + i / self._fps + jitter[i])
            frame = picture(i, *self._size)
            self._queues["video"].put_nowait(OutputFrame(frame, i / self._fps, self.generation))
        self._queues["video"].put_nowait(None)

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        self.pushed += 1

    async def end_turn(self) -> None:
        self.turns += 1

    async def interrupt(self) -> None:
        self._bump_generation()

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        return self._drain("audio")

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        return self._drain("video")

    async def _drain(self, kind: str) -> AsyncIterator[OutputFrame]:
        while (item := await self._queues[kind].get()) is not None:
            yield item

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def consume(
    provider: AvatarProvider, t0: float
) -> dict[str, list[tuple[float, OutputFrame]]]:
    """Read both output streams to their end, noting when each frame arrived (s since t0)."""
    got: dict[str, list[tuple[float, OutputFrame]]] = {"audio": [], "video": []}

    async def read(kind: str, frames: AsyncIterator[OutputFrame]) -> None:
        async for out in frames:
            got[kind].append((time.monotonic() - t0, out))

    await asyncio.gather(
        read("audio", provider.audio_frames()), read("video", provider.video_frames())
    )
    return got


def fields(out: OutputFrame) -> tuple[object, ...]:
    return (out.timestamp, out.generation, out.speech)


def audio_bytes(out: OutputFrame) -> bytes:
    frame = out.frame
    assert isinstance(frame, rtc.AudioFrame)
    return frame.data.tobytes()


def worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("avsync-")]


async def test_tap_records_a_live_provider_and_replay_is_identical_and_on_time(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "session.mkv"
    inner = SyntheticAvatar(duration=2.5, size=(161, 121), fps=30, speech=(0.5, 1.6))
    recorder = ProviderRecorder(path)
    tap = recorder.wrap(inner)
    assert (tap.label, tap.sync_mode, tap.video_lag) == ("synthetic", "timestamps", 0.04)
    events: list[tuple[float, str, tuple[object, ...]]] = []
    for name in ("playback_started", "playback_finished"):
        tap.on(name, lambda *args, name=name: events.append((time.monotonic() - t0, name, args)))

    t0 = time.monotonic()
    await tap.start()
    reading = asyncio.create_task(consume(tap, t0))
    await tap.push_audio(tone(0, True))
    await tap.end_turn()
    await asyncio.sleep(2.0)
    await tap.interrupt()  # forwarded: the inner provider's later frames are generation 1
    assert tap.generation == inner.generation == 1
    recorded = await reading
    await tap.aclose()
    await tap.aclose()
    assert (inner.pushed, inner.turns) == (1, 1)
    assert recorder.frames_recorded == {"audio": 250, "video": 75}
    assert not worker_threads()

    # The media file is plain Matroska that PyAV reads, with the exact planes and samples.
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.format.name) == ("ffv1", "yuv420p")
        assert (video.width, video.height) == (161, 121)
        assert (audio.codec_context.name, audio.sample_rate, audio.channels) == (
            "pcm_s16le",
            RATE,
            1,
        )
        decoded: list[rtc.VideoFrame] = []
        pcm: list[bytes] = []
        for packet in container.demux(video, audio):
            if packet.stream is video:
                decoded += [video_to_i420(f) for f in packet.decode()]  # type: ignore[arg-type]
            elif packet.size:
                pcm.append(bytes(packet))
    assert [planes(f) for f in decoded] == [planes(o.frame) for _, o in recorded["video"]]  # type: ignore[arg-type]
    assert pcm == [audio_bytes(o) for _, o in recorded["audio"]]
    lines = sidecar_path(path).read_text().splitlines()
    header, end = json.loads(lines[0]), json.loads(lines[-1])
    assert header["format"] == "livekit-avsync-recording" and header["sync_mode"] == "timestamps"
    assert end["audio"] == {"frames": 250, "sample_rate": RATE, "channels": 1}
    assert end["error"] is None

    replay = RecordedProvider(path)
    assert (replay.sync_mode, replay.video_lag, replay.recorded_label) == (
        "timestamps",
        0.04,
        "synthetic",
    )
    replay_events: list[tuple[float, str, tuple[object, ...]]] = []
    for name in ("playback_started", "playback_finished"):
        replay.on(
            name, lambda *args, name=name: replay_events.append((time.monotonic() - t1, name, args))
        )
    t1 = time.monotonic()
    await replay.start()
    await replay.push_audio(tone(0, True))
    await replay.end_turn()
    replayed = await consume(replay, t1)
    await replay.wait_done()
    await replay.aclose()
    assert (replay.pushed_frames, replay.turns_ended) == (1, 1)

    for kind, count in (("audio", 250), ("video", 75)):
        original, again = recorded[kind], replayed[kind]
        assert len(original) == len(again) == count
        assert [fields(o) for _, o in again] == [fields(o) for _, o in original]
        if kind == "audio":
            assert all(
                audio_bytes(a) == audio_bytes(b)
                for (_, a), (_, b) in zip(original, again, strict=True)
            )
        else:
            assert all(
                planes(a.frame) == planes(b.frame)  # type: ignore[arg-type]
                for (_, a), (_, b) in zip(original, again, strict=True)
            )
        # Same pacing: per frame, replay arrival minus original arrival is one constant.
        delta = np.array([t for t, _ in again]) - np.array([t for t, _ in original])
        offset = float(np.median(delta))
        spread = np.abs(delta - offset)
        assert abs(offset) < 0.05, offset
        assert float(np.percentile(spread, 95)) < 0.004, (kind, np.percentile(spread, [50, 95]))
    gens = [o.generation for _, o in replayed["audio"]]
    assert gens[0] == 0 and gens[-1] == 1  # the recorded interrupt is replayed as recorded
    assert [(n, a) for _, n, a in replay_events] == [(n, a) for _, n, a in events]
    # events keep their place in the media: compared after the replay's own start offset (the
    # constant the frames were checked against), so a busy machine's late start is not counted
    audio_offset = float(
        np.median(
            np.array([t for t, _ in replayed["audio"]])
            - np.array([t for t, _ in recorded["audio"]])
        )
    )
    for (t_orig, *_), (t_again, *_) in zip(events, replay_events, strict=True):
        assert abs(t_again - t_orig - audio_offset) < 0.02, (t_again, t_orig, audio_offset)


async def record_feed(
    path: Path,
    *,
    seconds: float,
    speech: tuple[float, float] | None = None,
    size: tuple[int, int] = (64, 48),
    fps: float = 25,
    video: bool = True,
    audio: bool = True,
    audio_from: float = 0.0,
) -> list[OutputFrame]:
    """Feed a recorder synthetic frames with explicit arrival times; return what was written."""
    written: list[OutputFrame] = []
    start, end = speech or (-1.0, -1.0)
    async with ProviderRecorder(path, label="fed", sync_mode="arrival", video_lag=0.1) as rec:
        items: list[tuple[float, str, int]] = []
        if audio:
            items += [
                (i * AUDIO_S, "audio", i)
                for i in range(round(seconds / AUDIO_S))
                if i * AUDIO_S >= audio_from
            ]
        if video:
            items += [(i / fps, "video", i) for i in range(round(seconds * fps))]
        if speech:
            items += [(start, "started", 0), (end + 0.05, "finished", 0)]
        for at, kind, i in sorted(items):
            if kind == "audio":
                out = OutputFrame(tone(i, start <= at < end), at + AUDIO_S, 0, start <= at < end)
                await rec.write_audio(out, arrival=at)
            elif kind == "video":
                out = OutputFrame(picture(i, *size), at, 0)
                await rec.write_video(out, arrival=at)
            elif kind == "started":
                await rec.write_event("playback_started", arrival=at)
                continue
            else:
                await rec.write_event(
                    "playback_finished", PlaybackFinished(end - start, False), arrival=at
                )
                continue
            written.append(out)
    return written


async def test_interrupt_skips_to_where_the_recording_went_idle(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "turn.mkv"
    await record_feed(path, seconds=2.4, speech=(0.3, 1.8))
    replay = RecordedProvider(path)
    finished: list[tuple[float, PlaybackFinished]] = []
    replay.on("playback_finished", lambda f: finished.append((time.monotonic(), f)))
    await replay.start()
    t0 = time.monotonic()
    got: list[tuple[float, OutputFrame]] = []
    async for out in replay.audio_frames():
        got.append((time.monotonic(), out))
        if out.timestamp == pytest.approx(0.8):  # speaking: the frame ending at 0.8 s
            interrupted_at = time.monotonic()
            await replay.interrupt()
            assert replay.generation == 1
    assert time.monotonic() - t0 == pytest.approx(2.4 - 1.01, abs=0.05)  # 1.01 s skipped
    assert replay.position == pytest.approx(2.4, abs=0.05)
    await replay.aclose()

    before = [o for t, o in got if t <= interrupted_at]
    after = [(t, o) for t, o in got if t > interrupted_at]
    assert before[-1].timestamp == pytest.approx(0.8) and before[-1].speech
    # The next frame delivered is the first idle one (ends at 1.81 s), right away, as gen 1.
    first_t, first = after[0]
    assert first.timestamp == pytest.approx(1.81) and first.speech is False
    assert first.generation == 1
    # Right away: the replay's timeline goes on from the interrupt. Frames are never early, so
    # the on-time ones show it to 30 ms on a busy machine too (the first one also pays the
    # one-off skip in the reader thread; waiting out the cut speech would be 1 s).
    lateness = [t - (interrupted_at + (o.timestamp - 1.81)) for t, o in after]  # type: ignore[operator]
    assert min(lateness) < 0.03, min(lateness)
    assert first_t - interrupted_at < 0.2, first_t - interrupted_at
    assert not any(o.speech for _, o in after)
    assert len(after) == round((2.4 - 1.8) / AUDIO_S)
    # The cut turn's playback_finished says where it was cut, and comes right away.
    assert len(finished) == 1
    when, report = finished[0]
    assert report.interrupted and report.playback_position == pytest.approx(0.5, abs=0.03)
    assert when - interrupted_at < 0.1
    # paced at the recorded times: never early (late only by the event loop)
    assert 0.8 - 0.03 <= interrupted_at - t0 <= 0.8 + 0.15, interrupted_at - t0


async def test_interrupt_while_idle_only_bumps_generation(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "idle.mkv"
    await record_feed(path, seconds=0.6, speech=(0.4, 0.5), video=False)
    replay = RecordedProvider(path)
    await replay.start()
    got: list[OutputFrame] = []
    async for out in replay.audio_frames():
        got.append(out)
        if len(got) == 10:
            await replay.interrupt()
    await replay.aclose()
    assert len(got) == 60  # nothing skipped
    assert {o.generation for o in got[:10]} == {0} and {o.generation for o in got[10:]} == {1}


async def test_loop_repeats_with_shifted_timestamps_and_speed(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "loop.mkv"
    written = await record_feed(path, seconds=0.4, audio=False, fps=25)
    replay = RecordedProvider(path, loop=True, speed=2.0)
    await replay.start()
    t0 = time.monotonic()
    got: list[tuple[float, OutputFrame]] = []
    async for out in replay.video_frames():
        got.append((time.monotonic() - t0, out))
        if len(got) == 25:
            break
    await replay.aclose()
    assert [planes(o.frame) for _, o in got[10:20]] == [planes(o.frame) for o in written]  # type: ignore[arg-type]
    # Pass 2 starts one recording duration later, in media time and (at speed 2) half that in
    # wall time; the duration ends one frame interval after the last frame.
    duration = 0.4
    assert got[10][1].timestamp == pytest.approx(written[0].timestamp + duration)  # type: ignore[operator]
    assert got[20][1].timestamp == pytest.approx(2 * duration)

    # At speed 2 each pass takes duration / 2 of wall time: frames are never early, so the
    # on-time ones of each pass (the smallest lateness against media time / 2) show it to 10 ms
    # even when a busy machine delays a few.
    def on_time(frames: list[tuple[float, OutputFrame]]) -> float:
        return min(t - o.timestamp / 2 for t, o in frames)  # type: ignore[operator]

    assert on_time(got[10:20]) - on_time(got[:10]) == pytest.approx(0.0, abs=0.01)
    assert on_time(got[20:]) - on_time(got[:10]) == pytest.approx(0.0, abs=0.01)


async def test_a_looping_replay_reads_each_pass_once_even_without_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaked_tasks: None
) -> None:
    path = tmp_path / "loop.mkv"
    await record_feed(path, seconds=0.4, audio=False, fps=25)  # no events were recorded
    opened: list[Path] = []
    real_open = recorded._open_sidecar

    def counting(p: Path) -> Any:
        opened.append(p)
        return real_open(p)

    monkeypatch.setattr(recorded, "_open_sidecar", counting)
    replay = RecordedProvider(path, loop=True, speed=2.0)
    await replay.start()
    got = 0
    async for _ in replay.video_frames():
        got += 1
        if got == 25:  # 2.5 passes of 0.2 s each
            break
    await replay.aclose()
    # the start reads the header and each track's first record; then each pass opens the
    # sidecar once per track (video, events). The event track used to start its next pass at
    # once, re-reading the sidecar thousands of times a second on a thread of its own.
    assert len(opened) <= 3 + 2 * 4, len(opened)


async def test_video_before_audio_odd_rgba_and_pyav_frames_round_trip(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "mixed.mkv"
    rng = np.random.default_rng(3)
    rgba_bytes = rng.integers(0, 256, 33 * 17 * 4, dtype=np.uint8).tobytes()
    rgba = rtc.VideoFrame(33, 17, rtc.VideoBufferType.RGBA, rgba_bytes)
    rgb = rng.integers(0, 256, (17, 33, 3), dtype=np.uint8)
    pyav = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frames = [picture(0, 33, 17), rgba, pyav]
    expected = [
        planes(frames[0]),
        planes(video_to_i420(rgba)),  # stored as I420 of its own size, converted by PyAV
        planes(video_to_i420(pyav)),
    ]
    stereo = [tone(i, True, channels=2) for i in range(5)]
    async with ProviderRecorder(path) as rec:
        for i, frame in enumerate(frames):  # video only for 0.2 s: spooled until audio appears
            await rec.write_video(OutputFrame(frame, None, None), arrival=0.1 * i)
        for i, frame in enumerate(stereo):
            await rec.write_audio(OutputFrame(frame, None, None, None), arrival=0.25 + 0.01 * i)
    replay = RecordedProvider(path, speed=10)
    await replay.start()
    got = await consume(replay, time.monotonic())
    await replay.aclose()
    video = [planes(o.frame) for _, o in got["video"]]  # type: ignore[arg-type]
    assert video == expected
    assert [audio_bytes(o) for _, o in got["audio"]] == [f.data.tobytes() for f in stereo]
    assert [fields(o) for _, o in got["audio"]] == [(None, None, None)] * 5
    assert got["audio"][0][1].frame.num_channels == 2  # type: ignore[union-attr]


async def test_recording_memory_stays_flat(tmp_path: Path, no_leaked_tasks: None) -> None:
    """40 s of 640x360 video + audio fed faster than real time: neither Python objects nor the
    process grow with the length (holding the frames would take ~300 MB)."""
    width, height = 640, 360
    base = picture(0, width, height)
    y = np.frombuffer(base.data, np.uint8)

    def frame(i: int) -> rtc.VideoFrame:
        return rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, np.roll(y, i * 3).tobytes())

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    sound = tone(0, True)
    tracemalloc.start()
    try:
        async with ProviderRecorder(tmp_path / "long.mkv", max_pending_bytes=2 << 20) as rec:
            marks: list[tuple[int, int]] = []
            for second in range(40):
                items = sorted(
                    [(second + i / 30, i) for i in range(30)]
                    + [(second + k * AUDIO_S, -1) for k in range(100)]
                )
                for at, i in items:
                    if i >= 0:
                        await rec.write_video(OutputFrame(frame(second * 30 + i), at), arrival=at)
                    else:
                        await rec.write_audio(OutputFrame(sound, at), arrival=at)
                if second in (9, 39):
                    marks.append((tracemalloc.get_traced_memory()[0], rss()))
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (py_10, rss_10), (py_40, rss_40) = marks
    assert py_40 - py_10 < 4 << 20, (py_10, py_40)  # queued frames: at most ~2.5 MB
    assert rss_40 - rss_10 < 40 << 20, (rss_10, rss_40)
    assert peak < 12 << 20  # bounded by max_pending_bytes plus a frame or two in flight
    end = json.loads(sidecar_path(tmp_path / "long.mkv").read_text().splitlines()[-1])
    assert end["video"]["frames"] == 1200 and end["audio"]["frames"] == 4000


async def test_size_change_fails_the_recording_clearly(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "resize.mkv"
    rec = ProviderRecorder(path)
    await rec.write_video(OutputFrame(picture(0, 32, 32)), arrival=0.0)
    with pytest.raises(ProviderError, match="video size changed from 32x32 to 64x32"):
        await rec.write_video(OutputFrame(picture(1, 64, 32)), arrival=0.04)
    with pytest.raises(ProviderError, match="video size changed"):  # stays failed
        await rec.write_audio(OutputFrame(tone(0, False)), arrival=0.05)
    with pytest.raises(ProviderError, match="video size changed"):
        await rec.aclose()
    with pytest.raises(ProviderError, match=r"recording failed: .*video size changed"):
        await RecordedProvider(path).start()
    with pytest.raises(ValueError, match="before the previous video"):
        other = ProviderRecorder(tmp_path / "back.mkv")
        await other.write_video(OutputFrame(picture(0, 8, 8)), arrival=1.0)
        await other.write_video(OutputFrame(picture(1, 8, 8)), arrival=0.5)
    await other.aclose()


async def test_tap_keeps_the_session_running_when_recording_fails(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    class Resizing(SyntheticAvatar):
        async def _run_video(self, t0: float) -> None:
            for i, size in enumerate([(16, 16), (16, 16), (32, 16), (32, 16)]):
                self._queues["video"].put_nowait(OutputFrame(picture(i, *size), i * 0.04))
            self._queues["video"].put_nowait(None)

    inner = Resizing(duration=0.1, size=(16, 16), fps=25, speech=(0, 0))
    recorder = ProviderRecorder(tmp_path / "tap.mkv")
    tap = recorder.wrap(inner)
    await tap.start()
    got = await consume(tap, time.monotonic())
    assert len(got["video"]) == 4 and len(got["audio"]) == 10  # the live output is untouched
    assert recorder.error is not None
    with pytest.raises(ProviderError, match="video size changed"):
        await tap.aclose()
    assert not worker_threads()


async def test_bad_recordings_give_clear_errors(tmp_path: Path, no_leaked_tasks: None) -> None:
    good = tmp_path / "good.mkv"
    await record_feed(good, seconds=0.3, speech=(0.1, 0.2))
    lines = sidecar_path(good).read_text().splitlines(keepends=True)

    def variant(name: str, sidecar: list[str] | None, media: bytes | None = None) -> Path:
        path = tmp_path / name
        if media is None:
            shutil.copy(good, path)
        elif media:
            path.write_bytes(media)
        if sidecar is not None:
            sidecar_path(path).write_text("".join(sidecar))
        return path

    with pytest.raises(
        ProviderError, match=r"missing\.mkv: its sidecar missing\.mkv\.jsonl is missing"
    ):
        RecordedProvider(tmp_path / "missing.mkv")
    with pytest.raises(ProviderError, match="not a livekit-avsync-recording sidecar"):
        RecordedProvider(variant("junk.mkv", ["hello\n"]))
    newer = json.dumps({**json.loads(lines[0]), "version": 9}) + "\n"
    with pytest.raises(ProviderError, match="format version 9 is not supported"):
        RecordedProvider(variant("v9.mkv", [newer, *lines[1:]]))

    async def start_error(path: Path) -> str:
        provider = RecordedProvider(path)
        with pytest.raises(ProviderError) as info:
            await provider.start()
        await provider.aclose()
        assert str(path) in str(info.value)
        return str(info.value)

    assert "not finished" in await start_error(variant("cut.mkv", lines[:-1]))
    damaged = [*lines[:5], '{"kind": "audio", "t_us": 12\n', *lines[6:]]
    assert "sidecar line 6: not JSON" in await start_error(variant("damaged.mkv", damaged))
    assert "media file is missing" in await start_error(variant("nomedia.mkv", lines, b""))
    junk = variant("garbage.mkv", lines, b"\x1a\x45\xdf\xa3 this is not matroska" * 10)
    assert "media file is not readable" in await start_error(junk)

    # A media file from another recording: caught as soon as the frames disagree.
    other = tmp_path / "other.mkv"
    await record_feed(other, seconds=0.3, fps=20, speech=(0.1, 0.2))
    swapped = variant("swapped.mkv", lines, other.read_bytes())
    replay = RecordedProvider(swapped, speed=5)
    disconnects: list[str] = []
    replay.on("disconnected", disconnects.append)
    await replay.start()
    with pytest.raises(ProviderError, match="do not belong together"):
        await consume(replay, time.monotonic())
    with pytest.raises(ProviderError, match="do not belong together"):
        await replay.wait_done()
    assert disconnects and "swapped.mkv" in disconnects[0]
    await replay.aclose()
    with pytest.raises(ValueError, match="speed"):
        RecordedProvider(good, speed=0)


async def test_aclose_mid_replay_ends_iterators_and_leaves_nothing_running(
    tmp_path: Path, no_leaked_tasks: None
) -> None:
    path = tmp_path / "long.mkv"
    await record_feed(path, seconds=1.0, size=(320, 240))
    replay = RecordedProvider(path)
    await replay.start()
    reading = asyncio.create_task(consume(replay, time.monotonic()))
    await asyncio.sleep(0.2)
    await replay.aclose()
    got = await asyncio.wait_for(reading, 1.0)
    assert 0 < len(got["audio"]) < 100 and 0 < len(got["video"]) < 25
    await replay.aclose()
    await replay.wait_done()
    assert not worker_threads()
    assert [o async for o in replay.audio_frames()] == []
    with pytest.raises(ProviderError, match="closed"):
        await replay.start()
