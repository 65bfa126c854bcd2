"""Anam avatar provider: the Anam Python SDK in audio-passthrough mode.

The session's persona is the avatar only (``enable_audio_passthrough=True``): Anam's own voice and
LLM are bypassed and the agent's TTS audio goes in through the SDK's agent audio input stream
(16-bit PCM, 24 kHz mono, small chunks, one ``end_sequence()`` per turn). The lip-synced face and
the same speech come back over WebRTC as two independent PyAV streams, handed on untouched: the
synchronizer moves yuv420p planes straight into I420, nothing is converted through RGB here.

Needs the optional extra ``pip install 'livekit-avsync[anam]'`` (``anam>=0.12,<0.13``: the
close below reaches one private attribute of 0.12, and ``tests/test_anam_sdk_contract.py`` fails
when an SDK changes what it relies on). The SDK is imported when an :class:`AnamAvatar` is
created, so the rest of the library works without it.

Liveness. SDK 0.12 reports a closed WebSocket (``signalling_closed``) or peer connection
(``webrtc_failure``) as ``CONNECTION_CLOSED``, but a failed ICE check only logs: ``connect_async``
then returns anyway and the frame iterators block forever. A watchdog therefore ends the session
with :class:`~.anam_errors.AnamTimeout` (and the ``disconnected`` event) when no video frame
arrives within ``first_frame_timeout`` of ``SESSION_READY``, or none for ``stall_timeout``
mid-session (Anam's idle face keeps sending video while it is silent). Frames that arrived before
``SESSION_READY`` (aiortc queues them without bound from the moment ICE connects) are discarded,
never replayed as a burst: the output is read from ready on, and frames it gets back to back
(less than half their own duration apart by ``pts``, so they were waiting in that queue) are
dropped until one has to be waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from livekit import rtc

from ..media.convert import check_audio_frame
from .anam_config import RESERVED_PERSONA_FIELDS, build_options, load_sdk, required
from .anam_errors import AnamConfigError, AnamDisconnected, AnamProviderError, AnamTimeout
from .anam_speech import SPEECH_SAMPLE_RATE, SpeechTurns
from .base import (
    AvatarProvider,
    OutputFrame,
    ProviderError,
    drain_output,
    end_output,
    setting,
)

__all__ = ["SPEECH_SAMPLE_RATE", "AnamAvatar"]

logger = logging.getLogger(__name__)

_ENCODING = "pcm_s16le"
_AUDIO_BUFFER = 250  # output frames kept for a slow reader: 5 s of 20 ms audio...
_VIDEO_BUFFER = 50  # ...and 2 s of 25 fps video; older frames are dropped beyond that
_TRACK_RETRY_S = 0.05
_BACKLOG_GAP_S = 0.005  # without pts: frames read back to back this fast were queued, not live

T = TypeVar("T")


class AnamAvatar(AvatarProvider):
    """Anam streaming avatar driven with the agent's own speech (audio passthrough).

    Settings are keyword arguments with environment fallbacks: ``api_key`` (``ANAM_API_KEY``),
    ``avatar_id`` (``ANAM_AVATAR_ID``), ``api_url`` (``ANAM_API_URL``, the SDK's API base URL).
    Persona fields beyond the avatar go in ``persona_options`` (e.g. ``{"avatar_model":
    "cara-3"}``), session fields in ``session_options`` (e.g. ``{"video_quality": "auto",
    "enable_session_replay": False}``); both are checked against the SDK's dataclasses.

    ``connect_timeout`` bounds ``connect_async`` (which itself may wait 30 s for ICE; default
    45 s); ``ready_timeout`` then bounds waiting for ``SESSION_READY`` (default 30 s, as Anam's
    cookbook allows); ``first_frame_timeout`` / ``stall_timeout`` drive the media watchdog (see
    the module docstring); ``request_timeout`` bounds each send and the interrupt;
    ``close_timeout`` the SDK's teardown. ``chunk_ms`` is the size of the speech chunks sent.
    ``video_lag`` (seconds) is how much later than its audio Anam's video arrives at best: the
    synchronizer de-jitters each stream by its fastest transit, so the smallest typical extra
    delay of the video is what lines the two up (0 until measured against the real service).
    ``client_factory`` replaces ``anam.AnamClient`` (called with ``api_key``, ``persona_config``
    and ``options``), e.g. for tests.

    Output: ``audio_frames()`` yields the SDK's ``av.AudioFrame`` (48 kHz stereo s16) and
    ``video_frames()`` its ``av.VideoFrame`` (yuv420p), each as it arrives. The two WebRTC
    streams have unrelated clocks, so :attr:`sync_mode` is ``"arrival"`` and ``OutputFrame.
    timestamp`` is None; the frames keep their own ``pts``, which the synchronizer uses only to
    de-jitter each stream. The SDK cannot tell which turn a frame belongs to, so ``generation``
    and ``speech`` are None: the synchronizer's stale-tail gate drops what was in flight at an
    interrupt.
    """

    label = "anam"
    sync_mode = "arrival"
    video_lag = 0.0

    def __init__(
        self,
        *,
        api_key: str | None = None,
        avatar_id: str | None = None,
        api_url: str | None = None,
        persona_options: dict[str, Any] | None = None,
        session_options: dict[str, Any] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        client_label: str = "livekit-avsync",
        connect_timeout: float = 45.0,
        ready_timeout: float = 30.0,
        first_frame_timeout: float = 10.0,
        stall_timeout: float = 5.0,
        request_timeout: float = 5.0,
        close_timeout: float = 5.0,
        chunk_ms: int = 40,
        video_lag: float | None = None,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self._api_key = required(api_key, "ANAM_API_KEY", "Anam API key")
        avatar = required(avatar_id, "ANAM_AVATAR_ID", "Anam avatar id")
        url = setting(api_url, "ANAM_API_URL", what="Anam API URL", required=False)
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("ready_timeout", ready_timeout),
            ("first_frame_timeout", first_frame_timeout),
            ("stall_timeout", stall_timeout),
            ("request_timeout", request_timeout),
            ("close_timeout", close_timeout),
        ):
            if not value > 0:
                raise AnamConfigError(f"{name} must be positive, got {value}")
        if not isinstance(chunk_ms, int) or not 10 <= chunk_ms <= 500:
            raise AnamConfigError(
                f"chunk_ms must be a whole number from 10 to 500, got {chunk_ms!r}"
            )
        if video_lag is not None:
            if not video_lag >= 0:
                raise AnamConfigError(f"video_lag must not be negative, got {video_lag}")
            self.video_lag = float(video_lag)

        self._sdk = load_sdk()
        self._persona = build_options(
            self._sdk.PersonaConfig,
            "persona_options",
            persona_options,
            reserved=RESERVED_PERSONA_FIELDS,
            avatar_id=avatar,
            enable_audio_passthrough=True,
        )
        self._session_options = build_options(
            self._sdk.SessionOptions, "session_options", session_options
        )
        client_options: dict[str, Any] = {"client_label": client_label}
        if url:
            client_options["api_base_url"] = url.rstrip("/")
        if ice_servers is not None:
            client_options["ice_servers"] = ice_servers
        self._client_options = self._sdk.ClientOptions(**client_options)
        self._client_factory = client_factory
        self._connect_timeout = connect_timeout
        self._ready_timeout = ready_timeout
        self._first_frame_timeout = first_frame_timeout
        self._stall_timeout = stall_timeout
        self._request_timeout = request_timeout
        self._close_timeout = close_timeout
        self._chunk_samples = SPEECH_SAMPLE_RATE * chunk_ms // 1000

        self._client: Any = None
        self._session: Any = None
        self._listeners: list[tuple[Any, Callable[..., None]]] = []
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()  # the session is over: lost or closing
        self._lost_reason: str | None = None
        self._lost_by_timeout = False
        self._speech: SpeechTurns | None = None
        self._interrupts: set[asyncio.Future[None]] = set()
        self._audio_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._video_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._dropped = {"audio": 0, "video": 0}
        self._discarded = {"audio": 0, "video": 0}
        self._ready_at: float | None = None
        self._last_video: float | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._started = False
        self._closing = False
        self._close_task: asyncio.Future[None] | None = None

    @property
    def session_id(self) -> str | None:
        """Anam's id of the running session (None before it started)."""
        return None if self._session is None else self._session.session_id

    @property
    def dropped_frames(self) -> dict[str, int]:
        """Output frames dropped because nobody read them in time, per stream."""
        return dict(self._dropped)

    @property
    def discarded_before_ready(self) -> dict[str, int]:
        """Frames that arrived before ``SESSION_READY`` and were thrown away, per stream."""
        return dict(self._discarded)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Connect, wait for the session to be ready for speech, start reading its media.

        ``room`` is not used: Anam's media come over the SDK's own WebRTC connection. Raises
        :class:`~.anam_errors.AnamTimeout` when connecting takes more than ``connect_timeout`` or
        getting ready more than ``ready_timeout``, :class:`~.anam_errors.AnamDisconnected` if the
        connection closes meanwhile, :class:`~.anam_errors.AnamProviderError` when Anam refuses;
        everything opened so far is released.
        """
        if self._started:
            raise AnamProviderError("AnamAvatar.start() may only be called once")
        self._started = True
        loop = asyncio.get_running_loop()
        try:
            self._client = self._make_client()
            await self._until(
                self._connect(self._client),
                loop.time() + self._connect_timeout,
                "connecting to Anam",
                self._connect_timeout,
            )
            await self._until(
                self._ready.wait(),
                loop.time() + self._ready_timeout,
                "waiting for the Anam session to become ready",
                self._ready_timeout,
            )
            self._ready_at = loop.time()
            self._start_output()  # the backlog queued before ready is discarded (docstring)
            self._speech = SpeechTurns(
                self._open_speech_stream(),
                chunk_samples=self._chunk_samples,
                timeout=self._request_timeout,
            )
            self._pumps.append(asyncio.create_task(self._watchdog(), name="anam-watchdog"))
        except BaseException:
            await self.aclose()
            raise
        logger.info("Anam session ready", extra={"anam_session_id": self.session_id})
        self.emit("ready")

    async def aclose(self) -> None:
        """End the iterators, stop every task and close the SDK session. Idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._teardown())
        await asyncio.shield(self._close_task)

    # -- speech --------------------------------------------------------------------------------

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Send one frame of the current turn's speech (any rate, any channel count)."""
        check_audio_frame(frame)
        speech = self._usable_speech()
        if frame.samples_per_channel == 0:
            return
        epoch = speech.epoch  # taken now: an interrupt from here on voids this frame
        await self._after_interrupt()
        await self._guard(speech.push(frame, epoch))

    async def end_turn(self) -> None:
        """Send the turn's resampler tail and last chunk, then ``end_sequence()``."""
        speech = self._usable_speech()
        epoch = speech.epoch
        await self._after_interrupt()
        await self._guard(speech.end(epoch))

    async def interrupt(self) -> None:
        """Drop the turn here (resampler tail included) and in Anam; bump the generation.

        Anam is told with ``session.interrupt()``; the interrupted sequence is then closed with
        ``end_sequence()`` before any audio of the next turn. A failure is logged, not raised:
        an interruption must never fail the session.
        """
        self._bump_generation()
        speech = self._speech
        if speech is None or self._stopped.is_set():
            return
        speech.drop_turn()
        remote = asyncio.ensure_future(self._interrupt_remote(speech))
        self._interrupts.add(remote)
        remote.add_done_callback(self._interrupts.discard)
        await asyncio.shield(remote)

    # -- output --------------------------------------------------------------------------------

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        """Anam's audio (``av.AudioFrame``, 48 kHz stereo), until the session ends."""
        return drain_output(self._audio_out)

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        """Anam's video (``av.VideoFrame``, yuv420p), speaking and idle, until the session ends."""
        return drain_output(self._video_out)

    # -- setup ---------------------------------------------------------------------------------

    def _make_client(self) -> Any:
        factory = self._client_factory or self._sdk.AnamClient
        try:
            client = factory(
                api_key=self._api_key,
                persona_config=self._persona,
                options=self._client_options,
            )
        except self._sdk.AnamError as exc:
            raise AnamConfigError(f"invalid configuration: {self._describe(exc)}") from None
        events = self._sdk.AnamEvent
        for event, callback in (
            (events.SESSION_READY, self._on_session_ready),
            (events.CONNECTION_ESTABLISHED, self._on_connection_established),
            (events.CONNECTION_CLOSED, self._on_connection_closed),
        ):
            client.add_listener(event, callback)
            self._listeners.append((event, callback))
        return client

    async def _connect(self, client: Any) -> None:
        sdk = self._sdk
        try:
            self._session = await client.connect_async(self._session_options)
        except sdk.AuthenticationError as exc:
            raise AnamProviderError(
                f"Anam rejected the API key (check ANAM_API_KEY): {self._describe(exc)}"
            ) from None
        except sdk.AnamError as exc:
            if exc.code == sdk.ErrorCode.AUTHENTICATION_ERROR:
                raise AnamProviderError(
                    f"Anam refused access (check ANAM_API_KEY and ANAM_AVATAR_ID): "
                    f"{self._describe(exc)}"
                ) from None
            # a refused session start (busy, server error) may succeed when tried again
            raise AnamProviderError(
                f"Anam could not start the session: {self._describe(exc)}", retryable=True
            ) from None
        except Exception as exc:
            raise AnamDisconnected(f"cannot connect to Anam: {self._describe(exc)}") from None

    async def _until(self, aw: Awaitable[T], deadline: float, what: str, limit: float) -> T:
        """``aw``'s result, unless the deadline passes or the session stops first."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait(
                {task, stop},
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finished = not task.cancelled()
        failure = task.exception() if finished else None  # retrieved here in every case
        if self._lost_reason is not None:
            raise AnamDisconnected(f"{what} failed: {self._lost_reason}")
        if self._closing:
            raise AnamDisconnected(f"the provider was closed while {what}", retryable=False)
        if failure is not None:
            raise failure
        if finished:
            return task.result()
        raise AnamTimeout(f"{what} took more than {limit:g} s")

    def _open_speech_stream(self) -> Any:
        config = self._sdk.AgentAudioInputConfig(
            encoding=_ENCODING, sample_rate=SPEECH_SAMPLE_RATE, channels=1
        )
        try:
            return self._session.create_agent_audio_input_stream(config)
        except Exception as exc:
            raise AnamDisconnected(
                f"cannot open the agent audio input: {self._describe(exc)}"
            ) from None

    def _start_output(self) -> None:
        session = self._session
        self._pumps = [
            asyncio.create_task(
                self._pump("audio", session.audio_frames, self._audio_out, _AUDIO_BUFFER),
                name="anam-audio",
            ),
            asyncio.create_task(
                self._pump("video", session.video_frames, self._video_out, _VIDEO_BUFFER),
                name="anam-video",
            ),
        ]

    # -- runtime -------------------------------------------------------------------------------

    async def _pump(
        self,
        kind: str,
        open_frames: Callable[[], AsyncIterator[Any]],
        queue: asyncio.Queue[OutputFrame | None],
        queue_limit: int,
    ) -> None:
        """Move one SDK stream into its output queue; its end or failure ends the session."""
        loop = asyncio.get_running_loop()
        held: Any = None  # the first frame waits for the second: were they queued?
        backlog, first, last_read, last_pts = True, True, 0.0, None
        try:
            async for frame in self._frames(kind, open_frames):
                now, pts = loop.time(), _pts_seconds(frame)
                if backlog:
                    if first:
                        first, held, last_read, last_pts = False, frame, now, pts
                        continue
                    # live frames come one frame duration apart; queued ones back to back
                    step = None if pts is None or last_pts is None else pts - last_pts
                    limit = step / 2 if step is not None and step > 0 else _BACKLOG_GAP_S
                    gap, last_read, last_pts = now - last_read, now, pts
                    if gap < limit:
                        self._discarded[kind] += 1 + (held is not None)  # never replayed
                        held = None
                        continue
                    backlog = False
                    if held is not None:  # the first frame was live after all
                        self._offer(kind, queue, OutputFrame(held), queue_limit)
                        held = None
                if kind == "video":
                    self._last_video = asyncio.get_running_loop().time()
                self._offer(kind, queue, OutputFrame(frame), queue_limit)
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            self._lose(str(exc))
            return
        except Exception as exc:
            logger.error("reading Anam's %s stream failed", kind, exc_info=True)
            self._lose(f"reading Anam's {kind} stream failed: {self._describe(exc)}")
            return
        self._lose(f"Anam's {kind} stream ended")

    async def _frames(
        self, kind: str, open_frames: Callable[[], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        """The SDK's frames of one kind, waiting (bounded) for its WebRTC track to appear.

        The SDK's iterators raise ``RuntimeError`` on their first step while the track has not
        been received yet; that is retried until ``ready_timeout`` + ``first_frame_timeout``.
        """
        loop = asyncio.get_running_loop()
        wait = self._ready_timeout + self._first_frame_timeout
        deadline = loop.time() + wait
        while True:
            frames = open_frames()
            try:
                first = await frames.__anext__()
            except StopAsyncIteration:
                return
            except RuntimeError:
                await _close_iterator(frames)
                if loop.time() >= deadline:
                    raise AnamTimeout(f"Anam sent no {kind} track within {wait:g} s") from None
                await asyncio.sleep(_TRACK_RETRY_S)
                continue
            break
        try:
            yield first
            async for frame in frames:
                yield frame
        finally:
            await _close_iterator(frames)

    def _offer(
        self, kind: str, queue: asyncio.Queue[OutputFrame | None], item: OutputFrame, limit: int
    ) -> None:
        if self._stopped.is_set():
            return
        if queue.qsize() >= limit:
            queue.get_nowait()
            self._dropped[kind] += 1
            if self._dropped[kind] == 1:
                logger.warning(
                    "Anam %s output is not being read fast enough: dropping the oldest frames",
                    kind,
                )
        queue.put_nowait(item)

    async def _watchdog(self) -> None:
        """End the session when video does not start after ready, or stops (module docstring)."""
        loop = asyncio.get_running_loop()
        assert self._ready_at is not None
        while not self._stopped.is_set():
            now = loop.time()
            if self._last_video is None:
                if now - self._ready_at >= self._first_frame_timeout:
                    self._lose(
                        f"no video frame within {self._first_frame_timeout:g} s of the session "
                        "being ready (failed ICE? the SDK reports that only in its log)",
                        timeout=True,
                    )
                    return
                wake = self._ready_at + self._first_frame_timeout
            else:
                if now - self._last_video >= self._stall_timeout:
                    self._lose(
                        f"Anam's media stalled: no video frame for {self._stall_timeout:g} s",
                        timeout=True,
                    )
                    return
                wake = self._last_video + self._stall_timeout
            await asyncio.sleep(max(0.01, min(wake - now, 0.5)))

    async def _interrupt_remote(self, speech: SpeechTurns) -> None:
        try:
            await asyncio.wait_for(self._session.interrupt(), self._request_timeout)
        except asyncio.TimeoutError:
            logger.warning("Anam interrupt took more than %g s", self._request_timeout)
        except Exception as exc:
            logger.warning("Anam interrupt failed: %s", self._describe(exc))
        try:
            await speech.settle()
        except ProviderError as exc:
            logger.warning("closing the interrupted speech sequence failed: %s", exc)
            if isinstance(exc, AnamTimeout):
                self._lose(str(exc), timeout=True)

    async def _after_interrupt(self) -> None:
        """Speech of a new turn waits until Anam has been told about the interrupt."""
        pending = [t for t in self._interrupts if not t.done()]
        if pending:
            await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))

    async def _guard(self, aw: Awaitable[None]) -> None:
        try:
            await aw
        except AnamTimeout as exc:
            self._lose(str(exc), timeout=True)
            raise
        self._raise_if_lost()

    def _usable_speech(self) -> SpeechTurns:
        self._raise_if_lost()
        if self._closing:
            raise AnamDisconnected("the provider is closed", retryable=False)
        if self._speech is None:
            raise AnamProviderError("call start() before sending speech")
        return self._speech

    def _raise_if_lost(self) -> None:
        if self._lost_reason is not None:
            if self._lost_by_timeout:
                raise AnamTimeout(self._lost_reason)
            raise AnamDisconnected(self._lost_reason)

    def _lose(self, reason: str, *, timeout: bool = False) -> None:
        """The session is over: end the iterators, refuse further speech, tell listeners once."""
        if self._lost_reason is not None or self._closing:
            return
        self._lost_reason = reason
        self._lost_by_timeout = timeout
        logger.warning("Anam session lost: %s", reason)
        self._stopped.set()
        self._audio_out.put_nowait(None)
        self._video_out.put_nowait(None)
        self.emit("disconnected", reason)

    def _describe(self, exc: BaseException) -> str:
        """An exception as text for messages and logs, with the API key masked if it appears."""
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if not isinstance(exc, self._sdk.AnamError):
            message = f"{type(exc).__name__}: {message}"
        return message.replace(self._api_key, "***")

    # -- SDK events (called by the SDK from its own tasks) -------------------------------------

    def _on_session_ready(self, *args: Any) -> None:
        self._ready.set()

    def _on_connection_established(self, *args: Any) -> None:
        logger.debug("Anam WebRTC connection established")

    def _on_connection_closed(self, code: Any = None, reason: Any = None, *args: Any) -> None:
        code_text = getattr(code, "value", code) or "unknown"
        detail = f"{code_text}: {reason}" if reason else str(code_text)
        self._lose(f"the Anam connection closed ({detail.replace(self._api_key, '***')})")

    # -- teardown ------------------------------------------------------------------------------

    async def _teardown(self) -> None:
        self._closing = True
        self._stopped.set()
        end_output(self._audio_out)
        end_output(self._video_out)
        tasks = [*self._pumps, *self._interrupts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_sdk()
        if self._client is not None:
            for event, callback in self._listeners:
                self._client.remove_listener(event, callback)
        self._listeners.clear()

    async def _close_sdk(self) -> None:
        if self._session is not None:
            await self._bounded(self._session.close(), "closing the Anam session")
        # SDK 0.12 (pinned <0.13): AnamClient.close() skips its streaming client once the
        # connection was reported closed, or when connect_async() was abandoned, and the SDK has
        # no public way to close it then; close that one directly so no WebSocket or peer
        # connection outlives the provider. tests/test_anam_sdk_contract.py fails when an SDK
        # release changes this.
        streaming = getattr(self._client, "_streaming_client", None)
        if streaming is not None:
            await self._bounded(streaming.close(), "closing Anam's streaming connection")

    async def _bounded(self, aw: Awaitable[Any], what: str) -> None:
        try:
            await asyncio.wait_for(aw, self._close_timeout)
        except asyncio.TimeoutError:
            logger.warning("%s took more than %g s", what, self._close_timeout)
        except Exception as exc:
            logger.warning("%s failed: %s", what, self._describe(exc))


async def _close_iterator(frames: AsyncIterator[Any]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as exc:
            logger.debug("closing an Anam frame iterator failed: %s", exc)


def _pts_seconds(frame: Any) -> float | None:
    """A PyAV frame's presentation time in seconds, or None."""
    pts, base = getattr(frame, "pts", None), getattr(frame, "time_base", None)
    if pts is None or not base:
        return None
    return float(pts * base)
