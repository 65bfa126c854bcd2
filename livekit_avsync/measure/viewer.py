"""What the viewer got, beyond the markers: when the face's mouth was open, and when there was
sound that is not a marker burst.

:class:`ViewerLog` is the loopback capture's ``on_video`` / ``on_audio`` hook. It passes every
frame on (to the MP4 writer) and keeps a few numbers per frame: whether the mouth region differs
from the closed mouth, and the start times of the loud milliseconds of audio that are speech.
Audio frames that are marker tone (louder than speech is allowed to be, or with most of their
energy at one marker frequency: also fragments of a burst) are not speech.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import numpy as np
from livekit import rtc

from ..providers.face import FaceRenderer
from .markers import MarkerCode

__all__ = ["ViewerLog"]

_BLOCK_S = 0.001  # loudness is kept per millisecond
_MOUTH_DIFF = 4.0  # mean luma difference from the closed mouth that counts as open
_TONE_SHARE = 0.6  # a frame with this share of its energy at one marker frequency is marker tone

VideoSink = Callable[[rtc.VideoFrame, float], None]
AudioSink = Callable[[rtc.AudioFrame, float], None]


class ViewerLog:
    """Records mouth state per video frame and loud milliseconds of audio, on the capture's clock.

    ``face`` is the renderer the avatar draws with (for the closed-mouth reference);
    ``marker_tones`` the burst frequencies (Hz) and ``marker_peak`` (fraction of full scale) the
    level from which sound counts as marker tone whatever its spectrum; the sinks receive every
    frame too (e.g. :class:`~livekit_avsync.demo.writer.Mp4Writer`).
    """

    def __init__(
        self,
        face: FaceRenderer,
        *,
        marker_tones: tuple[float, ...],
        marker_peak: float,
        silence_dbfs: float = -50.0,
        video_sink: VideoSink | None = None,
        audio_sink: AudioSink | None = None,
    ) -> None:
        x0, y0, x1, y1 = face.mouth_box
        self._mouth = (slice(y0, y1), slice(x0, x1))
        closed = FaceRenderer(face.width, face.height).planes(0.0)[0]
        self._closed_mouth = closed[self._mouth].astype(np.int16)
        self._size = (face.width, face.height)
        self._level = 32768.0 * 10 ** (silence_dbfs / 20)
        self._tones = np.asarray(marker_tones, dtype=np.float64)
        self._marker_peak = marker_peak * 32768.0
        self.marker_frames = 0  # audio frames with sound that were taken as marker tone
        self._video_sink, self._audio_sink = video_sink, audio_sink
        self.video_times = array("d")
        self.video_open = array("b")
        self.video_frames = array("q")  # marker frame number, -1 without one
        self._loud = array("d")  # start time of each loud millisecond

    # -- hooks ---------------------------------------------------------------------------------

    def on_video(self, frame: rtc.VideoFrame, t: float, code: MarkerCode | None) -> None:
        width, height = self._size
        if frame.type != rtc.VideoBufferType.I420:
            frame = frame.convert(rtc.VideoBufferType.I420)
        y = np.frombuffer(frame.data, np.uint8, count=width * height).reshape(height, width)
        self.on_mouth(y[self._mouth], t, code)
        if self._video_sink is not None:
            self._video_sink(frame, t)

    def on_mouth(self, mouth: np.ndarray, t: float, code: MarkerCode | None) -> None:
        """Record a frame from the luma of its mouth box alone (``face.mouth_box``): for a
        viewer that reads only that region, like the browser page."""
        diff = float(np.abs(mouth.astype(np.int16) - self._closed_mouth).mean())
        self.video_times.append(t)
        self.video_open.append(diff > _MOUTH_DIFF)
        self.video_frames.append(-1 if code is None else code.frame)

    def on_audio(self, frame: rtc.AudioFrame, t: float) -> None:
        samples = np.frombuffer(frame.data, np.int16).reshape(-1, frame.num_channels)
        block = max(1, round(frame.sample_rate * _BLOCK_S))
        whole = len(samples) // block * block
        peaks = np.abs(samples[:whole].astype(np.int32)).reshape(-1, block * frame.num_channels)
        loud = np.flatnonzero(peaks.max(axis=1) >= self._level)
        if loud.size and self._is_marker(samples, loud[0] * block, (loud[-1] + 1) * block, frame):
            self.marker_frames += 1
        else:
            self._loud.extend(t + loud * block / frame.sample_rate)
        if self._audio_sink is not None:
            self._audio_sink(frame, t)

    def _is_marker(self, samples: np.ndarray, a: int, b: int, frame: rtc.AudioFrame) -> bool:
        """Whether the loud part ``[a, b)`` of a frame is marker tone rather than speech."""
        mono = samples[a:b].astype(np.float64).mean(axis=1)
        if np.abs(mono).max() >= self._marker_peak:
            return True
        energy = float(np.dot(mono, mono))
        if energy <= 0:
            return False
        t = np.arange(len(mono)) / frame.sample_rate
        projection = np.exp(-2j * np.pi * np.outer(t, self._tones)).T @ mono
        share = 2 * np.abs(projection) ** 2 / (len(mono) * energy)
        return bool(share.max() >= _TONE_SHARE)

    # -- queries -------------------------------------------------------------------------------

    def speech_times(self) -> np.ndarray:
        """Start times of the loud milliseconds of audio that are not marker tone."""
        return np.frombuffer(self._loud, dtype=np.float64).copy()

    def sound_tail(self, speech: np.ndarray, t: float, until: float) -> float:
        """Seconds after ``t`` that non-marker sound went on (last loud ms in (t, until)), or 0."""
        after = speech[(speech + _BLOCK_S > t) & (speech < until)]
        return 0.0 if after.size == 0 else float(after.max() + _BLOCK_S - t)

    def mouth_tail(self, t: float, until: float) -> float:
        """Seconds after ``t`` that an open mouth was still on screen (0 if it was shut at ``t``).

        A frame stays on screen until the next one arrives.
        """
        times = np.frombuffer(self.video_times, dtype=np.float64)
        opened = np.frombuffer(self.video_open, dtype=np.int8).astype(bool)
        first = int(np.searchsorted(times, t, side="right"))  # first frame after t
        last = int(np.searchsorted(times, until, side="right"))
        open_after = np.flatnonzero(opened[first:last]) + first
        if open_after.size:
            end = int(open_after[-1]) + 1
        elif first > 0 and opened[first - 1]:
            end = first  # the frame on screen at t was open: until the next one came
        else:
            return 0.0
        return float((times[end] if end < len(times) else until) - t)

    def stale_frames(self, t: float, until: float, produced_before: int | None) -> int:
        """Frames of the interrupted turn first shown after ``t``: numbered after every frame
        shown up to ``t`` but produced before the provider's interrupt (``produced_before``)."""
        if produced_before is None:
            return 0
        times = np.frombuffer(self.video_times, dtype=np.float64)
        numbers = np.frombuffer(self.video_frames, dtype=np.int64)
        cut = int(np.searchsorted(times, t, side="right"))
        shown = numbers[:cut]
        newest = int(shown.max()) if shown.size else -1
        end = int(np.searchsorted(times, until, side="right"))
        later = numbers[cut:end]
        return len({int(n) for n in later if newest < n < produced_before})

    def first_frame_from(self, number: int | None, after: float) -> float | None:
        """Arrival of the first frame numbered ``number`` or later that came after ``after``."""
        if number is None:
            return None
        times = np.frombuffer(self.video_times, dtype=np.float64)
        numbers = np.frombuffer(self.video_frames, dtype=np.int64)
        found = np.flatnonzero((times > after) & (numbers >= number))
        return float(times[found[0]]) if found.size else None
