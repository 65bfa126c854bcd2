"""A thin in-process stand-in for a LiveKit server and the ``rtc.Room`` surface our code uses.

Rooms are joined with real JWTs (verified with ``livekit.api.TokenVerifier``) and the token's
grants are enforced: joining needs ``room_join`` for that room, publishing tracks needs
``can_publish``, byte streams and RPC need ``can_publish_data``, track delivery needs
``can_subscribe``. Published tracks are real ``rtc.LocalAudioTrack``/``LocalVideoTrack`` objects,
so subscribers read real media from them with ``rtc.AudioStream``/``rtc.VideoStream``.

Every public method and property of the ``Fake*`` classes mirrors one on the real rtc class;
``tests/test_lemonslice_provider.py`` checks names and signatures so the stand-in cannot drift.
Test-only controls live on :class:`FakeLiveKitServer` or start with an underscore.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc

_EOF = object()


@dataclass
class Join:
    """One successful join, with the verified token claims (for least-privilege assertions)."""

    room: str
    identity: str
    claims: api.Claims
    token: str


@dataclass
class _RoomState:
    members: dict[str, FakeRoom] = field(default_factory=dict)


class FakeLiveKitServer:
    """The rooms hub: verifies tokens, routes events, byte streams and RPCs between FakeRooms."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.joins: list[Join] = []
        self._rooms: dict[str, _RoomState] = {}

    def room_factory(self) -> FakeRoom:
        """What a provider's ``room_factory`` should call."""
        return FakeRoom(self)

    def members(self, room_name: str) -> list[str]:
        """Identities currently in ``room_name``."""
        return list(self._rooms.get(room_name, _RoomState()).members)

    def mint(self, identity: str, room_name: str, **grants: Any) -> str:
        """A token for a test participant (e.g. an intruder) signed with the server's keys."""
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room_name, **grants))
            .to_jwt()
        )

    async def kick(self, room_name: str, identity: str) -> None:
        """Remove a participant as the server would (its room sees ``disconnected``)."""
        member = self._rooms[room_name].members[identity]
        await member._drop(rtc.DisconnectReason.PARTICIPANT_REMOVED)

    # -- used by FakeRoom -------------------------------------------------------------------

    def _join(self, room: FakeRoom, url: str, token: str) -> api.Claims:
        if url != self.url:
            raise rtc.ConnectError(f"no LiveKit server at {url}")
        try:
            claims = api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception as exc:
            raise rtc.ConnectError(f"invalid token: {exc}") from None
        video = claims.video
        if video is None or not video.room_join or not video.room:
            raise rtc.ConnectError("token does not grant room_join for a room")
        state = self._rooms.setdefault(video.room, _RoomState())
        if claims.identity in state.members:
            raise rtc.ConnectError(f"identity {claims.identity!r} already in the room")
        state.members[claims.identity] = room
        self.joins.append(Join(video.room, claims.identity, claims, token))
        return claims

    def _peers(self, room: FakeRoom) -> list[FakeRoom]:
        state = self._rooms.get(room.name)
        if state is None:
            return []
        return [m for ident, m in state.members.items() if ident != room._identity]

    def _leave(self, room: FakeRoom) -> None:
        state = self._rooms.get(room.name)
        if state is not None:
            state.members.pop(room._identity, None)

    def _member(self, room: FakeRoom, identity: str) -> FakeRoom | None:
        state = self._rooms.get(room.name)
        return None if state is None else state.members.get(identity)


class FakeTrackPublication:
    """Stand-in for ``rtc.RemoteTrackPublication`` holding the publisher's real local track."""

    def __init__(self, track: rtc.Track) -> None:
        self._sid = f"TR_{uuid.uuid4().hex[:12]}"
        self._track = track

    @property
    def sid(self) -> str:
        return self._sid

    @property
    def kind(self) -> int:
        return self._track.kind

    @property
    def track(self) -> rtc.Track | None:
        return self._track

    @property
    def subscribed(self) -> bool:
        return True


class FakeRemoteParticipant:
    """Stand-in for ``rtc.RemoteParticipant``: another member seen from one room."""

    def __init__(self, source: FakeRoom) -> None:
        self._source = source

    @property
    def identity(self) -> str:
        return self._source._identity

    @property
    def kind(self) -> int:
        return self._source._kind

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self._source._attributes)

    @property
    def state(self) -> int:
        return rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE

    @property
    def track_publications(self) -> Mapping[str, FakeTrackPublication]:
        return dict(self._source._publications)


class FakeByteStreamReader:
    """Stand-in for ``rtc.ByteStreamReader``: chunks as written, ending at the writer's close."""

    def __init__(self, info: rtc.ByteStreamInfo) -> None:
        self._info = info
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._close_reason: str | None = None

    @property
    def info(self) -> rtc.ByteStreamInfo:
        return self._info

    def __aiter__(self) -> FakeByteStreamReader:
        return self

    async def __anext__(self) -> bytes:
        item = await self._queue.get()
        if item is _EOF:
            self._queue.put_nowait(_EOF)
            raise StopAsyncIteration
        return item


class FakeByteStreamWriter:
    """Stand-in for ``rtc.ByteStreamWriter`` delivering to the destinations' readers."""

    def __init__(self, info: rtc.ByteStreamInfo, readers: list[FakeByteStreamReader]) -> None:
        self._info = info
        self._readers = readers
        self._closed = False

    @property
    def info(self) -> rtc.ByteStreamInfo:
        return self._info

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("Cannot write after stream is closed")
        await asyncio.sleep(0)
        for reader in self._readers:
            reader._queue.put_nowait(bytes(data))

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        if self._closed:
            raise RuntimeError("Stream already closed")
        self._closed = True
        await asyncio.sleep(0)
        for reader in self._readers:
            reader._close_reason = reason
            reader._queue.put_nowait(_EOF)


class FakeLocalParticipant:
    """Stand-in for ``rtc.LocalParticipant`` with grant checks."""

    def __init__(self, room: FakeRoom) -> None:
        self._room = room
        self._rpc_handlers: dict[str, Callable[[rtc.RpcInvocationData], Any]] = {}

    @property
    def identity(self) -> str:
        return self._room._identity

    @property
    def kind(self) -> int:
        return self._room._kind

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self._room._attributes)

    @property
    def track_publications(self) -> Mapping[str, FakeTrackPublication]:
        return dict(self._room._publications)

    async def publish_track(
        self, track: rtc.LocalAudioTrack | rtc.LocalVideoTrack, options: Any = None
    ) -> FakeTrackPublication:
        self._room._require("can_publish")
        publication = FakeTrackPublication(track)
        self._room._publications[publication.sid] = publication
        for peer in self._room._server._peers(self._room):
            peer._deliver_track(self._room, publication)
        return publication

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> FakeByteStreamWriter:
        self._room._require("can_publish_data")
        info = rtc.ByteStreamInfo(
            stream_id=stream_id or uuid.uuid4().hex,
            mime_type=mime_type,
            topic=topic,
            timestamp=0,
            size=total_size,
            attributes=dict(attributes or {}),
            name=name,
        )
        readers = []
        for peer in self._room._server._peers(self._room):
            if destination_identities and peer._identity not in destination_identities:
                continue
            handler = peer._byte_handlers.get(topic)
            if handler is None:
                continue
            reader = FakeByteStreamReader(info)
            readers.append(reader)
            asyncio.get_running_loop().call_soon(handler, reader, self.identity)
        await asyncio.sleep(0)
        return FakeByteStreamWriter(info, readers)

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        self._room._require("can_publish_data")
        code = rtc.RpcError.ErrorCode
        target = self._room._server._member(self._room, destination_identity)
        if target is None:
            raise rtc.RpcError(code.RECIPIENT_NOT_FOUND, "Recipient not found")
        handler = target.local_participant._rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(code.UNSUPPORTED_METHOD, "Method not supported at destination")
        timeout = 15.0 if response_timeout is None else response_timeout
        data = rtc.RpcInvocationData(
            request_id=uuid.uuid4().hex,
            caller_identity=self.identity,
            payload=payload,
            response_timeout=timeout,
            method=method,
        )

        async def invoke() -> str:
            result = handler(data)
            if inspect.isawaitable(result):
                result = await result
            return "" if result is None else str(result)

        try:
            return await asyncio.wait_for(invoke(), timeout)
        except asyncio.TimeoutError:
            raise rtc.RpcError(code.RESPONSE_TIMEOUT, "Response timeout") from None
        except rtc.RpcError:
            raise
        except Exception as exc:
            raise rtc.RpcError(code.APPLICATION_ERROR, f"Application error: {exc}") from None

    def register_rpc_method(
        self, method_name: str, handler: Callable[[rtc.RpcInvocationData], Any] | None = None
    ) -> Any:
        def register(func: Callable[[rtc.RpcInvocationData], Any]) -> Any:
            self._rpc_handlers[method_name] = func
            return func

        return register(handler) if handler is not None else register


class FakeRoom(rtc.EventEmitter[str]):
    """Stand-in for ``rtc.Room``; events are emitted on the next loop iteration, like the SDK."""

    def __init__(self, server: FakeLiveKitServer) -> None:
        super().__init__()
        self._server = server
        self._connected = False
        self._name = ""
        self._identity = ""
        self._kind = 0
        self._attributes: dict[str, str] = {}
        self._grants: api.VideoGrants | None = None
        self._auto_subscribe = True
        self._local: FakeLocalParticipant | None = None
        self._remotes: dict[str, FakeRemoteParticipant] = {}
        self._publications: dict[str, FakeTrackPublication] = {}
        self._byte_handlers: dict[str, Callable[[FakeByteStreamReader, str], None]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def local_participant(self) -> FakeLocalParticipant:
        if self._local is None:
            raise Exception("cannot access local participant before connecting")
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, FakeRemoteParticipant]:
        return dict(self._remotes)

    def isconnected(self) -> bool:
        return self._connected

    def on(self, event: str, callback: Callable | None = None) -> Callable:
        return super().on(event, callback)

    def register_byte_stream_handler(
        self, topic: str, handler: Callable[[FakeByteStreamReader, str], None]
    ) -> None:
        if topic in self._byte_handlers:
            raise ValueError(f"byte stream handler for topic '{topic}' already set")
        self._byte_handlers[topic] = handler

    async def connect(self, url: str, token: str, options: rtc.RoomOptions | None = None) -> None:
        claims = self._server._join(self, url, token)
        assert claims.video is not None
        self._name = claims.video.room
        self._identity = claims.identity
        self._kind = _kind_value(claims.kind)
        self._attributes = dict(claims.attributes or {})
        self._grants = claims.video
        self._auto_subscribe = options.auto_subscribe if options is not None else True
        self._local = FakeLocalParticipant(self)
        self._connected = True
        await asyncio.sleep(0)
        for peer in self._server._peers(self):
            self._remotes[peer._identity] = FakeRemoteParticipant(peer)
            peer._deliver_join(self)
            for publication in peer._publications.values():
                self._deliver_track(peer, publication)

    async def disconnect(self, *, reason: int = rtc.DisconnectReason.CLIENT_INITIATED) -> None:
        await self._drop(reason)

    # -- server side ------------------------------------------------------------------------

    def _require(self, grant: str) -> None:
        if not self._connected or self._grants is None:
            raise RuntimeError("not connected")
        if not getattr(self._grants, grant):
            raise PermissionError(f"token of {self._identity!r} lacks {grant}")

    def _later(self, event: str, *args: Any) -> None:
        asyncio.get_running_loop().call_soon(self.emit, event, *args)

    def _deliver_join(self, newcomer: FakeRoom) -> None:
        participant = FakeRemoteParticipant(newcomer)
        self._remotes[newcomer._identity] = participant
        self._later("participant_connected", participant)

    def _deliver_track(self, publisher: FakeRoom, publication: FakeTrackPublication) -> None:
        if not self._auto_subscribe or self._grants is None or not self._grants.can_subscribe:
            return
        participant = self._remotes.get(publisher._identity)
        if participant is not None:
            self._later("track_subscribed", publication.track, publication, participant)

    async def _drop(self, reason: int) -> None:
        if not self._connected:
            return
        self._connected = False
        self._server._leave(self)
        for peer in self._server._peers(self):
            gone = peer._remotes.pop(self._identity, None)
            if gone is not None:
                peer._later("participant_disconnected", gone)
        self._remotes.clear()
        self._later("disconnected", reason)
        await asyncio.sleep(0)


def _kind_value(kind: str) -> int:
    names = {
        "standard": rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        "agent": rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
    }
    return names.get(kind, rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)
