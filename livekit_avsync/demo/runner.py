"""The offline demo: a LocalAvatar speaks through a real AgentSession, is interrupted, recovers.

Everything that plays goes through real LiveKit media objects, with no room and no server: the
agent's speech enters ``AgentSession.say(..., audio=...)``; :class:`~livekit_avsync.AvatarSession`
hands it to a :class:`~livekit_avsync.LocalAvatar` whose output carries marker frame numbers and
tone bursts; the synchronizer feeds ``rtc.AudioSource`` / ``rtc.VideoSource``; a
:class:`~livekit_avsync.measure.LoopbackCapture` reads both back as a viewer would, measures them
and hands every frame to the MP4 writer. See :func:`run_demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from livekit.agents import Agent, AgentSession
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.io import PlaybackFinishedEvent, PlaybackStartedEvent

from ..agents.avatar_session import AvatarSession
from ..measure.analysis import SyncReport
from ..measure.files import measure_file
from ..measure.loopback import LoopbackCapture
from ..measure.spec import MarkerSpec
from ..measure.viewer import ViewerLog
from ..providers.base import PlaybackFinished
from ..providers.local import LocalAvatar
from .clip import REPLY, SPEECH, SpeechClip, load_clip, stream_frames
from .options import GAP_S, WARMUP_S, DemoOptions, DemoStatus, Progress, plan_run
from .report import BAND_MS, DemoResult, InterruptFigures, TurnFigures
from .writer import Mp4Writer

__all__ = ["run_demo"]


AUDIO_RATE = 24000  # the avatar's output
CAPTURE_RATE = 48000  # what the loopback reads, and the MP4's audio
# Speech peaks at this fraction of the marker burst level: under the burst detector's re-arm
# level (a fifth of it), so bursts under speech are still found and timed by the burst alone.
SPEECH_PEAK_OF_BURST = 0.14
_START_TIMEOUT_S = 5.0
_TICK_S = 0.1


async def run_demo(options: DemoOptions, progress: Progress | None = None) -> DemoResult:
    """Run the demo and write ``demo.mp4``, ``sync-report.json`` and ``sync-report.png`` into
    ``options.out_dir`` (created if needed). ``progress`` is called about ten times a second."""
    return await _DemoRun(options, progress).run()


class _DemoRun:
    """One run: the media chain, the timeline of turns, and the measurements afterwards."""

    def __init__(self, options: DemoOptions, progress: Progress | None) -> None:
        self.options = options
        self.progress = progress
        self.spec = MarkerSpec(fps=options.fps, bed_level=0.0)  # silence between the bursts
        peak = self.spec.burst_level * SPEECH_PEAK_OF_BURST
        self.speech = load_clip(SPEECH, sample_rate=AUDIO_RATE).scaled_to_peak(peak)
        self.reply = load_clip(REPLY, sample_rate=AUDIO_RATE).scaled_to_peak(peak)
        self.plan = plan_run(options, self.speech, self.reply)
        self.out = options.out_dir
        self.t0 = 0.0
        self.phase = "starting"
        self.skew_p95_ms: float | None = None
        self.turns: list[TurnFigures] = []
        self.media_start: list[float | None] = []  # per turn: media time its speech started
        self.provider_played: list[float | None] = []  # per turn: seconds the provider output
        self.started = asyncio.Event()
        self.t_clear: float | None = None
        self.produced_before_clear: int | None = None

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> DemoResult:
        o = self.options
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out} exists and is not a directory")
        self.out.mkdir(parents=True, exist_ok=True)
        provider = LocalAvatar(
            width=o.width,
            height=o.height,
            fps=o.fps,
            sample_rate=AUDIO_RATE,
            latency=o.latency,
            jitter=o.jitter,
            rng_seed=o.seed,
            markers=self.spec,
        )
        avatar = AvatarSession(
            provider=provider,
            video_width=o.width,
            video_height=o.height,
            video_fps=o.fps,
            audio_sample_rate=AUDIO_RATE,
        )
        writer = Mp4Writer(
            self.out / "demo.mp4",
            width=o.width,
            height=o.height,
            fps=o.fps,
            sample_rate=CAPTURE_RATE,
        )
        viewer = ViewerLog(
            provider.renderer,
            marker_tones=self.spec.frequencies,
            marker_peak=self.spec.burst_level * 2 * SPEECH_PEAK_OF_BURST,
            video_sink=writer.add_video,
            audio_sink=writer.add_audio,
        )
        # the demo decides when the user barges in: no turn detector (loading one stalls the loop)
        session: AgentSession = AgentSession(turn_handling={"turn_detection": "manual"})
        capture: LoopbackCapture | None = None
        ticker: asyncio.Task[None] | None = None
        try:
            self.t0 = time.monotonic()
            await avatar.start(session, room=None)
            capture = LoopbackCapture.from_sources(
                avatar.audio_source,
                avatar.video_source,
                sample_rate=CAPTURE_RATE,
                spec=self.spec,
                on_video=viewer.on_video,
                on_audio=viewer.on_audio,
            )
            await capture.start()
            self._listen(provider, avatar)
            await session.start(Agent(instructions="You are the livekit-avsync demo avatar."))
            ticker = asyncio.create_task(self._tick(capture, writer), name="demo-progress")
            await self._timeline(session, ticker)
            sync_stats = avatar.synchronizer.stats.to_dict()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            capture_error: Exception | None = None
            if capture is not None:
                try:
                    await capture.aclose()
                except Exception as exc:  # raised once everything is closed
                    capture_error = exc
            await session.aclose()
            await avatar.aclose()
            self._set_phase("writing files")
            await asyncio.to_thread(writer.close)
            if capture_error is not None:
                raise capture_error
        assert capture is not None
        return await self._results(capture, viewer, writer, sync_stats)

    def _listen(self, provider: LocalAvatar, avatar: AvatarSession) -> None:
        fps = self.options.fps

        def provider_started() -> None:  # emitted as the frame holding the first sample is made
            if self.turns and self.media_start[-1] is None:
                self.media_start[-1] = provider.frames_produced / fps

        def provider_finished(event: PlaybackFinished) -> None:
            if event.interrupted:
                self.produced_before_clear = provider.frames_produced
            elif self.turns and self.provider_played[-1] is None:
                self.provider_played[-1] = event.playback_position

        def session_started(_: PlaybackStartedEvent) -> None:
            self.started.set()

        def session_finished(event: PlaybackFinishedEvent) -> None:
            if self.turns and self.turns[-1].reported_s is None:
                self.turns[-1].reported_s = event.playback_position

        provider.on("playback_started", provider_started)
        provider.on("playback_finished", provider_finished)
        avatar.audio_output.on("playback_started", session_started)
        avatar.audio_output.on("playback_finished", session_finished)

    async def _timeline(self, session: AgentSession, ticker: asyncio.Task[None]) -> None:
        """Warm up, speak, interrupt (or finish), reply, idle to the end."""
        plan = self.plan
        self._set_phase("warming up")
        await self._sleep_until(WARMUP_S, ticker)
        self._set_phase("speaking")
        handle = self._say(session, self.speech)
        await self._wait_started(ticker)
        started = time.monotonic()
        if plan.interrupt_at is not None:
            await self._watch(
                asyncio.sleep(plan.interrupt_at - (time.monotonic() - started)), ticker
            )
            self.t_clear = time.monotonic()
            self.turns[-1].interrupted = True
            done = session.interrupt()
            self._set_phase("interrupted")
            await self._watch(asyncio.wait_for(done, _START_TIMEOUT_S), ticker)
            await self._sleep_until(self.t_clear - self.t0 + GAP_S, ticker)
        else:
            await self._watch(
                asyncio.wait_for(handle.wait_for_playout(), self.speech.duration + 5), ticker
            )
            await self._watch(asyncio.sleep(GAP_S), ticker)
        self._set_phase("replying")
        self.started.clear()
        handle = self._say(session, self.reply)
        await self._wait_started(ticker)
        await self._watch(
            asyncio.wait_for(handle.wait_for_playout(), self.reply.duration + 5), ticker
        )
        self._set_phase("idle")
        await self._sleep_until(plan.duration, ticker)

    def _say(self, session: AgentSession, clip: SpeechClip) -> SpeechHandle:
        self.turns.append(TurnFigures(clip.text, clip.duration, time.monotonic() - self.t0))
        self.media_start.append(None)
        self.provider_played.append(None)
        return session.say(clip.text, audio=stream_frames(clip.frames()), allow_interruptions=True)

    async def _wait_started(self, ticker: asyncio.Task[None]) -> None:
        try:
            await self._watch(
                asyncio.wait_for(self.started.wait(), _START_TIMEOUT_S + self.options.latency),
                ticker,
            )
        except asyncio.TimeoutError:
            raise RuntimeError("the avatar never started to play the speech") from None

    async def _sleep_until(self, t: float, ticker: asyncio.Task[None]) -> None:
        await self._watch(asyncio.sleep(max(0.0, self.t0 + t - time.monotonic())), ticker)

    @staticmethod
    async def _watch(step: Awaitable[object], ticker: asyncio.Task[None]) -> None:
        """Await ``step``, but stop at once with the ticker's error if the media chain failed."""
        task = asyncio.ensure_future(step)
        await asyncio.wait({task, ticker}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            ticker.result()  # raises the failure
            raise RuntimeError("the demo's progress task ended early")
        task.result()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            elapsed = min(time.monotonic() - self.t0, self.plan.duration) if self.t0 else 0.0
            self.progress(DemoStatus(elapsed, self.plan.duration, self.phase, self.skew_p95_ms))

    async def _tick(self, capture: LoopbackCapture, writer: Mp4Writer) -> None:
        """Every 100 ms: check the capture and the writer, and report progress."""
        ticks = 0
        while True:
            capture.check()
            writer.check()
            if ticks % 5 == 0:
                self.skew_p95_ms = capture.analyze().p95_abs_ms
            self._report()
            ticks += 1
            await asyncio.sleep(_TICK_S)

    # -- measurements --------------------------------------------------------------------------

    async def _results(
        self,
        capture: LoopbackCapture,
        viewer: ViewerLog,
        writer: Mp4Writer,
        sync_stats: dict[str, Any],
    ) -> DemoResult:
        report = capture.analyze()
        speech = viewer.speech_times()
        self._measure_turns(report, viewer, speech)
        continuity = capture.frame_continuity()
        mp4 = self.out / "demo.mp4"
        file_report = await asyncio.to_thread(measure_file, mp4)
        result = DemoResult(
            options={
                **asdict(self.options),
                "out_dir": str(self.out),
                "duration": self.plan.duration,
            },
            t0=self.t0,
            report=report,
            marker_period_s=self.spec.period,
            turns=self.turns,
            interrupt=self._interrupt_figures(report, viewer, speech),
            sync_stats=sync_stats,
            viewer={
                "video_frames": len(capture.video_arrivals),
                "distinct_frames": continuity.distinct,
                "repeated_frames": continuity.repeated,
                "missing_frames": len(continuity.missing),
                "reordered_frames": continuity.reordered,
                "audio_s": capture.audio_seconds,
                "audio_bursts": report.audio_bursts,
            },
            files={
                "mp4": str(mp4),
                "json": str(self.out / "sync-report.json"),
                "png": str(self.out / "sync-report.png"),
            },
            mp4={
                "seconds": writer.duration,
                "video_frames": writer.video_frames,
                "start": None if writer.start_time is None else writer.start_time - self.t0,
                "paired": file_report.paired,
                "p50_abs_ms": file_report.p50_abs_ms,
                "p95_abs_ms": file_report.p95_abs_ms,
                "max_abs_ms": file_report.max_abs_ms,
                "mean_ms": file_report.mean_ms,
            },
        )
        text = json.dumps(result.to_dict(), indent=2) + "\n"
        await asyncio.to_thread(Path(result.files["json"]).write_text, text)
        await asyncio.to_thread(result.plot, Path(result.files["png"]))
        return result

    def _aftermath_end(self) -> float:
        """End of the time after the interrupt that belongs to it: the reply is said then."""
        assert self.t_clear is not None
        later = [self.t0 + t.said_at for t in self.turns if self.t0 + t.said_at > self.t_clear]
        return min(later, default=self.t_clear + GAP_S)

    def _measure_turns(self, report: SyncReport, viewer: ViewerLog, speech: np.ndarray) -> None:
        """When each turn was first heard (media time of its first sample, placed on the
        loopback's clock by the markers) and for how long: to where the sound stopped after
        the interrupt, or through all the audio the provider played for it."""
        for turn, media, played in zip(
            self.turns, self.media_start, self.provider_played, strict=True
        ):
            heard_from = None if media is None else _wall_of(report, self.spec, media)
            if media is None or heard_from is None:
                continue
            turn.heard_from = heard_from - self.t0
            if turn.interrupted and self.t_clear is not None:
                tail = viewer.sound_tail(speech, self.t_clear, self._aftermath_end())
                turn.heard_s = self.t_clear + tail - heard_from
            elif played is not None:
                end = _wall_of(report, self.spec, media + played)
                turn.heard_s = None if end is None else end - heard_from

    def _interrupt_figures(
        self, report: SyncReport, viewer: ViewerLog, speech: np.ndarray
    ) -> InterruptFigures | None:
        if self.t_clear is None:
            return None
        turn = self.turns[0]
        until = self._aftermath_end()
        recovered = next(
            (
                m.audio_time - self.t_clear
                for m in report.offsets
                if m.audio_time > self.t_clear and abs(m.offset_ms) <= BAND_MS
            ),
            None,
        )
        resumed = viewer.first_frame_from(self.produced_before_clear, self.t_clear)
        into = None if turn.heard_from is None else self.t_clear - self.t0 - turn.heard_from
        return InterruptFigures(
            at=self.t_clear - self.t0,
            into_turn_s=into,
            audio_tail_ms=1000 * viewer.sound_tail(speech, self.t_clear, until),
            video_tail_ms=1000 * viewer.mouth_tail(self.t_clear, until),
            stale_frames=viewer.stale_frames(self.t_clear, until, self.produced_before_clear),
            video_resumed_ms=None if resumed is None else 1000 * (resumed - self.t_clear),
            recovered_after_s=recovered,
        )


def _wall_of(report: SyncReport, spec: MarkerSpec, media: float) -> float | None:
    """When media time ``media`` played, from the burst of the last paired marker before it
    (audio plays at 1x between markers); the first paired marker after it if none came before."""
    pairs = [(m.marker * spec.period, m.audio_time) for m in report.offsets]
    before = [(t, wall) for t, wall in pairs if t <= media]
    if before:
        t, wall = max(before)
    elif pairs:
        t, wall = min(pairs)
    else:
        return None
    return wall + (media - t)
