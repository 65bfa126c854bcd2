"""AvatarSession.aclose() at any moment: before, during and after start(), twice, concurrently,
and with a provider that swallows cancellation. Nothing keeps running, the session's audio output
is given back, and closing ends within a bounded time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from livekit import rtc
from livekit.agents import AgentSession
from room_stand_in import RoomStandIn

from livekit_avsync import AvatarSession, LocalAvatar
from livekit_avsync.providers.base import OutputFrame, ProviderError

W, H, FPS, SR = 64, 48, 25, 24000


class SlowStart(LocalAvatar):
    """Starts, then takes a while longer (a remote provider's handshake) without checking for
    close: the AvatarSession itself must notice."""

    async def start(self, *, room: rtc.Room | None = None) -> None:
        await super().start(room=room)
        await asyncio.sleep(0.5)


class Stubborn(LocalAvatar):
    """A broken provider: its video iterator swallows the first CancelledError (a second one,
    from the test's cleanup, ends it), its aclose() hangs."""

    swallowed = False

    async def _video(self) -> AsyncIterator[OutputFrame]:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed = True
            yield OutputFrame(rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, bytes(W * H * 3 // 2)))

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        return self._video()

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.Event().wait()  # never returns (until cancelled)


def avatar_with(provider: LocalAvatar, **options: float) -> AvatarSession:
    return AvatarSession(
        provider=provider,
        video_width=W,
        video_height=H,
        video_fps=FPS,
        audio_sample_rate=SR,
        **options,  # type: ignore[arg-type]
    )


def local(cls: type[LocalAvatar] = LocalAvatar) -> LocalAvatar:
    return cls(width=W, height=H, fps=FPS, sample_rate=SR)


def running(before: set[asyncio.Task[object]]) -> list[str]:
    current = asyncio.current_task()
    return sorted(
        t.get_name() for t in asyncio.all_tasks() - before if not t.done() and t is not current
    )


async def test_close_during_start_makes_start_raise_and_leaves_nothing() -> None:
    before = set(asyncio.all_tasks())
    room, session = RoomStandIn(), AgentSession()
    avatar = avatar_with(local(SlowStart))
    start = asyncio.create_task(avatar.start(session, room))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    await avatar.aclose()
    with pytest.raises(RuntimeError, match="closed during start"):
        await asyncio.wait_for(start, 10)
    await asyncio.sleep(0.1)
    assert running(before) == []
    assert session.output.audio is None  # never left pointing at the closed output
    assert not room.local_participant.published


async def test_close_before_start_then_start_raises() -> None:
    avatar = avatar_with(local())
    await avatar.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await avatar.start(AgentSession(), None)


async def test_close_twice_and_concurrently_after_start_restores_the_output() -> None:
    before = set(asyncio.all_tasks())
    session = AgentSession()
    avatar = avatar_with(local())
    await avatar.start(session, None)
    assert session.output.audio is avatar.audio_output
    await asyncio.sleep(0.2)
    await asyncio.gather(avatar.aclose(), avatar.aclose(), avatar.aclose())
    await avatar.aclose()
    await asyncio.sleep(0.1)
    assert running(before) == []
    assert session.output.audio is None
    with pytest.raises(RuntimeError):
        await avatar.start(session, None)


async def test_close_is_bounded_with_a_provider_that_swallows_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = set(asyncio.all_tasks())
    avatar = avatar_with(local(Stubborn), close_timeout=0.5)
    await avatar.start(AgentSession(), None)
    await asyncio.sleep(0.2)
    began = time.monotonic()
    close = asyncio.ensure_future(avatar.aclose())
    done, _ = await asyncio.wait({close}, timeout=15)  # generous: the machine may be busy
    assert done, "aclose() hung on a provider that ignores cancellation"
    assert time.monotonic() - began < 15
    assert "ignored cancellation" in caplog.text
    assert "avatar provider close took more than" in caplog.text
    abandoned = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert [t.get_name() for t in abandoned] == ["avsync-forward-video"]
    for task in abandoned:  # the provider gives in to a second cancellation
        task.cancel()
    await asyncio.wait(abandoned, timeout=5)


class FailingStart(LocalAvatar):
    async def start(self, *, room: rtc.Room | None = None) -> None:
        await asyncio.sleep(0.05)
        raise ProviderError("the avatar service refused the session")


async def test_a_failed_start_raises_at_once_and_leaves_nothing() -> None:
    before = set(asyncio.all_tasks())
    room, session = RoomStandIn(), AgentSession()
    avatar = avatar_with(local(FailingStart))
    began = time.monotonic()
    with pytest.raises(ProviderError, match="refused"):
        await asyncio.wait_for(avatar.start(session, room), 10)  # type: ignore[arg-type]
    assert time.monotonic() - began < 10  # not the close_timeout of a wait on itself
    await asyncio.sleep(0.1)
    assert running(before) == []
    assert session.output.audio is None and not room.local_participant.published
    with pytest.raises(RuntimeError, match="closed"):
        await avatar.start(session, room)  # type: ignore[arg-type]
