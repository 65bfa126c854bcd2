"""Marker audio: tone bursts at marker times, generated sample-exact and detected to ~1 ms.

Marker ``k`` is a burst of ``spec.burst_ms`` starting exactly at media time ``k * spec.period``
with a sharp onset (a sine starting at phase 0); its frequency encodes ``k % spec.modulus``. Under
the bursts runs a quiet bed tone, so marker audio is only silent where nothing was played.

Audio is a pure function of the sample index, so any range can be generated in chunks of any size
and the chunks join without a seam. :class:`BurstDetector` finds burst onsets in a stream of
chunks (each with the time of its first sample): an absolute level detects a burst after a quiet
gap, the onset is refined to the first sample above a quarter of the burst's peak, and a DFT at
the code frequencies over the next 40 ms reads its code.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from livekit import rtc

from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = [
    "AudioBurst",
    "BurstDetector",
    "detect_bursts",
    "is_silent",
    "loud_mask",
    "marker_audio",
    "marker_audio_frame",
    "marker_audio_frames",
    "marker_audio_samples",
    "rms_dbfs",
]

_FULL_SCALE = 32768.0
_DETECT = 0.4  # a burst starts where |x| reaches this fraction of the burst level...
_RELEASE = 0.2  # ...after at least `min_gap` of samples below this fraction
_REFINE = 0.25  # onset = first sample reaching this fraction of the burst's own peak
_PEAK_S = 0.010  # the burst's peak is taken over its first 10 ms
_LOOKBACK_S = 0.005  # the refined onset may lie up to 5 ms before the detection
_CODE_DELAY_S = 0.001  # the code window starts 1 ms after the onset (skip the click)
_CODE_WINDOW_S = 0.040
_CODE_MARGIN = 2.0  # the best code frequency must beat the runner-up by this factor


def _check_format(sample_rate: int, num_channels: int, spec: MarkerSpec) -> None:
    if sample_rate <= 0 or num_channels <= 0:
        raise ValueError(
            f"sample_rate and num_channels must be positive, got {sample_rate}, {num_channels}"
        )
    if max(spec.frequencies) >= 0.45 * sample_rate:
        raise ValueError(
            f"{sample_rate} Hz is too low for burst tones up to {max(spec.frequencies):.0f} Hz"
        )


def marker_audio_samples(
    start: int,
    count: int,
    *,
    sample_rate: int = 48000,
    num_channels: int = 1,
    spec: MarkerSpec = DEFAULT_SPEC,
) -> np.ndarray:
    """Marker audio for samples ``[start, start + count)`` as int16 of shape (count, channels).

    Sample ``i`` plays at media time ``i / sample_rate``; consecutive calls join seamlessly.
    """
    _check_format(sample_rate, num_channels, spec)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    index = np.arange(start, start + count, dtype=np.float64)
    period_samples = spec.period * sample_rate
    marker = np.floor((index + 1e-6) / period_samples)
    since_onset = np.maximum(index - marker * period_samples, 0.0) / sample_rate
    freqs = np.asarray(spec.frequencies)[marker.astype(np.int64) % spec.modulus]
    in_burst = since_onset < spec.burst_ms / 1000
    wave = np.where(in_burst, spec.burst_level * np.sin(2 * np.pi * freqs * since_onset), 0.0)
    if spec.bed_level:
        wave += spec.bed_level * np.sin(2 * np.pi * spec.bed_hz * index / sample_rate)
    samples = np.round(wave * (_FULL_SCALE - 1)).astype(np.int16)
    return np.repeat(samples[:, None], num_channels, axis=1)


def marker_audio(
    t0: float,
    t1: float,
    *,
    sample_rate: int = 48000,
    num_channels: int = 1,
    spec: MarkerSpec = DEFAULT_SPEC,
) -> np.ndarray:
    """Marker audio for media times ``[t0, t1)``: samples ``round(t0 * sr)`` to ``round(t1 * sr)``.

    Rounding both ends the same way keeps ranges that share an end seamless.
    """
    if t1 < t0:
        raise ValueError(f"empty range: t1={t1} < t0={t0}")
    start, end = round(t0 * sample_rate), round(t1 * sample_rate)
    return marker_audio_samples(
        start, end - start, sample_rate=sample_rate, num_channels=num_channels, spec=spec
    )


def marker_audio_frame(
    start: int,
    count: int,
    *,
    sample_rate: int = 48000,
    num_channels: int = 1,
    spec: MarkerSpec = DEFAULT_SPEC,
) -> rtc.AudioFrame:
    """Samples ``[start, start + count)`` of marker audio as an ``rtc.AudioFrame``."""
    samples = marker_audio_samples(
        start, count, sample_rate=sample_rate, num_channels=num_channels, spec=spec
    )
    return rtc.AudioFrame(samples.tobytes(), sample_rate, num_channels, count)


def marker_audio_frames(
    duration: float,
    *,
    start: float = 0.0,
    frame_ms: int = 10,
    sample_rate: int = 48000,
    num_channels: int = 1,
    spec: MarkerSpec = DEFAULT_SPEC,
) -> Iterator[rtc.AudioFrame]:
    """Consecutive ``frame_ms`` frames of marker audio covering ``[start, start + duration)``."""
    if frame_ms <= 0 or (frame_ms * sample_rate) % 1000:
        raise ValueError(f"frame_ms={frame_ms} must be a positive whole number of samples")
    step = frame_ms * sample_rate // 1000
    first, end = round(start * sample_rate), round((start + duration) * sample_rate)
    for pos in range(first, end, step):
        yield marker_audio_frame(
            pos,
            min(step, end - pos),
            sample_rate=sample_rate,
            num_channels=num_channels,
            spec=spec,
        )


def _mono(samples: np.ndarray) -> np.ndarray:
    """int16 samples of shape (n,) or (n, channels) as float32 mono in full-scale units."""
    if samples.ndim == 2:
        return samples.astype(np.float32).mean(axis=1)
    if samples.ndim != 1:
        raise ValueError(f"expected samples of shape (n,) or (n, channels), got {samples.shape}")
    return samples.astype(np.float32)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-inf for digital silence or no samples)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms / _FULL_SCALE) if rms > 0 else -math.inf


def is_silent(samples: np.ndarray, threshold_dbfs: float = -50.0) -> bool:
    """True when no sample of ``samples`` (int16) reaches ``threshold_dbfs`` (peak level)."""
    return not bool(loud_mask(samples, threshold_dbfs).any())


def loud_mask(samples: np.ndarray, threshold_dbfs: float = -50.0) -> np.ndarray:
    """Per-frame mask of samples whose peak over channels reaches ``threshold_dbfs``."""
    level = _FULL_SCALE * 10 ** (threshold_dbfs / 20)
    peak = np.abs(samples.astype(np.int32))
    if peak.ndim == 2:
        peak = peak.max(axis=1)
    return peak >= level


@dataclass(frozen=True, slots=True)
class AudioBurst:
    """A detected burst: onset ``time`` (s, on the clock of the fed chunks), ``code`` (or None
    when the tone could not be read), and its ``peak`` (fraction of full scale)."""

    time: float
    code: int | None
    peak: float


@lru_cache(maxsize=8)
def _code_basis(sample_rate: int, frequencies: tuple[float, ...]) -> np.ndarray:
    """Hann-windowed complex exponentials at the code frequencies, one column per code."""
    n = round(_CODE_WINDOW_S * sample_rate)
    t = np.arange(n) / sample_rate
    basis = np.exp(-2j * np.pi * np.outer(t, frequencies)) * np.hanning(n)[:, None]
    basis.setflags(write=False)
    return basis


class BurstDetector:
    """Streaming burst-onset detector; feed it mono or multi-channel int16 chunks in order.

    Each chunk comes with the time of its first sample (media time for files, wall time for a
    live stream); chunks may have gaps in time, not in samples. Bursts are reported once 45 ms
    after their onset have been fed, or by :meth:`flush`. Memory stays bounded (about 50 ms of
    samples plus a few chunk timestamps).
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        spec: MarkerSpec = DEFAULT_SPEC,
        min_gap_ms: float = 30.0,
    ) -> None:
        _check_format(sample_rate, 1, spec)
        gap_limit = 1000 * spec.period - spec.burst_ms
        if not 0 < min_gap_ms < gap_limit:
            raise ValueError(f"min_gap_ms must be in (0, {gap_limit:.0f}) for this spec")
        self._sr = sample_rate
        self._spec = spec
        self._detect = _DETECT * spec.burst_level * _FULL_SCALE
        self._release = _RELEASE * spec.burst_level * _FULL_SCALE
        self._min_gap = max(1, round(min_gap_ms / 1000 * sample_rate))
        self._lookback = round(_LOOKBACK_S * sample_rate)
        self._peak_len = round(_PEAK_S * sample_rate)
        self._code_start = round(_CODE_DELAY_S * sample_rate)
        self._basis = _code_basis(sample_rate, spec.frequencies)
        self._need = self._code_start + self._basis.shape[0]  # samples after detection
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # sample index of _buf[0]
        self._end = 0  # samples fed so far
        self._scan = 0  # detection has looked at samples before this index
        self._armed = True  # a quiet gap preceded the scan position
        self._quiet_run = 0  # quiet samples just before _scan while disarmed
        self._pending: deque[int] = deque()  # detected, not yet analysed (sample index)
        self._anchors: deque[tuple[int, float]] = deque()  # (sample index, time) per chunk
        self.bursts: list[AudioBurst] = []

    @property
    def sample_rate(self) -> int:
        return self._sr

    def feed(self, samples: np.ndarray, start_time: float) -> list[AudioBurst]:
        """Add a chunk whose first sample plays at ``start_time``; return bursts completed now."""
        mono = _mono(np.asarray(samples))
        if mono.size == 0:
            return []
        self._anchors.append((self._end, float(start_time)))
        self._buf = np.concatenate((self._buf, mono))
        self._end += mono.size
        self._scan_for_onsets()
        return self._analyse_pending(final=False)

    def flush(self) -> list[AudioBurst]:
        """Report bursts detected so far whose analysis window is cut short by end of input."""
        return self._analyse_pending(final=True)

    def _view(self, start: int, stop: int) -> np.ndarray:
        lo, hi = max(start, self._buf_start), min(stop, self._end)
        return self._buf[lo - self._buf_start : max(lo, hi) - self._buf_start]

    def _scan_for_onsets(self) -> None:
        while self._scan < self._end:
            seg = np.abs(self._view(self._scan, self._end))
            if self._armed:
                loud = np.flatnonzero(seg >= self._detect)
                if loud.size == 0:
                    self._scan = self._end
                    return
                onset = self._scan + int(loud[0])
                self._pending.append(onset)
                self._armed, self._quiet_run, self._scan = False, 0, onset + 1
                continue
            # disarmed: re-arm after `min_gap` consecutive quiet samples
            busy = np.flatnonzero(seg >= self._release)
            starts = np.concatenate(([0], busy + 1))  # where each quiet run starts
            ends = np.concatenate((busy, [seg.size]))  # where it stops (exclusive)
            lengths = ends - starts
            lengths[0] += self._quiet_run
            ok = np.flatnonzero(lengths >= self._min_gap)
            if ok.size == 0:
                self._quiet_run = int(lengths[-1]) if busy.size else int(lengths[0])
                self._scan = self._end
                return
            run = int(ok[0])
            carried = self._quiet_run if run == 0 else 0
            self._scan += int(starts[run]) + self._min_gap - carried
            self._armed, self._quiet_run = True, 0

    def _analyse_pending(self, *, final: bool) -> list[AudioBurst]:
        found: list[AudioBurst] = []
        while self._pending and (final or self._end >= self._pending[0] + self._need):
            burst = self._analyse(self._pending.popleft())
            if burst is not None:
                found.append(burst)
        self.bursts.extend(found)
        self._trim()
        return found

    def _analyse(self, detected: int) -> AudioBurst:
        seg_start = max(detected - self._lookback, self._buf_start)
        seg = np.abs(self._view(seg_start, detected + self._peak_len))
        peak = float(seg[detected - seg_start :].max())
        onset = seg_start + int(np.flatnonzero(seg >= _REFINE * peak)[0])
        window = self._view(onset + self._code_start, onset + self._need)
        code: int | None = None
        if window.size >= self._basis.shape[0] // 2:
            mags = np.abs(window @ self._basis[: window.size])
            order = np.argsort(mags)
            if mags[order[-1]] >= _CODE_MARGIN * mags[order[-2]]:
                code = int(order[-1])
        return AudioBurst(self._time_of(onset), code, peak / _FULL_SCALE)

    def _time_of(self, index: int) -> float:
        anchor_index, anchor_time = self._anchors[0]
        for i, t in self._anchors:
            if i > index:
                break
            anchor_index, anchor_time = i, t
        return anchor_time + (index - anchor_index) / self._sr

    def _trim(self) -> None:
        keep_from = min([self._scan, *self._pending]) - self._lookback - 1
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :].copy()
            self._buf_start = keep_from
        while len(self._anchors) > 1 and self._anchors[1][0] <= keep_from:
            self._anchors.popleft()


def detect_bursts(
    samples: np.ndarray,
    sample_rate: int,
    *,
    start_time: float = 0.0,
    spec: MarkerSpec = DEFAULT_SPEC,
) -> list[AudioBurst]:
    """All bursts in one block of int16 samples whose first sample plays at ``start_time``."""
    detector = BurstDetector(sample_rate, spec=spec)
    detector.feed(samples, start_time)
    detector.flush()
    return detector.bursts
