"""Per-turn playback accounting: when the agent's speech really starts and stops playing.

The session forwards a turn's TTS audio to the provider; the provider's output comes back through
the synchronizer. A turn's speech occupies a stretch of the synchronizer's pushed-audio stream
(``AVSynchronizer.audio_admitted`` marks); comparing those marks with the synchronizer's playhead
(``audio_stream_position``) tells how much of the turn the listener has really heard.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Turn"]

_END_GRACE_FLAGGED = 0.0  # s of non-speech output after the last speech that ends a flagged turn
_END_GRACE_LOUDNESS = 0.3  # ... when speech is judged by loudness (pauses between words)


@dataclass(slots=True)
class Turn:
    """One segment of agent speech, from the first ``capture_frame`` to flush or interrupt."""

    speech_in: float = 0.0  # seconds of TTS audio sent to the provider
    input_done: bool = False
    done_at: float | None = None  # monotonic time the input ended (flush)
    out_start: float | None = None  # stream mark where the turn's speech starts in the output
    out_end: float | None = None  # stream mark where the last speech seen so far ends
    flagged: bool = False  # the provider marks speech frames itself
    started: bool = False
    finished: bool = False
    cut: float | None = None  # ended early (provider gone) after this many seconds heard

    def on_output(self, before: float, after: float, speech: bool, flagged: bool) -> None:
        """Record a provider audio frame that occupied stream marks [before, after)."""
        if not speech or after <= before:
            return
        self.flagged = self.flagged or flagged
        if self.out_start is None:
            self.out_start = before
        self.out_end = after

    def position(self, stream_position: float) -> float:
        """Seconds of this turn's speech that have played, capped at what was sent."""
        if self.out_start is None:
            return 0.0
        played = max(0.0, stream_position - self.out_start)
        if self.out_end is not None:
            played = min(played, self.out_end - self.out_start)
        return min(played, self.speech_in) if self.speech_in > 0 else played

    def has_started(self, stream_position: float) -> bool:
        return self.out_start is not None and stream_position > self.out_start

    def is_complete(self, stream_position: float, admitted: float) -> bool:
        """All of the turn's speech has come out of the provider and played."""
        if not self.input_done or self.out_end is None:
            return False
        grace = _END_GRACE_FLAGGED if self.flagged else _END_GRACE_LOUDNESS
        return admitted - self.out_end > grace and stream_position >= self.out_end
