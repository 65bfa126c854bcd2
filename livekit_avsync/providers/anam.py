"""Anam avatar provider: the Anam Python SDK in audio-passthrough mode.

The session's persona is the avatar only (``enable_audio_passthrough=True``): Anam's own voice and
LLM are bypassed and the agent's TTS audio goes in through the SDK's agent audio input stream
(16-bit PCM, 24 kHz mono, small chunks, one ``end_sequence()`` per turn). The lip-synced face and
the same speech come back over WebRTC as two independent PyAV streams, handed on untouched: the
synchronizer moves yuv420p planes straight into I420, nothing is converted through RGB here.

Needs the optional extra ``pip install 'livekit-avsync[anam]'``. The SDK is imported when an
:class:`AnamAvatar` is created, so the rest of the library works without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

from livekit import rtc
from livekit.agents.utils.audio import AudioByteStream

from ..media.convert import SpeechResampler, check_audio_frame
from .base import (
    AvatarProvider,
    OutputFrame,
    ProviderDisconnected,
    ProviderError,
    ProviderTimeout,
    drain_output,
    setting,
)

__all__ = ["SPEECH_SAMPLE_RATE", "AnamAvatar"]

logger = logging.getLogger(__name__)

SPEECH_SAMPLE_RATE = 24000
"""Rate of the speech we send to Anam (the rate its SDK recommends for passthrough)."""

_ENCODING = "pcm_s16le"
_AUDIO_BUFFER = 250  # output frames kept for a slow reader: 5 s of 20 ms audio...
_VIDEO_BUFFER = 50  # ...and 2 s of 25 fps video; older frames are dropped beyond that
_TRACK_RETRY_S = 0.05
_RESERVED_PERSONA_FIELDS = frozenset({"persona_id", "avatar_id", "enable_audio_passthrough"})

T = TypeVar("T")


def _load_sdk() -> ModuleType:
    """The ``anam`` package, or a ProviderError saying how to install it."""
    try:
        return importlib.import_module("anam")
    except ImportError as exc:
        raise ProviderError(
            "the Anam provider needs the Anam SDK: pip install 'livekit-avsync[anam]'"
        ) from exc


class AnamAvatar(AvatarProvider):
    """Anam streaming avatar driven with the agent's own speech (audio passthrough).

    Settings are keyword arguments with environment fallbacks: ``api_key`` (``ANAM_API_KEY``),
    ``avatar_id`` (``ANAM_AVATAR_ID``), ``api_url`` (``ANAM_API_URL``, the SDK's API base URL).
    Persona fields beyond the avatar go in ``persona_options`` (e.g. ``{"avatar_model":
    "cara-3"}``), session fields in ``session_options`` (e.g. ``{"video_quality": "auto",
    "enable_session_replay": False}``); both are checked against the SDK's dataclasses.

    ``connect_timeout`` bounds connecting plus waiting for the session to become ready (and for
    the media tracks to appear); ``request_timeout`` bounds each send and the interrupt;
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
        connect_timeout: float = 20.0,
        request_timeout: float = 5.0,
        close_timeout: float = 5.0,
        chunk_ms: int = 40,
        video_lag: float | None = None,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self._api_key = _required(api_key, "ANAM_API_KEY", "Anam API key")
        avatar = _required(avatar_id, "ANAM_AVATAR_ID", "Anam avatar id")
        url = setting(api_url, "ANAM_API_URL", what="Anam API URL", required=False)
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("request_timeout", request_timeout),
            ("close_timeout", close_timeout),
        ):
            if not value > 0:
                raise ProviderError(f"{name} must be positive, got {value}")
        if not isinstance(chunk_ms, int) or not 10 <= chunk_ms <= 500:
            raise ProviderError(f"chunk_ms must be a whole number from 10 to 500, got {chunk_ms!r}")
        if video_lag is not None:
            if not video_lag >= 0:
                raise ProviderError(f"video_lag must not be negative, got {video_lag}")
            self.video_lag = float(video_lag)

        self._sdk = _load_sdk()
        self._persona = _build(
            self._sdk.PersonaConfig,
            "persona_options",
            persona_options,
            reserved=_RESERVED_PERSONA_FIELDS,
            avatar_id=avatar,
            enable_audio_passthrough=True,
        )
        self._session_options = _build(self._sdk.SessionOptions, "session_options", session_options)
        client_options: dict[str, Any] = {"client_label": client_label}
        if url:
            client_options["api_base_url"] = url.rstrip("/")
        if ice_servers is not None:
            client_options["ice_servers"] = ice_servers
        self._client_options = self._sdk.ClientOptions(**client_options)
        self._client_factory = client_factory
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._close_timeout = close_timeout
        self._chunk_samples = SPEECH_SAMPLE_RATE * chunk_ms // 1000

        self._client: Any = None
        self._session: Any = None
        self._listeners: list[tuple[Any, Callable[..., None]]] = []
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()  # the session is over: lost or closing
        self._lost_reason: str | None = None
        self._speech: _SpeechTurns | None = None
        self._interrupts: set[asyncio.Future[None]] = set()
        self._audio_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._video_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._dropped = {"audio": 0, "video": 0}
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

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Connect, wait for the session to be ready for speech, start reading its media.

        ``room`` is not used: Anam's media come over the SDK's own WebRTC connection. Raises
        :class:`ProviderTimeout` when connecting or getting ready takes more than
        ``connect_timeout``, :class:`ProviderDisconnected` if the connection closes meanwhile,
        :class:`ProviderError` when Anam refuses; everything opened so far is released.
        """
        if self._started:
            raise ProviderError("AnamAvatar.start() may only be called once")
        self._started = True
        deadline = asyncio.get_running_loop().time() + self._connect_timeout
        try:
            self._client = self._make_client()
            await self._until(self._connect(self._client), deadline, "connecting to Anam")
            await self._until(
                self._ready.wait(), deadline, "waiting for the Anam session to become ready"
            )
            self._speech = _SpeechTurns(
                self._open_speech_stream(),
                chunk_samples=self._chunk_samples,
                timeout=self._request_timeout,
            )
            self._start_output()
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
            raise ProviderError(f"invalid Anam configuration: {self._describe(exc)}") from None
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
            raise ProviderError(
                f"Anam rejected the API key (check ANAM_API_KEY): {self._describe(exc)}"
            ) from None
        except sdk.AnamError as exc:
            if exc.code == sdk.ErrorCode.AUTHENTICATION_ERROR:
                raise ProviderError(
                    f"Anam refused access (check ANAM_API_KEY and ANAM_AVATAR_ID): "
                    f"{self._describe(exc)}"
                ) from None
            raise ProviderError(
                f"Anam could not start the session: {self._describe(exc)}"
            ) from None
        except Exception as exc:
            raise ProviderError(f"cannot connect to Anam: {self._describe(exc)}") from None

    async def _until(self, aw: Awaitable[T], deadline: float, what: str) -> T:
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
            raise ProviderDisconnected(f"{what} failed: {self._lost_reason}")
        if self._closing:
            raise ProviderDisconnected(f"the provider was closed while {what}")
        if failure is not None:
            raise failure
        if finished:
            return task.result()
        raise ProviderTimeout(f"{what} took more than {self._connect_timeout:g} s")

    def _open_speech_stream(self) -> Any:
        config = self._sdk.AgentAudioInputConfig(
            encoding=_ENCODING, sample_rate=SPEECH_SAMPLE_RATE, channels=1
        )
        try:
            return self._session.create_agent_audio_input_stream(config)
        except Exception as exc:
            raise ProviderError(
                f"cannot open Anam's agent audio input: {self._describe(exc)}"
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
        limit: int,
    ) -> None:
        """Move one SDK stream into its output queue; its end or failure ends the session."""
        try:
            async for frame in self._frames(kind, open_frames):
                self._offer(kind, queue, OutputFrame(frame), limit)
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
        been received yet; that is retried until ``connect_timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            frames = open_frames()
            try:
                first = await frames.__anext__()
            except StopAsyncIteration:
                return
            except RuntimeError:
                await _close_iterator(frames)
                if loop.time() >= deadline:
                    raise ProviderTimeout(
                        f"Anam sent no {kind} track within {self._connect_timeout:g} s"
                    ) from None
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

    async def _interrupt_remote(self, speech: _SpeechTurns) -> None:
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
            if isinstance(exc, ProviderTimeout):
                self._lose(str(exc))

    async def _after_interrupt(self) -> None:
        """Speech of a new turn waits until Anam has been told about the interrupt."""
        pending = [t for t in self._interrupts if not t.done()]
        if pending:
            await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))

    async def _guard(self, aw: Awaitable[None]) -> None:
        try:
            await aw
        except ProviderTimeout as exc:
            self._lose(str(exc))
            raise
        self._raise_if_lost()

    def _usable_speech(self) -> _SpeechTurns:
        self._raise_if_lost()
        if self._closing:
            raise ProviderDisconnected("the Anam provider is closed")
        if self._speech is None:
            raise ProviderError("call start() before sending speech")
        return self._speech

    def _raise_if_lost(self) -> None:
        if self._lost_reason is not None:
            raise ProviderDisconnected(self._lost_reason)

    def _lose(self, reason: str) -> None:
        """The session is over: end the iterators, refuse further speech, tell listeners once."""
        if self._lost_reason is not None or self._closing:
            return
        self._lost_reason = reason
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
        for out in (self._audio_out, self._video_out):
            while not out.empty():  # undelivered frames of a closed session are not output
                out.get_nowait()
            out.put_nowait(None)
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
        # SDK 0.12: AnamClient.close() skips its streaming client once the connection was
        # reported closed, or when connect_async() was abandoned; close that one directly so no
        # WebSocket or peer connection outlives the provider.
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


class _SpeechTurns:
    """The agent's speech in Anam's input format, sent turn by turn through one SDK stream.

    Per turn: channels averaged to mono with numpy, the rate converted by an
    ``rtc.AudioResampler`` created for that turn (its tail is sent at the turn's end and dropped
    at an interrupt), re-chunked by ``AudioByteStream`` into ``chunk_samples`` chunks. Sends are
    serialised by a lock; ``epoch`` (bumped by :meth:`drop_turn`) voids calls made before it.
    """

    def __init__(self, stream: Any, *, chunk_samples: int, timeout: float) -> None:
        self._stream = stream
        self._chunk_samples = chunk_samples
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.epoch = 0
        self._resampler = SpeechResampler(SPEECH_SAMPLE_RATE)
        self._chunker = self._new_chunker()
        self._open = False  # chunks of this turn went out, its end_sequence did not yet
        self._end_owed = False  # an interrupted sequence still has to be ended

    async def push(self, frame: rtc.AudioFrame, epoch: int) -> None:
        async with self._lock:
            if epoch != self.epoch:
                return
            await self._settle_locked()
            await self._send_chunks(self._chunker.push(self._resampler.push(frame)), epoch)

    async def end(self, epoch: int) -> None:
        async with self._lock:
            if epoch != self.epoch:
                return
            await self._settle_locked()
            chunks = self._chunker.push(self._resampler.flush()) + self._chunker.flush()
            await self._send_chunks(chunks, epoch)
            if epoch != self.epoch:
                return
            self._chunker = self._new_chunker()
            if self._open:
                self._open = False
                await self._timed(self._stream.end_sequence(), "ending the speech sequence")

    def drop_turn(self) -> None:
        """Interrupt: void pending calls and forget the turn's buffered audio (no flush)."""
        self.epoch += 1
        self._resampler.drop()
        self._chunker = self._new_chunker()
        if self._open:
            self._open = False
            self._end_owed = True

    async def settle(self) -> None:
        """Close an interrupted sequence with ``end_sequence()`` if it is still open."""
        async with self._lock:
            await self._settle_locked()

    async def _settle_locked(self) -> None:
        if self._end_owed:
            self._end_owed = False
            await self._timed(self._stream.end_sequence(), "ending the interrupted sequence")

    async def _send_chunks(self, chunks: list[rtc.AudioFrame], epoch: int) -> None:
        for chunk in chunks:
            if epoch != self.epoch:
                return  # interrupted while sending: the rest belongs to the dropped turn
            self._open = True
            await self._timed(self._stream.send_audio_chunk(bytes(chunk.data)), "sending speech")

    async def _timed(self, aw: Awaitable[None], what: str) -> None:
        try:
            await asyncio.wait_for(aw, self._timeout)
        except asyncio.TimeoutError:
            raise ProviderTimeout(f"{what} to Anam took more than {self._timeout:g} s") from None

    def _new_chunker(self) -> AudioByteStream:
        return AudioByteStream(SPEECH_SAMPLE_RATE, 1, samples_per_channel=self._chunk_samples)


def _required(value: str | None, env: str, what: str) -> str:
    found = setting(value, env, what=what)
    assert found is not None  # setting() raises when a required value is missing
    return found


def _build(
    cls: type[T],
    what: str,
    options: dict[str, Any] | None,
    *,
    reserved: frozenset[str] = frozenset(),
    **fixed: Any,
) -> T:
    """An SDK options dataclass from ``options`` plus ``fixed`` fields, with clear errors."""
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProviderError(
            f"unknown {what} {', '.join(map(repr, unknown))}; "
            f"{cls.__name__} accepts: {', '.join(sorted(known - reserved))}"
        )
    taken = sorted(set(options) & reserved)
    if taken:
        raise ProviderError(f"{what} cannot set {', '.join(map(repr, taken))}: AnamAvatar sets it")
    try:
        return cls(**options, **fixed)
    except (TypeError, ValueError) as exc:
        raise ProviderError(f"invalid {what}: {exc}") from None


async def _close_iterator(frames: AsyncIterator[Any]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as exc:
            logger.debug("closing an Anam frame iterator failed: %s", exc)
