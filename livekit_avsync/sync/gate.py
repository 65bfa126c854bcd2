"""The stale-tail gate: after an interrupt, drop what the provider still had in flight.

``rtc.AudioSource.clear_queue()`` only empties what was already handed over; a remote provider keeps
delivering the interrupted turn for a while (its network and jitter buffers). Frames that carry an
epoch are judged by it; for untagged frames the gate closes at the interrupt and drops every frame
until the provider's audio has been quiet (silent, or absent) for ``quiet`` seconds, or ``max_wait``
has passed. Video stays closed ``video_hold`` longer in arrival mode, because a provider's video
tail trails its audio by that much; in timestamps mode video older than the first audio let
through is stale by definition.
"""

from __future__ import annotations

__all__ = ["StaleGate"]


class StaleGate:
    """Pure state machine on an injected clock; the synchronizer feeds it every pushed frame."""

    def __init__(self, *, quiet: float = 0.25, max_wait: float = 2.0, video_hold: float = 0.0):
        if quiet <= 0 or max_wait <= 0 or video_hold < 0:
            raise ValueError("gate quiet and max_wait must be positive, video_hold not negative")
        self.quiet = quiet
        self.max_wait = max_wait
        self.video_hold = video_hold
        self._closed_at: float | None = None
        self._last_loud = 0.0
        self._opened_at: float | None = None  # wall time the audio gate last reopened
        self._opened_media: float | None = None  # session time of the first audio let through

    @property
    def closed(self) -> bool:
        return self._closed_at is not None

    def close(self, now: float) -> None:
        """An interrupt happened at ``now``: everything in flight from before it is stale."""
        self._closed_at = now
        self._last_loud = now
        self._opened_at = None
        self._opened_media = None

    def open(self, now: float) -> None:
        """The producer says a new turn is flowing (a frame tagged with the current epoch)."""
        # tagged frames are judged by their epoch: no quiet wait, no video hold, no media check
        self._closed_at = None
        self._opened_at = None
        self._opened_media = None

    def _poll(self, now: float) -> None:
        if self._closed_at is None:
            return
        if now - self._last_loud >= self.quiet or now - self._closed_at >= self.max_wait:
            self._closed_at = None
            self._opened_at = now

    def admit_audio(self, now: float, quiet: bool, session_start: float) -> bool:
        """True when this audio frame may play; loud audio keeps a closed gate closed."""
        if self._closed_at is not None and not quiet:
            self._last_loud = now
        self._poll(now)
        if self._closed_at is not None:
            return False
        if self._opened_media is None and self._opened_at is not None:
            self._opened_media = session_start
        return True

    def admit_video(self, now: float, session_ts: float, *, timestamps: bool) -> bool:
        """True when this video frame may be shown."""
        self._poll(now)
        if self._closed_at is not None:
            return False
        if self._opened_at is None:
            return True
        if timestamps:
            if self._opened_media is not None and session_ts < self._opened_media:
                return False
            return not (self._opened_media is None and now - self._opened_at < self.video_hold)
        return now - self._opened_at >= self.video_hold
