"""The benchmark's scenarios through a real LiveKit room, measured at a real subscriber.

:func:`room_transport` is a ``transport`` for :func:`~.scenarios.run_scenario`: it publishes the
scenario's sources as one participant's microphone and camera in one ``stream`` (what receivers
lip-sync) and measures them at a second participant with :class:`~.room.RoomViewer`, whose
reports are what a receiver that lip-syncs the stream shows (the raw figure is kept beside).
Everything else about a scenario (producer, synchronizer, analysis) is the loopback bench's own.
:func:`run_room_bench` runs scenarios on the loopback and through the room for each synchronizer
and for frames pushed straight into the sources (``direct``: what the transport alone does).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from livekit import api, rtc

from ..demo.clip import REPLY, load_clip
from ..devserver.worker import WorkerProcess
from ..providers.face import FaceRenderer
from .analysis import SyncReport
from .barge_in import BargeInTurn, barge_in_turn
from .bench import _Direct  # the bench's own baseline: frames pushed straight into the sources
from .loopback import LoopbackCapture
from .room import RoomViewer
from .scenarios import IMPLEMENTATIONS, ScenarioResult, Transport, run_scenario
from .spec import MarkerSpec

__all__ = [
    "RoomRow",
    "RoomServer",
    "format_barge_in_table",
    "format_room_table",
    "publish_sources",
    "room_transport",
    "run_barge_in_bench",
    "run_room_bench",
]

DIRECT = "direct"
ROOM_SCENARIOS = (
    "interleaved",
    "separate",
    "separate_arrival",
    "bursts",
    "fps_mismatch",
    "interrupt",
)
_ROOM_GRACE_S = 0.15  # audio and video still in the transport when a clear happens

_PUBLISHER, _VIEWER = "bench-publisher", "bench-viewer"
_SUBSCRIBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RoomServer:
    """A LiveKit server the bench may create rooms on: URL and API keys."""

    url: str
    api_key: str
    api_secret: str

    def token(self, room: str, identity: str) -> str:
        grants = api.VideoGrants(room_join=True, room=room)
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
            .to_jwt()
        )


async def publish_sources(
    room: rtc.Room,
    audio: rtc.AudioSource,
    video: rtc.VideoSource,
    *,
    streams: tuple[str, str] = ("avatar", "avatar"),
) -> None:
    """Publish ``audio`` as the microphone and ``video`` as the camera of ``room``'s local
    participant, in the ``(audio, video)`` streams given (one stream: what receivers lip-sync)."""
    local = room.local_participant
    await local.publish_track(
        rtc.LocalAudioTrack.create_audio_track("bench-audio", audio),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, stream=streams[0]),
    )
    await local.publish_track(
        rtc.LocalVideoTrack.create_video_track("bench-video", video),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, stream=streams[1]),
    )


def room_transport(
    server: RoomServer, *, stream: str = "avatar", viewers: list[RoomViewer] | None = None
) -> Transport:
    """A transport that runs each scenario in a fresh room of ``server`` (each run's viewer is
    appended to ``viewers`` if given, for its raw figures)."""

    @contextlib.asynccontextmanager
    async def transport(
        audio: rtc.AudioSource,
        video: rtc.VideoSource,
        spec: MarkerSpec,
        on_audio: Callable[[rtc.AudioFrame, float], None] | None,
    ) -> AsyncIterator[LoopbackCapture]:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        publisher, viewer_room = rtc.Room(), rtc.Room()
        viewer: RoomViewer | None = None
        try:
            await viewer_room.connect(server.url, server.token(name, _VIEWER))
            await publisher.connect(server.url, server.token(name, _PUBLISHER))
            await publish_sources(publisher, audio, video, streams=(stream, stream))
            viewer = RoomViewer(viewer_room, identity=_PUBLISHER, spec=spec, on_audio=on_audio)
            await viewer.start(timeout=_SUBSCRIBE_TIMEOUT_S)
            if viewers is not None:
                viewers.append(viewer)
            yield viewer.capture
        finally:
            if viewer is not None:
                await viewer.aclose()
            await publisher.disconnect()
            await viewer_room.disconnect()

    return transport


@dataclass
class RoomRow:
    """One scenario through one implementation: on the loopback, and at the room's subscriber
    (``room``: as a lip-syncing receiver shows it; ``raw``: as the SDK's subscriber plays it)."""

    scenario: str
    implementation: str
    loopback: ScenarioResult | None
    room: ScenarioResult | None
    raw: SyncReport | None
    error: str | None = None


async def run_room_bench(
    server: RoomServer,
    scenarios: tuple[str, ...] = ROOM_SCENARIOS,
    implementations: tuple[str, ...] = (*IMPLEMENTATIONS, DIRECT),
    *,
    quick: bool = False,
    duration: float | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[RoomRow]:
    """Each scenario x implementation on the loopback and through a fresh room of ``server``."""
    factories = dict(IMPLEMENTATIONS)
    factories[DIRECT] = lambda audio, video, _settings: _Direct(audio, video)
    rows = []
    for scenario in scenarios:
        for impl in implementations:
            if progress is not None:
                progress(f"{scenario} / {impl}")
            viewers: list[RoomViewer] = []
            try:
                runs = []
                for transport in (None, room_transport(server, viewers=viewers)):
                    runs.append(
                        await run_scenario(
                            scenario,
                            impl,
                            duration=duration,
                            quick=quick,
                            seed=seed,
                            transport=transport,
                            factories=factories,
                            **({} if transport is None else _room_graces()),
                        )
                    )
                raw = viewers[-1].raw_report() if viewers else None
                rows.append(RoomRow(scenario, impl, runs[0], runs[1], raw))
            except Exception as exc:  # one failed run must not end the bench
                rows.append(RoomRow(scenario, impl, None, None, None, repr(exc)))
    return rows


def _room_graces() -> dict[str, float]:
    return {"stale_audio_grace": _ROOM_GRACE_S, "stale_video_grace": _ROOM_GRACE_S}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_room_table(rows: list[RoomRow]) -> str:
    """The real-room table: skew at the subscriber beside the loopback's, per implementation."""
    header = [
        "scenario", "implementation", "loopback p95", "room p50", "room p95", "room max",
        "raw p95", "raw mean", "stale frames", "audio tail",
    ]  # fmt: skip
    table = [header]
    for r in rows:
        if r.error is not None or r.room is None:
            table.append([r.scenario, r.implementation, f"failed: {r.error}"] + [""] * 7)
            continue
        cuts = r.room.interrupts
        stale = sum(m.stale_video_frames for m in cuts) if cuts else None
        tail = max(m.audio_tail_ms for m in cuts) if cuts else None
        table.append(
            [
                r.scenario,
                r.implementation,
                _ms(r.loopback.skew_p95_ms if r.loopback else None),
                _ms(r.room.skew_p50_ms),
                _ms(r.room.skew_p95_ms),
                _ms(r.room.skew_max_ms),
                _ms(r.raw.p95_abs_ms if r.raw else None),
                _ms(r.raw.mean_ms if r.raw else None),
                "-" if stale is None else str(stale),
                _ms(tail),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


# -- barge-in through the real example worker ----------------------------------------------------

# what the keyless example agent runs with (examples/avatar_worker.py; livekit-agents 1.8 and
# livekit-plugins-silero defaults): printed beside the figures they explain
BARGE_IN_SETTINGS = {
    "turn detection / interruption": "VAD (Silero), interruption mode vad",
    "VAD min speech / min silence / activation": "0.05 s / 0.55 s / 0.5",
    "min_interruption_duration": "0.5 s",
    "resume_false_interruption": "False (no STT could confirm a pause)",
    "AEC warm-up": "3.0 s (no interruption in the agent's first 3 s of speech)",
}


async def run_barge_in_bench(
    server: RoomServer, turns: int = 3, *, width: int = 640, height: int = 360
) -> list[BargeInTurn]:
    """``turns`` barge-ins on ``examples/local_avatar_agent.py`` (started as a user starts it,
    with markers): one fresh room each, the user speaking over the greeting 4.0, 4.6, 5.2 ... s
    in (the 9.6 s greeting, past the 3 s AEC warm-up), so the cuts land mid-word and between."""
    env = {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    worker = WorkerProcess(
        env, "local_avatar_agent.py", AVSYNC_MARKERS="1", AVSYNC_VIDEO_SIZE=f"{width}x{height}"
    )
    voice = load_clip(REPLY, sample_rate=48000)
    results = []
    try:
        await asyncio.to_thread(worker.wait_for, "registered worker", 90)
        for i in range(turns):
            room = rtc.Room()
            await room.connect(server.url, server.token(f"barge-{uuid.uuid4().hex[:8]}", "user"))
            try:
                results.append(
                    await barge_in_turn(
                        room,
                        voice.samples,
                        voice.sample_rate,
                        interrupt_times=lambda: worker.record_times("avatar interrupted"),
                        face=FaceRenderer(width, height),
                        barge_after=4.0 + 0.6 * (i % 5),
                    )
                )
            finally:
                await room.disconnect()
    finally:
        worker.terminate(timeout=15)
        worker.close()
    return results


def format_barge_in_table(turns: list[BargeInTurn]) -> str:
    """Per turn: user onset -> interrupt -> silence / still face at the subscriber, the reply."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    header = [
        "turn", "onset->interrupt", "interrupt->silent", "interrupt->still face",
        "onset->silent", "stale speech", "reply after user", "reply p95",
    ]  # fmt: skip
    table = [header]
    for i, turn in enumerate(turns, start=1):
        f = turn.figures
        interrupt_delay = None if f.interrupt is None else f.interrupt - f.onset
        reply_after = None if f.reply_start is None else f.reply_start - f.user_end
        reply_p95 = turn.reply.p95_abs_ms if turn.reply is not None else None
        table.append(
            [
                str(i),
                ms(interrupt_delay),
                ms(f.silence_after_interrupt),
                ms(f.mouth_after_interrupt),
                ms(f.silence_after_onset),
                ms(f.stale_seconds),
                ms(reply_after),
                "-" if reply_p95 is None else f"{reply_p95:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    settings = [f"  {k}: {v}" for k, v in BARGE_IN_SETTINGS.items()]
    return "\n".join(["(ms)", *lines, "settings:", *settings]) + "\n"
