"""A thin stand-in for the parts of ``rtc.Room`` that publishing needs (no server runs here).

Only publishing is faked: the tracks handed to it are real ``rtc.LocalAudioTrack`` /
``rtc.LocalVideoTrack`` objects whose media tests read back through ``rtc.AudioStream`` /
``rtc.VideoStream``. ``test_room_stand_in.py`` checks every method here against the real classes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc

_sids = itertools.count(1)


@dataclass
class PublicationStandIn:
    """What ``publish_track`` returns: the real track, its options and a server-style sid."""

    track: rtc.LocalAudioTrack | rtc.LocalVideoTrack
    options: rtc.TrackPublishOptions
    sid: str = field(default_factory=lambda: f"TR_{next(_sids)}")
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for_subscription(self) -> None:
        await self.subscribed.wait()


class LocalParticipantStandIn:
    def __init__(self, *, subscribers: bool = True) -> None:
        self.subscribers = subscribers  # someone in the room subscribes to every track at once
        self.published: dict[str, PublicationStandIn] = {}
        self.unpublished: list[str] = []

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions | None = None
    ) -> PublicationStandIn:
        options = options if options is not None else rtc.TrackPublishOptions()
        if not isinstance(track, (rtc.LocalAudioTrack, rtc.LocalVideoTrack)):
            raise TypeError(f"cannot publish {type(track).__name__}")
        pub = PublicationStandIn(track, options)
        if self.subscribers:
            pub.subscribed.set()
        self.published[pub.sid] = pub
        return pub

    async def unpublish_track(self, track_sid: str) -> None:
        if track_sid not in self.published:
            raise ValueError(f"no published track {track_sid}")
        del self.published[track_sid]
        self.unpublished.append(track_sid)


class RoomStandIn:
    """Room with a local participant, connected unless ``connected=False`` (then ``connect()``
    connects it, as ``AgentSession.start`` does in a job); ``disconnect()`` emits
    "disconnected"."""

    def __init__(
        self, name: str = "test-room", *, connected: bool = True, subscribers: bool = True
    ) -> None:
        self.name = name
        self.local_participant = LocalParticipantStandIn(subscribers=subscribers)
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._connected = connected

    async def connect(self, url: str = "", token: str = "") -> None:
        self._connected = True
        self.emit("connection_state_changed", rtc.ConnectionState.CONN_CONNECTED)

    def isconnected(self) -> bool:
        return self._connected

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        if callback is None:
            raise TypeError("the stand-in only supports on(event, callback)")
        self._handlers.setdefault(event, []).append(callback)
        return callback

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        if callback in self._handlers.get(event, []):
            self._handlers[event].remove(callback)

    def emit(self, event: str, *args: Any) -> None:
        for cb in list(self._handlers.get(event, [])):
            cb(*args)

    def subscribe_all(self) -> None:
        """A participant joins and subscribes to every published track."""
        for pub in self.local_participant.published.values():
            pub.subscribed.set()

    async def disconnect(self, reason: Any = None) -> None:
        self._connected = False
        self.emit("connection_state_changed", rtc.ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", rtc.DisconnectReason.CLIENT_INITIATED)
