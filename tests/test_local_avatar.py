"""LocalAvatar: a real-time face on one media clock, speech in and out, and its simulation knobs.

Everything runs in real time through the public API: frames are read from the provider's
iterators and stamped with their arrival time on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

from livekit_avsync.providers.base import OutputFrame, PlaybackFinished, ProviderError
from livekit_avsync.providers.face import MOUTH_LEVELS, FaceRenderer
from livekit_avsync.providers.local import LocalAvatar, _SpeechQueue

W, H = 320, 240  # small frames keep the real-time tests cheap; 720p is covered separately


def now() -> float:
    return asyncio.get_running_loop().time()


def tone(seconds: float, rate: int, channels: int, *, amplitude: float = 10_000.0) -> np.ndarray:
    """A 440 Hz sine as (samples, channels) int16."""
    t = np.arange(round(seconds * rate)) / rate
    mono = (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


async def push_pcm(avatar: LocalAvatar, pcm: np.ndarray, rate: int, chunk_s: float = 0.02) -> None:
    """Push ``pcm`` as consecutive rtc.AudioFrames of ``chunk_s`` seconds."""
    step = round(rate * chunk_s)
    for i in range(0, len(pcm), step):
        part = np.ascontiguousarray(pcm[i : i + step])
        await avatar.push_audio(rtc.AudioFrame(part.tobytes(), rate, pcm.shape[1], len(part)))


def luma(frame: rtc.VideoFrame) -> np.ndarray:
    assert frame.type == rtc.VideoBufferType.I420
    data = np.frombuffer(bytes(frame.data), dtype=np.uint8)
    return data[: frame.width * frame.height].reshape(frame.height, frame.width)


def mouth_std(avatar: LocalAvatar, frame: rtc.VideoFrame) -> float:
    x0, y0, x1, y1 = avatar.renderer.mouth_box
    return float(luma(frame)[y0:y1, x0:x1].astype(np.float64).std())


@dataclass
class Capture:
    """Reads both output streams in the background, recording (arrival, frame) pairs."""

    avatar: LocalAvatar
    audio: list[tuple[float, OutputFrame]] = field(default_factory=list)
    video: list[tuple[float, OutputFrame]] = field(default_factory=list)
    events: list[tuple[float, str, object]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("ready", "playback_started", "playback_finished", "disconnected"):
            self.avatar.on(name, lambda *args, name=name: self._event(name, *args))

    def _event(self, name: str, *args: object) -> None:
        self.events.append((now(), name, args[0] if args else None))

    def start_reading(self) -> None:
        self.tasks = [
            asyncio.create_task(self._pump(self.avatar.audio_frames(), self.audio)),
            asyncio.create_task(self._pump(self.avatar.video_frames(), self.video)),
        ]

    @staticmethod
    async def _pump(frames: AsyncIterator[OutputFrame], into: list) -> None:
        async for item in frames:
            into.append((now(), item))

    def named(self, name: str) -> list[tuple[float, object]]:
        return [(t, arg) for t, n, arg in self.events if n == name]

    def speech(self) -> list[tuple[float, OutputFrame]]:
        return [(t, f) for t, f in self.audio if f.speech]

    async def finish(self) -> None:
        await self.avatar.aclose()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 2.0)


async def started(**options: object) -> Capture:
    options.setdefault("width", W)
    options.setdefault("height", H)
    capture = Capture(LocalAvatar(**options))  # type: ignore[arg-type]
    await capture.avatar.start()
    capture.start_reading()
    return capture


def pcm_of(frames: list[tuple[float, OutputFrame]]) -> np.ndarray:
    parts = []
    for _, item in frames:
        frame = item.frame
        assert isinstance(frame, rtc.AudioFrame)
        parts.append(np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels))
    return np.concatenate(parts)


# -- the face --------------------------------------------------------------------------------


def test_face_renders_720p_fast_and_only_the_mouth_moves() -> None:
    face = FaceRenderer(1280, 720)
    frame = face.render(0.0)
    assert (frame.width, frame.height, frame.type) == (1280, 720, rtc.VideoBufferType.I420)
    assert len(bytes(frame.data)) == 1280 * 720 * 3 // 2
    for level in np.linspace(0.0, 1.0, MOUTH_LEVELS + 1):  # draw every patch once
        face.render(float(level))
    times = []
    for i in range(200):
        start = time.perf_counter()
        face.render((i % 13) / 12, eyes_closed=i % 40 == 0)
        times.append(time.perf_counter() - start)
    median_ms = statistics.median(times) * 1000
    print(f"720p render: median {median_ms:.3f} ms, max {max(times) * 1000:.3f} ms")
    assert median_ms < 2.0

    closed = [p.copy() for p in face.planes(0.0)]
    opened = face.planes(1.0)
    x0, y0, x1, y1 = face.mouth_box
    changed = np.argwhere(closed[0] != opened[0])
    assert changed.size > 0
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1
    stds = [float(face.planes(m)[0][y0:y1, x0:x1].std()) for m in (0.0, 0.3, 0.6, 1.0)]
    assert stds == sorted(stds) and stds[-1] > 2 * stds[0]

    blinking = face.planes(0.0, eyes_closed=True)[0].copy()
    ex0, ey0, ex1, ey1 = face.eyes_box
    diff = np.argwhere(blinking != closed[0])
    assert diff.size > 0 and diff[:, 0].min() >= ey0 and diff[:, 0].max() < ey1
    assert diff[:, 1].min() >= ex0 and diff[:, 1].max() < ex1
    assert np.array_equal(face.planes(0.0)[0], closed[0])  # patches restore exactly


@pytest.mark.parametrize("size", [(0, 720), (1280, 8), (12.5, 20)])
def test_face_rejects_bad_sizes(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="frame size"):
        FaceRenderer(*size)


# -- output clock ----------------------------------------------------------------------------


async def test_idle_output_runs_in_real_time_on_one_clock(no_leaked_tasks: None) -> None:
    cap = await started(fps=25)
    t_start = now()
    assert [name for _, name, _ in cap.events] == ["ready"]
    await asyncio.sleep(1.0)
    await cap.finish()
    assert cap.avatar.sync_mode == "timestamps" and cap.avatar.video_lag == 0.0

    video = cap.video
    assert 22 <= len(video) <= 28
    assert [f.timestamp for _, f in video] == pytest.approx([n / 25 for n in range(len(video))])
    lateness = [t - t_start - f.timestamp for t, f in video]  # type: ignore[operator]
    assert max(lateness) - min(lateness) < 0.03, "frames are paced at fps"
    assert all(f.generation == 0 for _, f in video)

    idle = FaceRenderer(W, H).planes(0.0)[0]
    x0, y0, x1, y1 = cap.avatar.renderer.mouth_box
    for _, item in video:
        assert np.array_equal(luma(item.frame)[y0:y1, x0:x1], idle[y0:y1, x0:x1])  # type: ignore[arg-type]

    ends, previous = [], 0.0
    for _, item in cap.audio:
        frame = item.frame
        assert isinstance(frame, rtc.AudioFrame)
        assert (frame.sample_rate, frame.num_channels) == (24000, 1)
        assert item.speech is False and item.generation == 0
        assert not np.frombuffer(frame.data, dtype=np.int16).any(), "idle audio is silence"
        assert item.timestamp == pytest.approx(previous + frame.duration)  # contiguous
        previous = item.timestamp
        ends.append(round(item.timestamp * 1000))
    assert cap.audio[0][1].frame.samples_per_channel == 240  # type: ignore[union-attr]
    # every video frame's period [n/fps, (n+1)/fps) is covered by audio ending on its boundary
    assert {round((n + 1) * 40) for n in range(len(video) - 1)} <= set(ends)


async def test_ready_is_emitted_by_start() -> None:
    avatar = LocalAvatar(width=W, height=H)
    seen: list[str] = []
    avatar.on("ready", lambda: seen.append("ready"))
    await avatar.start()
    assert seen == ["ready"]
    with pytest.raises(ProviderError, match="already"):
        await avatar.start()
    await avatar.aclose()


# -- speech ----------------------------------------------------------------------------------


async def test_speech_is_resampled_played_after_latency_and_moves_the_mouth() -> None:
    cap = await started(fps=25, sample_rate=24000, num_channels=1, latency=0.1)
    await asyncio.sleep(0.3)
    pushed_at, media_at_push = now(), cap.avatar.media_time
    source = tone(0.6, 16000, 2)
    await push_pcm(cap.avatar, source, 16000)
    await cap.avatar.end_turn()
    await asyncio.sleep(1.3)
    await cap.finish()

    speech = cap.speech()
    out = pcm_of(speech)
    assert out.shape[1] == 1
    assert all(f.frame.sample_rate == 24000 for _, f in speech)  # type: ignore[union-attr]
    assert len(out) / 24000 == pytest.approx(0.6, abs=0.011)  # one 10 ms frame of slack
    spectrum = np.abs(np.fft.rfft(out[:, 0] * np.hanning(len(out))))
    assert np.argmax(spectrum) * 24000 / len(out) == pytest.approx(440.0, abs=3.0)
    rms_in = float(np.sqrt(np.mean(source[:, 0].astype(np.float64) ** 2)))
    rms_out = float(np.sqrt(np.mean(out[:, 0].astype(np.float64) ** 2)))
    assert rms_out == pytest.approx(rms_in, rel=0.05)

    first_arrival, first = speech[0]
    first_start = first.timestamp - first.frame.duration  # type: ignore[operator,union-attr]
    assert media_at_push + 0.1 <= first_start + 0.002 <= media_at_push + 0.1 + 0.04 + 0.015
    assert pushed_at + 0.1 <= first_arrival + 0.002 <= pushed_at + 0.1 + 0.04 + 0.03
    # speech frames are contiguous in media time and flagged; everything else is silence
    starts = [f.timestamp - f.frame.duration for _, f in speech]  # type: ignore[operator,union-attr]
    assert np.allclose(np.diff(starts), 0.01)
    assert not pcm_of([x for x in cap.audio if not x[1].speech]).any()

    assert [name for _, name, _ in cap.events] == ["ready", "playback_started", "playback_finished"]
    t_started = cap.named("playback_started")[0][0]
    t_finished, finished = cap.named("playback_finished")[0]
    assert finished == PlaybackFinished(pytest.approx(0.6, abs=0.011), False)  # type: ignore[arg-type]
    assert t_started == pytest.approx(first_arrival, abs=0.02)
    assert t_finished == pytest.approx(first_arrival + 0.6, abs=0.06)

    speech_end = starts[-1] + 0.01
    talking = [
        mouth_std(cap.avatar, f.frame)  # type: ignore[arg-type]
        for _, f in cap.video
        if first_start + 0.1 <= f.timestamp <= speech_end - 0.1  # type: ignore[operator]
    ]
    idle = [
        mouth_std(cap.avatar, f.frame)  # type: ignore[arg-type]
        for _, f in cap.video
        if f.timestamp < first_start or f.timestamp > speech_end + 0.4  # type: ignore[operator]
    ]
    assert len(talking) >= 8 and len(idle) >= 8
    assert len(set(idle)) == 1, "the mouth stays closed while idle"
    assert min(talking) > 1.5 * idle[0], "the mouth is open while the speech is loud"


async def test_input_format_may_change_within_a_turn() -> None:
    cap = await started(fps=25, sample_rate=24000, num_channels=2, latency=0.0)
    await push_pcm(cap.avatar, tone(0.2, 48000, 2), 48000)
    await push_pcm(cap.avatar, tone(0.2, 16000, 1), 16000)
    await push_pcm(cap.avatar, tone(0.1, 24000, 6), 24000)
    await cap.avatar.end_turn()
    await asyncio.sleep(0.8)
    await cap.finish()
    out = pcm_of(cap.speech())
    assert out.shape[1] == 2
    assert np.abs(out[:, 0].astype(int) - out[:, 1]).max() <= 8  # same speech on both channels
    assert len(out) / 24000 == pytest.approx(0.5, abs=0.011)
    finished = cap.named("playback_finished")
    assert len(finished) == 1
    assert finished[0][1].playback_position == pytest.approx(0.5, abs=0.011)  # type: ignore[union-attr]


async def test_interrupt_discards_the_turn_and_bumps_the_generation() -> None:
    cap = await started(fps=25, latency=0.0)
    avatar = cap.avatar
    await push_pcm(avatar, tone(3.0, 24000, 1), 24000)  # no end_turn: the turn is still open
    speaking = asyncio.Event()
    avatar.on("playback_started", speaking.set)
    await asyncio.wait_for(speaking.wait(), 1.0)
    await asyncio.sleep(0.4)
    assert avatar.generation == 0
    media_at_interrupt, interrupted_at = avatar.media_time, now()
    await avatar.interrupt()
    assert avatar.generation == 1
    finished = cap.named("playback_finished")
    assert len(finished) == 1
    event = finished[0][1]
    assert isinstance(event, PlaybackFinished) and event.interrupted
    assert event.playback_position == pytest.approx(0.44, abs=0.08)
    await asyncio.sleep(0.5)

    late = [(t, f) for t, f in cap.speech() if t > interrupted_at]
    assert all(f.generation == 0 for _, f in late), "in-flight frames keep their generation"
    assert all(f.timestamp <= media_at_interrupt + 0.05 for _, f in late)  # type: ignore[operator]
    after = [f for t, f in cap.audio if t > interrupted_at + 0.05]
    assert after and not any(f.speech for f in after)
    assert {f.generation for f in after} == {1}
    played = pcm_of(cap.speech()).shape[0] / 24000
    assert played == pytest.approx(event.playback_position, abs=0.011)

    # the next turn plays normally in the new generation
    await push_pcm(avatar, tone(0.2, 24000, 1), 24000)
    await avatar.end_turn()
    await asyncio.sleep(0.5)
    await cap.finish()
    new = [f for _, f in cap.speech() if f.generation == 1]
    assert pcm_of([(0.0, f) for f in new]).shape[0] / 24000 == pytest.approx(0.2, abs=0.011)
    assert [name for _, name, _ in cap.events] == [
        "ready",
        "playback_started",
        "playback_finished",
        "playback_started",
        "playback_finished",
    ]
    last = cap.named("playback_finished")[-1][1]
    assert last == PlaybackFinished(pytest.approx(0.2, abs=0.011), False)  # type: ignore[arg-type]


async def test_interrupt_when_idle_emits_nothing() -> None:
    cap = await started()
    await cap.avatar.interrupt()
    assert cap.avatar.generation == 1 and cap.named("playback_finished") == []
    await cap.finish()


# -- simulation knobs ------------------------------------------------------------------------


async def test_video_delay_makes_video_arrive_after_its_audio() -> None:
    cap = await started(fps=25, video_delay=0.12)
    assert cap.avatar.video_lag == pytest.approx(0.12)
    await asyncio.sleep(1.0)
    await cap.finish()
    audio_arrival = {
        round((f.timestamp - f.frame.duration) * 1000): t  # type: ignore[operator,union-attr]
        for t, f in cap.audio
    }
    lags = [
        t - audio_arrival[round(f.timestamp * 1000)]  # type: ignore[operator]
        for t, f in cap.video
        if round(f.timestamp * 1000) in audio_arrival  # type: ignore[operator]
    ]
    assert len(lags) >= 15
    assert statistics.median(lags) == pytest.approx(0.12, abs=0.01)
    assert min(lags) > 0.09 and max(lags) < 0.15


async def test_jitter_delays_frames_randomly_but_keeps_their_order() -> None:
    cap = await started(fps=25, jitter=0.06, audio_delay=0.05, rng_seed=7)
    t_start = now()
    await asyncio.sleep(1.0)
    await cap.finish()
    for stream, base in ((cap.video, 0.0), (cap.audio, -0.01)):
        stamps = [f.timestamp for _, f in stream]
        assert stamps == sorted(stamps)
        delays = [t - t_start - f.timestamp - base for t, f in stream]  # type: ignore[operator]
        assert min(delays) > -0.01 and max(delays) < 0.05 + 0.06 + 0.03
        assert max(delays) - min(delays) > 0.025, "jitter spreads the arrivals"
    audio_delays = [t - t_start - f.timestamp + 0.01 for t, f in cap.audio]  # type: ignore[operator]
    assert statistics.median(audio_delays) > 0.05


async def test_clock_drift_runs_the_media_clock_fast() -> None:
    fast = await started(fps=50, clock_drift=0.01)
    exact = await started(fps=50)
    await asyncio.sleep(2.2)
    await fast.finish()
    await exact.finish()

    def slope(cap: Capture) -> float:
        t = np.array([t for t, _ in cap.video[5:]])
        ts = np.array([f.timestamp for _, f in cap.video[5:]])
        return float(np.polyfit(t, ts, 1)[0])

    assert slope(exact) == pytest.approx(1.0, abs=0.003)
    assert slope(fast) - slope(exact) == pytest.approx(0.01, abs=0.003)
    audio_end = fast.audio[-1][1].timestamp
    assert audio_end == pytest.approx(fast.video[-1][1].timestamp + 0.02, abs=0.025)


async def test_without_timestamps_or_generations() -> None:
    cap = await started(timestamps=False, tag_generations=False)
    assert cap.avatar.sync_mode == "arrival"
    await cap.avatar.push_audio(rtc.AudioFrame(tone(0.1, 24000, 1).tobytes(), 24000, 1, 2400))
    await cap.avatar.end_turn()
    await asyncio.sleep(0.4)
    await cap.finish()
    assert len(cap.video) >= 8 and cap.speech()
    for _, item in cap.video + cap.audio:
        assert item.timestamp is None and item.generation is None


async def test_burst_delivers_speech_ahead_of_real_time() -> None:
    cap = await started(fps=25, burst=2.0, latency=0.05)
    await asyncio.sleep(0.2)
    pushed_at = now()
    await push_pcm(cap.avatar, tone(1.5, 24000, 1), 24000, chunk_s=0.1)
    await cap.avatar.end_turn()
    await asyncio.sleep(0.4)
    speech = cap.speech()
    assert pcm_of(speech).shape[0] / 24000 == pytest.approx(1.5, abs=0.011)
    assert speech[-1][0] - pushed_at < 0.25, "the whole turn arrived in a burst"
    assert cap.named("playback_finished")[0][1].interrupted is False  # type: ignore[union-attr]
    await asyncio.sleep(1.6)
    await cap.finish()
    stamps = [f.timestamp for _, f in cap.audio]
    assert np.allclose(np.diff(stamps), 0.01), "one continuous media clock throughout"
    video = [f.timestamp for _, f in cap.video]
    assert np.allclose(np.diff(video), 0.04)
    # after the burst, idle frames wait for the clock: none arrives ahead of its media time
    first_video = cap.video[0][0]
    idle_after = [
        (t, f)
        for t, f in cap.video
        if f.timestamp > speech[-1][1].timestamp + 0.1  # type: ignore[operator]
    ]
    assert idle_after
    assert all(t - first_video >= f.timestamp - 0.01 for t, f in idle_after)  # type: ignore[operator]


async def test_a_consumer_that_stops_reading_loses_the_oldest_frames() -> None:
    avatar = LocalAvatar(width=W, height=H, fps=25, max_queue_s=0.2)
    await avatar.start()
    await asyncio.sleep(0.8)  # nobody reads
    dropped = avatar.dropped_frames
    assert dropped["video"] >= 10 and dropped["audio"] >= 40
    media_now = avatar.media_time
    video: list[OutputFrame] = []
    async for item in avatar.video_frames():
        video.append(item)
        if len(video) == 5:
            break
    assert video[0].timestamp is not None and video[0].timestamp > media_now - 0.3, "the newest"
    await avatar.aclose()


async def test_failure_of_the_output_loop_surfaces(no_leaked_tasks: None) -> None:
    class BrokenFace(FaceRenderer):
        def __init__(self) -> None:
            super().__init__(W, H)
            self.calls = 0

        def render(self, mouth: float = 0.0, eyes_closed: bool = False) -> rtc.VideoFrame:
            self.calls += 1
            if self.calls > 3:
                raise RuntimeError("paint ran out")
            return super().render(mouth, eyes_closed)

    cap = await started(renderer=BrokenFace())
    await asyncio.sleep(0.3)
    reasons = cap.named("disconnected")
    assert len(reasons) == 1 and "paint ran out" in str(reasons[0][1])
    for task in cap.tasks:
        assert task.done()
        with pytest.raises(ProviderError, match="paint ran out"):
            task.result()
    with pytest.raises(ProviderError, match="paint ran out"):
        await cap.avatar.push_audio(rtc.AudioFrame(bytes(480), 24000, 1, 240))
    with pytest.raises(ProviderError, match="paint ran out"):
        await cap.avatar.end_turn()
    await cap.avatar.aclose()


# -- lifecycle and arguments -----------------------------------------------------------------


async def test_aclose_stops_everything_and_ends_the_iterators(no_leaked_tasks: None) -> None:
    avatar = LocalAvatar(width=W, height=H)
    with pytest.raises(ProviderError, match="start"):
        await avatar.push_audio(rtc.AudioFrame(bytes(480), 24000, 1, 240))
    cap = Capture(avatar)
    await avatar.start()
    cap.start_reading()
    await push_pcm(avatar, tone(1.0, 24000, 1), 24000)
    await asyncio.sleep(0.2)
    assert any(t.get_name() == "local-avatar-output" for t in asyncio.all_tasks())
    await avatar.aclose()
    await asyncio.wait_for(asyncio.gather(*cap.tasks), 0.5)  # both iterators ended
    assert not any(t.get_name() == "local-avatar-output" for t in asyncio.all_tasks())
    await avatar.aclose()  # idempotent
    with pytest.raises(ProviderError, match="closed"):
        await avatar.push_audio(rtc.AudioFrame(bytes(480), 24000, 1, 240))
    with pytest.raises(ProviderError, match="closed"):
        await avatar.end_turn()
    with pytest.raises(ProviderError, match="closed"):
        await avatar.start()
    async for _ in avatar.audio_frames():
        raise AssertionError("a closed avatar yields nothing")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": 0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"sample_rate": 100}, "sample_rate"),
        ({"num_channels": 3}, "num_channels"),
        ({"latency": -0.1}, "latency"),
        ({"video_delay": float("inf")}, "video_delay"),
        ({"jitter": -1}, "jitter"),
        ({"clock_drift": 0.7}, "clock_drift"),
        ({"max_queue_s": 0}, "max_queue_s"),
        ({"width": 8}, "frame size"),
        ({"renderer": FaceRenderer(64, 64)}, "renderer draws 64x64"),
    ],
)
def test_bad_arguments_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalAvatar(**options)  # type: ignore[arg-type]


async def test_push_audio_rejects_what_is_not_an_audio_frame() -> None:
    avatar = LocalAvatar(width=W, height=H)
    await avatar.start()
    with pytest.raises(TypeError, match=r"rtc\.AudioFrame"):
        await avatar.push_audio(b"\x00\x00")  # type: ignore[arg-type]
    await avatar.aclose()


async def test_720p_output() -> None:
    avatar = LocalAvatar(width=1280, height=720, fps=30)
    await avatar.start()
    frames = avatar.video_frames()
    first = await anext(frames)
    second = await anext(frames)
    assert (first.frame.width, first.frame.height) == (1280, 720)  # type: ignore[union-attr]
    assert second.timestamp == pytest.approx(1 / 30)
    audio = await anext(avatar.audio_frames())
    assert audio.frame.samples_per_channel == 266  # type: ignore[union-attr]  # 800 / 3 parts
    await avatar.aclose()


def test_a_turn_opens_only_once_it_fills_its_first_period() -> None:
    """The queue is a pure core: a turn whose second frame becomes playable a moment after the
    period starts waits for it, instead of opening with 20 ms of speech and 20 ms of gap."""
    queue = _SpeechQueue(24000, 1)
    step = 480  # 20 ms at 24 kHz
    pcm = np.full((step, 1), 1000, dtype=np.int16)
    queue.push(rtc.AudioFrame(pcm.tobytes(), 24000, 1, step), available_at=1.0)
    queue.push(rtc.AudioFrame(pcm.tobytes(), 24000, 1, step), available_at=1.001)
    out, speech, events = queue.take(2 * step, now=1.0005)  # only the first 20 ms is playable
    assert speech == 0 and not out.any() and events == []
    out, speech, events = queue.take(2 * step, now=1.04)
    assert speech == 2 * step - 1 or speech == 2 * step  # the resampler may hold a sample back
    assert [name for name, _ in events] == ["playback_started"]
