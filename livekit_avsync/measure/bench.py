"""The benchmark: every scenario through ``livekit_avsync.AVSynchronizer`` and
``rtc.AVSynchronizer`` side by side, plus CPU per 720p frame and memory over a long run; results
as tables and JSON.

Items (``BenchConfig.items``): the scenario names of :data:`~.scenarios.SCENARIOS`, ``"cpu"``
(process CPU time per 1280x720 frame pushed through each synchronizer, and pushed straight into the
sources as a baseline) and ``"memory"`` (``tracemalloc`` and RSS over a ``long_seconds`` run of the
interleaved scenario, which also yields the long-run skew and drift). Every run gets fresh sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from livekit import rtc

from .analysis import SyncReport
from .bursts import marker_audio_frame
from .markers import marker_video_frame
from .scenarios import (
    AUDIO_QUEUE_MS,
    IMPLEMENTATIONS,
    MAX_RUN_SECONDS,
    SAMPLE_RATE,
    SCENARIOS,
    InterruptMeasurement,
    ScenarioResult,
    SynchronizerLike,
    SyncSettings,
    run_scenario,
)
from .table import text_table

__all__ = [
    "BENCH_ITEMS",
    "BenchConfig",
    "BenchResults",
    "CpuResult",
    "MemoryResult",
    "Progress",
    "RunError",
    "busy_cores",
    "format_tables",
    "measure_cpu",
    "measure_memory",
    "run_bench",
]

BENCH_ITEMS: tuple[str, ...] = (*SCENARIOS, "cpu", "memory")
DIRECT = "direct"  # the CPU baseline: frames pushed straight into the sources

# targets the benchmark is read against (docs/benchmarks.md)
TARGET_P95_MS = 20.0
TARGET_DRIFT_MS_PER_MIN = 5.0
TARGET_AUDIO_TAIL_MS = 20.0
TARGET_CPU_MS = 1.0
GATE_QUIET_MS = 250.0  # AVSynchronizer's default gate_quiet_ms
TARGET_PUSH_BLOCK_MS = 50.0  # a producer pushing in real time never waits after a clear

# allocations of the measurement harness itself (capture records, marker decoding): namedtuple
# constructors are compiled from a string, so their allocations are filed under "<string>"
_HARNESS_FILES = ("*/livekit_avsync/measure/*", "<string>")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run. ``duration`` overrides every scenario's length; None: full or quick default."""

    quick: bool = False
    items: tuple[str, ...] = BENCH_ITEMS
    implementations: tuple[str, ...] = tuple(IMPLEMENTATIONS)
    duration: float | None = None
    long_seconds: float | None = None
    cpu_seconds: float | None = None
    seed: int = 0
    busy: int = 0  # processes spinning a core each beside every run (a busy machine)

    def __post_init__(self) -> None:
        if not isinstance(self.busy, int) or self.busy < 0:
            raise ValueError(f"busy must be a whole number of cores >= 0, got {self.busy!r}")
        unknown = [i for i in self.items if i not in BENCH_ITEMS]
        if unknown:
            raise ValueError(
                f"unknown benchmark item(s) {', '.join(unknown)}; known: {', '.join(BENCH_ITEMS)}"
            )
        bad = [i for i in self.implementations if i not in IMPLEMENTATIONS]
        if bad or not self.implementations:
            raise ValueError(
                f"implementations must be among {', '.join(IMPLEMENTATIONS)}, got {bad or 'none'}"
            )
        for name in ("duration", "long_seconds", "cpu_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
            if value is not None and value > MAX_RUN_SECONDS:
                raise ValueError(f"{name} must be at most {MAX_RUN_SECONDS:g} s, got {value:g}")

    @property
    def long_run(self) -> float:
        if self.long_seconds is not None:
            return self.long_seconds
        return 10.0 if self.quick else 600.0

    @property
    def cpu_run(self) -> float:
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        return 3.0 if self.quick else 20.0


@dataclass(slots=True)
class RunError:
    """A run that raised instead of producing a result."""

    item: str
    implementation: str
    error: str


@dataclass(slots=True)
class CpuResult:
    """Process CPU time (all threads, native ones included) per video frame pushed, and the
    resident set over the same run: with no reader and no tracer in the process, its growth is
    the synchronizer's and the sources' own (compare with ``direct``).

    ``rss_samples``: (seconds since the measurement started, RSS MB), every ~10 s.
    """

    implementation: str
    width: int
    height: int
    frames: int
    cpu_seconds: float
    wall_seconds: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000.0 * self.cpu_seconds / self.frames if self.frames else math.nan

    @property
    def rss_growth_mb(self) -> float | None:
        if len(self.rss_samples) < 2:
            return None
        return self.rss_samples[-1][1] - self.rss_samples[0][1]

    @property
    def rss_slope_mb_per_min(self) -> float | None:
        """Least-squares RSS trend over the second half of the run (allocators settle first)."""
        half = [p for p in self.rss_samples if p[0] >= self.rss_samples[-1][0] / 2]
        if len(half) < 3:
            return None
        t = np.array([p[0] for p in half]) / 60
        return float(np.polyfit(t, np.array([p[1] for p in half]), 1)[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "cpu_ms_per_frame": self.cpu_ms_per_frame,
            "rss_growth_mb": self.rss_growth_mb,
            "rss_slope_mb_per_min": self.rss_slope_mb_per_min,
        }


@dataclass(slots=True)
class MemoryResult:
    """Memory over a long interleaved run, measured after a warm-up.

    ``traced_growth_kb``: growth of Python allocations still alive, excluding the measurement
    harness (capture records, marker decoding; frames the producer made and a synchronizer still
    holds do count); ``traced_peak_kb``: highest traced total above the warm-up level;
    ``rss_growth_mb``: growth of the resident set (native memory included). ``queue_ms_*``: audio
    queued in the synchronizer at the two measurements (None without ``stats``), which tells a
    queue filling up to its bound from a leak.
    """

    implementation: str
    seconds: float
    warmup_seconds: float
    traced_growth_kb: float
    traced_growth_total_kb: float
    traced_peak_kb: float
    rss_start_mb: float
    rss_growth_mb: float
    queue_ms_start: float | None
    queue_ms_end: float | None
    samples: list[tuple[float, float, float, float | None]]  # (s, traced KB, RSS MB, queue ms)
    top_growth: list[str]
    sync: ScenarioResult | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "sync"}
        data["sync"] = None if self.sync is None else self.sync.to_dict()
        return data


@dataclass(slots=True)
class BenchResults:
    config: BenchConfig
    scenarios: list[ScenarioResult] = field(default_factory=list)
    cpu: list[CpuResult] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "scenarios": [r.to_dict() for r in self.scenarios],
            "cpu": [r.to_dict() for r in self.cpu],
            "memory": [r.to_dict() for r in self.memory],
            "errors": [asdict(e) for e in self.errors],
        }


class Progress:
    """Receives one begin/end pair per run; the CLI prints them as one line each on stderr."""

    def begin(self, index: int, total: int, label: str) -> None:
        pass

    def end(self, summary: str) -> None:
        pass


# -- CPU -----------------------------------------------------------------------------------------


class _Direct:
    """No synchronizer: frames go straight into the sources (the CPU baseline)."""

    def __init__(self, audio: rtc.AudioSource, video: rtc.VideoSource) -> None:
        self._audio, self._video = audio, video

    async def push(self, frame: Any, timestamp: float | None = None) -> None:
        if isinstance(frame, rtc.AudioFrame):
            await self._audio.capture_frame(frame)
        else:
            self._video.capture_frame(frame)

    async def clear_queue(self) -> None:
        self._audio.clear_queue()

    async def wait_for_playout(self) -> None:
        await self._audio.wait_for_playout()

    async def aclose(self) -> None:
        pass


async def measure_cpu(
    implementation: str,
    seconds: float,
    *,
    width: int = 1280,
    height: int = 720,
    fps: float = 30.0,
    warmup: float = 1.0,
) -> CpuResult:
    """CPU time per frame of ``seconds`` of real-time 720p video (and 20 ms audio) pushed through
    ``implementation`` (or ``"direct"`` into the sources). Frames are made beforehand and nothing
    reads the tracks back, so the figure is the synchronizer plus the sources' own work."""
    if implementation != DIRECT and implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}")
    video_pool = [marker_video_frame(n, width, height) for n in range(round(fps))]
    step = SAMPLE_RATE // 50
    audio_pool = [marker_audio_frame(k * step, step, sample_rate=SAMPLE_RATE) for k in range(50)]
    audio = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=AUDIO_QUEUE_MS)
    video = rtc.VideoSource(width, height)
    sync: SynchronizerLike = (
        _Direct(audio, video)
        if implementation == DIRECT
        else IMPLEMENTATIONS[implementation](audio, video, SyncSettings(fps))
    )
    total = round((warmup + seconds) * fps)
    skip = round(warmup * fps)
    every = round(10 * fps)  # an RSS sample every 10 s
    cpu0 = wall0 = 0.0
    rss: list[tuple[float, float]] = []
    try:
        t0 = time.monotonic()
        k = 0
        for n in range(total):
            if n == skip:
                cpu0, wall0 = time.process_time(), time.monotonic()
            if n >= skip and (n - skip) % every == 0:
                rss.append((time.monotonic() - wall0, _rss_mb()))
            delay = t0 + n / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sync.push(video_pool[n % len(video_pool)], n / fps)
            while k * 0.02 < (n + 1) / fps - 1e-9:
                await sync.push(audio_pool[k % len(audio_pool)], (k + 1) * 0.02)
                k += 1
        await asyncio.wait_for(sync.wait_for_playout(), 10.0)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        rss.append((wall, _rss_mb()))
    finally:
        await sync.aclose()
        await asyncio.sleep(0)
        await audio.aclose()
        await video.aclose()
    return CpuResult(implementation, width, height, total - skip, cpu, wall, rss)


# -- memory --------------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Resident set size now (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _without_harness(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    filters = [tracemalloc.Filter(False, pattern) for pattern in _HARNESS_FILES]
    filters.append(tracemalloc.Filter(False, tracemalloc.__file__))
    return snapshot.filter_traces(filters)


async def measure_memory(
    implementation: str,
    seconds: float,
    *,
    warmup: float | None = None,
    interval: float = 10.0,
    seed: int = 0,
) -> MemoryResult:
    """Run the interleaved scenario for ``seconds`` under ``tracemalloc`` and watch memory.

    Measurements start after ``warmup`` (default 10 % of the run, at most 30 s) and end 1 s before
    the producer stops, while everything is still running.
    """
    warm = min(30.0, 0.1 * seconds) if warmup is None else warmup
    if not 0 <= warm < seconds - 1.0:
        raise ValueError(f"warmup {warm} s must leave at least 1 s of a {seconds} s run")
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    observed: list[SynchronizerLike] = []

    def queue_ms() -> float | None:
        stats = getattr(observed[0], "stats", None) if observed else None
        return None if stats is None else stats.audio_queue_ms

    def sample() -> tuple[float, float, float, float | None]:
        return (
            time.monotonic() - t0,
            tracemalloc.get_traced_memory()[0] / 1024,
            _rss_mb(),
            queue_ms(),
        )

    try:
        t0 = time.monotonic()
        run = asyncio.ensure_future(
            run_scenario(
                "interleaved",
                implementation,
                duration=seconds,
                seed=seed,
                observe=observed.append,
            )
        )
        try:
            await asyncio.wait({run}, timeout=warm)
            if run.done():
                run.result()
                raise RuntimeError("the run ended before the warm-up did")
            first = _without_harness(tracemalloc.take_snapshot())
            traced0 = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            rss0, queue0 = _rss_mb(), queue_ms()
            samples = [sample()]
            end = t0 + seconds - 1.0
            while time.monotonic() < end and not run.done():
                await asyncio.wait({run}, timeout=min(interval, end - time.monotonic()))
                samples.append(sample())
            if run.done():
                run.result()
                raise RuntimeError("the run ended before the measurement did")
            traced1, peak = tracemalloc.get_traced_memory()
            last = _without_harness(tracemalloc.take_snapshot())
            rss1, queue1 = _rss_mb(), queue_ms()
            diff = last.compare_to(first, "lineno")
            sync = await run
        finally:
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run  # its own failure was raised by result() above
    finally:
        if not was_tracing:
            tracemalloc.stop()
    growth = sum(d.size_diff for d in diff) / 1024
    top = [str(d) for d in sorted(diff, key=lambda d: -d.size_diff)[:5] if d.size_diff > 0]
    return MemoryResult(
        implementation=implementation,
        seconds=seconds,
        warmup_seconds=warm,
        traced_growth_kb=growth,
        traced_growth_total_kb=(traced1 - traced0) / 1024,
        traced_peak_kb=(peak - traced0) / 1024,
        rss_start_mb=rss0,
        rss_growth_mb=rss1 - rss0,
        queue_ms_start=queue0,
        queue_ms_end=queue1,
        samples=samples,
        top_growth=top,
        sync=sync,
    )


# -- the benchmark -------------------------------------------------------------------------------


def _scenario_summary(r: ScenarioResult) -> str:
    parts = [f"{r.wall_seconds:.1f} s"]
    if r.skew_p95_ms is not None:
        parts.append(f"skew p95 {r.skew_p95_ms:.1f} ms")
    else:
        parts.append("no markers paired")
    for m in r.interrupts[:1]:
        parts.append(f"audio tail {m.audio_tail_ms:.0f} ms")
        parts.append(f"stale video {sum(i.stale_video_frames for i in r.interrupts)}")
    return ", ".join(parts)


def _plan(config: BenchConfig) -> list[tuple[str, str]]:
    plan: list[tuple[str, str]] = []
    for item in config.items:
        impls = list(config.implementations)
        if item == "cpu":
            impls = [DIRECT, *impls]
        plan.extend((item, impl) for impl in impls)
    return plan


@contextlib.contextmanager
def busy_cores(n: int) -> Any:
    """``n`` processes that each keep one core busy while the block runs (then killed)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=5)


async def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchResults:
    """Run every configured item for every implementation, one after another (beside
    ``config.busy`` busy cores)."""
    with busy_cores(config.busy):
        return await _run_bench(config, progress)


async def _run_bench(config: BenchConfig, progress: Progress | None) -> BenchResults:
    progress = progress or Progress()
    results = BenchResults(config)
    plan = _plan(config)
    for index, (item, impl) in enumerate(plan, start=1):
        if item == "cpu":
            label = f"cpu 720p / {impl} ({config.cpu_run:g} s)"
        elif item == "memory":
            label = f"memory / {impl} ({config.long_run:g} s)"
        else:
            sc = SCENARIOS[item]
            seconds = config.duration or (sc.quick_duration if config.quick else sc.duration)
            label = f"{item} / {impl} ({seconds:g} s of media)"
        progress.begin(index, len(plan), label)
        try:
            if item == "cpu":
                cpu = await measure_cpu(impl, config.cpu_run)
                results.cpu.append(cpu)
                summary = f"{cpu.cpu_ms_per_frame:.2f} ms CPU per frame"
            elif item == "memory":
                mem = await measure_memory(impl, config.long_run, seed=config.seed)
                results.memory.append(mem)
                summary = (
                    f"traced growth {mem.traced_growth_kb:+.0f} KB, "
                    f"RSS growth {mem.rss_growth_mb:+.1f} MB"
                )
            else:
                res = await run_scenario(
                    item, impl, duration=config.duration, quick=config.quick, seed=config.seed
                )
                results.scenarios.append(res)
                summary = _scenario_summary(res)
        except Exception as exc:
            results.errors.append(RunError(item, impl, repr(exc)))
            summary = f"failed: {exc!r}"
        progress.end(summary)
    return results


# -- tables --------------------------------------------------------------------------------------


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return text_table(header, rows, title=title)


def _ms(value: float | None, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def _drift(report: SyncReport | None) -> str:
    """Drift with its 95 % interval, or "-" on runs under a minute (too noisy to mean anything)."""
    if report is None or report.drift_ms_per_min is None:
        return "-"
    return f"{report.drift_ms_per_min:+.1f}\u00b1{report.drift_ci95_ms_per_min or 0.0:.1f}"


def _queue(m: MemoryResult) -> str:
    if m.queue_ms_start is None or m.queue_ms_end is None:
        return "-"
    return f"{m.queue_ms_start:.0f} -> {m.queue_ms_end:.0f}"


def _sync_rows(results: BenchResults) -> list[list[str]]:
    rows = []
    for r in results.scenarios:
        rows.append(
            [
                r.scenario,
                r.implementation,
                str(r.report.paired),
                _ms(r.skew_p50_ms),
                _ms(r.skew_p95_ms),
                _ms(r.skew_max_ms),
                _ms(r.skew_mean_ms, sign=True),
                _drift(r.report),
                str(r.dropped_frames),
                str(r.repeated_frames),
                str(r.frames_unseen),
                f"{len(r.audio_gaps)}/{1000 * sum(r.audio_gaps):.0f}",
            ]
        )
    return rows


def _interrupt_rows(results: BenchResults) -> list[list[str]]:
    rows = []
    for r in results.scenarios:
        if not r.interrupts:
            continue
        its = r.interrupts
        tails = [m.video_tail_ms for m in its]
        new = [m.new_turn_p95_ms for m in its if m.new_turn_p95_ms is not None]
        rows.append(
            [
                r.scenario,
                r.implementation,
                str(len(its)),
                _ms(max(m.audio_tail_ms for m in its)),
                "never" if None in tails else _ms(max(t for t in tails if t is not None)),
                str(max(m.video_tail_frames for m in its)),
                str(sum(m.stale_video_frames for m in its)),
                str(sum(m.in_flight_video_frames for m in its)),
                _ms(sum(m.stale_audio_ms for m in its)),
                f"{sum(m.first_turn not in (None, 0) for m in its)}/{len(its)}",
                _ms(max(new)) if new else "-",
                _face_back(its),
                _ms(max(m.push_blocked_ms for m in its)),
            ]
        )
    return rows


def _face_back(its: Sequence[InterruptMeasurement]) -> str:
    """Worst time from the producer's idle media starting to a non-speaking face ('-': n/a)."""
    if any(m.face_back_ms is None for m in its):
        return "never" if any(m.video_tail_ms is None for m in its) else "-"
    return _ms(max(m.face_back_ms for m in its if m.face_back_ms is not None))


def _targets(results: BenchResults) -> list[str]:
    """Target checks for livekit_avsync: one line each, 'ok' or 'MISS' with the worst value."""
    ours = [r for r in results.scenarios if r.implementation == "livekit_avsync"]
    lines = []

    def check(name: str, worst: float | None, limit: float, where: str) -> None:
        if worst is None:
            return
        verdict = "ok  " if worst <= limit else "MISS"
        lines.append(f"{verdict} {name}: worst {worst:.2f} (limit {limit:.4g}) {where}".rstrip())

    p95 = [(r.skew_p95_ms, r.scenario) for r in ours if r.skew_p95_ms is not None]
    p95 += [
        (m.sync.skew_p95_ms, "memory run")
        for m in results.memory
        if m.implementation == "livekit_avsync" and m.sync and m.sync.skew_p95_ms is not None
    ]
    if p95:
        worst, where = max(p95)
        check("|skew| p95 ms", worst, TARGET_P95_MS, f"({where})")
    drifts = [
        (abs(r.drift_ms_per_min), r.scenario)
        for r in ours
        if r.drift_ms_per_min is not None and r.media_seconds >= 55
    ]
    drifts += [
        (abs(m.sync.drift_ms_per_min), "memory run")
        for m in results.memory
        if m.implementation == "livekit_avsync"
        and m.sync
        and m.sync.drift_ms_per_min is not None
        and m.sync.media_seconds >= 55
    ]
    if drifts:
        worst, where = max(drifts)
        check("|drift| ms/min (runs >= 1 min)", worst, TARGET_DRIFT_MS_PER_MIN, f"({where})")
    barge = [m for r in ours for m in r.interrupts if r.scenario.startswith("barge_in")]
    if barge:
        faces = [m.face_back_ms for m in barge]
        check(
            "barge-in: face back after the producer's idle begins, ms",
            math.inf if None in faces else max(f for f in faces if f is not None),
            GATE_QUIET_MS + barge[0].video_grace_ms,
            "(gate quiet time + one frame)",
        )
        check(
            "barge-in: longest push after the clear, ms",
            max(m.push_blocked_ms for m in barge),
            TARGET_PUSH_BLOCK_MS,
            "",
        )
    its = [m for r in ours for m in r.interrupts if not r.scenario.startswith("barge_in")]
    if its:
        check(
            "interrupt audio tail ms", max(m.audio_tail_ms for m in its), TARGET_AUDIO_TAIL_MS, ""
        )
        tails = [m.video_tail_ms for m in its]
        period = its[0].video_grace_ms
        check(
            "speaking-video tail ms",
            math.inf if None in tails else max(t for t in tails if t is not None),
            period,
            "(one frame)",
        )
        stale = sum(m.stale_video_frames for m in its) + sum(m.stale_audio_ms > 0 for m in its)
        check("stale frames played (video frames + interrupts with stale audio)", stale, 0, "")
    cpu = [c for c in results.cpu if c.implementation == "livekit_avsync"]
    direct = [c for c in results.cpu if c.implementation == DIRECT]
    if cpu and direct:
        # the sources alone take ~1 ms per 720p frame here: the target is the synchronizer's share
        check(
            "CPU ms per 720p frame, synchronizer's own",
            cpu[0].cpu_ms_per_frame - direct[0].cpu_ms_per_frame,
            TARGET_CPU_MS,
            f"(whole process {cpu[0].cpu_ms_per_frame:.2f} minus direct "
            f"{direct[0].cpu_ms_per_frame:.2f})",
        )
    for c in cpu:
        slope, base = c.rss_slope_mb_per_min, direct[0].rss_slope_mb_per_min if direct else None
        if slope is not None:
            lines.append(
                f"info RSS over the {c.wall_seconds:.0f} s CPU run (no reader, no tracer): "
                f"{c.rss_growth_mb:+.1f} MB, trend {slope:+.2f} MB/min in the 2nd half"
                + (f" (direct {base:+.2f})" if base is not None else "")
            )
    mem = [m for m in results.memory if m.implementation == "livekit_avsync"]
    if mem:
        m = mem[0]
        lines.append(
            f"info memory over {m.seconds:g} s: traced growth {m.traced_growth_kb:+.0f} KB "
            f"(peak {m.traced_peak_kb:+.0f} KB), RSS growth {m.rss_growth_mb:+.1f} MB, "
            f"audio queued {_queue(m)} ms"
        )
    return lines


def format_tables(results: BenchResults) -> str:
    """The benchmark as plain-text tables (ms unless stated; mean > 0: video late)."""
    parts = []
    if results.scenarios:
        parts.append(
            _table(
                "A/V sync (|video - audio| in ms; mean > 0 = video late; drift in ms/min "
                "with its 95 % interval, on runs of a minute or more; "
                "gaps = audible dropouts of 4-250 ms in the played audio)",
                [
                    "scenario",
                    "implementation",
                    "pairs",
                    "p50",
                    "p95",
                    "max",
                    "mean",
                    "drift",
                    "dropped",
                    "repeated",
                    "unseen",
                    "gaps n/ms",
                ],
                _sync_rows(results),
            )
        )
    rows = _interrupt_rows(results)
    if rows:
        parts.append(
            _table(
                "Interrupts (worst over all clears; stale = after clear + 1 frame (video) "
                "or + 30 ms (audio))",
                [
                    "scenario",
                    "implementation",
                    "clears",
                    "audio tail",
                    "video tail",
                    "tail frames",
                    "stale video",
                    "in-flight shown",
                    "stale audio",
                    "speaking after",
                    "new turn p95",
                    "face back",
                    "push blocked",
                ],
                rows,
            )
        )
    if results.cpu:
        direct = next((c for c in results.cpu if c.implementation == DIRECT), None)
        cpu_rows = []
        for c in results.cpu:
            extra = "-"
            if direct is not None and c is not direct:
                extra = f"{c.cpu_ms_per_frame - direct.cpu_ms_per_frame:+.3f}"
            growth, slope = c.rss_growth_mb, c.rss_slope_mb_per_min
            cpu_rows.append(
                [
                    f"{c.width}x{c.height}",
                    c.implementation,
                    str(c.frames),
                    f"{c.cpu_ms_per_frame:.3f}",
                    extra,
                    "-" if growth is None else f"{growth:+.1f}",
                    "-" if slope is None else f"{slope:+.2f}",
                ]
            )
        parts.append(
            _table(
                "CPU (process time, all threads, per video frame; 20 ms audio alongside) and "
                "RSS over the same run (no reader, no tracer; trend = 2nd half)",
                [
                    "video",
                    "implementation",
                    "frames",
                    "ms/frame",
                    "vs direct",
                    "RSS MB",
                    "MB/min",
                ],
                cpu_rows,
            )
        )
    if results.memory:
        mem_rows = []
        for m in results.memory:
            s = m.sync
            mem_rows.append(
                [
                    f"{m.seconds:g} s",
                    m.implementation,
                    f"{m.traced_growth_kb:+.0f}",
                    f"{m.traced_peak_kb:+.0f}",
                    f"{m.rss_growth_mb:+.1f}",
                    _queue(m),
                    _ms(None if s is None else s.skew_p95_ms),
                    _drift(None if s is None else s.report),
                ]
            )
        parts.append(
            _table(
                "Memory (after warm-up, under tracemalloc; traced growth excludes the measurement "
                "harness; audio queue = queued in the synchronizer at start -> end)",
                [
                    "run",
                    "implementation",
                    "traced KB",
                    "traced peak KB",
                    "RSS MB",
                    "audio queue ms",
                    "skew p95",
                    "drift",
                ],
                mem_rows,
            )
        )
    if results.errors:
        parts.append(
            "Errors\n"
            + "\n".join(f"{e.item} / {e.implementation}: {e.error}" for e in results.errors)
        )
    targets = _targets(results)
    if targets:
        parts.append("Targets (livekit_avsync)\n" + "\n".join(targets))
    return "\n\n".join(parts) + "\n"
