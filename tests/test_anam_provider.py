"""AnamAvatar against a fake Anam service behind the real ``anam`` SDK objects.

``anam.AnamClient`` is replaced by :class:`fakes.fake_anam.FakeAnamService.client_factory`, so the
adapter runs exactly as in production while the SDK's own ``Session`` and
``AgentAudioInputStream`` encode, number and send what the fake server checks. Media are real
PyAV frames, paced in real time with jitter and a video lag.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import anam
import av
import numpy as np
import pytest
from fakes.fake_anam import FakeAnamService, FakeTiming
from livekit import rtc

from livekit_avsync.measure.markers import read_marker
from livekit_avsync.providers.anam import SPEECH_SAMPLE_RATE, AnamAvatar
from livekit_avsync.providers.base import (
    OutputFrame,
    ProviderDisconnected,
    ProviderError,
    ProviderTimeout,
)

KEY = "anam-secret-key-5f2c9e81d4a7"
AVATAR_ID = "avatar-0001"
CHUNK_BYTES = SPEECH_SAMPLE_RATE * 40 // 1000 * 2  # default 40 ms chunks of int16 mono
ENV_VARS = ("ANAM_API_KEY", "ANAM_AVATAR_ID", "ANAM_API_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def anam_fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    """``make(service_kwargs..., provider=dict)`` -> (service, provider); closes providers."""
    providers: list[AnamAvatar] = []

    def make(
        *, provider: dict[str, Any] | None = None, **service_options: Any
    ) -> tuple[FakeAnamService, AnamAvatar]:
        service = FakeAnamService(KEY, **service_options)
        monkeypatch.setattr(anam, "AnamClient", service.client_factory)
        options = {"api_key": KEY, "avatar_id": AVATAR_ID, "connect_timeout": 3.0}
        options.update(provider or {})
        avatar = AnamAvatar(**options)
        providers.append(avatar)
        return service, avatar

    yield make
    for avatar in providers:
        await asyncio.wait_for(avatar.aclose(), 5)


# -- helpers -----------------------------------------------------------------------------------


def tone(
    freq: float,
    seconds: float,
    *,
    rate: int = 48000,
    channels: int = 2,
    level: float = 0.5,
) -> np.ndarray:
    """int16 samples (n, channels) of a sine; silence when ``level`` is 0."""
    t = np.arange(round(seconds * rate)) / rate
    mono = np.round(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def frames_of(samples: np.ndarray, rate: int, frame_ms: int = 10) -> list[rtc.AudioFrame]:
    step = rate * frame_ms // 1000
    channels = samples.shape[1]
    return [
        rtc.AudioFrame(samples[i : i + step].tobytes(), rate, channels, len(samples[i : i + step]))
        for i in range(0, samples.shape[0], step)
    ]


async def push_all(provider: AnamAvatar, samples: np.ndarray, rate: int) -> None:
    for frame in frames_of(samples, rate):
        await provider.push_audio(frame)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    mono = samples.astype(np.float64).reshape(samples.shape[0], -1).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.fft.rfftfreq(mono.size, 1 / rate)[int(np.argmax(spectrum))])


class Reader:
    """Reads one output iterator in the background, noting each frame's arrival time."""

    def __init__(self, frames: AsyncIterator[OutputFrame]) -> None:
        self.items: list[tuple[float, OutputFrame]] = []
        self._task = asyncio.create_task(self._run(frames))

    async def _run(self, frames: AsyncIterator[OutputFrame]) -> None:
        loop = asyncio.get_running_loop()
        async for item in frames:
            self.items.append((loop.time(), item))

    async def ended(self, timeout: float = 2.0) -> None:
        """Waits for the iterator to finish; fails the test if it hangs."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def loudest_run(items: list[tuple[float, OutputFrame]]) -> np.ndarray:
    """Samples (n, 2) of the longest run of consecutive loud av.AudioFrame items."""
    blocks = [i.frame.to_ndarray().reshape(-1, 2) for _, i in items]  # type: ignore[union-attr]
    best: list[np.ndarray] = []
    run: list[np.ndarray] = []
    for block in blocks:
        run = [*run, block] if np.abs(block).max() > 3000 else []
        best = run if len(run) > len(best) else best
    return np.concatenate(best) if best else np.zeros((0, 2), np.int16)


# -- configuration -----------------------------------------------------------------------------


def test_missing_settings_name_the_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError, match="ANAM_API_KEY"):
        AnamAvatar(avatar_id=AVATAR_ID)
    with pytest.raises(ProviderError, match="ANAM_AVATAR_ID"):
        AnamAvatar(api_key=KEY)
    monkeypatch.setenv("ANAM_API_KEY", KEY)
    monkeypatch.setenv("ANAM_AVATAR_ID", AVATAR_ID)
    AnamAvatar()  # both from the environment


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"persona_options": {"voice": "emma"}}, "unknown persona_options 'voice'"),
        ({"persona_options": {"avatar_id": "x"}}, "cannot set 'avatar_id'"),
        ({"persona_options": {"enable_audio_passthrough": False}}, "cannot set"),
        ({"session_options": {"video_quality": "ultra"}}, "invalid session_options"),
        ({"session_options": {"video_width": 640}}, "provided together"),
        ({"chunk_ms": 5}, "chunk_ms"),
        ({"connect_timeout": 0}, "connect_timeout must be positive"),
        ({"video_lag": -0.1}, "video_lag"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        AnamAvatar(api_key=KEY, avatar_id=AVATAR_ID, **options)


def test_missing_sdk_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anam", None)  # import anam -> ImportError
    with pytest.raises(ProviderError, match=r"pip install 'livekit-avsync\[anam\]'"):
        AnamAvatar(api_key=KEY, avatar_id=AVATAR_ID)


# -- session -----------------------------------------------------------------------------------


async def test_connects_with_a_passthrough_persona_and_closes_cleanly(
    anam_fake: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, no_leaked_tasks: None
) -> None:
    monkeypatch.setenv("ANAM_API_URL", "https://anam.example.test/")
    service, provider = anam_fake(
        provider={
            "persona_options": {"avatar_model": "cara-3", "max_session_length_seconds": 600},
            "session_options": {"enable_session_replay": False, "video_quality": "auto"},
        }
    )
    ready: list[bool] = []
    provider.on("ready", lambda: ready.append(True))
    await asyncio.wait_for(provider.start(), 5)

    request = service.requests[0]
    assert request.key_ok
    persona = request.persona_config
    assert persona is not None
    assert (persona.avatar_id, persona.enable_audio_passthrough) == (AVATAR_ID, True)
    assert (persona.avatar_model, persona.max_session_length_seconds) == ("cara-3", 600)
    assert request.session_options.enable_session_replay is False
    assert request.session_options.video_quality == "auto"
    assert request.client_options.api_base_url == "https://anam.example.test"
    assert ready == [True]
    assert provider.session_id == "fake-session-0"
    assert provider.sync_mode == "arrival"

    connection = service.connection
    await provider.aclose()
    await provider.aclose()  # idempotent
    assert connection is not None and connection.closed
    assert not service.clients[0].is_streaming
    assert await asyncio.wait_for(_all(provider.audio_frames()), 1) == []
    with pytest.raises(ProviderDisconnected):
        await provider.push_audio(rtc.AudioFrame(bytes(960), 48000, 1, 480))
    with pytest.raises(ProviderError, match="only be called once"):
        await provider.start()


async def test_session_ready_may_come_before_connect_returns(
    anam_fake: Callable[..., Any],
) -> None:
    _, provider = anam_fake(timing=FakeTiming(ready_delay=0.0, connect_delay=0.1))
    await asyncio.wait_for(provider.start(), 5)


async def test_speech_reaches_anam_as_24k_mono_chunks_and_comes_back(
    anam_fake: Callable[..., Any],
) -> None:
    service, provider = anam_fake()
    await provider.start()
    audio = Reader(provider.audio_frames())
    video = Reader(provider.video_frames())

    # turn 1: 1 kHz at 48 kHz stereo, left louder than right (remixed to mono, resampled)
    stereo = tone(1000, 1.0, rate=48000)
    stereo[:, 1] //= 2
    await push_all(provider, stereo, 48000)
    await provider.end_turn()
    # turn 2: already 24 kHz mono, so it must arrive bit-exact
    direct = tone(440, 0.5, rate=SPEECH_SAMPLE_RATE, channels=1, level=0.3)
    await push_all(provider, direct, SPEECH_SAMPLE_RATE)
    await provider.end_turn()
    await asyncio.sleep(1.3)  # the avatar speaks the first turn in real time
    await audio.stop()
    await video.stop()

    fake = service.avatar
    assert fake.violations == []
    assert fake.event_kinds().count("end") == 2
    first, second = fake.sequences
    for seq in (first, second):
        assert (seq.encoding, seq.sample_rate, seq.channels) == ("pcm_s16le", 24000, 1)
        assert seq.ended and not seq.interrupted
        assert all(size == CHUNK_BYTES for size in seq.chunk_sizes[:-1])
        assert 0 < seq.chunk_sizes[-1] <= CHUNK_BYTES
    # all of turn 1 (resampler tail included) went out, at 1 kHz, remixed to 3/4 level
    assert abs(first.duration - 1.0) < 0.002
    assert abs(dominant_hz(first.samples, 24000) - 1000) < 2
    rms = float(np.sqrt(np.mean(first.samples[2400:-2400].astype(np.float64) ** 2)))
    assert abs(rms - 0.75 * 0.5 * 32767 / np.sqrt(2)) < 200
    assert np.array_equal(second.samples[:, 0], direct[:, 0])

    # the avatar's audio: 48 kHz stereo PyAV frames carrying the 1 kHz speech back
    assert len(audio.items) > 40
    for _, item in audio.items:
        assert isinstance(item.frame, av.AudioFrame)
        assert (item.frame.sample_rate, item.frame.layout.nb_channels) == (48000, 2)
        assert (item.timestamp, item.generation, item.speech) == (None, None, None)
    speech = loudest_run(audio.items)
    assert speech.shape[0] > 0.9 * 48000
    assert abs(dominant_hz(speech, 48000) - 1000) < 2
    # the video: PyAV yuv420p frames, passed through unconverted, speaking ones marked by turn
    assert len(video.items) > 15
    assert all(isinstance(i.frame, av.VideoFrame) for _, i in video.items)
    assert {i.frame.format.name for _, i in video.items} == {"yuv420p"}  # type: ignore[union-attr]
    turns = {code.turn for _, i in video.items if (code := read_marker(i.frame)) is not None}
    assert first.turn in turns and turns <= {first.turn, second.turn}


async def test_audio_and_video_are_two_independent_streams(
    anam_fake: Callable[..., Any],
) -> None:
    service, provider = anam_fake()
    await provider.start()
    audio = Reader(provider.audio_frames())
    video = Reader(provider.video_frames())
    await asyncio.sleep(1.0)
    await audio.stop()
    await video.stop()

    assert 35 <= len(audio.items) <= 65  # 20 ms frames in real time
    assert 15 <= len(video.items) <= 35  # 25 fps
    # each keeps the pts of its own WebRTC clock; video arrives ~100 ms after its audio
    audio_pts = [float(i.frame.pts * i.frame.time_base) for _, i in audio.items]  # type: ignore[operator, union-attr]
    assert audio_pts == sorted(audio_pts)
    audio_arrival = {round(p, 3): t for p, (t, _) in zip(audio_pts, audio.items, strict=True)}
    lags = []
    for arrival, item in video.items:
        pts = round(float(item.frame.pts * item.frame.time_base), 3)  # type: ignore[operator, union-attr]
        if pts in audio_arrival:
            lags.append(arrival - audio_arrival[pts])
    assert len(lags) > 10
    assert 0.06 < float(np.median(lags)) < 0.16
    assert provider.dropped_frames == {"audio": 0, "video": 0}
    assert service.avatar.violations == []


async def test_unread_output_is_bounded(anam_fake: Callable[..., Any]) -> None:
    _, provider = anam_fake(timing=FakeTiming(fps=200.0))
    await provider.start()
    await asyncio.sleep(0.5)  # ~100 video frames produced, nobody reads
    assert provider.dropped_frames["video"] > 0
    assert provider.dropped_frames["audio"] == 0


# -- interrupt ---------------------------------------------------------------------------------


async def test_interrupt_tells_anam_and_drops_the_resampler_tail(
    anam_fake: Callable[..., Any],
) -> None:
    service, provider = anam_fake()
    await provider.start()
    await push_all(provider, tone(1000, 0.5, rate=48000), 48000)  # 0.5 s, no end_turn
    await provider.interrupt()
    assert provider.generation == 1
    # the next turn is digital silence: a sample of the old (loud) turn in it would show
    await push_all(provider, tone(0, 0.3, rate=48000, level=0.0), 48000)
    await provider.end_turn()

    fake = service.avatar
    assert fake.violations == []
    assert [m["message_type"] for m in fake.data_messages] == ["interrupt"]
    kinds = fake.event_kinds()
    cut = kinds.index("interrupt")
    assert set(kinds[:cut]) == {"chunk"}
    assert kinds[cut + 1] == "end"  # the interrupted sequence is closed first...
    assert set(kinds[cut + 2 : -1]) == {"chunk"} and kinds[-1] == "end"  # ...then turn 2
    old, new = fake.sequences
    assert old.interrupted and old.ended and old.late == []
    # nothing of the old turn was flushed: only whole chunks went out, less than was pushed
    assert set(old.chunk_sizes) == {CHUNK_BYTES}
    assert old.duration < 0.5
    assert not new.interrupted and new.ended
    assert np.abs(new.samples).max() <= 1  # the resampler's +-1 LSB dither, nothing else
    assert abs(new.duration - 0.3) < 0.002


async def test_no_audio_of_the_old_turn_is_sent_after_interrupt(
    anam_fake: Callable[..., Any],
) -> None:
    service, provider = anam_fake(timing=FakeTiming(send_delay=0.02))  # a slow WebSocket
    await provider.start()
    long_turn = frames_of(tone(1000, 1.0, rate=48000), 48000, frame_ms=1000)[0]
    sending = asyncio.create_task(provider.push_audio(long_turn))  # 25 chunks, ~0.5 s
    await asyncio.sleep(0.15)
    queued = asyncio.create_task(provider.push_audio(long_turn))  # waits behind it
    await asyncio.sleep(0)
    await provider.interrupt()
    await asyncio.wait_for(asyncio.gather(sending, queued), 2)

    fake = service.avatar
    kinds = fake.event_kinds()
    assert kinds[kinds.index("interrupt") :] == ["interrupt", "end"]
    assert 3 <= kinds.count("chunk") < 15
    assert fake.late_chunks == 0 and fake.violations == []


async def test_frames_in_flight_still_arrive_after_interrupt(
    anam_fake: Callable[..., Any],
) -> None:
    """What the synchronizer's stale-tail gate is for: the SDK keeps delivering the old turn."""
    service, provider = anam_fake()
    await provider.start()
    audio = Reader(provider.audio_frames())
    await push_all(provider, tone(1000, 1.0, rate=48000), 48000)
    await provider.end_turn()
    await asyncio.sleep(0.45)  # speaking now
    await provider.interrupt()
    interrupted_at = asyncio.get_running_loop().time()
    await asyncio.sleep(0.6)
    await audio.stop()

    def loud(item: OutputFrame) -> bool:
        return bool(np.abs(item.frame.to_ndarray()).max() > 3000)  # type: ignore[union-attr]

    tail = [t - interrupted_at for t, item in audio.items if t > interrupted_at and loud(item)]
    assert tail, "the fake must deliver an in-flight tail"
    assert 0.1 < max(tail) < 0.4  # ~150 ms in flight + network latency, then silence
    assert service.avatar.interrupts


async def test_interrupt_never_fails_the_session(anam_fake: Callable[..., Any]) -> None:
    """A data channel that is not open in time: the interrupt is logged, bounded, not raised."""
    service, provider = anam_fake(
        timing=FakeTiming(data_channel_delay=10.0), provider={"request_timeout": 0.3}
    )
    await provider.start()
    await push_all(provider, tone(1000, 0.2, rate=48000), 48000)
    await asyncio.wait_for(provider.interrupt(), 1.0)
    assert service.avatar.data_messages == []
    # the next turn still goes out, after the interrupted sequence was ended
    await push_all(provider, tone(500, 0.2, rate=48000), 48000)
    await provider.end_turn()
    kinds = service.avatar.event_kinds()
    assert kinds.count("end") == 2 and service.avatar.violations == []


# -- failures ----------------------------------------------------------------------------------


async def test_connect_timeout_is_clear_and_releases_the_connection(
    anam_fake: Callable[..., Any], no_leaked_tasks: None
) -> None:
    service, provider = anam_fake(hang_connect=True, provider={"connect_timeout": 0.3})
    with pytest.raises(ProviderTimeout, match=r"connecting to Anam took more than 0\.3 s"):
        await asyncio.wait_for(provider.start(), 3)
    connection = service.connection
    assert connection is not None and connection.closed  # the SDK would have leaked it
    assert await asyncio.wait_for(_all(provider.video_frames()), 1) == []


async def test_session_that_never_gets_ready_times_out(anam_fake: Callable[..., Any]) -> None:
    _, provider = anam_fake(timing=FakeTiming(ready_delay=None), provider={"ready_timeout": 0.4})
    with pytest.raises(ProviderTimeout, match=r"session to become ready took more than 0\.4 s"):
        await asyncio.wait_for(provider.start(), 3)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("reject", "Anam rejected the API key \\(check ANAM_API_KEY\\): Invalid API key"),
        ("reject_echo", r"Invalid API key \*\*\*"),
        ("busy", "Anam could not start the session: Service is busy"),
    ],
)
async def test_refused_sessions_are_clear_errors_without_the_key(
    anam_fake: Callable[..., Any], auth: str, message: str
) -> None:
    _, provider = anam_fake(auth=auth)
    with pytest.raises(ProviderError, match=message) as caught:
        await asyncio.wait_for(provider.start(), 3)
    assert not isinstance(caught.value, ProviderTimeout)
    assert KEY not in str(caught.value) and caught.value.__cause__ is None
    assert await asyncio.wait_for(_all(provider.audio_frames()), 1) == []


async def test_closing_during_start_ends_it(anam_fake: Callable[..., Any]) -> None:
    _, provider = anam_fake(hang_connect=True)
    starting = asyncio.create_task(provider.start())
    await asyncio.sleep(0.1)
    await provider.aclose()
    with pytest.raises(ProviderDisconnected, match="closed while connecting"):
        await asyncio.wait_for(starting, 1)


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        ("server", "the Anam connection closed \\(server_closed: time limit\\)"),
        # the SDK reports the failure from a task of its own: either may be noticed first
        (
            "webrtc",
            "the Anam connection closed \\(webrtc_failure\\)|Anam's (audio|video) stream ended",
        ),
        ("tracks", "Anam's (audio|video) stream ended"),
    ],
)
async def test_a_lost_connection_ends_the_provider_cleanly(
    anam_fake: Callable[..., Any], end: str, reason: str
) -> None:
    service, provider = anam_fake()
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    audio = Reader(provider.audio_frames())
    video = Reader(provider.video_frames())
    await push_all(provider, tone(1000, 0.2, rate=48000), 48000)
    await asyncio.sleep(0.2)
    fake = service.avatar
    if end == "server":
        await fake.end_session("time limit")
    elif end == "webrtc":
        fake.fail_webrtc()
    else:
        fake.end_tracks()

    await audio.ended()
    await video.ended()
    assert len(lost) == 1
    assert re.fullmatch(reason, lost[0]), lost[0]
    with pytest.raises(ProviderDisconnected, match=lost[0][:20]):
        await provider.push_audio(frames_of(tone(1000, 0.01), 48000)[0])
    with pytest.raises(ProviderDisconnected):
        await provider.end_turn()
    await asyncio.wait_for(provider.interrupt(), 1)  # a no-op now, never a hang
    await asyncio.wait_for(provider.aclose(), 2)
    assert fake.connection is not None and fake.connection.closed


async def test_server_time_limit_mid_session(anam_fake: Callable[..., Any]) -> None:
    _, provider = anam_fake(end_after=0.3)
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    await asyncio.wait_for(_all(provider.video_frames()), 2)
    assert lost == ["the Anam connection closed (server_closed: session time limit reached)"]


async def test_media_tracks_that_appear_late_are_waited_for(
    anam_fake: Callable[..., Any],
) -> None:
    _, provider = anam_fake(timing=FakeTiming(tracks_delay=0.4))
    await provider.start()
    audio = Reader(provider.audio_frames())
    await asyncio.sleep(0.8)
    await audio.stop()
    assert len(audio.items) > 5


async def test_media_tracks_that_never_appear_end_the_session(
    anam_fake: Callable[..., Any],
) -> None:
    _, provider = anam_fake(
        timing=FakeTiming(tracks_delay=30.0), provider={"first_frame_timeout": 0.4}
    )
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    assert await asyncio.wait_for(_all(provider.audio_frames()), 2) == []
    assert lost and "no video frame within 0.4 s" in lost[0]


async def test_speech_needs_a_started_provider_and_real_frames(
    anam_fake: Callable[..., Any],
) -> None:
    _, provider = anam_fake()
    with pytest.raises(ProviderError, match="call start"):
        await provider.push_audio(rtc.AudioFrame(bytes(960), 48000, 1, 480))
    await provider.interrupt()  # before start: only the generation moves
    assert provider.generation == 1
    await provider.start()
    with pytest.raises(TypeError, match=r"rtc\.AudioFrame"):
        await provider.push_audio(b"\x00" * 960)  # type: ignore[arg-type]


# -- secrets -----------------------------------------------------------------------------------


async def test_the_api_key_never_reaches_the_logs(anam_fake: Callable[..., Any]) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    touched = [root, *(logging.getLogger(n) for n in ("anam", "livekit_avsync", "livekit"))]
    levels = [lg.level for lg in touched]
    root.addHandler(handler)
    for lg in touched:
        lg.setLevel(logging.DEBUG)
    try:
        # a refusal whose message quotes the key, a timeout, then a full session that is lost
        _, refused = anam_fake(auth="reject_echo")
        with pytest.raises(ProviderError):
            await refused.start()
        _, hanging = anam_fake(hang_connect=True, provider={"connect_timeout": 0.2})
        with pytest.raises(ProviderTimeout):
            await hanging.start()
        service, provider = anam_fake(timing=FakeTiming(data_channel_delay=0.3))
        await provider.start()
        await push_all(provider, tone(1000, 0.3, rate=48000), 48000)
        await provider.interrupt()
        await push_all(provider, tone(1000, 0.1, rate=48000), 48000)
        await provider.end_turn()
        await service.avatar.end_session(f"bye {KEY}")  # even a server reason quoting it
        await provider.aclose()
    finally:
        root.removeHandler(handler)
        for lg, level in zip(touched, levels, strict=True):
            lg.setLevel(level)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    text = "\n".join(formatter.format(r) + repr(r.__dict__) for r in records)
    assert any(r.name == "livekit_avsync.providers.anam" for r in records)
    assert "Anam session lost" in text  # the loss was logged...
    assert KEY not in text  # ...and nothing anywhere carried the key


async def _all(frames: AsyncIterator[OutputFrame]) -> list[OutputFrame]:
    return [item async for item in frames]
