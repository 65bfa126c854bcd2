"""The provider's output into the synchronizer: stale frames dropped, bad frames counted."""

from __future__ import annotations

import logging
from collections import Counter

import av
import numpy as np
from livekit import rtc

from ..media.convert import audio_to_rtc
from ..media.validate import InvalidFrame, declared_samples
from ..output.synchronizer import AVSynchronizer
from ..providers.base import AvatarProvider, OutputFrame
from .audio_output import AvatarAudioOutput

__all__ = ["MediaForwarder"]

logger = logging.getLogger("livekit_avsync")

_SPEECH_RMS = 32768.0 * 10 ** (-45 / 20)  # loudness that counts as speech for untagged audio


class MediaForwarder:
    """Reads one provider's audio and video iterators into one synchronizer.

    Frames of a generation older than the last interrupt's are dropped here; frames that fail
    validation are dropped, counted in ``rejected`` by what was wrong and logged once per kind.
    """

    def __init__(
        self,
        provider: AvatarProvider,
        synchronizer: AVSynchronizer,
        output: AvatarAudioOutput,
        rejected: Counter[str],
    ) -> None:
        self.provider = provider
        self.synchronizer = synchronizer
        self._output = output
        self._rejected = rejected
        self.min_generation = 0

    def interrupted(self) -> None:
        """The provider is being interrupted: its current generation is stale from now on."""
        self.min_generation = self.provider.generation + 1

    def _stale(self, item: OutputFrame) -> bool:
        return item.generation is not None and item.generation < self.min_generation

    def _epoch_for(self, item: OutputFrame) -> int | None:
        """Tagged frames of the current generation are known fresh: let them through the gate."""
        return self.synchronizer.epoch if item.generation is not None else None

    def _reject(self, kind: str, exc: Exception) -> None:
        field = getattr(exc, "field", None)
        key = field or f"{kind}.{type(exc).__name__}"
        self._rejected[key] += 1
        if self._rejected[key] == 1:
            why = str(exc) if field else f"{key}: {exc}"
            logger.warning("dropping %s frames from %s: %s", kind, self.provider.label, why)

    async def audio(self) -> None:
        sync, output = self.synchronizer, self._output
        async for item in self.provider.audio_frames():
            if self._stale(item):
                continue
            if not isinstance(item.frame, (rtc.AudioFrame, av.AudioFrame)):
                self._reject("audio", _wrong_kind("audio", item.frame))
                continue
            before = sync.audio_admitted
            try:
                speech = item.speech
                if speech is None:
                    speech = _is_loud(audio_to_rtc(item.frame))
                # the frame goes in as it came: a PyAV frame keeps its pts for the synchronizer
                await sync.push(item.frame, item.timestamp, epoch=self._epoch_for(item))
            except (ValueError, TypeError) as exc:  # validation: the frame never went in
                self._reject("audio", exc)
                continue
            output.on_provider_audio(before, sync.audio_admitted, speech, item.speech is not None)

    async def video(self) -> None:
        sync = self.synchronizer
        async for item in self.provider.video_frames():
            if self._stale(item):
                continue
            if not isinstance(item.frame, (rtc.VideoFrame, av.VideoFrame)):
                self._reject("video", _wrong_kind("video", item.frame))
                continue
            try:
                await sync.push(item.frame, item.timestamp, epoch=self._epoch_for(item))
            except (ValueError, TypeError) as exc:
                self._reject("video", exc)


def _wrong_kind(kind: str, frame: object) -> ValueError:
    return InvalidFrame(
        f"{kind}.wrong_kind", f"a {type(frame).__name__} came from the {kind} iterator"
    )


def _is_loud(frame: rtc.AudioFrame) -> bool:
    data = declared_samples(frame)
    if data.size == 0:
        return False
    return float(np.sqrt(np.mean(np.square(data, dtype=np.float64)))) > _SPEECH_RMS
