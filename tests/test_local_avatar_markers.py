"""LocalAvatar(markers=spec): the face carries marker frame numbers and the sound the marker
bursts, on the avatar's own media clock, so the one marker implementation measures its sync.

Runs the provider in real time through its public API and reads its output streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc

from livekit_avsync.measure import (
    MarkerSpec,
    analyze_sync,
    detect_bursts,
    marker_audio_samples,
    read_marker,
)
from livekit_avsync.providers.base import OutputFrame
from livekit_avsync.providers.face import FaceRenderer
from livekit_avsync.providers.local import LocalAvatar

W, H = 160, 120
FPS, SR = 24, 44100  # 1837.5 samples per frame: uneven periods test exact sample continuity
SPEC = MarkerSpec(fps=FPS, burst_every=6)  # a marker every 0.25 s


async def _run(
    avatar: LocalAvatar, seconds: float, speech: np.ndarray | None = None
) -> tuple[list[OutputFrame], list[OutputFrame]]:
    """Start ``avatar``, optionally push ``speech`` (16 kHz mono) after 0.3 s, read for
    ``seconds``; return (audio, video) output frames in order."""
    audio: list[OutputFrame] = []
    video: list[OutputFrame] = []

    async def pump(frames: AsyncIterator[OutputFrame], into: list[OutputFrame]) -> None:
        async for item in frames:
            into.append(item)

    await avatar.start()
    tasks = [
        asyncio.create_task(pump(avatar.audio_frames(), audio)),
        asyncio.create_task(pump(avatar.video_frames(), video)),
    ]
    if speech is not None:
        await asyncio.sleep(0.3)
        for i in range(0, len(speech), 320):
            part = np.ascontiguousarray(speech[i : i + 320])
            await avatar.push_audio(rtc.AudioFrame(part.tobytes(), 16000, 1, len(part)))
        await avatar.end_turn()
        await asyncio.sleep(seconds - 0.3)
    else:
        await asyncio.sleep(seconds)
    await avatar.aclose()
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    return audio, video


def _pcm(frames: list[OutputFrame]) -> np.ndarray:
    parts = [
        np.frombuffer(f.frame.data, dtype=np.int16).reshape(-1, f.frame.num_channels)  # type: ignore[union-attr]
        for f in frames
    ]
    return np.concatenate(parts)


def _luma(frame: rtc.VideoFrame) -> np.ndarray:
    return np.frombuffer(bytes(frame.data), np.uint8)[: W * H].reshape(H, W)


def _speech(seconds: float) -> np.ndarray:
    """A quiet 300 Hz tone (peak 0.08 of full scale) at 16 kHz, as speech."""
    t = np.arange(round(seconds * 16000)) / 16000
    return (0.08 * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def test_idle_output_is_exactly_the_marker_media(no_leaked_tasks: None) -> None:
    avatar = LocalAvatar(width=W, height=H, fps=FPS, sample_rate=SR, num_channels=2, markers=SPEC)
    audio, video = await _run(avatar, 1.2)
    assert len(video) >= 25

    # every frame shows its own number on the media clock
    for item in video:
        assert isinstance(item.frame, rtc.VideoFrame)
        n = round(item.timestamp * FPS)  # type: ignore[operator]
        assert read_marker(item.frame) == (n, 0)

    # the sound is the marker audio, sample for sample, across uneven frame periods
    pcm = _pcm(audio)
    assert pcm.shape[1] == 2
    expected = marker_audio_samples(0, len(pcm), sample_rate=SR, num_channels=2, spec=SPEC)
    assert np.array_equal(pcm, expected)
    assert audio[-1].timestamp == pytest.approx(len(pcm) / SR)

    # the marker does not touch the face below it, and the face's own planes stay clean
    face = FaceRenderer(W, H).planes(0.0)[0]
    band = H // 4
    assert np.array_equal(_luma(video[-1].frame)[band + 1 :], face[band + 1 :])  # type: ignore[arg-type]
    assert np.array_equal(avatar.renderer.planes(0.0)[0], face)
    # idle: the mouth stays shut although the bursts are loud
    assert all(item.speech is False for item in audio)

    # measured with the marker analysis on the media clock: every marker is in sync
    video_obs = [(f.timestamp, read_marker(f.frame).frame) for f in video]  # type: ignore[arg-type,union-attr]
    bursts = detect_bursts(pcm, SR, spec=SPEC)
    report = analyze_sync(video_obs, bursts, spec=SPEC)
    assert report.paired >= 4
    assert report.max_abs_ms is not None and report.max_abs_ms < 1.0


async def test_speech_is_mixed_with_the_bursts_and_moves_the_mouth() -> None:
    spec = MarkerSpec(fps=25, burst_every=5)
    avatar = LocalAvatar(width=W, height=H, fps=25, sample_rate=24000, latency=0.0, markers=spec)
    audio, video = await _run(avatar, 1.5, speech=_speech(0.8))
    pcm = _pcm(audio)
    markers = marker_audio_samples(0, len(pcm), sample_rate=24000, spec=spec)
    residual = pcm.astype(np.int32) - markers
    flags = np.concatenate([np.full(f.frame.samples_per_channel, bool(f.speech)) for f in audio])  # type: ignore[union-attr]
    # what is left after taking the markers out is the speech, and only where speech was flagged
    assert not residual[~flags].any()
    assert 0.75 <= flags.sum() / 24000 <= 0.85
    peak = np.abs(residual[flags]).max() / 32767
    assert 0.07 <= peak <= 0.09

    # the bursts under the quiet speech are still found, at their media times
    bursts = detect_bursts(pcm, 24000, spec=spec)
    onsets = [b.time for b in bursts]
    assert len(onsets) >= int(len(pcm) / 24000 / spec.period) - 1
    assert all(abs(t / spec.period - round(t / spec.period)) * spec.period < 0.001 for t in onsets)
    assert [b.code for b in bursts] == [round(t / spec.period) % spec.modulus for t in onsets]

    # the mouth opens for the speech, not for the bursts
    x0, y0, x1, y1 = avatar.renderer.mouth_box
    closed = FaceRenderer(W, H).planes(0.0)[0][y0:y1, x0:x1]
    speaking = [not np.array_equal(_luma(f.frame)[y0:y1, x0:x1], closed) for f in video]  # type: ignore[arg-type]
    assert 18 <= sum(speaking) <= 30  # 20 frames of speech, then the mouth eases shut
    assert not any(speaking[:5]), "silent start with bursts: mouth shut"
    assert all(read_marker(f.frame) is not None for f in video)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": 30, "markers": MarkerSpec(fps=25)}, "must equal the avatar's fps"),
        ({"width": 24, "height": 24, "markers": MarkerSpec(fps=25)}, "too small"),
        (
            {"sample_rate": 8000, "markers": MarkerSpec(fps=25, frequencies=(3000.0, 3700.0))},
            "too low",
        ),
        ({"markers": "yes"}, "must be a MarkerSpec"),
    ],
)
def test_markers_that_cannot_be_carried_are_rejected(options: dict, message: str) -> None:
    options = {"width": W, "height": H, "fps": 25, **options}
    with pytest.raises(ValueError, match=message):
        LocalAvatar(**options)
