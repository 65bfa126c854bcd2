"""Marker media: video codes, audio bursts and the offset analysis, on real frames and samples."""

from __future__ import annotations

import json
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from livekit import rtc

from livekit_avsync.measure import (
    DEFAULT_SPEC,
    AudioBurst,
    BurstDetector,
    MarkerSpec,
    VideoObservation,
    analyze_sync,
    decode_marker,
    detect_bursts,
    estimate_drift,
    frame_continuity,
    is_silent,
    marker_audio,
    marker_audio_frame,
    marker_audio_frames,
    marker_audio_samples,
    marker_av_frame,
    marker_planes,
    marker_video_frame,
    read_marker,
    rms_dbfs,
    stamp_marker,
)

# --- video markers ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (480, 270), (330, 186), (64, 48)])
def test_video_marker_round_trip(size: tuple[int, int]) -> None:
    width, height = size
    for n, turn in [(0, 0), (1, 0), (15, 3), (12345, 9), (65535, 15)]:
        frame = marker_video_frame(n, width, height, turn=turn)
        assert (frame.width, frame.height, frame.type) == (width, height, rtc.VideoBufferType.I420)
        assert read_marker(frame) == (n, turn)
        assert decode_marker(marker_av_frame(n, width, height, turn=turn)) == n
        assert read_marker(marker_planes(n, width, height, turn=turn)[0]) == (n, turn)


def test_video_marker_read_from_rgba_and_other_pixel_formats() -> None:
    frame = marker_video_frame(4242, 640, 360, turn=5)
    assert read_marker(frame.convert(rtc.VideoBufferType.RGBA)) == (4242, 5)
    assert read_marker(marker_av_frame(4242, 640, 360, turn=5).reformat(format="rgb24")) == (
        4242,
        5,
    )


def test_video_marker_survives_h264_and_scaling() -> None:
    """Encode at a low quality, decode, scale down 2x and 4x: every frame still decodes."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 640, 360, "yuv420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"preset": "ultrafast", "crf": "38"}
    packets = []
    for n in range(40):
        frame = marker_av_frame(1000 + n, 640, 360)
        frame.pts = n
        packets += codec.encode(frame)
    packets += codec.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
    assert len(decoded) == 40
    for n, frame in enumerate(decoded):
        assert decode_marker(frame) == 1000 + n
        for w, h in [(320, 180), (160, 90)]:
            small = frame.reformat(width=w, height=h, format="yuv420p")
            assert decode_marker(small) == 1000 + n, (n, w)


def test_video_marker_rejects_non_markers_and_corrupted_codes() -> None:
    rng = np.random.default_rng(7)
    assert read_marker(np.zeros((360, 640), np.uint8)) is None
    assert read_marker(np.full((360, 640), 128, np.uint8)) is None
    for _ in range(20):
        assert read_marker(rng.integers(0, 256, (360, 640), dtype=np.uint8)) is None
    y = marker_planes(777, 640, 360)[0]
    block_w, block_h = 640 // 16, 90 // 3
    # a pair of blocks with the same value is not a bit: rejected before the CRC
    flat = y.copy()
    flat[:block_h, block_w : 2 * block_w] = flat[:block_h, :block_w]
    assert read_marker(flat) is None
    # a valid but flipped bit (pair swapped) is caught by the CRC
    for pair in range(24):
        r, c = divmod(pair, 8)
        flipped = y.copy()
        rows = slice(r * block_h, (r + 1) * block_h)
        left = flipped[rows, 2 * c * block_w : (2 * c + 1) * block_w].copy()
        right = flipped[rows, (2 * c + 1) * block_w : (2 * c + 2) * block_w].copy()
        flipped[rows, 2 * c * block_w : (2 * c + 1) * block_w] = right
        flipped[rows, (2 * c + 1) * block_w : (2 * c + 2) * block_w] = left
        assert read_marker(flipped) is None, pair


def test_stamp_marker_marks_any_y_plane() -> None:
    y = np.random.default_rng(1).integers(0, 256, (480, 854), dtype=np.uint8)
    stamp_marker(y, 31337, turn=2)
    assert read_marker(y) == (31337, 2)


def test_video_marker_decode_is_fast() -> None:
    frame = marker_video_frame(4321, 1280, 720)
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        assert decode_marker(frame) == 4321
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.001


def test_video_marker_bad_input() -> None:
    with pytest.raises(ValueError, match="frame number"):
        marker_video_frame(65536, 640, 360)
    with pytest.raises(ValueError, match="turn"):
        marker_video_frame(1, 640, 360, turn=16)
    with pytest.raises(ValueError, match="even size"):
        marker_video_frame(1, 641, 360)
    with pytest.raises(TypeError, match="VideoFrame"):
        read_marker("not a frame")  # type: ignore[arg-type]


# --- audio bursts ----------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [16000, 44100, 48000])
def test_marker_audio_chunks_join_seamlessly(sample_rate: int) -> None:
    rng = np.random.default_rng(sample_rate)
    whole = marker_audio(0.0, 1.3, sample_rate=sample_rate, num_channels=2)
    cuts = np.sort(rng.integers(1, whole.shape[0], 25))
    parts, prev = [], 0
    for cut in [*cuts.tolist(), whole.shape[0]]:
        parts.append(
            marker_audio_samples(prev, cut - prev, sample_rate=sample_rate, num_channels=2)
        )
        prev = cut
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(whole[:, 0], whole[:, 1])
    frames = list(marker_audio_frames(1.3, sample_rate=sample_rate, frame_ms=10))
    joined = np.concatenate([np.frombuffer(f.data, np.int16) for f in frames])
    assert np.array_equal(joined, whole[:, 0])
    assert marker_audio_frame(0, 480).samples_per_channel == 480


@pytest.mark.parametrize(
    ("sample_rate", "spec"),
    [
        (16000, DEFAULT_SPEC),
        (24000, DEFAULT_SPEC),
        (48000, DEFAULT_SPEC),
        (48000, MarkerSpec(bed_level=0.0, fps=25, burst_every=10)),
    ],
)
def test_burst_onsets_within_a_millisecond_in_any_chunking(
    sample_rate: int, spec: MarkerSpec
) -> None:
    rng = np.random.default_rng(3)
    samples = marker_audio(0.0, 8 * spec.period + 0.2, sample_rate=sample_rate, spec=spec)
    detector = BurstDetector(sample_rate, spec=spec)
    pos, base = 0, 1234.5
    while pos < samples.shape[0]:
        size = int(rng.integers(1, 3000))
        detector.feed(samples[pos : pos + size], base + pos / sample_rate)
        pos += size
    detector.flush()
    assert [b.code for b in detector.bursts] == [k % spec.modulus for k in range(9)]
    errors = [b.time - base - spec.marker_time(k) for k, b in enumerate(detector.bursts)]
    assert max(abs(e) for e in errors) < 0.001
    assert all(0.4 < b.peak < 0.6 for b in detector.bursts)


def test_burst_detector_uses_each_chunks_time_and_ignores_the_bed() -> None:
    """Chunks carry their own start time (gaps in time are followed); starting mid-stream in
    the bed detects nothing until the next burst."""
    sr = 48000
    start = round(0.7 * sr)  # between markers 1 and 2
    samples = marker_audio_samples(start, sr, sample_rate=sr)
    detector = BurstDetector(sr)
    half = samples.shape[0] // 2  # contains marker 2 (1.0 s); marker 3 is at 1.5 s
    detector.feed(samples[:half], 10.0)
    detector.feed(samples[half:], 20.0)  # this chunk was heard 10 s later
    detector.flush()
    assert [b.code for b in detector.bursts] == [2, 3]
    assert detector.bursts[0].time == pytest.approx(10.0 + 0.3, abs=0.001)
    assert detector.bursts[1].time == pytest.approx(20.0 + 0.8 - half / sr, abs=0.001)


def test_silence_helpers() -> None:
    assert is_silent(np.zeros(480, np.int16))
    assert rms_dbfs(np.zeros(480, np.int16)) == float("-inf")
    bed = marker_audio(0.2, 0.3)  # between bursts: only the quiet bed tone
    assert not is_silent(bed)
    assert -45 < rms_dbfs(bed) < -30
    assert is_silent(bed, threshold_dbfs=-20)
    burst = marker_audio(0.0, 0.05)
    assert rms_dbfs(burst) > -12


def test_detect_bursts_in_one_block_survives_a_gap_of_silence() -> None:
    """An interrupt that silences bursts 2 and 3 leaves the others found, at their times."""
    samples = marker_audio(0.0, 3.0, sample_rate=16000, num_channels=2)
    samples[round(0.95 * 16000) : round(1.6 * 16000)] = 0
    bursts = detect_bursts(samples, 16000, start_time=5.0)
    assert [b.code for b in bursts] == [0, 1, 4, 5]
    assert [b.time for b in bursts] == pytest.approx([5.0, 5.5, 7.0, 7.5], abs=0.001)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="fps"):
        MarkerSpec(fps=0)
    with pytest.raises(ValueError, match="burst_ms"):
        MarkerSpec(burst_ms=450)
    with pytest.raises(ValueError, match="distinct"):
        MarkerSpec(frequencies=(500.0, 500.0))
    with pytest.raises(ValueError, match="too low"):
        marker_audio(0, 0.1, sample_rate=3000)


# --- analysis --------------------------------------------------------------------------------


def _timeline(offset_ms, markers: int = 40, spec: MarkerSpec = DEFAULT_SPEC):
    """Video frame arrivals and bursts of a stream whose video lags by offset_ms(t)."""
    bursts = [AudioBurst(spec.marker_time(k), spec.code_of(k), 0.5) for k in range(markers)]
    video = [
        (n / spec.fps + offset_ms(n / spec.fps) / 1000, n)
        for n in range(markers * spec.burst_every)
    ]
    return video, bursts


def test_analysis_offsets_percentiles_and_drift() -> None:
    video, bursts = _timeline(lambda t: 10.0 + 3.0 * t / 60)  # 10 ms, drifting 3 ms/min
    report = analyze_sync(video, bursts)
    assert report.paired == 40 and not report.unpaired_video and not report.unpaired_audio
    offsets = np.array([m.offset_ms for m in report.offsets])
    assert offsets == pytest.approx(10.0 + 3.0 * np.arange(40) * 0.5 / 60)
    assert report.drift_ms_per_min is None  # 20 s of markers: a slope there is noise
    assert "drift n/a (run under a minute)" in report.summary()
    assert report.mean_ms == pytest.approx(offsets.mean())
    assert report.p50_abs_ms == pytest.approx(np.percentile(offsets, 50))
    assert report.p95_abs_ms == pytest.approx(np.percentile(offsets, 95))
    assert report.max_abs_ms == pytest.approx(offsets.max())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["paired"] == 40 and len(data["offsets"]) == 40
    assert data["offsets"][0]["offset_ms"] == pytest.approx(10.0)


def test_drift_over_a_minute_comes_with_its_interval() -> None:
    video, bursts = _timeline(lambda t: 10.0 + 3.0 * t / 60, markers=130)  # 64.5 s of markers
    report = analyze_sync(video, bursts)
    assert report.drift_ms_per_min == pytest.approx(3.0)
    assert report.drift_ci95_ms_per_min == pytest.approx(0.0, abs=1e-6)  # exact line
    assert "drift +3.0 \u00b1 0.0 ms/min" in report.summary()


def test_drift_interval_covers_the_true_slope_under_jitter() -> None:
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 120.0, 0.5)
    covered = 0
    for _ in range(200):
        offsets = 5.0 + 2.0 * times / 60 + rng.normal(0.0, 8.0, times.size)
        drift = estimate_drift(times, offsets)
        assert drift is not None and drift.span_s == pytest.approx(119.5)
        covered += abs(drift.ms_per_min - 2.0) <= drift.ci95_ms_per_min
    assert 180 <= covered <= 199  # a 95 % interval: about 190 of 200
    # the same jitter over 10 s: no figure at all, rather than +-20 ms/min of noise
    assert estimate_drift(times[:20], offsets[:20]) is None
    assert estimate_drift([0.0, 60.0], [1.0, 2.0]) is None  # two points make no interval
    with pytest.raises(ValueError, match="differ in length"):
        estimate_drift([0.0, 30.0, 60.0], [1.0, 2.0])


def test_analysis_pairs_by_code_when_an_interrupt_drops_bursts() -> None:
    video, bursts = _timeline(lambda t: -25.0)
    bursts = [b for k, b in enumerate(bursts) if k not in (3, 4, 5)]  # lost to an interrupt
    # a burst of another marker's code lying right at marker 4's video frame is not used
    bursts.append(AudioBurst(4 * DEFAULT_SPEC.period, 7, 0.5))
    report = analyze_sync(video, bursts)
    assert report.unpaired_video == [3, 4, 5]
    assert report.unpaired_audio == [pytest.approx(2.0)]
    assert {round(m.offset_ms, 6) for m in report.offsets} == {-25.0}


def test_analysis_uses_first_appearance_and_accepts_tuples() -> None:
    video = [(1.00, 0), (1.05, 0), (1.55, 15), (1.50, 15)]  # repeats and a late duplicate
    report = analyze_sync(video, [(0.99, 0), (1.49, 1)])
    assert [round(m.offset_ms, 6) for m in report.offsets] == [10.0, 10.0]
    assert report.drift_ms_per_min is None  # too few markers for a slope
    empty = analyze_sync([VideoObservation(0.0, 1)], [])
    assert empty.paired == 0 and empty.p50_abs_ms is None
    assert "no markers paired" in empty.summary()


def test_frame_continuity() -> None:
    result = frame_continuity([0, 1, 2, 4, 3, 3, None, 7, 5])
    assert (result.lowest, result.highest, result.distinct) == (0, 7, 7)
    assert result.missing == [6]
    assert result.repeated == 1
    assert result.reordered == 2  # 3 after 4, 5 after 7


def test_a_dropped_marker_frame_is_stood_in_for_by_the_next_frame_with_its_own_offset() -> None:
    """An encoder under load drops frames: with ``frame_slack`` the first frame after a missing
    marker frame is paired, and its offset is that frame's own (its time less its lateness)."""
    from livekit_avsync.measure import analyze_sync

    spec = DEFAULT_SPEC
    period = 1 / spec.fps
    skew = 0.012  # every frame is shown 12 ms after its audio
    frames = [n for n in range(0, 61) if n not in (15, 16, 45)]  # markers 1 and 3 dropped
    video = [(n * period + skew, n) for n in frames]
    audio = [(k * spec.period, spec.code_of(k)) for k in range(5)]
    strict = analyze_sync(video, audio, spec=spec)
    assert strict.paired == 3 and strict.unpaired_video == []
    slack = analyze_sync(video, audio, spec=spec, frame_slack=2)
    assert slack.paired == 5
    assert [round(m.offset_ms, 6) for m in slack.offsets] == [round(skew * 1000, 6)] * 5
    with pytest.raises(ValueError, match="frame_slack"):
        analyze_sync(video, audio, spec=spec, frame_slack=spec.burst_every)
