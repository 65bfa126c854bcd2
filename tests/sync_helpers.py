"""Shared by the synchronizer's tests: fresh sources closed afterwards, and small synthetic frames
(a tone, a gray picture)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc

RATE = 48000
W, H = 64, 48


@contextlib.asynccontextmanager
async def open_sources(
    rate: int = RATE, width: int = W, height: int = H, *, queue_size_ms: int = 100
) -> AsyncIterator[tuple[rtc.AudioSource, rtc.VideoSource]]:
    """A mono AudioSource (100 ms native queue, as livekit-agents uses) and a VideoSource,
    closed on exit."""
    audio = rtc.AudioSource(rate, 1, queue_size_ms=queue_size_ms)
    video = rtc.VideoSource(width, height)
    try:
        yield audio, video
    finally:
        await audio.aclose()
        await video.aclose()


def tone(
    ms: int = 20, *, rate: int = RATE, channels: int = 1, freq: float = 440.0, level: float = 0.3
) -> rtc.AudioFrame:
    """``ms`` of a sine at ``level`` of full scale, the same on every channel."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    mono = (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    data = np.repeat(mono[:, None], channels, axis=1)
    return rtc.AudioFrame(data.tobytes(), rate, channels, n)


def gray(value: int = 128) -> rtc.VideoFrame:
    """A flat W x H I420 picture."""
    y = np.full(W * H, value, dtype=np.uint8)
    uv = np.full((W // 2) * (H // 2) * 2, 128, dtype=np.uint8)
    return rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, np.concatenate((y, uv)).tobytes())
