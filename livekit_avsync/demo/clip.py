"""The demo's bundled speech: two short clips synthesized once with espeak-ng, read with PyAV.

``assets/speech.ogg`` and ``assets/reply.ogg`` are 16 kHz mono Opus, made with
``espeak-ng -v en-us+f3 -s 175 -w out.wav TEXT`` (Debian's ``espeak-ng`` package), leading and
trailing silence trimmed, then encoded with PyAV (libopus, 24 kb/s). Their texts are below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from importlib import resources

import av
import numpy as np
from livekit import rtc

__all__ = ["REPLY", "SPEECH", "ClipAsset", "SpeechClip", "load_clip", "stream_frames"]


@dataclass(frozen=True, slots=True)
class ClipAsset:
    """A bundled clip: its file in ``livekit_avsync/assets`` and what it says."""

    file: str
    text: str


SPEECH = ClipAsset(
    "speech.ogg",
    "Hello! I'm a local avatar, running right here on your computer. My voice and my face "
    "travel separately, and I keep them together, so my lips move as you hear me.",
)
REPLY = ClipAsset("reply.ogg", "Oh, sorry! Go ahead.")


@dataclass(frozen=True, slots=True)
class SpeechClip:
    """Decoded speech: int16 mono ``samples`` at ``sample_rate``, and its ``text``."""

    text: str
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def peak(self) -> float:
        """Largest sample magnitude as a fraction of full scale."""
        return float(np.abs(self.samples.astype(np.int32)).max(initial=0)) / 32768.0

    def scaled_to_peak(self, peak: float) -> SpeechClip:
        """The clip with its loudest sample at ``peak`` (fraction of full scale)."""
        if not 0 < peak <= 1:
            raise ValueError(f"peak must be in (0, 1], got {peak}")
        if self.peak == 0:
            return self
        gain = peak / self.peak
        scaled = np.clip(np.rint(self.samples * gain), -32768, 32767).astype(np.int16)
        return SpeechClip(self.text, scaled, self.sample_rate)

    def frames(self, frame_ms: int = 20) -> list[rtc.AudioFrame]:
        """The clip as consecutive ``frame_ms`` ``rtc.AudioFrame``s, the way TTS delivers it."""
        step = self.sample_rate * frame_ms // 1000
        if step <= 0:
            raise ValueError(f"frame_ms must be positive, got {frame_ms}")
        out = []
        for pos in range(0, len(self.samples), step):
            part = np.ascontiguousarray(self.samples[pos : pos + step])
            out.append(rtc.AudioFrame(part.tobytes(), self.sample_rate, 1, len(part)))
        return out


def load_clip(asset: ClipAsset, *, sample_rate: int = 24000) -> SpeechClip:
    """Decode a bundled clip to int16 mono at ``sample_rate`` with PyAV."""
    resource = resources.files("livekit_avsync").joinpath("assets", asset.file)
    if not resource.is_file():
        raise FileNotFoundError(f"bundled clip {asset.file} is missing from livekit_avsync/assets")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    parts: list[np.ndarray] = []
    with resource.open("rb") as file, av.open(file) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    samples = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return SpeechClip(asset.text, samples.astype(np.int16, copy=False), sample_rate)


async def stream_frames(frames: Iterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    """Frames as the async iterator ``AgentSession.say(audio=...)`` takes."""
    for frame in frames:
        yield frame
