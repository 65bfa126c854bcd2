"""LemonSliceAPI against a real aiohttp server on 127.0.0.1 checking what LemonSlice documents."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import pytest
from fakes.fake_lemonslice import SESSIONS_PATH, FakeLemonSliceService
from livekit import api
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

from livekit_avsync.providers.base import ProviderError, ProviderTimeout
from livekit_avsync.providers.lemonslice_api import (
    LemonSliceAPI,
    LemonSliceHTTPError,
    LemonSliceSessionSpec,
)

API_KEY = "ls-test-key-4f1c9d"
LK_KEY, LK_SECRET = "APItest", "livekit-test-secret-0123456789abcdef"


def avatar_token(room: str = "side-room") -> str:
    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_publish_data=True, can_subscribe=True
    )
    return (
        api.AccessToken(LK_KEY, LK_SECRET)
        .with_identity("lemonslice-avatar")
        .with_grants(grants)
        .to_jwt()
    )


@pytest.fixture
async def service() -> AsyncIterator[FakeLemonSliceService]:
    svc = FakeLemonSliceService(API_KEY)
    await svc.start()
    yield svc
    await svc.close()


@pytest.fixture
async def client(service: FakeLemonSliceService) -> AsyncIterator[LemonSliceAPI]:
    c = LemonSliceAPI(API_KEY, api_url=service.url, request_timeout=0.5, retry_interval=0.01)
    yield c
    await c.aclose()


async def test_start_session_posts_documented_request(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    token = avatar_token()
    spec = LemonSliceSessionSpec(
        agent_id="agent_abc123", agent_prompt="calm", agent_idle_prompt="still", idle_timeout=30
    )
    session_id = await client.start_session(
        spec, livekit_url="wss://lk.example", livekit_token=token
    )

    assert session_id.startswith("livekit-")
    (req,) = service.requests
    assert (req.method, req.path) == ("POST", SESSIONS_PATH)
    assert req.headers["X-API-Key"] == API_KEY
    assert req.headers["Content-Type"].startswith("application/json")
    assert req.body == {
        "transport_type": "livekit",
        "properties": {"livekit_url": "wss://lk.example", "livekit_token": token},
        "agent_id": "agent_abc123",
        "audio_sample_rate": 24000,
        "agent_prompt": "calm",
        "agent_idle_prompt": "still",
        "idle_timeout": 30,
    }
    claims = api.TokenVerifier(LK_KEY, LK_SECRET).verify(req.body["properties"]["livekit_token"])
    assert claims.video is not None and claims.video.room == "side-room"


async def test_image_url_and_extra_payload(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    spec = LemonSliceSessionSpec(
        agent_image_url="https://img.example/a.png", extra_payload={"response_done_timeout": 0.5}
    )
    await client.start_session(spec, livekit_url="wss://lk.example", livekit_token=avatar_token())
    body = service.requests[0].body
    assert body["agent_image_url"] == "https://img.example/a.png"
    assert "agent_id" not in body and "agent_prompt" not in body and "idle_timeout" not in body
    assert body["response_done_timeout"] == 0.5


def test_spec_needs_exactly_one_agent_source() -> None:
    with pytest.raises(ProviderError, match="exactly one of agent_id or agent_image_url"):
        LemonSliceSessionSpec()
    with pytest.raises(ProviderError, match="exactly one"):
        LemonSliceSessionSpec(agent_id="a", agent_image_url="https://x")


async def test_terminate_posts_control_event(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    await client.terminate_session("livekit-123")
    (req,) = service.requests
    assert (req.method, req.path) == ("POST", f"{SESSIONS_PATH}/livekit-123/control")
    assert req.headers["X-API-Key"] == API_KEY
    assert req.body == {"event": "terminate"}
    assert service.terminated == ["livekit-123"]


async def test_client_error_carries_status_and_server_message(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    service.mode = "reject"
    with pytest.raises(LemonSliceHTTPError) as info:
        await client.start_session(
            LemonSliceSessionSpec(agent_id="nope"),
            livekit_url="wss://lk.example",
            livekit_token=avatar_token(),
        )
    assert info.value.status == 400
    assert info.value.server_message == "agent_id 'nope' does not exist"
    assert info.value.status_code == 400 and info.value.retryable is False
    assert isinstance(info.value, APIStatusError) and info.value.provider == "LemonSlice"
    assert "HTTP 400" in str(info.value) and "does not exist" in str(info.value)
    assert len(service.requests) == 1


async def test_wrong_key_is_a_401_naming_the_problem(service: FakeLemonSliceService) -> None:
    client = LemonSliceAPI("wrong-key", api_url=service.url, request_timeout=0.5)
    try:
        with pytest.raises(LemonSliceHTTPError, match="HTTP 401: Invalid API key"):
            await client.terminate_session("x")
    finally:
        await client.aclose()


async def test_an_overloaded_service_is_retried_then_reported(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    service.mode = "unavailable"  # 503: nothing was created, trying again is safe
    with pytest.raises(LemonSliceHTTPError) as info:
        await client.start_session(
            LemonSliceSessionSpec(agent_id="a"),
            livekit_url="wss://lk.example",
            livekit_token=avatar_token(),
        )
    assert info.value.status == 503 and info.value.retryable is True
    assert info.value.server_message == "upstream overloaded"
    assert len(service.requests) == 4  # one try and the plugin's three retries


async def test_a_server_error_is_not_retried(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    service.mode = "error"  # 500: the session may exist; a retry could bill a second avatar
    with pytest.raises(LemonSliceHTTPError) as info:
        await client.start_session(
            LemonSliceSessionSpec(agent_id="a"),
            livekit_url="wss://lk.example",
            livekit_token=avatar_token(),
        )
    assert info.value.status == 500
    assert len(service.requests) == 1


async def test_hang_becomes_provider_timeout(
    service: FakeLemonSliceService, client: LemonSliceAPI
) -> None:
    service.mode = "hang"
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"within 0\.5 s") as info:
        await client.start_session(
            LemonSliceSessionSpec(agent_id="a"),
            livekit_url="wss://lk.example",
            livekit_token=avatar_token(),
        )
    assert 0.4 < time.monotonic() - started < 2.0
    # sent, unanswered: it may have started an avatar, so it is neither retried nor retryable
    assert len(service.requests) == 1 and info.value.retryable is False
    assert isinstance(info.value, APITimeoutError)


async def test_unreachable_service_is_a_provider_error() -> None:
    client = LemonSliceAPI(
        API_KEY, api_url="http://127.0.0.1:9/api", request_timeout=1.0, retry_interval=0.01
    )
    try:
        with pytest.raises(ProviderError, match="cannot reach LemonSlice") as info:
            await client.terminate_session("x")
        assert isinstance(info.value, APIConnectionError) and info.value.retryable
    finally:
        await client.aclose()


async def test_error_messages_and_logs_never_show_secrets(
    client: LemonSliceAPI, service: FakeLemonSliceService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = avatar_token()
    service.mode = "ok"
    await client.start_session(
        LemonSliceSessionSpec(agent_id="a"), livekit_url="wss://lk.example", livekit_token=token
    )
    # a server that echoes the request back in its error must not leak it through us
    echoed = f'{{"error": "bad token {token} for key {API_KEY}"}}'
    message = client._error_message(echoed)
    assert token not in message and API_KEY not in message and "***" in message
    for record in caplog.records:
        text = repr(record.__dict__) + record.getMessage()
        assert token not in text and API_KEY not in text


async def test_aclose_is_idempotent(client: LemonSliceAPI) -> None:
    await client.terminate_session("s")
    await client.aclose()
    await client.aclose()
    assert client._session is not None and client._session.closed


async def test_rejects_bad_construction() -> None:
    with pytest.raises(ProviderError, match="API key is empty"):
        LemonSliceAPI("")
    with pytest.raises(ProviderError, match="request_timeout must be positive"):
        LemonSliceAPI("k", request_timeout=0)


async def test_non_json_success_is_a_provider_error() -> None:
    from aiohttp import web

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/s", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = LemonSliceAPI(API_KEY, api_url=f"http://127.0.0.1:{port}/s", request_timeout=1)
    try:
        with pytest.raises(ProviderError, match="not JSON"):
            await client.start_session(
                LemonSliceSessionSpec(agent_id="a"), livekit_url="wss://x", livekit_token="t"
            )
    finally:
        await client.aclose()
        await runner.cleanup()
