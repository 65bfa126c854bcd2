"""LemonSliceAvatar end to end against a fake LemonSlice (real aiohttp) and a fake LiveKit server.

The side room, tokens, byte streams and RPCs go through ``fakes.fake_livekit`` (grants enforced);
the avatar's media are real ``rtc`` tracks read back with ``rtc.AudioStream``/``rtc.VideoStream``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import numpy as np
import pytest
from fakes.fake_lemonslice import FakeAvatarWorker, FakeLemonSliceService
from fakes.fake_livekit import (
    FakeByteStreamReader,
    FakeByteStreamWriter,
    FakeLiveKitServer,
    FakeLocalParticipant,
    FakeRemoteParticipant,
    FakeRoom,
    FakeTrackPublication,
)
from livekit import api, rtc

from livekit_avsync.providers.base import (
    OutputFrame,
    PlaybackFinished,
    ProviderConfigError,
    ProviderDisconnected,
    ProviderError,
    ProviderTimeout,
)
from livekit_avsync.providers.lemonslice import LemonSliceAvatar
from livekit_avsync.providers.lemonslice_api import LemonSliceHTTPError

LK_URL = "wss://fake-livekit.test"
LK_KEY = "APIfakeKey"
LK_SECRET = "fake-livekit-secret-9b2e4c7d0a1f"
LS_KEY = "ls-fake-key-77c3e1"
ENV_VARS = (
    "LEMONSLICE_API_KEY",
    "LEMONSLICE_AGENT_ID",
    "LEMONSLICE_AGENT_IMAGE_URL",
    "LEMONSLICE_API_URL",
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
)


@dataclass
class Harness:
    server: FakeLiveKitServer
    service: FakeLemonSliceService
    agent_room: FakeRoom
    workers: list[FakeAvatarWorker] = field(default_factory=list)
    avatar_joins: bool = True
    providers: list[LemonSliceAvatar] = field(default_factory=list)

    @property
    def worker(self) -> FakeAvatarWorker:
        return self.workers[0]

    def provider(self, **overrides: Any) -> LemonSliceAvatar:
        options: dict[str, Any] = {
            "api_key": LS_KEY,
            "agent_id": "agent_test",
            "api_url": self.service.url,
            "livekit_url": LK_URL,
            "livekit_api_key": LK_KEY,
            "livekit_api_secret": LK_SECRET,
            "room_factory": self.server.room_factory,
            "connect_timeout": 2.0,
            "join_timeout": 5.0,
            "request_timeout": 2.0,
            "rpc_timeout": 0.5,
        }
        options.update(overrides)
        provider = LemonSliceAvatar(**options)
        self.providers.append(provider)
        return provider

    async def started(self, **overrides: Any) -> LemonSliceAvatar:
        provider = self.provider(**overrides)
        await provider.start(room=self.agent_room)  # type: ignore[arg-type]
        return provider


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    server = FakeLiveKitServer(LK_URL, LK_KEY, LK_SECRET)
    tasks: list[asyncio.Task[None]] = []

    def on_session(session_id: str, url: str, token: str) -> None:
        if h.avatar_joins:
            worker = FakeAvatarWorker(server, url, token)
            h.workers.append(worker)
            tasks.append(asyncio.create_task(worker.run()))

    service = FakeLemonSliceService(LS_KEY, on_session=on_session)
    await service.start()
    agent_room = FakeRoom(server)
    await agent_room.connect(LK_URL, server.mint("agent", "support-call-42"))
    h = Harness(server, service, agent_room)
    yield h
    for provider in h.providers:
        await provider.aclose()
    await asyncio.gather(*tasks, return_exceptions=True)
    for worker in h.workers:
        await worker.stop_media()
    await service.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll a condition that fakes update from their own tasks (no event to await there)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def tone(freq: float, rate: int, seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def frames_of(samples: np.ndarray, rate: int, ms: int = 10) -> list[rtc.AudioFrame]:
    """Interleaved int16 frames of ``ms`` from a (n,) or (n, channels) float array."""
    samples = samples.reshape(len(samples), -1)
    step = rate * ms // 1000
    pcm = np.round(samples).astype(np.int16)
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), rate, pcm.shape[1], len(pcm[i : i + step]))
        for i in range(0, len(pcm), step)
    ]


def amplitude_at(pcm: np.ndarray, rate: int, freq: float) -> float:
    """Peak amplitude of the ``freq`` component (Hann-windowed FFT, coherent gain corrected)."""
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm * window)) * 2 / window.sum()
    bin_ = round(freq * len(pcm) / rate)
    return float(spectrum[bin_ - 2 : bin_ + 3].max())


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


def side_joins(h: Harness, provider: LemonSliceAvatar) -> dict[str, Any]:
    return {j.identity: j for j in h.server.joins if j.room == provider.side_room_name}


# -- the stand-in must not drift from the real SDK --------------------------------------------

STAND_INS = [
    (FakeRoom, rtc.Room),
    (FakeLocalParticipant, rtc.LocalParticipant),
    (FakeRemoteParticipant, rtc.RemoteParticipant),
    (FakeTrackPublication, rtc.RemoteTrackPublication),
    (FakeByteStreamWriter, rtc.ByteStreamWriter),
    (FakeByteStreamReader, rtc.ByteStreamReader),
]


@pytest.mark.parametrize(("fake", "real"), STAND_INS, ids=lambda c: c.__name__)
def test_stand_in_matches_real_rtc_api(fake: type, real: type) -> None:
    names = [n for n in vars(fake) if not n.startswith("_") or n in ("__aiter__", "__anext__")]
    assert names, fake
    for name in names:
        ours = inspect.getattr_static(fake, name)
        theirs = inspect.getattr_static(real, name, None)
        assert theirs is not None, f"{real.__name__} has no {name}"
        if isinstance(ours, property):
            assert isinstance(theirs, property), f"{real.__name__}.{name} is not a property"
            continue
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
        ours_p = list(inspect.signature(ours).parameters.values())[1:]
        theirs_p = list(inspect.signature(theirs).parameters.values())[1:]
        assert [(p.name, p.kind) for p in ours_p] == [(p.name, p.kind) for p in theirs_p], name
        has_default = [p.default is not p.empty for p in ours_p]
        assert has_default == [p.default is not p.empty for p in theirs_p], name


# -- configuration ------------------------------------------------------------------------------


def test_missing_settings_name_their_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderError, match="LEMONSLICE_API_KEY"):
        LemonSliceAvatar()
    monkeypatch.setenv("LEMONSLICE_API_KEY", LS_KEY)
    with pytest.raises(ProviderError, match="LEMONSLICE_AGENT_ID or LEMONSLICE_AGENT_IMAGE_URL"):
        LemonSliceAvatar()
    with pytest.raises(ProviderError, match="only one of agent_id or agent_image_url"):
        LemonSliceAvatar(agent_id="a", agent_image_url="https://x/y.png")
    monkeypatch.setenv("LEMONSLICE_AGENT_ID", "a")
    monkeypatch.setenv("LEMONSLICE_AGENT_IMAGE_URL", "https://x/y.png")
    with pytest.raises(ProviderError, match="set only one"):
        LemonSliceAvatar()
    monkeypatch.delenv("LEMONSLICE_AGENT_IMAGE_URL")
    with pytest.raises(ProviderError, match="LIVEKIT_URL"):
        LemonSliceAvatar()
    monkeypatch.setenv("LIVEKIT_URL", LK_URL)
    with pytest.raises(ProviderError, match="LIVEKIT_API_KEY"):
        LemonSliceAvatar()
    monkeypatch.setenv("LIVEKIT_API_KEY", LK_KEY)
    with pytest.raises(ProviderError, match="LIVEKIT_API_SECRET"):
        LemonSliceAvatar()
    monkeypatch.setenv("LIVEKIT_API_SECRET", LK_SECRET)
    assert LemonSliceAvatar().label == "lemonslice"
    with pytest.raises(ProviderError, match="join_timeout must be positive"):
        LemonSliceAvatar(join_timeout=0)


async def test_env_configuration_reaches_the_service(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "LEMONSLICE_API_KEY": LS_KEY,
        "LEMONSLICE_AGENT_IMAGE_URL": "https://img.example/face.png",
        "LEMONSLICE_API_URL": harness.service.url,
        "LIVEKIT_URL": LK_URL,
        "LIVEKIT_API_KEY": LK_KEY,
        "LIVEKIT_API_SECRET": LK_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    provider = LemonSliceAvatar(room_factory=harness.server.room_factory, join_timeout=5)
    harness.providers.append(provider)
    await provider.start()
    body = harness.service.requests[0].body
    assert body["agent_image_url"] == "https://img.example/face.png"
    assert provider.side_room_name is not None
    assert provider.side_room_name.startswith("agent-lemonslice-")


# -- session setup ------------------------------------------------------------------------------


async def test_start_opens_private_side_room_with_least_privilege_tokens(
    harness: Harness,
) -> None:
    ready: list[bool] = []
    provider = harness.provider(agent_prompt="friendly", idle_timeout=45)
    provider.on("ready", lambda: ready.append(True))
    await provider.start(room=harness.agent_room)  # type: ignore[arg-type]
    other = await harness.started()

    assert ready == [True]
    side = provider.side_room_name
    assert side is not None and side.startswith("support-call-42-lemonslice-")
    assert other.side_room_name != side
    assert harness.server.members("support-call-42") == ["agent"]  # the avatar stays out
    joins = side_joins(harness, provider)
    identity = provider.avatar_identity
    assert identity.startswith("lemonslice-avatar-") and identity != other.avatar_identity
    assert set(joins) == {"avsync-relay", identity}

    relay = joins["avsync-relay"].claims
    assert relay.kind == "agent"
    assert relay.video.room == side and relay.video.room_join
    assert not relay.video.can_publish
    assert relay.video.can_publish_data and relay.video.can_subscribe
    avatar = joins[identity].claims
    assert avatar.video.room == side and avatar.video.room_join
    assert avatar.video.can_publish and avatar.video.can_publish_data
    assert avatar.attributes == {"lk.publish_on_behalf": "avsync-relay"}
    for claims in (relay, avatar):
        grants = claims.video
        assert not any(
            (grants.room_admin, grants.room_create, grants.room_list, grants.room_record)
        )
        assert not grants.can_update_own_metadata and not grants.agent
        # the side room, created by whichever joins first, dispatches no worker into itself
        assert claims.room_config is not None
        dispatch = [agent.agent_name for agent in claims.room_config.agents]
        assert dispatch == ["livekit-avsync-side-room-no-agent"]
    for join in joins.values():
        raw = jwt.decode(join.token, options={"verify_signature": False})
        assert raw["exp"] - raw["nbf"] <= 10 * 60 + 5  # short-lived

    (request, _) = harness.service.requests
    body = request.body
    assert body["transport_type"] == "livekit"
    assert body["properties"]["livekit_url"] == LK_URL
    assert body["properties"]["livekit_token"] == joins[identity].token
    assert body["audio_sample_rate"] == 24000  # declared, and streamed at (below)
    assert body["agent_id"] == "agent_test"
    assert body["agent_prompt"] == "friendly" and body["idle_timeout"] == 45
    assert provider.session_id is not None and provider.sync_mode == "arrival"


async def test_relay_token_cannot_publish_media(harness: Harness) -> None:
    provider = await harness.started()
    relay_token = side_joins(harness, provider)["avsync-relay"].token
    await harness.server.kick(provider.side_room_name or "", "avsync-relay")
    room = FakeRoom(harness.server)
    await room.connect(LK_URL, relay_token)
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("x", source)
    with pytest.raises(PermissionError, match="can_publish"):
        await room.local_participant.publish_track(track)
    await room.disconnect()
    await source.aclose()


@pytest.mark.usefixtures("no_leaked_tasks")
async def test_join_timeout_raises_and_cleans_up(harness: Harness) -> None:
    harness.avatar_joins = False
    provider = harness.provider(join_timeout=0.3)
    with pytest.raises(ProviderTimeout, match="did not publish audio and video"):
        await provider.start(room=harness.agent_room)  # type: ignore[arg-type]
    assert harness.server.members(provider.side_room_name or "") == []
    assert harness.service.terminated == [provider.session_id]
    with pytest.raises(ProviderDisconnected):
        await provider.push_audio(frames_of(tone(440, 16000, 0.01, 1000), 16000)[0])


async def test_rejected_session_request_cleans_up(harness: Harness) -> None:
    harness.service.mode = "reject"
    provider = harness.provider()
    with pytest.raises(LemonSliceHTTPError, match="HTTP 400: agent_id 'nope' does not exist"):
        await provider.start(room=harness.agent_room)  # type: ignore[arg-type]
    assert harness.server.members(provider.side_room_name or "") == []
    with pytest.raises(ProviderError, match="only be called once"):
        await provider.start()


async def test_push_before_start_is_an_error(harness: Harness) -> None:
    provider = harness.provider()
    with pytest.raises(ProviderError, match=r"call start\(\) before"):
        await provider.push_audio(frames_of(tone(440, 16000, 0.01, 1000), 16000)[0])


# -- speech to the avatar ---------------------------------------------------------------------


async def test_speech_is_one_mono_stream_per_turn_at_the_declared_rate(harness: Harness) -> None:
    provider = await harness.started()
    assert provider.audio_sample_rate == 24000
    worker = harness.worker
    # turn 1: 48 kHz stereo, 440 Hz left and 1000 Hz right -> mono holds both at half amplitude
    stereo = np.stack([tone(440, 48000, 0.5, 12000), tone(1000, 48000, 0.5, 12000)], axis=1)
    for frame in frames_of(stereo, 48000):
        await provider.push_audio(frame)
    await provider.end_turn()
    # turn 2: 24 kHz mono 700 Hz
    for frame in frames_of(tone(700, 24000, 0.3, 10000), 24000, ms=20):
        await provider.push_audio(frame)
    await provider.end_turn()
    await provider.end_turn()  # an empty turn sends nothing
    await wait_until(lambda: len(worker.streams) == 2 and all(s.complete for s in worker.streams))

    first, second = worker.streams
    for stream in worker.streams:
        assert stream.sender == "avsync-relay"
        assert stream.info.topic == "lk.audio_stream"
        assert stream.info.attributes == {"sample_rate": "24000", "num_channels": "1"}
        assert stream.close_reason == ""
    assert worker.missing_attributes == 0
    pcm1 = np.frombuffer(bytes(first.data), dtype=np.int16).astype(np.float64)
    pcm2 = np.frombuffer(bytes(second.data), dtype=np.int16).astype(np.float64)
    assert abs(len(pcm1) - 12000) <= 24 and len(pcm2) == 7200  # 24 kHz input: passed as is
    body = pcm1[1200:-1200]  # away from the resampler's edges
    assert amplitude_at(body, 24000, 440) == pytest.approx(6000, rel=0.05)
    assert amplitude_at(body, 24000, 1000) == pytest.approx(6000, rel=0.05)
    assert dominant_hz(pcm2[500:-500], 24000) == pytest.approx(700, abs=8)
    assert amplitude_at(pcm2[500:-500], 24000, 700) == pytest.approx(10000, rel=0.05)
    assert len(harness.service.requests) == 1


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
async def test_audio_sample_rate_is_configurable(harness: Harness, rate: int) -> None:
    provider = await harness.started(audio_sample_rate=rate)
    for frame in frames_of(tone(440, 48000, 0.2, 8000), 48000):
        await provider.push_audio(frame)
    await provider.end_turn()
    await wait_until(lambda: bool(harness.worker.streams) and harness.worker.streams[0].complete)
    (stream,) = harness.worker.streams
    assert stream.info.attributes == {"sample_rate": str(rate), "num_channels": "1"}
    assert abs(len(stream.data) // 2 - rate // 5) <= 48
    assert harness.service.requests[0].body["audio_sample_rate"] == rate


def test_audio_sample_rate_outside_the_allowed_set_is_a_config_error(harness: Harness) -> None:
    with pytest.raises(ProviderConfigError, match="audio_sample_rate must be one of 16000"):
        harness.provider(audio_sample_rate=32000)


async def test_interrupt_closes_stream_then_clears_avatar(harness: Harness) -> None:
    provider = await harness.started()
    worker = harness.worker
    for frame in frames_of(tone(440, 48000, 0.2, 8000), 48000):
        await provider.push_audio(frame)
    generation = provider.generation
    await provider.interrupt()

    assert provider.generation == generation + 1
    await wait_until(lambda: worker.clear_calls == ["avsync-relay"])
    await wait_until(lambda: worker.streams[0].complete)  # the cut turn's stream is closed
    assert len(worker.streams[0].data) > 0

    for frame in frames_of(tone(440, 48000, 0.05, 8000), 48000):
        await provider.push_audio(frame)
    await provider.end_turn()
    await wait_until(lambda: len(worker.streams) == 2 and worker.streams[1].complete)
    assert worker.streams[1].clears_before == 1  # the clear reached the avatar first
    assert len(worker.streams[1].data) == pytest.approx(1200 * 2, abs=48)


async def test_next_turn_waits_for_a_concurrent_interrupt(harness: Harness) -> None:
    """A push racing an interrupt must not open its stream before the avatar has cleared."""
    provider = await harness.started(rpc_timeout=1.0)
    worker = harness.worker
    await provider.push_audio(frames_of(tone(440, 24000, 0.01, 1000), 24000)[0])
    worker.clear_delay = 0.2
    interrupting = asyncio.create_task(provider.interrupt())
    await asyncio.sleep(0)
    for frame in frames_of(tone(440, 16000, 0.05, 1000), 16000):
        await provider.push_audio(frame)
    await provider.end_turn()
    await interrupting
    await wait_until(lambda: len(worker.streams) == 2 and worker.streams[1].complete)
    assert worker.streams[1].clears_before == 1
    assert len(worker.streams[1].data) == pytest.approx(1200 * 2, abs=48)


async def test_interrupt_never_waits_for_a_slow_avatar(harness: Harness) -> None:
    """The cut is local and at once; the next turn waits for the avatar's clear (its speech
    must not be cleared), then goes out whole."""
    provider = await harness.started(rpc_timeout=0.2)
    harness.worker.clear_delay = 1.0
    await provider.push_audio(frames_of(tone(440, 24000, 0.01, 1000), 24000)[0])
    loop = asyncio.get_running_loop()
    began = loop.time()
    await provider.interrupt()  # must not raise, nor wait for the avatar
    assert loop.time() - began < 0.5
    for frame in frames_of(tone(440, 24000, 0.05, 1000), 24000):
        await provider.push_audio(frame)
    assert loop.time() - began >= 1.0  # the first frame of the next turn waited for the clear
    await provider.end_turn()
    await wait_until(
        lambda: len(harness.worker.streams) == 2 and harness.worker.streams[1].complete
    )
    assert harness.worker.streams[1].clears_before == 1
    assert len(harness.worker.streams[1].data) == 1200 * 2


# -- avatar -> agent notifications ---------------------------------------------------------------


async def test_playback_rpcs_become_events_only_from_the_avatar(harness: Harness) -> None:
    provider = await harness.started()
    started: list[bool] = []
    finished: list[PlaybackFinished] = []
    provider.on("playback_started", lambda: started.append(True))
    provider.on("playback_finished", finished.append)
    await provider.push_audio(frames_of(tone(440, 24000, 0.02, 1000), 24000)[0])  # a turn plays

    assert await harness.worker.playback_started() == "ok"
    assert await harness.worker.playback_finished(1.25, True) == "ok"
    assert started == [True]
    assert finished == [PlaybackFinished(playback_position=1.25, interrupted=True)]

    intruder = FakeRoom(harness.server)
    await intruder.connect(LK_URL, harness.server.mint("intruder", provider.side_room_name or ""))
    payload = json.dumps({"playback_position": 9.0, "interrupted": False})
    for method, body in (("lk.playback_started", ""), ("lk.playback_finished", payload)):
        answer = await intruder.local_participant.perform_rpc(
            destination_identity="avsync-relay", method=method, payload=body
        )
        assert answer == "reject"
    with pytest.raises(rtc.RpcError):  # livekit-agents' handler refuses a malformed payload
        await harness.worker._notify("lk.playback_finished", "{not json")
    assert started == [True] and len(finished) == 1
    await intruder.disconnect()


# -- avatar media out --------------------------------------------------------------------------


async def test_avatar_tracks_come_out_as_real_frames(harness: Harness) -> None:
    provider = await harness.started(output_sample_rate=24000)

    async def take(iterator: AsyncIterator[OutputFrame], n: int) -> list[OutputFrame]:
        out = []
        async for item in iterator:
            out.append(item)
            if len(out) == n:
                break
        return out

    audio, video = await asyncio.wait_for(
        asyncio.gather(take(provider.audio_frames(), 40), take(provider.video_frames(), 3)), 5
    )
    for item in (*audio, *video):
        assert item.timestamp is None and item.generation is None and item.speech is None
    assert all(isinstance(a.frame, rtc.AudioFrame) for a in audio)
    assert {a.frame.sample_rate for a in audio} == {24000}
    assert {a.frame.num_channels for a in audio} == {1}
    pcm = np.concatenate([np.frombuffer(a.frame.data, dtype=np.int16) for a in audio[10:]])
    assert dominant_hz(pcm.astype(np.float64), 24000) == pytest.approx(300, abs=15)
    assert np.abs(pcm).max() == pytest.approx(FakeAvatarWorker.TONE_AMPLITUDE, rel=0.1)
    for v in video:
        frame = v.frame
        assert isinstance(frame, rtc.VideoFrame) and frame.type == rtc.VideoBufferType.I420
        assert (frame.width, frame.height) == (FakeAvatarWorker.WIDTH, FakeAvatarWorker.HEIGHT)
        luma = np.frombuffer(frame.data, dtype=np.uint8)[: frame.width * frame.height]
        assert np.all(luma == FakeAvatarWorker.LUMA)


# -- losing the session ----------------------------------------------------------------------


async def drain(iterator: AsyncIterator[OutputFrame]) -> int:
    return sum([1 async for _ in iterator])


async def test_avatar_leaving_disconnects_and_ends_iterators(harness: Harness) -> None:
    provider = await harness.started()
    reasons: list[str] = []
    provider.on("disconnected", reasons.append)
    audio = asyncio.create_task(drain(provider.audio_frames()))
    video = asyncio.create_task(drain(provider.video_frames()))
    await asyncio.sleep(0.2)

    await harness.worker.leave()
    await asyncio.wait_for(asyncio.gather(audio, video), 3)

    assert audio.result() > 0 and video.result() > 0
    assert reasons == ["the LemonSlice avatar left the side room"]
    with pytest.raises(ProviderDisconnected, match="avatar left"):
        await provider.push_audio(frames_of(tone(440, 16000, 0.01, 1000), 16000)[0])
    with pytest.raises(ProviderDisconnected):
        await provider.end_turn()
    await provider.interrupt()  # harmless once lost
    assert await asyncio.wait_for(drain(provider.audio_frames()), 1) == 0


async def test_side_room_loss_disconnects(harness: Harness) -> None:
    provider = await harness.started()
    reasons: list[str] = []
    provider.on("disconnected", reasons.append)
    await harness.server.kick(provider.side_room_name or "", "avsync-relay")
    await wait_until(lambda: bool(reasons))
    assert reasons == ["the LiveKit side room disconnected (PARTICIPANT_REMOVED)"]
    assert await asyncio.wait_for(drain(provider.video_frames()), 1) >= 0


@pytest.mark.usefixtures("no_leaked_tasks")
async def test_aclose_terminates_leaves_and_is_idempotent(harness: Harness) -> None:
    provider = await harness.started()
    reasons: list[str] = []
    provider.on("disconnected", reasons.append)
    await provider.push_audio(frames_of(tone(440, 24000, 0.01, 1000), 24000)[0])
    await asyncio.gather(provider.aclose(), provider.aclose())
    await provider.aclose()

    assert harness.service.terminated == [provider.session_id]
    assert "avsync-relay" not in harness.server.members(provider.side_room_name or "")
    assert reasons == []  # a deliberate close is not a lost connection
    await wait_until(lambda: harness.worker.streams[0].complete)
    with pytest.raises(ProviderDisconnected, match="closed"):
        await provider.push_audio(frames_of(tone(440, 16000, 0.01, 1000), 16000)[0])
    assert await asyncio.wait_for(drain(provider.audio_frames()), 1) == 0


# -- secrets ---------------------------------------------------------------------------------


async def test_no_key_or_token_in_any_log_record(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = await harness.started()
    for frame in frames_of(tone(440, 48000, 0.05, 8000), 48000):
        await provider.push_audio(frame)
    await provider.interrupt()
    await harness.worker.playback_finished(0.5, True)
    intruder = FakeRoom(harness.server)
    await intruder.connect(LK_URL, harness.server.mint("intruder", provider.side_room_name or ""))
    await intruder.local_participant.perform_rpc(
        destination_identity="avsync-relay", method="lk.playback_started", payload=""
    )
    await harness.worker.leave()
    await provider.aclose()
    harness.service.mode = "reject"
    with pytest.raises(LemonSliceHTTPError):
        await harness.started()
    harness.avatar_joins, harness.service.mode = False, "ok"
    with pytest.raises(ProviderTimeout):
        await harness.started(join_timeout=0.2)

    secrets = {LS_KEY, LK_SECRET} | {j.token for j in harness.server.joins}
    secrets |= {
        r.body["properties"]["livekit_token"]
        for r in harness.service.requests
        if isinstance(r.body, dict) and "properties" in r.body
    }
    assert len(secrets) > 4
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for secret in secrets:
            assert secret not in text, f"secret leaked in log record {record.name}"


def test_token_claims_parse_with_livekit_verifier() -> None:
    """The provider's tokens verify with livekit-api (the real server's check)."""
    provider = LemonSliceAvatar(
        api_key=LS_KEY,
        agent_id="a",
        livekit_url=LK_URL,
        livekit_api_key=LK_KEY,
        livekit_api_secret=LK_SECRET,
        token_ttl=60,
        join_timeout=30,
    )
    relay, avatar = provider._mint_tokens("room-x")
    verifier = api.TokenVerifier(LK_KEY, LK_SECRET)
    assert verifier.verify(relay).video.room == "room-x"  # type: ignore[union-attr]
    raw = jwt.decode(avatar, options={"verify_signature": False})
    # the TTL is stretched to outlive the join wait (30 s + request 60 s + 60 s margin)
    assert raw["exp"] - raw["nbf"] == pytest.approx(150, abs=2)
