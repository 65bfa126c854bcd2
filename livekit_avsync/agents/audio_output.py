"""The AgentSession's audio output: TTS audio goes to the avatar provider, playback is reported
from what the synchronizer has really played."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities

from ..output.synchronizer import AVSynchronizer
from ..providers.base import AvatarProvider
from .playback import Turn

__all__ = ["AvatarAudioOutput"]

logger = logging.getLogger("livekit_avsync")

_MATCH_SLACK = 0.005  # s: a turn whose output speech is this close to its input is complete
_STALL_S = 1.0  # s without any new provider audio after a turn's input ended: the output is over
_SILENT_TURN_S = 3.0  # s past its own length with no speech out: the provider dropped the turn


_RUN_GAP_S = 0.06  # s the playhead of a turn may stand still before its stretch counts as ended


@dataclass(slots=True)
class _Run:
    """A stretch of a turn that plays without a break, in seconds of the turn's audio."""

    offset: float
    played: float
    moved_at: float  # time.time() the position last moved
    started_at: float  # time.time() the stretch began to play
    ended: bool = False


class AvatarAudioOutput(AudioOutput):
    """Forwards the agent's speech to the provider; reports playback at the true playout.

    ``on_playback_started`` fires when the first audio of a turn actually plays out of the
    AudioSource; ``on_playback_progressed`` for each stretch that played without a break (ended
    by a pause, an underrun, an interrupt or the turn's end); ``on_playback_finished`` when it has
    all played, or at an interrupt with the position the listener really heard, so the session
    (and a TranscriptSynchronizer in front) truncates the transcript correctly. Supports
    ``pause()``/``resume()``, so the session's false-interruption handling works.

    It is the tail of the session's audio chain (``replace_audio_tail``): wrappers RoomIO puts in
    front stay. Speech waits for ``ready`` (the avatar's audio track published and subscribed, as
    RoomIO's own output waits for its track) so nothing is played to nobody. Once closed it never
    forwards again: each turn is reported finished at once, with nothing played.
    """

    def __init__(
        self,
        *,
        provider: AvatarProvider,
        synchronizer: AVSynchronizer,
        on_interrupt: Callable[[], None],
    ) -> None:
        super().__init__(
            label="livekit-avsync",
            capabilities=AudioOutputCapabilities(pause=True),
            next_in_chain=None,
            sample_rate=None,
        )
        self._provider = provider
        self._sync = synchronizer
        self._on_interrupt = on_interrupt
        self._turns: deque[Turn] = deque()  # oldest first: playing, then the one being captured
        self._capturing: Turn | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._admitted_seen = 0.0
        self._admitted_changed = time.monotonic()
        self._closed = False
        self._closed_ev = asyncio.Event()
        self._ready: asyncio.Event | None = None
        self._run: _Run | None = None  # the stretch of the head turn playing now

    def set_ready(self, ready: asyncio.Event | None) -> None:
        """Speech waits for ``ready`` before it is forwarded (None: no wait)."""
        self._ready = ready

    def switch(self, provider: AvatarProvider, synchronizer: AVSynchronizer) -> None:
        """Go on with another provider and synchronizer (the voice-only fallback): turns under
        way end where the listener got to (the one being captured when its input ends, its
        remaining audio dropped), and later turns go to ``provider``."""
        self._cut_all(self._sync.audio_stream_position)
        self._provider, self._sync = provider, synchronizer
        self._admitted_seen, self._admitted_changed = 0.0, time.monotonic()

    # -- AudioOutput ---------------------------------------------------------------------------

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        ready = self._ready
        if ready is not None and not ready.is_set() and not self._closed:
            await _first_of(ready, self._closed_ev)
        await super().capture_frame(frame)
        if self._capturing is None:
            self._capturing = Turn()
            if self._closed:  # the avatar is gone: nothing of this segment ever plays
                self._capturing.cut = 0.0
            else:
                self._turns.append(self._capturing)
        turn = self._capturing
        turn.speech_in += frame.duration
        if turn.cut is None:  # a cut turn's audio is dropped, never sent to a closed provider
            await self._provider.push_audio(frame)

    def flush(self) -> None:
        super().flush()
        turn, self._capturing = self._capturing, None
        if turn is None:
            return
        turn.input_done = True
        turn.done_at = time.monotonic()
        if turn.cut is not None:
            self._report_cut(turn)
        elif not self._closed:
            self._spawn(self._provider.end_turn())

    def clear_buffer(self) -> None:
        position = self._sync.audio_stream_position if not self._closed else 0.0
        self._on_interrupt()
        turn = self._capturing
        if turn is not None and turn.cut is not None:
            self._capturing = None
            self._report_cut(turn)
        self._finish_all(position)

    def _finish_all(self, position: float) -> None:
        """Report every unfinished turn as interrupted (the first one at ``position``)."""
        unfinished = [t for t in self._turns if not t.finished]
        self._turns.clear()
        self._capturing = None
        for i, turn in enumerate(unfinished):
            turn.finished = True
            heard = turn.position(position) if i == 0 else 0.0
            if i == 0:
                self._end_run(heard)
            self.on_playback_finished(playback_position=heard, interrupted=True)
        self._run = None

    def _cut_all(self, position: float) -> None:
        """Turns under way end at what was heard: reported now if their input is complete; the
        one still being captured is reported when its input ends (a TranscriptSynchronizer in
        front needs the segment's input done first), and its remaining audio is dropped."""
        unfinished = [t for t in self._turns if not t.finished]
        self._turns.clear()
        for i, turn in enumerate(unfinished):
            heard = turn.position(position) if i == 0 else 0.0
            if i == 0:
                self._end_run(heard)
            turn.cut = heard
            if turn is not self._capturing:
                self._report_cut(turn)
        self._run = None

    def _report_cut(self, turn: Turn) -> None:
        if not turn.finished:
            turn.finished = True
            self.on_playback_finished(playback_position=turn.cut or 0.0, interrupted=True)

    def pause(self) -> None:
        super().pause()
        if not self._closed:
            if self._turns:
                self._end_run(self._turns[0].position(self._sync.audio_stream_position))
            self._sync.pause()

    def resume(self) -> None:
        super().resume()
        if not self._closed:
            self._sync.resume()

    # -- fed by the AvatarSession --------------------------------------------------------------

    def on_provider_audio(self, before: float, after: float, speech: bool, flagged: bool) -> None:
        """A provider audio frame took stream marks [before, after) in the synchronizer."""
        if not speech:
            return
        for turn in self._turns:
            if turn.finished:
                continue
            if turn.input_done and turn.out_start is not None and turn.out_end is not None:
                out = turn.out_end - turn.out_start
                if out >= turn.speech_in - _MATCH_SLACK:
                    continue  # this turn's speech is all out: the frame belongs to the next one
            turn.on_output(before, after, speech, flagged)
            return

    def poll(self) -> None:
        """Fire playback events for what has really played (called every ~10 ms)."""
        if not self._turns or self._closed:
            return
        now = time.monotonic()
        position = self._sync.audio_stream_position
        admitted = self._sync.audio_admitted
        if admitted != self._admitted_seen:
            self._admitted_seen, self._admitted_changed = admitted, now
        stalled = now - self._admitted_changed > _STALL_S
        while self._turns:
            turn = self._turns[0]
            if not turn.started and turn.has_started(position):
                turn.started = True
                late = max(0.0, position - (turn.out_start or position))
                self.on_playback_started(created_at=time.time() - late)
            if turn.started:
                self._track_run(turn.position(position))
            if not (turn.is_complete(position, admitted) or self._gave_up(turn, position, stalled)):
                return
            self._turns.popleft()
            turn.finished = True
            if not turn.started:
                self.on_playback_started(created_at=time.time())
            heard = turn.position(position)
            self._end_run(heard)
            self._run = None
            self.on_playback_finished(playback_position=heard, interrupted=False)

    # -- playback_progressed -------------------------------------------------------------------

    def _track_run(self, played: float) -> None:
        """Follow the head turn's playout: a stretch opens when its position moves and ends when
        it stands still for ``_RUN_GAP_S`` (an underrun: the provider's speech came late)."""
        now = time.time()
        run = self._run
        if run is None:  # the turn began to play
            self._run = _Run(offset=0.0, played=played, moved_at=now, started_at=now - played)
        elif played > run.played:
            if run.ended:  # moving again after a gap: a new stretch
                begun = now - (played - run.played)
                self._run = _Run(offset=run.played, played=played, moved_at=now, started_at=begun)
            else:
                run.played, run.moved_at = played, now
        elif not run.ended and now - run.moved_at > _RUN_GAP_S:
            self._emit_run(run)

    def _end_run(self, played: float) -> None:
        """The stretch playing now is over (pause, interrupt, the turn's end) at ``played``."""
        run = self._run
        if run is None or run.ended:
            return
        run.played = max(run.played, played)
        self._emit_run(run)

    def _emit_run(self, run: _Run) -> None:
        run.ended = True
        if run.played > run.offset:
            self.on_playback_progressed(
                started_at=run.started_at, offset=run.offset, duration=run.played - run.offset
            )

    def _gave_up(self, turn: Turn, position: float, stalled: bool) -> bool:
        """The provider's output stopped short: finish the turn rather than hang the session."""
        if not turn.input_done or turn.done_at is None:
            return False
        if turn.out_start is None:
            return time.monotonic() - turn.done_at > turn.speech_in + _SILENT_TURN_S
        return stalled and position >= (turn.out_end or 0.0)

    async def aclose(self) -> None:
        """Stop forwarding; unfinished turns are reported as interrupted where they stood, and
        later calls from the session are harmless (the AgentSession may outlive the avatar)."""
        if not self._closed:
            self._closed = True
            self._closed_ev.set()
            self._cut_all(self._sync.audio_stream_position)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("avatar provider call failed", exc_info=task.exception())


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
