"""A counter ramp through a synchronizer and the loopback, to check pause/resume to the sample.

Audio sample ``i`` of the ramp has the value ``1 + i % 32767`` (never 0, so silence cannot pass
for media). :func:`run_pause_ramp` pushes the ramp into an ``AVSynchronizer`` as a producer would
(10 ms frames, as fast as backpressure allows), pauses and resumes it at the given times, reads
the source back in real time through a local track (``rtc.AudioStream``, 10 ms ticks) and
compares what played with what was pushed: every sample exactly once, in order, is the goal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from ..output import AVSynchronizer
from .loopback import LoopbackCapture

__all__ = ["RampResult", "compare_ramp", "ramp_samples", "run_pause_ramp"]

_PERIOD = 32767


def ramp_samples(start: int, count: int) -> np.ndarray:
    """Samples ``start .. start + count`` of the counter ramp (int16, never 0)."""
    return (1 + np.arange(start, start + count, dtype=np.int64) % _PERIOD).astype(np.int16)


@dataclass(frozen=True, slots=True)
class RampResult:
    """What played of a counter ramp: ``exact`` when every sample came out once, in order."""

    pushed: int
    heard: int
    lost: int  # samples of the ramp that never played
    replayed: int  # samples that played more than once
    jumps: int  # places where the heard ramp does not continue by one
    pauses: int

    @property
    def exact(self) -> bool:
        return self.heard == self.pushed and self.lost == 0 and self.replayed == 0

    def row(self) -> str:
        return (
            f"pushed {self.pushed} heard {self.heard} lost {self.lost} replayed {self.replayed} "
            f"jumps {self.jumps} over {self.pauses} pauses"
        )


def compare_ramp(heard: np.ndarray, pushed: int) -> RampResult:
    """Compare the non-zero samples ``heard`` with the first ``pushed`` samples of the ramp."""
    values = heard[heard != 0].astype(np.int64)
    if values.size == 0:
        return RampResult(pushed, 0, pushed, 0, 0, 0)
    step = np.diff(values) % _PERIOD  # 1 where the ramp continues
    jumps = int(np.count_nonzero(step != 1))
    # unwrap the ramp into sample indices: every place it does not continue is a jump
    index = np.empty(values.size, dtype=np.int64)
    index[0] = values[0] - 1
    deltas = np.where(step > _PERIOD // 2, step - _PERIOD, step)  # a step back is a replay
    index[1:] = index[0] + np.cumsum(deltas)
    unique = np.unique(index[(index >= 0) & (index < pushed)])
    lost = pushed - unique.size
    replayed = values.size - unique.size
    return RampResult(pushed, int(values.size), int(lost), int(replayed), jumps, 0)


async def run_pause_ramp(
    *,
    seconds: float = 2.0,
    pauses: Sequence[tuple[float, float]] = (),
    rate: int = 48000,
    frame_ms: int = 10,
    queue_size_ms: int = 100,
) -> RampResult:
    """Push ``seconds`` of ramp; ``pauses`` are (at, length) in s from the first push."""
    audio = rtc.AudioSource(rate, 1, queue_size_ms=queue_size_ms)
    video = rtc.VideoSource(32, 32)
    heard: list[np.ndarray] = []

    def on_audio(frame: rtc.AudioFrame, _t: float) -> None:
        heard.append(np.frombuffer(frame.data, dtype=np.int16).copy())

    step = rate * frame_ms // 1000
    total = int(seconds * rate) // step * step
    try:
        capture = LoopbackCapture.from_sources(audio, sample_rate=rate, on_audio=on_audio)
        async with capture:
            await asyncio.sleep(0.05)
            sync = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
            try:
                start = time.monotonic()

                async def produce() -> None:
                    for i in range(0, total, step):
                        samples = ramp_samples(i, step)
                        await sync.push(rtc.AudioFrame(samples.tobytes(), rate, 1, step))

                async def control() -> None:
                    for at, length in pauses:
                        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                        sync.pause()
                        await asyncio.sleep(length)
                        sync.resume()

                await asyncio.gather(produce(), control())
                # a starved machine can outlast one wait_for_playout's bound: the ramp plays whole
                for _ in range(5):
                    await asyncio.wait_for(sync.wait_for_playout(), seconds + 10)
                    if sync.stats.audio_queue_ms <= 0:
                        break
                await asyncio.sleep(0.25)  # the capture reads the last frames
            finally:
                await sync.aclose()
    finally:
        await audio.aclose()
        await video.aclose()
    result = compare_ramp(np.concatenate(heard) if heard else np.zeros(0, np.int16), total)
    return RampResult(
        result.pushed, result.heard, result.lost, result.replayed, result.jumps, len(pauses)
    )


async def _main() -> None:
    rng = np.random.default_rng(0)
    single = [(1.0, 0.3)]
    storm = [(0.3 + 0.06 * k + float(rng.uniform(0, 0.03)), 0.02) for k in range(25)]
    spaced = [(0.2 + 0.25 * k + float(rng.uniform(0, 0.01)), 0.1) for k in range(8)]
    for name, pauses in (("none", []), ("single", single), ("spaced", spaced), ("storm", storm)):
        r = await run_pause_ramp(seconds=2.0, pauses=pauses)
        print(f"{name:8s} {r.row()}")


if __name__ == "__main__":
    asyncio.run(_main())
