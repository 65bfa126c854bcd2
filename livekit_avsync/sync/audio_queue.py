"""Audio admitted but not yet handed to the source, in chunks on the session timeline. Pure.

Frames are cut into chunks of at most ``chunk_s`` (20 ms: the source's queue always has room for
one, so a clear drops chunks whole) and each is judged quiet or loud by its RMS; a short chunk
that continues the one before is merged into it, so small producer frames (10 ms) still go out
full-size. The queue also keeps the totals the synchronizer reports: seconds ever admitted, and
seconds dropped by interrupts before they were handed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["AudioChunk", "AudioQueue"]


@dataclass(slots=True)
class AudioChunk:
    """Samples (int16, n x channels) covering session media time ``[start, end)``."""

    samples: np.ndarray
    start: float
    end: float
    quiet: bool
    raw_offset: float  # session media time minus the producer's own timestamp
    arrival: float  # clock time the frame was pushed

    def cut(self, offset: int) -> AudioChunk:
        """This chunk from sample ``offset`` on, its media start moved to match."""
        if offset <= 0:
            return self
        n = self.samples.shape[0]
        start = self.start + (self.end - self.start) * offset / n
        return AudioChunk(
            self.samples[offset:], start, self.end, self.quiet, self.raw_offset, self.arrival
        )


class AudioQueue:
    """FIFO of :class:`AudioChunk` at ``rate`` Hz; ``quiet_rms`` is the loud/quiet threshold."""

    def __init__(self, rate: int, *, quiet_rms: float, chunk_s: float = 0.02) -> None:
        self.rate = rate
        self.step = max(1, int(rate * chunk_s))
        self._quiet_rms = quiet_rms
        self._chunks: deque[AudioChunk] = deque()
        self.seconds = 0.0  # queued now
        self.admitted = 0.0  # ever admitted
        self.skipped = 0.0  # admitted, then dropped by interrupts before handing

    def __len__(self) -> int:
        return len(self._chunks)

    def __bool__(self) -> bool:
        return bool(self._chunks)

    @property
    def head(self) -> AudioChunk:
        return self._chunks[0]

    def is_quiet(self, samples: np.ndarray) -> bool:
        return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < self._quiet_rms

    def cut(
        self, samples: np.ndarray, start: float, end: float, raw_offset: float, now: float
    ) -> list[AudioChunk]:
        """Cut a frame on ``[start, end)`` into chunks, each judged quiet or loud."""
        step, total = self.step, samples.shape[0]
        if total <= step:
            return [AudioChunk(samples, start, end, self.is_quiet(samples), raw_offset, now)]
        scale = (end - start) / total
        out = []
        for i in range(0, total, step):
            part = samples[i : i + step]
            j = i + part.shape[0]
            quiet = self.is_quiet(part)
            out.append(
                AudioChunk(part, start + i * scale, start + j * scale, quiet, raw_offset, now)
            )
        return out

    def add(self, chunks: list[AudioChunk]) -> None:
        """Admit chunks at the end (a short contiguous one tops up the last, not follows it)."""
        for chunk in chunks:
            n = chunk.samples.shape[0]
            tail = self._chunks[-1] if self._chunks else None
            if (
                tail is not None
                and tail.samples.shape[0] + n <= self.step
                and tail.raw_offset == chunk.raw_offset
                and abs(tail.end - chunk.start) < 1e-6
            ):
                tail.samples = np.concatenate((tail.samples, chunk.samples))
                tail.end = chunk.end
                tail.quiet = tail.quiet and chunk.quiet
            else:
                self._chunks.append(chunk)
            self.seconds += n / self.rate
            self.admitted += n / self.rate

    def pop(self) -> AudioChunk:
        chunk = self._chunks.popleft()
        self.seconds -= chunk.samples.shape[0] / self.rate
        return chunk

    def put_back(self, chunks: list[AudioChunk]) -> None:
        """Chunks handed but never played (a pause) go back in front, in order."""
        for chunk in reversed(chunks):
            self._chunks.appendleft(chunk)
            self.seconds += chunk.samples.shape[0] / self.rate

    def clear(self) -> float:
        """Drop everything queued (an interrupt); returns the seconds dropped."""
        dropped = self.seconds
        self.skipped += dropped
        self._chunks.clear()
        self.seconds = 0.0
        return dropped
