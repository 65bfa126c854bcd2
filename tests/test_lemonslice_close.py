"""LemonSliceAvatar closed while it starts: nothing waits out the join timeout, nothing is left
billed, and the side-room connect error never carries the relay token."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes.fake_livekit import FakeRoom
from livekit import rtc
from test_lemonslice_provider import LK_SECRET, Harness, harness, wait_until

from livekit_avsync.providers.base import ProviderDisconnected, ProviderError

__all__ = ["harness"]  # the fixture, shared with test_lemonslice_provider


@pytest.mark.usefixtures("no_leaked_tasks")
async def test_close_while_waiting_for_the_avatar_ends_start_at_once(harness: Harness) -> None:
    harness.avatar_joins = False  # it would wait the whole join timeout
    provider = harness.provider(join_timeout=120.0)
    start = asyncio.create_task(provider.start(room=harness.agent_room))  # type: ignore[arg-type]
    await wait_until(lambda: bool(harness.service.created))
    began = time.monotonic()
    await provider.aclose()
    with pytest.raises(ProviderDisconnected, match="closed while starting"):
        await asyncio.wait_for(start, 10)
    assert time.monotonic() - began < 10  # not the 120 s join timeout
    assert harness.service.terminated == harness.service.created
    assert harness.server.members(provider.side_room_name or "") == []


@pytest.mark.usefixtures("no_leaked_tasks")
async def test_a_session_created_while_closing_is_terminated_once_its_id_is_known(
    harness: Harness,
) -> None:
    harness.avatar_joins = False
    harness.service.create_delay = 0.5  # closed while the create request is in flight
    provider = harness.provider(join_timeout=120.0)
    start = asyncio.create_task(provider.start(room=harness.agent_room))  # type: ignore[arg-type]
    await wait_until(lambda: bool(harness.service.requests))
    assert not harness.service.created
    await provider.aclose()  # waits (bounded by request_timeout) for the id, then terminates
    with pytest.raises(ProviderDisconnected, match="closed while starting"):
        await asyncio.wait_for(start, 10)
    assert len(harness.service.created) == 1
    assert harness.service.terminated == harness.service.created


class EchoingRoom(FakeRoom):
    """A side room whose server echoes the join request, token included, in its error."""

    async def connect(self, url: str, token: str, options: rtc.RoomOptions | None = None) -> None:
        raise rtc.ConnectError(f"bad request: url={url} token={token} secret={LK_SECRET}")


async def test_side_room_connect_error_redacts_the_relay_token(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    provider = harness.provider(room_factory=lambda: EchoingRoom(harness.server))
    with pytest.raises(ProviderError, match="cannot join the LiveKit side room") as caught:
        await provider.start(room=harness.agent_room)  # type: ignore[arg-type]
    text = str(caught.value) + caplog.text
    assert "token=***" in text
    assert "eyJ" not in text and LK_SECRET not in text  # no JWT, no API secret
