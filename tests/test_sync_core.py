"""Deterministic tests of the pure sync core: no sleeps, explicit ``now`` or a FakeClock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from livekit_avsync.sync import (
    Aligner,
    AudioPlayout,
    FakeClock,
    QueuedFrame,
    StaleGate,
    SyncStats,
    VideoScheduler,
)

# --------------------------------------------------------------------------------------------
# FakeClock
# --------------------------------------------------------------------------------------------


def test_fake_clock_moves_only_forward_when_told() -> None:
    clock = FakeClock(5.0)
    assert clock.now() == 5.0
    assert clock.advance(0.25) == pytest.approx(5.25)
    assert clock.now() == pytest.approx(5.25)
    with pytest.raises(ValueError):
        clock.advance(-0.001)
    assert clock.now() == pytest.approx(5.25)


# --------------------------------------------------------------------------------------------
# AudioPlayout
# --------------------------------------------------------------------------------------------


def test_playout_chunks_handed_back_to_back_play_contiguously() -> None:
    p = AudioPlayout()
    a = p.hand(10.0, 0.00, 0.02, 0.02)
    b = p.hand(10.0, 0.02, 0.04, 0.02)
    c = p.hand(10.015, 0.04, 0.06, 0.02)  # handed while b is still queued: starts when b ends
    assert (a.wall_start, a.wall_end) == pytest.approx((10.0, 10.02))
    assert (b.wall_start, b.wall_end) == pytest.approx((10.02, 10.04))
    assert (c.wall_start, c.wall_end) == pytest.approx((10.04, 10.06))
    assert p.underruns == 0


def test_playout_latency_delays_the_first_chunk() -> None:
    p = AudioPlayout(latency=0.003)
    seg = p.hand(1.0, 0.0, 0.01, 0.01)
    assert seg.wall_start == pytest.approx(1.003)
    assert p.wall_time_of(0.0) == pytest.approx(1.003)


def test_playout_playhead_interpolates_and_runs_on_after_last_chunk() -> None:
    p = AudioPlayout()
    p.hand(10.0, 5.00, 5.02, 0.02)
    p.hand(10.0, 5.02, 5.04, 0.02)
    assert p.playhead(10.0) == pytest.approx(5.0)
    assert p.playhead(10.005) == pytest.approx(5.005)
    assert p.playhead(10.031) == pytest.approx(5.031)
    # after the last chunk the media clock keeps running at real-time rate
    assert p.playhead(10.04) == pytest.approx(5.04)
    assert p.playhead(10.5) == pytest.approx(5.5)
    # before the first chunk it runs backwards from it
    assert p.playhead(9.9) == pytest.approx(4.9)
    assert AudioPlayout().playhead(1.0) is None


def test_playout_wall_time_of_inverts_playhead() -> None:
    p = AudioPlayout()
    t = 100.0
    for i in range(10):
        p.hand(t, i * 0.01, (i + 1) * 0.01, 0.01)
    for media in (0.0, 0.0037, 0.05, 0.0999, 0.15, 0.7):
        wall = p.wall_time_of(media)
        assert wall == pytest.approx(100.0 + media)
        assert p.playhead(wall) == pytest.approx(media)
    assert AudioPlayout().wall_time_of(1.0) is None


def test_playout_wall_time_of_media_in_a_gap_is_when_the_next_chunk_starts() -> None:
    p = AudioPlayout()
    p.hand(0.0, 0.00, 0.02, 0.02)
    p.hand(0.0, 0.05, 0.07, 0.02)  # media skips 30 ms, wall time does not
    assert p.wall_time_of(0.03) == pytest.approx(0.02)
    assert p.wall_time_of(0.06) == pytest.approx(0.03)


def test_playout_queued_and_played_durations() -> None:
    p = AudioPlayout()
    for i in range(5):
        p.hand(0.0, i * 0.02, (i + 1) * 0.02, 0.02)
    assert p.queued(0.0) == pytest.approx(0.10)
    assert p.played(0.0) == pytest.approx(0.0)
    assert p.queued(0.035) == pytest.approx(0.065)
    assert p.played(0.035) == pytest.approx(0.035)
    assert p.queued(0.5) == 0.0
    assert p.played(0.5) == pytest.approx(0.10)


def test_playout_clear_drops_the_unplayed_part() -> None:
    p = AudioPlayout()
    for i in range(5):
        p.hand(0.0, i * 0.02, (i + 1) * 0.02, 0.02)
    p.clear(0.03)
    assert p.queued(0.03) == 0.0
    assert p.played(0.03) == pytest.approx(0.03)
    assert p.played(5.0) == pytest.approx(0.03)  # what was discarded never plays
    assert p._discarded == pytest.approx(0.07)
    # the chunk playing at the clear was cut where it stopped
    assert p.playhead(0.03) == pytest.approx(0.03)
    # a chunk handed after the clear plays at once, not after the discarded audio
    seg = p.hand(0.031, 1.0, 1.02, 0.02)
    assert seg.wall_start == pytest.approx(0.031)
    assert p.played(0.041) == pytest.approx(0.04)


def test_playout_underruns_count_mid_stream_gaps_but_not_gaps_after_clear() -> None:
    p = AudioPlayout()
    p.hand(0.0, 0.0, 0.02, 0.02)
    p.hand(0.023, 0.02, 0.04, 0.02)  # 3 ms late: within tolerance
    assert p.underruns == 0
    p.hand(0.083, 0.04, 0.06, 0.02)  # queue ran dry 40 ms before this chunk
    assert p.underruns == 1
    p.clear(0.09)
    p.hand(0.3, 5.0, 5.02, 0.02)  # after an interrupt: silence was intended
    assert p.underruns == 1
    p.hand(0.4, 5.02, 5.04, 0.02)  # a gap after that is an underrun again
    assert p.underruns == 2
    p.hand(3.0, 9.0, 9.02, 0.02)  # a pause longer than a second is a new utterance
    assert p.underruns == 2


def test_playout_loud_between_judges_a_range_and_survives_float_cracks() -> None:
    pl = AudioPlayout()
    pl.hand(0.0, 6.09, 6.1, 0.01, quiet=True)
    pl.hand(0.0, 6.1000000000000005, 6.11, 0.01, quiet=False)  # speech starts across a crack
    p = 1 / 30
    assert pl.loud_between(6.1, 6.1 + p) is True  # the point 6.1 is in neither chunk
    assert pl.loud_between(6.09, 6.0999) is False
    assert pl.loud_between(6.05, 6.0899) is None  # no audio covers it: unknown
    assert pl.loud_between(6.2, 6.3) is None


def test_playout_history_is_pruned_over_100k_chunks() -> None:
    p = AudioPlayout(history=2.0)
    clock = FakeClock(0.0)
    for i in range(100_000):
        p.hand(clock.now(), i * 0.01, (i + 1) * 0.01, 0.01)
        clock.advance(0.01)
    # 2 s of history at 10 ms per chunk, plus what is queued: a few hundred at most
    assert len(p._segments) <= 205
    now = clock.now()
    assert p.played(now) == pytest.approx(1000.0, abs=0.011)
    assert p.playhead(now - 0.005) == pytest.approx(999.995, abs=1e-6)
    assert p.wall_time_of(999.5) == pytest.approx(now - 0.5, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Aligner: timestamps mode
# --------------------------------------------------------------------------------------------


def feed_audio(
    a: Aligner, n: int, *, t0: float, ts0: float = 0.0, dur: float = 0.02, rate: float = 1.0
) -> list[tuple[float, float, float]]:
    """Push ``n`` real-time audio frames (end timestamps) arriving as they end."""
    out = []
    for k in range(n):
        end = ts0 + (k + 1) * dur * rate
        out.append(a.audio(end, dur * rate, t0 + (k + 1) * dur))
    return out


def test_timestamps_audio_timestamp_is_the_end_time() -> None:
    a = Aligner(mode="timestamps")
    start, end, offset = a.audio(0.02, 0.02, 100.0)
    assert (start, end) == pytest.approx((0.0, 0.02))
    start, end, _ = a.audio(0.04, 0.02, 100.02)
    assert (start, end) == pytest.approx((0.02, 0.04))
    assert a.audio_end == pytest.approx(0.04)
    assert offset == 0.0


def test_timestamps_video_and_audio_share_the_clock() -> None:
    a = Aligner(mode="timestamps")
    ts, off_v = a.video(7.5, 100.0)  # video first: its timestamps are the session clock
    start, _, off_a = a.audio(7.52, 0.02, 100.0)
    assert ts == pytest.approx(7.5)
    assert start == pytest.approx(7.5)
    assert off_a == off_v
    ts2, _ = a.video(7.5 + 1 / 30, 100.03)
    assert ts2 - start == pytest.approx(1 / 30)


def test_timestamps_missing_are_synthesised_and_counted() -> None:
    a = Aligner(mode="timestamps", video_interval=1 / 25)
    a.audio(0.02, 0.02, 0.0)
    start, end, _ = a.audio(None, 0.02, 0.02)
    assert (start, end) == pytest.approx((0.02, 0.04))
    a.video(0.0, 0.0)
    ts, _ = a.video(None, 0.04)
    assert ts == pytest.approx(0.04)
    assert a.missing_timestamps == 2


def test_timestamps_small_backward_steps_are_clamped_and_counted() -> None:
    a = Aligner(mode="timestamps")
    a.audio(0.04, 0.02, 0.0)
    start, end, _ = a.audio(0.03, 0.02, 0.02)  # overlaps the previous frame by 10 ms
    assert (start, end) == pytest.approx((0.04, 0.06))
    a.video(0.1, 0.0)
    ts, _ = a.video(0.05, 0.03)  # 50 ms back
    assert ts == pytest.approx(0.1)
    assert a.non_monotonic == 2
    assert a.jumps == 0


def test_timestamps_reset_to_zero_is_one_shared_jump() -> None:
    a = Aligner(mode="timestamps")
    t0 = 100.0
    # 5 s of audio and video (video 1/30, arriving with the audio)
    for k in range(250):
        a.audio((k + 1) * 0.02, 0.02, t0 + (k + 1) * 0.02)
    last_v = 0.0
    for j in range(150):
        last_v, _ = a.video(j / 30, t0 + j / 30)
    assert a.audio_end == pytest.approx(5.0)
    # the producer restarts its clock at 0 for both streams
    start, _, off_a = a.audio(0.02, 0.02, t0 + 5.02)
    v0, off_v = a.video(0.0, t0 + 5.0)
    assert a.jumps == 2  # counted per stream, one common re-base
    assert off_a == off_v  # relative alignment of the two streams preserved
    # session time continues where it was, within one audio frame (no 5 s step back)
    assert 5.0 <= start <= 5.02 + 1e-9
    assert v0 == pytest.approx(start)
    assert v0 > last_v
    # and runs on smoothly afterwards
    start2, _, _ = a.audio(0.04, 0.02, t0 + 5.04)
    v1, _ = a.video(1 / 30, t0 + 5.0 + 1 / 30)
    assert start2 == pytest.approx(start + 0.02)
    assert v1 - v0 == pytest.approx(1 / 30)
    assert a.non_monotonic == 0


def test_timestamps_forward_gap_explained_by_arrival_is_not_a_jump() -> None:
    a = Aligner(mode="timestamps")
    feed_audio(a, 50, t0=0.0)  # 0..1 s
    a.video(0.98, 1.0)
    # 5 s pause in production: both clocks moved on by 5 s
    start, _, _ = a.audio(6.02, 0.02, 6.02)
    ts, _ = a.video(6.0, 6.02)
    assert a.jumps == 0
    assert start == pytest.approx(6.0)
    assert ts == pytest.approx(6.0)


def test_timestamps_forward_leap_not_explained_by_arrival_is_a_jump() -> None:
    a = Aligner(mode="timestamps", jump_threshold=2.0)
    feed_audio(a, 50, t0=0.0)  # ends at ts 1.0, arrival 1.0
    start, _, _ = a.audio(30.02, 0.02, 1.02)  # timestamps leap 29 s within 20 ms
    assert a.jumps == 1
    assert 1.0 <= start <= 1.02 + 1e-9
    start2, _, _ = a.audio(30.04, 0.02, 1.04)
    assert start2 == pytest.approx(start + 0.02)
    assert a.jumps == 1


def test_timestamps_reset_starts_a_new_timeline() -> None:
    a = Aligner()  # auto
    feed_audio(a, 50, t0=0.0)
    a.video(0.9, 1.0)
    assert a.mode == "timestamps"
    a.reset()
    assert a.mode == "auto"
    # new turn on an unrelated clock (1000 s) after a 0.5 s pause
    start, _, _ = a.audio(1000.02, 0.02, 1.5)
    ts, _ = a.video(1000.0, 1.5)
    assert a.mode == "timestamps"
    # continues after the old timeline (ended at 1.0, then a 0.5 s pause), not at 1000 s and
    # not offset by the absolute wall clock
    assert start == pytest.approx(1.5, abs=0.02)
    assert ts == pytest.approx(start)  # both streams on the same new base
    assert a.audio_end == pytest.approx(start + 0.02)


def test_timestamps_drift_of_one_percent_stays_on_one_timeline() -> None:
    a = Aligner(mode="timestamps")
    n = 3000  # 60 s of 20 ms frames
    out = feed_audio(a, n, t0=0.0, rate=1.01)
    for j in range(1800):
        a.video(j / 30 * 1.01, (j + 1) / 30)
    assert a.jumps == 0
    assert a.non_monotonic == 0
    assert out[-1][1] == pytest.approx(60 * 1.01)
    assert all(out[k + 1][0] == pytest.approx(out[k][1]) for k in range(n - 1))


# --------------------------------------------------------------------------------------------
# Aligner: arrival mode
# --------------------------------------------------------------------------------------------


def test_arrival_audio_is_laid_end_to_end_from_arrival() -> None:
    a = Aligner(mode="arrival")
    assert a.audio(None, 0.02, 100.0)[:2] == pytest.approx((100.0, 100.02))
    assert a.audio(None, 0.02, 100.001)[:2] == pytest.approx((100.02, 100.04))  # burst
    assert a.audio(None, 0.02, 100.002)[:2] == pytest.approx((100.04, 100.06))
    assert a.audio(None, 0.02, 101.0)[:2] == pytest.approx((101.0, 101.02))  # after a pause
    assert a.missing_timestamps == 0


def test_arrival_video_is_at_audio_end_plus_offset() -> None:
    a = Aligner(mode="arrival", av_offset=-0.1)
    ts, _ = a.video(None, 50.0)  # no audio yet: its own arrival
    assert ts == pytest.approx(49.9)
    for k in range(3):
        a.audio(None, 0.02, 50.0 + k * 0.001)  # 60 ms of audio in a burst: ends at 50.06
    ts, _ = a.video(None, 50.01)
    assert ts == pytest.approx(50.06 - 0.1)
    ts, _ = a.video(None, 50.2)  # the audio has long played: arrival wins
    assert ts == pytest.approx(50.1)
    ts, _ = a.video(None, 50.15)  # never before the frame before it
    assert ts == pytest.approx(50.1)


def test_arrival_dejitters_streams_that_carry_timestamps() -> None:
    a = Aligner(mode="arrival")
    rng = random.Random(7)
    transit = 0.05
    starts, video = [], []
    for k in range(500):  # 10 s of 20 ms audio with 0-30 ms network jitter
        end = 3.0 + (k + 1) * 0.02
        jitter = 0.0 if k % 10 == 0 else rng.uniform(0.0, 0.03)
        starts.append((end - 0.02, a.audio(end, 0.02, end + transit + jitter)[0]))
    for j in range(300):
        ts = 3.0 + j / 30
        jitter = 0.0 if j % 10 == 0 else rng.uniform(0.0, 0.03)
        video.append((ts, a.video(ts, ts + transit + jitter)[0]))
    # after the 2 s window filled, session time = media time + the network's base transit, the
    # same for both streams (audio transit is judged from a frame's end: it leaves when complete)
    dev_audio = max(abs(s - (m + transit)) for m, s in starts[100:])
    dev_video = max(abs(s - (m + transit)) for m, s in video[60:])
    assert dev_audio <= 0.001
    assert dev_video <= 0.001
    # the raw arrivals themselves wandered by up to 30 ms
    assert a.missing_timestamps == 0


def test_auto_mode_resolves_on_first_frame_and_again_after_reset() -> None:
    a = Aligner()
    assert a.mode == "auto"
    a.video(1.0, 10.0)
    assert a.mode == "timestamps"
    a.reset()
    assert a.mode == "auto"
    a.audio(None, 0.02, 11.0)
    assert a.mode == "arrival"
    b = Aligner()
    b.audio(None, 0.02, 0.0)
    assert b.mode == "arrival"


def test_aligner_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="sync_mode"):
        Aligner(mode="clock")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jump_threshold"):
        Aligner(jump_threshold=0)


# --------------------------------------------------------------------------------------------
# VideoScheduler
# --------------------------------------------------------------------------------------------


def due_plus(delay: float) -> Callable[[float], float]:
    """A due function: media ``ts`` plays ``delay`` seconds after wall time ``ts``."""
    return lambda ts: ts + delay


def run_scheduler(
    sched: VideoScheduler, due: Callable[[float], float], until: float, start: float = 0.0
) -> tuple[list[tuple[float, QueuedFrame]], int, int]:
    """Drive ``decide`` like an output loop that wakes exactly when asked."""
    now, sends, repeats, dropped = start, [], 0, 0
    while now < until:
        d = sched.decide(now, due)
        if d.action == "send":
            assert d.frame is not None
            sends.append((now, d.frame))
            dropped += d.dropped
        elif d.action == "repeat":
            repeats += 1
        else:
            assert d.wake_at > now
            now = d.wake_at
    return sends, repeats, dropped


def test_scheduler_sends_at_due_time() -> None:
    s = VideoScheduler(30)
    s.push(QueuedFrame(1.0, "f0"))
    due = due_plus(0.1)
    d = s.decide(1.05, due)
    assert d.action == "wait"
    assert d.wake_at == pytest.approx(1.1)
    d = s.decide(1.1, due)
    assert d.action == "send"
    assert d.frame is not None and d.frame.frame == "f0"
    assert d.dropped == 0
    assert len(s) == 0


def test_scheduler_several_due_sends_newest_and_counts_dropped() -> None:
    s = VideoScheduler(30)
    for k in range(4):
        s.push(QueuedFrame(1.0 + k / 30, f"f{k}"))
    d = s.decide(1.1 + 2.5 / 30, due_plus(0.1))  # f0, f1, f2 due; f3 not yet
    assert d.action == "send"
    assert d.frame is not None and d.frame.frame == "f2"
    assert d.dropped == 2
    assert len(s) == 1


def test_scheduler_repeats_when_nothing_due_for_a_period() -> None:
    s = VideoScheduler(30)
    p = s.period
    s.push(QueuedFrame(0.0, "f0"))
    assert s.decide(0.0, due_plus(0.0)).action == "send"
    d = s.decide(0.0, due_plus(0.0))
    assert d.action == "wait"
    assert d.wake_at == pytest.approx(p)
    d = s.decide(p, due_plus(0.0))
    assert d.action == "repeat"
    assert d.frame is not None and d.frame.frame == "f0"
    assert s.decide(p + 0.001, due_plus(0.0)).action == "wait"
    assert s.decide(2 * p, due_plus(0.0)).action == "repeat"


def test_scheduler_skips_repeat_when_next_frame_is_due_within_half_a_period() -> None:
    s = VideoScheduler(30)
    p = s.period
    s.push(QueuedFrame(0.0, "f0"))
    s.push(QueuedFrame(p + 0.01, "f1"))  # due 10 ms after the repeat slot (< p/2)
    assert s.decide(0.0, due_plus(0.0)).action == "send"
    d = s.decide(p, due_plus(0.0))
    assert d.action == "wait"
    assert d.wake_at == pytest.approx(p + 0.01)
    d = s.decide(p + 0.01, due_plus(0.0))
    assert d.action == "send"
    assert d.frame is not None and d.frame.frame == "f1"


def test_scheduler_never_sends_two_frames_within_half_a_period() -> None:
    s = VideoScheduler(30)
    p = s.period
    s.push(QueuedFrame(0.0, "f0"))
    s.push(QueuedFrame(0.005, "f1"))
    assert s.decide(0.0, due_plus(0.0)).action == "send"
    d = s.decide(0.01, due_plus(0.0))  # f1 is due, but only 10 ms passed
    assert d.action == "wait"
    assert d.wake_at == pytest.approx(0.5 * p)
    d = s.decide(0.5 * p, due_plus(0.0))
    assert d.action == "send"
    assert d.frame is not None and d.frame.frame == "f1"


def test_scheduler_average_rate_never_exceeds_fps() -> None:
    s = VideoScheduler(30)
    for k in range(400):  # 4 s of 100 fps content, every frame due on time
        s.push(QueuedFrame(k / 100, k))
    sends, repeats, dropped = run_scheduler(s, due_plus(0.0), until=4.0)
    assert repeats == 0
    assert len(sends) + dropped + len(s) == 400
    for i in range(len(sends)):  # in any window of a second: fps frames plus the burst credit
        window = [t for t, _ in sends if sends[i][0] <= t < sends[i][0] + 1.0]
        assert len(window) <= 30 + 2


def test_scheduler_one_late_wake_up_does_not_make_later_frames_late() -> None:
    # regression: a fixed send grid moved by one 15 ms stall kept every later frame ~12 ms late
    s = VideoScheduler(30)
    p = s.period
    for k in range(60):
        s.push(QueuedFrame(k * p, k))
    now, lateness, stalled = 0.0, {}, False
    while len(s):
        d = s.decide(now, due_plus(0.0))
        if d.action == "send":
            assert d.frame is not None
            lateness[d.frame.frame] = now - d.frame.ts
        elif d.action == "wait":
            now = d.wake_at
            if not stalled and now > 10 * p - 1e-6:
                now, stalled = now + 0.015, True  # the loop wakes 15 ms late once
    assert lateness[10] == pytest.approx(0.015)
    assert max(abs(lateness[k]) for k in range(11, 60)) < 1e-6


def test_scheduler_25fps_into_30fps_leaves_each_frame_at_its_own_time() -> None:
    s = VideoScheduler(30)
    for k in range(50):
        s.push(QueuedFrame(k / 25, k))
    sends, repeats, dropped = run_scheduler(s, due_plus(0.1), until=0.1 + 49 / 25 + 0.001)
    assert [f.frame for _, f in sends] == list(range(50))
    assert max(abs(t - (f.ts + 0.1)) for t, f in sends) <= 0.002
    assert repeats == 0
    assert dropped == 0


def test_scheduler_60fps_into_30fps_drops_every_other_frame() -> None:
    s = VideoScheduler(30)
    n = 120  # 2 s of 60 fps content
    for k in range(n):
        s.push(QueuedFrame(k / 60, k))
    sends, repeats, dropped = run_scheduler(s, due_plus(0.1), until=0.1 + (n - 1) / 60 + 0.05)
    times = [t for t, _ in sends]
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert repeats == 0
    assert len(sends) + dropped == n
    assert rate == pytest.approx(30.0, abs=1.0)
    assert dropped == pytest.approx(n / 2, abs=3)
    # whatever leaves is never late by more than one output period
    assert max(t - (f.ts + 0.1) for t, f in sends) <= s.period


def test_scheduler_clear_empties() -> None:
    s = VideoScheduler(30)
    for k in range(5):
        s.push(QueuedFrame(k / 30, k))
    assert s.oldest_ts() == 0.0
    assert s.newest_ts() == pytest.approx(4 / 30)
    assert s.clear() == 5
    assert len(s) == 0
    assert s.newest_ts() is None
    d = s.decide(10.0, due_plus(0.0))
    assert d.action == "wait"


@pytest.mark.parametrize("fps", [0, -30, math.nan, math.inf])
def test_scheduler_invalid_fps_raises(fps: float) -> None:
    with pytest.raises(ValueError, match="video_fps"):
        VideoScheduler(fps)


def test_scheduler_keeps_presentation_order() -> None:
    s = VideoScheduler(30)
    s.push(QueuedFrame(1.0, "a"))
    s.push(QueuedFrame(0.5, "b"))
    assert s.newest_ts() == 1.0


# --------------------------------------------------------------------------------------------
# StaleGate
# --------------------------------------------------------------------------------------------


def test_gate_is_open_initially_and_closed_after_close() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0)
    assert not g.closed
    assert g.admit_audio(0.0, False, 0.0)
    assert g.admit_video(0.0, 0.0, timestamps=True)
    g.close(1.0)
    assert g.closed
    assert not g.admit_audio(1.01, False, 1.0)
    assert not g.admit_video(1.01, 1.0, timestamps=False)


def test_gate_loud_audio_keeps_it_closed_quiet_audio_opens_it() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0)
    g.close(0.0)
    for k in range(1, 50):  # 1 s of loud tail
        assert not g.admit_audio(k * 0.02, False, 0.0)
    assert g.closed
    last_loud = 49 * 0.02
    assert not g.admit_audio(last_loud + 0.1, True, 0.0)
    assert not g.admit_audio(last_loud + 0.24, True, 0.0)
    assert g.admit_audio(last_loud + 0.26, True, 0.0)
    assert not g.closed


def test_gate_absence_of_audio_opens_it() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0)
    g.close(10.0)
    assert not g.admit_video(10.2, 0.0, timestamps=False)
    assert g.admit_video(10.26, 0.0, timestamps=False)
    assert g.admit_audio(10.27, False, 0.0)


def test_gate_max_wait_opens_it_even_while_loud() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0)
    g.close(0.0)
    opened_at = None
    for k in range(1, 150):
        if g.admit_audio(k * 0.02, False, 0.0):
            opened_at = k * 0.02
            break
    assert opened_at == pytest.approx(2.0)


def test_gate_explicit_open_is_immediate_and_needs_no_video_hold() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0, video_hold=0.5)
    g.close(0.0)
    g.open(0.01)
    assert not g.closed
    assert g.admit_audio(0.01, False, 3.0)
    assert g.admit_video(0.011, 3.0, timestamps=False)


def test_gate_video_hold_in_arrival_mode() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0, video_hold=0.3)
    g.close(0.0)
    assert g.admit_audio(0.26, True, 0.0)  # opened at 0.26 by quiet
    assert not g.admit_video(0.3, 5.0, timestamps=False)
    assert not g.admit_video(0.55, 5.0, timestamps=False)
    assert g.admit_video(0.57, 5.0, timestamps=False)


def test_gate_timestamps_mode_drops_video_older_than_first_audio_let_through() -> None:
    g = StaleGate(quiet=0.25, max_wait=2.0)
    g.close(0.0)
    assert not g.admit_audio(0.1, True, 9.0)
    assert g.admit_audio(0.3, True, 10.0)  # first audio of the new turn starts at 10.0
    assert g.admit_audio(0.32, True, 10.02)
    assert not g.admit_video(0.31, 9.9, timestamps=True)  # tail of the old turn
    assert g.admit_video(0.31, 10.0, timestamps=True)
    assert g.admit_video(0.33, 10.033, timestamps=True)


def test_gate_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        StaleGate(quiet=0)
    with pytest.raises(ValueError):
        StaleGate(max_wait=-1)
    with pytest.raises(ValueError):
        StaleGate(video_hold=-0.1)


# --------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------


def test_stats_to_dict_has_every_field() -> None:
    values = dict.fromkeys(SyncStats.__dataclass_fields__, 0)
    values["mode"] = "timestamps"
    values["av_offset_ms"] = 1.5
    st = SyncStats(**values)
    d = st.to_dict()
    assert set(d) == set(SyncStats.__dataclass_fields__)
    assert d["mode"] == "timestamps"
    assert d["av_offset_ms"] == 1.5


# --------------------------------------------------------------------------------------------
# End to end on a FakeClock: the core driven the way AVSynchronizer drives it
# --------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    start: float
    end: float
    arrival: float


@dataclass
class CoreSim:
    """Aligner + AudioPlayout + VideoScheduler on a FakeClock, wired like ``synchronizer.py``."""

    fps: float = 30.0
    lead: float = 0.04
    max_video_wait: float = 0.4
    latency: float = 0.005
    clock: FakeClock = field(default_factory=lambda: FakeClock(0.0))

    def __post_init__(self) -> None:
        self.aligner = Aligner(mode="timestamps", video_interval=1 / self.fps)
        self.playout = AudioPlayout(latency=self.latency)
        self.video = VideoScheduler(self.fps)
        self.pending: list[_Chunk] = []
        self.handed: list[tuple[float, float, float, float]] = []  # media/wall ranges
        self.sent: list[tuple[float, float]] = []  # (wall sent, media ts)
        self.repeats = 0
        self.video_high = -math.inf
        self.last_video_push = -math.inf
        self.anchor: tuple[float, float] | None = None

    def due_of(self, ts: float) -> float:
        wall = self.playout.wall_time_of(ts)
        if wall is not None:
            return wall
        assert self.anchor is not None
        return self.anchor[1] + (ts - self.anchor[0])

    def push_audio(self, end_ts: float, duration: float) -> None:
        now = self.clock.now()
        start, _, _ = self.aligner.audio(end_ts, duration, now)
        n = round(duration / 0.01)
        for i in range(n):  # re-chunked to 10 ms like the synchronizer
            self.pending.append(_Chunk(start + i * 0.01, start + (i + 1) * 0.01, now))

    def push_video(self, ts: float) -> None:
        now = self.clock.now()
        session, _ = self.aligner.video(ts, now)
        self.video.push(QueuedFrame(session, None, ts))
        self.video_high = max(self.video_high, session)
        self.last_video_push = now
        if self.anchor is None:
            self.anchor = (session, now)

    def pump_audio(self) -> float:
        """Hand what may go now; returns when to look again."""
        now = self.clock.now()
        while self.pending:
            ahead = self.playout.queued(now) - self.lead
            if ahead > 0:
                return now + ahead
            head = self.pending[0]
            waited = now - head.arrival
            seen = self.anchor is not None
            video_ok = waited >= self.max_video_wait or (
                seen
                and (
                    now - self.last_video_push >= self.max_video_wait
                    or self.video_high + 0.5 * self.video.period >= head.start
                )
            )
            if not video_ok:
                return now + min(self.max_video_wait - waited, 0.005)
            self.pending.pop(0)
            seg = self.playout.hand(now, head.start, head.end, 0.01)
            self.handed.append((seg.media_start, seg.media_end, seg.wall_start, seg.wall_end))
        return math.inf

    def step_video(self) -> float:
        now = self.clock.now()
        if self.video.last is None and not len(self.video):
            return math.inf
        while True:
            d = self.video.decide(now, self.due_of)
            if d.action == "send":
                assert d.frame is not None
                self.sent.append((now, d.frame.ts))
            elif d.action == "repeat":
                self.repeats += 1
            else:
                return d.wake_at

    def audio_wall_of(self, media: float) -> float:
        """When the audio of ``media`` really played, from the chunks handed."""
        for m0, m1, w0, w1 in self.handed:
            if m0 <= media < m1:
                return w0 + (media - m0) / (m1 - m0) * (w1 - w0)
        raise AssertionError(f"no audio covers media time {media}")

    def run(self, events: list[tuple[float, str, float]], until: float) -> None:
        """``events``: (arrival wall time, "a"|"v", producer timestamp), sorted."""
        i = 0
        video_wake = math.inf
        while self.clock.now() < until:
            now = self.clock.now()
            while i < len(events) and events[i][0] <= now + 1e-12:
                _, kind, ts = events[i]
                if kind == "a":
                    self.push_audio(ts, 0.02)
                else:
                    self.push_video(ts)
                    video_wake = now
                i += 1
            audio_wake = self.pump_audio()
            if video_wake <= now or self.video.last is None:
                video_wake = self.step_video()
            next_event = events[i][0] if i < len(events) else math.inf
            nxt = min(next_event, audio_wake, video_wake, until)
            self.clock.advance(max(nxt - now, 1e-6))


def test_core_end_to_end_video_leaves_when_its_audio_plays() -> None:
    sim = CoreSim()
    events: list[tuple[float, str, float]] = []
    t0 = 1.0
    for k in range(150):  # 3 s of 20 ms audio, each arriving when produced (end timestamp)
        end = (k + 1) * 0.02
        events.append((t0 + end, "a", end))
    for j in range(90):  # 3 s of 30 fps video, 120 ms late
        ts = j / 30
        events.append((t0 + ts + 0.12, "v", ts))
    events.sort()
    sim.run(events, until=t0 + 4.0)

    assert len(sim.pending) == 0
    assert len(sim.sent) >= 88  # every frame (a late final one may be merged)
    errors = [sent - sim.audio_wall_of(ts) for sent, ts in sim.sent]
    assert max(abs(e) for e in errors) <= 0.002, f"worst A/V error {max(errors, key=abs):.4f} s"
    assert [ts for _, ts in sim.sent] == sorted(ts for _, ts in sim.sent)
    # audio waited for the late video once, then played without further gaps
    assert sim.playout.underruns <= 2
    assert sim.playout.played(sim.clock.now()) == pytest.approx(3.0, abs=1e-6)
