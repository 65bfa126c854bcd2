"""Issue 11's malformed frames, each through the public API: a clear error or a documented
conversion, never a crash. Cases that reached native code before the fix run in a child process
(``frame_probe``), so a regression fails the test instead of killing the runner."""

from __future__ import annotations

import av
import numpy as np
import pytest
from frame_probe import run_probe
from livekit import rtc

from livekit_avsync import AVSynchronizer
from livekit_avsync.media.convert import MIN_VIDEO_SIDE, video_to_i420, video_to_rtc
from livekit_avsync.media.validate import InvalidFrame

T = rtc.VideoBufferType
RATE = 24000


def i420_len(w: int, h: int) -> int:
    return w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)


def video(w: int, h: int, t: int, nbytes: int, luma: int = 128) -> dict[str, object]:
    return {"kind": "video", "width": w, "height": h, "type": t, "nbytes": nbytes, "luma": luma}


def audio(rate: int, channels: int, samples: int, nbytes: int) -> dict[str, object]:
    return {
        "kind": "audio",
        "rate": rate,
        "channels": channels,
        "samples": samples,
        "nbytes": nbytes,
    }


@pytest.fixture
async def sync() -> AVSynchronizer:
    a, v = rtc.AudioSource(RATE, 1, queue_size_ms=100), rtc.VideoSource(64, 48)
    s = AVSynchronizer(audio_source=a, video_source=v, video_fps=25)
    yield s
    await s.aclose()
    await a.aclose()
    await v.aclose()


def test_malformed_video_is_rejected_naming_the_field_and_the_process_lives() -> None:
    result = run_probe(
        [
            video(7680, 4320, T.I420, 100),  # was SIGSEGV in the video loop
            video(64, 48, 99, 12288),  # unknown type: killed the video loop
            video(0, 48, T.I420, 4608),
            video(64, 48, T.I420, 64 * 48 * 3 // 2),  # a good frame after them still plays
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.outcomes == [
        "InvalidFrame:video.data",
        "InvalidFrame:video.type",
        "InvalidFrame:video.width",
        "ok",
    ]


def test_nv12_i010_and_tiny_frames_are_converted_and_read_back() -> None:
    # NV12 and I010 aborted the process when a local VideoStream read them; so did 1x1, 2x2, 3x5
    result = run_probe(
        [
            video(64, 48, T.NV12, i420_len(64, 48), luma=200),
            video(1, 1, T.I420, 3, luma=60),
            video(2, 2, T.I420, 6, luma=70),
            video(3, 5, T.I420, i420_len(3, 5), luma=90),
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.outcomes == ["ok"] * 4
    assert [MIN_VIDEO_SIDE, MIN_VIDEO_SIDE] in result.read_sizes  # tiny ones padded up
    assert all(w % 2 == 0 and h % 2 == 0 for w, h in result.read_sizes)
    assert any(abs(luma - 90) < 2 for luma in result.read_luma)  # the 3x5 picture, not garbage


def test_nv12_keeps_its_picture() -> None:
    result = run_probe([video(64, 48, T.NV12, i420_len(64, 48), luma=200)] * 3)
    assert result.returncode == 0, result.stderr
    assert any(abs(luma - 200) < 2 for luma in result.read_luma), result.read_luma


def test_odd_size_is_padded_to_even_repeating_the_edge() -> None:
    y = np.arange(17 * 33, dtype=np.uint8).reshape(17, 33)
    u = np.full((9, 17), 60, np.uint8)
    v = np.full((9, 17), 190, np.uint8)
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    frame = rtc.VideoFrame(33, 17, T.I420, planes.tobytes())
    out = video_to_rtc(frame)
    assert (out.width, out.height, out.type) == (34, 18, T.I420)
    data = np.frombuffer(out.data, np.uint8)
    oy = data[: 34 * 18].reshape(18, 34)
    assert np.array_equal(oy[:17, :33], y)  # nothing cropped
    assert np.array_equal(oy[17, :33], y[16]) and np.array_equal(oy[:17, 33], y[:, 32])
    assert set(data[34 * 18 : 34 * 18 + 17 * 9]) == {60}


@pytest.mark.parametrize(
    ("t", "fmt", "shape"),
    [
        (T.RGBA, "rgba", (18, 22, 4)),
        (T.BGRA, "bgra", (18, 22, 4)),
        (T.RGB24, "rgb24", (18, 22, 3)),
        (T.NV12, "nv12", (27, 22)),
    ],
)
def test_other_types_move_their_planes_into_pyav(t: int, fmt: str, shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(t).integers(0, 256, shape, dtype=np.uint8)
    ours = video_to_i420(rtc.VideoFrame(22, 18, t, pixels.tobytes()))
    reference = video_to_i420(av.VideoFrame.from_ndarray(pixels, format=fmt))
    assert (ours.width, ours.height, ours.type) == (22, 18, T.I420)
    assert bytes(ours.data) == bytes(reference.data)


async def test_declared_audio_samples_only(sync: AVSynchronizer) -> None:
    n = 4800  # 0.2 s declared, in a buffer four times as long
    await sync.push(rtc.AudioFrame(np.ones(4 * n, np.int16).tobytes(), RATE, 1, n))
    assert sync.audio_admitted == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (lambda: rtc.AudioFrame(bytes(960), 0, 1, 480), "audio.sample_rate"),
        (lambda: rtc.AudioFrame(bytes(960), -8000, 1, 480), "audio.sample_rate"),
        (lambda: rtc.AudioFrame(bytes(960), RATE, 0, 480), "audio.num_channels"),
        (lambda: rtc.AudioFrame(bytes(960), RATE, 1, 0), "audio.samples_per_channel"),
    ],
)
async def test_bad_audio_fields_are_named(sync: AVSynchronizer, frame, field: str) -> None:
    with pytest.raises(InvalidFrame, match=field) as caught:
        await sync.push(frame())
    assert caught.value.field == field
    assert sync.stats.audio_frames_in == 0


async def test_stereo_buffer_with_an_odd_sample_count_plays_its_declared_samples(
    sync: AVSynchronizer,
) -> None:
    await sync.push(rtc.AudioFrame(bytes(2 * 481), RATE, 2, 240))  # was a numpy reshape error
    assert sync.audio_admitted == pytest.approx(240 / RATE)


async def test_push_after_the_sources_were_closed_says_so() -> None:
    a, v = rtc.AudioSource(RATE, 1, queue_size_ms=100), rtc.VideoSource(64, 48)
    s = AVSynchronizer(audio_source=a, video_source=v, video_fps=25)
    await s.push(rtc.AudioFrame(bytes(960), RATE, 1, 480))
    await a.aclose()
    await v.aclose()
    with pytest.raises(RuntimeError, match="audio_source was closed"):
        await s.push(rtc.AudioFrame(bytes(960), RATE, 1, 480))
    await s.aclose()


def test_provider_frames_that_fail_validation_are_dropped_counted_and_the_session_lives() -> None:
    result = run_probe(
        [
            video(64, 48, T.I420, 100),
            video(64, 48, T.I420, 100),
            video(64, 48, 99, 12288),
            audio(0, 1, 480, 960),
            audio(RATE, 1, 480, 960) | {"wrong_iterator": True},  # audio from video_frames()
            audio(RATE, 1, 4800, 4 * 9600),  # 0.2 s declared in a longer buffer
            video(64, 48, T.NV12, i420_len(64, 48), luma=200),
        ],
        via="session",
    )
    assert result.returncode == 0, result.stderr
    assert result.session_alive
    assert result.rejected == {
        "video.data": 2,
        "video.type": 1,
        "audio.sample_rate": 1,
        "video.wrong_kind": 1,
    }
    assert result.audio_admitted == pytest.approx(0.2)  # the wrong-kind frame was not played
    assert result.stderr.count("video.data") == 1  # one warning per kind
