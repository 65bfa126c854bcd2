"""Measure a participant's lip-sync in a real room, as a subscriber receives it.

:class:`RoomViewer` subscribes to one participant's microphone and camera tracks in an
``rtc.Room`` and records them with the same :class:`~.loopback.LoopbackCapture` the loopback
bench uses (its hooks and queries work unchanged), so a report from a room and one from local
tracks mean the same thing::

    viewer = RoomViewer(room, identity="agent-AJ_xyz")  # or None: the first avatar to publish
    await viewer.start()
    await viewer.capture.wait_for_bursts(20, timeout=30)
    print(viewer.synced_report().summary())  # as a lip-syncing receiver plays it (the default)
    print(viewer.raw_report().summary())  # as this subscriber plays it

The Python SDK's subscriber plays audio and video as they leave their jitter buffers, with no
receiver-side A/V sync, so its raw skew includes the difference of the two buffers (about 30 ms
of audio buffering on loopback, video early by as much). A receiver that lip-syncs a shared
stream (browsers do) holds video back by exactly that difference;
:class:`RoomViewer` samples it from the receiver's own WebRTC statistics (every 250 ms) and
:meth:`RoomViewer.synced_report` applies it per window.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from livekit import rtc

from .analysis import SyncReport
from .loopback import AudioHook, LoopbackCapture, VideoHook
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = ["JitterBuffers", "ReceiverQuality", "RoomViewer"]

_AUDIO, _VIDEO = rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_CAMERA
_SAMPLE_S = 0.25  # how often the receiver's jitter-buffer statistics are read
_SYNC_WINDOW_S = 1.0  # the span of statistics a frame's sync delay is taken over
ENCODER_FRAME_SLACK = 2  # a sender's encoder under load may drop this many frames in a row


@dataclass(frozen=True)
class JitterBuffers:
    """Cumulative jitter-buffer statistics of the two received tracks (WebRTC inbound-rtp):
    total seconds items waited, and how many items (audio samples, video frames) left."""

    audio_delay: float
    audio_count: int
    video_delay: float
    video_count: int


@dataclass(frozen=True)
class ReceiverQuality:
    """Cumulative playout-quality counters of the two received tracks (WebRTC inbound-rtp):
    audio the receiver had to make up because none had arrived (audible concealment, s), and
    video freezes and frames the receiver dropped."""

    audio_concealed: float
    video_freezes: int
    video_dropped: int

    def __sub__(self, before: ReceiverQuality) -> ReceiverQuality:
        return ReceiverQuality(
            self.audio_concealed - before.audio_concealed,
            self.video_freezes - before.video_freezes,
            self.video_dropped - before.video_dropped,
        )


class RoomViewer:
    """Captures a remote participant's audio (SOURCE_MICROPHONE) and video (SOURCE_CAMERA).

    ``room`` must be connected with auto-subscribe (the default) before :meth:`start`.
    ``identity`` picks the participant; None takes the first one that publishes both sources.
    Keywords are those of :class:`LoopbackCapture`.
    """

    def __init__(
        self,
        room: rtc.Room,
        *,
        identity: str | None = None,
        sample_rate: int = 48000,
        spec: MarkerSpec = DEFAULT_SPEC,
        on_video: VideoHook | None = None,
        on_audio: AudioHook | None = None,
    ) -> None:
        self._room = room
        self._identity = identity
        self._capture_args: dict[str, Any] = {
            "sample_rate": sample_rate,
            "spec": spec,
            "on_video": on_video,
            "on_audio": on_audio,
        }
        self._capture: LoopbackCapture | None = None
        self._tracks: tuple[rtc.Track, rtc.Track] | None = None
        self._samples: list[tuple[float, JitterBuffers]] = []
        self._sampler: asyncio.Task[None] | None = None
        self._closed = False
        self.participant: rtc.RemoteParticipant | None = None

    @property
    def capture(self) -> LoopbackCapture:
        if self._capture is None:
            raise RuntimeError("RoomViewer is not started")
        return self._capture

    async def start(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` s for the participant's two tracks, then start capturing."""
        if self._capture is not None:
            return
        changed = asyncio.Event()

        def on_change(*_: Any) -> None:
            changed.set()

        events = ("track_subscribed", "participant_connected", "track_published")
        for event in events:
            self._room.on(event, on_change)

        async def appear() -> tuple[rtc.RemoteParticipant, rtc.Track, rtc.Track]:
            while (found := self._find()) is None:
                changed.clear()
                await changed.wait()
            return found

        try:
            found = await asyncio.wait_for(appear(), timeout)
        except asyncio.TimeoutError:
            who = self._identity or "any participant"
            raise TimeoutError(
                f"{who} did not publish a microphone and a camera track within {timeout:g} s"
            ) from None
        finally:
            for event in events:
                self._room.off(event, on_change)
        self.participant, audio, video = found
        self._tracks = (audio, video)
        self._capture = LoopbackCapture(audio, video, **self._capture_args)
        self._capture.video_delay = self.frame_sync_delay
        self._capture.frame_slack = ENCODER_FRAME_SLACK
        await self._capture.start()
        self._sampler = asyncio.create_task(self._sample(), name="room-viewer-stats")

    async def _sample(self) -> None:
        while True:
            self._samples.append((time.monotonic(), await self.jitter_buffers()))
            await asyncio.sleep(_SAMPLE_S)

    def sync_delay(self, since: float | None = None, until: float | None = None) -> float:
        """Seconds a lip-syncing receiver held video back over [since, until] (monotonic; None:
        the whole capture), from the jitter-buffer samples nearest those times."""
        if self._sampler is not None and self._sampler.done() and not self._sampler.cancelled():
            self._sampler.result()  # a failed sampler raises here
        samples = self._samples
        if len(samples) < 2:
            return 0.0
        times = [t for t, _ in samples]
        first = 0 if since is None else max(0, bisect.bisect_right(times, since) - 1)
        last = len(samples) - 1 if until is None else bisect.bisect_left(times, until)
        last = min(max(last, first + 1), len(samples) - 1)
        return self.receiver_sync_delay(samples[first][1], samples[last][1])

    def frame_sync_delay(self, t: float) -> float:
        """The sync delay of a frame that arrived at ``t``: the buffers' difference over the
        second around it (a syncing receiver follows its buffers as they change)."""
        return self.sync_delay(t - _SYNC_WINDOW_S / 2, t + _SYNC_WINDOW_S / 2)

    def synced_report(self, since: float | None = None, until: float | None = None) -> SyncReport:
        """Markers seen in [since, until] as a receiver that lip-syncs the stream shows them
        (also what ``capture.analyze()`` reports by default)."""
        return self.capture.analyze(since=since, until=until)

    def raw_report(self, since: float | None = None, until: float | None = None) -> SyncReport:
        """Markers seen in [since, until] as this subscriber plays them (no receiver sync)."""
        return self.capture.analyze(since=since, until=until, video_delay=0.0)

    def _find(self) -> tuple[rtc.RemoteParticipant, rtc.Track, rtc.Track] | None:
        for participant in self._room.remote_participants.values():
            if self._identity is not None and participant.identity != self._identity:
                continue
            tracks = {
                pub.source: pub.track
                for pub in participant.track_publications.values()
                if pub.track is not None
            }
            if _AUDIO in tracks and _VIDEO in tracks:
                return participant, tracks[_AUDIO], tracks[_VIDEO]
        return None

    async def _inbound(self) -> tuple[Any, Any]:
        """The inbound-rtp statistics of the audio and the video track (None where not yet)."""
        if self._tracks is None:
            raise RuntimeError("RoomViewer is not started")
        found: list[Any] = []
        for track in self._tracks:
            inbound = None
            for stats in await track.get_stats():
                if stats.WhichOneof("stats") == "inbound_rtp":
                    inbound = stats.inbound_rtp.inbound
            found.append(inbound)
        return found[0], found[1]

    async def jitter_buffers(self) -> JitterBuffers:
        """The receiver's cumulative jitter-buffer statistics for the two tracks, now."""
        audio, video = await self._inbound()
        return JitterBuffers(
            audio.jitter_buffer_delay if audio else 0.0,
            audio.jitter_buffer_emitted_count if audio else 0,
            video.jitter_buffer_delay if video else 0.0,
            video.jitter_buffer_emitted_count if video else 0,
        )

    async def quality(self) -> ReceiverQuality:
        """The receiver's cumulative playout-quality counters, now (subtract two readings)."""
        audio, video = await self._inbound()
        concealed = 0.0
        if audio is not None and audio.total_samples_duration > 0:
            rate = audio.total_samples_received / audio.total_samples_duration
            concealed = (audio.concealed_samples - audio.silent_concealed_samples) / rate
        return ReceiverQuality(
            concealed,
            video.freeze_count if video else 0,
            video.frames_dropped if video else 0,
        )

    @staticmethod
    def receiver_sync_delay(before: JitterBuffers, after: JitterBuffers) -> float:
        """Seconds a lip-syncing receiver holds video back between two samples: the mean audio
        jitter-buffer delay minus the mean video one (0 where either stream had no items)."""
        audio_n = after.audio_count - before.audio_count
        video_n = after.video_count - before.video_count
        if audio_n <= 0 or video_n <= 0:
            return 0.0
        audio = (after.audio_delay - before.audio_delay) / audio_n
        video = (after.video_delay - before.video_delay) / video_n
        return audio - video

    async def aclose(self) -> None:
        """Stop capturing (the room stays connected: it is the caller's). The capture and the
        statistics stay readable."""
        if self._closed:
            return
        self._closed = True
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._capture is not None:
            await self._capture.aclose()
