"""AvatarSession: attach an avatar provider to a livekit-agents AgentSession, lip-synced.

The lifecycle lives here (start in either order, close at any moment, the provider-failure
policy) because each step needs the others' state; publishing, forwarding, the audio output,
metrics, the voice-only provider and the task helpers are modules of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents.metrics.base import AvatarMetrics, Metadata
from livekit.agents.voice.avatar import AvatarSession as _AgentsAvatarSession
from livekit.agents.voice.io import AudioOutput

from ..background import TaskOwner, owned_task
from ..output.synchronizer import AVSynchronizer
from ..providers.base import AvatarProvider
from .audio_output import AvatarAudioOutput
from .chain import install_tail, roomio_subscribed
from .events import AvatarEvent, OnProviderFailure, ProviderFailedEvent
from .forwarding import MediaForwarder
from .metrics import SyncMetrics, SyncMetricsWindow
from .publishing import RoomAudioRemover, TrackPublisher
from .tasks import bounded, log_failure, settle
from .voice_only import VoiceOnly

if TYPE_CHECKING:
    from livekit.agents import AgentSession

__all__ = ["AvatarSession", "OnProviderFailure", "ProviderFailedEvent"]

logger = logging.getLogger("livekit_avsync")

_POLL_S = 0.01
_END_GRACE_S = 1.0  # after the provider's output ends: wait for its other stream, then playout
_TASK_CANCEL_S = 2.0  # how long a cancelled task may take to finish before it is abandoned


class AvatarSession(_AgentsAvatarSession[AvatarEvent], TaskOwner):
    """Runs an avatar provider for an AgentSession and publishes its lip-synced tracks.

    Use it the way livekit-agents' avatar plugins are used, before or after ``session.start``,
    with the room connected or not (``session.start`` connects it in a job)::

        avatar = AvatarSession(provider=LocalAvatar())
        await avatar.start(session, room=ctx.room)
        await session.start(agent=MyAgent(), room=ctx.room)

    It publishes the avatar's audio (SOURCE_MICROPHONE) and video (SOURCE_CAMERA) in one
    ``stream`` as soon as the room is connected, installs an :class:`AvatarAudioOutput` at the tail
    of the session's audio chain (``replace_audio_tail``: RoomIO's TranscriptSynchronizer and
    recorder stay in front; RoomIO's own agent audio track is unpublished), and runs the
    provider's output through an :class:`~livekit_avsync.AVSynchronizer`. Barge-in flushes the
    synchronizer and interrupts the provider at once. Closing (``aclose()``, session close, room
    disconnect, job shutdown) unpublishes the tracks, stops the provider and cancels every task.

    Events (``on(...)``): ``metrics_collected`` (livekit-agents' ``AvatarMetrics``: the join, and
    each turn's playback latency; also emitted on the AgentSession), ``sync_metrics``
    (:class:`~livekit_avsync.agents.SyncMetrics` every ``metrics_interval`` seconds and at close),
    ``provider_failed`` (:class:`ProviderFailedEvent`).

    ``on_provider_failure`` says what happens when the provider fails or leaves mid-session:
    ``"voice_only"`` (default) keeps the agent talking with audio only and unpublishes the video
    track; ``"end_session"`` shuts the AgentSession down cleanly.

    It subclasses livekit-agents' ``AvatarSession`` (the type, ``metrics_collected``,
    ``wait_for_join()``, per-turn ``AvatarMetrics``) but not its ``start()``/``aclose()``: the
    base needs a room and times the join from the room's connection, and its ``aclose()``
    removes the participant ``avatar_identity`` from the room, which here is the agent itself
    (this avatar publishes as the agent, not as a participant of its own).
    """

    def __init__(
        self,
        *,
        provider: AvatarProvider | None = None,
        video_width: int = 1280,
        video_height: int = 720,
        video_fps: float = 25.0,
        audio_sample_rate: int = 24000,
        audio_channels: int = 1,
        stream_name: str = "avatar",
        sync_options: dict[str, Any] | None = None,
        on_provider_failure: OnProviderFailure = "voice_only",
        metrics_interval: float | None = 5.0,
        close_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        TaskOwner.__init__(self)  # never closed: one warning when collected (background.py)
        if video_width <= 0 or video_height <= 0:
            raise ValueError(f"video size must be positive, got {video_width}x{video_height}")
        if video_fps <= 0:
            raise ValueError(f"video_fps must be positive, got {video_fps}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        if close_timeout <= 0:
            raise ValueError(f"close_timeout must be positive, got {close_timeout}")
        if on_provider_failure not in ("voice_only", "end_session"):
            raise ValueError(
                "on_provider_failure must be 'voice_only' or 'end_session', "
                f"got {on_provider_failure!r}"
            )
        if metrics_interval is not None and metrics_interval <= 0:
            raise ValueError(f"metrics_interval must be positive or None, got {metrics_interval}")
        if provider is None:
            from ..providers.local import LocalAvatar

            provider = LocalAvatar(
                width=video_width, height=video_height, fps=video_fps, sample_rate=audio_sample_rate
            )
        self._provider = provider
        self._label = provider.label
        self._width, self._height, self._fps = video_width, video_height, video_fps
        self._sample_rate, self._channels = audio_sample_rate, audio_channels
        self._stream_name = stream_name
        self._sync_options = dict(sync_options or {})
        self._on_failure: OnProviderFailure = on_provider_failure
        self._metrics_interval = metrics_interval
        self._close_timeout = close_timeout
        self._audio_source: rtc.AudioSource | None = None
        self._video_source: rtc.VideoSource | None = None
        self._sync: AVSynchronizer | None = None
        self._output: AvatarAudioOutput | None = None
        self._forwarder: MediaForwarder | None = None
        self._publisher: TrackPublisher | None = None
        self._remover: RoomAudioRemover | None = None
        self._window: SyncMetricsWindow | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retired: list[AvatarProvider] = []  # providers replaced by the voice-only fallback
        self._closing: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        self._failing: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Event | None = None  # set when start() has returned or raised
        self._restore: tuple[bool, AudioOutput | None] = (False, None)
        self._closed = False
        self._started_at: float | None = None
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = []
        self._rejected: Counter[str] = Counter()
        self._first_frame = asyncio.Event()  # a video frame has left for the VideoSource

    # -- accessors -----------------------------------------------------------------------------

    @property
    def provider(self) -> str:
        """The provider's name (livekit-agents' ``AvatarSession.provider``), e.g. ``"local"``."""
        return self._label

    @property
    def avatar_provider(self) -> AvatarProvider:
        """The provider driving the avatar now (a ``VoiceOnly`` one after a fallback)."""
        return self._provider

    @property
    def avatar_identity(self) -> str:
        """The avatar publishes as the agent: the room's local participant."""
        room = self._room
        return room.local_participant.identity if room is not None and room.isconnected() else ""

    @property
    def voice_only(self) -> bool:
        """True once the provider failed and the agent goes on with audio only."""
        return isinstance(self._provider, VoiceOnly)

    @property
    def synchronizer(self) -> AVSynchronizer:
        if self._sync is None:
            raise RuntimeError("AvatarSession is not started")
        return self._sync

    @property
    def audio_output(self) -> AvatarAudioOutput:
        if self._output is None:
            raise RuntimeError("AvatarSession is not started")
        return self._output

    @property
    def audio_source(self) -> rtc.AudioSource:
        if self._audio_source is None:
            raise RuntimeError("AvatarSession is not started")
        return self._audio_source

    @property
    def video_source(self) -> rtc.VideoSource:
        if self._video_source is None:
            raise RuntimeError("AvatarSession is not started")
        return self._video_source

    @property
    def publications(self) -> list[rtc.LocalTrackPublication]:
        return self._publisher.publications if self._publisher is not None else []

    @property
    def rejected_frames(self) -> dict[str, int]:
        """Provider frames dropped because they failed validation, by what was wrong
        (``"video.data"``, ``"audio.sample_rate"``, ``"video.wrong_kind"``...). Each kind is
        logged once as a warning; the session keeps running."""
        return dict(self._rejected)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, agent_session: AgentSession, room: rtc.Room | None = None) -> None:
        """Start the provider and take over the session's voice; publish when the room connects.

        Before or after ``agent_session.start(...)``, with ``room`` connected or not: it returns
        once the provider is up (and the tracks are published, if the room is connected), never
        waiting for a connection. ``room`` may be None to run without publishing (the sources are
        still fed, e.g. for local tests and the offline demo).
        """
        if self._closed:
            raise RuntimeError("AvatarSession is closed: start() cannot run after aclose()")
        if self._sync is not None:
            raise RuntimeError("AvatarSession.start() was already called")
        self._starting = asyncio.Event()
        self._started_at = time.time()
        try:
            await self._start(agent_session, room)
        except BaseException as exc:
            self._starting.set()
            if self._closed:  # aclose() came during start(): it tears everything down
                if self._publisher is not None:
                    await self._publisher.aclose()  # any published after the teardown's
                raise RuntimeError("AvatarSession was closed during start()") from exc
            await self.aclose()  # a failed start leaves nothing open
            raise
        finally:
            self._starting.set()

    async def _start(self, agent_session: AgentSession, room: rtc.Room | None) -> None:
        self._room, self._agent_session = room, agent_session
        self._audio_source = rtc.AudioSource(self._sample_rate, self._channels, queue_size_ms=100)
        self._video_source = rtc.VideoSource(self._width, self._height)
        self._sync = self._synchronizer_for(self._provider)
        self._output = AvatarAudioOutput(
            provider=self._provider, synchronizer=self._sync, on_interrupt=self._interrupt
        )
        self._forwarder = MediaForwarder(self._provider, self._sync, self._output, self._rejected)
        self._on_provider(self._provider)
        self._on(agent_session, "close", self._on_session_close)
        # the base class's handler: AvatarMetrics with each turn's playback latency
        self._on(agent_session, "conversation_item_added", self._on_conversation_item_added)
        await self._provider.start(room=room)
        self._check_not_closed()
        if room is not None:
            self._publisher = TrackPublisher(
                room,
                self._audio_source,
                self._video_source,
                stream_name=self._stream_name,
                on_failure=lambda exc: self._close_soon(f"publishing failed: {exc!r}"),
            )
            self._output.set_ready(self._publisher.subscribed)
            self._on(room, "disconnected", self._on_room_disconnected)
            self._publisher.start()
            await self._publisher.wait_published()  # at once if the room is connected
            self._check_not_closed()
        self._install(agent_session, room)
        self._window = SyncMetricsWindow(self._label, self._sync.stats)
        self._spawn_forwarding()
        for coro, name in (
            (self._poll_playback(), "avsync-playback"),
            (self._report_metrics(), "avsync-metrics"),
            (self._relay_subscription(), "avsync-subscribed"),
        ):
            self._spawn(coro, name)
        self._wait_avatar_join_task = asyncio.create_task(self._joined(), name="avsync-join")
        self._register_shutdown()

    def _synchronizer_for(self, provider: AvatarProvider) -> AVSynchronizer:
        assert self._audio_source is not None and self._video_source is not None
        options: dict[str, Any] = {
            "sync_mode": provider.sync_mode,
            "av_offset": -provider.video_lag,
        }
        if not isinstance(provider, VoiceOnly):
            options.update(self._sync_options)
        return AVSynchronizer(
            audio_source=self._audio_source,
            video_source=self._video_source,
            video_fps=self._fps,
            **options,
        )

    def _install(self, agent_session: AgentSession, room: rtc.Room | None) -> None:
        """Become the tail of the session's audio chain, keeping every wrapper in front; take
        RoomIO's own agent audio track down if RoomIO's output was the tail displaced."""
        assert self._output is not None
        whole, previous, displaced = install_tail(agent_session, self._output)
        self._restore = (whole, previous)
        if room is not None and displaced is not None and displaced.label == "RoomIO":
            assert self._publisher is not None
            self._remover = RoomAudioRemover(
                room, self._publisher.audio_track, roomio_subscribed(agent_session)
            )
            self._remover.start()

    async def aclose(self) -> None:
        """Unpublish the tracks, stop the provider, cancel every task. Idempotent.

        Safe at any moment: before, during (``start()`` then raises) or after ``start()``, twice
        or concurrently (every caller waits for the one teardown). When the avatar's output is
        the session's whole audio chain it is given back to what it was before ``start()``;
        inside a chain it stays, closed: it reports each later turn finished at once and never
        forwards audio. Bounded: a task that ignores cancellation is abandoned after a moment and
        a provider whose ``aclose()`` takes longer than ``close_timeout`` is left behind, both
        logged as errors.
        """
        self._closed = True
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._teardown(), name="avsync-close")
            self._close_task.add_done_callback(log_failure)
        if self._close_task is not asyncio.current_task():
            await asyncio.shield(self._close_task)

    def _check_not_closed(self) -> None:
        if self._closed:
            raise RuntimeError("AvatarSession was closed during start()")

    async def _teardown(self) -> None:
        for emitter, event, handler in self._listeners:
            with contextlib.suppress(Exception):
                emitter.off(event, handler)
        self._listeners.clear()
        session = self._agent_session
        whole, previous = self._restore
        if session is not None and whole and self._output is not None:
            with contextlib.suppress(Exception):
                if session.output.audio is self._output:
                    session.output.audio = previous
        starting = self._starting
        if starting is not None and not starting.is_set():
            # closing the provider first makes a start() that waits on it return at once
            await self._bounded(self._provider.aclose(), "avatar provider close")
            await self._bounded(starting.wait(), "start() ending after the close")
        tasks = list(self._tasks)
        for extra in (self._finishing, self._failing, self._closing, self._wait_avatar_join_task):
            if extra is not None and extra is not asyncio.current_task():
                tasks.append(extra)
        await settle(tasks, _TASK_CANCEL_S)
        self._tasks.clear()
        self._emit_sync_metrics(final=True)
        if self._output is not None:
            await self._output.aclose()
        if self._remover is not None:
            await self._remover.aclose()
        if self._publisher is not None:
            await self._publisher.aclose()
        for provider in [*self._retired, self._provider]:
            await self._bounded(provider.aclose(), "avatar provider close")
        if self._sync is not None:
            await self._sync.aclose()
        for source in (self._audio_source, self._video_source):
            if source is not None:
                await source.aclose()

    async def _bounded(self, aw: Any, what: str) -> None:
        await bounded(aw, what, self._close_timeout)

    # -- tasks ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = owned_task(self, coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _spawn_forwarding(self) -> None:
        forwarder = self._forwarder
        assert forwarder is not None
        self._spawn(forwarder.audio(), "avsync-forward-audio")
        self._spawn(forwarder.video(), "avsync-forward-video")

    def _forwarding(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if t.get_name().startswith("avsync-forward-")]

    async def _poll_playback(self) -> None:
        while not self._closed:
            self.audio_output.poll()
            if not self._first_frame.is_set() and self.synchronizer.stats.video_frames_out:
                self._first_frame.set()
            await asyncio.sleep(_POLL_S)

    async def _report_metrics(self) -> None:
        if self._metrics_interval is None:
            return
        while not self._closed:
            await asyncio.sleep(self._metrics_interval)
            self._emit_sync_metrics()

    def _emit_sync_metrics(self, *, final: bool = False) -> None:
        if self._window is None or self._sync is None:
            return
        report: SyncMetrics = self._window.report(
            self._sync.stats, fps=self._sync.actual_fps, final=final
        )
        logger.debug("avatar sync metrics: %s", report)
        self.emit("sync_metrics", report)

    async def _relay_subscription(self) -> None:
        """RoomIO's subscription future stands for the agent's voice being heard: the avatar's
        audio track being subscribed completes it once RoomIO's own track is gone."""
        if self._publisher is None:
            return
        await self._publisher.subscribed.wait()
        if self._remover is not None:
            self._remover.on_avatar_subscribed()

    async def _joined(self) -> None:
        """The avatar is visible once its video track is published and a frame has left:
        reported as livekit-agents' AvatarMetrics (``avatar_joined_time``); ends
        ``wait_for_join()``."""
        if self._publisher is not None:
            await self._publisher.published.wait()
        await self._first_frame.wait()
        joined = time.time()
        self._emit_metrics(
            AvatarMetrics(
                timestamp=joined,
                session_started_time=self._started_at,
                avatar_joined_time=joined,
                metadata=Metadata(model_provider=self._label),
            )
        )

    def _interrupt(self) -> None:
        """Barge-in: flush the synchronizer now and interrupt the provider."""
        if self._closed or self._forwarder is None:
            return
        self._forwarder.interrupted()
        self.synchronizer.clear_queue_nowait()
        logger.info("avatar interrupted: queued audio and video flushed")
        task = asyncio.create_task(self._provider.interrupt(), name="avsync-interrupt")
        task.add_done_callback(log_failure)

    # -- provider failure ----------------------------------------------------------------------

    def _provider_failed(self, reason: str, error: BaseException | None = None) -> None:
        """The provider failed or left: fall back to voice only, or end the session."""
        if self._closed or self._closing is not None or self._failing is not None:
            return
        if self.voice_only:  # the fallback itself ended: nothing is left to fall back to
            self._close_soon(f"voice-only output ended: {reason}")
            return
        if self._finishing is not None and self._finishing is not asyncio.current_task():
            self._finishing.cancel()
            self._finishing = None
        action = self._on_failure
        logger.warning("avatar provider %s failed (%s): %s", self._label, reason, action)
        event = ProviderFailedEvent(self._label, reason, error, action)
        if action == "end_session":
            self.emit("provider_failed", event)
            session = self._agent_session
            if session is not None:
                with contextlib.suppress(Exception):
                    session.shutdown(drain=False)
            self._close_soon(f"provider failed ({reason}): ending the session")
            return
        self._failing = asyncio.create_task(self._fall_back(event), name="avsync-fall-back")
        self._failing.add_done_callback(log_failure)

    async def _fall_back(self, event: ProviderFailedEvent) -> None:
        """Go on audio only: the agent's speech goes straight to the audio source."""
        old_provider, old_sync = self._provider, self.synchronizer
        current = asyncio.current_task()
        forwards = [t for t in self._forwarding() if t is not current]
        self._tasks = [t for t in self._tasks if t not in forwards]
        await settle(forwards, _TASK_CANCEL_S)
        with contextlib.suppress(RuntimeError):
            old_sync.clear_queue_nowait()  # the failed provider's speech stops where it was
        voice = VoiceOnly(replaces=self._label)
        sync = self._synchronizer_for(voice)
        self._emit_sync_metrics()  # the old synchronizer's last interval
        self.audio_output.switch(voice, sync)
        self._provider, self._sync = voice, sync
        self._forwarder = MediaForwarder(voice, sync, self.audio_output, self._rejected)
        self._window = SyncMetricsWindow(self._label, sync.stats)
        self._retired.append(old_provider)
        await voice.start()
        self._spawn_forwarding()
        await old_sync.aclose()
        if self._publisher is not None:
            await self._publisher.unpublish_video()
        self._failing = None
        logger.warning("avatar %s gone: the agent goes on with audio only", self._label)
        self.emit("provider_failed", event)
        await self._bounded(old_provider.aclose(), "failed avatar provider close")

    # -- events --------------------------------------------------------------------------------

    def _on(self, emitter: Any, event: str, handler: Callable[..., None]) -> None:
        emitter.on(event, handler)
        self._listeners.append((emitter, event, handler))

    def _on_provider(self, provider: AvatarProvider) -> None:
        self._on(provider, "disconnected", functools.partial(self._on_disconnected, provider))

    def _close_soon(self, why: str) -> None:
        if self._closing is None and not self._closed:
            logger.info("closing avatar session: %s", why)
            if self._finishing is not None:
                self._finishing.cancel()  # no time left for a graceful end
            self._closing = asyncio.create_task(self.aclose(), name="avsync-close-soon")
            self._closing.add_done_callback(log_failure)

    def _finish_soon(self) -> None:
        """The provider's output ended: let the rest arrive and play out, then handle it."""
        if self._finishing is None and self._closing is None and not self._closed:
            logger.info("avatar provider output ended: handled once it has played out")
            self._finishing = asyncio.create_task(self._finish(), name="avsync-finish")

    async def _finish(self) -> None:
        forwards = self._forwarding()
        if forwards:
            await asyncio.wait(forwards, timeout=_END_GRACE_S)  # the other stream's last frames
        sync = self.synchronizer
        try:
            queued = sync.stats.audio_queue_ms / 1000
            await asyncio.wait_for(sync.wait_for_playout(), queued + _END_GRACE_S)
        except (asyncio.TimeoutError, RuntimeError):
            pass  # a video stream that never drains, or a synchronizer that failed: go on
        self._finishing = None
        self._provider_failed("provider output ended and played out")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        name = task.get_name()
        if exc is not None:
            logger.error("avatar task %s failed", name, exc_info=exc)
            if name.startswith("avsync-forward-"):
                self._provider_failed(f"{name} failed: {exc!r}", exc)
            else:
                self._close_soon(f"{name} failed: {exc!r}")
        elif name.startswith("avsync-forward-"):
            self._finish_soon()

    def _on_room_disconnected(self, *args: Any) -> None:
        self._close_soon("room disconnected")

    def _on_session_close(self, *args: Any) -> None:
        self._close_soon("agent session closed")

    def _on_disconnected(self, provider: AvatarProvider, reason: str = "", *args: Any) -> None:
        if provider is self._provider:
            self._provider_failed(f"provider disconnected ({reason})")

    def _register_shutdown(self) -> None:
        try:
            from livekit.agents import get_job_context

            ctx = get_job_context(required=False)
        except Exception:
            ctx = None
        if ctx is not None:
            ctx.add_shutdown_callback(self.aclose)
