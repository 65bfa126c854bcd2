"""How many avatars one worker carries: N concurrent sessions through a real LiveKit server.

One example worker (livekit-agents' default: a process per job) serves rooms 1..N, each with a
subscriber in this process (:class:`~.room.RoomViewer`). At each N the bench measures, over a
window, the job processes' CPU by thread (:mod:`.process_cpu`: Python, split by a py-spy profile
into ours / the stand-in provider's rendering / the SDK's frame handover / livekit-agents / the
rest; libwebrtc's video encoding; audio; other threads),
their unique memory, and at every subscriber the lip-sync a syncing receiver shows, audio the
receiver had to conceal (underruns), video freezes, and marker frames missing or repeated.
The subscribers share the machine: their own CPU (decoding N streams) is reported beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from livekit import rtc

from ..devserver.worker import WorkerProcess
from .process_cpu import CpuSplit, PythonProfile, profile_python, tree_cpu
from .room import ReceiverQuality, RoomViewer
from .room_bench import RoomServer
from .spec import avatar_spec
from .table import text_table

__all__ = [
    "SCALE_SIZES",
    "ScaleRow",
    "breaking_points",
    "format_scale_table",
    "plot_scale",
    "record_marker_avatar",
    "rows_from_json",
    "rows_to_json",
    "run_scale_bench",
]

SCALE_SIZES: dict[str, tuple[int, int, float]] = {
    "360p25": (640, 360, 25.0),
    "720p25": (1280, 720, 25.0),
    "720p30": (1280, 720, 30.0),
}
SKEW_LIMIT_MS = 20.0  # where a configuration counts as broken
_SETTLE_S = 2.0  # a new session's first seconds (greeting, jitter buffers) are not measured
# (then 1 s more while the busiest job process is picked for the profile)


@dataclass
class ScaleRow:
    """One measurement window with ``sessions`` avatars on one worker."""

    size: str
    provider: str
    sessions: int
    seconds: float
    cores_per_session: float  # all the job processes' CPU / window / sessions
    ours_ms_per_frame: float  # livekit_avsync's Python per published video frame
    split: dict[str, float]  # cores per session by part (ours, provider, python other, ...)
    viewer_cores: float  # this process (the N subscribers) during the window
    skew_p95_ms: float | None  # worst room
    skew_p95_median_ms: float | None
    concealed_ms_per_min: float  # audible audio concealment, per session-minute
    freezes: int
    missing_frames: int
    repeated_frames: int
    uss_mb_per_session: float
    error: str | None = None

    @property
    def broken(self) -> bool:
        late = self.skew_p95_ms is None or self.skew_p95_ms > SKEW_LIMIT_MS
        return self.error is not None or late or self.concealed_ms_per_min > 0


@dataclass
class _Room:
    room: rtc.Room
    viewer: RoomViewer


@contextlib.asynccontextmanager
async def _worker(server: RoomServer, size: str, provider: str) -> AsyncIterator[WorkerProcess]:
    width, height, fps = SCALE_SIZES[size]
    process = WorkerProcess(
        {
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.api_key,
            "LIVEKIT_API_SECRET": server.api_secret,
        },
        "local_avatar_agent.py",
        AVSYNC_AVATAR=provider,
        AVSYNC_MARKERS="1",
        AVSYNC_VIDEO_SIZE=f"{width}x{height}",
        AVSYNC_FPS=f"{fps:g}",
        AVSYNC_LOAD_THRESHOLD="0.99",  # the bench finds the limit; the worker must not refuse
        AVSYNC_WORKER_PORT="0",
    )
    try:
        await asyncio.to_thread(process.wait_for, "registered worker", 90)
        yield process
    finally:
        with contextlib.suppress(AssertionError):
            await asyncio.to_thread(process.terminate, 20)
        process.close()


async def record_marker_avatar(
    path: str | os.PathLike[str], width: int, height: int, fps: float, seconds: float
) -> Path:
    """Record a marker-stamped LocalAvatar's output with ProviderRecorder (no server): a
    recorded provider for ``AVSYNC_AVATAR=replay:PATH``."""
    from livekit.agents import AgentSession

    from ..agents import AvatarSession
    from ..providers.local import LocalAvatar
    from ..providers.recorder import ProviderRecorder

    provider = ProviderRecorder(path).wrap(
        LocalAvatar(width=width, height=height, fps=fps, markers=avatar_spec(fps))
    )
    avatar = AvatarSession(provider=provider, video_width=width, video_height=height, video_fps=fps)
    session = AgentSession()
    await avatar.start(session, room=None)  # no room: the sources are fed, nothing published
    await asyncio.sleep(seconds)
    await avatar.aclose()  # finalises the recording
    await session.aclose()
    return Path(path)


def _job_pids(worker: WorkerProcess) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(worker.process.pid).children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
    return out


async def _busiest(pids: Sequence[int], window: float = 1.0) -> int | None:
    """The process that used the most CPU over the next ``window`` s: a session, not one of
    livekit-agents' idle prewarmed processes (those loaded models earlier and may have more)."""
    before = _cpu_by_pid(pids)
    await asyncio.sleep(window)
    after = _cpu_by_pid(pids)
    deltas = [(after[p] - before.get(p, 0.0), p) for p in after]
    return max(deltas)[1] if deltas else None


async def _measure(
    worker: WorkerProcess, rooms: list[_Room], size: str, provider: str, seconds: float
) -> ScaleRow:
    fps = SCALE_SIZES[size][2]
    pids = _job_pids(worker)
    me = psutil.Process()
    profiled = await _busiest(pids)
    quality0 = [await r.viewer.quality() for r in rooms]
    cpu0, mine0, t0 = tree_cpu(pids), me.cpu_times(), time.monotonic()
    profile: PythonProfile | None = None
    if profiled is not None:
        profile = await asyncio.to_thread(profile_python, profiled, seconds)
    else:
        await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu: CpuSplit = tree_cpu(pids) - cpu0
    mine = me.cpu_times()
    quality = [(await r.viewer.quality()) - q for r, q in zip(rooms, quality0, strict=True)]
    reports = [r.viewer.synced_report(t0, t0 + elapsed) for r in rooms]
    continuity = [r.viewer.capture.frame_continuity(t0) for r in rooms]
    n = len(rooms)
    per = {k: v / elapsed / n for k, v in cpu.seconds.items()}
    python = per.pop("python", 0.0)
    shares = profile or PythonProfile({})
    split = {
        "ours": python * shares.share("ours"),
        "provider": python * shares.share("provider"),
        "sdk": python * shares.share("sdk"),
        "agents": python * shares.share("agents"),
        "python other": python * shares.share("other"),
        **per,
    }
    p95s = [r.p95_abs_ms for r in reports if r.p95_abs_ms is not None]
    return ScaleRow(
        size=size,
        provider=provider,
        sessions=n,
        seconds=elapsed,
        cores_per_session=cpu.total / elapsed / n,
        ours_ms_per_frame=1000.0 * split["ours"] / fps,
        split=split,
        viewer_cores=(mine.user + mine.system - mine0.user - mine0.system) / elapsed,
        skew_p95_ms=max(p95s) if len(p95s) == n else None,
        skew_p95_median_ms=statistics.median(p95s) if p95s else None,
        # counters are sampled, not atomic: a window may read a hair below zero
        concealed_ms_per_min=max(0.0, 1000 * _sum(quality, "audio_concealed") / (elapsed / 60) / n),
        freezes=int(_sum(quality, "video_freezes")),
        missing_frames=sum(len(c.missing) for c in continuity),
        repeated_frames=sum(c.repeated for c in continuity),
        uss_mb_per_session=cpu.uss / 1e6 / max(1, cpu.processes),
    )


def _sum(values: list[ReceiverQuality], name: str) -> float:
    return float(sum(getattr(v, name) for v in values))


async def run_scale_bench(
    server: RoomServer,
    *,
    sizes: Sequence[str] = tuple(SCALE_SIZES),
    providers: Sequence[str] = ("local",),
    counts: Sequence[int] = (1, 2, 3, 4, 6),
    seconds: float = 10.0,
    stop_when_broken: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[ScaleRow]:
    """Rows for each size x provider x N (ascending; stops a series after the first broken N).

    ``providers`` are ``AVSYNC_AVATAR`` values of the example worker: ``local`` or
    ``replay:PATH`` (a :class:`~livekit_avsync.ProviderRecorder` recording, looped).
    """
    unknown = [s for s in sizes if s not in SCALE_SIZES]
    if unknown:
        raise ValueError(f"unknown sizes {unknown}; known: {', '.join(SCALE_SIZES)}")
    if not counts or sorted(counts) != list(counts) or counts[0] < 1:
        raise ValueError(f"counts must be ascending positive numbers, got {list(counts)}")
    rows: list[ScaleRow] = []
    for size in sizes:
        for provider in providers:
            rows += await _series(
                server, size, provider, counts, seconds, stop_when_broken, progress
            )
    return rows


async def _series(
    server: RoomServer,
    size: str,
    provider: str,
    counts: Sequence[int],
    seconds: float,
    stop_when_broken: bool,
    progress: Callable[[str], None] | None,
) -> list[ScaleRow]:
    rows: list[ScaleRow] = []
    rooms: list[_Room] = []
    spec = avatar_spec(SCALE_SIZES[size][2])
    tag = f"scale-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    async with _worker(server, size, provider) as worker:
        try:
            for n in counts:
                if progress:
                    progress(f"{size} / {provider} / {n} sessions")
                try:
                    while len(rooms) < n:
                        room = rtc.Room()
                        name = f"{tag}-{len(rooms)}"
                        await room.connect(server.url, server.token(name, "viewer"))
                        viewer = RoomViewer(room, spec=spec)
                        rooms.append(_Room(room, viewer))
                        await viewer.start(timeout=60)
                    await asyncio.sleep(_SETTLE_S)
                    row = await _measure(worker, rooms, size, provider, seconds)
                except Exception as exc:  # a failed step ends this series, reported in its row
                    row = _failed(size, provider, n, f"{type(exc).__name__}: {exc}")
                rows.append(row)
                if row.error or (stop_when_broken and row.broken):
                    break
        finally:
            for r in rooms:
                with contextlib.suppress(Exception):
                    await r.viewer.aclose()
                with contextlib.suppress(Exception):
                    await r.room.disconnect()
    return rows


def _failed(size: str, provider: str, n: int, error: str) -> ScaleRow:
    nan = math.nan
    return ScaleRow(size, provider, n, 0.0, nan, nan, {}, nan, None, None, nan, 0, 0, 0, nan, error)


_PARTS = ("ours", "provider", "sdk", "agents", "python other", "video encoding", "audio", "other")


def format_scale_table(rows: Sequence[ScaleRow]) -> str:
    """The scale bench as a plain-text table (CPU in % of one core per session)."""
    header = [
        "size",
        "provider",
        "N",
        "core%/sess",
        *(f"{p}%" for p in _PARTS),
        "ours ms/frame",
        "viewers core%",
        "p95 worst",
        "p95 median",
        "conceal ms/min",
        "freezes",
        "missing",
        "repeated",
        "USS MB/sess",
    ]
    body: list[list[str]] = []
    for r in rows:
        if r.error:
            body.append([r.size, r.provider, str(r.sessions), f"error: {r.error}"])
            continue
        body.append(
            [
                r.size,
                r.provider.split(":")[0],
                str(r.sessions),
                f"{100 * r.cores_per_session:.1f}",
                *(f"{100 * r.split.get(p, 0.0):.1f}" for p in _PARTS),
                f"{r.ours_ms_per_frame:.2f}",
                f"{100 * r.viewer_cores:.0f}",
                _ms(r.skew_p95_ms),
                _ms(r.skew_p95_median_ms),
                f"{r.concealed_ms_per_min:.0f}",
                str(r.freezes),
                str(r.missing_frames),
                str(r.repeated_frames),
                f"{r.uss_mb_per_session:.0f}",
            ]
        )
    return text_table(header, body) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def breaking_points(rows: Sequence[ScaleRow]) -> dict[tuple[str, str], int | None]:
    """The first N of each series where p95 passed 20 ms or audio was concealed (None: never)."""
    out: dict[tuple[str, str], int | None] = {}
    for r in rows:
        key = (r.size, r.provider)
        out.setdefault(key, None)
        if out[key] is None and r.broken:
            out[key] = r.sessions
    return out


def plot_scale(rows: Sequence[ScaleRow], path: str | os.PathLike[str]) -> Path:
    """Cost (cores per session by part) and quality (worst p95) against N, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, quality) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[tuple[str, str], list[ScaleRow]] = {}
    for r in rows:
        if not r.error:
            series.setdefault((r.size, r.provider.split(":")[0]), []).append(r)
    for i, ((size, provider), points) in enumerate(series.items()):
        n, color, label = [p.sessions for p in points], f"C{i}", f"{size} {provider}"
        cost.plot(n, [100 * p.cores_per_session for p in points], "o-", c=color, label=label)
        cost.plot(n, [100 * p.split.get("ours", 0.0) for p in points], ".--", c=color)
        quality.plot(n, [p.skew_p95_ms or math.nan for p in points], "o-", c=color, label=label)
    cost.set(xlabel="sessions on one worker", ylabel="% of a core per session (dashed: ours)")
    quality.axhline(SKEW_LIMIT_MS, color="grey", ls=":")
    quality.set(xlabel="sessions on one worker", ylabel="worst subscriber |skew| p95 (ms)")
    for ax in (cost, quality):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def rows_to_json(rows: Sequence[ScaleRow]) -> list[dict[str, Any]]:
    return [asdict(r) | {"broken": r.broken} for r in rows]


def rows_from_json(data: list[dict[str, Any]]) -> list[ScaleRow]:
    """Rows written by :func:`rows_to_json` (to plot or tabulate a saved run again)."""
    return [ScaleRow(**{k: v for k, v in d.items() if k != "broken"}) for d in data]
