"""Publishing the avatar's tracks into the agent's room, whenever that room connects.

livekit-agents' own examples never call ``ctx.connect()``: ``AgentSession.start()`` connects the
room. So the avatar cannot wait for a connection in ``start()``; :class:`TrackPublisher`
publishes at once when the room is connected and otherwise as soon as it connects, and tells
the audio output when a listener has subscribed (so speech is not played to nobody, as RoomIO's
own output does). :class:`RoomAudioRemover` unpublishes the audio track RoomIO published for the
agent before the avatar took over its voice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from livekit import rtc

__all__ = ["RoomAudioRemover", "TrackPublisher"]

logger = logging.getLogger("livekit_avsync")

_UNPUBLISH_TIMEOUT_S = 2.0  # an unpublish request the server does not answer in time is left


class TrackPublisher:
    """The avatar's audio (SOURCE_MICROPHONE) and video (SOURCE_CAMERA) tracks, in one ``stream``
    so receivers lip-sync them; published once ``room`` is connected."""

    def __init__(
        self,
        room: rtc.Room,
        audio_source: rtc.AudioSource,
        video_source: rtc.VideoSource,
        *,
        stream_name: str,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._room = room
        self._stream = stream_name
        self._on_failure = on_failure
        self.audio_track = rtc.LocalAudioTrack.create_audio_track("avatar_audio", audio_source)
        self.video_track = rtc.LocalVideoTrack.create_video_track("avatar_video", video_source)
        self._audio: Any = None  # rtc.LocalTrackPublication (a stand-in in tests)
        self._video: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.published = asyncio.Event()
        """Set once both tracks are published."""
        self.subscribed = asyncio.Event()
        """Set once someone has subscribed to the avatar's audio track."""

    @property
    def publications(self) -> list[Any]:
        return [p for p in (self._audio, self._video) if p is not None]

    def start(self) -> None:
        """Publish now if the room is connected, else as soon as it connects."""
        if self._room.isconnected():
            self._spawn()
        else:
            self._room.on("connection_state_changed", self._on_state)

    async def wait_published(self) -> None:
        """Wait until the tracks are published (when the room was connected), not for a
        subscriber: nobody may be in the room yet. A failed publish raises here."""
        task = self._task
        if task is None:
            return
        published = asyncio.ensure_future(self.published.wait())
        try:
            await asyncio.wait({published, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            published.cancel()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def _on_state(self, *_: Any) -> None:
        if self._room.isconnected() and self._task is None and not self._closed:
            self._room.off("connection_state_changed", self._on_state)
            self._spawn()

    def _spawn(self) -> None:
        self._task = asyncio.create_task(self._publish(), name="avsync-publish")
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._closed:
            self._on_failure(task.exception())  # type: ignore[arg-type]

    async def _publish(self) -> None:
        participant = self._room.local_participant
        audio_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_MICROPHONE, stream=self._stream
        )
        video_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, stream=self._stream
        )
        self._audio = await participant.publish_track(self.audio_track, audio_opts)
        self._video = await participant.publish_track(self.video_track, video_opts)
        self.published.set()
        logger.info("avatar tracks published in room %s", getattr(self._room, "name", "?"))
        await self._audio.wait_for_subscription()
        self.subscribed.set()

    async def unpublish_video(self) -> None:
        """Take the video track down (the face is gone; the voice stays)."""
        pub, self._video = self._video, None
        if pub is not None:
            await _unpublish(self._room, [pub])

    async def aclose(self) -> None:
        """Stop waiting for the room; unpublish what was published (bounded: once the room is
        gone the tracks went with it, and an unpublish request then never gets its answer)."""
        self._closed = True
        self._room.off("connection_state_changed", self._on_state)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        pubs = self.publications
        self._audio = self._video = None
        await _unpublish(self._room, pubs)


class RoomAudioRemover:
    """Unpublishes the agent audio track RoomIO published (now, or whenever it does), once the
    avatar speaks for the agent: an agent participant has one voice, and clients pick "the"
    agent's microphone track. Only SOURCE_MICROPHONE audio that is not the avatar's is taken
    down, so a BackgroundAudioPlayer's track (SOURCE_UNKNOWN) stays.

    RoomIO waits for its own track to be subscribed before it starts the user-away timer; with
    that track gone, the avatar's audio track being subscribed stands for it.
    """

    def __init__(self, room: rtc.Room, keep: rtc.LocalAudioTrack, subscribed: Any) -> None:
        self._room = room
        self._keep = keep
        self._subscribed = subscribed  # RoomIO's subscribed future, or None
        self._tasks: set[asyncio.Task[None]] = set()
        self.removed: list[str] = []

    def start(self) -> None:
        self._room.on("local_track_published", self._on_published)
        participant = self._room.local_participant
        for pub in list(getattr(participant, "track_publications", {}).values()):
            self._on_published(pub, pub.track)

    def _on_published(self, pub: Any, track: Any) -> None:
        if track is self._keep or pub.kind != rtc.TrackKind.KIND_AUDIO:
            return
        if pub.source != rtc.TrackSource.SOURCE_MICROPHONE or pub.sid in self.removed:
            return
        self.removed.append(pub.sid)
        logger.info("unpublishing RoomIO's agent audio track %s: the avatar speaks", pub.sid)
        task = asyncio.create_task(_unpublish(self._room, [pub]), name="avsync-unpublish-roomio")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_avatar_subscribed(self) -> None:
        fut = self._subscribed
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def aclose(self) -> None:
        self._room.off("local_track_published", self._on_published)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _unpublish(room: rtc.Room, pubs: list[Any]) -> None:
    if not pubs or not room.isconnected():
        return
    results = await asyncio.gather(
        *(
            asyncio.wait_for(room.local_participant.unpublish_track(p.sid), _UNPUBLISH_TIMEOUT_S)
            for p in pubs
        ),
        return_exceptions=True,
    )
    for pub, result in zip(pubs, results, strict=True):
        if isinstance(result, asyncio.TimeoutError):
            logger.warning("unpublishing track %s got no answer: left", pub.sid)
        elif isinstance(result, BaseException):
            logger.warning("could not unpublish track %s: %r", pub.sid, result)
