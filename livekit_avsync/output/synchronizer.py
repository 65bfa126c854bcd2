"""AVSynchronizer: the pure sync core driving a real ``rtc.AudioSource`` and ``rtc.VideoSource``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable

import av
import numpy as np
from livekit import rtc

from ..background import TaskOwner, owned_task
from ..media.audio import AudioConverter, frame_samples
from ..media.convert import av_frame_time, video_to_rtc
from ..media.validate import check_frame, check_source_open
from ..sync.aligner import FOREIGN_CLOCK_S, Aligner, SyncMode
from ..sync.audio_queue import AudioChunk, AudioQueue
from ..sync.clock import Clock, MonotonicClock
from ..sync.gate import StaleGate
from ..sync.ledger import PlayedLedger
from ..sync.playout import AudioPlayout, PlayedSegment
from ..sync.stamps import FrameStamper
from ..sync.stats import SyncStats
from ..sync.video import QueuedFrame, VideoScheduler
from .probe import SourceProbe
from .waker import Waker

__all__ = ["AVSynchronizer"]

logger = logging.getLogger("livekit_avsync")

# Audio is handed to the source in 20 ms chunks. The source's queue always has room for them, so
# a clear drops every chunk whole and audio stops within the source's 10 ms tick; 10 ms chunks
# would cost twice the FFI round trips (and event-loop wake-ups) for the same result.
_CHUNK_S = 0.02
_REST_AFTER_QUIET = 0.5  # s of quiet audio after which the frame on screen counts as "at rest"
# A wait gives up this long after the media it waits for should have played (a late event loop
# on a busy machine stays well inside it); it then warns and counts in stats.waits_given_up.
_WAIT_SLACK_S = 0.5
# On a busy machine the native side can take tens of ms to accept a capture, or the loop wakes
# late: the source then runs dry, plays that audio later than the playout model says, and video
# (timed by the model) leads the sound. After such a hiccup the audio lead grows by the delay
# seen (up to this), so the next one is absorbed by what the source still holds; it decays back.
_MAX_LEAD_EXTRA_S = 0.1
_LEAD_DECAY = 0.998  # per chunk handed: the extra lead halves in ~7 s of audio
_LATE_CAPTURE_S = 0.015  # a capture this slow may have landed late: the model follows it
_CALLBACK_S = 0.005  # what of that delay is taken as the completion reaching the event loop
# After a pause the probe's reports of audio emitted just before it are still on their way (the
# source's tick thread, the FFI, the event loop): the unplayed rest is taken back this much later.
_SETTLE_S = 0.05
_SETTLE_MAX_S = 0.5  # ...or later, once the probe has read the silence after the pause (a busy
# machine delivers its reports late); past this the playout model decides


class AVSynchronizer(TaskOwner):
    """Lip-syncs audio and video into LiveKit sources, with audio as the master clock.

    A drop-in superset of ``livekit.rtc.AVSynchronizer``: same constructor keywords and methods.
    Audio is re-chunked to 20 ms and handed to the ``AudioSource`` only ~``audio_lead_ms`` ahead
    of playout, so the synchronizer always knows which media time is playing; every video frame
    leaves when the audio it belongs to plays, at most ``video_fps`` on average, and the last one
    is repeated when none is due.

    How frames are related (``sync_mode``):

    - ``"timestamps"``: audio and video timestamps share one media clock (in-process avatars,
      recordings, ``rtc.AVSynchronizer`` callers that pass timestamps). Audio ``timestamp`` is the
      frame's *end* time, video's its presentation time; PyAV frames pushed without one use their
      own ``pts``/``time_base``. Audio waits (up to ``max_video_wait_ms``) for the video of the same
      media time, so a video stream that lags its audio still plays in sync.
    - ``"arrival"``: the clocks are unrelated (two WebRTC tracks) or absent. A video frame is due
      at its arrival time plus the audio queued at that moment plus ``av_offset`` (set it to minus
      the provider's typical video lag).
    - ``"auto"`` (default): ``"timestamps"`` if the first frame pushed has a timestamp, else
      ``"arrival"``; decided again after ``reset()``.

    Interrupts: ``clear_queue()`` silences audio within the source's 10 ms tick, shows the frame
    last seen while the avatar was quiet (or ``set_idle_frame()``), bumps ``epoch``, and closes the
    stale-tail gate: frames pushed with an older ``epoch=`` are dropped, and untagged frames still
    in flight from the interrupted turn are dropped until the provider's audio has been quiet for
    ``gate_quiet_ms`` (see :class:`~livekit_avsync.sync.gate.StaleGate`). The source's own queue is
    cleared a second time once a capture that was in flight during the clear has landed.

    The audio clock follows what the source really emits: a private reader of its own track
    reports every 10 ms tick, and the playout model moves onto them when it is off (the native
    tick thread starved on a busy machine, or a wrong ``audio_latency_ms``, which is only the
    starting estimate); ``stats.playout_corrections`` counts the moves.

    Backpressure: ``push`` of audio waits while more than ``audio_buffer_ms`` is queued, ``push`` of
    video while its queue reaches further ahead of the audio clock than the larger of
    ``video_queue_size_ms`` and the audio buffer; nothing grows without bound.
    """

    def __init__(
        self,
        *,
        audio_source: rtc.AudioSource,
        video_source: rtc.VideoSource,
        video_fps: float,
        video_queue_size_ms: float = 100,
        _max_delay_tolerance_ms: float = 300,
        sync_mode: SyncMode = "auto",
        av_offset: float = 0.0,
        audio_buffer_ms: float = 500,
        audio_lead_ms: float = 50,
        max_video_wait_ms: float = 400,
        gate_quiet_ms: float = 250,
        gate_max_ms: float = 2000,
        quiet_dbfs: float = -50.0,
        audio_latency_ms: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(audio_source, rtc.AudioSource):
            raise TypeError(
                f"audio_source must be rtc.AudioSource, got {type(audio_source).__name__}"
            )
        if not isinstance(video_source, rtc.VideoSource):
            raise TypeError(
                f"video_source must be rtc.VideoSource, got {type(video_source).__name__}"
            )
        if (
            not isinstance(video_fps, (int, float))
            or not math.isfinite(video_fps)
            or video_fps <= 0
        ):
            raise ValueError(f"video_fps must be a positive number, got {video_fps!r}")
        for name, value in (
            ("video_queue_size_ms", video_queue_size_ms),
            ("audio_buffer_ms", audio_buffer_ms),
            ("audio_lead_ms", audio_lead_ms),
            ("max_video_wait_ms", max_video_wait_ms),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        self._audio_source = audio_source
        self._video_source = video_source
        self._video_fps = float(video_fps)
        self._video_queue_size_ms = video_queue_size_ms
        self._clock: Clock = clock or MonotonicClock()
        self._aligner = Aligner(mode=sync_mode, av_offset=av_offset, video_interval=1 / video_fps)
        self._playout = AudioPlayout(latency=audio_latency_ms / 1000)
        self._video = VideoScheduler(self._video_fps)
        self._gate = StaleGate(
            quiet=gate_quiet_ms / 1000, max_wait=gate_max_ms / 1000, video_hold=max(0.0, -av_offset)
        )
        self._audio_buffer = audio_buffer_ms / 1000
        self._audio_lead = max(audio_lead_ms / 1000, _CHUNK_S)
        self._max_video_wait = max_video_wait_ms / 1000
        self._video_limit = max(video_queue_size_ms / 1000, self._audio_buffer + 0.25)
        self._quiet_rms = 32768.0 * 10 ** (quiet_dbfs / 20)

        self._queue = AudioQueue(audio_source.sample_rate, quiet_rms=self._quiet_rms)
        self._handed: deque[tuple[PlayedSegment, AudioChunk]] = deque()  # not yet played
        self._ledger: PlayedLedger[tuple[AudioChunk, PlayedSegment]] = PlayedLedger(
            audio_source.sample_rate, audio_source.num_channels
        )
        self._probe: SourceProbe[tuple[AudioChunk, PlayedSegment]] | None = None
        self._settle_at: float | None = None  # a pause's unplayed audio is taken back then
        self._settle_model: list[AudioChunk] = []  # what the playout model says did not play
        self._settle_s = 0.0  # seconds of that: queued, until it is re-queued
        self._source_clears = 0  # pauses and clears of the native queue
        self._pause_stats = {"exact": 0, "estimated": 0}
        self._cleared_s = 0.0  # seconds dropped by interrupts, queued here or in the source
        self._paused_at: float | None = None
        self._paused_head: float | None = None
        self._paused_buffer = max(self._audio_buffer, 3.0)
        self._converter = AudioConverter(audio_source.sample_rate, audio_source.num_channels)
        self._resampler_lag = 0.0  # s of input the resampler holds back (its filter delay)
        self._last_audio_ts: float | None = None  # producer timestamp of the last audio pushed
        self._fresh = False  # a clear happened: the next admitted audio plays at once
        self._waits_given_up = 0
        self._foreign_logged = False
        self._lead_extra = 0.0  # s of audio lead added after hiccups (see _MAX_LEAD_EXTRA_S)
        self._epoch = 0
        self._closed = False
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        TaskOwner.__init__(self)  # an instance never closed says so once, when collected
        self._pump_wake = Waker(self._clock)
        self._video_wake = Waker(self._clock)
        self._progress: asyncio.Future[None] | None = None  # made only while someone waits
        self._capturing = False
        self._capture_landed: asyncio.Future[None] | None = None  # made only by a clear
        self._audio_waits_video = False

        self._video_anchor: tuple[float, float] | None = None  # (session ts, wall) before audio
        self._video_high = -math.inf  # newest video session ts pushed
        self._last_video_push = -math.inf
        self._video_seen = False
        self._rest: QueuedFrame | None = None
        self._idle_override: QueuedFrame | None = None
        self._show_rest = False
        self._quiet_since: float | None = None
        self._stamper = FrameStamper(self._video_fps)
        self._offset_ema: float | None = None
        self._last_video_time = 0.0
        self._counts = dict.fromkeys(
            (
                "audio_in",
                "video_in",
                "chunks_out",
                "video_out",
                "repeated",
                "dropped_late",
                "audio_stale",
                "video_stale",
                "video_cleared",
            ),
            0,
        )

    # -- public API (rtc.AVSynchronizer) -------------------------------------------------------

    async def push(
        self,
        frame: rtc.AudioFrame | rtc.VideoFrame | av.AudioFrame | av.VideoFrame,
        timestamp: float | None = None,
        *,
        epoch: int | None = None,
    ) -> None:
        """Queue a frame; waits while the queues are full (backpressure).

        ``timestamp`` is seconds on the producer's media clock: the *end* time of an audio frame,
        the presentation time of a video frame. ``epoch`` (optional) is the value of
        :attr:`epoch` when the frame's turn started: frames of an older epoch are dropped.
        """
        self._check_usable()
        check_frame(frame)  # malformed frames never reach native code: ValueError naming the field
        if timestamp is not None and not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        if isinstance(frame, (rtc.AudioFrame, av.AudioFrame)):
            await self._push_audio(frame, timestamp, epoch)
        elif isinstance(frame, (rtc.VideoFrame, av.VideoFrame)):
            await self._push_video(frame, timestamp, epoch)
        else:
            raise TypeError(
                "push() takes rtc.AudioFrame, rtc.VideoFrame, av.AudioFrame or av.VideoFrame, "
                f"got {type(frame).__name__}"
            )

    async def clear_queue(self) -> None:
        """Interrupt: drop everything queued and stop audio and speaking video at once."""
        self.clear_queue_nowait()
        if self._capture_landed is not None and not self._capture_landed.done():
            await asyncio.shield(self._capture_landed)

    def clear_queue_nowait(self) -> None:
        """``clear_queue()`` without waiting: for callbacks that cannot await (barge-in).

        Everything happens at once; a 20 ms capture that was in flight is cleared again as soon as
        it lands (``clear_queue()`` also waits for that).
        """
        self._check_usable()
        now = self._clock.now()
        self._aligner.rewind_to(self._media_now(now))  # dropped media does not move the timeline
        self._video_anchor = None  # the next admitted media defines the clock again
        self._fresh = True
        self._epoch += 1
        self._gate.close(now)
        self._cleared_s += self._queue.clear() + self._settle_s + self._playout.queued(now)
        self._handed.clear()
        self._settle_at = None  # a pause's unplayed audio is discarded with the rest
        self._settle_model = []
        self._settle_s = 0.0
        self._converter.drop()  # its buffered tail belongs to the interrupted turn
        self._resampler_lag = 0.0
        self._audio_source.clear_queue()
        self._source_clears += 1
        self._ledger.clear()
        self._playout.clear(now)
        self._counts["video_cleared"] += self._video.clear()
        if self._paused_at is not None:
            self._paused_head = self._media_now(now)
        if (self._idle_override or self._rest) is not None:
            self._show_rest = True
        self._video_wake.wake()
        self._signal_progress()
        if self._capturing and self._capture_landed is None:
            # a capture in flight lands in the native queue after this clear: the audio loop
            # clears it again when it returns, and resolves this future
            self._capture_landed = asyncio.get_running_loop().create_future()

    def pause(self) -> None:
        """Stop audio at once and hold a non-speaking frame; queued media waits for ``resume()``.

        Audio already handed to the source but not yet played is taken back to the sample (as
        the source's own track reports what it emitted, ~50 ms later), so what had not played
        comes back exactly once, in order; while paused the queues may hold up to 3 s before
        pushes wait.
        """
        self._check_usable()
        if self._paused_at is not None:
            return
        now = self._clock.now()
        self._paused_head = self._media_now(now)
        self._paused_at = now
        if self._settle_at is None:  # else nothing was handed since the last pause's clear
            self._audio_source.clear_queue()
            self._source_clears += 1
            self._ledger.pause()
            self._playout.rewind(now)
            back = [chunk for seg, chunk in self._handed if seg.wall_start >= now]
            self._handed.clear()
            self._settle_model = back
            self._settle_s = sum(c.samples.shape[0] for c in back) / self._audio_source.sample_rate
            self._settle_at = now + _SETTLE_S
            self._pump_wake.wake()
        if (self._idle_override or self._rest) is not None:
            self._show_rest = True
        self._video_wake.wake()

    def _take_back(self) -> None:
        """Re-queue what the pause found unplayed: the probe's account, exact to the sample (every
        report matched what was handed, and all of them are in), else the playout model's."""
        rate = self._audio_source.sample_rate
        model, model_s = self._settle_model, self._settle_s
        self._settle_at, self._settle_model, self._settle_s = None, [], 0.0
        settled = self._ledger.settled()
        exact = self._ledger.take_back()
        back = model
        if exact is not None and settled and self._probe is not None and self._probe.alive:
            back = [u.tag[0].cut(u.offset) for u in exact]
        self._pause_stats["exact" if back is not model else "estimated"] += 1
        back_s = sum(c.samples.shape[0] for c in back) / rate
        self._playout.unhand(back_s - model_s)  # the model took back model_s: correct it
        self._queue.put_back(back)

    def resume(self) -> None:
        """Continue after ``pause()``: audio and video carry on in sync from where they stopped."""
        self._check_usable()
        if self._paused_at is None:
            return
        self._paused_at = None
        self._paused_head = None
        self._video.reset_pacing()
        self._pump_wake.wake()
        self._video_wake.wake()
        self._signal_progress()

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    async def wait_for_playout(self) -> None:
        """Wait until every queued audio chunk has played and every queued video frame has left.

        The resampler's buffered tail is flushed first (the turn has ended), so it plays too. The
        wait is bounded by the media queued (more is allowed for media pushed meanwhile); past
        that it warns, counts in ``stats.waits_given_up`` and returns.
        """
        self._check_usable()
        self._flush_resampler()
        admitted = self._queue.admitted
        deadline = self._clock.now() + self._media_left() + _WAIT_SLACK_S
        while True:
            self._check_usable()
            now = self._clock.now()
            queued = self._playout.queued(now)
            if not self._queue and queued <= 0 and not len(self._video) and self._settle_at is None:
                return
            deadline += self._queue.admitted - admitted  # audio pushed meanwhile is waited for
            admitted = self._queue.admitted
            if now >= deadline:
                self._give_up("wait_for_playout()", now - deadline + self._media_left())
                return
            await self._progress_wait(timeout=max(0.002, min(queued, 0.05, deadline - now)))

    def _media_left(self) -> float:
        """Seconds until everything queued now should have played and left."""
        now = self._clock.now()
        audio = self._queued_s() + self._playout.queued(now)
        newest = self._video.newest_ts()
        video = 0.0
        if newest is not None:
            due = self._due_of(newest)
            video = due - now if math.isfinite(due) else self._max_video_wait + audio
        return max(audio, video, 0.0)

    def _log_foreign_clocks(self) -> None:
        if self._aligner.foreign_clocks and not self._foreign_logged:
            self._foreign_logged = True
            logger.warning(
                "AVSynchronizer: audio and video timestamps are on unrelated clocks (first "
                "frames more than %.0f s apart): synchronising by arrival (sync_mode='arrival')",
                FOREIGN_CLOCK_S,
            )

    def _give_up(self, what: str, behind: float) -> None:
        self._waits_given_up += 1
        log = logger.warning if self._waits_given_up == 1 else logger.debug
        log(
            "AVSynchronizer: %s gave up waiting (media still %.0f ms from playing); "
            "see stats.waits_given_up",
            what,
            behind * 1000,
        )

    def reset(self) -> None:
        """Start a new timeline: the next frames' timestamps are not related to earlier ones."""
        self._aligner.reset()
        self._video.reset_pacing()
        self._stamper.reset_rate()

    async def __aenter__(self) -> AVSynchronizer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the synchronizer and cancel its tasks. Idempotent; pushes afterwards raise."""
        if self._closed:
            return
        self._closed = True
        probe, self._probe = self._probe, None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if probe is not None:
            await probe.aclose()
        self._signal_progress()

    @property
    def actual_fps(self) -> float:
        """Frames per second actually handed to the VideoSource over the last second."""
        return self._stamper.fps

    @property
    def last_video_time(self) -> float:
        """Timestamp (producer clock) of the last video frame handed to the VideoSource."""
        return self._last_video_time

    @property
    def last_audio_time(self) -> float:
        """Timestamp (producer clock) of the audio playing out now."""
        now = self._clock.now()
        head = self._playout.playhead(now)
        if head is None:
            return 0.0
        return head - self._playout.raw_offset_at(now)

    # -- additions -----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """Bumped by every ``clear_queue()``; tag frames with it so stale ones can be dropped."""
        return self._epoch

    @property
    def sync_mode(self) -> SyncMode:
        """The mode in force (``"auto"`` until the first frame decides it)."""
        return self._aligner.mode

    @property
    def audio_admitted(self) -> float:
        """Seconds of audio accepted so far (a position in the stream of pushed audio)."""
        return self._queue.admitted

    @property
    def audio_stream_position(self) -> float:
        """How far into the pushed audio the playhead is (audio dropped by interrupts counts as
        passed), on the same scale as :attr:`audio_admitted`: marks taken from one can be compared
        with the other to tell how much of a stretch of audio has really played."""
        queued = self._queued_s() + self._playout.queued(self._clock.now())
        return self._queue.admitted - queued

    @property
    def playback_position(self) -> float:
        """Seconds of audio that have really played out through the AudioSource."""
        return self._playout.played(self._clock.now())

    def set_idle_frame(self, frame: rtc.VideoFrame | av.VideoFrame) -> None:
        """The frame to show after an interrupt (default: the last frame shown while quiet)."""
        self._idle_override = QueuedFrame(0.0, video_to_rtc(frame))

    @property
    def stats(self) -> SyncStats:
        now = self._clock.now()
        c = self._counts
        head = self._media_now(now)
        newest = self._video.newest_ts()
        video_q = 0.0 if newest is None or head is None else max(0.0, newest - head)
        a = self._aligner
        return SyncStats(
            mode=a.mode,
            epoch=self._epoch,
            audio_frames_in=c["audio_in"],
            video_frames_in=c["video_in"],
            audio_chunks_out=c["chunks_out"],
            video_frames_out=c["video_out"],
            video_repeated=c["repeated"],
            video_dropped_late=c["dropped_late"],
            audio_dropped_stale=c["audio_stale"],
            video_dropped_stale=c["video_stale"],
            audio_cleared_ms=self._cleared_s * 1000,
            video_cleared=c["video_cleared"],
            audio_underruns=self._playout.underruns,
            timestamps_missing=a.missing_timestamps,
            timestamps_non_monotonic=a.non_monotonic,
            timestamp_jumps=a.jumps,
            audio_queue_ms=(self._queued_s() + self._playout.queued(now)) * 1000,
            video_queue_ms=video_q * 1000,
            av_offset_ms=(self._offset_ema or 0.0) * 1000,
            playback_position=self._playout.played(now),
            waits_given_up=self._waits_given_up,
            foreign_clocks=a.foreign_clocks,
            pauses_exact=self._pause_stats["exact"],
            pauses_estimated=self._pause_stats["estimated"],
            playout_corrections=self._playout.corrections,
            audio_emitted=(
                self._ledger.reported / self._audio_source.sample_rate
                if self._probe is not None and self._probe.alive
                else None
            ),
        )

    # -- input ---------------------------------------------------------------------------------

    async def _push_audio(
        self, frame: rtc.AudioFrame | av.AudioFrame, timestamp: float | None, epoch: int | None
    ) -> None:
        if timestamp is None and isinstance(frame, av.AudioFrame):
            start = av_frame_time(frame)
            if start is not None:
                timestamp = start + frame.samples / frame.sample_rate
        rate, _, count = frame_samples(frame)
        if count <= 0:
            raise ValueError("audio frame is empty (0 samples)")
        if epoch is not None and epoch != self._epoch:
            self._counts["audio_stale"] += 1
            return
        self._counts["audio_in"] += 1
        if self._converter.changes_format(frame):
            self._flush_resampler()  # a rate change: the old resampler's tail plays first
        samples = self._converter.push(frame)  # at the source's rate and channel count
        self._last_audio_ts = timestamp  # where a flushed resampler tail ends
        if self._converter.buffering:
            # the resampler holds back its filter delay: what comes out ends that much earlier
            out = samples.shape[0] / self._audio_source.sample_rate
            self._resampler_lag += count / rate - out
            if timestamp is not None and self._aligner.mode != "arrival":
                timestamp -= self._resampler_lag  # (arrival mode: a constant delay, no matter)
        if not samples.size or not self._admit_audio(samples, timestamp, epoch is not None):
            return
        await self._backpressure(
            "push(audio)", lambda: self._queued_s() - self._audio_limit(), self._queued_s()
        )

    def _admit_audio(self, samples: np.ndarray, timestamp: float | None, tagged: bool) -> bool:
        """Place audio on the timeline and queue it, unless the gate drops it (then the timeline
        is left as it was: dropped media never moves it)."""
        now = self._clock.now()
        duration = samples.shape[0] / self._audio_source.sample_rate
        before = self._aligner.checkpoint()
        start, end, raw_offset = self._aligner.audio(timestamp, duration, now)
        self._log_foreign_clocks()
        chunks = self._queue.cut(samples, start, end, raw_offset, now)
        if tagged:
            self._gate.open(now)
        if not self._gate.admit_audio(now, all(c.quiet for c in chunks), start):
            self._aligner.restore(before)
            self._counts["audio_stale"] += 1
            return False
        self._enqueue(chunks)
        return True

    def _flush_resampler(self) -> None:
        """Play the resampler's buffered tail (rate change, end of turn); it ends where the
        input did."""
        tail = self._converter.flush()
        self._resampler_lag = 0.0
        if tail.size:
            self._admit_audio(tail, self._last_audio_ts, False)

    async def _backpressure(self, what: str, excess: Callable[[], float], media: float) -> None:
        """Wait while ``excess()`` > 0, at most as long as that excess takes to play (plus
        slack): a wait that outlives the media it waits for warns and gives up."""
        first = excess()
        if first <= 0 or self._closed:
            return
        deadline = self._clock.now() + min(first, media) + _WAIT_SLACK_S
        while not self._closed and excess() > 0:
            left = deadline - self._clock.now()
            if left <= 0:
                self._give_up(what, excess())
                return
            await self._progress_wait(timeout=left)
            self._check_usable()

    def _enqueue(self, chunks: list[AudioChunk]) -> None:
        self._queue.add(chunks)
        self._ensure_tasks()
        if self._pump_wake.idle:
            self._pump_wake.wake()  # it sleeps with a deadline only while it has audio queued

    def _queued_s(self) -> float:
        """Seconds of audio waiting to be handed (a pause's unplayed audio included)."""
        return self._queue.seconds + self._settle_s

    async def _push_video(
        self, frame: rtc.VideoFrame | av.VideoFrame, timestamp: float | None, epoch: int | None
    ) -> None:
        if timestamp is None and isinstance(frame, av.VideoFrame):
            timestamp = av_frame_time(frame)
        rtc_frame = video_to_rtc(frame)
        if epoch is not None and epoch != self._epoch:
            self._counts["video_stale"] += 1
            return
        self._counts["video_in"] += 1
        now = self._clock.now()
        before = self._aligner.checkpoint()
        ts, _ = self._aligner.video(timestamp, now)
        self._log_foreign_clocks()
        if epoch is not None:
            self._gate.open(now)
        if not self._gate.admit_video(now, ts, timestamps=self._aligner.mode == "timestamps"):
            self._aligner.restore(before)  # dropped media never moves the timeline
            self._counts["video_stale"] += 1
            return
        self._video.push(QueuedFrame(ts, rtc_frame, timestamp))
        self._video_high = max(self._video_high, ts)
        self._last_video_push = now
        self._video_seen = True
        if self._video_anchor is None:
            self._video_anchor = (ts, now)
        self._ensure_tasks()
        if len(self._video) == 1 and (
            self._video_wake.idle or self._due_of(ts) < self._video_wake.deadline - 0.001
        ):
            self._video_wake.wake()  # a new head, due before the loop's planned wake-up
        if self._audio_waits_video:
            self._pump_wake.wake()
        await self._backpressure("push(video)", self._video_excess, math.inf)

    def _video_excess(self) -> float:
        """Seconds the video queue reaches further ahead of the clock than allowed (<= 0: ok)."""
        head = self._media_now(self._clock.now())
        newest = self._video.newest_ts()
        if head is None or newest is None:
            return 0.0
        limit = self._video_limit if self._paused_at is None else self._paused_buffer
        return newest - head - limit

    def _audio_limit(self) -> float:
        return self._audio_buffer if self._paused_at is None else self._paused_buffer

    # -- clock ---------------------------------------------------------------------------------

    def _media_now(self, now: float) -> float | None:
        """Session media time playing now: the audio's, or video free-running before any audio."""
        if self._paused_head is not None:
            return self._paused_head
        if self._playout.live:
            return self._playout.playhead(now)
        if self._video_anchor is None:
            return None
        ts0, t0 = self._video_anchor
        return ts0 + (now - t0)

    def _due_of(self, ts: float) -> float:
        wall = self._playout.wall_time_of(ts) if self._playout.live else None
        if wall is not None:
            return wall
        if self._queue and not (self._fresh and self._queue.head.quiet):
            return math.inf  # audio is about to start and will define the clock: wait for it
        if self._video_anchor is None:
            return self._clock.now()  # nothing defines the clock: show it at once
        if (
            self._playout.never_handed
            and self._clock.now() - self._video_anchor[1] < self._max_video_wait
        ):
            return math.inf  # give the audio a moment to arrive and define the clock first
        ts0, t0 = self._video_anchor
        return t0 + (ts - ts0)

    # -- tasks ---------------------------------------------------------------------------------

    def _ensure_tasks(self) -> None:
        if self._tasks or self._closed:
            return
        try:  # before the first capture: the probe must see every frame the source emits
            self._probe = SourceProbe(
                self._audio_source, self._ledger, owner=self, on_emitted=self._emitted
            )
        except Exception:
            logger.warning("AVSynchronizer: no playout probe; pauses are estimated", exc_info=True)
        self._tasks = [
            owned_task(self, self._run_guarded(self._audio_loop), name="avsync-audio"),
            owned_task(self, self._run_guarded(self._video_loop), name="avsync-video"),
        ]

    async def _run_guarded(self, loop_fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await loop_fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("AVSynchronizer task failed")
            self._error = exc
            self._signal_progress()

    def _check_usable(self) -> None:
        if not self._closed:  # a source closed under a live synchronizer: a clear error
            check_source_open(self._audio_source, "audio_source")
            check_source_open(self._video_source, "video_source")
        if self._error is not None:
            raise RuntimeError(f"AVSynchronizer failed: {self._error!r}") from self._error
        if self._closed:
            raise RuntimeError("AVSynchronizer is closed")

    def _signal_progress(self) -> None:
        fut, self._progress = self._progress, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _progress_wait(self, timeout: float | None = None) -> None:
        """Wait for the next hand-off, send or clear (or ``timeout``); many may wait at once."""
        if self._progress is None:
            self._progress = asyncio.get_running_loop().create_future()
        if timeout is None:
            await asyncio.shield(self._progress)  # a cancelled waiter must not cancel the others
        else:
            await asyncio.wait({self._progress}, timeout=timeout)

    async def _audio_loop(self) -> None:
        """Hand queued audio to the source in 20 ms chunks, ~audio_lead ahead of playout."""
        rate = self._audio_source.sample_rate
        channels = self._audio_source.num_channels
        # topped up two chunks per wake-up (half the wake-ups of one), from `low` to ~`low + 40 ms`:
        # about audio_lead queued on average (more after hiccups: see _MAX_LEAD_EXTRA_S)
        fill_to = 0.0
        while not self._closed:
            if self._settle_at is not None:
                left = self._settle_at - self._clock.now()
                if left > 0:
                    await self._pump_wake.sleep(left)
                    continue
                late = self._settle_at + _SETTLE_MAX_S - _SETTLE_S - self._clock.now()
                probing = self._probe is not None and self._probe.alive
                if probing and late > 0 and not self._ledger.settled():
                    await self._pump_wake.sleep(min(late, 0.01))  # its reports are late: wait
                    continue
                self._take_back()
            if not self._queue or self._paused_at is not None:
                fill_to = 0.0
                await self._pump_wake.sleep(None)
                continue
            now = self._clock.now()
            queued = self._playout.queued(now)
            low = max(self._audio_lead + self._lead_extra - _CHUNK_S, 0.01)
            if queued >= fill_to - _CHUNK_S / 2:
                if queued > low:
                    fill_to = 0.0
                    planned = now + queued - low
                    await self._pump_wake.sleep(queued - low)
                    self._hiccup(self._clock.now() - planned)  # woken late?
                    continue
                fill_to = low + 2 * _CHUNK_S
            head = self._queue.head
            wait = self._video_wait(head, now)
            if wait > 0:
                self._audio_waits_video = True
                try:
                    await self._pump_wake.sleep(wait)
                finally:
                    self._audio_waits_video = False
                continue
            self._queue.pop()
            self._fresh = False
            n = head.samples.shape[0]
            seg = self._playout.hand(
                now, head.start, head.end, n / rate, quiet=head.quiet, raw_offset=head.raw_offset
            )
            self._handed.append((seg, head))
            self._ledger.hand((head, seg), head.samples)
            while self._handed and self._handed[0][0].wall_start < now - 0.05:
                self._handed.popleft()
            if queued <= 0:
                self._video_wake.wake()  # audio (re)starts: the due times of queued video moved
            await self._capture_audio(
                rtc.AudioFrame(head.samples.tobytes(), rate, channels, n), seg
            )
            self._counts["chunks_out"] += 1
            self._signal_progress()

    async def _capture_audio(self, frame: rtc.AudioFrame, seg: PlayedSegment) -> None:
        """``capture_frame``, and clear the source again if an interrupt came while in flight.

        A slow capture (the native side busy) means the chunk may have reached the source late:
        the model is moved so it does not claim the chunk played before it was there.
        """
        epoch, clears = self._epoch, self._source_clears
        self._capturing = True
        started = self._clock.now()
        try:
            await self._audio_source.capture_frame(frame)
            now = self._clock.now()
            self._hiccup(now - started)
            # only a long one: a short delay is as likely the callback reaching us late as the
            # chunk reaching the source late; the chunk was there a moment before we heard
            late = now - started > _LATE_CAPTURE_S
            if late and epoch == self._epoch and self._playout.landed(seg, now - _CALLBACK_S):
                self._video_wake.wake()  # due times moved on
        finally:
            self._capturing = False
            landed, self._capture_landed = self._capture_landed, None
            if epoch != self._epoch and not self._closed:
                self._audio_source.clear_queue()  # it landed after the clear: drop it too
                self._playout.clear(self._clock.now())
            elif clears != self._source_clears and self._settle_at is not None:
                self._audio_source.clear_queue()  # landed after a pause: it is taken back too
                self._ledger.recleared()
                self._settle_at = max(self._settle_at, self._clock.now() + _SETTLE_S)
            if landed is not None and not landed.done():
                landed.set_result(None)

    def _emitted(self, handed: tuple[AudioChunk, PlayedSegment], sample: int) -> None:
        """The probe read back the audio from ``sample`` of a chunk handed: keep the playout
        model (the clock the video follows) on what the source really emits."""
        if self._paused_at is not None or self._settle_at is not None:
            return  # a pause took the model's queue back: nothing to follow until it resumes
        seg = handed[1]
        offset = sample / self._audio_source.sample_rate
        if self._playout.emitted(seg, offset, self._clock.now()):
            self._video_wake.wake()  # due times moved

    def _hiccup(self, delay: float) -> None:
        """A capture or a wake-up ``delay`` s late: grow the audio lead to absorb the next one."""
        if delay > 0.005:
            extra = min(delay + 0.01, _MAX_LEAD_EXTRA_S)
            if extra > self._lead_extra:
                self._lead_extra = extra
        else:
            self._lead_extra *= _LEAD_DECAY

    def _video_wait(self, head: AudioChunk, now: float) -> float:
        """Seconds the head audio chunk should still wait for its video to arrive (0: go).

        Audio that is not playing yet (start, after an interrupt or an underrun) waits until
        the video for its media time, the lead and one more frame of margin has arrived, so a
        video stream that lags its audio starts in sync. Once audio flows it only waits again if
        the video falls more than two frames behind: waiting on every frame's jitter would break
        the audio up into gaps. A video push wakes the wait early.
        """
        waited = now - head.arrival
        if waited >= self._max_video_wait:
            return 0.0
        flowing = self._playout.queued(now) > 0
        limit = self._max_video_wait - waited
        if self._video_seen:
            silent_for = now - self._last_video_push
            if silent_for >= self._max_video_wait:
                return 0.0  # video has stopped: do not hold audio hostage
            period = self._video.period
            if flowing:
                need = head.start - 2 * period
            elif self._fresh and head.quiet and self._aligner.mode == "timestamps":
                # quiet audio after a clear, on the video's own clock: no lips to sync and no lag
                # to absorb, so it plays once its video is there (arrival mode keeps the margin,
                # which is what absorbs the provider's video lag for the turns that follow)
                need = head.start
            else:
                need = head.start + self._audio_lead + period
            if self._video_high + 0.5 * period >= need:
                return 0.0
            limit = min(limit, self._max_video_wait - silent_for)
        elif flowing:
            return 0.0  # audio-only so far and already playing
        return max(limit, 0.0005)

    async def _video_loop(self) -> None:
        """Send each video frame when its audio plays; repeat the last one when none is due."""
        while not self._closed:
            now = self._clock.now()
            if self._show_rest:
                wait = self._video.send_wait(now)  # the rest frame obeys the rate cap too
                if wait > 0:
                    await self._video_wake.sleep(wait)
                    continue
                self._show_rest = False
                rest = self._idle_override or self._rest
                if rest is not None:
                    self._video.last = rest
                    self._video.mark_sent(now)
                    self._counts["repeated"] += 1  # shown before: a repeat, not a new frame
                    self._capture(rest, now)
                continue
            if self._paused_at is not None and self._video.last is not None:
                self._capture(self._video.last, now)  # hold the rest frame; receivers never stall
                self._counts["repeated"] += 1
                await self._video_wake.sleep(self._video.period)
                continue
            if self._video.last is None and not len(self._video):
                await self._video_wake.sleep(None)
                continue
            decision = self._video.decide(now, self._due_of)
            if decision.action == "send":
                assert decision.frame is not None
                self._counts["dropped_late"] += decision.dropped
                lateness = now - self._due_of(decision.frame.ts)
                self._offset_ema = (
                    lateness
                    if self._offset_ema is None
                    else self._offset_ema + 0.1 * (lateness - self._offset_ema)
                )
                if decision.frame.raw_ts is not None:
                    self._last_video_time = decision.frame.raw_ts
                self._capture(decision.frame, now)
                self._track_rest(decision.frame, now)
                self._signal_progress()
            elif decision.action == "repeat":
                assert decision.frame is not None
                self._counts["repeated"] += 1
                self._capture(decision.frame, now)
            else:
                await self._video_wake.sleep(min(decision.wake_at - now, 0.1))

    def _capture(self, item: QueuedFrame, now: float) -> None:
        """Hand a frame to the VideoSource, stamped with the media time playing (wall time
        elapsed when no clock is defined or the media time jumped, e.g. after an interrupt)."""
        ts_us = self._stamper.stamp(self._media_now(now), now)
        self._video_source.capture_frame(item.frame, timestamp_us=ts_us)
        self._counts["video_out"] += 1

    def _track_rest(self, item: QueuedFrame, now: float) -> None:
        """Remember the last frame shown after the audio had been quiet for a while.

        Quiet is judged by the audio over the frame's whole interval ``[ts, ts + period)``, so
        a speaking frame that leaves a moment early (during the silence before its speech), or
        whose time falls exactly where its speech starts, never becomes the rest frame.
        """
        loud = self._playout.loud_between(item.ts, item.ts + self._video.period)
        if not loud:
            if self._quiet_since is None:
                self._quiet_since = now
            if now - self._quiet_since >= _REST_AFTER_QUIET or self._rest is None:
                self._rest = item
        else:
            self._quiet_since = None
