"""The benchmark's scenarios through a real LiveKit room, measured at a real subscriber.

:func:`room_transport` is a ``transport`` for :func:`~.scenarios.run_scenario`: it publishes the
scenario's sources as one participant's microphone and camera in one ``stream`` (what receivers
lip-sync) and measures them at a second participant with :class:`~.room.RoomViewer`. Everything
else about a scenario (producer, synchronizer, analysis) is the loopback bench's own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from livekit import api, rtc

from .loopback import LoopbackCapture
from .room import RoomViewer
from .scenarios import Transport
from .spec import MarkerSpec

__all__ = ["RoomServer", "room_transport"]

_PUBLISHER, _VIEWER = "bench-publisher", "bench-viewer"
_SUBSCRIBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RoomServer:
    """A LiveKit server the bench may create rooms on: URL and API keys."""

    url: str
    api_key: str
    api_secret: str

    def token(self, room: str, identity: str) -> str:
        grants = api.VideoGrants(room_join=True, room=room)
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
            .to_jwt()
        )


def room_transport(server: RoomServer, *, stream: str = "avatar") -> Transport:
    """A transport that runs each scenario in a fresh room of ``server``."""

    @contextlib.asynccontextmanager
    async def transport(
        audio: rtc.AudioSource, video: rtc.VideoSource, spec: MarkerSpec
    ) -> AsyncIterator[LoopbackCapture]:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        publisher, viewer_room = rtc.Room(), rtc.Room()
        viewer: RoomViewer | None = None
        try:
            await viewer_room.connect(server.url, server.token(name, _VIEWER))
            await publisher.connect(server.url, server.token(name, _PUBLISHER))
            local = publisher.local_participant
            await local.publish_track(
                rtc.LocalAudioTrack.create_audio_track("bench-audio", audio),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, stream=stream),
            )
            await local.publish_track(
                rtc.LocalVideoTrack.create_video_track("bench-video", video),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, stream=stream),
            )
            viewer = RoomViewer(viewer_room, identity=_PUBLISHER, spec=spec)
            await viewer.start(timeout=_SUBSCRIBE_TIMEOUT_S)
            yield viewer.capture
        finally:
            if viewer is not None:
                await viewer.aclose()
            await publisher.disconnect()
            await viewer_room.disconnect()

    return transport
