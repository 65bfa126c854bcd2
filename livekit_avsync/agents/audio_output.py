"""The AgentSession's audio output: TTS audio goes to the avatar provider, playback is reported
from what the synchronizer has really played."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
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


class AvatarAudioOutput(AudioOutput):
    """Forwards the agent's speech to the provider; reports playback at the true playout.

    ``on_playback_started`` fires when the first audio of a turn actually plays out of the
    AudioSource; ``on_playback_finished`` when it has all played, or at an interrupt with the
    position the listener really heard, so the session truncates the transcript correctly.
    Supports ``pause()``/``resume()``, so the session's false-interruption handling works.
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

    # -- AudioOutput ---------------------------------------------------------------------------

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._capturing is None:
            self._capturing = Turn()
            self._turns.append(self._capturing)
            if self._closed:
                self._finish_all(0.0)  # the avatar is gone: report the turn instead of hanging
        self._capturing.speech_in += frame.duration
        if not self._closed:
            await self._provider.push_audio(frame)

    def flush(self) -> None:
        super().flush()
        turn, self._capturing = self._capturing, None
        if turn is None:
            return
        turn.input_done = True
        turn.done_at = time.monotonic()
        if not self._closed:
            self._spawn(self._provider.end_turn())

    def clear_buffer(self) -> None:
        position = self._sync.audio_stream_position if not self._closed else 0.0
        self._on_interrupt()
        self._finish_all(position)

    def _finish_all(self, position: float) -> None:
        """Report every unfinished turn as interrupted (the first one at ``position``)."""
        unfinished = [t for t in self._turns if not t.finished]
        self._turns.clear()
        self._capturing = None
        for i, turn in enumerate(unfinished):
            turn.finished = True
            heard = turn.position(position) if i == 0 else 0.0
            self.on_playback_finished(playback_position=heard, interrupted=True)

    def pause(self) -> None:
        super().pause()
        if not self._closed:
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
            if not (turn.is_complete(position, admitted) or self._gave_up(turn, position, stalled)):
                return
            self._turns.popleft()
            turn.finished = True
            if not turn.started:
                self.on_playback_started(created_at=time.time())
            self.on_playback_finished(playback_position=turn.position(position), interrupted=False)

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
            position = self._sync.audio_stream_position
            self._closed = True
            self._finish_all(position)
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
