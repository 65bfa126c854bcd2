"""LemonSlice avatar provider: a hosted avatar reached through a private LiveKit side room.

Per session we open a side room on the agent's LiveKit server, join it as a relay participant
that may only send data, and ask LemonSlice (REST) to send its avatar into that room with a
token we mint. The agent's speech goes to the avatar through livekit-agents' own
``DataStreamAudioOutput`` (byte streams on ``lk.audio_stream`` at ``audio_sample_rate``, mono,
declared to LemonSlice in the request; ``lk.clear_buffer`` on interrupt; the avatar's
``lk.playback_started`` / ``lk.playback_finished`` RPCs become our events); the avatar's
lip-synced audio and video tracks are read back with ``rtc.AudioStream``/``rtc.VideoStream`` and
handed to the synchronizer. The agent's own room never sees the avatar: we republish its output
there in sync.

``DataStreamAudioOutput`` keeps its RPC handlers in class-level registries keyed by the avatar's
identity, shared by every instance in the process: two sessions whose avatars had one identity
would receive each other's playback events. Each session's avatar therefore gets a unique
identity by default, and the session's entries are removed on close (else every closed session
stayed referenced from the registry).

Idle: LemonSlice ends a session after ``idle_timeout`` seconds without speech (its default
60 s). When the avatar leaves after at least that long without speech, the ``disconnected``
reason says so (and :attr:`LemonSliceAvatar.left_idle` is True) instead of reporting a loss.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
from livekit import api, rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput
from livekit.agents.voice.io import PlaybackFinishedEvent

from ..media.convert import SpeechResampler, check_audio_frame
from .base import (
    AvatarProvider,
    OutputFrame,
    PlaybackFinished,
    drain_output,
    end_output,
    setting,
)
from .lemonslice_api import (
    DEFAULT_API_URL,
    DEFAULT_REQUEST_TIMEOUT,
    LemonSliceAPI,
    LemonSliceConfigError,
    LemonSliceDisconnected,
    LemonSliceError,
    LemonSliceSessionSpec,
    LemonSliceTimeout,
)

__all__ = ["DEFAULT_IDLE_TIMEOUT", "DEFAULT_VIDEO_LAG", "LemonSliceAvatar"]

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 60
"""LemonSlice's own idle timeout when the request sets none (seconds, per its API docs)."""
DEFAULT_VIDEO_LAG = -0.07
"""Seconds the avatar's video arrives after its audio at the relay: negative, the picture comes
first (the relay's WebRTC audio path holds audio longer than its video path, and the avatar
runtime's 100 ms ``AudioSource`` queue delays audio at the sender). A first estimate from runs
through livekit-agents' own remote-avatar runtime (docs/benchmarks.md), noisy (3-4 markers per
reply); not measured against LemonSlice's service: pass ``video_lag=`` to set it."""
_IDLE_SLACK_S = 2.0  # the avatar's idle clock and ours start a moment apart
_NO_AGENT = "livekit-avsync-side-room-no-agent"
"""The one agent the side room asks for, which no worker serves. A room created without an
explicit dispatch gets every automatically dispatched worker (livekit-server's default dispatch
for agent name ""), which would send the agent into its own side room and, there, open another
side room, and so on; an explicit dispatch replaces that default."""

_KIND_NAMES = {rtc.TrackKind.KIND_AUDIO: "audio", rtc.TrackKind.KIND_VIDEO: "video"}
_ROOM_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STREAM_CLOSE_TIMEOUT = 2.0


class LemonSliceAvatar(AvatarProvider):
    """LemonSlice streaming avatar, driven over a private LiveKit side room.

    Settings come from keyword arguments with environment fallbacks: ``LEMONSLICE_API_KEY``,
    ``LEMONSLICE_AGENT_ID`` or ``LEMONSLICE_AGENT_IMAGE_URL`` (exactly one), ``LEMONSLICE_API_URL``
    (sessions endpoint override), ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``.
    Output audio is delivered at ``output_sample_rate``/``output_channels``; video as I420.
    ``audio_sample_rate`` (16000, 22050, 24000, 44100 or 48000; default 24000, what the
    livekit-agents plugin sends) is the rate the agent's speech is streamed at and declared to
    LemonSlice. ``idle_timeout``: seconds without speech after which LemonSlice ends the session
    (None: LemonSlice's default, 60 s; negative: never); leaving for that reason is reported as
    idle (see the module docstring). ``request_timeout`` bounds each REST call (default 60 s, as
    tolerant as the plugin; retries as :mod:`.lemonslice_api` explains). ``join_timeout`` covers
    LemonSlice's cold start (its docs say up to 2.5 min when no warm GPU is free).
    ``video_lag``: see :data:`DEFAULT_VIDEO_LAG`. ``avatar_identity`` defaults to a unique
    ``lemonslice-avatar-<hex>`` per session.
    ``room_factory`` builds the relay's room (tests pass a stand-in).

    Errors are :class:`~.lemonslice_api.LemonSliceError` and its subclasses (all
    :class:`ProviderError`, livekit-agents ``APIError`` family); configuration errors are also
    ``ValueError``.
    """

    label = "lemonslice"
    sync_mode = "arrival"
    video_lag = DEFAULT_VIDEO_LAG

    def __init__(
        self,
        *,
        api_key: str | None = None,
        agent_id: str | None = None,
        agent_image_url: str | None = None,
        api_url: str | None = None,
        agent_prompt: str | None = None,
        agent_idle_prompt: str | None = None,
        idle_timeout: int | None = None,
        audio_sample_rate: int = 24000,
        extra_payload: dict[str, Any] | None = None,
        livekit_url: str | None = None,
        livekit_api_key: str | None = None,
        livekit_api_secret: str | None = None,
        output_sample_rate: int = 48000,
        output_channels: int = 1,
        avatar_identity: str | None = None,
        relay_identity: str = "avsync-relay",
        connect_timeout: float = 10.0,
        join_timeout: float = 180.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        rpc_timeout: float = 2.0,
        video_lag: float | None = None,
        token_ttl: float = 600.0,
        room_factory: Callable[[], rtc.Room] = rtc.Room,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__()
        key = setting(api_key, "LEMONSLICE_API_KEY", what="LemonSlice API key")
        self._spec = LemonSliceSessionSpec(
            **_agent_source(agent_id, agent_image_url),
            agent_prompt=agent_prompt,
            agent_idle_prompt=agent_idle_prompt,
            idle_timeout=idle_timeout,
            audio_sample_rate=audio_sample_rate,
            extra_payload=extra_payload,
        )
        self._livekit_url = setting(livekit_url, "LIVEKIT_URL", what="LiveKit server URL")
        self._livekit_key = setting(livekit_api_key, "LIVEKIT_API_KEY", what="LiveKit API key")
        self._livekit_secret = setting(
            livekit_api_secret, "LIVEKIT_API_SECRET", what="LiveKit API secret"
        )
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("join_timeout", join_timeout),
            ("request_timeout", request_timeout),
            ("rpc_timeout", rpc_timeout),
            ("token_ttl", token_ttl),
            ("output_sample_rate", output_sample_rate),
            ("output_channels", output_channels),
        ):
            if value <= 0:
                raise LemonSliceConfigError(f"{name} must be positive, got {value}")
        if video_lag is not None:
            if not -1.0 < video_lag < 1.0:
                raise LemonSliceConfigError(f"video_lag must be within (-1, 1) s, got {video_lag}")
            self.video_lag = float(video_lag)
        if avatar_identity is None:
            avatar_identity = f"lemonslice-avatar-{secrets.token_hex(4)}"
        if avatar_identity == relay_identity or not avatar_identity or not relay_identity:
            raise LemonSliceConfigError(
                "avatar_identity and relay_identity must be distinct and non-empty"
            )
        self._api = LemonSliceAPI(
            key,  # type: ignore[arg-type]  # setting() returns str when required
            api_url=setting(api_url, "LEMONSLICE_API_URL", what="", required=False)
            or DEFAULT_API_URL,
            request_timeout=request_timeout,
            http_session=http_session,
        )
        self._output_rate = output_sample_rate
        self._output_channels = output_channels
        self._avatar_identity = avatar_identity
        self._relay_identity = relay_identity
        self._connect_timeout = connect_timeout
        self._join_timeout = join_timeout
        self._request_timeout = request_timeout
        self._rpc_timeout = rpc_timeout
        # the avatar may join only after LemonSlice's cold start: its token must outlive that
        self._token_ttl = max(token_ttl, join_timeout + request_timeout + 60.0)
        self._room_factory = room_factory

        self._room: rtc.Room | None = None
        self._side_room_name: str | None = None
        self._session_id: str | None = None
        self._speech: DataStreamAudioOutput | None = None
        self._resampler = SpeechResampler(audio_sample_rate)
        self._idle_timeout = DEFAULT_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self._last_speech: float | None = None  # loop time of the last speech sent
        self._left_idle = False
        self._joined_at: float | None = None
        self._tracks: dict[int, rtc.Track] = {}
        self._tracks_ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason: str | None = None
        self._audio_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._video_out: asyncio.Queue[OutputFrame | None] = asyncio.Queue()
        self._streams: list[rtc.AudioStream | rtc.VideoStream] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._started = False
        self._closing = False
        self._closed_event = asyncio.Event()  # set by aclose(): wakes a start() that waits
        self._create: asyncio.Future[str] | None = None  # the session-create request
        self._close_task: asyncio.Task[None] | None = None

    @property
    def side_room_name(self) -> str | None:
        """Name of the private room shared with the avatar (None before :meth:`start`)."""
        return self._side_room_name

    @property
    def session_id(self) -> str | None:
        """LemonSlice's id for the running session (None before it started)."""
        return self._session_id

    @property
    def avatar_identity(self) -> str:
        """Participant identity the LemonSlice avatar joins the side room with."""
        return self._avatar_identity

    @property
    def audio_sample_rate(self) -> int:
        """Rate of the speech streamed to LemonSlice (mono int16)."""
        return self._resampler.rate

    @property
    def left_idle(self) -> bool:
        """True when the avatar left because no speech came for ``idle_timeout`` seconds."""
        return self._left_idle

    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Open the side room, start the LemonSlice session and wait for the avatar's tracks.

        Raises :class:`~.lemonslice_api.LemonSliceTimeout` when connecting or the avatar's join
        takes too long, :class:`~.lemonslice_api.LemonSliceHTTPError` for rejected requests;
        everything opened so far is released.
        """
        if self._started:
            raise LemonSliceError("LemonSliceAvatar.start() may only be called once")
        self._started = True
        self._side_room_name = _side_room_name(room.name if room is not None else None)
        relay_token, avatar_token = self._mint_tokens(self._side_room_name)
        try:
            side_room = self._room = self._room_factory()
            side_room.on("track_subscribed", self._on_track_subscribed)
            side_room.on("participant_disconnected", self._on_participant_disconnected)
            side_room.on("disconnected", self._on_room_disconnected)
            await self._connect(side_room, relay_token)
            self._check_open()
            # the request runs on its own: closed while it is in flight, the teardown still
            # learns the session id and terminates the (billed) session
            self._create = asyncio.ensure_future(
                self._api.start_session(
                    self._spec, livekit_url=self._livekit_url, livekit_token=avatar_token
                )
            )
            self._session_id = await self._unless_closed(self._create)
            await self._wait_for_avatar()
            self._joined_at = asyncio.get_running_loop().time()
            self._speech = self._speech_output(side_room)
            await _output_started(self._speech)
            self._start_output()
        except BaseException:
            if self._close_task is None:
                await self.aclose()
            # else aclose() is already tearing down (and may wait for the create request):
            # this start() ends now
            raise
        logger.info(
            "LemonSlice avatar joined the side room",
            extra={"side_room": self._side_room_name, "lemonslice_session_id": self._session_id},
        )
        self.emit("ready")

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Send one frame of the current turn's speech (any rate and channel count)."""
        check_audio_frame(frame)
        speech = self._usable_speech()
        await self._send(speech, self._resampler.push(frame))

    async def end_turn(self) -> None:
        """Close the turn's byte stream: the avatar speaks what it has and reports finished."""
        speech = self._usable_speech()
        await self._send(speech, self._resampler.flush())
        speech.flush()

    async def interrupt(self) -> None:
        """Drop the current turn here and in the avatar (``lk.clear_buffer``); bump generation.

        The next turn's first frame waits (bounded by ``rpc_timeout``) until the avatar has
        acknowledged the clear, so the clear never reaches the next turn's stream."""
        self._bump_generation()
        self._resampler.drop()
        if self._speech is None or self._closing or self._lost_reason is not None:
            return
        self._speech.clear_buffer()
        self._speech.flush()  # closes the cut turn's byte stream

    async def _send(self, speech: DataStreamAudioOutput, pcm: bytes) -> None:
        samples = len(pcm) // 2
        if not samples:
            return
        frame = rtc.AudioFrame(pcm, self._resampler.rate, 1, samples)
        self._last_speech = asyncio.get_running_loop().time()
        try:
            await speech.capture_frame(frame)
        except Exception as exc:
            self._raise_if_lost()
            raise LemonSliceDisconnected(f"sending speech to the avatar failed: {exc}") from None

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        """The avatar's audio at the output rate, until the avatar or the side room goes away."""
        return drain_output(self._audio_out)

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        """The avatar's I420 video frames, until the avatar or the side room goes away."""
        return drain_output(self._video_out)

    async def aclose(self) -> None:
        """Terminate the LemonSlice session, leave the side room, stop all tasks. Idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._teardown())
        await asyncio.shield(self._close_task)

    # -- setup ---------------------------------------------------------------------------------

    def _mint_tokens(self, room_name: str) -> tuple[str, str]:
        """Room-scoped tokens: the relay may only send data; the avatar publishes its media. The
        room they create dispatches no agent (see ``_NO_AGENT``).

        The avatar keeps ``can_subscribe``: LiveKit delivers data packets over the subscriber
        connection, and nothing else is there to subscribe to (the relay cannot publish).
        """
        relay = api.VideoGrants(
            room_join=True,
            room=room_name,
            can_publish=False,
            can_publish_data=True,
            can_subscribe=True,
            can_update_own_metadata=False,
        )
        avatar = api.VideoGrants(
            room_join=True,
            room=room_name,
            can_publish=True,
            can_publish_data=True,
            can_subscribe=True,
            can_update_own_metadata=False,
        )
        return (
            self._token(self._relay_identity, relay),
            self._token(
                self._avatar_identity,
                avatar,
                # as the livekit-agents plugin marks it: publishing for the agent (our relay)
                attributes={"lk.publish_on_behalf": self._relay_identity},
            ),
        )

    def _token(
        self, identity: str, grants: api.VideoGrants, attributes: dict[str, str] | None = None
    ) -> str:
        token = (
            api.AccessToken(self._livekit_key, self._livekit_secret)
            .with_identity(identity)
            .with_name(identity)
            .with_kind("agent")
            .with_grants(grants)
            .with_ttl(timedelta(seconds=self._token_ttl))
        )
        if attributes:
            token = token.with_attributes(attributes)
        # whichever of the two joins first creates the room: both tokens carry its configuration
        side_room = api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=_NO_AGENT)])
        return token.with_room_config(side_room).to_jwt()

    def _check_open(self) -> None:
        if self._closing:
            raise LemonSliceDisconnected(
                "LemonSliceAvatar was closed while starting", retryable=False
            )

    async def _unless_closed(self, fut: asyncio.Future[Any]) -> Any:
        """``fut``'s result, or :class:`~.lemonslice_api.LemonSliceDisconnected` at once when
        aclose() comes first (``fut`` itself keeps running: the teardown waits for it)."""
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            await asyncio.wait({fut, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not fut.done():
            self._check_open()
        return fut.result()

    async def _connect(self, side_room: rtc.Room, token: str) -> None:
        connect = asyncio.ensure_future(
            side_room.connect(self._livekit_url, token, rtc.RoomOptions(auto_subscribe=True))
        )
        try:
            await asyncio.wait_for(self._unless_closed(connect), self._connect_timeout)
        except asyncio.TimeoutError:
            raise LemonSliceTimeout(
                f"connecting to the LiveKit side room took more than {self._connect_timeout:g} s"
            ) from None
        except rtc.ConnectError as exc:
            message = _redact(str(exc.message), token, self._livekit_secret)
            raise LemonSliceDisconnected(
                f"cannot join the LiveKit side room: {message}", retryable=False
            ) from None
        finally:
            if not connect.done():
                connect.cancel()

    async def _wait_for_avatar(self) -> None:
        """Until the avatar's audio and video tracks are subscribed, or timeout / loss."""
        assert self._room is not None
        for participant in self._room.remote_participants.values():
            if participant.identity == self._avatar_identity:
                for publication in participant.track_publications.values():
                    if publication.track is not None:
                        self._on_track_subscribed(publication.track, publication, participant)
        ready = asyncio.ensure_future(self._tracks_ready.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, lost, closed},
                timeout=self._join_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            lost.cancel()
            closed.cancel()
        self._check_open()
        if self._lost_reason is not None:
            raise LemonSliceDisconnected(self._lost_reason)
        if not done:
            missing = " and ".join(
                name for kind, name in _KIND_NAMES.items() if kind not in self._tracks
            )
            raise LemonSliceTimeout(
                f"the avatar did not publish {missing} in the side room "
                f"within {self._join_timeout:g} s"
            )

    def _start_output(self) -> None:
        audio = rtc.AudioStream(
            self._tracks[rtc.TrackKind.KIND_AUDIO],
            sample_rate=self._output_rate,
            num_channels=self._output_channels,
        )
        video = rtc.VideoStream(
            self._tracks[rtc.TrackKind.KIND_VIDEO], format=rtc.VideoBufferType.I420
        )
        self._streams = [audio, video]
        self._pumps = [
            asyncio.create_task(
                self._pump(audio, self._audio_out, "audio"), name="lemonslice-audio"
            ),
            asyncio.create_task(
                self._pump(video, self._video_out, "video"), name="lemonslice-video"
            ),
        ]

    # -- runtime -------------------------------------------------------------------------------

    async def _pump(
        self,
        stream: rtc.AudioStream | rtc.VideoStream,
        queue: asyncio.Queue[OutputFrame | None],
        kind: str,
    ) -> None:
        """Move one remote track's frames into its output queue; losing it ends the session."""
        try:
            async for event in stream:
                queue.put_nowait(OutputFrame(event.frame))
        except Exception as exc:
            logger.exception("reading the avatar's %s track failed", kind)
            self._lose(f"reading the avatar's {kind} track failed: {exc}")
            return
        self._lose(f"the avatar's {kind} track ended")

    def _speech_output(self, side_room: rtc.Room) -> DataStreamAudioOutput:
        """livekit-agents' sender, made once the avatar is in (its start task then ends at once;
        it has no close of its own). Its playback events become ours."""
        output = DataStreamAudioOutput(
            side_room,
            destination_identity=self._avatar_identity,
            sample_rate=self._resampler.rate,
            clear_buffer_timeout=self._rpc_timeout,
            wait_playback_start=True,
        )
        output.on("playback_started", self._on_playback_started)
        output.on("playback_finished", self._on_playback_finished)
        return output

    def _usable_speech(self) -> DataStreamAudioOutput:
        self._raise_if_lost()
        if self._closing:
            raise LemonSliceDisconnected("the provider is closed", retryable=False)
        if self._speech is None or self._close_task is not None:
            raise LemonSliceError("call start() before sending speech")
        return self._speech

    def _raise_if_lost(self) -> None:
        if self._lost_reason is not None:
            raise LemonSliceDisconnected(self._lost_reason, retryable=not self._left_idle)

    def _lose(self, reason: str) -> None:
        """The session is over: end the iterators, refuse further speech, tell listeners once."""
        if self._lost_reason is not None or self._closing:
            return
        self._lost_reason = reason
        logger.warning("LemonSlice session lost: %s", reason)
        self._lost.set()
        self._audio_out.put_nowait(None)
        self._video_out.put_nowait(None)
        self.emit("disconnected", reason)

    def _on_track_subscribed(
        self, track: rtc.Track, publication: rtc.TrackPublication, participant: rtc.Participant
    ) -> None:
        if participant.identity != self._avatar_identity or track.kind not in _KIND_NAMES:
            return
        if self._streams:
            logger.warning("ignoring a new %s track from the avatar", _KIND_NAMES[track.kind])
            return
        self._tracks[track.kind] = track
        if len(self._tracks) == len(_KIND_NAMES):
            self._tracks_ready.set()

    def _on_participant_disconnected(self, participant: rtc.Participant) -> None:
        if participant.identity != self._avatar_identity:
            return
        quiet = self._quiet_for()
        if (
            self._idle_timeout >= 0
            and quiet is not None
            and quiet >= self._idle_timeout - _IDLE_SLACK_S
        ):
            self._left_idle = True
            self._lose(
                f"the LemonSlice avatar left after {quiet:.0f} s without speech "
                f"(idle_timeout {self._idle_timeout} s)"
            )
            return
        self._lose("the LemonSlice avatar left the side room")

    def _quiet_for(self) -> float | None:
        """Seconds since speech was last sent (since the avatar joined, if none yet)."""
        since = self._last_speech if self._last_speech is not None else self._joined_at
        if since is None:
            return None
        return asyncio.get_running_loop().time() - since

    def _on_room_disconnected(self, reason: int) -> None:
        try:
            name = rtc.DisconnectReason.Name(reason)  # type: ignore[arg-type]
        except ValueError:
            name = str(reason)
        self._lose(f"the LiveKit side room disconnected ({name})")

    def _on_playback_started(self, _event: object) -> None:
        self.emit("playback_started")

    def _on_playback_finished(self, event: PlaybackFinishedEvent) -> None:
        self.emit(
            "playback_finished",
            PlaybackFinished(
                playback_position=float(event.playback_position),
                interrupted=bool(event.interrupted),
            ),
        )

    # -- teardown ------------------------------------------------------------------------------

    async def _learn_session_id(self) -> None:
        """Closed while the session-create request was in flight: wait for its answer (the
        request is bounded by ``request_timeout``) so the session can be terminated."""
        create = self._create
        if create is None or self._session_id is not None:
            return
        if not create.done():
            logger.info("closing during LemonSlice session creation: waiting for its id")
            await asyncio.wait({create}, timeout=self._request_timeout + 5.0)
        if not create.done():
            create.cancel()
            logger.warning(
                "LemonSlice did not answer the session request: if it started that session, "
                "its avatar stays billed until LemonSlice's idle_timeout (%s s) ends it",
                self._idle_timeout,
            )
        elif create.cancelled() or create.exception() is not None:
            logger.debug("the LemonSlice session request failed: no session to terminate")
        else:
            self._session_id = create.result()

    async def _teardown(self) -> None:
        self._closing = True
        self._closed_event.set()
        end_output(self._audio_out)
        end_output(self._video_out)
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._speech is not None:
            self._speech.flush()  # closes an open byte stream (before the room goes)
            _forget_handlers(self._avatar_identity)
        await self._learn_session_id()
        if self._session_id is not None:
            try:
                await self._api.terminate_session(self._session_id)
            except LemonSliceError as exc:
                logger.warning("could not terminate the LemonSlice session: %s", exc)
        if self._room is not None:
            try:
                await asyncio.wait_for(self._room.disconnect(), self._connect_timeout)
            except Exception as exc:
                logger.warning("leaving the LiveKit side room failed: %s", exc)
        for stream in self._streams:
            try:
                await asyncio.wait_for(stream.aclose(), _STREAM_CLOSE_TIMEOUT)
            except Exception as exc:
                logger.debug("closing a media stream failed: %s", exc)
        await self._api.aclose()


async def _output_started(output: DataStreamAudioOutput) -> None:
    """Wait for the output's own start task (it finds the avatar, already here, at once), so
    it never outlives a provider closed right after start() and fails unobserved. livekit-agents
    has no public way to wait for it; without the attribute there is nothing to wait for."""
    task = getattr(output, "_start_atask", None)
    if isinstance(task, asyncio.Task):
        await asyncio.shield(task)


def _forget_handlers(identity: str) -> None:
    """Drop this session's entries from DataStreamAudioOutput's class-level RPC registries (see
    the module docstring); a livekit-agents without them has nothing to drop."""
    for name in ("_playback_finished_handlers", "_playback_started_handlers"):
        registry = getattr(DataStreamAudioOutput, name, None)
        if isinstance(registry, dict):
            registry.pop(identity, None)


def _redact(text: str, *secrets_: str | None) -> str:
    """``text`` with every secret replaced (a server may echo the request, token included)."""
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "***")
    return text


def _agent_source(agent_id: str | None, agent_image_url: str | None) -> dict[str, str | None]:
    """Exactly one avatar source, from arguments first, then from the environment."""
    if agent_id and agent_image_url:
        raise LemonSliceConfigError("pass only one of agent_id or agent_image_url")
    if agent_id or agent_image_url:
        return {"agent_id": agent_id, "agent_image_url": agent_image_url}
    env_id = setting(None, "LEMONSLICE_AGENT_ID", what="", required=False)
    env_url = setting(None, "LEMONSLICE_AGENT_IMAGE_URL", what="", required=False)
    if env_id and env_url:
        raise LemonSliceConfigError(
            "both LEMONSLICE_AGENT_ID and LEMONSLICE_AGENT_IMAGE_URL are set: set only one"
        )
    if not env_id and not env_url:
        raise LemonSliceConfigError(
            "a LemonSlice agent is required: pass agent_id or agent_image_url, "
            "or set LEMONSLICE_AGENT_ID or LEMONSLICE_AGENT_IMAGE_URL"
        )
    return {"agent_id": env_id, "agent_image_url": env_url}


def _side_room_name(agent_room: str | None) -> str:
    """A unique, unguessable room name that still tells which agent room it serves."""
    base = _ROOM_NAME_UNSAFE.sub("-", agent_room or "").strip("-")[:64] or "agent"
    return f"{base}-lemonslice-{secrets.token_hex(6)}"
