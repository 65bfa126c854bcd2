"""The benchmark's scenarios through a real room to the viewer page in headless Chromium.

:func:`browser_transport` is a ``transport`` for :func:`~.scenarios.run_scenario`: it publishes
the scenario's sources as one participant's microphone and camera and measures them in a fresh
:class:`~.browser.BrowserViewer`, so the skew is what a browser presents and plays.
The way the tracks are published is a :class:`Publishing`: in one ``stream`` or in two, in a
room created with ``sync_streams`` (livekit-server then gives a participant's tracks of one
stream one WebRTC media stream, the grouping browsers lip-sync) or without it (the server's
default: every track is a stream of its own, whatever ``stream`` says).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

from ..demo.clip import REPLY, load_clip
from ..devserver.worker import WorkerProcess
from ..providers.face import FaceRenderer
from ..web.chromium import Chromium
from ..web.server import viewer_token
from .barge_in import BargeInTurn, barge_in_turn
from .browser import BrowserViewer
from .loopback import MediaCapture
from .room_bench import RoomServer, publish_sources
from .scenarios import IMPLEMENTATIONS, ScenarioResult, Transport, run_scenario
from .spec import AVATAR_SPEC, MarkerSpec
from .viewer import ViewerLog

__all__ = [
    "BROWSER_IMPLEMENTATIONS",
    "BROWSER_SCENARIOS",
    "PUBLISHINGS",
    "BrowserRow",
    "Publishing",
    "browser_transport",
    "create_room",
    "format_browser_table",
    "http_url",
    "run_browser_barge_in",
    "run_browser_bench",
]

logger = logging.getLogger("livekit_avsync.measure")

_PUBLISHER, _VIEWER = "bench-publisher", "bench-browser"
_JOIN_TIMEOUT_S = 30.0
WARMUP_S = 3.0  # idle media before a scenario: the page's jitter buffers and A/V sync settle
_FRAME_S = 1 / 30


@dataclass(frozen=True)
class Publishing:
    """How a scenario's tracks reach the browser and are played there: their ``(audio, video)``
    streams, whether the room was created with ``sync_streams``, and the page's audio path
    (``"mix"``: the room's Web Audio graph, timed at its output; ``"element"``: an ``<audio>``
    element, timed by a silent Web Audio copy)."""

    name: str
    streams: tuple[str, str]
    sync_streams: bool
    audio_path: str = "mix"


PUBLISHINGS = {
    p.name: p
    for p in (
        Publishing("one stream", ("avatar", "avatar"), sync_streams=True),
        Publishing("two streams", ("avatar-audio", "avatar-video"), sync_streams=True),
        Publishing("one stream, default room", ("avatar", "avatar"), sync_streams=False),
        Publishing("one stream, audio element", ("avatar", "avatar"), True, "element"),
    )
}


def http_url(url: str) -> str:
    """The server API's address for a ``ws(s)://`` server URL."""
    return url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)


async def create_room(server: RoomServer, name: str, *, sync_streams: bool) -> None:
    """Create room ``name`` (``sync_streams``: a participant's tracks of one ``stream`` become
    one media stream at every subscriber, the grouping receivers lip-sync)."""
    async with api.LiveKitAPI(http_url(server.url), server.api_key, server.api_secret) as client:
        await client.room.create_room(api.CreateRoomRequest(name=name, sync_streams=sync_streams))


async def delete_room(server: RoomServer, name: str) -> None:
    async with api.LiveKitAPI(http_url(server.url), server.api_key, server.api_secret) as client:
        with contextlib.suppress(api.TwirpError):
            await client.room.delete_room(api.DeleteRoomRequest(room=name))


async def _warm_up(audio: rtc.AudioSource, video: rtc.VideoSource, seconds: float) -> None:
    """``seconds`` of digital silence and plain grey frames (no markers) at real-time pace."""
    step = audio.sample_rate // 100
    silence = rtc.AudioFrame(bytes(2 * step * audio.num_channels), audio.sample_rate, 1, step)
    width, height = 320, 180
    grey = np.full(width * height * 3 // 2, 128, np.uint8)
    blank = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, grey.tobytes())
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = round(seconds / _FRAME_S)
    for n in range(frames):
        video.capture_frame(blank)
        while (loop.time() - start) < (n + 1) * _FRAME_S:
            await audio.capture_frame(silence)
    await audio.wait_for_playout()


def browser_transport(
    server: RoomServer,
    browser: Chromium,
    publishing: Publishing = PUBLISHINGS["one stream"],
    *,
    viewers: list[BrowserViewer] | None = None,
    warmup: float = WARMUP_S,
) -> Transport:
    """A transport that runs each scenario in a fresh room of ``server`` published as
    ``publishing`` and measured in a fresh page of ``browser`` (each run's viewer is appended
    to ``viewers`` if given)."""

    @contextlib.asynccontextmanager
    async def transport(
        audio: rtc.AudioSource,
        video: rtc.VideoSource,
        spec: MarkerSpec,
        on_audio: Callable[[rtc.AudioFrame, float], None] | None,
    ) -> AsyncIterator[MediaCapture]:
        name = f"browser-{uuid.uuid4().hex[:8]}"
        await create_room(server, name, sync_streams=publishing.sync_streams)
        publisher = rtc.Room()
        token = viewer_token(server.api_key, server.api_secret, name, _VIEWER, hidden=True)
        viewer = BrowserViewer(
            browser,
            server.url,
            token,
            name,
            participant=_PUBLISHER,
            spec=spec,
            on_audio=on_audio,
            audio_path=publishing.audio_path,
        )
        try:
            await publisher.connect(server.url, server.token(name, _PUBLISHER))
            await publish_sources(publisher, audio, video, streams=publishing.streams)
            warm = asyncio.create_task(_warm_up(audio, video, warmup + _JOIN_TIMEOUT_S))
            try:
                await viewer.start(timeout=_JOIN_TIMEOUT_S)
                await asyncio.sleep(warmup)
            finally:
                warm.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warm
            await audio.wait_for_playout()
            if viewers is not None:
                viewers.append(viewer)
            yield viewer.capture
        finally:
            await viewer.aclose()
            await publisher.disconnect()
            await delete_room(server, name)

    return transport


# -- the bench -------------------------------------------------------------------------------

BROWSER_SCENARIOS = (
    "interleaved",
    "separate",
    "separate_arrival",
    "bursts",
    "fps_mismatch",
    "interrupt",
)
BROWSER_IMPLEMENTATIONS = tuple(IMPLEMENTATIONS)


@dataclass
class BrowserRow:
    """One scenario through one implementation, published one way, measured in the browser."""

    scenario: str
    implementation: str
    publishing: str
    result: ScenarioResult | None
    error: str | None = None


async def run_browser_bench(
    server: RoomServer,
    scenarios: tuple[str, ...] = BROWSER_SCENARIOS,
    implementations: tuple[str, ...] = BROWSER_IMPLEMENTATIONS,
    publishings: tuple[str, ...] = tuple(PUBLISHINGS),
    *,
    quick: bool = False,
    duration: float | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[BrowserRow]:
    """Each scenario x implementation x publishing, in a fresh room and a fresh page of one
    headless Chromium; the publishings past the first two (the server's default room, the
    audio element) only with the first implementation."""
    rows = []
    async with Chromium() as browser:
        for scenario in scenarios:
            for impl in implementations:
                for name in publishings:
                    if name not in _EVERY_IMPLEMENTATION and impl != implementations[0]:
                        continue
                    if progress is not None:
                        progress(f"{scenario} / {impl} / {name}")
                    try:
                        result = await run_scenario(
                            scenario,
                            impl,
                            duration=duration,
                            quick=quick,
                            seed=seed,
                            transport=browser_transport(server, browser, PUBLISHINGS[name]),
                            stale_audio_grace=_BROWSER_GRACE_S,
                            stale_video_grace=_BROWSER_GRACE_S,
                        )
                        rows.append(BrowserRow(scenario, impl, name, result))
                    except Exception as exc:  # one failed run must not end the bench
                        rows.append(BrowserRow(scenario, impl, name, None, repr(exc)))
                    if progress is not None:
                        row = rows[-1]
                        progress("  " + (row.result.report.summary() if row.result else row.error))
    return rows


_EVERY_IMPLEMENTATION = ("one stream", "two streams")
_BROWSER_GRACE_S = 0.25  # audio and video still in the transport and the page when a clear happens


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def format_browser_table(rows: list[BrowserRow]) -> str:
    """Skew as the browser presented and played it, per scenario, implementation, publishing."""
    header = [
        "scenario", "implementation", "publishing", "markers", "p50", "p95", "max", "mean",
        "stale frames", "audio tail",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.result is None:
            body.append(
                [r.scenario, r.implementation, r.publishing, f"failed: {r.error}"] + [""] * 6
            )
            continue
        cuts = r.result.interrupts
        body.append(
            [
                r.scenario,
                r.implementation,
                r.publishing,
                str(r.result.report.paired),
                _ms(r.result.skew_p50_ms),
                _ms(r.result.skew_p95_ms),
                _ms(r.result.skew_max_ms),
                _ms(r.result.skew_mean_ms),
                str(sum(m.stale_video_frames for m in cuts)) if cuts else "-",
                _ms(max(m.audio_tail_ms for m in cuts)) if cuts else "-",
            ]
        )
    return "(ms; |skew| p50/p95/max and signed mean, + = video late)\n" + _table(header, body)


# -- the example worker in the browser: barge-in and the picture ---------------------------------


async def run_browser_barge_in(
    server: RoomServer,
    turns: int = 3,
    *,
    screenshot: Path | None = None,
    width: int = 640,
    height: int = 360,
) -> list[BargeInTurn]:
    """``turns`` barge-ins on ``examples/local_avatar_agent.py`` (markers), watched by the
    viewer page in headless Chromium (rooms with ``sync_streams``), as :func:`run_barge_in_bench`
    does with the Python subscriber. ``screenshot``: first save a picture of the page showing
    the speaking avatar and the skew it measured."""
    worker = WorkerProcess(
        _server_env(server),
        "local_avatar_agent.py",
        AVSYNC_MARKERS="1",
        AVSYNC_VIDEO_SIZE=f"{width}x{height}",
    )
    voice = load_clip(REPLY, sample_rate=48000)
    face = FaceRenderer(width, height)
    results = []
    try:
        await asyncio.to_thread(worker.wait_for, "registered worker", 90)
        async with Chromium() as browser:
            if screenshot is not None:
                await _picture(server, browser, screenshot)
            for i in range(turns):
                name = f"browser-barge-{uuid.uuid4().hex[:8]}"
                await create_room(server, name, sync_streams=True)
                room = rtc.Room()
                await room.connect(server.url, server.token(name, "user"))
                token = viewer_token(server.api_key, server.api_secret, name, _VIEWER, hidden=True)

                def in_the_browser(log: ViewerLog, token: str = token, name: str = name) -> Any:
                    return BrowserViewer(
                        browser,
                        server.url,
                        token,
                        name,
                        spec=AVATAR_SPEC,
                        mouth=face.mouth_box,
                        on_mouth=log.on_mouth,
                        on_audio=log.on_audio,
                    )

                try:
                    results.append(
                        await barge_in_turn(
                            room,
                            voice.samples,
                            voice.sample_rate,
                            interrupt_times=lambda: worker.record_times("avatar interrupted"),
                            face=face,
                            barge_after=4.0 + 0.6 * (i % 5),
                            viewer=in_the_browser,
                        )
                    )
                finally:
                    await room.disconnect()
    finally:
        try:
            worker.terminate(timeout=15)
        except AssertionError as exc:  # the figures stand; the worker is killed below
            logger.warning("example worker: %s", exc)
        worker.close()
    return results


def _server_env(server: RoomServer) -> dict[str, str]:
    return {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }


async def _picture(server: RoomServer, browser: Chromium, path: Path) -> None:
    """The viewer page showing the worker's avatar mid-greeting, with the skew it measured."""
    name = f"browser-picture-{uuid.uuid4().hex[:8]}"
    await create_room(server, name, sync_streams=True)
    user = rtc.Room()
    await user.connect(server.url, server.token(name, "user"))
    token = viewer_token(server.api_key, server.api_secret, name, _VIEWER, hidden=True)
    viewer = BrowserViewer(browser, server.url, token, name, spec=AVATAR_SPEC)
    try:
        await viewer.start(timeout=60)
        await asyncio.sleep(2.0)
        since = time.monotonic()
        await asyncio.sleep(4.0)
        report = viewer.synced_report(since)
        await viewer.show(f"lip-sync in this page\n(markers, last 4 s):\n{report.summary()}")
        await viewer.screenshot(path)
    finally:
        await viewer.aclose()
        await user.disconnect()
