"""The timeline rules of the pure core on explicit times: dropped media never moves the timeline,
a clear leaves the clock undefined until new media, foreign clocks are detected, the rest frame
pays rate credit."""

from __future__ import annotations

import pytest

from livekit_avsync.sync import Aligner, AudioPlayout, VideoScheduler
from livekit_avsync.sync.aligner import FOREIGN_CLOCK_S


def test_a_dropped_frame_restored_leaves_the_timeline_where_it_was() -> None:
    a = Aligner(mode="arrival")
    a.audio(None, 0.02, 10.0)
    before = a.checkpoint()
    for k in range(500):  # 10 s of audio the gate then drops
        a.audio(None, 0.02, 10.001 + k * 1e-5)
        a.video(None, 10.001 + k * 1e-5)
    assert a.audio_end == pytest.approx(10.02 + 10.0)  # without restore: 10 s ahead
    a.restore(before)
    assert a.audio_end == pytest.approx(10.02)
    ts, _ = a.video(None, 10.3)
    assert ts == pytest.approx(10.3)  # belongs to now, not 10 s ahead


def test_timestamps_restore_undoes_jumps_and_offsets() -> None:
    a = Aligner(mode="timestamps")
    a.audio(0.02, 0.02, 0.0)
    before = a.checkpoint()
    a.audio(500.0, 0.02, 0.01)  # a leap: re-based, counted
    assert a.jumps == 1
    a.restore(before)
    assert a.jumps == 0
    assert a.audio(0.04, 0.02, 0.02)[:2] == pytest.approx((0.02, 0.04))


def test_rewind_to_in_arrival_mode_continues_from_what_plays() -> None:
    a = Aligner(mode="arrival")
    for k in range(50):
        a.audio(None, 0.02, 5.0 + k * 1e-4)  # 1 s pushed at once
    a.rewind_to(5.2)  # a clear while 5.2 plays: the rest was dropped
    assert a.audio(None, 0.02, 5.21)[:2] == pytest.approx((5.21, 5.23))
    t = Aligner(mode="timestamps")
    t.audio(1.0, 0.02, 0.0)
    t.rewind_to(0.0)  # timestamps mode keeps the producer's clock
    assert t.audio(1.02, 0.02, 0.02)[:2] == pytest.approx((1.0, 1.02))


def test_auto_detects_unrelated_clocks_and_switches_to_arrival() -> None:
    a = Aligner()
    a.audio(0.02, 0.02, 100.0)
    assert a.mode == "timestamps"
    ts, _ = a.video(1.7e9, 100.001)  # wall-clock seconds, "for logging"
    assert a.mode == "arrival" and a.foreign_clocks
    assert ts == pytest.approx(0.02, abs=0.002)  # with the audio pushed so far, not 54 years on
    ts2, _ = a.video(1.7e9 + 0.033, 100.034)
    assert ts2 - ts == pytest.approx(0.033, abs=0.002)
    start, _, _ = a.audio(0.04, 0.02, 100.02)
    assert start == pytest.approx(0.02, abs=0.002)  # audio carries on where it was


@pytest.mark.parametrize("lead", [0.0, 0.5, -0.5, FOREIGN_CLOCK_S - 0.1])
def test_auto_keeps_timestamps_for_clocks_within_the_tolerance(lead: float) -> None:
    a = Aligner()
    a.audio(10.02, 0.02, 100.0)
    a.video(10.0 + lead, 100.0)
    assert a.mode == "timestamps" and not a.foreign_clocks


def test_explicit_timestamps_rebases_a_first_frame_far_off_the_other_stream() -> None:
    a = Aligner(mode="timestamps")
    a.audio(0.02, 0.02, 100.0)
    ts, _ = a.video(60.0, 100.0)  # 60 s ahead of all audio: would wait a minute
    assert a.mode == "timestamps" and a.jumps == 1
    assert ts == pytest.approx(0.02, abs=0.001)
    assert a.video(60.0 + 1 / 30, 100.033)[0] == pytest.approx(0.02 + 1 / 30, abs=0.001)


def test_playout_after_a_clear_defines_no_clock_until_the_next_chunk() -> None:
    p = AudioPlayout()
    p.hand(0.0, 0.0, 0.02, 0.02)
    assert p.live
    p.clear(0.01)
    assert not p.live  # the playhead does not run on from what was dropped
    p.hand(0.5, 7.0, 7.02, 0.02)
    assert p.live and p.playhead(0.51) == pytest.approx(7.01)


def test_a_frame_sent_outside_decide_pays_rate_credit() -> None:
    v = VideoScheduler(30)
    period = 1 / 30
    assert v.send_wait(0.0) == 0.0
    v.mark_sent(0.0)
    v.mark_sent(0.0 + period / 2)  # the burst credit (2 frames) is spent
    wait = v.send_wait(period / 2)
    assert wait == pytest.approx(period / 2, abs=1e-6)  # one more frame only after credit accrues
    assert v.send_wait(period / 2 + wait) == pytest.approx(0.0, abs=1e-9)


def test_playout_a_chunk_that_reached_the_source_late_moves_the_clock_on() -> None:
    p = AudioPlayout()
    p.hand(0.0, 0.0, 0.02, 0.02)
    late = p.hand(0.0, 0.02, 0.04, 0.02)  # modelled to start at 0.02...
    p.hand(0.0, 0.04, 0.06, 0.02)
    assert p.landed(late, 0.05) == pytest.approx(0.03)  # ...but only got there at 0.05
    assert p.wall_time_of(0.03) == pytest.approx(0.06)
    assert p.queued(0.05) == pytest.approx(0.04)
    assert p.underruns == 1
    assert p.landed(late, 0.01) == 0.0  # in time: nothing moves


def _stream(p: AudioPlayout, seconds: float) -> list:
    """``seconds`` of 20 ms chunks handed at 0, played back to back from 0."""
    return [p.hand(0.0, k * 0.02, (k + 1) * 0.02, 0.02) for k in range(round(seconds / 0.02))]


def test_playout_follows_a_source_whose_ticks_fell_behind() -> None:
    p = AudioPlayout()
    segs = _stream(p, 2.0)
    # the source emits every 10 ms tick 120 ms after the model says (its thread was starved);
    # each report reaches us 1-9 ms after its tick (the event loop)
    for k in range(60):
        seg, offset = segs[k // 2], (k % 2) * 0.01
        moved = p.emitted(seg, offset, k * 0.01 + 0.12 + 0.001 * (1 + k % 9))
        assert moved == 0.0 or k == 29, k  # judged once per window of 30 reports...
    assert p.corrections == 1  # ...then moved on by the best of them, less the tick phase
    assert p.wall_time_of(0.5) == pytest.approx(0.5 + 0.12 + 0.001 - 0.003)
    assert p.queued(0.3) == pytest.approx(2.0 - 0.3 + 0.118)


def test_playout_is_not_moved_by_a_slow_event_loop_alone() -> None:
    p = AudioPlayout()
    segs = _stream(p, 2.0)
    # on time, but the loop delivers the reports in bursts: every 100 ms, all at once
    for k in range(120):
        seg, offset = segs[k // 2], (k % 2) * 0.01
        emitted_at = k * 0.01
        assert p.emitted(seg, offset, emitted_at - emitted_at % 0.1 + 0.1) == 0.0
    assert p.corrections == 0
    assert p.wall_time_of(1.0) == pytest.approx(1.0)


def test_playout_follows_a_source_that_played_earlier_than_modelled() -> None:
    p = AudioPlayout(latency=0.05)
    segs = [p.hand(0.0, k * 0.02, (k + 1) * 0.02, 0.02) for k in range(50)]
    # a report before the model's time proves it: the sample cannot be read before it played
    assert p.emitted(segs[10], 0.0, 0.25 - 0.03) == pytest.approx(-0.033)
    assert p.wall_time_of(0.3) == pytest.approx(0.35 - 0.033)
    assert p.emitted(segs[11], 0.0, 0.27 - 0.033 + 0.002) == 0.0  # now it agrees
    # the latency estimate that placed them was too long: it is shortened too
    assert p.wall_time_of(1.0) == pytest.approx(1.05 - 0.033)
    fresh = p.hand(2.0, 1.0, 1.02, 0.02)  # after the queue ran dry
    assert fresh.wall_start == pytest.approx(2.0 + 0.05 - 0.033)


def test_playout_ignores_reports_once_cleared_or_of_a_cut_segment() -> None:
    p = AudioPlayout()
    segs = _stream(p, 1.0)
    p.clear(0.1)
    assert p.emitted(segs[2], 0.0, 0.0) == 0.0  # late report of the old run: the clock is undefined
    fresh = p.hand(0.2, 0.0, 0.02, 0.02)
    assert p.emitted(segs[20], 0.0, 0.1) == 0.0  # a segment the clear dropped: gone
    assert p.emitted(fresh, 0.0, 0.185) == pytest.approx(-0.018)  # the new run is followed
