"""AnamAvatar's liveness: separate connect and ready timeouts, the media watchdog (ICE failing
with no event, a stall mid-session), a closed signalling WebSocket, frames before ready thrown
away, errors in livekit-agents' APIError family, and the SDK surface the close relies on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import anam
import pytest
from fakes.fake_anam import FakeAnamService, FakeTiming
from livekit import rtc
from livekit.agents import APIConnectionError, APIError, APITimeoutError

from livekit_avsync.providers.anam import AnamAvatar
from livekit_avsync.providers.base import ProviderConfigError, ProviderError

KEY = "anam-liveness-key"


@pytest.fixture
async def make(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    providers: list[AnamAvatar] = []

    def _make(
        *, provider: dict[str, Any] | None = None, **service_options: Any
    ) -> tuple[FakeAnamService, AnamAvatar]:
        service = FakeAnamService(KEY, **service_options)
        monkeypatch.setattr(anam, "AnamClient", service.client_factory)
        avatar = AnamAvatar(api_key=KEY, avatar_id="av-1", **(provider or {}))
        providers.append(avatar)
        return service, avatar

    yield _make
    for avatar in providers:
        await asyncio.wait_for(avatar.aclose(), 5)


async def _count(frames: AsyncIterator[Any], limit: float) -> int:
    """Frames until the iterator ends; fails if it has not ended within ``limit`` seconds."""
    n = 0

    async def run() -> None:
        nonlocal n
        async for _ in frames:
            n += 1

    await asyncio.wait_for(run(), limit)
    return n


def _pcm_frame() -> rtc.AudioFrame:
    return rtc.AudioFrame(bytes(480 * 2), 24000, 1, 480)


def test_defaults_are_as_tolerant_as_the_sdk_and_the_cookbook() -> None:
    params = inspect.signature(AnamAvatar).parameters
    assert params["connect_timeout"].default >= 30.0  # connect_async may wait 30 s for ICE
    assert params["ready_timeout"].default >= 30.0  # the cookbook's wait for session ready


async def test_ready_has_its_own_timeout_after_a_slow_connect(
    make: Callable[..., Any],
) -> None:
    # connecting takes 0.3 s of a 0.5 s connect budget; ready then gets its own 0.5 s
    _, provider = make(
        timing=FakeTiming(connect_delay=0.3, ready_delay=0.6),
        provider={"connect_timeout": 0.5, "ready_timeout": 0.5},
    )
    await asyncio.wait_for(provider.start(), 3)


async def test_ice_failing_before_any_media_ends_the_session_by_watchdog(
    make: Callable[..., Any],
) -> None:
    _, provider = make(ice_fails=True, provider={"first_frame_timeout": 0.4})
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    assert await _count(provider.video_frames(), 3) == 0
    assert lost and "no video frame within 0.4 s" in lost[0]
    with pytest.raises(APITimeoutError, match="Anam: no video frame") as info:
        await provider.push_audio(_pcm_frame())
    assert isinstance(info.value, ProviderError) and info.value.retryable


async def test_a_stall_mid_session_without_a_close_event_ends_the_session(
    make: Callable[..., Any],
) -> None:
    service, provider = make(provider={"stall_timeout": 0.4})
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    video = provider.video_frames()
    await asyncio.wait_for(video.__anext__(), 2)  # media flow
    service.avatar.fail_ice()
    loop = asyncio.get_running_loop()
    stalled_at = loop.time()
    await _count(video, 3)  # ends: the watchdog fired
    assert loop.time() - stalled_at >= 0.4
    assert lost and "stalled: no video frame for 0.4 s" in lost[0]


async def test_a_closed_signalling_socket_ends_the_session_naming_it(
    make: Callable[..., Any],
) -> None:
    service, provider = make()
    lost: list[str] = []
    provider.on("disconnected", lost.append)
    await provider.start()
    service.avatar.close_signalling("going away")
    await _count(provider.audio_frames(), 3)  # the output ends
    assert lost == ["the Anam connection closed (signalling_closed: going away)"]
    with pytest.raises(APIConnectionError, match="signalling_closed"):
        await provider.push_audio(_pcm_frame())


async def test_frames_before_ready_are_discarded_not_replayed(
    make: Callable[..., Any],
) -> None:
    # media flow from 0.05 s (ICE connected), the session is ready only at 0.6 s
    _, provider = make(timing=FakeTiming(connect_delay=0.05, ready_delay=0.6))
    await provider.start()
    # what comes out is live: no backlog of half a second of frames at once
    frames = provider.video_frames()
    loop = asyncio.get_running_loop()
    began = loop.time()
    for _ in range(5):
        await asyncio.wait_for(frames.__anext__(), 2)
    assert loop.time() - began >= 3 / 25  # at least 3 frame periods: paced, not a burst
    await asyncio.sleep(0.1)  # the audio pump has met its live edge too
    discarded = provider.discarded_before_ready
    assert discarded["video"] >= 5 and discarded["audio"] >= 10, discarded


def test_configuration_errors_are_value_errors_naming_anam() -> None:
    with pytest.raises(ProviderConfigError, match="ready_timeout must be positive") as info:
        AnamAvatar(api_key=KEY, avatar_id="a", ready_timeout=0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, APIError)
    assert not info.value.retryable and str(info.value).startswith("Anam: ")


def test_the_sdk_surface_the_close_relies_on_is_unchanged() -> None:
    """AnamAvatar closes the SDK's streaming client itself (AnamClient.close() skips it once the
    connection was reported closed). Fails when an SDK release changes that: then review
    providers/anam.py's _close_sdk and the version bound in pyproject.toml."""
    assert anam.__version__.startswith("0.12."), anam.__version__
    close = inspect.getsource(anam.AnamClient.close)
    assert "self._streaming_client and self.is_streaming" in close
    assert "_streaming_client" in inspect.getsource(anam.AnamClient.__init__)
