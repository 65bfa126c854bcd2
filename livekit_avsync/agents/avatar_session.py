"""AvatarSession: attach an avatar provider to a livekit-agents AgentSession, lip-synced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from livekit import rtc

from ..media.convert import audio_to_rtc
from ..media.validate import declared_samples
from ..output.synchronizer import AVSynchronizer
from ..providers.base import AvatarProvider, OutputFrame
from .audio_output import AvatarAudioOutput

if TYPE_CHECKING:
    from livekit.agents import AgentSession

__all__ = ["AvatarSession"]

logger = logging.getLogger("livekit_avsync")

_POLL_S = 0.01
_UNPUBLISH_TIMEOUT_S = 2.0  # an unpublish request the server does not answer in time is left
_END_GRACE_S = 1.0  # after the provider's output ends: wait for its other stream, then playout
_SPEECH_RMS = 32768.0 * 10 ** (-45 / 20)  # loudness that counts as speech for untagged audio
_TASK_CANCEL_S = 2.0  # how long a cancelled task may take to finish before it is abandoned


class AvatarSession:
    """Runs an avatar provider for an AgentSession and publishes its lip-synced tracks.

    Use it the way livekit-agents' avatar plugins are used::

        avatar = AvatarSession(provider=LocalAvatar())
        await avatar.start(session, room=ctx.room)
        await session.start(agent=MyAgent(), room=ctx.room)

    It publishes the avatar's audio (SOURCE_MICROPHONE) and video (SOURCE_CAMERA) in one
    ``stream`` so receivers lip-sync them, replaces the session's audio output with one that
    forwards TTS audio to the provider, and runs the provider's output through an
    :class:`~livekit_avsync.AVSynchronizer`. Barge-in flushes the synchronizer and interrupts the
    provider at once; frames the provider had in flight are dropped by generation or by the
    synchronizer's stale-tail gate. Closing (``aclose()``, session close or room disconnect)
    unpublishes the tracks, stops the provider and cancels every task.
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
        connect_timeout: float = 30.0,
        close_timeout: float = 60.0,
    ) -> None:
        if video_width <= 0 or video_height <= 0:
            raise ValueError(f"video size must be positive, got {video_width}x{video_height}")
        if video_fps <= 0:
            raise ValueError(f"video_fps must be positive, got {video_fps}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        if close_timeout <= 0:
            raise ValueError(f"close_timeout must be positive, got {close_timeout}")
        if provider is None:
            from ..providers.local import LocalAvatar

            provider = LocalAvatar(
                width=video_width, height=video_height, fps=video_fps, sample_rate=audio_sample_rate
            )
        self._provider = provider
        self._width, self._height, self._fps = video_width, video_height, video_fps
        self._sample_rate, self._channels = audio_sample_rate, audio_channels
        self._stream_name = stream_name
        self._sync_options = dict(sync_options or {})
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._room: rtc.Room | None = None
        self._agent_session: AgentSession | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._video_source: rtc.VideoSource | None = None
        self._sync: AVSynchronizer | None = None
        self._output: AvatarAudioOutput | None = None
        self._publications: list[rtc.LocalTrackPublication] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._min_generation = 0
        self._closing: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Event | None = None  # set when start() has returned or raised
        self._previous_output: Any = None
        self._closed = False
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = []
        self._rejected: Counter[str] = Counter()

    # -- accessors -----------------------------------------------------------------------------

    @property
    def provider(self) -> AvatarProvider:
        return self._provider

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
        return list(self._publications)

    @property
    def rejected_frames(self) -> dict[str, int]:
        """Provider frames dropped because they failed validation, by what was wrong
        (``"video.data"``, ``"audio.sample_rate"``, ``"video.wrong_kind"``...). Each kind is
        logged once as a warning; the session keeps running."""
        return dict(self._rejected)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, agent_session: AgentSession, room: rtc.Room | None = None) -> None:
        """Start the provider, publish the tracks and take over the session's audio output.

        Call it before ``agent_session.start(...)``. ``room`` may be None to run without
        publishing (the sources are still fed, e.g. for local tests and the offline demo).
        """
        if self._closed:
            raise RuntimeError("AvatarSession is closed: start() cannot run after aclose()")
        if self._sync is not None:
            raise RuntimeError("AvatarSession.start() was already called")
        self._starting = asyncio.Event()
        try:
            await self._start(agent_session, room)
        except BaseException as exc:
            self._starting.set()
            if self._closed:  # aclose() came during start(): it tears everything down
                await self._unpublish_tracks()  # any published after the teardown's unpublish
                raise RuntimeError("AvatarSession was closed during start()") from exc
            await self.aclose()  # a failed start leaves nothing open
            raise
        finally:
            self._starting.set()

    async def _start(self, agent_session: AgentSession, room: rtc.Room | None) -> None:
        self._room, self._agent_session = room, agent_session
        self._audio_source = rtc.AudioSource(self._sample_rate, self._channels, queue_size_ms=100)
        self._video_source = rtc.VideoSource(self._width, self._height)
        options: dict[str, Any] = {
            "sync_mode": self._provider.sync_mode,
            "av_offset": -self._provider.video_lag,
        }
        options.update(self._sync_options)
        self._sync = AVSynchronizer(
            audio_source=self._audio_source,
            video_source=self._video_source,
            video_fps=self._fps,
            **options,
        )
        self._output = AvatarAudioOutput(
            provider=self._provider, synchronizer=self._sync, on_interrupt=self._interrupt
        )
        self._on(self._provider, "disconnected", self._on_provider_disconnected)
        await self._provider.start(room=room)
        self._check_not_closed()
        if room is not None:
            await self._publish_tracks(room)
            self._check_not_closed()
        if room is not None:
            self._on(room, "disconnected", self._on_room_disconnected)
        self._on(agent_session, "close", self._on_session_close)
        self._previous_output = agent_session.output.audio
        agent_session.output.audio = self._output
        self._tasks = [
            asyncio.create_task(self._forward_audio(), name="avsync-forward-audio"),
            asyncio.create_task(self._forward_video(), name="avsync-forward-video"),
            asyncio.create_task(self._poll_playback(), name="avsync-playback"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        self._register_shutdown()

    async def aclose(self) -> None:
        """Unpublish the tracks, stop the provider, cancel every task. Idempotent.

        Safe at any moment: before, during (``start()`` then raises) or after ``start()``, twice
        or concurrently (every caller waits for the one teardown). The session's audio output
        is given back to what it was before ``start()``. Bounded: a task that ignores
        cancellation is abandoned after a moment and a provider whose ``aclose()`` takes longer
        than ``close_timeout`` is left behind, both logged as errors.
        """
        self._closed = True
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._teardown(), name="avsync-close")
            self._close_task.add_done_callback(_log_failure)
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
        if session is not None and self._output is not None:
            with contextlib.suppress(Exception):
                if session.output.audio is self._output:
                    session.output.audio = self._previous_output
        starting = self._starting
        if starting is not None and not starting.is_set():
            # closing the provider first makes a start() that waits on it return at once
            await self._bounded(self._provider.aclose(), "avatar provider close")
            await self._bounded(starting.wait(), "start() ending after the close")
        tasks = list(self._tasks)
        if self._finishing is not None:
            tasks.append(self._finishing)
        if self._closing is not None and self._closing is not asyncio.current_task():
            tasks.append(self._closing)
        await _settle(tasks, _TASK_CANCEL_S)
        self._tasks.clear()
        if self._output is not None:
            await self._output.aclose()
        await self._unpublish_tracks()
        await self._bounded(self._provider.aclose(), "avatar provider close")
        if self._sync is not None:
            await self._sync.aclose()
        for source in (self._audio_source, self._video_source):
            if source is not None:
                await source.aclose()

    async def _bounded(self, aw: Any, what: str) -> None:
        """Await ``aw`` for at most ``close_timeout``; log a failure or overrun and move on."""
        task = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({task}, timeout=self._close_timeout)
        if not done:
            logger.error("%s took more than %g s: abandoned", what, self._close_timeout)
            task.cancel()
            task.add_done_callback(_log_failure)
            return
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", what, exc_info=task.exception())

    # -- publishing ----------------------------------------------------------------------------

    async def _publish_tracks(self, room: rtc.Room) -> None:
        assert self._audio_source is not None and self._video_source is not None
        if not room.isconnected():
            await _wait_connected(room, timeout=self._connect_timeout)
        audio_track = rtc.LocalAudioTrack.create_audio_track("avatar_audio", self._audio_source)
        video_track = rtc.LocalVideoTrack.create_video_track("avatar_video", self._video_source)
        audio_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_MICROPHONE, stream=self._stream_name
        )
        video_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, stream=self._stream_name
        )
        participant = room.local_participant
        self._publications.append(await participant.publish_track(audio_track, audio_opts))
        self._publications.append(await participant.publish_track(video_track, video_opts))

    async def _unpublish_tracks(self) -> None:
        """Unpublish the avatar's tracks, bounded: once the room is gone (deleted, disconnected)
        they went with it, and an unpublish request then never gets its answer."""
        room, pubs = self._room, self._publications
        self._publications = []
        if room is None or not room.isconnected():
            return
        results = await asyncio.gather(
            *(
                asyncio.wait_for(
                    room.local_participant.unpublish_track(p.sid), _UNPUBLISH_TIMEOUT_S
                )
                for p in pubs
            ),
            return_exceptions=True,
        )
        for pub, result in zip(pubs, results, strict=True):
            if isinstance(result, asyncio.TimeoutError):
                logger.warning("unpublishing avatar track %s got no answer: left", pub.sid)
            elif isinstance(result, BaseException):
                logger.warning("could not unpublish avatar track %s: %r", pub.sid, result)

    # -- media ---------------------------------------------------------------------------------

    def _stale(self, item: OutputFrame) -> bool:
        return item.generation is not None and item.generation < self._min_generation

    def _epoch_for(self, item: OutputFrame) -> int | None:
        """Tagged frames of the current generation are known fresh: let them through the gate."""
        return self.synchronizer.epoch if item.generation is not None else None

    def _reject(self, kind: str, exc: Exception) -> None:
        """Drop a provider frame that failed validation: counted, logged once per kind."""
        field = getattr(exc, "field", None)
        key = field or f"{kind}.{type(exc).__name__}"
        self._rejected[key] += 1
        if self._rejected[key] == 1:
            why = str(exc) if field else f"{key}: {exc}"
            logger.warning("dropping %s frames from %s: %s", kind, self._provider.label, why)

    async def _forward_audio(self) -> None:
        sync, output = self.synchronizer, self.audio_output
        async for item in self._provider.audio_frames():
            if self._stale(item):
                continue
            if not isinstance(item.frame, (rtc.AudioFrame, av.AudioFrame)):
                self._reject("audio", _wrong_kind("audio", item.frame))
                continue
            before = sync.audio_admitted
            try:
                speech = item.speech
                if speech is None:
                    speech = _is_loud(audio_to_rtc(item.frame))
                # the frame goes in as it came: a PyAV frame keeps its pts for the synchronizer
                await sync.push(item.frame, item.timestamp, epoch=self._epoch_for(item))
            except (ValueError, TypeError) as exc:  # validation: the frame never went in
                self._reject("audio", exc)
                continue
            output.on_provider_audio(before, sync.audio_admitted, speech, item.speech is not None)

    async def _forward_video(self) -> None:
        sync = self.synchronizer
        async for item in self._provider.video_frames():
            if self._stale(item):
                continue
            if not isinstance(item.frame, (rtc.VideoFrame, av.VideoFrame)):
                self._reject("video", _wrong_kind("video", item.frame))
                continue
            try:
                await sync.push(item.frame, item.timestamp, epoch=self._epoch_for(item))
            except (ValueError, TypeError) as exc:
                self._reject("video", exc)

    async def _poll_playback(self) -> None:
        output = self.audio_output
        while not self._closed:
            output.poll()
            await asyncio.sleep(_POLL_S)

    def _interrupt(self) -> None:
        """Barge-in: flush the synchronizer now and interrupt the provider."""
        if self._closed:
            return
        self._min_generation = self._provider.generation + 1
        sync = self.synchronizer
        sync.clear_queue_nowait()
        logger.info("avatar interrupted: queued audio and video flushed")
        task = asyncio.create_task(self._provider.interrupt(), name="avsync-interrupt")
        task.add_done_callback(_log_failure)

    # -- events --------------------------------------------------------------------------------

    def _on(self, emitter: Any, event: str, handler: Callable[..., None]) -> None:
        emitter.on(event, handler)
        self._listeners.append((emitter, event, handler))

    def _close_soon(self, why: str) -> None:
        if self._closing is None and not self._closed:
            logger.info("closing avatar session: %s", why)
            if self._finishing is not None:
                self._finishing.cancel()  # no time left for a graceful end
            self._closing = asyncio.create_task(self.aclose(), name="avsync-close-soon")
            self._closing.add_done_callback(_log_failure)

    def _finish_soon(self) -> None:
        """The provider's output ended: let the rest arrive and play out, then close."""
        if self._finishing is None and self._closing is None and not self._closed:
            logger.info("avatar provider output ended: closing once it has played out")
            self._finishing = asyncio.create_task(self._finish(), name="avsync-finish")

    async def _finish(self) -> None:
        forwards = [t for t in self._tasks if t.get_name().startswith("avsync-forward-")]
        await asyncio.wait(forwards, timeout=_END_GRACE_S)  # the other stream's last frames
        sync = self.synchronizer
        try:
            queued = sync.stats.audio_queue_ms / 1000
            await asyncio.wait_for(sync.wait_for_playout(), queued + _END_GRACE_S)
        except (asyncio.TimeoutError, RuntimeError):
            pass  # a video stream that never drains, or a synchronizer that failed: close anyway
        self._finishing = None
        self._close_soon("provider output ended and played out")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:
            logger.error("avatar task %s failed", task.get_name(), exc_info=exc)
            self._close_soon(f"{task.get_name()} failed: {exc!r}")
        elif task.get_name() != "avsync-playback":
            self._finish_soon()

    def _on_room_disconnected(self, *args: Any) -> None:
        self._close_soon("room disconnected")

    def _on_session_close(self, *args: Any) -> None:
        self._close_soon("agent session closed")

    def _on_provider_disconnected(self, reason: str = "", *args: Any) -> None:
        logger.warning("avatar provider disconnected: %s", reason)
        self._close_soon(f"provider disconnected ({reason})")

    def _register_shutdown(self) -> None:
        try:
            from livekit.agents import get_job_context

            ctx = get_job_context(required=False)
        except Exception:
            ctx = None
        if ctx is not None:
            ctx.add_shutdown_callback(self.aclose)


async def _wait_connected(room: rtc.Room, *, timeout: float) -> None:
    """Wait for the room to connect before publishing into it."""
    connected = asyncio.Event()

    def on_state(*_: Any) -> None:
        if room.isconnected():
            connected.set()

    room.on("connection_state_changed", on_state)
    try:
        if not room.isconnected():
            await asyncio.wait_for(connected.wait(), timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(
            f"the room did not connect within {timeout:g} s: cannot publish the avatar tracks"
        ) from None
    finally:
        room.off("connection_state_changed", on_state)


def _wrong_kind(kind: str, frame: object) -> ValueError:
    from ..media.validate import InvalidFrame

    return InvalidFrame(
        f"{kind}.wrong_kind", f"a {type(frame).__name__} came from the {kind} iterator"
    )


async def _settle(
    tasks: Iterable[asyncio.Future[Any]], timeout: float, cancel: bool = True
) -> None:
    """Cancel ``tasks`` (unless ``cancel`` is False) and wait up to ``timeout`` for them to end;
    a task still running then ignores cancellation: logged and abandoned."""
    current = asyncio.current_task()
    pending = {t for t in tasks if t is not current and not t.done()}
    if not pending:
        return
    if cancel:
        for task in pending:
            task.cancel()
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    if cancel:
        for task in stuck:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            logger.error("avatar task %s ignored cancellation for %g s: abandoned", name, timeout)


def _is_loud(frame: rtc.AudioFrame) -> bool:
    data = declared_samples(frame)
    if data.size == 0:
        return False
    return float(np.sqrt(np.mean(np.square(data, dtype=np.float64)))) > _SPEECH_RMS


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else "avatar task"
        logger.error("%s failed", name, exc_info=task.exception())
